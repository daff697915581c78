# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fault injection for tests/integration/test_faults.py: kill a process right after a chosen task.

With the linear strategy the controller handles every host's result of a task (and calls this
callback) before it starts the next task, so the process dies exactly between the two.
"""

from __future__ import annotations

import os
import signal
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: vnuma_fault
type: aggregate
short_description: Kill a process right after a chosen task (vnuma.libvirt fault-injection tests)
description:
  - Once the task whose name ends with E(VNUMA_FAULT_AFTER_TASK) succeeded, sends SIGKILL to the pid in
    E(VNUMA_FAULT_PID), waits until it is gone, and writes the task's name to E(VNUMA_FAULT_MARKER).
requirements:
  - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "vnuma_fault"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._done = False

    def v2_runner_on_ok(self, result: object) -> None:
        wanted = os.environ.get("VNUMA_FAULT_AFTER_TASK", "")
        name = result._task.get_name()  # type: ignore[attr-defined]
        if self._done or not wanted or not name.endswith(wanted):
            return
        self._done = True
        pid = int(os.environ["VNUMA_FAULT_PID"])
        os.kill(pid, signal.SIGKILL)
        # Gone for good (reaped), so that the next task finds its socket refusing, not half open.
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(os.environ["VNUMA_FAULT_MARKER"], "w", encoding="utf-8") as marker:
            marker.write(name)
