# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ``<vnuma>`` element and the spec stored in ``<metadata>``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import (
    DISTRIBUTIONS,
    EMULATOR_PINS,
    MEMORY_MODES,
    MEMORY_SPLITS,
    MODES,
    PINNINGS,
    SPEC_OPTIONS,
    Kind,
    Option,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.domain import validate_run_options
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import (
    VNUMA_NS,
    read_stored_spec,
    spec_from_element,
    spec_to_element,
    store_spec,
    take_vnuma_element,
)

GIB = 1024 * 1024


def xml(text: str) -> Any:
    return parse_xml(text, "test XML")


def spec_of(text: str) -> VnumaSpec:
    return spec_from_element(xml(text))


def c14n(element: Any) -> str:
    return etree.tostring(element, method="c14n").decode()


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def test_minimal_element_gives_the_defaults() -> None:
    assert spec_of("<vnuma/>") == VnumaSpec()


def test_cover_letter_example() -> None:
    spec = spec_of(
        """<vnuma mode='node' distribution='contiguous'>
             <memory unit='KiB'>524288</memory>
             <partition nodeset="1-4,^3" cells="8"/>
           </vnuma>"""
    )
    assert spec == VnumaSpec(mode="node", distribution="contiguous", memory_kib=524288, nodeset="1-2,4", cells=8)


def test_every_attribute_and_child() -> None:
    spec = spec_of(
        """<vnuma mode='node' distribution='siblings' pinning='thread' memory_mode='preferred'
                  memory_split='vcpus' emulator_pin='nodes' cpuless_cells='yes'>
             <!-- a comment is fine -->
             <memory unit='GiB'>8</memory>
             <partition nodeset='0-1'/>
             <hugepages size='1' unit='G'/>
             <maxMemory slots='16' unit='GiB'>64</maxMemory>
           </vnuma>"""
    )
    assert spec == VnumaSpec(
        mode="node",
        distribution="siblings",
        pinning="thread",
        memory_mode="preferred",
        memory_split="vcpus",
        emulator_pin="nodes",
        cpuless_cells=True,
        memory_kib=8 * GIB,
        nodeset="0-1",
        hugepages_kib=GIB,
        max_memory_kib=64 * GIB,
        memory_slots=16,
    )


def test_units_default_to_kib() -> None:
    spec = spec_of("<vnuma><memory>1024</memory><hugepages size='2048'/></vnuma>")
    assert (spec.memory_kib, spec.hugepages_kib) == (1024, 2048)


def test_partition_is_refused_in_host_mode() -> None:
    # The proposal ignored it; a request the collection would drop is refused (docs/partitioning.md).
    with pytest.raises(SpecError) as caught:
        spec_of("<vnuma mode='host'><partition nodeset='0,2' cells='2'/></vnuma>")
    assert str(caught.value) == (
        "<vnuma>: nodeset '0,2' applies to mode node only; mode host mirrors every host node with CPUs"
    )
    with pytest.raises(SpecError) as caught:
        spec_of("<vnuma><partition cells='2'/></vnuma>")
    assert str(caught.value) == (
        "<vnuma>: cells 2 applies to mode node only; mode host mirrors every host node with CPUs"
    )


def test_a_stored_partition_is_dropped_in_host_mode() -> None:
    # Earlier versions stored it (and ignored it): nobody typed it now, and the guest must stay manageable.
    stored = f"<v:vnuma xmlns:v='{VNUMA_NS}' mode='host'><v:partition nodeset='0,2' cells='2'/></v:vnuma>"
    assert spec_of(stored) == VnumaSpec(mode="host")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("<vnuma mdoe='host'/>", ("unknown attribute(s) mdoe", "known: mode")),
        ("<vnuma mode='host' distrbution='x' pining='core'/>", ("distrbution, pining",)),
        ("<vnuma><memroy>1</memroy></vnuma>", ("unknown child <memroy>",)),
        ("<vnuma><partition nodeset='0' cell='2'/></vnuma>", ("<vnuma><partition>", "unknown attribute(s) cell")),
        ("<vnuma><memory units='GiB'>1</memory></vnuma>", ("unknown attribute(s) units",)),
        ("<vnuma><memory>1</memory><memory>2</memory></vnuma>", ("<memory> is given more than once",)),
        ("<vnuma><hugepages size='2'><page/></hugepages></vnuma>", ("unknown child <page>",)),
        ("<vnuma><x:memory xmlns:x='urn:x'>1</x:memory></vnuma>", ("unknown child",)),
        ("<vnuma mode='hots'/>", ("<vnuma>: mode 'hots' is not one of host, node, auto",)),
        ("<vnuma distribution='spread'/>", ("distribution 'spread'",)),
        ("<vnuma pinning='socket'/>", ("pinning 'socket'",)),
        ("<vnuma memory_mode='lax'/>", ("memory_mode 'lax'",)),
        ("<vnuma cpuless_cells='true'/>", ("cpuless_cells='true'", "yes or no")),
        ("<vnuma>text</vnuma>", ("holds text 'text'",)),
        ("<vnuma><memory>lots</memory></vnuma>", ("'lots' is not a non-negative integer",)),
        ("<vnuma><memory/></vnuma>", ("has no size",)),
        ("<vnuma><memory unit='parsec'>1</memory></vnuma>", ("unknown unit 'parsec'",)),
        ("<vnuma><partition nodeset='4-1'/></vnuma>", ("runs backwards",)),
        ("<vnuma><partition cells='two'/></vnuma>", ("cells 'two'",)),
        ("<vnuma><partition cells='0'/></vnuma>", ("<vnuma><partition>: cells 0 must be an integer from 1 to 128",)),
        ("<vnuma><hugepages unit='MiB'/></vnuma>", ("has no size",)),
        ("<vnuma><maxMemory unit='GiB'>64</maxMemory></vnuma>", ("needs a slots attribute",)),
        (
            "<vnuma><maxMemory slots='300'>64</maxMemory></vnuma>",
            ("<vnuma><maxMemory>: memory_slots 300 must be an integer from 1 to 256",),
        ),
    ],
)
def test_bad_elements_are_spec_errors_naming_the_culprit(text: str, fragments: tuple[str, ...]) -> None:
    with pytest.raises(SpecError) as caught:
        spec_of(text)
    for fragment in fragments:
        assert fragment in str(caught.value)


COUNTS = [item for item in SPEC_OPTIONS if item.kind is Kind.COUNT]


def count_element(item: Option, written: str) -> str:
    """A ``<vnuma>`` that writes ``written`` for the count ``item``, valid otherwise."""
    attribute = f"{item.xml_attribute}='{written}'"
    if item.xml_child == "maxMemory":
        # Slots go with a size: memory hotplug needs both.
        return f"<vnuma mode='node'><maxMemory {attribute} unit='GiB'>64</maxMemory></vnuma>"
    return f"<vnuma mode='node'><{item.xml_child} {attribute}/></vnuma>"


def module_message(item: Option, given: Any) -> str:
    """What vnuma_domain says of ``given`` for the option ``item`` (its checks before anything is read)."""
    partners = {"max_memory": "64 GiB"} if item.name == "memory_slots" else {}
    with pytest.raises(SpecError) as caught:
        validate_run_options({"guests": ["g"], "mode": "node", **partners, item.name: given})
    return caught.value.message


@pytest.mark.parametrize("item", COUNTS, ids=lambda item: item.name)
@pytest.mark.parametrize("written", ["1.5", "0", "-1", "2.0", "inf", "nan", "two", "+2", "above"])
def test_a_bad_count_in_vnuma_gets_the_modules_message(item: Option, written: str) -> None:
    """cells='1.5' said "is not a non-negative integer", cells: "1.5" "must be a positive integer", and neither gave the
    range: one option, one message (the option, the value, from 1 to its limit), the element naming where."""
    assert item.limit is not None
    if written == "above":
        written = str(item.limit + 1)
    with pytest.raises(SpecError) as caught:
        spec_of(count_element(item, written))
    expected = module_message(item, written)
    assert caught.value.message == f"<vnuma><{item.xml_child}>: {expected}"
    assert expected.startswith(f"{item.name} ")
    assert f"must be an integer from 1 to {item.limit} ({item.why})" in expected


@pytest.mark.parametrize("item", COUNTS, ids=lambda item: item.name)
def test_a_count_in_vnuma_reads_as_the_module_reads_it(item: Option) -> None:
    assert item.limit is not None
    for written, number in ((" 2 ", 2), ("007", 7), (str(item.limit), item.limit)):
        assert getattr(spec_of(count_element(item, written)), item.field) == number


def test_hugepages_in_vnuma_are_bounded_by_the_page_limit() -> None:
    """A page size over all of memory's limit was refused with memory's limit (4 PiB), the module's with a page's."""
    with pytest.raises(SpecError) as caught:
        spec_of("<vnuma><hugepages size='8' unit='PiB'/></vnuma>")
    assert caught.value.message == (
        "<vnuma><hugepages> size: 8 PiB is above the limit of 16 GiB (the largest page size Linux has)"
    )


def test_not_a_vnuma_element() -> None:
    with pytest.raises(XmlError, match="expected a <vnuma> element"):
        spec_of("<numa/>")


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def test_written_with_every_attribute_in_a_fixed_order() -> None:
    element = spec_to_element(VnumaSpec(mode="node", nodeset="1-2", memory_kib=GIB))
    assert to_text(element) == (
        '<vnuma mode="node" distribution="contiguous" pinning="node" memory_mode="strict" memory_split="even" '
        'emulator_pin="none" cpuless_cells="no" memory_device="dimm" hmat="none" pci_numa_affinity="legacy" '
        'device_locality="none" emulator_threads="share" iothreads="none"><memory unit="KiB">1048576</memory>'
        '<partition nodeset="1-2"/></vnuma>'
    )


def test_every_option_written_where_the_table_says() -> None:
    spec = VnumaSpec(
        mode="node",
        distribution="interleave",
        memory_kib=GIB,
        nodeset="0-1",
        cells=4,
        pinning="core",
        memory_mode="preferred",
        memory_split="vcpus",
        hugepages_kib=2048,
        emulator_pin="nodes",
        cpuless_cells=True,
        max_memory_kib=4 * GIB,
        memory_slots=8,
        hmat="synthesize",
        pci_numa_affinity="socket",
        device_locality="all",
        device_cells=[{"target": "vda", "cell": 1}, {"mac": "52:54:00:12:34:56", "cell": 0}],
        emulator_threads="share",
        iothreads="per_disk",
    )
    assert to_text(spec_to_element(spec)) == (
        '<vnuma mode="node" distribution="interleave" pinning="core" memory_mode="preferred" memory_split="vcpus" '
        'emulator_pin="nodes" cpuless_cells="yes" memory_device="dimm" hmat="synthesize" '
        'pci_numa_affinity="socket" device_locality="all" emulator_threads="share" iothreads="per_disk">'
        '<memory unit="KiB">1048576</memory>'
        '<partition nodeset="0-1" cells="4"/><hugepages size="2048" unit="KiB"/>'
        '<maxMemory slots="8" unit="KiB">4194304</maxMemory>'
        '<devices cells="vda=1,52:54:00:12:34:56=0"/></vnuma>'
    )
    assert spec_from_element(spec_to_element(spec)) == spec


def test_the_known_attributes_and_children_come_from_the_table() -> None:
    with pytest.raises(SpecError) as caught:
        spec_of("<vnuma colour='red'/>")
    assert str(caught.value) == (
        "<vnuma>: unknown attribute(s) colour; known: mode, distribution, pinning, memory_mode, memory_split, "
        "emulator_pin, cpuless_cells, memory_device, hmat, pci_numa_affinity, device_locality, emulator_threads, "
        "iothreads"
    )
    with pytest.raises(SpecError) as caught:
        spec_of("<vnuma><numa/></vnuma>")
    assert str(caught.value) == (
        "<vnuma>: unknown child <numa>; known: memory, partition, hugepages, maxMemory, devices"
    )
    for child, known in (
        ("memory", "unit"),
        ("partition", "nodeset, cells"),
        ("hugepages", "size, unit"),
        ("maxMemory", "slots, unit"),
        ("devices", "cells"),
    ):
        with pytest.raises(SpecError) as caught:
            spec_of(f"<vnuma><{child} colour='red'/></vnuma>")
        assert str(caught.value) == f"<vnuma><{child}>: unknown attribute(s) colour; known: {known}"


def test_namespaced_form() -> None:
    element = spec_to_element(VnumaSpec(hugepages_kib=2048, max_memory_kib=16 * GIB, memory_slots=4), namespaced=True)
    assert element.tag == f"{{{VNUMA_NS}}}vnuma"
    assert element.prefix == "vnuma"
    assert [child.tag for child in element] == [f"{{{VNUMA_NS}}}hugepages", f"{{{VNUMA_NS}}}maxMemory"]
    assert spec_from_element(element) == VnumaSpec(hugepages_kib=2048, max_memory_kib=16 * GIB, memory_slots=4)


def test_namespaced_element_refuses_plain_children() -> None:
    element = xml(f"<v:vnuma xmlns:v='{VNUMA_NS}'><memory>1</memory></v:vnuma>")
    with pytest.raises(SpecError, match="unknown child <memory>"):
        spec_from_element(element)


_nodesets = st.sets(st.integers(0, 64), min_size=1).map(lambda ids: ",".join(map(str, sorted(ids))))


@st.composite
def _specs(draw: st.DrawFn) -> VnumaSpec:
    mode = draw(st.sampled_from(MODES))
    # host mode takes no partition (refused with it): nodeset and cells only in node mode.
    partitioned = mode == "node"
    return VnumaSpec(
        mode=mode,
        distribution=draw(st.sampled_from(DISTRIBUTIONS)),
        memory_kib=draw(st.none() | st.integers(1, 2**40)),
        nodeset=draw(st.none() | _nodesets) if partitioned else None,
        cells=draw(st.none() | st.integers(1, 64)) if partitioned else None,
        pinning=draw(st.sampled_from(PINNINGS)),
        memory_mode=draw(st.sampled_from(MEMORY_MODES)),
        memory_split=draw(st.sampled_from(MEMORY_SPLITS)),
        hugepages_kib=draw(st.none() | st.sampled_from((4, 2048, GIB))),
        emulator_pin=draw(st.sampled_from(EMULATOR_PINS)),
        cpuless_cells=draw(st.booleans()),
    )


specs = _specs()


@given(spec=specs, namespaced=st.booleans(), hotplug=st.none() | st.tuples(st.integers(1, 2**40), st.integers(1, 256)))
def test_round_trip(spec: VnumaSpec, namespaced: bool, hotplug: tuple[int, int] | None) -> None:
    if hotplug is not None:
        spec = VnumaSpec(**{**spec.__dict__, "max_memory_kib": hotplug[0], "memory_slots": hotplug[1]})
    text = to_text(spec_to_element(spec, namespaced=namespaced))
    assert spec_from_element(xml(text)) == spec


# --------------------------------------------------------------------------------------------------
# <metadata>
# --------------------------------------------------------------------------------------------------

DOMAIN = """<domain type='kvm'>
  <name>g1</name>
  <uuid>6f1c2d4e-8a9b-4c3d-9e2f-0123456789ab</uuid>
  <description>web</description>
  <memory unit='GiB'>2</memory>
  <vcpu>4</vcpu>
</domain>"""

WITH_METADATA = DOMAIN.replace(
    "<memory",
    """<metadata>
    <app:owner xmlns:app="http://example.com/app/1.0">
      <app:team>web</app:team>
    </app:owner>
  </metadata>
  <memory""",
)


def test_store_creates_metadata_where_libvirt_writes_it() -> None:
    root = xml(DOMAIN)
    spec = VnumaSpec(mode="node", cells=2)
    store_spec(root, spec)
    assert [child.tag for child in root] == ["name", "uuid", "description", "metadata", "memory", "vcpu"]
    assert read_stored_spec(root) == spec
    text = to_text(root)
    assert '\n  <metadata>\n    <vnuma:vnuma xmlns:vnuma="urn:vnuma:libvirt:1.0" mode="node"' in text
    assert '\n      <vnuma:partition cells="2"/>\n    </vnuma:vnuma>\n  </metadata>\n  <memory' in text


def test_store_keeps_other_metadata() -> None:
    root = xml(WITH_METADATA)
    other = c14n(root.find("metadata")[0])
    store_spec(root, VnumaSpec())
    store_spec(root, VnumaSpec(distribution="interleave"))
    metadata = root.find("metadata")
    assert len(metadata) == 2
    assert c14n(metadata[0]) == other
    assert read_stored_spec(root) == VnumaSpec(distribution="interleave")


def test_store_replaces_only_our_child_in_place() -> None:
    root = xml(
        WITH_METADATA.replace("<app:owner", f"<vnuma:vnuma xmlns:vnuma='{VNUMA_NS}' mode='node'/>\n    <app:owner")
    )
    store_spec(root, VnumaSpec(pinning="core"))
    metadata = root.find("metadata")
    assert [etree.QName(child).localname for child in metadata] == ["vnuma", "owner"]
    assert read_stored_spec(root) == VnumaSpec(pinning="core")


def test_read_without_stored_spec() -> None:
    assert read_stored_spec(xml(DOMAIN)) is None
    assert read_stored_spec(xml(WITH_METADATA)) is None


def test_read_refuses_two_stored_specs() -> None:
    stored = f"<vnuma:vnuma xmlns:vnuma='{VNUMA_NS}'/>"
    root = xml(DOMAIN.replace("<memory", f"<metadata>{stored}{stored}</metadata><memory"))
    with pytest.raises(XmlError, match="2 <vnuma:vnuma> elements"):
        read_stored_spec(root)


def test_read_a_stored_spec_as_libvirt_prints_it() -> None:
    root = xml(
        DOMAIN.replace(
            "<memory",
            '<metadata>\n    <vnuma:vnuma xmlns:vnuma="urn:vnuma:libvirt:1.0" mode="node" distribution="interleave">\n'
            '      <vnuma:memory unit="KiB">1048576</vnuma:memory>\n    </vnuma:vnuma>\n  </metadata>\n  <memory',
        )
    )
    assert read_stored_spec(root) == VnumaSpec(mode="node", distribution="interleave", memory_kib=GIB)


# --------------------------------------------------------------------------------------------------
# The template's <vnuma> element
# --------------------------------------------------------------------------------------------------


def test_take_parses_and_removes_the_element() -> None:
    root = xml(DOMAIN.replace("  <vcpu>", "  <vnuma mode='node'>\n    <partition cells='2'/>\n  </vnuma>\n  <vcpu>"))
    assert take_vnuma_element(root) == VnumaSpec(mode="node", cells=2)
    assert root.find("vnuma") is None
    assert to_text(root) == to_text(xml(DOMAIN))


def test_take_without_element() -> None:
    root = xml(DOMAIN)
    assert take_vnuma_element(root) is None
    assert to_text(root) == to_text(xml(DOMAIN))


@pytest.mark.parametrize("direct", ["", "<vnuma mode='node'/>"])
def test_take_refuses_an_element_below_a_child_of_the_domain(direct: str) -> None:
    text = DOMAIN.replace(
        "<description>web</description>", f"<description>web</description>{direct}<devices><vnuma/></devices>"
    )
    root = xml(text)
    with pytest.raises(SpecError, match=r"a <vnuma> element sits inside /domain/devices; it must be a direct child"):
        take_vnuma_element(root)
    assert c14n(root) == c14n(xml(text))


def test_take_refuses_two_elements() -> None:
    root = xml(DOMAIN.replace("<vcpu>", "<vnuma/><vnuma/><vcpu>"))
    with pytest.raises(SpecError, match="2 <vnuma> elements"):
        take_vnuma_element(root)


def test_take_leaves_the_domain_alone_when_the_element_is_bad() -> None:
    text = DOMAIN.replace("<vcpu>", "<vnuma mode='nodes'/><vcpu>")
    root = xml(text)
    with pytest.raises(SpecError):
        take_vnuma_element(root)
    assert c14n(root) == c14n(xml(text))
