# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Backups of guest definitions, written before a define when the run is asked to.

A backup is named ``<guest>.<YYYYmmddTHHMMSS>.<nnnnnnnnn>Z.xml``: the time it was written in UTC, from one
read of the clock, the nanoseconds as 9 digits, so that a guest's backups sort by name in the order they
were written.  A guest name that would make the name longer than ``NAME_MAX`` bytes is cut (``backup_name``).

A backup appears under its name complete or not at all.  The definition goes to a temporary file of the same
directory (created exclusively, mode 0600), is flushed to the disk, and only then gets its name, which never
replaces a file; the directory is flushed too.  A failure (a full file system) removes what was written, and
the guest is not defined (``_run/converge.py:Converger.define_one`` defines only after the backup).
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
import time

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError

__all__ = ["NAME_MAX", "backup_name", "write_backup"]

# The longest file name, in bytes, that Linux's file systems take (ext4, xfs, btrfs, tmpfs: 255).
NAME_MAX = 255
# A cut guest name ends in "-" and these many hex digits of the full name's SHA-256 (as _run/lock.py:lock_path).
_HASH_DIGITS = 12
# The errors of link(2) on a file system that has no hard links (vfat, some FUSE and network file systems).
_NO_HARD_LINKS = frozenset((errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS))
# The errors of fsync(2) on a directory that a file system cannot flush (it flushes its entries by itself).
_NO_DIRECTORY_SYNC = frozenset((errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP))
_TEMPORARY_PREFIX = ".vnuma-backup-"
# The steps of write_backup, for its message.
_CREATE, _WRITE, _NAME, _FLUSH = "create", "write", "name", "flush"


def backup_name(name: str, time_ns: int) -> str:
    """The file name of guest ``name``'s backup written at ``time_ns`` (nanoseconds since the epoch).

    ``db01.20241205T000000.000000042Z.xml``.  When the name would be longer than ``NAME_MAX`` bytes (libvirt takes
    longer guest names), the guest's part is cut, at a character's boundary of its UTF-8, and told apart from other
    cut names by ``-`` and the first 12 hex digits of the full name's SHA-256.
    """
    seconds, nanoseconds = divmod(time_ns, 10**9)
    suffix = f".{time.strftime('%Y%m%dT%H%M%S', time.gmtime(seconds))}.{nanoseconds:09d}Z.xml"
    encoded = name.encode("utf-8", "surrogateescape")
    room = NAME_MAX - len(suffix.encode("ascii"))
    if len(encoded) <= room:
        return f"{name}{suffix}"
    tag = f"-{hashlib.sha256(encoded).hexdigest()[:_HASH_DIGITS]}"
    end = room - len(tag)
    # The first byte left out continues a character (10xxxxxx): leave the whole character out.
    while end > 0 and encoded[end] & 0xC0 == 0x80:
        end -= 1
    return f"{encoded[:end].decode('utf-8', 'surrogateescape')}{tag}{suffix}"


def write_backup(directory: str | None, name: str, xml: str) -> str:
    """Save ``xml``, guest ``name``'s definition, in a new file of ``directory`` (default: here); its path.

    The file appears under its name complete, or not at all (see the module's docstring), and never replaces a
    file: two runs never write over each other's backup.  The definition is read with its secrets (a
    ``<graphics>`` passwd, ``_libvirt.py:_DEFINITION_FLAGS``) so that defining the backup restores them: the file
    is readable by its owner only, and a directory this creates too.  Any failure raises ``LibvirtOperationError``
    naming the guest, the backup's path and the OS's error, with nothing of the backup left behind.
    """
    directory = directory or "."
    path = os.path.join(directory, backup_name(name, time.time_ns()))
    created = _missing_top(directory)
    step = _WRITE
    temporary: str | None = None
    linked = False
    try:
        data = xml.encode("utf-8")
        step = _CREATE
        os.makedirs(directory, mode=0o700, exist_ok=True)
        step = _WRITE
        handle, temporary = tempfile.mkstemp(prefix=_TEMPORARY_PREFIX, suffix=".tmp", dir=directory)
        try:
            _write_all(handle, data)
            os.fsync(handle)
        finally:
            os.close(handle)
        step = _NAME
        kept = _link(temporary, path)
        linked = True
        if kept:
            os.unlink(temporary)
        temporary = None
        step = _FLUSH
        for each in _to_flush(directory, created):
            _flush_directory(each)
    except BaseException as error:
        left = _remove(temporary, path if linked else None)
        if not isinstance(error, (OSError, UnicodeError)):
            raise
        why = _reason(error, step, directory)
        if created is not None and os.path.isdir(created):
            why += f" (the directory {created} was created for it)"
        raise LibvirtOperationError(
            f"cannot save the backup of its definition as {path}: {why}{left}; its definition was left as it was",
            guest=name,
        ) from None
    return path


def _write_all(handle: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view) :]


def _link(temporary: str, path: str) -> bool:
    """Give ``temporary`` the name ``path`` unless a file has it; whether ``temporary`` is still there to remove."""
    try:
        os.link(temporary, path)
        return True
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise
    # No hard links on this file system: a rename, which would replace a file, once nothing has the name.
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
    os.rename(temporary, path)
    return False


def _missing_top(directory: str) -> str | None:
    """The outermost directory of ``directory``'s path that does not exist yet (the first one ``makedirs`` makes)."""
    missing = None
    current = os.path.abspath(directory)
    while not os.path.lexists(current) and os.path.dirname(current) != current:
        missing = current
        current = os.path.dirname(current)
    return missing


def _to_flush(directory: str, created: str | None) -> list[str]:
    """``directory``, which holds the file's name, and the parent of every directory this run created."""
    flush = [directory]
    current = os.path.abspath(directory)
    while created is not None and current.startswith(created) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
        flush.append(current)
    return flush


def _flush_directory(directory: str) -> None:
    handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(handle)
    except OSError as error:
        if error.errno not in _NO_DIRECTORY_SYNC:
            raise
    finally:
        os.close(handle)


def _remove(*paths: str | None) -> str:
    """Remove what a failed backup wrote; what could not be removed, for the message."""
    left = ""
    for path in paths:
        if path is None:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            left += f"; {path} is left behind: it could not be removed ([Errno {error.errno}] {error.strerror})"
    return left


def _reason(error: OSError | UnicodeError, step: str, directory: str) -> str:
    """What failed, for the message: the OS's error, with its number, and the step when that is not the write."""
    if isinstance(error, UnicodeError):
        return f"it cannot be written as UTF-8 ({error})"
    if step == _NAME and error.errno == errno.EEXIST:
        return "a file of that name exists, and a backup never replaces one"
    text = f"[Errno {error.errno}] {error.strerror}" if error.strerror else str(error)
    if step == _CREATE:
        return f"cannot create the directory {os.fsdecode(error.filename or directory)}: {text}"
    if step == _FLUSH:
        return f"flushing its directory to the disk: {text}"
    return text
