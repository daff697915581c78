# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``<cpu><cache>`` when the host's L3 banks shape the cells (docs/cache-locality.md).

The collection writes ``<cache level='3' mode='emulate'/>`` when a host node has two or more L3 banks
or a bank spans nodes, and the guest has no ``<cache>``.  A ``<cache>`` already there stays, whoever wrote
it.  ``state: absent`` removes the one the collection wrote and keeps the user's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.absent import render_absent
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cpu_numa import L3_EMULATED, CpuCache
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml, to_text
from ansible_collections.vnuma.libvirt.tests.support.embedded_libvirt import read_back

CAPABILITIES = Path(__file__).resolve().parents[3] / "fixtures" / "capabilities"

DOMAIN = """<domain type='kvm'>
  <name>l3-cache</name>
  <memory unit='MiB'>512</memory>
  <vcpu>8</vcpu>
  <vnuma mode='node' cells='2'/>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
  </os>
  CPU
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
  </devices>
</domain>
"""
NO_CPU = "<cpu mode='host-passthrough' check='none'/>"


def _host(name: str) -> str:
    return (CAPABILITIES / f"{name}.xml").read_text(encoding="utf-8")


def _given(cpu: str, nodeset: str) -> str:
    return DOMAIN.replace("CPU", cpu).replace(
        "<vnuma mode='node' cells='2'/>", f"<vnuma mode='node'><partition nodeset='{nodeset}' cells='2'/></vnuma>"
    )


def _caches(text: str) -> list[dict[str, str]]:
    return [dict(element.attrib) for element in parse_xml(text, "domain").iterfind("cpu/cache")]


@pytest.mark.parametrize(
    ("host", "shapes"),
    [
        # Two CCXs per NPS4 node.
        ("amd-epyc-nps4-ccx", True),
        # One L3 per socket across its two SNC nodes.
        ("intel-snc2-l3", True),
        # One bank per node (the lab's four-node hypervisor: QEMU's L3 is one per socket, a socket per node).
        ("lab4-hmat", False),
        # The lab's two-node hypervisor: one socket, so one L3 bank, across its two nodes.
        ("lab2-snc-l3", True),
        # No <cache> reported at all.
        ("amd-epyc-nps1-nocache", False),
    ],
)
def test_which_hosts_have_l3_banks_that_shape_cells(host: str, shapes: bool) -> None:
    assert parse_capabilities(_host(host)).l3_shapes_cells is shapes


def test_cells_on_l3_banks_get_qemus_emulated_l3_and_a_rerun_keeps_it() -> None:
    result = expand_domain(_given(NO_CPU, "1"), _host("amd-epyc-nps4-ccx"))
    assert _caches(result.xml) == [{"level": "3", "mode": "emulate"}]
    changes = {change.path: (change.before, change.after) for change in result.changes if "cache" in change.path}
    assert changes == {"cpu/cache/level": (None, 3), "cpu/cache/mode": (None, "emulate")}
    # Written after the topology, where libvirt writes it; libvirt's own parser keeps it.
    cpu = parse_xml(result.xml, "domain").find("cpu")
    assert cpu is not None and [child.tag for child in cpu] == ["topology", "cache", "numa"]
    back = read_back(parse_xml(result.xml, "domain"), "l3-cache")
    assert [dict(element.attrib) for element in back.iterfind("cpu/cache")] == [{"level": "3", "mode": "emulate"}]
    assert expand_domain(result.xml, _host("amd-epyc-nps4-ccx")).changes == []


def test_no_cache_element_where_the_banks_do_not_shape_cells() -> None:
    for host, nodeset in (("amd-epyc-nps1-nocache", "0"), ("lab4-hmat", "1")):
        assert _caches(expand_domain(_given(NO_CPU, nodeset), _host(host)).xml) == [], host


@pytest.mark.parametrize(
    "cache",
    ["<cache mode='passthrough'/>", "<cache mode='disable'/>", "<cache level='3' mode='emulate'/>"],
)
def test_the_users_own_cache_stays_and_absent_keeps_it(cache: str) -> None:
    given = _given(f"<cpu mode='host-passthrough' check='none'>{cache}</cpu>", "1")
    result = expand_domain(given, _host("amd-epyc-nps4-ccx"))
    wanted = [dict(parse_xml(f"<cpu>{cache}</cpu>", "cpu")[0].attrib)]
    assert _caches(result.xml) == wanted
    assert [change for change in result.changes if "cache" in change.path] == []
    root = parse_xml(result.xml, "domain")
    assert render_absent(root, "l3-cache") == []
    assert _caches(to_text(root)) == wanted


def test_absent_removes_the_cache_the_collection_wrote() -> None:
    result = expand_domain(_given(NO_CPU, "1"), _host("amd-epyc-nps4-ccx"))
    root = parse_xml(result.xml, "domain")
    assert render_absent(root, "l3-cache") == []
    assert _caches(to_text(root)) == []
    cpu = root.find("cpu")
    assert cpu is not None and cpu.attrib == {"mode": "host-passthrough", "check": "none"} and len(cpu) == 0


def test_on_a_host_without_banks_the_written_cache_stays() -> None:
    # What the guest sees does not change when it moves to a host that reports no banks.
    written = expand_domain(_given(NO_CPU, "1"), _host("amd-epyc-nps4-ccx")).xml
    assert expand_domain(written, _host("amd-epyc-nps4-ccx")).changes == []
    without = re.sub(r"\s*<cache>.*?</cache>", "", _host("amd-epyc-nps4-ccx"), flags=re.DOTALL)
    assert not parse_capabilities(without).l3_banks
    moved = expand_domain(written, without)
    assert _caches(moved.xml) == [{"level": "3", "mode": "emulate"}]
    assert [change for change in moved.changes if "cache" in change.path] == []


def test_an_unknown_cache_mode_is_refused() -> None:
    with pytest.raises(XmlError, match="<cpu><cache> mode 'emulated' is not one of emulate, passthrough, disable"):
        CpuCache.from_element(parse_xml("<cache level='3' mode='emulated'/>", "cache"))
    assert CpuCache.from_element(parse_xml("<cache level='3' mode='emulate'/>", "cache")) == L3_EMULATED


def test_a_guest_of_the_labs_two_node_hypervisor_gets_qemus_l3() -> None:
    # lab2's libvirt reports one L3 across both nodes (tests/lab/two-node.yml): a guest cell per node would
    # otherwise see whatever L3 the CPU model gives, here QEMU's per die, set explicitly.
    given = _given(NO_CPU, "0-1").replace("<vcpu>8</vcpu>", "<vcpu>4</vcpu>")
    result = expand_domain(given, _host("lab2-snc-l3"))
    assert _caches(result.xml) == [{"level": "3", "mode": "emulate"}]
    back = read_back(parse_xml(result.xml, "domain"), "l3-lab2")
    assert [dict(element.attrib) for element in back.iterfind("cpu/cache")] == [{"level": "3", "mode": "emulate"}]
