# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Backups of guest definitions, written before a define when the run is asked to."""

from __future__ import annotations

import os
import time

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError

__all__ = ["write_backup"]


def write_backup(directory: str | None, name: str, xml: str) -> str:
    """Save ``xml``, guest ``name``'s definition, in a new file of ``directory`` (default: here); its path.

    The name holds the time down to the nanosecond and the file is created exclusively: two runs never
    write over each other's backup.  The definition is read with its secrets (a ``<graphics>`` passwd,
    ``_libvirt.py:_DEFINITION_FLAGS``) so that defining the backup restores them: the file is readable by
    its owner only, and a directory this creates too.
    """
    directory = directory or "."
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, f"{name}.{time.strftime('%Y%m%dT%H%M%S')}.{time.time_ns() % 10**9}.xml")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
            handle.write(xml)
    except OSError as error:
        raise LibvirtOperationError(
            f"cannot save the backup of its definition in {directory}: {error}", guest=name
        ) from None
    return path
