# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Imports go one way only: every .py under plugins/ is parsed (``ast``, nothing is imported) and checked.

The layers (docs/architecture.md)::

    plugins/modules, plugins/filter, plugins/plugin_utils   glue: the only importers of Ansible
    module_utils/_run      orchestration: _core, _xml, _libvirt, _hypervisor, _report
    module_utils/_report   presentation: _core
    module_utils/_xml      XML: lxml (in parse.py alone) and _core
    module_utils/_libvirt  the libvirt adapter: libvirt, _hypervisor and _core
    module_utils/_hypervisor  the hypervisor without libvirt (its Protocols, call deadlines): _core
    module_utils/_core     pure: the standard library only

Every import statement counts, also those inside functions or ``try``, so a guarded import cannot slip
through.  The checker is a plain function of a directory, so the tests at the end feed it small fake
trees that break each rule and assert the exact message.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
COLLECTION = "ansible_collections.vnuma.libvirt."

# What an import reaches, by kind: ansible, lxml, libvirt, a layer package of module_utils, "module_utils"
# (a file of module_utils outside the layers), "glue" (modules, filters, plugin_utils, doc_fragments), or
# "foreign" (another collection, a third-party package).  The standard library is allowed everywhere.
LAYER_PACKAGES = frozenset({"_core", "_xml", "_libvirt", "_hypervisor", "_run", "_report"})
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Layer:
    """Who a file is (the start of its path under plugins/), what it may import, and how a message names it."""

    prefix: str
    allowed: frozenset[str]
    who: str


# The rule table, most specific prefix first: the first layer whose prefix starts the path is the file's.
# Glue may import every layer except libvirt and lxml themselves (each has one importer); filters and their
# helpers run on the controller, where libvirt need not exist, so they stay off _libvirt and _run.
LAYERS = (
    Layer("module_utils/_core/", frozenset({"_core"}), "the pure core"),
    Layer("module_utils/_report/", frozenset({"_core", "_report"}), "the presentation layer"),
    Layer("module_utils/_xml/", frozenset({"lxml", "_core", "_xml"}), "the XML layer"),
    Layer("module_utils/_libvirt.py", frozenset({"libvirt", "_core", "_hypervisor"}), "the libvirt adapter"),
    Layer("module_utils/_hypervisor.py", frozenset({"_core"}), "the hypervisor interface"),
    Layer(
        "module_utils/_run/",
        frozenset({"_core", "_xml", "_libvirt", "_hypervisor", "_report", "_run"}),
        "orchestration",
    ),
    Layer(
        "modules/", frozenset({"ansible", "_core", "_xml", "_libvirt", "_hypervisor", "_run", "_report"}), "a module"
    ),
    Layer("filter/", frozenset({"ansible", "_core", "_xml", "_report", "glue"}), "a filter"),
    # Action plugins run on the controller too (the role's report writer): the filters' rules.
    # It renders the role's templates with jinja2, ansible-core's own template engine.
    Layer("action/", frozenset({"ansible", "jinja2", "_core", "_xml", "_report", "glue"}), "an action plugin"),
    Layer("plugin_utils/", frozenset({"ansible", "_core", "_xml", "_report"}), "the filters' glue"),
    Layer("doc_fragments/", frozenset(), "a doc fragment"),
)

# Each of these is imported by exactly one file: the one place that deals with the library.
SOLE_IMPORTERS = {"lxml": "module_utils/_xml/parse.py", "libvirt": "module_utils/_libvirt.py"}


def kind_of(module: str) -> str | None:
    """The kind of an absolute module name, or None for the standard library."""
    top = module.split(".")[0]
    if top in ("ansible", "lxml", "libvirt", "jinja2"):
        return top
    if not module.startswith(COLLECTION + "plugins."):
        # Another collection or a third-party package: neither belongs in this collection's plugins.
        return None if top in STDLIB else "foreign"
    parts = module[len(COLLECTION + "plugins.") :].split(".")
    if parts[0] != "module_utils":
        return "glue"
    return parts[1] if len(parts) > 1 and parts[1] in LAYER_PACKAGES else "module_utils"


def imports_of(tree: ast.Module) -> list[tuple[int, str, str] | tuple[int, None, None]]:
    """(line, module name for the kind, module name to show) of every import; (line, None, None) if relative."""
    found: list[tuple[int, str, str] | tuple[int, None, None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module is None:
                found.append((node.lineno, None, None))
                continue
            for alias in node.names:
                # `from pkg import name` may import the submodule pkg.name (`from ...module_utils import
                # _libvirt`): the kind is that of pkg.name; it is shown when it says more than pkg does.
                full = f"{node.module}.{alias.name}"
                found.append((node.lineno, full, full if kind_of(full) != kind_of(node.module) else node.module))
    return found


def layer_of(relative: str) -> Layer | None:
    return next((layer for layer in LAYERS if relative.startswith(layer.prefix)), None)


def check_layers(plugins: Path) -> list[str]:
    """Every wrong-way import under ``plugins`` (a plugins/ directory), as one message each, in path order."""
    problems: list[str] = []
    importers: dict[str, set[str]] = {name: set() for name in SOLE_IMPORTERS}
    for path in sorted(plugins.rglob("*.py")):
        relative = path.relative_to(plugins).as_posix()
        shown = f"plugins/{relative}"
        layer = layer_of(relative)
        if layer is None:
            problems.append(
                f"{shown} is in no layer: module_utils holds _core, _xml, _run, _report, _libvirt.py and _hypervisor.py"
            )
            continue
        seen: set[tuple[int, str]] = set()
        for line, module, named in imports_of(ast.parse(path.read_text(encoding="utf-8"), filename=shown)):
            if module is None or named is None:
                problems.append(f"{shown} uses a relative import (line {line}): imports are absolute here")
                continue
            kind = kind_of(module)
            if kind in SOLE_IMPORTERS:
                importers[kind].add(relative)
            if kind is None or kind in layer.allowed:
                continue
            what = kind if kind in ("ansible", "lxml", "libvirt") else named.removeprefix(COLLECTION)
            # `from x import a, b` is one wrong import, not two.
            if (line, what) in seen:
                continue
            seen.add((line, what))
            if kind == "module_utils":
                problems.append(f"{shown} imports {what} (line {line}): a module_utils file outside the layers")
            else:
                problems.append(f"{shown} imports {what} (line {line}): {layer.who} must not")
    for name, sole in SOLE_IMPORTERS.items():
        for relative in sorted(importers[name] - {sole}):
            problems.append(f"plugins/{relative} imports {name}: only plugins/{sole} may")
        if sole not in importers[name]:
            problems.append(f"plugins/{sole} does not import {name}: it is the one file that should")
    return problems


def test_imports_go_one_way() -> None:
    assert check_layers(PLUGINS) == []


def test_every_layer_package_has_files() -> None:
    # A prefix that matches nothing would make its rule vacuous (a package renamed without this table).
    for layer in LAYERS:
        assert any(path.relative_to(PLUGINS).as_posix().startswith(layer.prefix) for path in PLUGINS.rglob("*.py")), (
            layer.prefix
        )


# A good tree: one file per layer importing what it may.  Each case below adds or replaces files.
_MU = "ansible_collections.vnuma.libvirt.plugins.module_utils"
GOOD = {
    "module_utils/_core/__init__.py": '"""Pure core."""\n',
    "module_utils/_core/errors.py": "import re\n",
    "module_utils/_core/spec.py": f"from {_MU}._core.errors import VnumaError\n",
    "module_utils/_xml/__init__.py": "",
    "module_utils/_xml/parse.py": "try:\n    from lxml import etree\nexcept ImportError:\n    etree = None\n",
    "module_utils/_xml/domain.py": f"from {_MU}._xml.parse import etree\nfrom {_MU}._core.spec import X\n",
    "module_utils/_libvirt.py": (
        f"try:\n    import libvirt\nexcept ImportError:\n    pass\nfrom {_MU}._core import errors\n"
        f"from {_MU}._hypervisor import DeadlineCalls\n"
    ),
    "module_utils/_hypervisor.py": f"import threading\nfrom {_MU}._core import errors\n",
    "module_utils/_report/__init__.py": "",
    "module_utils/_report/diagram.py": f"from {_MU}._core.spec import X\n",
    "module_utils/_run/__init__.py": "",
    "module_utils/_run/converge.py": (
        f"from {_MU}._xml.domain import D\nfrom {_MU} import _libvirt\nfrom {_MU}._report.diagram import R\n"
    ),
    "modules/vnuma_domain.py": (
        f"from ansible.module_utils.basic import AnsibleModule\nfrom {_MU}._run.converge import C\n"
    ),
    "filter/vnuma_layout.py": (
        "from ansible.errors import AnsibleFilterError\n"
        "from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import wrap\n"
        f"from {_MU}._xml.domain import D\n"
    ),
    "plugin_utils/_filter_glue.py": f"from ansible.errors import AnsibleFilterError\nfrom {_MU}._core import errors\n",
    "doc_fragments/spec.py": "from __future__ import annotations\n",
}

BAD_CASES = [
    pytest.param(
        {"module_utils/_core/spec.py": "from lxml import etree\n"},
        [
            "plugins/module_utils/_core/spec.py imports lxml (line 1): the pure core must not",
            "plugins/module_utils/_core/spec.py imports lxml: only plugins/module_utils/_xml/parse.py may",
        ],
        id="core-imports-lxml",
    ),
    pytest.param(
        {"module_utils/_core/spec.py": "def f():\n    import ansible.module_utils.basic\n"},
        ["plugins/module_utils/_core/spec.py imports ansible (line 2): the pure core must not"],
        id="core-imports-ansible-inside-a-function",
    ),
    pytest.param(
        {"module_utils/_core/spec.py": f"from {_MU}._xml.domain import D\n"},
        [
            "plugins/module_utils/_core/spec.py imports plugins.module_utils._xml.domain (line 1): "
            "the pure core must not"
        ],
        id="core-imports-xml",
    ),
    pytest.param(
        {"module_utils/_core/spec.py": f"from {_MU} import _libvirt\n"},
        ["plugins/module_utils/_core/spec.py imports plugins.module_utils._libvirt (line 1): the pure core must not"],
        id="core-imports-libvirt-adapter",
    ),
    pytest.param(
        {"module_utils/_report/diagram.py": f"from {_MU}._run.converge import C\n"},
        [
            "plugins/module_utils/_report/diagram.py imports plugins.module_utils._run.converge (line 1): "
            "the presentation layer must not"
        ],
        id="report-imports-run",
    ),
    pytest.param(
        {"module_utils/_xml/domain.py": "import libvirt\n"},
        [
            "plugins/module_utils/_xml/domain.py imports libvirt (line 1): the XML layer must not",
            "plugins/module_utils/_xml/domain.py imports libvirt: only plugins/module_utils/_libvirt.py may",
        ],
        id="xml-imports-libvirt",
    ),
    pytest.param(
        {"module_utils/_xml/domain.py": "from lxml import etree\n"},
        ["plugins/module_utils/_xml/domain.py imports lxml: only plugins/module_utils/_xml/parse.py may"],
        id="second-lxml-importer",
    ),
    pytest.param(
        {"module_utils/_xml/domain.py": f"from {_MU}._run.converge import C\n"},
        [
            "plugins/module_utils/_xml/domain.py imports plugins.module_utils._run.converge (line 1): "
            "the XML layer must not"
        ],
        id="xml-imports-run",
    ),
    pytest.param(
        {"module_utils/_libvirt.py": f"import libvirt\nfrom {_MU}._xml.parse import etree\n"},
        [
            "plugins/module_utils/_libvirt.py imports plugins.module_utils._xml.parse (line 2): "
            "the libvirt adapter must not"
        ],
        id="libvirt-adapter-imports-xml",
    ),
    pytest.param(
        {"module_utils/_hypervisor.py": "import libvirt\n"},
        [
            "plugins/module_utils/_hypervisor.py imports libvirt (line 1): the hypervisor interface must not",
            "plugins/module_utils/_hypervisor.py imports libvirt: only plugins/module_utils/_libvirt.py may",
        ],
        id="hypervisor-interface-imports-libvirt",
    ),
    pytest.param(
        {"module_utils/_hypervisor.py": f"from {_MU} import _libvirt\n"},
        [
            "plugins/module_utils/_hypervisor.py imports plugins.module_utils._libvirt (line 1): "
            "the hypervisor interface must not"
        ],
        id="hypervisor-interface-imports-libvirt-adapter",
    ),
    pytest.param(
        {"module_utils/_run/converge.py": "from ansible.module_utils.basic import AnsibleModule\n"},
        ["plugins/module_utils/_run/converge.py imports ansible (line 1): orchestration must not"],
        id="run-imports-ansible",
    ),
    pytest.param(
        {"module_utils/_run/converge.py": "import lxml.etree\n"},
        [
            "plugins/module_utils/_run/converge.py imports lxml (line 1): orchestration must not",
            "plugins/module_utils/_run/converge.py imports lxml: only plugins/module_utils/_xml/parse.py may",
        ],
        id="run-imports-lxml",
    ),
    pytest.param(
        {"module_utils/_run/converge.py": "from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_info\n"},
        [
            "plugins/module_utils/_run/converge.py imports plugins.modules (line 1): orchestration must not",
        ],
        id="module-utils-imports-a-module",
    ),
    pytest.param(
        {"module_utils/_core/spec.py": "from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_layout import f\n"},
        ["plugins/module_utils/_core/spec.py imports plugins.filter.vnuma_layout (line 1): the pure core must not"],
        id="module-utils-imports-a-filter",
    ),
    pytest.param(
        {"filter/vnuma_layout.py": f"from {_MU}._run.converge import C\n"},
        ["plugins/filter/vnuma_layout.py imports plugins.module_utils._run.converge (line 1): a filter must not"],
        id="filter-imports-run",
    ),
    pytest.param(
        {"module_utils/_core/spec.py": "import yaml\n"},
        ["plugins/module_utils/_core/spec.py imports yaml (line 1): the pure core must not"],
        id="core-imports-third-party",
    ),
    pytest.param(
        {"module_utils/_core/spec.py": "from . import errors\n"},
        ["plugins/module_utils/_core/spec.py uses a relative import (line 1): imports are absolute here"],
        id="relative-import",
    ),
    pytest.param(
        {"module_utils/_helpers.py": "import re\n"},
        [
            "plugins/module_utils/_helpers.py is in no layer: "
            "module_utils holds _core, _xml, _run, _report, _libvirt.py and _hypervisor.py"
        ],
        id="flat-module-utils-file",
    ),
    pytest.param(
        {"module_utils/_core/spec.py": f"from {_MU}._helpers import h\n"},
        [
            "plugins/module_utils/_core/spec.py imports plugins.module_utils._helpers (line 1): "
            "a module_utils file outside the layers"
        ],
        id="import-outside-the-layers",
    ),
    pytest.param(
        {"module_utils/_xml/parse.py": "import re\n"},
        ["plugins/module_utils/_xml/parse.py does not import lxml: it is the one file that should"],
        id="sole-lxml-importer-gone",
    ),
]


def _tree(tmp_path: Path, changes: dict[str, str]) -> Path:
    plugins = tmp_path / "plugins"
    for relative, text in {**GOOD, **changes}.items():
        path = plugins / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return plugins


def test_the_good_fake_tree_passes(tmp_path: Path) -> None:
    assert check_layers(_tree(tmp_path, {})) == []


@pytest.mark.parametrize(("changes", "expected"), BAD_CASES)
def test_a_wrong_way_import_is_reported(tmp_path: Path, changes: dict[str, str], expected: list[str]) -> None:
    assert check_layers(_tree(tmp_path, changes)) == expected
