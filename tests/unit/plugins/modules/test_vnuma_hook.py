# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_hook: installs the hook, its library and the topology cache into temporary directories.

The installed copy is then run as libvirtd runs it, in a fresh ``python -I`` (no PYTHONPATH, so the
collection is not importable but from the copy), to show that it needs nothing but the copy.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._run import hook_install
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.hook_install import HOOK_FILE, hook_sources
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_hook
from ansible_collections.vnuma.libvirt.tests.support.hook_paths import HOOK_HOST, hook_params
from tests.support.module_run import ModuleExit, run_module

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CAPS = HOOK_HOST
OTHER_CAPS = FIXTURES / "capabilities" / "intel-2s-smt2.xml"
PLAIN_GUEST = """<domain type='qemu'>
  <name>plain</name>
  <memory unit='MiB'>256</memory>
  <vcpu>2</vcpu>
  <numatune><memory mode='strict' nodeset='7'/></numatune>
  <os><type arch='x86_64'>hvm</type></os>
</domain>
"""


def _run(args: dict[str, Any], check_mode: bool = False, diff: bool = False) -> dict[str, Any]:
    return run_module(args, check_mode=check_mode, diff=diff, module=vnuma_hook)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_check_mode_writes_nothing_and_says_what_would_change(tmp_path: Path) -> None:
    result = _run(hook_params(tmp_path), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["cache_changed"] is True
    assert result["reload_required"] is True
    assert list(tmp_path.iterdir()) == []
    assert "_run/hook.py" in result["diff"]["after"]
    assert result["diff"]["before"] == ""


def test_present_installs_a_hook_that_runs_from_its_own_copy(tmp_path: Path) -> None:
    result = _run(hook_params(tmp_path))
    hook = tmp_path / "hooks" / "qemu.d" / HOOK_FILE
    assert result["changed"] is True
    assert result["hook_path"] == str(hook)
    assert stat.S_IMODE(hook.stat().st_mode) == 0o755
    assert hook.read_text().startswith(f"#!{sys.executable} -I\n")
    assert (tmp_path / "cache" / "host-capabilities.xml").read_bytes() == CAPS.read_bytes()
    # The bytecode beside the copy is the hook's Python's: the install ran the script once (a pass-through call).
    library = {path: data for path, data in _tree(tmp_path / "lib").items() if "__pycache__" not in path}
    assert set(library) == set(result["files"]) == set(hook_sources())
    assert result["written"] == [
        f"topology cache {tmp_path / 'cache' / 'host-capabilities.xml'}",
        *(f"library file {path}" for path in hook_sources()),
        f"hook script {hook}",
    ]
    # Never the libvirt adapter: the hook must not reach libvirt.
    assert not [path for path in library if path.endswith("_libvirt.py")]
    assert "ansible_collections/vnuma/libvirt/plugins/module_utils/_xml/parse.py" in library

    for operation in ("start", "migrate"):
        # libvirtd's environment: no PYTHONPATH (-I in the script would ignore it anyway).
        run = subprocess.run(
            [str(hook), "plain", operation, "begin", "-"],
            input=PLAIN_GUEST,
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"], "LC_ALL": "C"},
            check=False,
        )
        # Another operation, or a guest without a stored spec: passed through (libvirt keeps the XML).
        assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_a_second_run_changes_nothing_and_a_new_topology_only_the_cache(tmp_path: Path) -> None:
    _run(hook_params(tmp_path))
    before = _tree(tmp_path)
    again = _run(hook_params(tmp_path))
    assert (again["changed"], again["cache_changed"], again["reload_required"]) == (False, False, False)
    assert _tree(tmp_path) == before
    grown = _run(hook_params(tmp_path, host_capabilities=str(OTHER_CAPS)))
    assert (grown["changed"], grown["cache_changed"]) == (True, True)
    after = _tree(tmp_path)
    assert after.pop("cache/host-capabilities.xml") == OTHER_CAPS.read_bytes()
    before.pop("cache/host-capabilities.xml")
    assert after == before


def test_stale_and_edited_library_files_are_put_right(tmp_path: Path) -> None:
    # Someone else's file in lib_dir, outside the installer's tree, is never touched.
    foreign = tmp_path / "lib" / "site.py"
    foreign.parent.mkdir()
    foreign.write_text("kept = True\n")
    _run(hook_params(tmp_path))
    # A file of the hook's own package directories that the hook no longer needs (an earlier version's).
    old = "ansible_collections/vnuma/libvirt/plugins/module_utils/_core/old.py"
    stale = tmp_path / "lib" / old
    stale.write_text("x = 1\n")
    parse = tmp_path / "lib" / "ansible_collections/vnuma/libvirt/plugins/module_utils/_xml/parse.py"
    parse.write_text("broken\n")
    result = _run(hook_params(tmp_path), diff=True)
    assert result["changed"] is True
    assert not stale.exists()
    assert parse.read_text() == hook_sources()["ansible_collections/vnuma/libvirt/plugins/module_utils/_xml/parse.py"]
    assert f"library {old}" in result["diff"]["before"]
    assert f"library {old}" not in result["diff"]["after"]
    _run(hook_params(tmp_path, state="absent"))
    assert [path.name for path in (tmp_path / "lib").iterdir()] == ["site.py"]
    assert foreign.read_text() == "kept = True\n"


def _call_hook(tmp_path: Path, operation: str = "migrate") -> None:
    """Run the installed hook as libvirtd does (its Python writes its bytecode cache into lib_dir)."""
    run = subprocess.run(
        [str(tmp_path / "hooks" / "qemu.d" / HOOK_FILE), "plain", operation, "begin", "-"],
        input=PLAIN_GUEST,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "LC_ALL": "C"},
        check=False,
    )
    assert (run.returncode, run.stderr) == (0, "")


def test_the_hooks_bytecode_cache_leaves_the_install_unchanged(tmp_path: Path) -> None:
    """Once the hook has run, Python's __pycache__ beside the copy is neither a change nor removed."""
    _run(hook_params(tmp_path))
    _call_hook(tmp_path)
    lib = tmp_path / "lib"
    cached = sorted(path.relative_to(lib) for path in lib.rglob("*.pyc"))
    assert cached, "the hook's Python wrote no bytecode cache"
    assert all(path.parent.name == "__pycache__" for path in cached)
    again = _run(hook_params(tmp_path), diff=True)
    assert again["changed"] is False
    assert "__pycache__" not in again["diff"]["before"]
    assert sorted(path.relative_to(lib) for path in lib.rglob("*.pyc")) == cached
    # A library file put right takes its stale bytecode with it; the others keep theirs.
    parse = lib / "ansible_collections/vnuma/libvirt/plugins/module_utils/_xml/parse.py"
    parse.write_text(parse.read_text() + "# edited\n")
    fixed = _run(hook_params(tmp_path))
    assert fixed["changed"] is True
    assert not list(parse.parent.glob("__pycache__/parse.*.pyc"))
    assert list(parse.parent.glob("__pycache__/migration.*.pyc"))
    _call_hook(tmp_path)
    assert _run(hook_params(tmp_path))["changed"] is False
    # Removal takes the cache too.
    _run(hook_params(tmp_path, state="absent"))
    assert not lib.exists()


def test_reload_is_required_only_when_libvirtd_runs_no_qemu_hook_yet(tmp_path: Path) -> None:
    other = tmp_path / "hooks" / "qemu.d" / "10-disks"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    result = _run(hook_params(tmp_path))
    assert result["changed"] is True
    assert result["other_hooks"] == [str(other)]
    assert result["reload_required"] is False


def test_absent_removes_everything_once(tmp_path: Path) -> None:
    _run(hook_params(tmp_path))
    checked = _run(hook_params(tmp_path, state="absent"), check_mode=True)
    assert checked["changed"] is True
    assert (tmp_path / "hooks" / "qemu.d" / HOOK_FILE).exists()
    removed = _run(hook_params(tmp_path, state="absent"))
    assert (removed["changed"], removed["cache_changed"]) == (True, True)
    assert not (tmp_path / "hooks" / "qemu.d" / HOOK_FILE).exists()
    assert not (tmp_path / "lib").exists()
    assert not (tmp_path / "cache" / "host-capabilities.xml").exists()
    again = _run(hook_params(tmp_path, state="absent"))
    assert (again["changed"], again["cache_changed"]) == (False, False)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"interpreter": "/bin/false"}, "interpreter /bin/false cannot import lxml"),
        ({"interpreter": "/nonexistent/python3"}, "interpreter /nonexistent/python3: cannot run it"),
        ({"host_capabilities": None, "uri": "qemu+ssh://hv1/system"}, "is not a daemon on this machine"),
        ({"host_capabilities": "<capabilities><host/></capabilities>"}, "no <host><topology><cells>"),
        ({"lib_dir": "relative/lib"}, "lib_dir 'relative/lib' is not an absolute path"),
        ({"interpreter": "/opt/my tools/python3"}, "interpreter '/opt/my tools/python3' has whitespace in its path"),
    ],
)
def test_refusals_write_nothing(tmp_path: Path, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ModuleExit) as raised:
        _run(hook_params(tmp_path, **extra))
    assert raised.value.failed
    assert message in raised.value.result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_a_shared_lib_dir_is_refused_and_its_files_are_kept(tmp_path: Path) -> None:
    """lib_dir given as a collections path: nothing of it is listed as the hook's, replaced or removed."""
    foreign = tmp_path / "lib" / "ansible_collections/community/general/plugins/modules/foo.py"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("# someone else's\n")
    for state, check_mode in (("present", True), ("present", False), ("absent", False)):
        with pytest.raises(ModuleExit) as raised:
            _run(hook_params(tmp_path, state=state), check_mode=check_mode, diff=True)
        assert raised.value.failed
        assert raised.value.result["msg"].startswith(
            f"lib_dir {tmp_path / 'lib'} holds ansible_collections/community/general/plugins/modules/foo.py (a file), "
            "which the hook's installer did not write"
        )
        assert "diff" not in raised.value.result
    assert foreign.read_text() == "# someone else's\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lib"]


def test_a_failed_write_fails_the_task_with_changed_and_what_was_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No traceback (MODULE FAILURE): the module's message names the path, and changed says it wrote."""
    hook = tmp_path / "hooks" / "qemu.d" / HOOK_FILE
    hook.mkdir(parents=True)
    with pytest.raises(ModuleExit) as refused:
        _run(hook_params(tmp_path))
    assert refused.value.result["msg"].startswith(f"hooks_dir {tmp_path / 'hooks'}: the hook script's path {hook}")
    assert not (tmp_path / "lib").exists()
    hook.rmdir()

    original = hook_install.write_file

    def read_only(path: str, data: bytes, mode: int) -> None:
        if path == str(hook):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        original(path, data, mode)

    monkeypatch.setattr(hook_install, "write_file", read_only)
    with pytest.raises(ModuleExit) as failed:
        _run(hook_params(tmp_path), diff=True)
    result = failed.value.result
    assert failed.value.failed
    assert result["msg"].startswith(f"cannot write the hook script {hook}: Read-only file system (EROFS) (written ")
    assert result["changed"] is True
    assert result["written"][0] == f"topology cache {tmp_path / 'cache' / 'host-capabilities.xml'}"
    assert len(result["written"]) == 1 + len(hook_sources())


def test_a_hook_that_would_reach_libvirt_is_never_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The copy is refused when the hook's imports reach the libvirt adapter (libvirtd would deadlock on a call)."""
    # vnuma_info's runner stands in for a hook that imports _libvirt.py.
    runner = "ansible_collections.vnuma.libvirt.plugins.module_utils._run.info"
    monkeypatch.setattr(hook_install, "_ENTRY", runner)
    monkeypatch.setattr(hook_install, "_HOOK_MODULES", hook_install._HOOK_MODULES | {runner})
    with pytest.raises(ModuleExit) as raised:
        _run(hook_params(tmp_path))
    assert (
        "the hook would import ansible_collections.vnuma.libvirt.plugins.module_utils._" in raised.value.result["msg"]
    )
    assert "it may use only the pure core and the XML layer" in raised.value.result["msg"]
    assert list(tmp_path.iterdir()) == []
