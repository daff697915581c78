# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The domain XML adapter: element models, the rules of rendering a layout, and what it must leave alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import validate_distances
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import GuestCell, GuestTopology, Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import Change, changes_as_diff
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cpu_numa import CpuTopology, Numa, NumaCell, Sibling
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cputune import Emulatorpin, Vcpupin
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma, read_guest_shape
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import (
    CurrentMemory,
    HugePage,
    Hugepages,
    MaxMemory,
    Memory,
    MemoryDevice,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.numatune import Memnode, Numatune, NumatuneMemory
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vcpus import Vcpu, Vcpus, VcpuState
from ansible_collections.vnuma.libvirt.tests.support.preservation import without_owned_parts

GIB = 1024 * 1024


def xml(text: str) -> Any:
    return parse_xml(text, "test XML")


def c14n(element: Any) -> str:
    return etree.tostring(element, method="c14n").decode()


def same_xml(element: Any, text: str) -> bool:
    return c14n(element) == c14n(xml(text))


# --------------------------------------------------------------------------------------------------
# Layouts built by hand (the partitioner is tested on its own)
# --------------------------------------------------------------------------------------------------

RING = ((10, 21, 31, 21), (21, 10, 21, 31), (31, 21, 10, 21), (21, 31, 21, 10))


def make_layout(
    cells: int = 2,
    vcpus: int = 8,
    current: int | None = None,
    memory_kib: int = GIB,
    pins: bool = True,
    emulator: tuple[int, ...] | None = None,
    enable_order: tuple[int, ...] | None = None,
    distances: tuple[tuple[int, ...], ...] | None = None,
    spec: VnumaSpec | None = None,
    **extra: Any,
) -> Layout:
    per_cell = vcpus // cells
    matrix = distances or tuple(
        tuple(RING[i][j] if cells <= 4 else (10 if i == j else 20) for j in range(cells)) for i in range(cells)
    )
    guest_cells = tuple(
        GuestCell(
            id=cell,
            vcpus=tuple(range(cell * per_cell, (cell + 1) * per_cell)),
            memory_kib=memory_kib,
            host_nodes=(cell,),
            memory_nodes=(cell,),
            distances=matrix[cell],
        )
        for cell in range(cells)
    )
    vcpu_pins = (
        tuple(tuple(range(4 * (v // per_cell), 4 * (v // per_cell) + 4)) for v in range(vcpus)) if pins else None
    )
    return Layout(
        spec=spec or VnumaSpec(),
        vcpus=vcpus,
        current_vcpus=vcpus if current is None else current,
        cells=guest_cells,
        topology=GuestTopology(sockets=cells, dies=1, cores=per_cell, threads=1),
        numatune_mode="strict",
        numatune_nodes=tuple(range(cells)),
        vcpu_pins=vcpu_pins,
        emulator_pins=emulator,
        enable_order=enable_order or tuple(range(vcpus)),
        **extra,
    )


PLAIN = """<domain type='kvm'>
  <name>g1</name>
  <memory unit='GiB'>2</memory>
  <currentMemory unit='GiB'>2</currentMemory>
  <vcpu>8</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
  </devices>
</domain>"""


def render(domain: str, layout: Layout) -> tuple[Any, DomainNuma, DomainNuma]:
    """Apply ``layout`` to ``domain``: (new root, model before, model after)."""
    root = xml(domain)
    before = DomainNuma.from_domain(root)
    target = DomainNuma.from_layout(layout, before)
    target.apply(root)
    return root, before, target


# --------------------------------------------------------------------------------------------------
# Element classes: read (with libvirt's other spellings), write (libvirt's spelling), round trip
# --------------------------------------------------------------------------------------------------

ROUND_TRIPS = [
    (
        Vcpu,
        "<vcpu placement='static' cpuset='0-3,^2' current='2'>4</vcpu>",
        Vcpu(count=4, placement="static", cpuset=(0, 1, 3), current=2),
        '<vcpu placement="static" cpuset="0-1,3" current="2">4</vcpu>',
    ),
    (Vcpu, "<vcpu current='4'> 4 </vcpu>", Vcpu(count=4), '<vcpu placement="static">4</vcpu>'),
    (Vcpu, "<vcpu placement='auto'>2</vcpu>", Vcpu(count=2, placement="auto"), '<vcpu placement="auto">2</vcpu>'),
    (
        VcpuState,
        "<vcpu order='3' hotpluggable='yes' enabled='yes' id='5'/>",
        VcpuState(id=5, enabled=True, hotpluggable=True, order=3),
        '<vcpu id="5" enabled="yes" hotpluggable="yes" order="3"/>',
    ),
    (VcpuState, "<vcpu id='1' enabled='no'/>", VcpuState(id=1, enabled=False), '<vcpu id="1" enabled="no"/>'),
    (
        Vcpus,
        "<vcpus><vcpu id='1' enabled='no' hotpluggable='yes'/><vcpu id='0' enabled='yes' hotpluggable='no'/></vcpus>",
        Vcpus((VcpuState(0, True, False), VcpuState(1, False, True))),
        '<vcpus><vcpu id="0" enabled="yes" hotpluggable="no"/><vcpu id="1" enabled="no" hotpluggable="yes"/></vcpus>',
    ),
    (
        CpuTopology,
        "<topology threads='2' cores='4' sockets='2'/>",
        CpuTopology(sockets=2, dies=1, cores=4, threads=2),
        '<topology sockets="2" dies="1" cores="4" threads="2"/>',
    ),
    (
        CpuTopology,
        "<topology sockets='1' dies='2' clusters='2' cores='2' threads='1'/>",
        CpuTopology(sockets=1, dies=2, cores=2, threads=1, clusters=2),
        '<topology sockets="1" dies="2" clusters="2" cores="2" threads="1"/>',
    ),
    (Sibling, "<sibling value='21' id='1'/>", Sibling(id=1, value=21), '<sibling id="1" value="21"/>'),
    (
        NumaCell,
        "<cell discard='yes' memAccess='shared' unit='GiB' memory='2' cpus='4-7,^5' id='1'>"
        "<distances><sibling id='1' value='10'/><sibling id='0' value='21'/></distances></cell>",
        NumaCell(1, (4, 6, 7), 2 * GIB, "shared", True, (Sibling(0, 21), Sibling(1, 10))),
        '<cell id="1" cpus="4,6-7" memory="2097152" unit="KiB" memAccess="shared" discard="yes">'
        '<distances><sibling id="0" value="21"/><sibling id="1" value="10"/></distances></cell>',
    ),
    (
        NumaCell,
        "<cell id='2' memory='524288'/>",
        NumaCell(2, (), 524288),
        '<cell id="2" memory="524288" unit="KiB"/>',
    ),
    (
        Numa,
        "<numa><cell memory='1' unit='G' cpus='0'/><cell memory='1048576' cpus='1'/></numa>",
        Numa((NumaCell(0, (0,), GIB), NumaCell(1, (1,), GIB))),
        '<numa><cell id="0" cpus="0" memory="1048576" unit="KiB"/><cell id="1" cpus="1" memory="1048576" unit="KiB"/>'
        "</numa>",
    ),
    (
        NumatuneMemory,
        "<memory nodeset='0-1' placement='static'/>",
        NumatuneMemory(mode="strict", nodeset=(0, 1)),
        '<memory mode="strict" nodeset="0-1"/>',
    ),
    (
        NumatuneMemory,
        "<memory mode='interleave' placement='auto'/>",
        NumatuneMemory(mode="interleave", placement="auto"),
        '<memory mode="interleave" placement="auto"/>',
    ),
    (
        Memnode,
        "<memnode nodeset='2,3' mode='preferred' cellid='1'/>",
        Memnode(cellid=1, mode="preferred", nodeset=(2, 3)),
        '<memnode cellid="1" mode="preferred" nodeset="2-3"/>',
    ),
    (
        Numatune,
        "<numatune><memnode cellid='1' nodeset='1'/><memory mode='strict' nodeset='0-1'/>"
        "<memnode cellid='0' nodeset='0'/></numatune>",
        Numatune(NumatuneMemory("strict", (0, 1)), (Memnode(0, "strict", (0,)), Memnode(1, "strict", (1,)))),
        '<numatune><memory mode="strict" nodeset="0-1"/><memnode cellid="0" mode="strict" nodeset="0"/>'
        '<memnode cellid="1" mode="strict" nodeset="1"/></numatune>',
    ),
    (
        Vcpupin,
        "<vcpupin cpuset='8,9,10' vcpu='3'/>",
        Vcpupin(vcpu=3, cpuset=(8, 9, 10)),
        '<vcpupin vcpu="3" cpuset="8-10"/>',
    ),
    (Emulatorpin, "<emulatorpin cpuset='0,2'/>", Emulatorpin((0, 2)), '<emulatorpin cpuset="0,2"/>'),
    (
        MaxMemory,
        "<maxMemory unit='GiB' slots='16'>64</maxMemory>",
        MaxMemory(kib=64 * GIB, slots=16),
        '<maxMemory slots="16" unit="KiB">67108864</maxMemory>',
    ),
    (
        HugePage,
        "<page nodeset='0-1' unit='M' size='2'/>",
        HugePage(size_kib=2048, nodeset=(0, 1)),
        '<page size="2048" unit="KiB" nodeset="0-1"/>',
    ),
    (HugePage, "<page size='1' unit='GiB'/>", HugePage(size_kib=GIB), '<page size="1048576" unit="KiB"/>'),
    (Hugepages, "<hugepages/>", Hugepages(()), "<hugepages/>"),
    (
        Hugepages,
        "<hugepages><page size='2048'/></hugepages>",
        Hugepages((HugePage(2048),)),
        '<hugepages><page size="2048" unit="KiB"/></hugepages>',
    ),
    (Memory, "<memory>4194304</memory>", Memory(4 * GIB), '<memory unit="KiB">4194304</memory>'),
    (Memory, "<memory unit='G'>4</memory>", Memory(4 * GIB), '<memory unit="KiB">4194304</memory>'),
    (
        CurrentMemory,
        "<currentMemory unit='b'>1073741824</currentMemory>",
        CurrentMemory(GIB),
        '<currentMemory unit="KiB">1048576</currentMemory>',
    ),
]


@pytest.mark.parametrize(("kind", "text", "model", "written"), ROUND_TRIPS)
def test_element_round_trip(kind: Any, text: str, model: Any, written: str) -> None:
    assert kind.from_element(xml(text)) == model
    element = model.to_element()
    assert to_text(element) == written
    assert kind.from_element(element) == model


def test_attributes_are_written_in_libvirt_order() -> None:
    cell = NumaCell(0, (0, 1), GIB, "private", False, (Sibling(0, 10),))
    assert list(cell.to_element().attrib) == ["id", "cpus", "memory", "unit", "memAccess", "discard"]
    assert list(Vcpu(4, "static", (0,), 2).to_element().attrib) == ["placement", "cpuset", "current"]
    assert list(VcpuState(3, True, True, 2).to_element().attrib) == ["id", "enabled", "hotpluggable", "order"]
    assert list(CpuTopology(1, 1, 2, 2).to_element().attrib) == ["sockets", "dies", "cores", "threads"]
    assert list(Memnode(0, "strict", (0,)).to_element().attrib) == ["cellid", "mode", "nodeset"]
    assert list(HugePage(2048, (0,)).to_element().attrib) == ["size", "unit", "nodeset"]


def test_cell_without_id_takes_its_position() -> None:
    numa = Numa.from_element(xml("<numa><cell cpus='0' memory='1024'/><cell cpus='1' memory='1024'/></numa>"))
    assert [cell.id for cell in numa.cells] == [0, 1]


def test_memory_device_is_read() -> None:
    device = MemoryDevice.from_element(
        xml("<memory model='dimm'><target><size unit='MiB'>512</size><node>1</node></target></memory>"), 3
    )
    assert device == MemoryDevice(index=3, model="dimm", size_kib=524288, node=1)
    assert not hasattr(device, "to_element")


@pytest.mark.parametrize(
    ("kind", "text", "fragment"),
    [
        (Vcpu, "<vcpu>four</vcpu>", "'four'"),
        (Vcpu, "<vcpu>-1</vcpu>", "'-1'"),
        (Vcpu, "<vcpu current='x'>4</vcpu>", "current='x'"),
        (Vcpu, "<vcpu cpuset='3-1'>4</vcpu>", "runs backwards"),
        (VcpuState, "<vcpu id='0'/>", "enabled is missing"),
        (VcpuState, "<vcpu id='0' enabled='true'/>", "not yes or no"),
        (CpuTopology, "<topology sockets='1' threads='1'/>", "cores is missing"),
        (NumaCell, "<cell id='0' cpus='0'/>", "memory is missing"),
        (NumaCell, "<cell id='0' memory='1' unit='parsec'/>", "unknown unit"),
        (NumaCell, "<cell id='0' memory='1.5' unit='GiB'/>", "'1.5'"),
        (Memnode, "<memnode cellid='0' mode='strict'/>", "nodeset is missing"),
        (Vcpupin, "<vcpupin vcpu='0' cpuset=''/>", "selects nothing"),
        (HugePage, "<page unit='KiB'/>", "size is missing"),
        (MemoryDevice, "<memory model='dimm'><target><node>0</node></target></memory>", "<size> is missing"),
        (Vcpu, "<cpu/>", "expected a <vcpu>"),
    ],
)
def test_malformed_elements_are_xml_errors(kind: Any, text: str, fragment: str) -> None:
    with pytest.raises(XmlError, match=None) as caught:
        kind.from_element(xml(text))
    assert fragment in str(caught.value)


# --------------------------------------------------------------------------------------------------
# Distances: nothing libvirt would reject (and crash on) may ever be rendered
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matrix", "fragment"),
    [
        (((11, 21), (21, 10)), "to itself is 11"),
        (((10, 21), (21, 20)), "to itself is 20"),
        (((10, 10), (10, 10)), "0->1 is 10"),
        (((10, 9), (9, 10)), "0->1 is 9"),
        (((10, 0), (0, 10)), "0->1 is 0"),
        (((10, 256), (256, 10)), "0->1 is 256"),
        (((10, 21), (31, 10)), "symmetric"),
        (((10, 21, 31), (21, 10, 21)), "has 3 distances for 2 cells"),
        (((10, 21), (21,)), "has 1 distances for 2 cells"),
        (((10, True), (True, 10)), "not an integer"),
        (((10, "21"), ("21", 10)), "not an integer"),
    ],
)
def test_invalid_distance_matrices_are_refused(matrix: Any, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_distances(matrix)
    assert fragment in str(caught.value)


def test_valid_distance_matrices_pass() -> None:
    validate_distances(RING)
    validate_distances(((10, 11), (11, 10)))
    validate_distances(((10, 255), (255, 10)))
    validate_distances(((10,),))


def _cells(rows: list[list[tuple[int, int]]]) -> Numa:
    return Numa(
        tuple(NumaCell(i, (i,), GIB, distances=tuple(Sibling(s, v) for s, v in row)) for i, row in enumerate(rows))
    )


@pytest.mark.parametrize(
    ("numa", "fragment"),
    [
        (_cells([[(0, 10), (2, 21)], [(0, 21), (1, 10)]]), "exactly one to each"),
        (_cells([[(0, 10)], [(0, 21), (1, 10)]]), "exactly one to each"),
        (_cells([[(0, 10), (1, 21), (1, 21)], [(0, 21), (1, 10)]]), "exactly one to each"),
        (_cells([[(0, 10), (1, 21)], []]), "every guest cell has <distances> or none"),
        (_cells([[(0, 10), (1, 10)], [(0, 10), (1, 10)]]), "0->1 is 10"),
        (Numa((NumaCell(0, (0,), GIB), NumaCell(2, (1,), GIB))), "must be 0..1"),
        (Numa((NumaCell(0, (0, 1), GIB), NumaCell(1, (1,), GIB))), "vCPU 1 is in guest cells 0 and 1"),
    ],
)
def test_invalid_cells_are_refused(numa: Numa, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        numa.to_element()
    assert fragment in str(caught.value)


def test_invalid_layout_distances_never_reach_the_document() -> None:
    layout = make_layout(cells=2, distances=((10, 21), (21, 10)))
    bad_cells = (layout.cells[0], replace(layout.cells[1], distances=(9, 10)))
    bad = replace(layout, cells=bad_cells)
    root = xml(PLAIN)
    before = c14n(root)
    with pytest.raises(SpecError, match="0->1 is 21 but 1->0 is 9"):
        DomainNuma.from_layout(bad, DomainNuma.from_domain(root))
    # A model built by hand is checked again by apply, before it writes anything.
    good = DomainNuma.from_layout(layout, DomainNuma.from_domain(root))
    forged = replace(good, numa=Numa((good.numa.cells[0], replace(good.numa.cells[1], distances=(Sibling(0, 21),)))))
    with pytest.raises(SpecError):
        forged.apply(root)
    assert c14n(root) == before


def test_one_cell_has_no_distances() -> None:
    root, _unused, target = render(PLAIN, make_layout(cells=1, distances=((10,),)))
    assert root.find("cpu/numa/cell/distances") is None
    assert target.numa.cells[0].distances == ()


def test_cpuless_cell_has_no_cpus_attribute() -> None:
    layout = make_layout(cells=2, pins=False)
    layout = replace(
        layout, cells=(replace(layout.cells[0], vcpus=tuple(range(8))), replace(layout.cells[1], vcpus=()))
    )
    root, _unused, _unused = render(PLAIN, layout)
    cells = root.findall("cpu/numa/cell")
    assert cells[0].get("cpus") == "0-7"
    assert "cpus" not in cells[1].attrib


# --------------------------------------------------------------------------------------------------
# <vcpu> and <vcpus>
# --------------------------------------------------------------------------------------------------


def states(root: Any) -> list[tuple[int, str, str, str | None]]:
    return [
        (int(v.get("id")), v.get("enabled"), v.get("hotpluggable"), v.get("order")) for v in root.iterfind("vcpus/vcpu")
    ]


def test_vcpus_balanced_enable_order() -> None:
    root, _unused, _unused = render(PLAIN, make_layout(vcpus=8, current=3, enable_order=(0, 4, 1, 5, 2, 6, 3, 7)))
    assert root.find("vcpu").get("current") == "3"
    assert root.find("vcpu").text == "8"
    assert states(root) == [
        (0, "yes", "no", "1"),
        (1, "yes", "no", "3"),
        (2, "no", "yes", None),
        (3, "no", "yes", None),
        (4, "yes", "yes", "2"),
        (5, "no", "yes", None),
        (6, "no", "yes", None),
        (7, "no", "yes", None),
    ]


def test_vcpus_prefix_is_the_boot_set() -> None:
    root, _unused, _unused = render(PLAIN, make_layout(vcpus=4, current=3, enable_order=(0, 2, 1, 3)))
    assert states(root) == [(0, "yes", "no", "1"), (1, "yes", "no", "3"), (2, "yes", "no", "2"), (3, "no", "yes", None)]


def test_all_vcpus_online_removes_vcpus_and_current() -> None:
    domain = PLAIN.replace(
        "<vcpu>8</vcpu>",
        "<vcpu current='1'>2</vcpu>\n  <vcpus>\n    <vcpu id='0' enabled='yes' hotpluggable='no'/>\n"
        "    <vcpu id='1' enabled='no' hotpluggable='yes'/>\n  </vcpus>",
    )
    root, before, target = render(domain, make_layout(vcpus=8))
    assert root.find("vcpus") is None
    assert "current" not in root.find("vcpu").attrib
    assert before.vcpu.current == 1
    assert target.vcpu.current is None
    assert target.vcpus is None


@pytest.mark.parametrize(
    ("enable_order", "current", "fragment"),
    [((1, 0, 2, 3), 1, "vCPU 0 must be online"), ((0, 1, 1, 3), 2, "not a permutation")],
)
def test_bad_enable_order_is_refused(enable_order: tuple[int, ...], current: int, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        render(PLAIN, make_layout(vcpus=4, current=current, enable_order=enable_order))


def test_vcpu_placement_auto_becomes_static_and_cpuset_stays() -> None:
    domain = PLAIN.replace("<vcpu>8</vcpu>", "<vcpu placement='auto' cpuset='0-15'>8</vcpu>")
    root, _unused, _unused = render(domain, make_layout())
    assert dict(root.find("vcpu").attrib) == {"placement": "static", "cpuset": "0-15"}


# --------------------------------------------------------------------------------------------------
# <cpu>
# --------------------------------------------------------------------------------------------------


def test_cpu_is_created_without_mode() -> None:
    root, _unused, _unused = render(PLAIN, make_layout())
    cpu = root.find("cpu")
    assert dict(cpu.attrib) == {}
    assert [child.tag for child in cpu] == ["topology", "numa"]
    assert cpu.getprevious().tag == "os"


def test_cpu_keeps_mode_model_and_features_in_schema_order() -> None:
    domain = PLAIN.replace(
        "</os>",
        "</os>\n  <cpu mode='custom' match='exact'>\n    <model fallback='allow'>Skylake-Server</model>\n"
        "    <vendor>Intel</vendor>\n    <feature policy='require' name='pcid'/>\n"
        "    <numa>\n      <cell id='0' cpus='0-7' memory='2' unit='GiB' memAccess='shared' discard='no'>\n"
        "        <cache level='1' associativity='direct' policy='writeback'>\n"
        "          <size value='10' unit='KiB'/>\n          <line value='8' unit='B'/>\n        </cache>\n"
        "      </cell>\n    </numa>\n  </cpu>",
    )
    root, _unused, _unused = render(domain, make_layout())
    cpu = root.find("cpu")
    assert dict(cpu.attrib) == {"mode": "custom", "match": "exact"}
    assert [child.tag for child in cpu] == ["model", "vendor", "topology", "feature", "numa"]
    cells = cpu.findall("numa/cell")
    # memAccess/discard and HMAT caches stay with the cell of the same id.
    assert (cells[0].get("memAccess"), cells[0].get("discard")) == ("shared", "no")
    assert cells[0].find("cache/size").get("value") == "10"
    assert "memAccess" not in cells[1].attrib
    assert cells[1].find("cache") is None


def test_interconnects_naming_lost_cells_are_refused() -> None:
    domain = PLAIN.replace(
        "</os>",
        "</os>\n  <cpu>\n    <numa>\n      <cell id='0' cpus='0-3' memory='1' unit='GiB'/>\n"
        "      <cell id='1' cpus='4-5' memory='1' unit='GiB'/>\n      <cell id='2' cpus='6-7' memory='1' unit='GiB'/>\n"
        "      <interconnects>\n        <latency initiator='0' target='2' type='access' value='5'/>\n"
        "      </interconnects>\n    </numa>\n  </cpu>",
    )
    root = xml(domain)
    before = c14n(root)
    target = DomainNuma.from_layout(make_layout(cells=2), DomainNuma.from_domain(root))
    with pytest.raises(SpecError, match="target='2'"):
        target.apply(root)
    assert c14n(root) == before
    # With enough cells they are kept.
    root, _unused, _unused = render(domain, make_layout(cells=4))
    assert root.find("cpu/numa/interconnects/latency").get("target") == "2"


# --------------------------------------------------------------------------------------------------
# <numatune>, <cputune>
# --------------------------------------------------------------------------------------------------


def test_numatune_is_rendered_from_the_layout() -> None:
    domain = PLAIN.replace(
        "<vcpu>8</vcpu>", "<vcpu>8</vcpu>\n  <numatune>\n    <memory placement='auto'/>\n  </numatune>"
    )
    spec = VnumaSpec(memory_mode="preferred")
    root, _unused, _unused = render(domain, make_layout(spec=spec))
    assert same_xml(
        root.find("numatune"),
        "<numatune>\n    <memory mode='strict' nodeset='0-1'/>\n"
        "    <memnode cellid='0' mode='preferred' nodeset='0'/>\n"
        "    <memnode cellid='1' mode='preferred' nodeset='1'/>\n  </numatune>",
    )


def test_cell_without_memory_nodes_is_refused() -> None:
    layout = make_layout()
    layout = replace(layout, cells=(layout.cells[0], replace(layout.cells[1], memory_nodes=())))
    with pytest.raises(SpecError, match="guest cell 1 has no host node"):
        render(PLAIN, layout)


CPUTUNE = """
  <cputune>
    <shares>2048</shares>
    <vcpupin vcpu='0' cpuset='0'/>
    <vcpupin vcpu='1' cpuset='1'/>
    <emulatorpin cpuset='0-1'/>
    <iothreadpin iothread='1' cpuset='2'/>
  </cputune>"""


def test_vcpupins_replace_old_ones_in_place_and_the_rest_stays() -> None:
    root, _unused, _unused = render(PLAIN.replace("<vcpu>8</vcpu>", "<vcpu>8</vcpu>" + CPUTUNE), make_layout())
    cputune = root.find("cputune")
    assert [child.tag for child in cputune] == ["shares"] + ["vcpupin"] * 8 + ["emulatorpin", "iothreadpin"]
    assert [pin.get("cpuset") for pin in cputune.iterfind("vcpupin")] == ["0-3"] * 4 + ["4-7"] * 4
    assert cputune.find("emulatorpin").get("cpuset") == "0-1"


def test_emulatorpin_is_replaced_when_the_layout_pins_it() -> None:
    root, _unused, _unused = render(
        PLAIN.replace("<vcpu>8</vcpu>", "<vcpu>8</vcpu>" + CPUTUNE), make_layout(emulator=(2, 3, 6))
    )
    assert root.find("cputune/emulatorpin").get("cpuset") == "2-3,6"


def test_pinning_none_removes_vcpupins_only() -> None:
    root, _unused, _unused = render(
        PLAIN.replace("<vcpu>8</vcpu>", "<vcpu>8</vcpu>" + CPUTUNE), make_layout(pins=False)
    )
    assert [child.tag for child in root.find("cputune")] == ["shares", "emulatorpin", "iothreadpin"]


def test_cputune_left_empty_is_removed() -> None:
    domain = PLAIN.replace(
        "<vcpu>8</vcpu>", "<vcpu>8</vcpu>\n  <cputune>\n    <vcpupin vcpu='0' cpuset='0'/>\n  </cputune>"
    )
    root, _unused, _unused = render(domain, make_layout(pins=False))
    assert root.find("cputune") is None
    root, _unused, _unused = render(PLAIN, make_layout(pins=False))
    assert root.find("cputune") is None


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


def test_current_memory_follows_when_there_is_no_balloon() -> None:
    root, _unused, target = render(PLAIN, make_layout(memory_kib=2 * GIB))
    assert root.find("memory").text == str(4 * GIB)
    assert root.find("currentMemory").text == str(4 * GIB)
    assert root.find("currentMemory").get("unit") == "KiB"
    assert target.current_memory_kib == 4 * GIB


def test_current_memory_is_kept_when_ballooned() -> None:
    domain = PLAIN.replace("<currentMemory unit='GiB'>2</currentMemory>", "<currentMemory unit='GiB'>1</currentMemory>")
    root, _unused, target = render(domain, make_layout(memory_kib=2 * GIB))
    assert root.find("memory").text == str(4 * GIB)
    assert target.current_memory_kib == GIB
    # Unchanged, so left as the user wrote it.
    assert (root.find("currentMemory").text, root.find("currentMemory").get("unit")) == ("1", "GiB")


def test_absent_current_memory_stays_absent() -> None:
    domain = PLAIN.replace("  <currentMemory unit='GiB'>2</currentMemory>\n", "")
    root, before, _unused = render(domain, make_layout())
    assert before.current_memory_kib == before.memory_kib
    assert root.find("currentMemory") is None


def test_memory_attributes_other_than_unit_stay() -> None:
    domain = PLAIN.replace("<memory unit='GiB'>2</memory>", "<memory dumpCore='off' unit='GiB'>2</memory>")
    root, _unused, _unused = render(domain, make_layout(memory_kib=2 * GIB))
    assert list(root.find("memory").attrib.items()) == [("dumpCore", "off"), ("unit", "KiB")]
    assert root.find("memory").text == str(4 * GIB)


def test_unchanged_elements_keep_their_spelling() -> None:
    domain = with_dimms(PLAIN.replace("<vcpu>8</vcpu>", "<vcpu placement='static'>8</vcpu>"))
    root, _unused, _unused = render(domain, make_layout(memory_kib=GIB))
    assert (root.find("memory").text, root.find("memory").get("unit")) == ("2816", "MiB")
    assert (root.find("maxMemory").text, root.find("maxMemory").get("unit")) == ("32", "GiB")
    assert to_text(root.find("vcpu")) == '<vcpu placement="static">8</vcpu>\n  '


DIMMS = """
    <memory model='dimm'>
      <target>
        <size unit='MiB'>512</size>
        <node>1</node>
      </target>
    </memory>
    <memory model='dimm'>
      <target>
        <size unit='MiB'>256</size>
        <node>0</node>
      </target>
    </memory>"""


def with_dimms(domain: str = PLAIN) -> str:
    domain = domain.replace(
        "<memory unit='GiB'>2</memory>",
        "<maxMemory slots='8' unit='GiB'>32</maxMemory>\n  <memory unit='MiB'>2816</memory>",
    )
    domain = domain.replace(
        "<currentMemory unit='GiB'>2</currentMemory>", "<currentMemory unit='MiB'>2816</currentMemory>"
    )
    return domain.replace("</emulator>", "</emulator>" + DIMMS)


def test_memory_counts_existing_dimms() -> None:
    root, before, target = render(with_dimms(), make_layout(memory_kib=2 * GIB))
    assert before.device_memory_kib == 768 * 1024
    assert root.find("memory").text == str(4 * GIB + 768 * 1024)
    assert root.find("currentMemory").text == str(4 * GIB + 768 * 1024)
    assert target.memory_kib == 4 * GIB + 768 * 1024
    assert target.max_memory == MaxMemory(32 * GIB, 8)


def test_dimm_on_a_lost_cell_is_refused_and_nothing_is_written() -> None:
    root = xml(with_dimms())
    before = c14n(root)
    with pytest.raises(SpecError) as caught:
        DomainNuma.from_layout(make_layout(cells=1, distances=((10,),)), DomainNuma.from_domain(root))
    message = str(caught.value)
    assert "memory device 0 (dimm)" in message
    assert "guest cell 1" in message
    assert "1 cells" in message
    # A target model that skipped from_layout is refused by apply too.
    target = DomainNuma.from_layout(make_layout(cells=2), DomainNuma.from_domain(xml(PLAIN)))
    with pytest.raises(SpecError, match="memory device 0"):
        one_cell = Numa((replace(target.numa.cells[0], cpus=tuple(range(8)), distances=()),))
        replace(target, numa=one_cell, vcpupins=()).apply(root)
    assert c14n(root) == before


def test_max_memory_is_written_only_when_asked() -> None:
    root, _unused, _unused = render(PLAIN, make_layout())
    assert root.find("maxMemory") is None
    root, _unused, _unused = render(PLAIN, make_layout(max_memory_kib=16 * GIB, memory_slots=4))
    assert same_xml(root.find("maxMemory"), "<maxMemory slots='4' unit='KiB'>16777216</maxMemory>")
    assert root.find("maxMemory").getnext().tag == "memory"


def test_max_memory_below_memory_is_refused() -> None:
    domain = PLAIN.replace(
        "<memory unit='GiB'>2</memory>",
        "<maxMemory slots='2' unit='GiB'>3</maxMemory>\n  <memory unit='GiB'>2</memory>",
    )
    with pytest.raises(SpecError, match="below the guest's memory"):
        render(domain, make_layout(memory_kib=2 * GIB))


def test_hugepages_cover_every_cell() -> None:
    domain = PLAIN.replace("<vcpu>8</vcpu>", "<memoryBacking>\n    <locked/>\n  </memoryBacking>\n  <vcpu>8</vcpu>")
    root, _unused, _unused = render(domain, make_layout(cells=4, hugepages_kib=2048))
    assert same_xml(
        root.find("memoryBacking"),
        "<memoryBacking>\n    <hugepages>\n      <page size='2048' unit='KiB' nodeset='0-3'/>\n    </hugepages>\n"
        "    <locked/>\n  </memoryBacking>",
    )


def test_hugepages_untouched_without_request() -> None:
    domain = PLAIN.replace("<vcpu>8</vcpu>", "<memoryBacking>\n    <hugepages/>\n  </memoryBacking>\n  <vcpu>8</vcpu>")
    root, _unused, target = render(domain, make_layout())
    assert target.hugepages == Hugepages(())
    assert root.find("memoryBacking/hugepages") is not None
    root, _unused, _unused = render(PLAIN, make_layout())
    assert root.find("memoryBacking") is None


def test_kept_hugepages_naming_lost_cells_are_refused() -> None:
    domain = PLAIN.replace(
        "<vcpu>8</vcpu>",
        "<memoryBacking>\n    <hugepages>\n      <page size='2048' nodeset='0-3'/>\n    </hugepages>\n"
        "  </memoryBacking>\n  <vcpu>8</vcpu>",
    )
    with pytest.raises(SpecError, match="names guest cells 2-3"):
        render(domain, make_layout(cells=2))


# --------------------------------------------------------------------------------------------------
# Everything else stays exactly as it was
# --------------------------------------------------------------------------------------------------

RICH = """<?xml version='1.0'?>
<domain type='kvm' id='7'>
  <name>db01</name>
  <uuid>6f1c2d4e-8a9b-4c3d-9e2f-0123456789ab</uuid>
  <title>Database</title>
  <description>prod</description>
  <metadata>
    <app:owner xmlns:app="http://example.com/app/1.0"><app:team>dba</app:team></app:owner>
  </metadata>
  <memory unit='KiB' dumpCore='off'>8388608</memory>
  <currentMemory unit='KiB'>6291456</currentMemory>
  <memtune>
    <hard_limit unit='GiB'>12</hard_limit>
  </memtune>
  <memoryBacking>
    <nosharepages/>
  </memoryBacking>
  <!-- sized by the DBA team -->
  <vcpu placement='auto' cpuset='0-15'>8</vcpu>
  <iothreads>2</iothreads>
  <cputune>
    <shares>2048</shares>
    <vcpupin vcpu='0' cpuset='0'/>
    <emulatorpin cpuset='0-1'/>
    <iothreadpin iothread='1' cpuset='2'/>
    <vcpusched vcpus='0' scheduler='fifo' priority='1'/>
  </cputune>
  <numatune>
    <memory mode='strict' placement='auto'/>
  </numatune>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
  </features>
  <cpu mode='custom' match='exact' check='partial'>
    <model fallback='allow'>Skylake-Server-IBRS</model>
    <topology sockets='1' dies='1' cores='8' threads='1'/>
    <feature policy='require' name='pcid'/>
    <numa>
      <cell id='0' cpus='0-7' memory='8' unit='GiB'/>
    </numa>
  </cpu>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
  </clock>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/db01.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <memballoon model='virtio'/>
  </devices>
  <seclabel type='none'/>
</domain>"""


@pytest.mark.parametrize("domain", [RICH, PLAIN])
@pytest.mark.parametrize(
    "layout",
    [
        make_layout(),
        make_layout(cells=4, current=5, enable_order=(0, 2, 4, 6, 1, 3, 5, 7)),
        make_layout(pins=False, emulator=(0, 1), hugepages_kib=2048, max_memory_kib=64 * GIB, memory_slots=8),
    ],
)
def test_everything_outside_the_owned_parts_is_unchanged(domain: str, layout: Layout) -> None:
    original = xml(domain)
    root, _unused, _unused = render(domain, layout)
    assert without_owned_parts(root) == without_owned_parts(original)


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    cells = draw(st.integers(1, 4))
    vcpus = cells * draw(st.integers(1, 4))
    current = draw(st.integers(1, vcpus))
    rest = draw(st.permutations(range(1, vcpus)))
    hotplug = draw(st.booleans())
    return make_layout(
        cells=cells,
        vcpus=vcpus,
        current=current,
        enable_order=(0, *rest),
        distances=tuple(tuple(RING[i][j] for j in range(cells)) for i in range(cells)),
        memory_kib=draw(st.sampled_from((512 * 1024, GIB, 3 * GIB))),
        pins=draw(st.booleans()),
        emulator=draw(st.none() | st.just((0, 1))),
        hugepages_kib=draw(st.none() | st.just(2048)),
        max_memory_kib=64 * GIB if hotplug else None,
        memory_slots=8 if hotplug else None,
    )


@given(layout=layouts(), domain=st.sampled_from((RICH, PLAIN)))
def test_any_layout_keeps_the_rest_and_reads_back_as_rendered(layout: Layout, domain: str) -> None:
    root, _unused, target = render(domain, layout)
    assert without_owned_parts(root) == without_owned_parts(xml(domain))
    text = to_text(root)
    back = DomainNuma.from_domain(xml(text))
    assert back.changes(target) == []
    # Rendering the same layout again is a fixed point, down to the text.
    target.apply(root)
    assert to_text(root) == text


def test_untouched_text_keeps_its_whitespace_and_comments() -> None:
    root, _unused, _unused = render(RICH, make_layout())
    text = to_text(root)
    for line in (
        "  <!-- sized by the DBA team -->\n  <vcpu",
        '  <clock offset="utc">\n    <timer name="rtc" tickpolicy="catchup"/>\n  </clock>\n',
        '    <iothreadpin iothread="1" cpuset="2"/>\n    <vcpusched',
    ):
        assert line in text


def test_created_elements_are_indented_like_their_siblings() -> None:
    root, _unused, _unused = render(PLAIN, make_layout(current=4))
    text = to_text(root)
    assert '\n  <vcpus>\n    <vcpu id="0" enabled="yes" hotpluggable="no" order="1"/>\n' in text
    assert '\n  <cpu>\n    <topology sockets="2" dies="1" cores="4" threads="1"/>\n    <numa>\n' in text
    assert '\n      <cell id="0" cpus="0-3" memory="1048576" unit="KiB">\n        <distances>\n' in text
    assert "\n  </cpu>\n  <devices>" in text


def test_compact_documents_stay_compact() -> None:
    compact = "<domain type='kvm'><name>c</name><memory>1048576</memory><vcpu>8</vcpu></domain>"
    root, _unused, _unused = render(compact, make_layout())
    assert "\n" not in to_text(root)


def test_applying_the_same_model_twice_changes_nothing() -> None:
    root, _unused, target = render(RICH, make_layout(current=3, enable_order=(0, 4, 1, 5, 2, 6, 3, 7)))
    first = to_text(root)
    target.apply(root)
    assert to_text(root) == first
    again = DomainNuma.from_domain(xml(first))
    assert again.changes(target) == []
    assert again == target


# --------------------------------------------------------------------------------------------------
# Differences
# --------------------------------------------------------------------------------------------------


def test_changes_list_each_value_with_its_path() -> None:
    root = xml(PLAIN)
    current = DomainNuma.from_domain(root)
    first = DomainNuma.from_layout(make_layout(), current)
    first.apply(root)
    applied = DomainNuma.from_domain(root)
    assert applied.changes(first) == []
    second = DomainNuma.from_layout(make_layout(memory_kib=2 * GIB, pins=False), applied)
    changes = applied.changes(second)
    assert Change("cpu/numa/cell[1]/memory", GIB, 2 * GIB) in changes
    assert Change("cputune/vcpupin[7]", "4-7", None) in changes
    assert Change("memory", 2 * GIB, 4 * GIB) in changes
    assert Change("currentMemory", 2 * GIB, 4 * GIB) in changes
    paths = [change.path for change in changes]
    assert paths.index("cpu/numa/cell[0]/memory") < paths.index("cputune/vcpupin[0]") < paths.index("memory")
    assert str(Change("vcpu/current", None, 4)) == "vcpu/current: None -> 4"


def test_changes_compare_models_not_spellings() -> None:
    spelled = xml(
        "<domain><vcpu placement='static' current='4'>4</vcpu><memory unit='GiB'>1</memory>"
        "<cpu><topology sockets='1' cores='4' threads='1'/>"
        "<numa><cell cpus='0,1,2,3' memory='1' unit='G'/></numa></cpu>"
        "<numatune><memory nodeset='0' placement='static'/><memnode cellid='0' nodeset='0'/></numatune></domain>"
    )
    canonical = xml(
        "<domain><vcpu>4</vcpu><memory>1048576</memory><currentMemory>1048576</currentMemory>"
        "<cpu><topology sockets='1' dies='1' cores='4' threads='1'/>"
        "<numa><cell id='0' cpus='0-3' memory='1048576' unit='KiB'/></numa></cpu>"
        "<numatune><memory mode='strict' nodeset='0'/><memnode cellid='0' mode='strict' nodeset='0'/></numatune>"
        "</domain>"
    )
    assert DomainNuma.from_domain(spelled).changes(DomainNuma.from_domain(canonical)) == []


def test_changes_as_diff() -> None:
    diff = changes_as_diff([Change("vcpu", 4, 8), Change("vcpu/current", None, 4)])
    assert diff == {"before": {"vcpu": 4, "vcpu/current": None}, "after": {"vcpu": 8, "vcpu/current": 4}}


def test_from_domain_reads_a_hand_written_layout() -> None:
    model = DomainNuma.from_domain(xml(RICH))
    assert model.vcpu == Vcpu(8, "auto", tuple(range(16)))
    assert model.numa == Numa((NumaCell(0, tuple(range(8)), 8 * GIB),))
    assert model.numatune == Numatune(NumatuneMemory("strict", None, "auto"))
    assert model.vcpupins == (Vcpupin(0, (0,)),)
    assert model.emulatorpin == Emulatorpin((0, 1))
    assert (model.memory_kib, model.current_memory_kib) == (8 * GIB, 6 * GIB)
    assert model.topology == CpuTopology(1, 1, 8, 1)
    assert model.hugepages is None and model.max_memory is None


def test_from_domain_of_an_empty_domain() -> None:
    assert DomainNuma.from_domain(xml("<domain/>")) == DomainNuma()


# --------------------------------------------------------------------------------------------------
# The guest's shape
# --------------------------------------------------------------------------------------------------


def test_read_guest_shape() -> None:
    shape = read_guest_shape(xml(with_dimms(PLAIN.replace("<vcpu>8</vcpu>", "<vcpu current='2'>8</vcpu>"))))
    assert (shape.name, shape.vcpus, shape.current_vcpus, shape.memory_kib) == ("g1", 8, 2, 2 * GIB)


def test_read_guest_shape_without_memory() -> None:
    shape = read_guest_shape(xml("<domain><name>m</name><vcpu>2</vcpu></domain>"))
    assert (shape.vcpus, shape.current_vcpus, shape.memory_kib) == (2, None, None)


@pytest.mark.parametrize(
    ("domain", "fragment"),
    [
        ("<domain><name>nov</name><memory>1024</memory></domain>", "guest nov: the domain has no <vcpu>"),
        ("<domain><name>nan</name><vcpu>many</vcpu></domain>", "guest nan: <vcpu>: 'many'"),
        ("<domain><name>cur</name><vcpu current='x'>2</vcpu></domain>", "guest cur: <vcpu>: attribute current='x'"),
    ],
)
def test_read_guest_shape_errors_name_the_guest(domain: str, fragment: str) -> None:
    with pytest.raises(XmlError) as caught:
        read_guest_shape(xml(domain))
    assert str(caught.value).startswith(fragment)
