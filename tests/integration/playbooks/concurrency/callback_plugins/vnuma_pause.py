# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hold a play right after a chosen task, for tests/integration/test_concurrency.py.

With the linear strategy the controller handles every host's result of a task (and calls this
callback) before it starts the next task: while the callback waits, the play is between the two
tasks, and holds no lock of the collection.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ansible.errors import AnsibleError
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: vnuma_pause
type: aggregate
short_description: Hold a play right after a chosen task (vnuma.libvirt concurrency tests)
description:
  - Once the task whose name ends with E(VNUMA_PAUSE_AFTER_TASK) succeeded, writes the task's name to
    E(VNUMA_PAUSE_MARKER) and waits until the file E(VNUMA_PAUSE_GO) exists, at most
    E(VNUMA_PAUSE_TIMEOUT) seconds (default 300), then lets the play go on.
requirements:
  - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "vnuma_pause"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._done = False

    def v2_runner_on_ok(self, result: object) -> None:
        wanted = os.environ.get("VNUMA_PAUSE_AFTER_TASK", "")
        name = result._task.get_name()  # type: ignore[attr-defined]
        if self._done or not wanted or not name.endswith(wanted):
            return
        self._done = True
        Path(os.environ["VNUMA_PAUSE_MARKER"]).write_text(name, encoding="utf-8")
        go = Path(os.environ["VNUMA_PAUSE_GO"])
        # A bound on the wait, so that a test that died never leaves a play hanging.
        deadline = time.monotonic() + float(os.environ.get("VNUMA_PAUSE_TIMEOUT", "300"))
        while not go.exists():
            if time.monotonic() > deadline:
                raise AnsibleError(f"vnuma_pause: {go} did not appear after task {name!r}")
            time.sleep(0.05)
