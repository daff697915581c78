# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab Python's bytecode cache for zip imports: the same source is compiled once, a changed one anew,
a damaged cache entry is compiled again, and the code always names the zip it came from this time."""

from __future__ import annotations

import importlib.util
import types
import zipfile
import zipimport
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SITE = ROOT / "scripts" / "lab" / "rootfs" / "usr" / "local" / "lib" / "python3.11" / "dist-packages"
MODULE = "vnuma_lab_pycache"


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The hook, loaded from the image's overlay, its cache in tmp_path; zipimport restored afterwards."""
    original = zipimport._compile_source  # type: ignore[attr-defined]
    spec = importlib.util.spec_from_file_location(f"lab_{MODULE}", SITE / f"{MODULE}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        assert zipimport._compile_source is module._cached_compile  # type: ignore[attr-defined]
    finally:
        zipimport._compile_source = original  # type: ignore[attr-defined]
    monkeypatch.setattr(module, "CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(zipimport, "_compile_source", module._cached_compile)
    yield module


def import_from_zip(directory: Path, name: str, source: str) -> types.ModuleType:
    """Import ``name`` from a new zip in ``directory`` holding only its source, as AnsiballZ's payload does."""
    archive = directory / f"{name}-{len(list(directory.iterdir()))}.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(f"{name}.py", source)
    spec = zipimport.zipimporter(str(archive)).find_spec(name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pth_file_loads_the_hook_at_interpreter_start() -> None:
    lines = (SITE / f"{MODULE}.pth").read_text(encoding="utf-8").splitlines()
    # site.py runs the lines that start with "import" and skips the comments.
    assert [line for line in lines if not line.startswith("#")] == [f"import {MODULE}"]


def test_a_source_is_compiled_once_and_its_code_names_this_runs_zip(
    hook: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zips = tmp_path / "zips"
    zips.mkdir()
    source = "def where():\n    return where.__code__.co_filename\n\nVALUE = 41 + 1\n"
    first = import_from_zip(zips, "payload", source)
    assert first.VALUE == 42
    assert len(list((tmp_path / "cache").iterdir())) == 1

    compiled: list[str] = []
    real = hook._compile

    def counted(path: str, text: bytes) -> types.CodeType:
        compiled.append(path)
        return real(path, text)  # type: ignore[no-any-return]

    monkeypatch.setattr(hook, "_compile", counted)
    second = import_from_zip(zips, "payload", source)
    assert compiled == []  # served from the cache
    assert second.VALUE == 42
    # The function inside names the second zip, not the first run's.
    assert second.where() == second.__file__ != first.where()
    assert "payload-1.zip" in second.where()


def test_a_changed_source_is_compiled_anew(hook: types.ModuleType, tmp_path: Path) -> None:
    zips = tmp_path / "zips"
    zips.mkdir()
    assert import_from_zip(zips, "payload", "VALUE = 1\n").VALUE == 1
    assert import_from_zip(zips, "payload", "VALUE = 2\n").VALUE == 2
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_a_damaged_entry_is_compiled_again_and_replaced(hook: types.ModuleType, tmp_path: Path) -> None:
    zips = tmp_path / "zips"
    zips.mkdir()
    import_from_zip(zips, "payload", "VALUE = 3\n")
    (entry,) = (tmp_path / "cache").iterdir()
    entry.write_bytes(entry.read_bytes()[:5])  # a torn write
    assert import_from_zip(zips, "payload", "VALUE = 3\n").VALUE == 3
    assert import_from_zip(zips, "payload", "VALUE = 3\n").VALUE == 3
    assert len(entry.read_bytes()) > 5


def test_an_unwritable_cache_only_costs_the_compile(hook: types.ModuleType, tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file where the directory should be", encoding="utf-8")
    zips = tmp_path / "zips"
    zips.mkdir()
    assert import_from_zip(zips, "payload", "VALUE = 4\n").VALUE == 4
