# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""One writer at a time per hypervisor: an advisory file lock, taken around every run that writes.

libvirt has no compare-and-swap for a definition (``virDomainDefineXML`` replaces whatever is
there), so two runs that read, plan and define the same guest at once lose one of the updates.
The collection's own runs on one host therefore take an exclusive ``flock(2)`` on a file named after
the connection URI before they read anything, and hold it until their last write.  The kernel drops
the lock with the process, so a run that dies leaves no stale lock behind.

The lock lives on the machine the module runs on: for the local URIs (``qemu:///system``) that is
the hypervisor itself.  Other tools can join in with ``flock(1)`` on the same file, e.g.
``flock /run/lock/vnuma.libvirt/qemu_system.lock virsh edit db01``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import LOCK_TIMEOUT_LIMITS, check_seconds
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.ownership import not_own

__all__ = ["DEFAULT_LOCK_TIMEOUT", "check_lock_timeout", "host_lock", "lock_key", "lock_path"]

# Seconds a run may wait for another one to finish (a fleet restart batch can take minutes, a day is absurd).
# lock_timeout when none is given: the modules' option default (their DOCUMENTATION says 300) and the runners'.
DEFAULT_LOCK_TIMEOUT = 300.0
_POLL = 0.1
_NAME_LIMIT = 80


def lock_directory() -> str:
    """Where the lock files live: /run/lock for root, the user's runtime directory (or /tmp) otherwise."""
    if os.geteuid() == 0:
        return "/run/lock/vnuma.libvirt"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "vnuma.libvirt")
    return f"/tmp/vnuma.libvirt-{os.geteuid()}"


# Query parameters that choose how to reach a local daemon, not which one (https://libvirt.org/uri.html).
_HOW_TO_REACH = ("mode", "no_tty", "no_verify")


def _default_sockets(driver: str, path: str) -> tuple[str, ...]:
    """The sockets a local ``driver:///path`` URI reaches without a ``socket`` parameter: libvirtd's, or the
    driver's own daemon's (``virtqemud``...), for the system daemons in /run/libvirt."""
    if path != "/system":
        return ()
    return ("/run/libvirt/libvirt-sock", f"/run/libvirt/virt{driver}d-sock")


def lock_key(uri: str) -> str:
    """The daemon a URI names, one spelling per local daemon: ``qemu+unix:///system``,
    ``qemu:///system?socket=/run/libvirt/libvirt-sock`` and ``qemu:///system/`` are ``qemu:///system``.

    Runs that reach the same daemon must take the same lock.  A remote URI (with a host) is kept as written:
    its lock is on this machine and keeps out only runs from here (docs/guarantees.md).
    """
    parts = urlsplit(uri)
    driver, _plus, transport = parts.scheme.partition("+")
    if parts.netloc or transport not in ("", "unix") or not driver:
        return uri
    path = parts.path.rstrip("/") or "/"
    kept = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _HOW_TO_REACH:
            continue
        if key == "socket" and os.path.realpath(value) in _default_sockets(driver, path):
            continue
        kept.append((key, value))
    query = f"?{urlencode(kept)}" if kept else ""
    return f"{driver}://{path}{query}"


def lock_path(uri: str) -> str:
    """The lock file of one connection URI: ``qemu:///system`` -> ``.../qemu_system.lock`` (``lock_key``)."""
    key = lock_key(uri)
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", key).strip("_") or "default"
    if len(name) > _NAME_LIMIT:
        name = f"{name[:_NAME_LIMIT]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    return os.path.join(lock_directory(), f"{name}.lock")


def check_lock_timeout(value: object) -> float:
    """``value`` as seconds to wait for the lock, or a SpecError that gives the range (the deadlines' own reader)."""
    return check_seconds("lock_timeout", value, LOCK_TIMEOUT_LIMITS)


def _holder(handle: int) -> str:
    """Who holds the lock, for the error message: the kernel's own record (``/proc/locks``), so that a
    holder that is not a collection run (``flock(1)`` around ``virsh edit``) is named too."""
    with contextlib.suppress(OSError, ValueError):
        status = os.fstat(handle)
        # fs/locks.c writes the file as MAJOR:MINOR:INODE, the device numbers in two-digit hex.
        key = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
        with open("/proc/locks", encoding="ascii", errors="replace") as table:
            for line in table:
                # "1: FLOCK  ADVISORY  WRITE 4711 fd:01:1234 0 EOF"; a waiter's line has "->" after the number.
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key and int(fields[4]) > 0:
                    return f", held by pid {int(fields[4])}"
    return ""


def _owned(status: os.stat_result, path: str, uri: str, what: str) -> None:
    """Refuse a lock directory or file that another user could replace or hold: not the run's own (``not_own``,
    the backup directory's rule too: ``_run/ownership.py``).

    /run/lock and /tmp are writable by every user, who could otherwise make a run create files where they
    choose (a symlink in a directory of theirs) or hold its lock for ever.
    """
    problem = not_own(status)
    if problem is not None:
        raise LibvirtOperationError(
            f"refusing the lock {what} {path} of {uri}: {problem}; remove it (the next run makes it again)"
        )


def _open_lock_file(path: str, uri: str) -> int:
    """The lock file's descriptor, in a directory of this run's user that no other user can write to."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(os.path.dirname(directory), mode=0o755, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o755 if os.geteuid() == 0 else 0o700)
        status = os.lstat(directory)
    except OSError as error:
        raise LibvirtOperationError(f"cannot make the lock directory {directory} of {uri}: {error.strerror}") from None
    if not stat.S_ISDIR(status.st_mode):
        raise LibvirtOperationError(f"refusing the lock directory {directory} of {uri}: it is not a directory")
    _owned(status, directory, uri, "directory")
    try:
        # 0600: a user who could open the file could hold a shared lock on it and keep every run waiting.
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise LibvirtOperationError(f"cannot open the lock file {path} of {uri}: {error.strerror}") from None
    try:
        status = os.fstat(handle)
        if not stat.S_ISREG(status.st_mode):
            raise LibvirtOperationError(f"refusing the lock file {path} of {uri}: it is not a regular file")
        _owned(status, path, uri, "file")
        if stat.S_IMODE(status.st_mode) & 0o077:
            # Made readable by an earlier version of the collection.
            os.fchmod(handle, 0o600)
    except (LibvirtOperationError, OSError) as error:
        os.close(handle)
        if isinstance(error, LibvirtOperationError):
            raise
        raise LibvirtOperationError(f"cannot open the lock file {path} of {uri}: {error.strerror}") from None
    return handle


@contextlib.contextmanager
def host_lock(uri: str, timeout: float) -> Iterator[str]:
    """Hold the hypervisor's lock for the block; wait at most ``timeout`` seconds for it.  Yields its path."""
    path = lock_path(uri)
    handle = _open_lock_file(path, uri)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise LibvirtOperationError(f"cannot lock {path} for {uri}: {error.strerror}") from None
            if time.monotonic() >= deadline:
                raise LibvirtOperationError(
                    f"another vnuma.libvirt run is changing the guests of {uri} (lock {path}{_holder(handle)}); "
                    f"waited {timeout:g} seconds (lock_timeout)"
                )
            time.sleep(_POLL)
        yield path
    finally:
        # Closing the descriptor releases the lock (flock locks belong to the open file description).
        os.close(handle)
