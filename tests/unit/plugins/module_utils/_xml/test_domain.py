# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The owned parts of a domain as a whole: element models read and written, what apply leaves alone, changes, shape."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
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
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vcpus import Vcpu, Vcpus, VcpuState
from ansible_collections.vnuma.libvirt.tests.support.domain_cases import (
    GIB,
    PLAIN,
    RING,
    make_layout,
    render,
    with_dimms,
    xml,
)
from ansible_collections.vnuma.libvirt.tests.support.preservation import without_owned_parts

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
