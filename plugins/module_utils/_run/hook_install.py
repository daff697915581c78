# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Installing and removing the migration hook on a hypervisor: the ``vnuma_hook`` module's work.

libvirtd runs hooks outside Ansible, so the hook cannot import the collection from wherever Ansible
keeps it.  The installer copies the hook's code, ``_run/hook.py`` and every collection file it imports
(the pure core, the XML layer, never ``_libvirt.py``), into a library directory of its own, under the
same package names, and writes a small script into ``<hooks_dir>/qemu.d/`` that puts that directory
first on ``sys.path`` and calls ``hook.main``.  The script runs under the interpreter that ran the
module (``-I``: no user site, no ``PYTHON*`` variables), which has lxml, since the module needs it too.

libvirtd looks for hooks when it starts and when it gets SIGHUP.  ``reload_required`` says when a
hook was added that it has not seen yet: no other qemu hook was there before.

The hook's Python writes its bytecode cache (``__pycache__/*.pyc``) beside the copied sources the first
time it plans a guest, and reads it on later calls (a planning call starts about 0.1 s sooner).  The cache
is Python's, not the installer's: it is not part of the library the installer compares and replaces, so a
second run stays unchanged.  The cache of a file the installer replaces or removes goes with it.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import DEFAULT_URI, LibvirtHost

# Imported for the installer's sake: Ansible packs what the module imports, and the hook's sources are
# copied from that package.
from ansible_collections.vnuma.libvirt.plugins.module_utils._run import hook as _hook
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.topology_cache import (
    DEFAULT_CACHE_PATH,
    is_local_uri,
    read_file,
    write_cache,
    write_file,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import read_host_capabilities

__all__ = [
    "DEFAULT_HOOKS_DIR",
    "DEFAULT_LIB_DIR",
    "HOOK_FILE",
    "hook_script",
    "hook_sources",
    "STATES",
    "host_capabilities_xml",
    "install_hook",
]

DEFAULT_HOOKS_DIR = "/etc/libvirt/hooks"
DEFAULT_LIB_DIR = "/usr/local/lib/vnuma-libvirt"
# In <hooks_dir>/qemu.d/; libvirt runs those in name order after <hooks_dir>/qemu, each fed the
# previous one's output.
HOOK_FILE = "vnuma-libvirt"
COLLECTION = "ansible_collections.vnuma.libvirt"
# The one directory the installer writes under lib_dir: the collection's package tree.
_TOP = COLLECTION.split(".", 1)[0]
_MODULE_UTILS = f"{COLLECTION}.plugins.module_utils"
_ENTRY = _hook.__name__
# What the hook may reach: it runs inside libvirtd's call and must never open a connection, so the
# pure core, the XML layer and its own files of the orchestration package, never _libvirt.py.
_ALLOWED = (f"{_MODULE_UTILS}._core", f"{_MODULE_UTILS}._xml")
_HOOK_MODULES = frozenset(f"{_MODULE_UTILS}._run{suffix}" for suffix in ("", ".hook", ".hook_plan", ".topology_cache"))
STATES = ("present", "absent")
_INTERPRETER_TIMEOUT = 60
# Python's bytecode cache beside the sources (PEP 3147): written by the hook's interpreter, never by the installer.
_CACHE_DIR = "__pycache__"
_STAMP = "# Written by vnuma.libvirt's vnuma_hook module: do not edit, run the module again."


def _source(name: str) -> tuple[str, bool]:
    """The source of collection module ``name`` and whether it is a package, from wherever it was imported.

    Through the import system's loader, so that it works as well from a directory as from the zip file
    Ansible runs modules from.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot find the collection's module {name} to install the hook")
    get_source = getattr(spec.loader, "get_source", None)
    text = get_source(name) if get_source is not None else None
    if text is None:
        raise SpecError(f"cannot read the source of {name} to install the hook")
    # Ansible's collection loader (ansible-test units, a controller-side import) gives bytes, not str.
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return text, spec.submodule_search_locations is not None


def _collection_imports(tree: ast.Module) -> set[str]:
    """The collection's modules (and names in them) that a file imports; the collection imports absolutely."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # ``from package import module`` imports a module too.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith(COLLECTION + ".")}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False  # ``from module import CONSTANT``: a name in a module, not a module


def hook_sources() -> dict[str, str]:
    """Relative path -> source of the hook's entry module and every file of the collection it imports.

    Refuses an import outside the pure core, the XML layer and the hook's own files: the hook must
    never reach libvirt.
    """
    sources: dict[str, str] = {}
    todo = [_ENTRY]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or not _is_module(name):
            continue
        seen.add(name)
        if name not in _HOOK_MODULES and not name.startswith(_ALLOWED):
            raise SpecError(f"the hook would import {name}: it may use only the pure core and the XML layer")
        text, is_package = _source(name)
        parts = name.split(".")
        sources[os.path.join(*parts, "__init__.py") if is_package else os.path.join(*parts) + ".py"] = text
        todo.extend(_collection_imports(ast.parse(text)))
        # Python imports every package above a module first; the namespace packages down to
        # plugins.module_utils have no file.
        parent = name.rpartition(".")[0]
        if parent != _MODULE_UTILS:
            todo.append(parent)
    return dict(sorted(sources.items()))


def hook_script(interpreter: str, lib_dir: str, cache_path: str, state_dir: str) -> str:
    """The executable libvirtd runs: the library directory first on ``sys.path``, then ``hook.main``."""
    return (
        f"#!{interpreter} -I\n"
        f"{_STAMP}\n"
        "# libvirt qemu hook: rewrites the host-side NUMA bindings of guests that move here (migration, restore).\n"
        "# See the vnuma.libvirt collection's docs/migration.md.\n"
        "import sys\n\n"
        f"sys.path.insert(0, {lib_dir!r})\n"
        f"from {_ENTRY} import main  # noqa: E402\n\n"
        f"sys.exit(main(cache_path={cache_path!r}, state_dir={state_dir!r}))\n"
    )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _library_files(lib_dir: str) -> dict[str, bytes]:
    """The hook's files under ``lib_dir`` now (relative path -> content).

    Only the ``ansible_collections`` tree the installer writes counts: whatever else a user keeps in
    ``lib_dir`` (a shared directory given by mistake) is never read, replaced or removed.
    """
    found: dict[str, bytes] = {}
    for root, dirs, files in os.walk(os.path.join(lib_dir, _TOP)):
        # The interpreter's bytecode cache is not the installer's (the module docstring).
        dirs[:] = [name for name in dirs if name != _CACHE_DIR]
        for name in files:
            path = os.path.join(root, name)
            data = read_file(path)
            if data is not None:
                found[os.path.relpath(path, lib_dir)] = data
    return found


def _drop_bytecode(path: str) -> None:
    """Remove the bytecode Python cached for the source ``path`` (``__pycache__/<name>.<tag>.pyc``)."""
    directory, name = os.path.split(path)
    stem = os.path.splitext(name)[0] + "."
    cache = os.path.join(directory, _CACHE_DIR)
    with contextlib.suppress(OSError):
        for entry in os.listdir(cache):
            if entry.startswith(stem) and entry.endswith(".pyc"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(cache, entry))


def _remove_library(lib_dir: str) -> None:
    """Remove the installer's tree, then ``lib_dir`` itself when nothing else is left in it."""
    shutil.rmtree(os.path.join(lib_dir, _TOP), ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(lib_dir)


def _other_hooks(hooks_dir: str) -> list[str]:
    """The qemu hooks other than ours that libvirtd would run (executable files)."""
    candidates = [os.path.join(hooks_dir, "qemu")]
    with contextlib.suppress(OSError):
        candidates += [
            os.path.join(hooks_dir, "qemu.d", name)
            for name in sorted(os.listdir(os.path.join(hooks_dir, "qemu.d")))
            if name != HOOK_FILE
        ]
    return [path for path in candidates if os.path.isfile(path) and os.access(path, os.X_OK)]


def _check_path(option: str, value: Any) -> str:
    if not isinstance(value, str) or not os.path.isabs(value) or "\n" in value:
        raise SpecError(f"{option} {value!r} is not an absolute path")
    return os.path.normpath(value)


def _check_interpreter(interpreter: str) -> None:
    """The hook's interpreter must run and import lxml, or every move of a guest with a spec would fail."""
    try:
        run = subprocess.run(
            [interpreter, "-I", "-c", "import lxml.etree"],
            capture_output=True,
            text=True,
            timeout=_INTERPRETER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SpecError(f"interpreter {interpreter}: cannot run it: {error}") from None
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise SpecError(f"interpreter {interpreter} cannot import lxml, which the hook needs: {last}")


def host_capabilities_xml(params: Mapping[str, Any]) -> str | bytes:
    """What the cache gets: ``host_capabilities`` when given, else the capabilities of the daemon on this machine."""
    given = params.get("host_capabilities")
    if given:
        return read_host_capabilities(given)
    uri = params.get("uri") or DEFAULT_URI
    if not is_local_uri(uri):
        raise SpecError(
            f"uri {uri!r} is not a daemon on this machine: the hook and its topology cache live on the "
            "hypervisor, so run the module there with a local URI (qemu:///system)"
        )
    with LibvirtHost.from_params(params) as host:
        return host.capabilities_xml()


def install_hook(params: Mapping[str, Any], check_mode: bool) -> dict[str, Any]:
    """Make the hook ``present`` or ``absent`` (``state``); the module's result dict."""
    hooks_dir = _check_path("hooks_dir", params.get("hooks_dir") or DEFAULT_HOOKS_DIR)
    lib_dir = _check_path("lib_dir", params.get("lib_dir") or DEFAULT_LIB_DIR)
    cache_path = _check_path("cache_path", params.get("cache_path") or DEFAULT_CACHE_PATH)
    state_dir = _check_path("state_dir", params.get("state_dir") or _hook.DEFAULT_STATE_DIR)
    interpreter = _check_path("interpreter", params.get("interpreter") or sys.executable)
    hook_path = os.path.join(hooks_dir, "qemu.d", HOOK_FILE)
    state = params.get("state") or "present"
    if state not in STATES:
        raise SpecError(f"state {state!r} is not one of {', '.join(STATES)}")

    before_files = _library_files(lib_dir)
    before_script = read_file(hook_path)
    others = _other_hooks(hooks_dir)
    result: dict[str, Any] = {
        "hook_path": hook_path,
        "lib_dir": lib_dir,
        "cache_path": cache_path,
        "other_hooks": others,
    }
    if state == "absent":
        had_cache = os.path.exists(cache_path)
        changed = before_script is not None or bool(before_files) or had_cache
        if changed and not check_mode:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(hook_path)
            _remove_library(lib_dir)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(cache_path)
        after_files: dict[str, bytes] = {}
        script = b""
        result.update(changed=changed, cache_changed=had_cache, reload_required=False)
    else:
        _check_interpreter(interpreter)
        capabilities_xml = host_capabilities_xml(params)
        after_files = {path: text.encode() for path, text in hook_sources().items()}
        script = hook_script(interpreter, lib_dir, cache_path, state_dir).encode()
        executable = before_script is not None and os.access(hook_path, os.X_OK)
        script_changed = before_script != script or not executable
        files_changed = before_files != after_files
        cache_changed = write_cache(cache_path, capabilities_xml, check_mode)
        if not check_mode:
            if files_changed:
                # Write the library before the script that imports it, and drop files no longer part of it.
                for path in set(before_files) - set(after_files):
                    os.unlink(os.path.join(lib_dir, path))
                    _drop_bytecode(os.path.join(lib_dir, path))
                for path, data in after_files.items():
                    if before_files.get(path) != data:
                        write_file(os.path.join(lib_dir, path), data, 0o644)
                        # Python checks a cache against its source's mtime and size: a file rewritten within
                        # the same second at the same size would keep its stale bytecode.
                        _drop_bytecode(os.path.join(lib_dir, path))
            if script_changed:
                write_file(hook_path, script, 0o755)
        result.update(
            changed=script_changed or files_changed or cache_changed,
            cache_changed=cache_changed,
            # An executable qemu hook already there means libvirtd already calls qemu.d's scripts.
            reload_required=not executable and not others,
        )
    result["files"] = {path: _digest(data) for path, data in sorted(after_files.items())}
    result["diff"] = {
        "before_header": hook_path,
        "after_header": hook_path,
        "before": _listing(before_script, before_files),
        "after": _listing(script or None, after_files),
    }
    return result


def _listing(script: bytes | None, files: Mapping[str, bytes]) -> str:
    """The hook script's text and one line per library file with its digest, for the diff."""
    lines = [script.decode(errors="replace")] if script else []
    lines += [f"library {path} sha256:{_digest(data)}" for path, data in sorted(files.items())]
    return "\n".join(lines) + ("\n" if lines else "")
