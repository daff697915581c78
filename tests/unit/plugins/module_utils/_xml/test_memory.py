# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Memory: ``<memory>``, ``<currentMemory>``, memory devices, ``<maxMemory>`` and huge pages under a layout."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cpu_numa import Numa
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import (
    Hugepages,
    MaxMemory,
    MemoryDevice,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml, to_text
from ansible_collections.vnuma.libvirt.tests.support.domain_cases import (
    GIB,
    PLAIN,
    c14n,
    make_layout,
    render,
    same_xml,
    with_dimms,
    xml,
)

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


@pytest.mark.parametrize(
    "device",
    [
        MemoryDevice(index=0, model="dimm", size_kib=131072, node=1, nodemask=(2, 3)),
        MemoryDevice(index=0, model="dimm", size_kib=1048576, node=0, nodemask=(0,), pagesize_kib=2048),
        MemoryDevice(index=0, model="dimm", size_kib=262144),
    ],
)
def test_a_dimm_is_written_by_its_element_model_and_reads_back_the_same(device: MemoryDevice) -> None:
    assert MemoryDevice.from_element(parse_xml(device.markup(), "a DIMM")) == device


def test_a_hot_added_dimm_is_bound_to_its_cell_and_host_nodes() -> None:
    written = MemoryDevice.from_element(parse_xml(MemoryDevice.dimm(1, 131072, (2, 3)).markup(), "a DIMM"))
    assert (written.model, written.node, written.size_kib, written.nodemask) == ("dimm", 1, 131072, (2, 3))
