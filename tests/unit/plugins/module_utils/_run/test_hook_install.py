# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The hook's installer (_run/hook_install.py:install_hook) where the file system is not as it expects.

Everything is installed into temporary directories, never /etc/libvirt/hooks.  Three rules:

- a ``lib_dir`` whose ``ansible_collections`` tree holds anything the installer did not write (another
  collection, a collection's roles, a symbolic link) is refused before anything is written or removed;
- the interpreter must fit the script's ``#!`` line as the kernel reads it, and the written script is run
  once as libvirtd runs it: one that does not pass a call through is removed again;
- a directory where a file goes (or the reverse) is refused before anything is written, and a write that
  fails later is the collection's error, naming the path and listing what was written before it.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._run import hook_install
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.hook_install import (
    HOOK_FILE,
    hook_sources,
    install_hook,
)
from ansible_collections.vnuma.libvirt.tests.support.hook_paths import hook_params

LIBRARY = "ansible_collections/vnuma/libvirt/plugins/module_utils"
HOOK_PY = f"{LIBRARY}/_run/hook.py"


def _snapshot(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under ``root``: files with their bytes, symbolic links with their target, directories."""
    found: dict[str, tuple[str, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = ("link", os.readlink(path))
        elif path.is_dir():
            found[name] = ("dir", b"")
        else:
            found[name] = ("file", path.read_bytes())
    return found


def _hook(tmp_path: Path) -> Path:
    return tmp_path / "hooks" / "qemu.d" / HOOK_FILE


def _library(lib: Path) -> set[str]:
    """The library's files, without the bytecode the hook's Python writes beside them."""
    return {str(path.relative_to(lib)) for path in lib.rglob("*") if path.is_file() and "__pycache__" not in path.parts}


# --- lib_dir: only what the installer wrote ---------------------------------------------------------------


def _write(path: Path, text: str = "# someone else's file\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _other_collection(lib: Path) -> str:
    _write(lib / "ansible_collections/community/general/plugins/modules/foo.py")
    return "ansible_collections/community/general/plugins/modules/foo.py"


def _collection_copy(lib: Path) -> str:
    # lib_dir given as a collections path that holds this collection: its roles and its other module utils.
    _write(lib / "ansible_collections/vnuma/libvirt/roles/vnuma_fleet/tasks/main.yml")
    _write(lib / f"{LIBRARY}/_run/domain.py")
    _write(lib / f"{LIBRARY}/_core/units.py", "# the installed collection's own copy\n")
    return "ansible_collections/vnuma/libvirt/roles/vnuma_fleet/tasks/main.yml"


def _file_at_the_top(lib: Path) -> str:
    _write(lib / "ansible_collections/README.md")
    return "ansible_collections/README.md"


def _linked_package(lib: Path) -> str:
    # A symbolic link where a package directory goes: writing through it would replace the files it leads to.
    elsewhere = lib.parent / "elsewhere"
    _write(elsewhere / "units.py", "# not the hook's\n")
    (lib / LIBRARY).mkdir(parents=True)
    (lib / LIBRARY / "_core").symlink_to(elsewhere)
    return f"{LIBRARY}/_core"


def _tree_is_a_file(lib: Path) -> str:
    _write(lib / "ansible_collections")
    return "ansible_collections"


FOREIGN = [_other_collection, _collection_copy, _file_at_the_top, _linked_package, _tree_is_a_file]


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("foreign", FOREIGN, ids=lambda make: make.__name__.strip("_"))
def test_a_lib_dir_holding_what_the_installer_did_not_write_is_refused_untouched(
    tmp_path: Path, foreign: Callable[[Path], str], state: str, check_mode: bool
) -> None:
    lib = tmp_path / "lib"
    named = foreign(lib)
    _write(lib / "README-mine.txt", "beside the tree: never read\n")
    before = _snapshot(tmp_path)
    with pytest.raises(SpecError) as refused:
        install_hook(hook_params(tmp_path, state=state), check_mode)
    message = str(refused.value)
    assert f"lib_dir {lib} holds {named} " in message
    assert "which the hook's installer did not write" in message
    assert "give lib_dir a directory of its own" in message
    # Nothing written, replaced or removed: no hook script, no cache, the foreign files as they were.
    assert _snapshot(tmp_path) == before


def test_a_foreign_directory_is_named_by_its_first_file(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    _write(lib / "ansible_collections/community/general/plugins/modules/foo.py")
    _write(lib / "ansible_collections/community/general/galaxy.yml")
    with pytest.raises(SpecError, match=r"holds ansible_collections/community/general/galaxy\.yml \(a file\)"):
        install_hook(hook_params(tmp_path), check_mode=True)


def test_the_installer_writes_only_in_the_package_directories_it_owns(tmp_path: Path) -> None:
    owned = {f"{LIBRARY}/_core", f"{LIBRARY}/_xml", f"{LIBRARY}/_run"}
    assert {os.path.dirname(path) for path in hook_sources()} == owned
    result = install_hook(hook_params(tmp_path), check_mode=False)
    assert _library(tmp_path / "lib") == set(hook_sources()) == set(result["files"])


def test_stale_files_go_and_absent_removes_only_the_hooks_files_and_the_directories_left_empty(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    _write(lib / "site.py", "kept = True\n")  # beside the tree: someone else's, never touched
    install_hook(hook_params(tmp_path), check_mode=False)
    stale = lib / LIBRARY / "_core" / "retired.py"  # a file an earlier version of the hook needed
    _write(stale, "x = 1\n")
    updated = install_hook(hook_params(tmp_path), check_mode=False)
    assert not stale.exists()
    assert updated["changed"] is True
    assert updated["written"] == [f"library file {LIBRARY}/_core/retired.py removed"]

    removed = install_hook(hook_params(tmp_path, state="absent"), check_mode=False)
    assert removed["changed"] is True
    assert removed["written"][0] == f"hook script {_hook(tmp_path)} removed"
    assert removed["written"][-1] == f"topology cache {tmp_path / 'cache' / 'host-capabilities.xml'} removed"
    assert len(removed["written"]) == 2 + len(hook_sources())
    assert [path.name for path in lib.iterdir()] == ["site.py"]
    assert (lib / "site.py").read_text() == "kept = True\n"


# --- the interpreter and the installed script ----------------------------------------------------------------


def _venv_under(directory: Path) -> str:
    """This interpreter, reached through ``directory`` (a symbolic link to its environment), as a venv would be."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.symlink_to(sys.prefix)
    interpreter = directory / os.path.relpath(sys.executable, sys.prefix)
    assert os.path.exists(interpreter)
    return str(interpreter)


def test_an_interpreter_path_with_whitespace_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    # Installed, its script's "#!/.../my tools/venv/bin/python -I" made libvirtd fail every guest start.
    interpreter = _venv_under(tmp_path / "opt" / "my tools" / "venv")
    before = _snapshot(tmp_path)
    with pytest.raises(SpecError) as refused:
        install_hook(hook_params(tmp_path, interpreter=interpreter), check_mode=False)
    assert f"interpreter {interpreter!r} has whitespace in its path" in str(refused.value)
    assert "the kernel ends the interpreter of a script's #! line at the first space or tab" in str(refused.value)
    assert _snapshot(tmp_path) == before


def test_an_interpreter_path_too_long_for_the_kernels_shebang_buffer_is_refused(tmp_path: Path) -> None:
    interpreter = _venv_under(tmp_path / ("v" * 120))
    size = len(f"#!{interpreter} -I".encode())
    assert size > 127
    before = _snapshot(tmp_path)
    with pytest.raises(SpecError) as refused:
        install_hook(hook_params(tmp_path, interpreter=interpreter), check_mode=False)
    assert f"makes the hook script's #! line {size} bytes long, above the limit of 127" in str(refused.value)
    assert "before Linux 5.1 (256 since)" in str(refused.value)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize(
    ("option", "default"),
    [
        ("hooks_dir", hook_install.DEFAULT_HOOKS_DIR),
        ("lib_dir", hook_install.DEFAULT_LIB_DIR),
        ("cache_path", hook_install.DEFAULT_CACHE_PATH),
        ("state_dir", "/run/libvirt/qemu"),
        ("interpreter", sys.executable),
    ],
)
def test_an_empty_path_is_refused_not_taken_for_the_default(state: str, option: str, default: str) -> None:
    # An empty templated variable used to install into (or, absent, remove from) the host's own directories.
    with pytest.raises(SpecError) as refused:
        install_hook({**hook_params(Path("/nonexistent")), "state": state, option: ""}, check_mode=True)
    assert str(refused.value) == f"{option} is empty: give an absolute path, or leave the option out for {default}"


def test_state_absent_does_not_check_the_interpreter(tmp_path: Path) -> None:
    removed = install_hook(hook_params(tmp_path, state="absent", interpreter="/opt/my tools/python"), check_mode=False)
    assert removed["changed"] is False


def test_the_written_script_is_run_once_as_libvirtd_runs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = hook_install._run_installed

    def spy(path: str) -> str | None:
        calls.append(path)
        return original(path)

    monkeypatch.setattr(hook_install, "_run_installed", spy)
    install_hook(hook_params(tmp_path), check_mode=True)
    assert calls == []
    install_hook(hook_params(tmp_path), check_mode=False)
    assert calls == [str(_hook(tmp_path))]
    assert original(str(_hook(tmp_path))) is None


def _broken_library(monkeypatch: pytest.MonkeyPatch, last_line: str) -> None:
    sources = hook_sources()
    sources[HOOK_PY] += last_line + "\n"
    monkeypatch.setattr(hook_install, "hook_sources", lambda: sources)


def test_a_script_that_fails_a_pass_through_call_is_removed_and_the_run_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A library this interpreter cannot run (as a newer collection's code on an old Python would be).
    _broken_library(monkeypatch, "import vnuma_no_such_module")
    with pytest.raises(VnumaError) as failed:
        install_hook(hook_params(tmp_path), check_mode=False)
    hook = _hook(tmp_path)
    message = str(failed.value)
    assert message.startswith(
        f"the hook script {hook} does not run: the call 'vnuma-libvirt-install-check prepare begin -' ended with "
        "exit status 1 where it passes through with 0: ModuleNotFoundError: No module named 'vnuma_no_such_module'"
    )
    assert "libvirtd would fail every guest start with it, so it was removed again" in message
    assert message.endswith(
        f"(written before the failure: topology cache {tmp_path / 'cache' / 'host-capabilities.xml'}; "
        f"{len(hook_sources())} library files under {tmp_path / 'lib'}; hook script {hook}; "
        f"hook script {hook} removed)"
    )
    assert not hook.exists()
    assert failed.value.details["changed"] is True
    assert failed.value.details["written"][-2:] == [f"hook script {hook}", f"hook script {hook} removed"]


def test_a_script_that_hangs_is_removed_after_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _broken_library(monkeypatch, "import time; time.sleep(60)")
    monkeypatch.setattr(hook_install, "_CHECK_TIMEOUT", 1)
    with pytest.raises(VnumaError, match="prepare begin -' did not end within 1 seconds") as failed:
        install_hook(hook_params(tmp_path), check_mode=False)
    assert not _hook(tmp_path).exists()
    assert failed.value.details["changed"] is True


# --- paths in the way, and writes that fail ------------------------------------------------------------------


def _directory_at(relative: str) -> Callable[[Path], None]:
    return lambda root: (root / relative).mkdir(parents=True)


def _file_at(relative: str) -> Callable[[Path], None]:
    return lambda root: _write(root / relative)


IN_THE_WAY = [
    (
        "present",
        _directory_at(f"hooks/qemu.d/{HOOK_FILE}"),
        "hooks_dir {root}/hooks: the hook script's path "
        f"{{root}}/hooks/qemu.d/{HOOK_FILE} is a directory, not a file",
    ),
    (
        "absent",
        _directory_at(f"hooks/qemu.d/{HOOK_FILE}"),
        "hooks_dir {root}/hooks: the hook script's path "
        f"{{root}}/hooks/qemu.d/{HOOK_FILE} is a directory, not a file",
    ),
    (
        "present",
        _directory_at("cache/host-capabilities.xml"),
        "cache_path {root}/cache/host-capabilities.xml is a directory, not a file",
    ),
    (
        "absent",
        _directory_at("cache/host-capabilities.xml"),
        "cache_path {root}/cache/host-capabilities.xml is a directory, not a file",
    ),
    (
        "present",
        _file_at("cache"),
        "cache_path {root}/cache/host-capabilities.xml: {root}/cache is a file, not a directory",
    ),
    ("present", _file_at("lib"), "lib_dir {root}/lib is a file, not a directory"),
    ("absent", _file_at("lib"), "lib_dir {root}/lib is a file, not a directory"),
    ("present", _file_at("hooks"), "hooks_dir {root}/hooks is a file, not a directory"),
    ("present", _file_at("hooks/qemu.d"), "hooks_dir {root}/hooks: {root}/hooks/qemu.d is a file, not a directory"),
]


@pytest.mark.parametrize(("state", "prepare", "message"), IN_THE_WAY)
def test_a_path_in_the_way_is_refused_before_anything_is_written(
    tmp_path: Path, state: str, prepare: Callable[[Path], None], message: str
) -> None:
    prepare(tmp_path)
    if state == "absent" and not (tmp_path / "cache").exists():  # something to remove: the cache
        _write(tmp_path / "cache" / "host-capabilities.xml")
    before = _snapshot(tmp_path)
    with pytest.raises(SpecError) as refused:
        install_hook(hook_params(tmp_path, state=state), check_mode=False)
    assert message.format(root=tmp_path) in str(refused.value)
    assert _snapshot(tmp_path) == before


def test_a_write_that_fails_names_the_path_and_lists_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = _hook(tmp_path)
    original = hook_install.write_file

    def read_only_qemu_d(path: str, data: bytes, mode: int) -> None:
        if os.path.dirname(path) == str(hook.parent):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path + ".tmp")
        original(path, data, mode)

    monkeypatch.setattr(hook_install, "write_file", read_only_qemu_d)
    with pytest.raises(VnumaError) as failed:
        install_hook(hook_params(tmp_path), check_mode=False)
    cache = tmp_path / "cache" / "host-capabilities.xml"
    assert str(failed.value) == (
        f"cannot write the hook script {hook}: Read-only file system (EROFS) (written before the failure: "
        f"topology cache {cache}; {len(hook_sources())} library files under {tmp_path / 'lib'})"
    )
    assert failed.value.details["changed"] is True
    written = failed.value.details["written"]
    assert written[0] == f"topology cache {cache}"
    assert sorted(written[1:]) == sorted(f"library file {path}" for path in hook_sources())
    assert not hook.exists()


def test_a_removal_that_fails_names_the_path_and_lists_what_was_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_hook(hook_params(tmp_path), check_mode=False)
    cache = tmp_path / "cache" / "host-capabilities.xml"
    original = os.unlink

    def busy_cache(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path) == str(cache):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        original(path, *args, **kwargs)

    monkeypatch.setattr(hook_install.os, "unlink", busy_cache)
    with pytest.raises(VnumaError) as failed:
        install_hook(hook_params(tmp_path, state="absent"), check_mode=False)
    assert str(failed.value).startswith(f"cannot remove the topology cache {cache}: Device or resource busy (EBUSY)")
    assert str(failed.value).endswith(
        f"(written before the failure: hook script {_hook(tmp_path)} removed; "
        f"{len(hook_sources())} library files under {tmp_path / 'lib'} removed)"
    )
    assert failed.value.details["changed"] is True
    assert cache.exists()
    assert not (tmp_path / "lib").exists()
