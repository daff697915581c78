# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Backups of guest definitions, written before a define when the run is asked to.

A backup is named ``<guest>.<YYYYmmddTHHMMSS>.<nnnnnnnnn>Z.xml``: the time it was written in UTC, from one
read of the clock, the nanoseconds as 9 digits, so that a guest's backups sort by name in the order they
were written.  A guest name that would make the name longer than ``NAME_MAX`` bytes is cut (``backup_name``).

The backup directory (``backup_dir``) is checked before anything is read or written (``check_backup_dir``, in
check mode too) and again before each backup: it must be the run's own and out of other users' reach
(``_run/ownership.py``), as a backup is what a definition is restored from.  Its path is read by name, ``..``
resolved (``backup_directory``): that one path is checked, created (each missing directory 0700) and returned.

A backup appears under its name complete or not at all.  The definition goes to a temporary file of the same
directory (created exclusively, mode 0600), is flushed to the disk, and only then gets its name, which never
replaces a file; the directory is flushed too.  A failure (a full file system) removes what was written, and
the guest is not defined (``_run/converge.py:Converger.define_one`` defines only after the backup).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import time
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError, SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.ownership import not_own, open_to_renames

__all__ = ["NAME_MAX", "backup_directory", "backup_name", "check_backup_dir", "write_backup"]

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
_CREATE, _CHECK, _WRITE, _NAME, _FLUSH = "create", "check", "write", "name", "flush"
# The mode of each directory a backup creates: the run's own, as the backups are (readable by their owner only).
_DIRECTORY_MODE = 0o700


class _Unsafe(Exception):
    """The backup directory, made or found at the backup, is not safe from other users (``_unsafe``'s reason)."""


def backup_directory(path: str) -> str:
    """The directory that backups of ``backup_dir`` ``path`` go to: absolute, ``.`` and ``..`` resolved by name.

    ``/srv/stray/../backups`` is ``/srv/backups``: the check, the directories created and the ``backup_file``
    returned all use this one path, so nothing is created under ``/srv/stray``.
    """
    return os.path.abspath(path)


def check_backup_dir(path: Any) -> None:
    """Refuse ``backup_dir`` (with ``backup: true``) unless its backups can be written and no other user can
    replace them; before anything is read or written, in check mode too.

    A ``SpecError`` naming the option, the path as given and what is wrong: a relative path, a file, a symlink to
    nothing, a directory that cannot be written or created, one that is not the run's own, or one under a
    directory that lets other users rename it away (``_unsafe``).
    """
    if not path:
        raise SpecError("backup_dir is empty: with backup true it must be an absolute path")
    if not os.path.isabs(path):
        # A relative path would land in the module's temporary working directory, deleted after the task.
        raise SpecError(f"backup_dir {path!r} is a relative path: with backup true it must be an absolute one")
    try:
        why = _unsafe(backup_directory(path))
    except OSError as error:
        # A directory on its way that changed while it was looked at.
        raise SpecError(f"backup_dir {path!r} cannot be checked: [Errno {error.errno}] {error.strerror}") from None
    if why is not None:
        raise SpecError(f"backup_dir {path!r}{why}")


def _unsafe(directory: str) -> str | None:
    """Why backups cannot go to ``directory`` (``backup_directory``'s), to follow its name in a message; or None.

    The directory itself when it exists, else the nearest existing one it would be created in: a directory
    (a symlink to one is followed, one to nothing refused: creating the directory would fail on it), writable.
    An existing backup directory must be the run's own (``not_own``); every directory above it, on its path as
    given and on the path its symlinks resolve to, must let no other user rename what it holds
    (``open_to_renames``): they could put a directory of theirs in the backup directory's place.
    """
    existing = directory
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    # Name the path that is in the way: the directory itself, or the one it would be created in.
    where = "" if existing == directory else f" cannot be created: {existing!r}"
    try:
        status = os.stat(existing)
    except OSError as error:
        if not os.path.islink(existing):
            return f"{where} cannot be read ([Errno {error.errno}] {error.strerror})"
        target = os.readlink(existing)
        if error.errno == errno.ENOENT:
            return f"{where} is a symlink to {target!r}, which does not exist: create that directory, or choose another"
        return f"{where} is a symlink to {target!r}, which cannot be followed ([Errno {error.errno}] {error.strerror})"
    if not stat.S_ISDIR(status.st_mode):
        return f"{where} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{where} is not writable"
    if existing == directory:
        problem = not_own(status)
        if problem is not None:
            return (
                f" is not this run's own ({problem}): another user could replace a backup in it before it is "
                "restored; give it to this user with no write permission for others (chown, chmod go-w), or choose "
                "another directory"
            )
    for holder in _holders(directory):
        try:
            problem = open_to_renames(os.stat(holder))
        except FileNotFoundError:
            # Not there yet: created for the backups, 0700.
            continue
        if problem is not None:
            return (
                f" is under {holder!r}, where other users can rename what it holds ({problem}): another user could "
                "put a directory of theirs in the backup directory's place and replace a backup before it is "
                "restored; choose another directory, or fix that one: it must belong to root or this user, and "
                "let other users write to it only with the sticky bit"
            )
    return None


def _check_directory(directory: str) -> None:
    """Raise ``_Unsafe`` when backups cannot go to ``directory`` (``_unsafe``)."""
    why = _unsafe(directory)
    if why is not None:
        raise _Unsafe(f"{directory}{why}")


def _holders(directory: str) -> list[str]:
    """The directories above ``directory``, nearest first: on its path as given and on the path it resolves to."""
    holders: list[str] = []
    for path in (directory, os.path.realpath(directory)):
        current = path
        while os.path.dirname(current) != current:
            current = os.path.dirname(current)
            if current not in holders:
                holders.append(current)
    return holders


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
    is readable by its owner only, and each directory this creates too (0700).  The directory is checked as
    ``check_backup_dir`` checks it, before anything is made and again once made: another user may have made a
    missing one first, or changed one since the run's check.  Any failure raises ``LibvirtOperationError`` naming
    the guest, the backup's path and the OS's error (or what is wrong with the directory), with nothing of the
    backup left behind.
    """
    directory = backup_directory(directory or ".")
    path = os.path.join(directory, backup_name(name, time.time_ns()))
    created = _missing_top(directory)
    step = _WRITE
    temporary: str | None = None
    linked = False
    try:
        data = xml.encode("utf-8")
        step = _CHECK
        _check_directory(directory)
        step = _CREATE
        _make_directories(directory, created)
        step = _CHECK
        _check_directory(directory)
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
        if not isinstance(error, (OSError, UnicodeError, _Unsafe)):
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
    """The outermost directory of ``directory``'s path that does not exist yet (the first one a backup makes)."""
    missing = None
    current = directory
    while not os.path.lexists(current) and os.path.dirname(current) != current:
        missing = current
        current = os.path.dirname(current)
    return missing


def _make_directories(directory: str, top: str | None) -> None:
    """Make ``directory`` and each missing one above it, from ``top`` down, each 0700.

    ``os.makedirs`` gives the mode to the last one only (the ones above get 0777 less the umask, 0755).
    """
    if top is None:
        return
    paths = [top]
    if directory != top:
        for part in os.path.relpath(directory, top).split(os.sep):
            paths.append(os.path.join(paths[-1], part))
    for each in paths:
        try:
            os.mkdir(each, _DIRECTORY_MODE)
        except FileExistsError:
            # Made meanwhile (another run): used if it is a directory that passes the check that follows.
            if not os.path.isdir(each):
                raise


def _to_flush(directory: str, created: str | None) -> list[str]:
    """``directory``, which holds the file's name, and the parent of every directory this run created."""
    flush = [directory]
    current = directory
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


def _reason(error: OSError | UnicodeError | _Unsafe, step: str, directory: str) -> str:
    """What failed, for the message: the OS's error, with its number, and the step when that is not the write."""
    if isinstance(error, _Unsafe):
        return str(error)
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
