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

What the installer owns under ``lib_dir``: the three package directories of the hook's library,
``ansible_collections/vnuma/libvirt/plugins/module_utils/{_core,_xml,_run}``, and the directories that lead
to them.  It refuses a ``lib_dir`` whose ``ansible_collections`` tree holds anything else (another
collection, a collection's roles or modules, a symbolic link): such a directory was given by mistake, and
the installer never replaces or removes what it did not write.  Files beside that tree are never read.

A run checks every path it writes before it writes anything (a directory where a file goes, a file where a
directory goes), and turns a write that still fails into a ``VnumaError`` naming the path and the system's
error, with what it wrote before it in ``details`` (``written``, ``changed``).  Once written, the hook
script is run as libvirtd runs it for a call it passes through; a script that does not exit 0 is removed
again, since libvirtd would fail every guest start with it.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import hashlib
import importlib.util
import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError
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
# What the installer owns under lib_dir: the package directories it writes (every file of hook_sources lies
# in one of them) and the directories that lead to them.  Anything else in the ansible_collections tree is
# someone else's, and the installer refuses the directory rather than replace or remove it.
_LIBRARY_PARTS = _MODULE_UTILS.split(".")
_LEADING = frozenset(os.path.join(*_LIBRARY_PARTS[:depth]) for depth in range(1, len(_LIBRARY_PARTS) + 1))
_OWNED = tuple(os.path.join(*_LIBRARY_PARTS, package) for package in ("_core", "_xml", "_run"))
# The kernel reads a script's "#!" line into a buffer of BINPRM_BUF_SIZE bytes: 256 since Linux 5.1, 128
# before.  A longer line is cut short (before 5.1) or the script does not run; 127 bytes and the newline fit
# both.
_SHEBANG_LIMIT = 127
# Once written, the script is run once as libvirtd runs it for a call the hook passes through (every guest
# start makes one): a script that cannot do that would fail every guest start.
_CHECK_ARGS = ("vnuma-libvirt-install-check", "prepare", "begin", "-")
_CHECK_XML = "<domain type='kvm'><name>vnuma-libvirt-install-check</name></domain>\n"
_CHECK_TIMEOUT = 30
# libvirtd runs its hooks with little more than this environment (its error messages show it).
_HOOK_ENV = {"LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


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


def _is_owned(relative: str) -> bool:
    """Whether ``relative`` (to lib_dir) lies in one of the package directories the installer writes."""
    return any(relative == owned or relative.startswith(owned + os.sep) for owned in _OWNED)


def _kind(path: str) -> str:
    """What is at ``path``, in words, for a message."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "missing"
    if stat.S_ISLNK(mode):
        return "a symbolic link" if os.path.exists(path) else "a symbolic link to nothing"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a file"
    return "a special file (FIFO, socket or device)"


def _os_problem(error: OSError) -> str:
    """The system's error in words, with its errno name: "Read-only file system (EROFS)"."""
    name = errno.errorcode.get(error.errno or 0)
    text = error.strerror or str(error)
    return f"{text} ({name})" if name else text


def _first_file(lib_dir: str, relative: str) -> str:
    """A foreign directory's first file (in name order) to name in a message, else the directory itself."""
    for root, dirs, files in os.walk(os.path.join(lib_dir, relative)):
        dirs.sort()
        if files:
            return os.path.relpath(os.path.join(root, min(files)), lib_dir)
    return relative


def _foreign(lib_dir: str, relative: str) -> SpecError:
    path = os.path.join(lib_dir, relative)
    if os.path.isdir(path) and not os.path.islink(path):
        relative = _first_file(lib_dir, relative)
    what = _kind(os.path.join(lib_dir, relative))
    return SpecError(
        f"lib_dir {lib_dir} holds {relative} ({what}), which the hook's installer did not write: under "
        f"{_TOP} it writes only {os.path.dirname(_OWNED[0])}/{{_core,_xml,_run}}, and it never replaces or "
        "removes what it did not write; give lib_dir a directory of its own (default "
        f"{DEFAULT_LIB_DIR}). Nothing was written or removed"
    )


def _library_files(lib_dir: str) -> dict[str, bytes]:
    """The hook's files under ``lib_dir`` now (relative path -> content).

    Only the ``ansible_collections`` tree the installer writes is read; whatever else a user keeps beside
    it in ``lib_dir`` is never read, replaced or removed.  A tree that holds anything but the hook's
    package directories, their files and the directories that lead to them (a shared directory given by
    mistake: another collection, a whole collection's copy) is refused, naming the first foreign entry.
    """
    top = os.path.join(lib_dir, _TOP)
    if not os.path.lexists(top):
        return {}
    if os.path.islink(top) or not os.path.isdir(top):
        raise _foreign(lib_dir, _TOP)

    def unreadable(error: OSError) -> None:
        raise VnumaError(f"lib_dir {lib_dir}: cannot read {error.filename}: {_os_problem(error)}")

    found: dict[str, bytes] = {}
    for root, dirs, files in os.walk(top, onerror=unreadable):
        here = os.path.relpath(root, lib_dir)
        dirs.sort()
        for name in list(dirs):
            relative = os.path.join(here, name)
            if os.path.islink(os.path.join(root, name)):
                raise _foreign(lib_dir, relative)
            if name == _CACHE_DIR and _is_owned(here):
                # The interpreter's bytecode cache is not the installer's (the module docstring).
                dirs.remove(name)
            elif not (_is_owned(relative) or relative in _LEADING):
                raise _foreign(lib_dir, relative)
        for name in sorted(files):
            relative = os.path.join(here, name)
            path = os.path.join(root, name)
            try:
                regular = stat.S_ISREG(os.lstat(path).st_mode)
                if _is_owned(here) and regular:
                    with open(path, "rb") as handle:
                        found[relative] = handle.read()
            except OSError as error:
                unreadable(error)
            if relative not in found:
                raise _foreign(lib_dir, relative)
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


@contextlib.contextmanager
def _writing(action: str, path: str) -> Iterator[None]:
    """A failed write (or removal) of ``path`` as the collection's error, naming the path and the system's error."""
    try:
        yield
    except OSError as error:
        raise VnumaError(f"cannot {action} {path}: {_os_problem(error)}") from None


def _rmdir_if_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            raise


def _remove_library(lib_dir: str, files: Mapping[str, bytes], written: list[str]) -> None:
    """Remove the hook's files (``files``, as ``_library_files`` found them), their bytecode, then the
    directories that are left empty, up to ``lib_dir`` itself.  Nothing else is there: ``_library_files``
    refused the tree otherwise."""
    for relative in sorted(files):
        path = os.path.join(lib_dir, relative)
        with _writing("remove the hook's library file", path):
            os.unlink(path)
        written.append(f"library file {relative} removed")
        _drop_bytecode(path)
    top = os.path.join(lib_dir, _TOP)
    if os.path.isdir(top):
        for root, _dirs, names in os.walk(top, topdown=False):
            if os.path.basename(root) == _CACHE_DIR and _is_owned(os.path.relpath(os.path.dirname(root), lib_dir)):
                # Python's bytecode of the removed files (the interpreter may have left other tags).
                for name in names:
                    with _writing("remove", os.path.join(root, name)), contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(root, name))
            with _writing("remove the hook's library directory", root):
                _rmdir_if_empty(root)
    with _writing("remove lib_dir", lib_dir):
        _rmdir_if_empty(lib_dir)


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


def _path_option(params: Mapping[str, Any], option: str, default: str) -> str:
    """``option``'s absolute path, ``default`` when it is not given.

    An empty value is refused, not taken for the default: an empty templated variable must not install into, or
    with ``state: absent`` remove from, the system's own directories.
    """
    value = params.get(option)
    if value == "":
        raise SpecError(f"{option} is empty: give an absolute path, or leave the option out for {default}")
    return _check_path(option, default if value is None else value)


def _check_path(option: str, value: Any) -> str:
    if not isinstance(value, str) or not os.path.isabs(value) or "\n" in value or "\0" in value:
        raise SpecError(f"{option} {value!r} is not an absolute path")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(f"{option} {value!r} is not an absolute path in UTF-8") from None
    return os.path.normpath(value)


def _check_interpreter_path(interpreter: str) -> None:
    """The interpreter must fit the hook script's ``#!`` line as the kernel reads it, or the script cannot run.

    libvirtd would then fail every guest start ("Hook script execution failed"), not only the moves.
    """
    if any(character.isspace() for character in interpreter):
        raise SpecError(
            f"interpreter {interpreter!r} has whitespace in its path: the kernel ends the interpreter of a "
            "script's #! line at the first space or tab, so the hook script could not run and libvirtd would "
            "fail every guest start; give interpreter a path without whitespace (a symbolic link to its "
            "directory will do)"
        )
    size = len(f"#!{interpreter} -I".encode())
    if size > _SHEBANG_LIMIT:
        raise SpecError(
            f"interpreter {interpreter} makes the hook script's #! line {size} bytes long, above the limit of "
            f"{_SHEBANG_LIMIT}: the kernel reads at most 128 bytes of that line before Linux 5.1 (256 since), "
            "and a script whose interpreter does not fit does not run; give interpreter a shorter path (a "
            "symbolic link to its directory will do)"
        )


def _check_directory(option: str, value: str, path: str) -> None:
    """``path`` is a directory, or can be made one: the nearest of it and its parents that exists is one."""
    probe = path
    while not os.path.isdir(probe):
        if os.path.lexists(probe):
            where = "" if probe == value else f": {probe}"
            raise SpecError(
                f"{option} {value}{where} is {_kind(probe)}, not a directory: the module writes into it, and "
                "will not replace or remove what is there"
            )
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent


def _check_file(option: str, value: str, path: str, what: str) -> None:
    """``path`` is a file the module may replace or remove: missing, a file, or a symbolic link to one."""
    _check_directory(option, value, os.path.dirname(path))
    if os.path.exists(path) and not os.path.isfile(path):
        where = "" if path == value else f": {what} {path}"
        raise SpecError(
            f"{option} {value}{where} is {_kind(path)}, not a file: the module replaces or removes that "
            "file, and will not touch what is there; remove it or choose another path"
        )


def _check_layout(hooks_dir: str, hook_path: str, lib_dir: str, cache_path: str) -> None:
    """Refuse, before anything is written or removed, a non-directory where a directory goes and the reverse."""
    _check_directory("hooks_dir", hooks_dir, hooks_dir)
    _check_file("hooks_dir", hooks_dir, hook_path, "the hook script's path")
    _check_directory("lib_dir", lib_dir, lib_dir)
    _check_file("cache_path", cache_path, cache_path, "the topology cache")


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


def _run_installed(hook_path: str) -> str | None:
    """Run the installed script as libvirtd runs it for a call the hook passes through; None, or why it failed."""
    call = " ".join(_CHECK_ARGS)
    try:
        run = subprocess.run(
            [hook_path, *_CHECK_ARGS],
            input=_CHECK_XML,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=_HOOK_ENV,
            cwd="/",
            timeout=_CHECK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"the call '{call}' did not end within {_CHECK_TIMEOUT} seconds"
    except OSError as error:
        return f"it cannot be executed: {_os_problem(error)}"
    if run.returncode == 0:
        return None
    last = (run.stderr.strip().splitlines() or ["no output"])[-1]
    status = f"exit status {run.returncode}" if run.returncode > 0 else f"signal {-run.returncode}"
    return f"the call '{call}' ended with {status} where it passes through with 0: {last}"


def _check_installed(hook_path: str, written: list[str]) -> None:
    """Leave no hook script libvirtd cannot run: one that fails a pass-through call is removed, and the run fails."""
    problem = _run_installed(hook_path)
    if problem is None:
        return
    try:
        os.unlink(hook_path)
    except OSError as error:
        outcome = f"but it could not be removed ({_os_problem(error)}): remove it before libvirtd runs it"
    else:
        written.append(f"hook script {hook_path} removed")
        outcome = "so it was removed again (the library and the topology cache stay)"
    raise VnumaError(
        f"the hook script {hook_path} does not run: {problem}; libvirtd would fail every guest start with it, {outcome}"
    )


def _written_summary(written: list[str], lib_dir: str) -> str:
    """``written`` for a message, in order: the library's files counted where they come, the rest as they are."""
    parts: list[str] = []
    counts = {"": 0, " removed": 0}
    for entry in written:
        if entry.startswith("library file "):
            if not any(counts.values()):
                parts.append("")  # where the library's count goes
            counts[" removed" if entry.endswith(" removed") else ""] += 1
        else:
            parts.append(entry)
    library = [f"{count} library files under {lib_dir}{suffix}" for suffix, count in counts.items() if count]
    return "; ".join(", ".join(library) if part == "" else part for part in parts)


def install_hook(params: Mapping[str, Any], check_mode: bool) -> dict[str, Any]:
    """Make the hook ``present`` or ``absent`` (``state``); the module's result dict.

    A failure after the first write is raised with ``details`` the module hands back: ``changed`` and
    ``written``, the list of what was written (or removed) before it, also ending the message.
    """
    hooks_dir = _path_option(params, "hooks_dir", DEFAULT_HOOKS_DIR)
    lib_dir = _path_option(params, "lib_dir", DEFAULT_LIB_DIR)
    cache_path = _path_option(params, "cache_path", DEFAULT_CACHE_PATH)
    state_dir = _path_option(params, "state_dir", _hook.DEFAULT_STATE_DIR)
    interpreter = _path_option(params, "interpreter", sys.executable)
    hook_path = os.path.join(hooks_dir, "qemu.d", HOOK_FILE)
    state = params.get("state") or "present"
    if state not in STATES:
        raise SpecError(f"state {state!r} is not one of {', '.join(STATES)}")
    if state == "present":
        _check_interpreter_path(interpreter)
    _check_layout(hooks_dir, hook_path, lib_dir, cache_path)

    before_files = _library_files(lib_dir)
    before_script = read_file(hook_path)
    others = _other_hooks(hooks_dir)
    written: list[str] = []
    result: dict[str, Any] = {
        "hook_path": hook_path,
        "lib_dir": lib_dir,
        "cache_path": cache_path,
        "other_hooks": others,
        "written": written,
    }
    try:
        if state == "absent":
            after_files: dict[str, bytes] = {}
            script = b""
            _remove(result, before_script is not None, before_files, check_mode)
        else:
            after_files = {path: text.encode() for path, text in hook_sources().items()}
            script = hook_script(interpreter, lib_dir, cache_path, state_dir).encode()
            _install(result, interpreter, params, (before_script, script), (before_files, after_files), check_mode)
    except VnumaError as error:
        if written:
            error.message += f" (written before the failure: {_written_summary(written, lib_dir)})"
        error.details.update(changed=bool(written), written=list(written))
        raise
    result["files"] = {path: _digest(data) for path, data in sorted(after_files.items())}
    result["diff"] = {
        "before_header": hook_path,
        "after_header": hook_path,
        "before": _listing(before_script, before_files),
        "after": _listing(script or None, after_files),
    }
    return result


def _remove(result: dict[str, Any], had_script: bool, files: Mapping[str, bytes], check_mode: bool) -> None:
    """``state: absent``: the script first (libvirtd stops calling it), then the library, then the cache."""
    hook_path, lib_dir, cache_path, written = (
        result["hook_path"],
        result["lib_dir"],
        result["cache_path"],
        result["written"],
    )
    had_cache = os.path.exists(cache_path)
    changed = had_script or bool(files) or had_cache
    if changed and not check_mode:
        if had_script:
            with _writing("remove the hook script", hook_path), contextlib.suppress(FileNotFoundError):
                os.unlink(hook_path)
            written.append(f"hook script {hook_path} removed")
        _remove_library(lib_dir, files, written)
        if had_cache:
            with _writing("remove the topology cache", cache_path), contextlib.suppress(FileNotFoundError):
                os.unlink(cache_path)
            written.append(f"topology cache {cache_path} removed")
    result.update(changed=changed, cache_changed=had_cache, reload_required=False)


def _install(
    result: dict[str, Any],
    interpreter: str,
    params: Mapping[str, Any],
    scripts: tuple[bytes | None, bytes],
    libraries: tuple[Mapping[str, bytes], Mapping[str, bytes]],
    check_mode: bool,
) -> None:
    """``state: present``: the cache, the library (before the script that imports it), the script, then its check."""
    hook_path, lib_dir, cache_path, written = (
        result["hook_path"],
        result["lib_dir"],
        result["cache_path"],
        result["written"],
    )
    (before_script, script), (before_files, after_files) = scripts, libraries
    stray = sorted(path for path in after_files if not _is_owned(os.path.dirname(path)))
    if stray:  # the sources and _OWNED disagree: never write outside what the installer owns
        raise SpecError(f"the hook's source {stray[0]} lies outside {', '.join(_OWNED)}")
    _check_interpreter(interpreter)
    capabilities_xml = host_capabilities_xml(params)
    executable = before_script is not None and os.access(hook_path, os.X_OK)
    script_changed = before_script != script or not executable
    files_changed = before_files != after_files
    with _writing("write the topology cache", cache_path):
        cache_changed = write_cache(cache_path, capabilities_xml, check_mode)
    if not check_mode:
        if cache_changed:
            written.append(f"topology cache {cache_path}")
        # Write the library before the script that imports it, and drop files no longer part of it.
        for path in sorted(set(before_files) - set(after_files)):
            with _writing("remove the hook's library file", os.path.join(lib_dir, path)):
                os.unlink(os.path.join(lib_dir, path))
            written.append(f"library file {path} removed")
            _drop_bytecode(os.path.join(lib_dir, path))
        for path, data in after_files.items():
            if before_files.get(path) != data:
                with _writing("write the hook's library file", os.path.join(lib_dir, path)):
                    write_file(os.path.join(lib_dir, path), data, 0o644)
                written.append(f"library file {path}")
                # Python checks a cache against its source's mtime and size: a file rewritten within
                # the same second at the same size would keep its stale bytecode.
                _drop_bytecode(os.path.join(lib_dir, path))
        if script_changed:
            with _writing("write the hook script", hook_path):
                write_file(hook_path, script, 0o755)
            written.append(f"hook script {hook_path}")
        _check_installed(hook_path, written)
    result.update(
        changed=script_changed or files_changed or cache_changed,
        cache_changed=cache_changed,
        # An executable qemu hook already there means libvirtd already calls qemu.d's scripts.
        reload_required=not executable and not result["other_hooks"],
    )


def _listing(script: bytes | None, files: Mapping[str, bytes]) -> str:
    """The hook script's text and one line per library file with its digest, for the diff."""
    lines = [script.decode(errors="replace")] if script else []
    lines += [f"library {path} sha256:{_digest(data)}" for path, data in sorted(files.items())]
    return "\n".join(lines) + ("\n" if lines else "")
