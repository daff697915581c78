# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bytecode caches for what every module run compiles anew, in the lab hypervisor's Python only.

Ansible sends each module run its module and module_utils as a zip (AnsiballZ), and Python's zipimport
compiles every imported source anew: it neither reads nor writes a bytecode cache for a zip.  Under the
lab's TCG that compile is seconds per run, the same sources every time (docs/lab.md, "Module runs in the
lab").  This keeps the bytecode of each source, by a hash of its text, under CACHE for the lab's life (the
root file system is a throw-away overlay): the code that runs is what compile() makes of the same text,
with the file name of this run.  Loaded by vnuma_lab_pycache.pth at every interpreter start.

The same holds for the methods dataclasses writes for each class (``__init__``, ``__repr__``, ``__eq__``,
...): CPython 3.11's ``dataclasses._create_fn`` compiles generated text with ``exec`` at every class
creation, 559 texts for vnuma_domain's module_utils and 68 for ansible-core's ``basic``: half a second of
a 4.5 s vnuma_info run under the lab's TCG on a fast day.  Their code, by text, is kept in one file
(GENERATED): read at the run's first dataclass, written back at exit when the run compiled a text the file
did not hold.
"""

from __future__ import annotations

import atexit
import marshal
import os
import sys
import types
import zipimport

# Every interpreter start in the lab imports this file: what it imports at the top is only what a start
# loads anyway (typing and collections.abc cost 0.15 s of a 0.37 s `python3 -c pass` under the lab's TCG).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

CACHE = "/var/cache/vnuma-lab-pycache"
# The dataclasses' generated code, a marshalled {text: code} dict, under CACHE.
GENERATED = f"dataclasses.{sys.implementation.cache_tag}"

# zipimport's one compile step (CPython 3.11, the image's Python): (path, source bytes) -> code.
_compile: Callable[[str, bytes], types.CodeType] | None = getattr(zipimport, "_compile_source", None)


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` and the code objects it holds with this run's file name (tracebacks name the real zip)."""
    constants = tuple(_renamed(item, filename) if isinstance(item, types.CodeType) else item for item in code.co_consts)
    return code.replace(co_filename=filename, co_consts=constants)


def _cached_compile(pathname: str, source: bytes) -> types.CodeType:
    assert _compile is not None
    import hashlib  # here, not at the top: it loads OpenSSL's library, which most starts never need

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
    _write(path, code)
    return code


def _write(path: str, value: types.CodeType | dict[str, types.CodeType]) -> None:
    """``value`` marshalled to ``path`` through a file of this process, so that no reader sees half of it."""
    try:
        os.makedirs(CACHE, mode=0o700, exist_ok=True)
        partial = f"{path}.{os.getpid()}"
        with open(partial, "wb") as handle:
            marshal.dump(value, handle)
        os.replace(partial, path)
    except OSError:
        pass  # a full or read-only disk only costs the next run its compile


def _read_generated() -> dict[str, types.CodeType]:
    try:
        with open(os.path.join(CACHE, GENERATED), "rb") as handle:
            known = marshal.load(handle)
    except (OSError, EOFError, ValueError, TypeError):
        return {}  # not written yet, or torn: every text is compiled as dataclasses would
    if not isinstance(known, dict):
        return {}
    return {text: code for text, code in known.items() if isinstance(text, str) and isinstance(code, types.CodeType)}


class GeneratedCode:
    """``exec`` for the dataclasses module: each generated text compiled once for the lab's life."""

    def __init__(self) -> None:
        self._known: dict[str, types.CodeType] | None = None
        self._new: dict[str, types.CodeType] = {}

    def exec(self, source: Any, scope: Any = None, namespace: Any = None) -> None:
        if self._known is None:
            self._known = _read_generated()
        code = self._known.get(source) if isinstance(source, str) else None
        if code is None:
            code = compile(source, "<string>", "exec")
            if isinstance(source, str):
                if not self._new:
                    atexit.register(self.save)
                self._known[source] = self._new[source] = code
        exec(code, scope, namespace)  # dataclasses' own exec, on its own generated text

    def save(self) -> None:
        """Adds this run's new texts to the file, keeping what runs beside this one wrote meanwhile."""
        if self._new:
            known = _read_generated()
            known.update(self._new)
            _write(os.path.join(CACHE, GENERATED), known)
            self._new = {}


def give_dataclasses(module: types.ModuleType, generated: GeneratedCode) -> None:
    """Makes ``module`` (dataclasses) call ``generated.exec``: its name ``exec`` is looked up in its globals first."""
    module.exec = generated.exec  # type: ignore[attr-defined]


class DataclassesFinder:
    """A meta path finder for dataclasses alone, which gives the module the cached ``exec`` as it loads.

    Importing dataclasses at every interpreter start would cost the runs that never use it its imports.
    """

    def __init__(self, generated: GeneratedCode) -> None:
        self.generated = generated

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "dataclasses":
            return None
        sys.meta_path.remove(self)
        import importlib.machinery  # only when dataclasses is imported

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module
        generated = self.generated

        def exec_module(module: types.ModuleType) -> None:
            load(module)
            give_dataclasses(module, generated)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if _compile is not None:
    zipimport._compile_source = _cached_compile  # type: ignore[attr-defined]

_GENERATED = GeneratedCode()
if "dataclasses" in sys.modules:
    give_dataclasses(sys.modules["dataclasses"], _GENERATED)
else:
    sys.meta_path.insert(0, DataclassesFinder(_GENERATED))
