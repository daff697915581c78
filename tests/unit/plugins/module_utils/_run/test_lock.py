# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The hypervisor's lock (``_run/lock.py``): its file's name, who a refusal names as its holder, its default."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError
from ansible_collections.vnuma.libvirt.plugins.module_utils._run import lock
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import (
    DEFAULT_LOCK_TIMEOUT,
    host_lock,
    lock_key,
    lock_path,
)
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain, vnuma_migrate


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


@pytest.mark.parametrize(
    "uri",
    [
        "qemu+unix:///system",
        "qemu:///system/",
        "qemu:///system?socket=/run/libvirt/libvirt-sock",
        "qemu+unix:///system?socket=/run/libvirt/virtqemud-sock&mode=direct",
        "qemu:///system?no_tty=1",
    ],
)
def test_every_spelling_of_a_local_daemon_takes_its_one_lock(lock_dir: Path, uri: str) -> None:
    # They reach the same libvirtd: with a lock each, their runs would not take turns.
    assert lock_path(uri) == lock_path("qemu:///system") == str(lock_dir / "qemu_system.lock")


@pytest.mark.parametrize(
    ("uri", "key"),
    [
        ("qemu:///session", "qemu:///session"),
        ("qemu:///system?socket=/srv/other-sock", "qemu:///system?socket=%2Fsrv%2Fother-sock"),
        ("qemu+ssh://hv01/system", "qemu+ssh://hv01/system"),
        ("qemu+tcp:///system", "qemu+tcp:///system"),
        ("test:///default", "test:///default"),
    ],
)
def test_other_daemons_keep_their_own_lock(uri: str, key: str) -> None:
    assert lock_key(uri) == key


class _Built(Exception):
    """The argument spec a module's main() built its AnsibleModule with."""


@pytest.mark.parametrize("module", [vnuma_domain, vnuma_migrate], ids=lambda module: module.__name__.rpartition(".")[2])
def test_lock_timeout_has_one_default(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
    """The option's default and its documentation are DEFAULT_LOCK_TIMEOUT, which the runners fall back on too."""

    def built(**kwargs: Any) -> None:
        raise _Built(kwargs["argument_spec"])

    monkeypatch.setattr(module, "AnsibleModule", built)
    with pytest.raises(_Built) as spec:
        module.main()
    assert spec.value.args[0]["lock_timeout"]["default"] == DEFAULT_LOCK_TIMEOUT
    assert yaml.safe_load(module.DOCUMENTATION)["options"]["lock_timeout"]["default"] == DEFAULT_LOCK_TIMEOUT


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


def ended(holder: subprocess.Popen[bytes]) -> None:
    """flock(1) and the command it runs killed, and its lock gone from /proc/locks.

    flock(1) forks its command before that child closes the lock's descriptor (-o): a child killed in between
    still holds it for a moment after flock(1) itself is reaped.  Its lock is gone when the kernel says so.
    """
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 10
    while f" {holder.pid} " in Path("/proc/locks").read_text():
        assert time.monotonic() < deadline, "the killed flock(1)'s lock outlived it by 10 seconds"
        time.sleep(0.02)


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
        ended(holder)
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


def refused(uri: str) -> str:
    with pytest.raises(LibvirtOperationError) as error, host_lock(uri, 0):
        pass
    return error.value.message


def test_a_lock_directory_of_another_user_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # /run/lock and /tmp are everyone's: another user could make the directory first, with a symlink in it
    # naming a file this run would then create, or hold its lock for ever.
    directory = tmp_path / "locks"
    directory.mkdir(mode=0o755)
    monkeypatch.setattr(lock, "lock_directory", lambda: str(directory))
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(directory).st_uid + 1)
    assert refused("test:///default") == (
        f"refusing the lock directory {directory} of test:///default: it belongs to uid {os.stat(directory).st_uid}, "
        f"not to this run's uid {os.stat(directory).st_uid + 1}; remove it (the next run makes it again)"
    )
    assert list(directory.iterdir()) == []


def test_a_lock_directory_others_can_write_to_is_refused(lock_dir: Path) -> None:
    lock_dir.chmod(0o1777)
    assert refused("test:///default").endswith(
        "its mode 1777 lets other users write to it; remove it (the next run makes it again)"
    )
    assert list(lock_dir.iterdir()) == []


def test_a_symlink_in_place_of_the_lock_file_is_not_followed(lock_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    Path(lock_path("test:///default")).symlink_to(target)
    assert refused("test:///default").startswith(f"cannot open the lock file {lock_path('test:///default')} of ")
    assert not target.exists()


def test_the_lock_file_is_the_run_users_alone(lock_dir: Path) -> None:
    # A user who can open it can hold a shared lock on it and keep every run waiting.
    with host_lock("test:///default", 0) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # One an earlier version made readable by all is closed to them.
    os.chmod(path, 0o644)
    with host_lock("test:///default", 0):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
