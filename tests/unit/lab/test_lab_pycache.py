# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab Python's bytecode caches.  For zip imports: the same source is compiled once, a changed one anew,
a damaged cache entry is compiled again, and the code always names the zip it came from this time.  For
the methods dataclasses generates: each text compiled once across runs, the classes the same as without."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import types
import zipfile
import zipimport
from collections.abc import Callable, Iterator
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
        # This process imported dataclasses before the hook: the hook gave it its exec at once.
        assert dataclasses.exec == module._GENERATED.exec  # type: ignore[attr-defined]
    finally:
        zipimport._compile_source = original  # type: ignore[attr-defined]
        vars(dataclasses).pop("exec", None)
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


@pytest.fixture
def exit_handlers(hook: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Callable[[], None]]]:
    """What the hook registers with atexit: run by the test as a run's end, and at its end while CACHE is
    still tmp_path's, never at pytest's exit."""
    handlers: list[Callable[[], None]] = []
    monkeypatch.setattr(hook, "atexit", types.SimpleNamespace(register=handlers.append))
    yield handlers
    for handler in handlers:
        handler()


def end_run(handlers: list[Callable[[], None]]) -> None:
    while handlers:
        handlers.pop(0)()


def private_dataclasses(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A copy of the dataclasses module of its own, as a lab run's interpreter loads it."""
    spec = importlib.util.spec_from_file_location("lab_dataclasses", dataclasses.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses looks itself up there
    spec.loader.exec_module(module)
    return module


def define_cell(module: types.ModuleType) -> type:
    """A frozen, ordered dataclass: __init__, __repr__, __eq__, ordering, __hash__, __setattr__ generated."""

    class Cell:
        node: int
        cpus: tuple[int, ...] = ()

    return module.dataclass(frozen=True, order=True)(Cell)  # type: ignore[no-any-return]


def counting_compile(hook: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the hook compiles from now on (its module global shadows the builtin)."""
    compiled: list[str] = []

    def counted(source: str, filename: str, mode: str) -> types.CodeType:
        compiled.append(source)
        return compile(source, filename, mode)

    monkeypatch.setattr(hook, "compile", counted, raising=False)
    return compiled


def test_a_dataclass_method_is_compiled_once_across_runs_and_works_the_same(
    hook: types.ModuleType,
    exit_handlers: list[Callable[[], None]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = private_dataclasses(monkeypatch)
    hook.give_dataclasses(module, hook.GeneratedCode())
    compiled = counting_compile(hook, monkeypatch)
    cell = define_cell(module)
    assert len(compiled) >= 5  # one text per generated method
    assert len(exit_handlers) == 1  # one save at exit, however many texts were new
    end_run(exit_handlers)
    assert (tmp_path / "cache" / hook.GENERATED).is_file()

    compiled.clear()
    second_run = hook.GeneratedCode()
    module = private_dataclasses(monkeypatch)
    hook.give_dataclasses(module, second_run)
    again = define_cell(module)
    assert compiled == [] and exit_handlers == []  # every method's code came from the file
    assert again(1, (0, 1)) == again(1, (0, 1)) < again(2)
    assert again(1) != again(2)
    assert repr(again(1, (0, 1))) == repr(cell(1, (0, 1)))
    assert repr(again(1, (0, 1))).endswith("Cell(node=1, cpus=(0, 1))")
    assert hash(again(3)) == hash(again(3))
    with pytest.raises(module.FrozenInstanceError):
        again(1).node = 2


def test_a_run_keeps_what_a_run_beside_it_saved_and_adds_its_own(
    hook: types.ModuleType, exit_handlers: list[Callable[[], None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    beside, this = hook.GeneratedCode(), hook.GeneratedCode()
    scope: dict[str, object] = {}
    this.exec("A = 1\n", scope)  # read the (empty) file before the other run saves
    beside.exec("B = 2\n", scope)
    beside.save()
    this.save()
    compiled = counting_compile(hook, monkeypatch)
    later = hook.GeneratedCode()
    later.exec("A = 1\n", scope)
    later.exec("B = 2\n", scope)
    assert compiled == []
    assert scope["A"] == 1 and scope["B"] == 2


def test_a_damaged_file_of_generated_code_is_compiled_again(
    hook: types.ModuleType,
    exit_handlers: list[Callable[[], None]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / hook.GENERATED).write_bytes(b"\xe3\x00torn")
    compiled = counting_compile(hook, monkeypatch)
    run = hook.GeneratedCode()
    scope: dict[str, object] = {}
    run.exec("C = 3\n", scope)
    assert compiled == ["C = 3\n"] and scope["C"] == 3
    run.save()
    assert hook._read_generated().keys() == {"C = 3\n"}


def test_the_finder_gives_dataclasses_the_cached_exec_as_it_loads_and_leaves(
    hook: types.ModuleType, exit_handlers: list[Callable[[], None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = hook.GeneratedCode()
    finder = hook.DataclassesFinder(generated)
    sys.meta_path.insert(0, finder)
    try:
        assert finder.find_spec("json") is None
        assert finder in sys.meta_path
        spec = finder.find_spec("dataclasses")
        assert finder not in sys.meta_path  # found once: later imports go past it
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "dataclasses", module)
    spec.loader.exec_module(module)
    assert module.exec == generated.exec
    cell = define_cell(module)
    assert cell(4) == cell(4) != cell(5)
    assert len(exit_handlers) == 1  # the texts went through the cached exec
