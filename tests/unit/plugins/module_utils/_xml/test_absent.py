# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``state: absent`` is the inverse of apply (issue 8, item 7).

Through the module on libvirt's test driver (which formats the XML as libvirt does): a guest of
each shape is defined, applied, then made absent, and its definition must be the one it had, byte
for byte.  Through the pure functions: the record, the rule for parts changed by hand since the
last apply, and the fallback when the record cannot be used (``CASES``: bad records and stored
specs, and the refusals, each with its exact message).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.absent import flat_target, render_absent
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import (
    ORIGINAL_NS,
    OWNED_PARTS,
    VNUMA_NS,
)
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module

RING_PATH = Path(__file__).parents[3] / "fixtures" / "capabilities" / "seed-4node-ring.xml"
RING = str(RING_PATH)
SMT2 = str(RING_PATH.with_name("intel-2s-smt2.xml"))
RECORD = f"metadata/{{{ORIGINAL_NS}}}original"
SPEC = f"metadata/{{{VNUMA_NS}}}vnuma"


def run(args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    return run_module({"uri": "test:///default", **args}, check_mode=check_mode)


def fail(args: dict[str, Any]) -> dict[str, Any]:
    return fail_module({"uri": "test:///default", **args})


@pytest.fixture
def conn() -> Iterator[Any]:
    connection = libvirt.open("test:///default")
    made: list[str] = []
    connection.made = made  # type: ignore[attr-defined]
    yield connection
    for name in made:
        with contextlib.suppress(libvirt.libvirtError):
            connection.lookupByName(name).undefine()
    connection.close()


def domain_xml(
    name: str,
    vcpu: str = "<vcpu>8</vcpu>",
    memory: str = "<memory unit='GiB'>4</memory>",
    tuning: str = "",
    cpu: str = "",
    devices: str = "",
) -> str:
    return f"""<domain type='test'>
  <name>{name}</name>
  {memory}
  {vcpu}
  {tuning}
  <os><type>hvm</type></os>
  {cpu}
  <on_reboot>destroy</on_reboot>
  <devices>
    <interface type='network'><source network='default'/></interface>
    {devices}
  </devices>
</domain>"""


def define(conn: Any, **parts: str) -> str:
    name = f"absent-{uuid.uuid4().hex[:8]}"
    conn.defineXML(domain_xml(name, **parts))
    conn.made.append(name)
    return name


def ours(result: dict[str, Any]) -> list[str]:
    """The warnings about the record (the test driver's own guests bring capacity warnings)."""
    return [text for text in result.get("warnings", []) if "before the collection" in text]


def inactive(conn: Any, name: str) -> str:
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def redefine(conn: Any, name: str, edit: Callable[[Any], None]) -> None:
    """Change a guest's definition as ``virsh edit`` would: ``edit`` gets the parsed domain."""
    root = parse_xml(inactive(conn, name), name, "domain")
    edit(root)
    conn.defineXML(to_text(root))


def _text(element: Any) -> str:
    return etree.tostring(element, encoding="unicode", with_tail=False)


def owned_texts(xml: str) -> dict[str, list[str]]:
    """Every owned part of a definition as text, by path (the bytes the comparison is about)."""
    root = parse_xml(xml, "domain", "domain")
    texts: dict[str, list[str]] = {}
    for container, tag in OWNED_PARTS:
        parent = root if container is None else root.find(container)
        path = tag if container is None else f"{container}/{tag}"
        texts[path] = [] if parent is None else [_text(element) for element in parent.iterchildren(tag)]
    return texts


# --------------------------------------------------------------------------------------------------
# apply -> absent -> the very definition it had, for guests of many shapes
# --------------------------------------------------------------------------------------------------

HAND_NUMA = """<cpu mode='host-passthrough'>
    <topology sockets='2' dies='1' cores='4' threads='1'/>
    <numa>
      <cell id='0' cpus='0-3' memory='2' unit='GiB' memAccess='shared'>
        <distances><sibling id='0' value='10'/><sibling id='1' value='20'/></distances>
      </cell>
      <cell id='1' cpus='4-7' memory='2' unit='GiB'>
        <distances><sibling id='0' value='20'/><sibling id='1' value='10'/></distances>
      </cell>
    </numa>
  </cpu>"""
HAND_TUNING = """<cputune>
    <shares>2048</shares>
    <vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/><vcpupin vcpu='2' cpuset='2'/>
    <vcpupin vcpu='3' cpuset='3'/><vcpupin vcpu='4' cpuset='4'/><vcpupin vcpu='5' cpuset='5'/>
    <vcpupin vcpu='6' cpuset='6'/><vcpupin vcpu='7' cpuset='7'/>
    <emulatorpin cpuset='8-9'/>
  </cputune>
  <numatune>
    <memory mode='strict' nodeset='0-1'/>
    <memnode cellid='0' mode='strict' nodeset='0'/>
    <memnode cellid='1' mode='preferred' nodeset='1'/>
  </numatune>"""
HMAT_NUMA = """<cpu>
    <numa>
      <cell id='0' cpus='0-3' memory='2' unit='GiB'>
        <cache level='1' associativity='direct' policy='writeback'>
          <size value='10' unit='KiB'/><line value='8' unit='B'/>
        </cache>
      </cell>
      <cell id='1' cpus='4-7' memory='2' unit='GiB'/>
      <interconnects>
        <latency initiator='0' target='1' type='access' value='5'/>
        <bandwidth initiator='0' target='0' type='access' value='204800' unit='KiB'/>
      </interconnects>
    </numa>
  </cpu>"""

SHAPES = [
    pytest.param({}, {}, id="flat"),
    pytest.param({"vcpu": "<vcpu current='3'>8</vcpu>"}, {}, id="vcpu-current"),
    pytest.param({}, {"current_vcpus": 2}, id="current-vcpus-option"),
    pytest.param({"vcpu": "<vcpu placement='auto' cpuset='0-11'>8</vcpu>"}, {}, id="vcpu-placement-cpuset"),
    pytest.param({"cpu": "<cpu><topology sockets='2' dies='1' cores='2' threads='2'/></cpu>"}, {}, id="topology"),
    pytest.param(
        {"tuning": "<cputune><shares>2048</shares><emulatorpin cpuset='1'/></cputune>"},
        {"emulator_pin": "nodes"},
        id="emulatorpin",
    ),
    pytest.param({}, {"emulator_pin": "nodes", "pinning": "core"}, id="emulatorpin-created"),
    pytest.param(
        {"vcpu": "<vcpu current='6'>8</vcpu>", "tuning": HAND_TUNING, "cpu": HAND_NUMA},
        {"mode": "node", "cells": 4, "distribution": "interleave"},
        id="hand-numa-distances-numatune-pins",
    ),
    pytest.param({"cpu": HMAT_NUMA}, {}, id="hand-numa-hmat"),
    pytest.param(
        {"tuning": "<memoryBacking><nosharepages/></memoryBacking>"},
        {"hugepages": "2 MiB", "host_capabilities": SMT2},
        id="hugepages",
    ),
    pytest.param(
        {"tuning": "<memoryBacking><hugepages><page size='1' unit='GiB'/></hugepages></memoryBacking>"},
        {"hugepages": "2 MiB", "host_capabilities": SMT2},
        id="own-hugepages",
    ),
    pytest.param({}, {"max_memory": "16 GiB", "memory_slots": 4}, id="max-memory"),
    pytest.param(
        {"memory": "<memory unit='GiB'>4</memory><currentMemory unit='GiB'>2</currentMemory>"},
        {"memory": "8 GiB"},
        id="memory-and-balloon",
    ),
]


@pytest.mark.parametrize(("parts", "options"), SHAPES)
def test_apply_then_absent_gives_the_definition_back(conn: Any, parts: dict[str, str], options: dict[str, Any]) -> None:
    name = define(conn, **parts)
    original = inactive(conn, name)
    applied = run({"name": name, "host_capabilities": RING, **options})
    assert applied["changed"] is True
    assert parse_xml(inactive(conn, name), name).find(RECORD) is not None

    plan = run({"name": name, "state": "absent"}, check_mode=True)
    assert plan["changed"] is True
    assert inactive(conn, name) != original, "check mode wrote"
    absent = run({"name": name, "state": "absent"})
    assert absent["changed"] is True
    assert absent["changes"] == plan["changes"]
    assert ours(absent) == []
    restored = inactive(conn, name)
    assert owned_texts(restored) == owned_texts(original)
    # Everything else too, byte for byte: the spec and the record are gone, nothing else moved.
    assert restored == original
    # Absent again: nothing of the collection's is left, nothing changes.
    again = run({"name": name, "state": "absent"})
    assert again["changed"] is False
    assert inactive(conn, name) == original


def test_absent_lists_the_record_and_spec_it_removes(conn: Any) -> None:
    name = define(conn, vcpu="<vcpu current='3'>8</vcpu>")
    run({"name": name, "host_capabilities": RING})
    changes = run({"name": name, "state": "absent"}, check_mode=True)["changes"]
    assert "metadata/vnuma: 'stored' -> None" in changes
    assert "metadata/vnuma-original: 'recorded' -> None" in changes
    assert "vcpu/current: 3 -> 3" not in changes
    assert "cpu/numa/cell[0]/cpus: '0-1' -> None" in changes


def test_a_later_apply_keeps_the_first_record(conn: Any) -> None:
    name = define(conn, cpu="<cpu><topology sockets='1' dies='1' cores='8' threads='1'/></cpu>")
    original = inactive(conn, name)
    run({"name": name, "host_capabilities": RING})
    first = parse_xml(inactive(conn, name), name).find(f"{RECORD}/{{{ORIGINAL_NS}}}before")
    run({"name": name, "host_capabilities": RING, "mode": "node", "cells": 2, "emulator_pin": "nodes"})
    run(
        {
            "name": name,
            "host_capabilities": RING,
            "distribution": "interleave",
            "max_memory": "8 GiB",
            "memory_slots": 2,
        }
    )
    second = parse_xml(inactive(conn, name), name).find(f"{RECORD}/{{{ORIGINAL_NS}}}before")
    assert to_text(second) == to_text(first)
    run({"name": name, "state": "absent"})
    assert inactive(conn, name) == original


def test_a_guest_never_managed_is_left_alone(conn: Any) -> None:
    name = define(conn, vcpu="<vcpu current='6'>8</vcpu>", tuning=HAND_TUNING, cpu=HAND_NUMA)
    original = inactive(conn, name)
    result = run({"name": name, "state": "absent"})
    assert result["changed"] is False
    assert result["changes"] == []
    assert inactive(conn, name) == original


# --------------------------------------------------------------------------------------------------
# Parts changed by hand since the last apply stay
# --------------------------------------------------------------------------------------------------


def test_vcpus_raised_by_hand_stay(conn: Any) -> None:
    """``virsh setvcpus --config``: the current count set by hand is kept, the rest goes back."""
    name = define(conn, vcpu="<vcpu current='2'>8</vcpu>")
    run({"name": name, "host_capabilities": RING})
    conn.lookupByName(name).setVcpusFlags(5, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    result = run({"name": name, "state": "absent"})
    assert ours(result) == []
    root = parse_xml(inactive(conn, name), name)
    assert root.find("vcpu").get("current") == "5"
    assert root.find("vcpus") is None, "the layout's hotplug order goes with the cells"
    assert root.find("cpu/numa") is None and root.find("numatune") is None and root.find("cputune") is None
    assert root.find("cpu/topology") is None


def test_vcpu_fields_go_back_one_by_one(conn: Any) -> None:
    """The layout made placement static and the user changed current: placement goes back, current stays."""
    name = define(conn, vcpu="<vcpu placement='auto' current='2'>8</vcpu>")
    run({"name": name, "host_capabilities": RING})
    assert parse_xml(inactive(conn, name), name).find("vcpu").get("placement") == "static"
    conn.lookupByName(name).setVcpusFlags(4, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    run({"name": name, "state": "absent"})
    vcpu = parse_xml(inactive(conn, name), name).find("vcpu")
    assert (vcpu.get("placement"), vcpu.get("current"), vcpu.text) == ("auto", "4", "8")


def test_emulatorpin_changed_by_hand_stays_and_the_rest_goes_back(conn: Any) -> None:
    name = define(conn, tuning="<cputune><emulatorpin cpuset='1'/></cputune>")
    original = owned_texts(inactive(conn, name))
    run({"name": name, "host_capabilities": RING, "emulator_pin": "nodes"})

    def pin(root: Any) -> None:
        root.find("cputune/emulatorpin").set("cpuset", "2-3")

    redefine(conn, name, pin)
    run({"name": name, "state": "absent"})
    restored = owned_texts(inactive(conn, name))
    assert restored["cputune/emulatorpin"] == ['<emulatorpin cpuset="2-3"/>']
    assert {key: value for key, value in restored.items() if key != "cputune/emulatorpin"} == {
        key: value for key, value in original.items() if key != "cputune/emulatorpin"
    }


def test_a_hand_change_before_a_later_apply_survives_absent(conn: Any) -> None:
    """The later apply takes the hand-set emulatorpin into the record: absent gives it back."""
    name = define(conn, tuning="<cputune><emulatorpin cpuset='1'/></cputune>")
    run({"name": name, "host_capabilities": RING})

    def pin(root: Any) -> None:
        root.find("cputune/emulatorpin").set("cpuset", "5")

    redefine(conn, name, pin)
    run({"name": name, "host_capabilities": RING, "emulator_pin": "nodes"})
    assert parse_xml(inactive(conn, name), name).find("cputune/emulatorpin").get("cpuset") == "0-15"
    run({"name": name, "state": "absent"})
    assert parse_xml(inactive(conn, name), name).find("cputune/emulatorpin").get("cpuset") == "5"


def test_a_kept_part_that_contradicts_the_record_falls_back_to_removing_the_layout(conn: Any) -> None:
    """``<maxMemory>`` edited by hand stays, but the guest had no cells: the layout is removed instead."""
    name = define(conn, vcpu="<vcpu current='4'>8</vcpu>")
    run({"name": name, "host_capabilities": RING, "max_memory": "16 GiB", "memory_slots": 4})

    def slots(root: Any) -> None:
        root.find("maxMemory").set("slots", "8")

    redefine(conn, name, slots)
    result = run({"name": name, "state": "absent"})
    assert result["changed"] is True
    assert ours(result) == [
        f"guest {name}: the definition before the collection cannot be restored: <maxMemory> needs NUMA cells, "
        "and there would be none (<maxMemory> changed since the last apply and stays); the layout was removed instead"
    ]
    root = parse_xml(inactive(conn, name), name)
    assert root.find("maxMemory") is None and root.find("cpu/numa") is None
    assert root.find(RECORD) is None and root.find(SPEC) is None
    assert root.find("vcpu").get("current") == "4"


# --------------------------------------------------------------------------------------------------
# Corrupt specs, guests managed by older versions, memory devices
# --------------------------------------------------------------------------------------------------


def _corrupt_spec(root: Any) -> None:
    root.find(SPEC).set("mode", "bogus")


def test_a_corrupt_stored_spec_does_not_block_absent(conn: Any) -> None:
    name = define(conn, vcpu="<vcpu current='3'>8</vcpu>", cpu=HAND_NUMA)
    original = inactive(conn, name)
    run({"name": name, "host_capabilities": RING})
    redefine(conn, name, _corrupt_spec)
    result = run({"name": name, "state": "absent"})
    assert result["changed"] is True and ours(result) == []
    assert inactive(conn, name) == original


def test_an_older_versions_guest_loses_the_layout_and_keeps_its_sizes(conn: Any) -> None:
    """A stored spec without a record: what the guest had before is not known."""
    name = define(
        conn,
        vcpu="<vcpu current='3'>8</vcpu>",
        tuning="<memoryBacking><hugepages><page size='1' unit='GiB'/></hugepages></memoryBacking>",
        cpu="<cpu><topology sockets='2' dies='1' cores='4' threads='1'/></cpu>",
    )
    options = {"emulator_pin": "nodes", "max_memory": "16 GiB", "memory_slots": 4}
    run({"name": name, "host_capabilities": RING, **options})

    def older(root: Any) -> None:
        record = root.find(RECORD)
        record.getparent().remove(record)
        _corrupt_spec(root)

    redefine(conn, name, older)
    managed = DomainNuma.from_domain(parse_xml(inactive(conn, name), name))
    assert managed.hugepages is not None and managed.emulatorpin is not None
    run({"name": name, "state": "absent"})
    root = parse_xml(inactive(conn, name), name)
    flat = DomainNuma.from_domain(root)
    assert flat == flat_target(managed, name)
    assert (flat.numa, flat.numatune, flat.vcpupins, flat.vcpus, flat.max_memory) == (None, None, (), None, None)
    assert flat.vcpu == managed.vcpu and flat.vcpu.current == 3
    assert flat.topology == managed.topology and flat.emulatorpin == managed.emulatorpin
    assert (flat.memory_kib, flat.current_memory_kib) == (managed.memory_kib, managed.current_memory_kib)
    assert [page.size_kib for page in flat.hugepages.pages] == [1024 * 1024], "the per-cell page goes"
    assert root.find(SPEC) is None


DIMM = "<memory model='dimm'><target><size unit='MiB'>512</size><node>{node}</node></target></memory>"


def test_memory_devices_refuse_absent_when_the_guest_had_no_cells(conn: Any) -> None:
    name = define(conn, memory="<maxMemory slots='4' unit='GiB'>16</maxMemory><memory unit='GiB'>4</memory>")
    run({"name": name, "host_capabilities": RING})

    def dimm(root: Any) -> None:
        root.find("devices").append(etree.fromstring(DIMM.format(node=1)))

    redefine(conn, name, dimm)
    before = inactive(conn, name)
    result = fail({"name": name, "state": "absent"})
    assert result["msg"] == (
        f"guest {name}: has 1 hot-plugged memory device(s), which need NUMA cells; "
        "detach them before removing the layout"
    )
    assert inactive(conn, name) == before


def test_memory_devices_stay_when_the_guest_had_cells_for_them(conn: Any) -> None:
    name = define(
        conn,
        memory="<maxMemory slots='4' unit='GiB'>16</maxMemory><memory unit='GiB'>4</memory>",
        cpu=HAND_NUMA,
        devices=DIMM.format(node=1),
    )
    original = inactive(conn, name)
    run({"name": name, "host_capabilities": RING})
    run({"name": name, "state": "absent"})
    assert inactive(conn, name) == original


# --------------------------------------------------------------------------------------------------
# Bad records and specs, refusals: one table (issue 8's bad-input suite)
# --------------------------------------------------------------------------------------------------


# The base: a guest with current vCPUs, a topology and its own emulatorpin, applied for the ring host
# with memory hotplug.  Each case edits it (as a user, another tool or a bad version could), then
# absent runs on it: restored from the record, fallen back to removing the layout with a warning,
# or refused with nothing changed.
BASE_TEMPLATE = """<domain type='kvm'>
  <name>g</name>
  <memory unit='KiB'>4194304</memory>
  <vcpu placement='static' current='6'>8</vcpu>
  <cputune>
    <emulatorpin cpuset='1'/>
  </cputune>
  <os>
    <type arch='x86_64'>hvm</type>
  </os>
  <cpu mode='host-passthrough'>
    <topology sockets='2' dies='1' cores='4' threads='1'/>
  </cpu>
  <vnuma mode='host'><maxMemory slots='4' unit='GiB'>16</maxMemory></vnuma>
</domain>
"""
NS = {"o": ORIGINAL_NS, "v": VNUMA_NS}
R = "metadata/o:original"
Edit = Callable[[Any], None]


def _fragment(markup: str) -> Any:
    """Elements written with the ``o:`` (record) and ``v:`` (spec) prefixes."""
    return list(etree.fromstring(f"<w xmlns:o='{ORIGINAL_NS}' xmlns:v='{VNUMA_NS}'>{markup}</w>"))


def set_attr(path: str, name: str, value: str | None) -> Edit:
    def edit(root: Any) -> None:
        element = root.find(path, NS)
        if value is None:
            element.attrib.pop(name)
        else:
            element.set(name, value)

    return edit


def set_text(path: str, value: str) -> Edit:
    def edit(root: Any) -> None:
        root.find(path, NS).text = value

    return edit


def add(path: str, markup: str) -> Edit:
    def edit(root: Any) -> None:
        root.find(path, NS).extend(_fragment(markup))

    return edit


def remove(path: str) -> Edit:
    def edit(root: Any) -> None:
        element = root.find(path, NS)
        element.getparent().remove(element)

    return edit


def rename(path: str, tag: str) -> Edit:
    def edit(root: Any) -> None:
        root.find(path, NS).tag = f"{{{ORIGINAL_NS}}}{tag}"

    return edit


def duplicate(path: str) -> Edit:
    def edit(root: Any) -> None:
        element = root.find(path, NS)
        element.addnext(etree.fromstring(etree.tostring(element)))

    return edit


def dimm(node: int) -> Edit:
    def edit(root: Any) -> None:
        devices = root.find("devices")
        if devices is None:
            devices = etree.SubElement(root, "devices")
        devices.extend(_fragment(DIMM.format(node=node)))

    return edit


ONE_CELL = "<o:numa><o:cell id='0' cpus='0-7' memory='4194304'/></o:numa>"
BAD = "the record of the definition before the collection"
DROPPED = "the layout was removed without restoring it"
CONFLICT = "the definition before the collection cannot be restored"
INSTEAD = "the layout was removed instead"
NO_RECORD = "has no record of its definition before the collection"

# Each: the edits, the outcome ("fallback": the layout removed with this warning; "restored": the
# record put back, no warning; "error": refused with this message, nothing changed).
CASES = [
    # The record's structure.
    pytest.param([set_attr(R, "version", None)], "fallback", f"{BAD}: version None is not '1'", id="record-no-version"),
    pytest.param([set_attr(R, "version", "2")], "fallback", f"{BAD}: version '2' is not '1'", id="record-version-2"),
    pytest.param([rename(R, "copy")], "fallback", f"{BAD}: <copy> is not <original>", id="record-wrong-element"),
    pytest.param(
        [duplicate(R)],
        "fallback",
        f"{BAD}: <metadata> holds 2 elements in {ORIGINAL_NS}, there must be one",
        id="record-twice",
    ),
    pytest.param(
        [rename(f"{R}/o:before", "ignored")],
        "fallback",
        f"{BAD}: it has 0 <before> sections, it needs exactly one",
        id="record-no-before",
    ),
    pytest.param(
        [add(R, "<o:before/>")],
        "fallback",
        f"{BAD}: it has 2 <before> sections, it needs exactly one",
        id="record-two-befores",
    ),
    pytest.param(
        [remove(f"{R}/o:written")],
        "fallback",
        f"{BAD}: it has 0 <written> sections, it needs exactly one",
        id="record-no-written",
    ),
    pytest.param(
        [add(f"{R}/o:before", "<o:devices/>")],
        "fallback",
        f"{BAD}: <before> holds <devices>, which is not a part the collection owns",
        id="record-foreign-part",
    ),
    pytest.param(
        [add(f"{R}/o:written", "<o:numatune/>")],
        "fallback",
        f"{BAD}: <written> holds <numatune>, which is not a part the collection owns",
        id="record-written-layout-part",
    ),
    pytest.param(
        [add(f"{R}/o:before", "<o:cpu/>")],
        "fallback",
        f"{BAD}: <before> holds <cpu> more than once",
        id="record-two-cpus",
    ),
    pytest.param(
        [add(f"{R}/o:before", "<o:vcpu>8</o:vcpu>")],
        "fallback",
        f"{BAD}: <before> holds <vcpu> more than once",
        id="record-two-vcpus",
    ),
    pytest.param(
        [add(f"{R}/o:before/o:cpu", "<o:model>qemu64</o:model>")],
        "fallback",
        f"{BAD}: <before><cpu> holds <model>, which is not a part the collection owns",
        id="record-foreign-cpu-child",
    ),
    pytest.param(
        [add(f"{R}/o:before/o:cpu", "<o:topology sockets='1' cores='8' threads='1'/>")],
        "fallback",
        f"{BAD}: <before><cpu> holds <topology> more than once",
        id="record-two-topologies",
    ),
    # The record's values.
    pytest.param(
        [set_text(f"{R}/o:before/o:vcpu", "eight")],
        "fallback",
        f"{BAD}: <vcpu>: 'eight' is not a non-negative integer",
        id="record-vcpu-not-a-number",
    ),
    pytest.param(
        [set_text(f"{R}/o:written/o:vcpu", "many")],
        "fallback",
        f"{BAD}: <vcpu>: 'many' is not a non-negative integer",
        id="record-written-vcpu-not-a-number",
    ),
    pytest.param(
        [set_attr(f"{R}/o:before/o:vcpu", "current", "9")],
        "fallback",
        f"{BAD}: <vcpu current='9'> is above its 8 vCPUs",
        id="record-current-above-count",
    ),
    pytest.param(
        [set_attr(f"{R}/o:before/o:cpu/o:topology", "sockets", "two")],
        "fallback",
        f"{BAD}: <cpu><topology>: attribute sockets='two' is not an integer",
        id="record-topology-not-a-number",
    ),
    pytest.param(
        [set_attr(f"{R}/o:before/o:cpu/o:topology", "sockets", "3")],
        "fallback",
        f"{BAD}: <cpu><topology> gives 12 vCPUs (sockets x dies x cores x threads), <vcpu> says 8",
        id="record-topology-against-vcpus",
    ),
    pytest.param(
        [set_attr(f"{R}/o:before/o:memory", "unit", "parsecs")],
        "fallback",
        f"{BAD}: <memory>: unknown unit 'parsecs' (use one of KiB, MiB, GiB, TiB, b, KB, MB, GB)",
        id="record-memory-unit",
    ),
    pytest.param(
        [set_attr(f"{R}/o:before/o:cputune/o:emulatorpin", "cpuset", "1-x")],
        "fallback",
        f"{BAD}: <cputune><emulatorpin> cpuset '1-x': 'x' is not a non-negative integer",
        id="record-emulatorpin-cpuset",
    ),
    pytest.param(
        [remove(f"{R}/o:before/o:cputune/o:emulatorpin"), add(f"{R}/o:before/o:cputune", "<o:emulatorpin/>")],
        "fallback",
        f"{BAD}: <cputune><emulatorpin>: attribute cpuset is missing",
        id="record-emulatorpin-without-cpuset",
    ),
    pytest.param(
        [add(f"{R}/o:before/o:cputune", "<o:vcpupin vcpu='12' cpuset='1'/>")],
        "fallback",
        f"{BAD}: <vcpupin> for vCPU 12, but the guest has 8 vCPUs",
        id="record-pin-beyond-vcpus",
    ),
    pytest.param(
        [add(f"{R}/o:before", "<o:maxMemory slots='4' unit='GiB'>16</o:maxMemory>")],
        "fallback",
        f"{BAD}: <maxMemory> needs NUMA cells, and there would be none",
        id="record-max-memory-without-cells",
    ),
    pytest.param(
        [
            add(
                f"{R}/o:before",
                "<o:memoryBacking><o:hugepages><o:page size='2048' nodeset='1'/></o:hugepages></o:memoryBacking>",
            )
        ],
        "fallback",
        f"{BAD}: <hugepages><page nodeset='1'> names guest cells, and there would be none",
        id="record-cell-hugepages-without-cells",
    ),
    pytest.param(
        [add(f"{R}/o:before/o:cpu", "<o:numa><o:cell id='0' cpus='0-8' memory='4194304'/></o:numa>")],
        "fallback",
        f"{BAD}: guest cell 0 names vCPU 8, but the guest has 8 vCPUs",
        id="record-cell-beyond-vcpus",
    ),
    pytest.param(
        [add(f"{R}/o:before/o:cpu", "<o:numa><o:cell id='0' cpus='0-7'/></o:numa>")],
        "fallback",
        f"{BAD}: <numa><cell id='0'>: attribute memory is missing",
        id="record-cell-without-memory",
    ),
    pytest.param(
        [add(f"{R}/o:before/o:cpu", "<o:numa><o:cell id='1' cpus='0-7' memory='4194304'/></o:numa>")],
        "fallback",
        f"{BAD}: guest cell ids [1] must be 0..0 in order",
        id="record-cell-ids",
    ),
    pytest.param(
        [
            add(
                f"{R}/o:before/o:cpu",
                "<o:numa><o:cell id='0' cpus='0-3' memory='2097152'><o:distances><o:sibling id='0' value='10'/>"
                "<o:sibling id='1' value='20'/></o:distances></o:cell><o:cell id='1' cpus='4-7' memory='2097152'>"
                "<o:distances><o:sibling id='0' value='30'/><o:sibling id='1' value='10'/></o:distances></o:cell>"
                "</o:numa>",
            )
        ],
        "fallback",
        f"{BAD}: guest NUMA distances: distance 0->1 is 20 but 1->0 is 30; distances must be symmetric",
        id="record-asymmetric-distances",
    ),
    # A part changed by hand since the last apply stays, and contradicts what the record puts back.
    pytest.param(
        [set_attr("maxMemory", "slots", "8")],
        "fallback",
        f"{CONFLICT}: <maxMemory> needs NUMA cells, and there would be none (<maxMemory> changed since the last "
        f"apply and stays); {INSTEAD}",
        id="hand-max-memory-against-no-cells",
    ),
    # The stored spec, unreadable in every way: absent restores from the record all the same.
    pytest.param([set_attr("metadata/v:vnuma", "mode", "bogus")], "restored", "", id="spec-bogus-mode"),
    pytest.param([set_attr("metadata/v:vnuma", "colour", "blue")], "restored", "", id="spec-unknown-attribute"),
    pytest.param([set_attr("metadata/v:vnuma", "cpuless_cells", "maybe")], "restored", "", id="spec-bad-boolean"),
    pytest.param([set_text("metadata/v:vnuma/v:maxMemory", "lots")], "restored", "", id="spec-max-memory-not-a-number"),
    pytest.param([duplicate("metadata/v:vnuma")], "restored", "", id="spec-twice"),
    pytest.param([remove("metadata/v:vnuma")], "restored", "", id="spec-removed-record-kept"),
    # A spec without a record (removed by hand, or from an older version): the layout goes, and the user is told.
    pytest.param([remove(R)], "fallback", NO_RECORD, id="record-removed"),
    pytest.param(
        [remove(R), set_attr("metadata/v:vnuma", "mode", "bogus")],
        "fallback",
        NO_RECORD,
        id="record-removed-spec-bogus",
    ),
    # Hot-plugged memory devices need cells the guest did not have before: refused.
    pytest.param(
        [dimm(1)],
        "error",
        "guest g: has 1 hot-plugged memory device(s), which need NUMA cells; detach them before removing the layout",
        id="dimm-without-cells-before",
    ),
    pytest.param(
        [add(f"{R}/o:before/o:cpu", ONE_CELL), dimm(2)],
        "error",
        "guest g: memory device 0 (dimm) targets guest cell 2, but the guest had 1 cells before the collection; "
        "detach it before removing the layout",
        id="dimm-beyond-cells-before",
    ),
    pytest.param(
        [remove(R), dimm(0)],
        "error",
        "guest g: has 1 hot-plugged memory device(s), which need NUMA cells; detach them before removing the layout",
        id="dimm-without-record",
    ),
]


@pytest.mark.parametrize(("edits", "outcome", "message"), CASES)
def test_bad_records_and_specs(edits: list[Edit], outcome: str, message: str) -> None:
    root = parse_xml(expand_domain(BASE_TEMPLATE, RING_PATH.read_text(encoding="utf-8")).xml, "base", "domain")
    for edit in edits:
        edit(root)
    edited = to_text(root)
    if outcome == "error":
        with pytest.raises(SpecError) as caught:
            render_absent(root, "g")
        assert str(caught.value) == message
        assert to_text(root) == edited, "a refusal changed the domain"
        return
    before = DomainNuma.from_domain(root)
    warnings = render_absent(root, "g")
    assert root.find("metadata") is None, "the spec and the record are removed"
    if outcome == "restored":
        assert warnings == []
        assert owned_texts(to_text(root)) == owned_texts(BASE_TEMPLATE)
        return
    full = message if message.startswith(CONFLICT) else f"{message}; {DROPPED}"
    assert warnings == [f"guest g: {full}"]
    assert DomainNuma.from_domain(root) == flat_target(before, "g")


# A q35 guest with a virtio disk in root port 1, as libvirt keeps it.
PCI_GUEST = """<domain type='kvm'>
  <name>g</name>
  <memory unit='GiB'>4</memory>
  <vcpu>8</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
  </os>
  <devices>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </controller>
    <disk type='file' device='disk'>
      <source file='/var/lib/a.img'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </disk>
  </devices>
</domain>
"""


def test_absent_warns_for_a_moved_device_that_cannot_go_back_as_device_locality_none_does() -> None:
    spec = "<vnuma mode='host' device_locality='all'/>"
    moved = expand_domain(PCI_GUEST.replace("<os>", f"{spec}\n  <os>", 1), RING_PATH.read_text(encoding="utf-8")).xml
    # Another tool added a disk since, which libvirt put where vda was before the move.
    added = moved.replace(
        "<disk",
        "<disk type='file' device='disk'><source file='/var/lib/c.img'/><target dev='vdc' bus='virtio'/>"
        "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></disk>\n    <disk",
        1,
    )
    said = (
        "devices/disk[vda] cannot go back to its address from before the move, 0000:01:00.0 "
        "(devices/disk[vdc] has it now): libvirt places it"
    )
    none = expand_domain(added.replace("device_locality='all'", "device_locality='none'"), RING_PATH.read_text())
    assert none.plan is not None and none.plan.target.pci.warnings == (said,)
    root = parse_xml(added, "domain")
    assert render_absent(root, "g") == [f"guest g: {said}"]
    # As under none: libvirt places vda; vdc keeps its address.
    vda = root.find("devices/disk/target[@dev='vda']/..")
    assert vda is not None and vda.find("address") is None
