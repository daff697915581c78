# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A guest that moves, in its domain XML: the planner's inputs read back, and the host side rewritten.

Golden cases: a guest laid out for its host (``fixtures/migration/<case>-in.xml``, copies of expansion
outputs) planned for another host and rewritten must give ``fixtures/migration/<case>-to-<host>.xml`` exactly;
``pytest --regenerate-output`` rewrites them.  Every case also checks that nothing but the host side
changed: the documents with the host-side values blanked are equal in canonical form.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import check_capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, VnumaError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_capacity import check_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_planner import plan_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import place_guests
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.hook_plan import others_running
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import dedicated_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import (
    HOST_SIDE_PATHS,
    host_side,
    moving_guest_from_xml,
    rewrite_host_bindings,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
MIGRATION = FIXTURES / "migration"

# (golden expansion output, the host it was laid out for, the destination)
CASES = [
    ("smt2-thread-pinning", "intel-2s-smt2", "smt2-far-siblings"),
    ("smt2-core-pinning", "intel-2s-smt2", "unequal-nodes"),
    ("host-ring-contiguous", "seed-4node-ring", "amd-2s-nps4"),
    ("node-ring-more-cells", "seed-4node-ring", "intel-2s-smt2"),
    ("ring-memory-hotplug", "seed-4node-ring", "unequal-nodes"),
    ("ring-virtio-mem", "seed-4node-ring", "amd-2s-nps4"),
    ("node-cxl-cpuless-cell", "intel-snc2-cxl", "cxl-hmat-cache"),
]


def _source(case: str) -> str:
    return (MIGRATION / f"{case}-in.xml").read_text(encoding="utf-8")


def guest_side(text: str) -> str:
    """The document with every host-side value blanked, in canonical form: what the guest sees."""
    root = parse_xml(text, "domain")
    for path in HOST_SIDE_PATHS:
        if path.endswith("]"):
            element_path, attribute = path[:-1].split("[@")
            for element in root.iterfind(element_path):
                if element.get(attribute) is not None:
                    element.set(attribute, "")
        else:
            for element in root.iterfind(path):
                element.text = ""
    for pin in root.iterfind("cputune/vcpupin"):
        # A pin added for a vCPU the source left unpinned is host side too.
        parent = pin.getparent()
        assert parent is not None
        parent.remove(pin)
    return etree.tostring(root, method="c14n").decode()


@pytest.mark.parametrize(("case", "source", "destination"), CASES, ids=[f"{c}-to-{d}" for c, _s, d in CASES])
def test_golden(case: str, source: str, destination: str, regenerate_output: bool) -> None:
    text = _source(case)
    guest = moving_guest_from_xml(text, host(source))
    plan = plan_destination(guest, host(destination))
    result = rewrite_host_bindings(text, plan)
    expected = MIGRATION / f"{case}-to-{destination}.xml"
    if regenerate_output:
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_text(result, encoding="utf-8")
    assert result == expected.read_text(encoding="utf-8")
    assert guest_side(result) == guest_side(text)
    # The rewritten guest reads back as the plan says, and planning it again on the destination keeps it.
    again = moving_guest_from_xml(result, host(destination))
    assert [cell.source_nodes for cell in again.cells] == [cell.memory_nodes for cell in plan.cells]
    replanned = plan_destination(again, host(destination))
    assert replanned.vcpu_pins == plan.vcpu_pins
    assert [cell.host_nodes for cell in replanned.cells] == [cell.host_nodes for cell in plan.cells]


def test_reader_takes_the_stored_spec_and_the_live_layout() -> None:
    guest = moving_guest_from_xml(_source("smt2-core-pinning"))
    assert guest.name == "smt2-core"
    assert guest.pinning == "core"
    assert [cell.source_nodes for cell in guest.cells] == [(0,), (1,)]
    assert guest.distances == ((10, 21), (21, 10))
    assert guest.threads == 2


def test_reader_of_a_hand_pinned_guest() -> None:
    """No stored spec: single-CPU pins read as dedicated (the conservative reading), emulatorpin as nodes."""
    text = """<domain type='qemu'><name>hand</name><memory unit='MiB'>512</memory><vcpu>2</vcpu>
      <cputune><vcpupin vcpu='0' cpuset='3'/><vcpupin vcpu='1' cpuset='4'/><emulatorpin cpuset='5'/></cputune>
      <numatune><memnode cellid='0' mode='preferred' nodeset='1'/></numatune>
      <cpu><numa><cell id='0' cpus='0-1' memory='512' unit='MiB'/></numa></cpu></domain>"""
    guest = moving_guest_from_xml(text)
    assert (guest.pinning, guest.memory_mode, guest.emulator_pin) == ("thread", "preferred", "nodes")
    assert guest.distances == ()
    assert guest.cells[0].source_nodes == (1,)


def test_a_plan_for_another_guest_is_refused() -> None:
    text = _source("smt2-core-pinning")
    plan = plan_destination(moving_guest_from_xml(text), host("intel-2s-smt2"))
    other = text.replace("<name>smt2-core</name>", "<name>other</name>")
    with pytest.raises(XmlError, match="the plan is for guest smt2-core, the domain XML is guest other"):
        rewrite_host_bindings(other, plan)


def test_a_destination_too_small_names_the_cell() -> None:
    """The ring's 1 GiB cells on the lab's nodes of under 1 GiB each."""
    guest = moving_guest_from_xml(_source("ring-memory-hotplug"))
    with pytest.raises(PlacementError) as caught:
        plan_destination(guest, host("lab4-hmat"))
    assert str(caught.value) == (
        "guest ring-hotplug: guest cell 0 (1 GiB, 2 vCPUs) must live on one destination node, and none of the "
        "destination's nodes 0-2 can hold it; the roomiest destination node 2 has 1031528 KiB free"
    )


def test_restore_on_the_same_host_changes_nothing() -> None:
    text = _source("host-ring-contiguous")
    plan = plan_destination(moving_guest_from_xml(text), host("seed-4node-ring"))
    assert parse_xml(rewrite_host_bindings(text, plan), "x").getroottree() is not None
    assert etree.tostring(parse_xml(rewrite_host_bindings(text, plan), "x"), method="c14n") == etree.tostring(
        parse_xml(text, "x"), method="c14n"
    )


def test_reader_keeps_an_isolated_emulator() -> None:
    """emulator_threads isolate: the <emulatorpin> is the emulator's own CPU, planned again as one."""
    text = _source("smt2-thread-pinning").replace(
        "emulator_pin='nodes'", "emulator_pin='none' emulator_threads='isolate'"
    )
    text = text.replace("<emulatorpin cpuset='2-7,10-15,18-23,26-31'/>", "<emulatorpin cpuset='2'/>")
    guest = moving_guest_from_xml(text)
    assert (guest.emulator_threads, guest.emulator_pin) == ("isolate", "none")
    plan = plan_destination(guest, host("smt2-far-siblings"))
    assert plan.emulator_pins is not None and len(plan.emulator_pins) == 1
    assert plan.emulator_pins[0] in plan.held_cpus
    result = parse_xml(rewrite_host_bindings(text, plan), "domain")
    assert result.find("cputune/emulatorpin").get("cpuset") == str(plan.emulator_pins[0])  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("pinning='thread'", "pinning='bogus'", "pinning 'bogus' is not one of"),
        ("device_locality='none'/>", "device_locality='none'><vnuma:whatever/></vnuma:vnuma>", "unknown child"),
    ],
)
def test_a_stored_spec_that_cannot_be_read_says_so(old: str, new: str, problem: str) -> None:
    text = _source("smt2-thread-pinning").replace(old, new, 1)
    with pytest.raises(VnumaError) as caught:
        moving_guest_from_xml(text)
    message = str(caught.value)
    assert message.startswith("guest smt2-thread: its spec stored in <metadata> cannot be read: <vnuma>")
    assert problem in message
    assert "vnuma_domain with the spec's options" in message


# -- a guest without a stored spec: dedicated as the capacity check reads it ---------------------------


def _hand_pinned(name: str, pins: dict[int, str], cells: dict[int, int]) -> str:
    """A guest without a stored spec, pinned by hand: vCPU -> cpuset, one 1 GiB cell per vCPU bound to ``cells``."""
    vcpus = len(cells)
    pin_text = "".join(f"<vcpupin vcpu='{vcpu}' cpuset='{cpus}'/>" for vcpu, cpus in pins.items())
    memnodes = "".join(f"<memnode cellid='{cell}' mode='strict' nodeset='{node}'/>" for cell, node in cells.items())
    numa = "".join(f"<cell id='{cell}' cpus='{cell}' memory='1024' unit='MiB'/>" for cell in cells)
    return (
        f"<domain type='kvm'><name>{name}</name><memory unit='MiB'>{1024 * vcpus}</memory>"
        f"<vcpu placement='static'>{vcpus}</vcpu><cputune>{pin_text}</cputune><numatune>{memnodes}</numatune>"
        f"<cpu><numa>{numa}</numa></cpu></domain>"
    )


@pytest.mark.parametrize(
    "pins",
    [{0: "1", 1: "4-7"}, {0: "1", 1: "5"}, {0: "0-3", 1: "4-7"}, {}],
    ids=["mixed", "single-cpu", "wide", "unpinned"],
)
def test_the_planner_reads_a_guest_without_a_spec_as_the_capacity_check_does(pins: dict[int, str]) -> None:
    """Dedicated for the planner exactly when the capacity check's rule (held_cpus) says it holds a CPU."""
    source = host("seed-4node-ring")
    text = _hand_pinned("hand", pins, {0: 0, 1: 1})
    guest = moving_guest_from_xml(text, source)
    held_on_source = dedicated_cpus(source, parse_xml(text, "domain"), "hand")
    assert guest.dedicated == bool(held_on_source)
    # On the destination too: what the plan holds is what the capacity check reads from the moved guest.
    plan = plan_destination(guest, host("seed-4node-ring"))
    moved = parse_xml(rewrite_host_bindings(text, plan), "domain")
    assert tuple(dedicated_cpus(host("seed-4node-ring"), moved, "hand")) == plan.held_cpus
    assert bool(plan.held_cpus) == bool(held_on_source)


def test_a_mixed_guest_is_not_planned_onto_cpus_another_guest_uses() -> None:
    """A guest holding CPU 1 and floating over 4-7 (no stored spec) moves beside a guest that holds CPUs 0-2
    and floats over 0-3.  Read as shared pinning it floated over CPU 3 alone: a single-CPU pin, which the
    capacity check then counted as held while the other guest's vCPU 3 runs there."""
    destination = host("seed-4node-ring")
    text = _hand_pinned("mixed", {0: "1", 1: "4-7"}, {0: 0, 1: 1})
    other = _hand_pinned("other", {0: "0", 1: "1", 2: "2", 3: "0-3"}, {0: 0, 1: 0, 2: 0, 3: 0})
    others = others_running(destination, [("other", other)])
    plan = plan_destination(
        moving_guest_from_xml(text, host("seed-4node-ring")),
        destination,
        check_capacity(destination, place_guests(destination, others)),
        others=others,
    )
    check_destination(destination, others, plan)
    # The host after the move, every guest read from its definition by the capacity check's own rules.
    moved = rewrite_host_bindings(text, plan)
    after = others_running(destination, [("other", other), ("mixed", moved)])
    report = check_capacity(destination, place_guests(destination, after))
    assert report.problems == ()
    held = dict(zip(("other", "mixed"), (binding.dedicated_cpus for binding in after), strict=True))
    assert held["mixed"] == plan.held_cpus
    assert len(plan.held_cpus) == 2
    assert not set(plan.held_cpus) & {0, 1, 2, 3}


# -- the rewrite reads the values it goes by through the element models ---------------------------------


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "<memnode cellid='1'",
            "<memnode cellid='one'",
            "<numatune><memnode>: attribute cellid='one' is not an integer",
        ),
        ("<vcpupin vcpu='2'", "<vcpupin vcpu='2a'", "<cputune><vcpupin>: attribute vcpu='2a' is not an integer"),
        (
            "<node>1</node>",
            "<node>one</node>",
            "memory device 0 (model dimm) <target><node>: 'one' is not a non-negative integer",
        ),
    ],
    ids=["memnode-cellid", "vcpupin-vcpu", "memory-target-node"],
)
def test_a_bad_number_in_the_domain_rewritten_is_an_xml_error(old: str, new: str, problem: str) -> None:
    text = _source("ring-memory-hotplug")
    plan = plan_destination(moving_guest_from_xml(text), host("unequal-nodes"))
    # The device needs a nodemask to be rewritten at all.
    bad = text.replace(old, new, 1).replace(
        "<memory model='dimm'>", "<memory model='dimm'><source><nodemask>1</nodemask></source>", 1
    )
    assert bad.count(new) == 1
    with pytest.raises(XmlError) as caught:
        rewrite_host_bindings(bad, plan)
    assert str(caught.value) == f"guest ring-hotplug: {problem}"


def test_host_side_reads_every_host_side_path_and_names_repeated_elements_apart() -> None:
    text = """<domain><name>g</name><vcpu cpuset='0-3'>2</vcpu><iothreads>1</iothreads>
      <cputune><vcpupin vcpu='1' cpuset='2'/><vcpupin vcpu='0' cpuset='1'/><emulatorpin cpuset='3'/>
        <iothreadpin iothread='1' cpuset='0-1'/></cputune>
      <numatune><memory mode='strict' nodeset='0-1'/><memnode cellid='1' mode='strict' nodeset='1'/></numatune>
      <devices><memory model='dimm'><target><size unit='KiB'>131072</size></target></memory>
        <memory model='dimm'><source><nodemask> 1 </nodemask></source><target><size unit='KiB'>131072</size>
        <node>1</node></target></memory></devices></domain>"""
    values = host_side(parse_xml(text, "domain"))
    assert values == {
        "numatune/memory/nodeset": "0-1",
        "numatune/memnode[1]/nodeset": "1",
        "vcpu/cpuset": "0-3",
        "cputune/vcpupin[1]/cpuset": "2",
        "cputune/vcpupin[0]/cpuset": "1",
        "cputune/emulatorpin/cpuset": "3",
        "cputune/iothreadpin[1]/cpuset": "0-1",
        "devices/memory[1]/source/nodemask": "1",
    }
    # Each path of HOST_SIDE_PATHS is read: the list is the one place that says what a move may change.
    listed = {path.removesuffix("]").replace("[@", "/") for path in HOST_SIDE_PATHS}
    assert {re.sub(r"\[[^]]*\]", "", key) for key in values} == listed
