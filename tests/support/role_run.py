# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run the vnuma_fleet role in an ansible-playbook process of its own, held after a chosen task.

For the integration tests where the role and another client overlap (tests/integration/test_concurrency.py):
``RoleRun.start()`` runs tests/integration/playbooks/concurrency/fleet.yml on localhost with the role's
inputs as extra vars; with ``pause_after`` the play stops right after that task (the ``vnuma_pause``
callback next to the playbook) until ``resume()``.  Nothing is timed: the test waits for the pause,
does its part, and lets the play go on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RoleRun"]

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK_DIR = ROOT / "tests" / "integration" / "playbooks" / "concurrency"


@dataclass
class RoleRun:
    """One ansible-playbook process running the role; see ``start``."""

    process: subprocess.Popen[str]
    workdir: Path
    report_dir: Path

    @classmethod
    def start(cls, workdir: Path, role_vars: dict[str, Any], pause_after: str | None = None) -> RoleRun:
        """Start the play; ``role_vars`` are the role's inputs, ``pause_after`` the end of a task's name."""
        workdir.mkdir(parents=True, exist_ok=True)
        report_dir = workdir / "report"
        extra = workdir / "vars.json"
        extra.write_text(json.dumps({"vnuma_fleet_report_dir": str(report_dir), **role_vars}), encoding="utf-8")
        env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_CALLBACK_PLUGINS": str(PLAYBOOK_DIR / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "vnuma_pause",
            "VNUMA_PAUSE_AFTER_TASK": pause_after or "",
            "VNUMA_PAUSE_MARKER": str(workdir / "paused"),
            "VNUMA_PAUSE_GO": str(workdir / "go"),
        }
        command = [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"@{extra}",
            str(PLAYBOOK_DIR / "fleet.yml"),
        ]
        # Output to a file: a pipe nobody reads while the test waits could fill up and stall the play.
        with (workdir / "output.txt").open("w", encoding="utf-8") as output:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True
            )
        return cls(process=process, workdir=workdir, report_dir=report_dir)

    @property
    def output(self) -> str:
        return (self.workdir / "output.txt").read_text(encoding="utf-8", errors="replace")

    def wait_paused(self, timeout: float = 180) -> None:
        """Wait until the play holds after its ``pause_after`` task; fail with the play's output if it ends first."""
        marker = self.workdir / "paused"
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the play ended (exit {self.process.returncode}) before its pause:\n{self.output}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the play did not reach its pause within {timeout} s:\n{self.output}")
            time.sleep(0.1)

    def resume(self) -> None:
        (self.workdir / "go").touch()

    def finish(self, timeout: float = 300) -> tuple[int, dict[str, Any]]:
        """Let the play run to its end: its exit status and ``vnuma_fleet_result`` (its JSON report)."""
        self.resume()
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the play did not end within {timeout} s:\n{self.output}") from None
        report = self.report_dir / "localhost.json"
        if not report.exists():
            raise AssertionError(f"the play (exit {returncode}) wrote no report:\n{self.output}")
        return returncode, json.loads(report.read_text(encoding="utf-8"))

    def kill(self) -> None:
        """End the play and everything it started (its own session), if it still runs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait()
