# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Whether another user could replace what a run writes: the rules of the host lock and of the backups.

A run writes where only root and its own user can change things: the lock's directory and file
(``_run/lock.py``) and the backup directory (``_run/backup.py``) must be the run's own
(``not_own``), and no directory above a backup directory may let another user rename it away
(``open_to_renames``).
"""

from __future__ import annotations

import os
import stat

__all__ = ["not_own", "open_to_renames"]

# Group or other may write (create, remove, rename entries of a directory; change a file).
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def not_own(status: os.stat_result) -> str | None:
    """Why the file or directory of ``status`` is not this run's own, for a message; None when it is.

    Its own: it belongs to the run's user, and neither its group nor other users may write to it, so no other
    user can replace it or a file in it.  The sticky bit is not enough: it still lets them add files of their own,
    a lock file before the run makes it, a backup whose name sorts after the run's.
    """
    if status.st_uid != os.geteuid():
        return f"it belongs to uid {status.st_uid}, not to this run's uid {os.geteuid()}"
    if status.st_mode & _OTHERS_WRITE:
        return f"its mode {stat.S_IMODE(status.st_mode):04o} lets other users write to it"
    return None


def open_to_renames(status: os.stat_result) -> str | None:
    """Why another user could rename an entry of the directory of ``status`` away (and put theirs in its place).

    None when only root and the run's user can: the directory belongs to one of them, and one that other users may
    write to has the sticky bit (``/tmp``), which lets them rename only their own entries.
    """
    if status.st_uid not in (0, os.geteuid()):
        return f"it belongs to uid {status.st_uid}, neither root nor this run's uid {os.geteuid()}"
    if status.st_mode & _OTHERS_WRITE and not status.st_mode & stat.S_ISVTX:
        return f"its mode {stat.S_IMODE(status.st_mode):04o} lets other users write to it without the sticky bit"
    return None
