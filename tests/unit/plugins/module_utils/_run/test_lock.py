# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The hypervisor's lock (``_run/lock.py``): its file's name, and who a refusal names as its holder."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError
from ansible_collections.vnuma.libvirt.plugins.module_utils._run import lock
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import host_lock, lock_path


@pytest.fixture
def lock_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(lock, "lock_directory", lambda: str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("qemu:///system", "qemu_system.lock"),
        ("qemu+ssh://hv01.example.com/system", "qemu_ssh_hv01.example.com_system.lock"),
        ("test:///default", "test_default.lock"),
        ("", "default.lock"),
    ],
)
def test_the_file_is_named_after_the_uri(lock_dir: Path, uri: str, name: str) -> None:
    # docs/guarantees.md states this rule for other tools that take the same lock with flock(1).
    assert lock_path(uri) == str(lock_dir / name)


def test_a_long_uri_is_cut_and_told_apart_by_a_hash(lock_dir: Path) -> None:
    first, second = (lock_path(f"qemu+ssh://{'h' * 90}{tail}/system") for tail in ("1", "2"))
    assert first != second
    assert len(Path(first).name) == 80 + len("-") + 12 + len(".lock")


def held_by_flock(path: str) -> subprocess.Popen[bytes]:
    """flock(1) holding ``path``, as another tool would around ``virsh edit``; returns once it holds it."""
    # -o: the lock stays with flock(1) itself, not with the command it runs (killed below with flock).
    holder = subprocess.Popen(["flock", "-o", path, "sleep", "30"], start_new_session=True)
    deadline = time.monotonic() + 10
    while Path("/proc/locks").read_text().count(f" {holder.pid} ") == 0:
        assert holder.poll() is None and time.monotonic() < deadline, "flock(1) did not take the lock"
        time.sleep(0.02)
    return holder


def test_a_refusal_names_the_process_that_holds_the_lock(lock_dir: Path) -> None:
    uri = "qemu:///system"
    # A collection run held the lock before and is gone: nothing of it may be named now.
    with host_lock(uri, 0):
        pass
    holder = held_by_flock(lock_path(uri))
    try:
        with pytest.raises(LibvirtOperationError) as refused, host_lock(uri, 0):
            pass
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    assert refused.value.message == (
        f"another vnuma.libvirt run is changing the guests of {uri} (lock {lock_path(uri)}, held by pid "
        f"{holder.pid}); waited 0 seconds (lock_timeout)"
    )
    # Once the other tool is done, the lock is free again.
    with host_lock(uri, 0) as path:
        assert path == lock_path(uri)


def test_a_run_holding_the_lock_is_named(lock_dir: Path) -> None:
    uri = "test:///default"
    held = pytest.raises(LibvirtOperationError, match=rf", held by pid {os.getpid()}\)")
    with host_lock(uri, 0), held, host_lock(uri, 0):
        pass
