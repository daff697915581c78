# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""No dead or test-only code under plugins/, and no re-export that no plugin imports.

Test helpers live in tests/support; a name exported from a second place is imported from its home.
Every .py under plugins/ is parsed (``ast``, nothing is imported).  A name counts as used when plugin
code reads it (a name, an attribute, an import, a keyword argument, or a string such as ``getattr``'s)
or the role's YAML and templates mention it, by name (a homonym anywhere counts); ``__all__`` and the
definition itself do not.
Like tests/unit/test_layers.py, the checkers are plain functions of a directory, fed small fake trees
at the end.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
ROLES = ROOT / "roles"

# Unused by plugin code, in files another change is editing; each entry says who still uses the name.
# The test fails when an entry is used again or gone, so the list only shrinks.
KNOWN_UNUSED: dict[str, str] = {}


def _trees(plugins: Path) -> dict[str, ast.Module]:
    return {path.relative_to(plugins).as_posix(): ast.parse(path.read_text()) for path in sorted(plugins.rglob("*.py"))}


def _exported(tree: ast.Module) -> tuple[list[str], set[int]]:
    """The names in ``__all__``, and the ids of its string nodes (which are no use of a name)."""
    for node in tree.body:
        if not isinstance(node, ast.Assign) or not isinstance(node.value, (ast.List, ast.Tuple)):
            continue
        if any(isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets):
            items = [item for item in node.value.elts if isinstance(item, ast.Constant)]
            return [str(item.value) for item in items], {id(item) for item in items}
    return [], set()


def _uses(tree: ast.Module) -> Counter[str]:
    skip = _exported(tree)[1]
    uses: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            uses[node.id] += 1
        elif isinstance(node, ast.Attribute):
            uses[node.attr] += 1
        elif isinstance(node, ast.ImportFrom):
            uses.update(alias.name for alias in node.names)
        elif isinstance(node, ast.keyword) and node.arg:
            uses[node.arg] += 1
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            # getattr(x, "name") and the like.
            uses[node.value] += node.value.isidentifier()
    return uses


def _defined(tree: ast.Module) -> list[str]:
    """Module-level functions, classes and assigned names, and the methods of the module's classes."""
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        if isinstance(node, ast.ClassDef):
            names.extend(item.name for item in node.body if isinstance(item, ast.FunctionDef))
        elif isinstance(node, ast.Assign):
            names.extend(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [name for name in names if not (name.startswith("__") and name.endswith("__"))]


def _role_text(roles: Path) -> str:
    files = [path for path in sorted(roles.rglob("*")) if path.is_file() and path.suffix in {".yml", ".yaml", ".j2"}]
    return "\n".join(path.read_text() for path in files)


def unused_names(plugins: Path, roles: Path) -> list[str]:
    """``file:name`` for each name a module util defines that no plugin code and no role file uses."""
    trees = _trees(plugins)
    uses: Counter[str] = Counter()
    for tree in trees.values():
        uses.update(_uses(tree))
    role_text = _role_text(roles) if roles.is_dir() else ""
    return [
        f"{path}:{name}"
        for path, tree in trees.items()
        if path.startswith("module_utils/")
        for name in _defined(tree)
        if not uses[name] and not re.search(rf"\b{re.escape(name)}\b", role_text)
    ]


def _module_name(path: str) -> str:
    return "ansible_collections.vnuma.libvirt.plugins." + path.removesuffix(".py").replace("/", ".")


def idle_re_exports(plugins: Path) -> list[str]:
    """Each name a file lists in ``__all__`` but imports from elsewhere, that no other plugin file imports from it."""
    trees = _trees(plugins)
    imported_from: set[tuple[str, str]] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported_from.update((node.module, alias.name) for alias in node.names)
    problems = []
    for path, tree in trees.items():
        brought = {
            alias.asname or alias.name: node.module
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names
        }
        for name in _exported(tree)[0]:
            if name in brought and (_module_name(path), name) not in imported_from:
                problems.append(f"{path} re-exports {name} from {brought[name]}, and no plugin imports it from there")
    return problems


def test_every_name_in_plugins_is_used_by_plugins_or_the_role() -> None:
    unused = unused_names(PLUGINS, ROLES)
    assert [name for name in unused if name not in KNOWN_UNUSED] == []
    stale = sorted(set(KNOWN_UNUSED) - set(unused))
    assert not stale, f"used again or gone: take {stale} out of KNOWN_UNUSED"


def test_no_re_export_that_no_plugin_imports() -> None:
    assert idle_re_exports(PLUGINS) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / "plugins" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "tasks" / "main.yml").write_text("- debug: msg={{ x | role_helper }}\n")
    return tmp_path


def test_the_checker_finds_dead_private_public_and_method_names(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "module_utils/_core/a.py": (
                "__all__ = ['used', 'unused', 'role_helper']\n"
                "_FONT = 12\n"
                "_KEPT = 1\n"
                "def used(): return _KEPT\n"
                "def unused(): pass\n"
                "def role_helper(): pass\n"
                "class Address:\n"
                "    def __str__(self): return ''\n"
                "    @property\n"
                "    def node_device_name(self): return ''\n"
                "    def by_getattr(self): pass\n"
            ),
            "modules/m.py": (
                "from ansible_collections.vnuma.libvirt.plugins.module_utils._core.a import Address, used\n"
                "used(); getattr(Address(), 'by_getattr')()\n"
            ),
        },
    )
    assert unused_names(root / "plugins", root / "roles") == [
        "module_utils/_core/a.py:_FONT",
        "module_utils/_core/a.py:unused",
        "module_utils/_core/a.py:node_device_name",
    ]


def test_the_checker_finds_a_re_export_only_tests_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "module_utils/_core/home.py": "__all__ = ['MODES', 'KINDS']\nMODES = ()\nKINDS = ()\n",
            "module_utils/_core/spec.py": (
                "from ansible_collections.vnuma.libvirt.plugins.module_utils._core.home import KINDS, MODES\n"
                "__all__ = ['KINDS', 'MODES']\n"
            ),
            "module_utils/_core/user.py": (
                "from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import KINDS\n"
                "__all__ = ['f']\n"
                "def f(): return KINDS\n"
            ),
        },
    )
    assert idle_re_exports(root / "plugins") == [
        "module_utils/_core/spec.py re-exports MODES from "
        "ansible_collections.vnuma.libvirt.plugins.module_utils._core.home, and no plugin imports it from there"
    ]
