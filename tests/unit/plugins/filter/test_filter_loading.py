# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Finding one of our filters costs its caller nothing of the others.

ansible-core's ``Jinja2Loader.get_with_context`` executes every file of a collection's ``plugins/filter``
to find one filter, in every worker process (so in every task that uses one). A filter file therefore
imports the module utils it calls inside its functions (``plugin_utils/_filter_glue.py``, "Imports").
These tests load filters through ansible-core's own loader, in a fresh interpreter, and list what that
imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ansible_collections.vnuma.libvirt as collection

ROOT = Path(next(iter(collection.__path__))).parents[2]
CAPABILITIES = Path(__file__).parents[2] / "fixtures" / "capabilities"
FILTERS = sorted(path.stem for path in (ROOT / "ansible_collections/vnuma/libvirt/plugins/filter").glob("*.py"))

# What loading the filter files may import: the glue's own small helpers and the packages around them.
LIGHT = {
    "ansible_collections.vnuma.libvirt.plugins.module_utils",
    "ansible_collections.vnuma.libvirt.plugins.module_utils._core",
    "ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset",
    "ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors",
    "ansible_collections.vnuma.libvirt.plugins.module_utils._core.units",
}

_PROBE = """
import json, sys
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
from ansible.plugins.loader import filter_loader
from ansible.template import Templar, trust_as_template
from ansible.parsing.dataloader import DataLoader
before = set(sys.modules)
if sys.argv[2] == "load":
    found = filter_loader.get("vnuma.libvirt." + sys.argv[3])
    assert found is not None, sys.argv[3]
else:
    variables = {"host": open(sys.argv[4], encoding="utf-8").read()}
    result = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(sys.argv[3]))
new = set(sys.modules) - before
print(json.dumps({
    "imported": sorted(m for m in new if m.startswith(("ansible_collections.vnuma", "lxml", "libvirt"))),
    "result": result if sys.argv[2] == "call" else None,
}))
"""


def _probe(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(ROOT), *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _imported(*args: str) -> list[str]:
    return list(_probe(*args)["imported"])


def _module_utils(modules: list[str]) -> set[str]:
    return {name for name in modules if ".plugins.module_utils" in name or not name.startswith("ansible_")}


@pytest.mark.parametrize("name", ["cpuset_format", "vnuma_fleet_result", "vnuma_layout"])
def test_finding_a_filter_runs_every_filter_file_and_imports_no_heavy_module_util(name: str) -> None:
    imported = _imported("load", name)
    # The loader really does run every filter file: the premise of the rule.
    assert {f"ansible_collections.vnuma.libvirt.plugins.filter.{stem}" for stem in FILTERS} <= set(imported)
    assert _module_utils(imported) <= LIGHT


def test_a_filter_imports_what_it_needs_when_it_is_called_and_works() -> None:
    probed = _probe(
        "call",
        "{{ host | vnuma.libvirt.vnuma_layout({'mode': 'host'}, vcpus=8, memory='8 GiB') }}",
        str(CAPABILITIES / "intel-2s-smt2.xml"),
    )
    assert "ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner" in probed["imported"]
    assert "ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities" in probed["imported"]
    layout = probed["result"]
    # The two-socket host: one cell per node, the 8 vCPUs split evenly.
    assert [cell["vcpus"] for cell in layout["cells"]] == ["0-3", "4-7"]
    assert layout["memory_kib"] == 8 * 1024 * 1024
