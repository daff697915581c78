# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A bytecode cache for code imported from zip archives, in the lab hypervisor's Python only.

Ansible sends each module run its module and module_utils as a zip (AnsiballZ), and Python's zipimport
compiles every imported source anew: it neither reads nor writes a bytecode cache for a zip.  Under the
lab's TCG that compile is seconds per run, the same sources every time (docs/lab.md, "Module runs in the
lab").  This keeps the bytecode of each source, by a hash of its text, under CACHE for the lab's life (the
root file system is a throw-away overlay): the code that runs is what compile() makes of the same text,
with the file name of this run.  Loaded by vnuma_lab_pycache.pth at every interpreter start.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import types
import zipimport
from collections.abc import Callable

CACHE = "/var/cache/vnuma-lab-pycache"

# zipimport's one compile step (CPython 3.11, the image's Python): (path, source bytes) -> code.
_compile: Callable[[str, bytes], types.CodeType] | None = getattr(zipimport, "_compile_source", None)


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` and the code objects it holds with this run's file name (tracebacks name the real zip)."""
    constants = tuple(_renamed(item, filename) if isinstance(item, types.CodeType) else item for item in code.co_consts)
    return code.replace(co_filename=filename, co_consts=constants)


def _cached_compile(pathname: str, source: bytes) -> types.CodeType:
    assert _compile is not None
    key = hashlib.sha256(source + f"\0{sys.flags.optimize}".encode()).hexdigest()
    path = os.path.join(CACHE, f"{key}.{sys.implementation.cache_tag}")
    try:
        with open(path, "rb") as handle:
            code = marshal.load(handle)
        if isinstance(code, types.CodeType):
            return _renamed(code, pathname)
    except (OSError, EOFError, ValueError, TypeError):
        pass  # not cached yet, or a torn write: compile as zipimport would
    code = _compile(pathname, source)
    try:
        os.makedirs(CACHE, mode=0o700, exist_ok=True)
        partial = f"{path}.{os.getpid()}"
        with open(partial, "wb") as handle:
            marshal.dump(code, handle)
        os.replace(partial, path)
    except OSError:
        pass  # a full or read-only disk only costs the next run its compile
    return code


if _compile is not None:
    zipimport._compile_source = _cached_compile  # type: ignore[attr-defined]
