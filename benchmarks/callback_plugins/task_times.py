# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ansible callback of the fleet benchmark (benchmarks/fleet.py): how long each task of a run took.

A task's time runs from its start to the start of the next task (or the end of the play), as
ansible.posix's profile_tasks counts it, so that every second of the run between the first task and
the recap belongs to one task, Ansible's own work between tasks included.  ansible.posix is not one
of the project's requirements, hence this small copy.  The times are written as JSON to the file named
by VNUMA_BENCH_TASK_TIMES when the play ends: ``{"start": epoch seconds of the playbook start,
"end": epoch seconds of the recap, "tasks": [{"name", "action", "file", "seconds"}], "stats": {host:
{"ok", "changed", "failed", ...}}}``.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from ansible.plugins.callback import CallbackBase

if TYPE_CHECKING:
    from ansible.executor.stats import AggregateStats
    from ansible.playbook import Playbook
    from ansible.playbook.task import Task

DOCUMENTATION = """
    name: task_times
    type: aggregate
    short_description: Write the time of every task to a JSON file (vnuma.libvirt's fleet benchmark)
    description:
        - Used by the collection's benchmarks/fleet.py, not shipped as a plugin.
    requirements:
        - the environment variable VNUMA_BENCH_TASK_TIMES names the file to write
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start = time.time()
        self._tasks: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self._since = 0.0

    def _close(self) -> None:
        if self._current is not None:
            self._current["seconds"] = time.perf_counter() - self._since
            self._tasks.append(self._current)
            self._current = None

    def v2_playbook_on_start(self, playbook: Playbook) -> None:
        self._start = time.time()

    def v2_playbook_on_task_start(self, task: Task, is_conditional: bool) -> None:
        self._close()
        path = task.get_path() or ""
        self._current = {
            "name": task.get_name(),
            "action": task.action,
            "file": os.path.basename(path.rsplit(":", 1)[0]),
        }
        self._since = time.perf_counter()

    def v2_playbook_on_handler_task_start(self, task: Task) -> None:
        self.v2_playbook_on_task_start(task, False)

    def v2_runner_on_skipped(self, result: Any) -> None:
        # Skipped on a host (on every host, for the one-host plays whose tasks the skeleton mirrors): such a
        # task starts no module, whatever its action.
        if self._current is not None:
            self._current["skipped"] = True

    def v2_playbook_on_stats(self, stats: AggregateStats) -> None:
        self._close()
        target = os.environ.get("VNUMA_BENCH_TASK_TIMES")
        if not target:
            return
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        with open(target, "w", encoding="utf-8") as output:
            json.dump({"start": self._start, "end": time.time(), "tasks": self._tasks, "stats": summary}, output)
