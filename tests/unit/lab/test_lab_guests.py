# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab playbooks' guest helper reads each QEMU thread's affinity and passes over a thread that ended
between the listing and the reading (QEMU's thread-pool workers do), instead of failing the whole wave."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import types
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset

ROOT = Path(__file__).resolve().parents[3]
HELPER = ROOT / "tests" / "lab" / "playbooks" / "files" / "lab_guests.py"


@pytest.fixture(scope="module")
def helper() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("lab_guests", HELPER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_running_thread_gives_its_id_name_and_affinity(helper: types.ModuleType) -> None:
    tid = threading.get_native_id()
    row = helper._thread_row(f"/proc/{os.getpid()}/task/{tid}")
    assert row is not None
    task, comm, cpus, mems = row.split("|")
    assert int(task) == tid
    assert comm == Path(f"/proc/self/task/{tid}/comm").read_text(encoding="utf-8").strip()
    assert set(parse_cpuset(cpus)) == os.sched_getaffinity(0)
    assert mems


def test_a_thread_that_ended_after_the_listing_is_passed_over(helper: types.ModuleType) -> None:
    started = threading.Event()
    ids: list[int] = []

    def work() -> None:
        ids.append(threading.get_native_id())
        started.set()

    worker = threading.Thread(target=work, name="worker")
    worker.start()
    started.wait()
    task = f"/proc/{os.getpid()}/task/{ids[0]}"
    worker.join()
    # join() returns when the thread's Python state is gone, a moment before the kernel drops its entry.
    deadline = time.monotonic() + 10
    while os.path.exists(task) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(task), f"{task} still listed"
    assert helper._thread_row(task) is None
