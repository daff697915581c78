# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Guest HMAT in the domain: read, written, compared, checked as libvirt does; the host's from its capabilities."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, TopologyError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import (
    HostCache,
    HostInterconnect,
    cache_level_problem,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cpu_numa import Numa, NumaCell
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.hmat import Interconnect, NumaCache
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml

CAPABILITIES = Path(__file__).resolve().parents[3] / "fixtures" / "capabilities"
GIB = 1024 * 1024
CXL = (CAPABILITIES / "cxl-hmat-cache.xml").read_text(encoding="utf-8")

HAND_WRITTEN = """
      <interconnects>
        <latency initiator='0' target='0' type='access' value='5'/>
        <bandwidth initiator='0' target='1' type='access' value='2' unit='MiB'/>
      </interconnects>"""


def domain(vnuma: str, numa: str = "") -> str:
    cpu = f"<cpu><numa>{numa}</numa></cpu>" if numa else ""
    return (
        "<domain type='kvm'><name>hmat</name><memory unit='GiB'>4</memory><vcpu>4</vcpu>"
        f"<os><type arch='x86_64' machine='q35'>hvm</type></os>{cpu}{vnuma}</domain>"
    )


CELLS = (
    "<cell id='0' cpus='0-1' memory='1' unit='GiB'/>"
    "<cell id='1' cpus='2-3' memory='1' unit='GiB'>"
    "<cache level='1' associativity='direct' policy='writeback'><size value='8' unit='MiB'/>"
    "<line value='64' unit='B'/></cache></cell>"
)


def test_the_host_capabilities_hmat_is_read() -> None:
    host = parse_capabilities(CXL)
    assert host.node(3).caches == (HostCache(1, 262144, 64, "direct", "writeback"),)
    assert HostInterconnect("bandwidth", 1, 3, "write", 26214400) in host.interconnects
    assert len(host.interconnects) == 16


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (("type='read' value='92'", "type='fast' value='92'"), XmlError, "type 'fast' is not one of access, read"),
        (
            ("initiator='0' target='2' type='read' value='248'", "initiator='0' target='7' type='read' value='248'"),
            TopologyError,
            "the target is not a host node",
        ),
        (("level='1'", "level='4'"), XmlError, "above the limit of 3"),
        (("associativity='direct'", "associativity='set'"), XmlError, "associativity 'set' is not one of"),
        (("<size value='262144' unit='KiB'/>", ""), XmlError, "has no <size>"),
    ],
)
def test_bad_host_hmat_is_refused(edit: tuple[str, str], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_capabilities(CXL.replace(*edit, 1))


def test_hmat_is_read_written_and_compared_as_values() -> None:
    root = parse_xml(domain("", CELLS + HAND_WRITTEN), "domain")
    numa = DomainNuma.from_domain(root).numa
    assert numa is not None
    assert numa.cells[1].caches == (NumaCache(1, 8192, 64, "direct", "writeback"),)
    # 2 MiB is 2048 KiB: units are values, not text.
    assert numa.interconnects == (
        Interconnect("latency", 0, 0, "access", 5),
        Interconnect("bandwidth", 0, 1, "access", 2048),
    )
    again = Numa.from_element(parse_xml(numa.markup(), "numa"))
    assert again == numa
    assert ("cpu/numa/interconnects/bandwidth[0->1 access]", 2048) in numa.items()
    assert ("cpu/numa/cell[1]/cache[1]/size", 8192) in numa.items()


@pytest.mark.parametrize(
    ("interconnects", "caches", "message"),
    [
        ((Interconnect("latency", 1, 0, "access", 5),), (), "cell 1 has no vCPUs, so it cannot be an initiator"),
        ((Interconnect("latency", 0, 1, "access", 5, cache=2),), (), "no memory-side cache of level 2"),
        ((Interconnect("latency", 0, 0, "read", 5),) * 2, (), "is given twice"),
        ((), (NumaCache(4, 1024),), "HMAT has levels 1-3"),
        ((), (NumaCache(1, 1024), NumaCache(1, 2048)), "cache level twice"),
        # With HMAT, a cell without vCPUs needs a figure naming it, or libvirt has no initiator for it.
        ((Interconnect("latency", 0, 0, "read", 5),), (), "cell 1 has no vCPUs and no <interconnects> figure"),
    ],
)
def test_hmat_libvirt_or_qemu_would_refuse_is_refused(
    interconnects: tuple[Interconnect, ...], caches: tuple[NumaCache, ...], message: str
) -> None:
    numa = Numa((NumaCell(0, (0, 1), GIB), NumaCell(1, (), GIB, caches=caches)), interconnects)
    with pytest.raises(SpecError, match=message):
        numa.validate(2)


def test_a_link_is_given_one_way_only() -> None:
    numa = Numa(
        (NumaCell(0, (0,), GIB), NumaCell(1, (1,), GIB)),
        (Interconnect("latency", 0, 1, "access", 5), Interconnect("bandwidth", 1, 0, "access", 1024)),
    )
    with pytest.raises(SpecError, match="given the other way too"):
        numa.validate(2)


def test_none_keeps_hand_written_hmat_and_host_replaces_it() -> None:
    vnuma = "<vnuma mode='node'><partition nodeset='0-1'/></vnuma>"
    kept = expand_domain(domain(vnuma, CELLS + HAND_WRITTEN), CXL)
    root = parse_xml(kept.xml, "kept")
    # Kept as values: the cells change, so <numa> is written anew, its bandwidth in KiB as libvirt writes it.
    assert [entry.get("value") for entry in root.iterfind("cpu/numa/interconnects/*")] == ["5", "2048"]
    assert root.find("cpu/numa/cell[@id='1']/cache/size").get("value") == "8192"
    replaced = expand_domain(domain(vnuma.replace("mode='node'", "mode='node' hmat='host'"), CELLS + HAND_WRITTEN), CXL)
    root = parse_xml(replaced.xml, "replaced")
    figures = [
        (e.tag, e.get("initiator"), e.get("target"), e.get("type"), e.get("value"))
        for e in root.iterfind("cpu/numa/interconnects/*")
    ]
    assert figures == [
        ("latency", "0", "0", "read", "92"),
        ("latency", "0", "0", "write", "96"),
        ("latency", "1", "1", "read", "92"),
        ("latency", "1", "1", "write", "96"),
        ("bandwidth", "0", "0", "read", "104857600"),
        ("bandwidth", "0", "0", "write", "94371840"),
        ("bandwidth", "1", "1", "read", "104857600"),
        ("bandwidth", "1", "1", "write", "94371840"),
    ]
    # The CPU nodes 0 and 1 have no memory-side cache: the hand-written one goes with the rest.
    assert root.find("cpu/numa/cell/cache") is None
    # The change list names each replaced figure.
    paths = {change.path for change in replaced.changes}
    assert "cpu/numa/interconnects/latency[0->0 access]" in paths
    assert "cpu/numa/interconnects/latency[0->0 read]" in paths


def test_a_rerun_changes_nothing() -> None:
    vnuma = "<vnuma mode='node' cpuless_cells='yes' hmat='host'><partition nodeset='0-3'/></vnuma>"
    first = expand_domain(domain(vnuma), CXL)
    again = expand_domain(first.xml, CXL)
    assert again.changes == []
    assert again.xml == first.xml


@pytest.mark.parametrize(
    ("levels", "problem"),
    [
        ((1, 2, 3), None),
        ((), None),
        ((4,), "a memory-side cache of level 4; HMAT has levels 1-3"),
        ((0,), "a memory-side cache of level 0; HMAT has levels 1-3"),
        ((1, 1), "a memory-side cache level twice"),
    ],
)
def test_the_host_and_a_guest_cell_are_held_to_one_cache_level_rule(
    levels: tuple[int, ...], problem: str | None
) -> None:
    assert cache_level_problem(levels) == problem
    caches = tuple(NumaCache(level, 1024) for level in levels)
    numa = Numa((NumaCell(0, (0,), 1024 * 1024, caches=caches),))
    if problem is None:
        numa.validate()
    else:
        with pytest.raises(SpecError, match=f"^guest cell 0 has {problem}$"):
            numa.validate()


@pytest.mark.parametrize(("unit", "value", "line_bytes"), [("B", 64, 64), (None, 128, 128), ("KiB", 1, 1024)])
def test_a_cache_line_reads_the_same_in_the_host_and_in_a_guest_cell(
    unit: str | None, value: int, line_bytes: int
) -> None:
    unit_attr = f" unit='{unit}'" if unit is not None else ""
    cache = (
        f"<cache level='1' associativity='direct' policy='writeback'><size value='262144' unit='KiB'/>"
        f"<line value='{value}'{unit_attr}/></cache>"
    )
    fixture = (CAPABILITIES / "cxl-hmat-cache.xml").read_text()
    host_text = re.sub(r"<cache level='1'.*?</cache>", cache, fixture, count=1, flags=re.S)
    host = parse_capabilities(host_text)
    (host_cache,) = next(node.caches for node in host.nodes if node.caches)
    guest_cache = NumaCache.from_element(parse_xml(cache, "cache", root_tag="cache"))
    assert host_cache.line_bytes == guest_cache.line_bytes == line_bytes
    bad = cache.replace(f"value='{value}'{unit_attr}", "value='64' unit='parsec'")
    with pytest.raises(XmlError, match=r"<line>: unknown unit 'parsec'"):
        NumaCache.from_element(parse_xml(bad, "cache", root_tag="cache"))
    with pytest.raises(XmlError, match=r"<line>: unknown unit 'parsec'"):
        parse_capabilities(re.sub(r"<cache level='1'.*?</cache>", bad, fixture, count=1, flags=re.S))
