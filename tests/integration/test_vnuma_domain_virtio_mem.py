# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virtio-mem per guest cell on a real guest kernel: vnuma_domain grows and shrinks each node by its share.

One guest, one boot: two cells on this machine's node, each with its virtio-mem device; vnuma_domain's
total_memory grows the running guest, then shrinks it, and the guest kernel's own report (MemTotal of
each node, /init of scripts/build-guest-image.sh with the virtio_mem module loaded) moves by exactly
the per-cell requested sizes the module planned.  The guest onlines plugged memory movable
(memhp_default_state=online_movable): memory the kernel onlined as normal can hold unmovable pages,
and a shrink then stops a block short (measured: 2 MiB of 256 MiB stayed plugged).
"""

from __future__ import annotations

import re
import time

import libvirt
from test_harness import BOOT_TIMEOUT, HOTPLUG_TIMEOUT
from vnuma_domain_support import MIB, domain_root, inactive_xml, live_xml

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import GuestFactory, GuestReport, describe

SPEC = {
    "mode": "node",
    "cells": 2,
    "memory": "512 MiB",
    "max_memory": "1536 MiB",
    "memory_slots": 4,
    "memory_device": "virtio-mem",
}


def devices(xml: str) -> dict[int, dict[str, int]]:
    """The collection's virtio-mem devices of a definition: cell -> size, block, requested (and current), KiB."""
    found: dict[int, dict[str, int]] = {}
    for element in domain_root(xml).iterfind("devices/memory[@model='virtio-mem']"):
        alias = element.find("alias")
        if alias is None or not alias.get("name", "").startswith("ua-vnuma-cell"):
            continue
        values = {}
        for tag in ("size", "block", "requested", "current"):
            child = element.find(f"target/{tag}")
            if child is not None:
                assert child.get("unit") == "KiB", "libvirt writes device sizes in KiB"
                values[tag] = int(child.text)
        values["nodemask"] = int(element.find("source/nodemask").text)
        found[int(element.find("target/node").text)] = values
    return found


def requested(changes: list[str]) -> dict[int, tuple[int, int]]:
    """The per-cell requested sizes a module result's changes report: cell -> (before, after), KiB."""
    found = {}
    for change in changes:
        match = re.fullmatch(r"devices/memory\[ua-vnuma-cell(\d+)\]/requested: (\d+) -> (\d+)", change)
        if match:
            found[int(match[1])] = (int(match[2]), int(match[3]))
    return found


def live_sizes(conn: libvirt.virConnect, name: str, planned: dict[int, int]) -> dict[int, tuple[int, int | None]]:
    """The running guest's (requested, current) per cell once both are ``planned``, or as they are at the deadline.

    libvirt learns ``<current>`` from QEMU's size-change events, which QEMU sends at most once a second.
    """
    wanted = {cell: (kib, kib) for cell, kib in planned.items()}
    deadline = time.monotonic() + HOTPLUG_TIMEOUT
    while True:
        live = devices(live_xml(conn, name))
        seen = {cell: (live[cell]["requested"], live[cell].get("current")) for cell in live}
        if seen == wanted or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def test_virtio_mem_cells_grow_and_shrink_by_their_planned_shares(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    guest = make_guest(
        "vmem-resize",
        vcpus=2,
        memory_mib=512,
        start=False,
        wait=True,
        guest_timeout=300,
        cmdline="memhp_default_state=online_movable",
    )
    base = {"name": guest.name, "nodeset": str(node), **SPEC}
    run_module(base)
    # One device per cell, bound like the cell, sharing max_memory above the boot memory: 1 GiB, 512 MiB each.
    defined = devices(inactive_xml(qemu_conn, guest.name))
    assert defined == {
        cell: {"size": 512 * MIB, "block": 2 * MIB, "requested": 0, "nodemask": node} for cell in (0, 1)
    }, defined

    guest.start()
    boot = guest.report(BOOT_TIMEOUT)
    assert sorted(boot.nodes) == [0, 1], describe([boot])
    baseline = {cell: boot.nodes[cell].mem_kib for cell in (0, 1)}

    def wait_for(plugged: dict[int, int], after: GuestReport) -> GuestReport:
        wanted = {cell: baseline[cell] + kib for cell, kib in plugged.items()}
        return guest.report(
            HOTPLUG_TIMEOUT,
            after=after.seq,
            until=lambda report: {cell: report.nodes[cell].mem_kib for cell in (0, 1)} == wanted,
        )

    # Grow to 1030 MiB: 518 MiB to plug, 259 blocks of 2 MiB, 130 to cell 0 and 129 to cell 1.
    grow = {**base, "total_memory": "1030 MiB"}
    before = inactive_xml(qemu_conn, guest.name)
    running_before = devices(live_xml(qemu_conn, guest.name))
    plan = run_module(grow, check_mode=True, diff=True)
    assert plan["changed"] is True
    assert requested(plan["changes"]) == {0: (0, 260 * MIB), 1: (0, 258 * MIB)}, plan["changes"]
    assert plan["diff"]["after"]["devices/memory[ua-vnuma-cell0]/requested"] == 260 * MIB
    assert plan["restart_required"] is False
    assert inactive_xml(qemu_conn, guest.name) == before, "check mode wrote to the definition"
    # Nor to the running guest: libvirt's live devices ask for what they asked before.
    assert devices(live_xml(qemu_conn, guest.name)) == running_before, "check mode resized the running guest"
    grown = run_module(grow)
    assert grown["changed"] is True
    assert grown["restart_required"] is False
    assert len(grown["live"]) == 2, grown["live"]
    report = wait_for({0: 260 * MIB, 1: 258 * MIB}, boot)
    assert live_sizes(qemu_conn, guest.name, {0: 260 * MIB, 1: 258 * MIB}) == {
        0: (260 * MIB, 260 * MIB),
        1: (258 * MIB, 258 * MIB),
    }
    assert {cell: values["requested"] for cell, values in devices(inactive_xml(qemu_conn, guest.name)).items()} == {
        0: 260 * MIB,
        1: 258 * MIB,
    }
    again = run_module(grow)
    assert again["changed"] is False, again["changes"]

    # Out of range: refused, naming the guest, the value and the limit; nothing changes.
    settled = inactive_xml(qemu_conn, guest.name)
    for total, message in (
        ("1537 MiB", "total_memory 1537 MiB is above the 1536 MiB the guest can hold (max_memory 1536 MiB"),
        ("384 MiB", "total_memory 384 MiB is below the boot memory 512 MiB"),
    ):
        refused = fail_module({**base, "total_memory": total})
        assert refused["msg"].startswith(f"guest {guest.name}: {message}"), refused["msg"]
        assert inactive_xml(qemu_conn, guest.name) == settled

    # Shrink to 646 MiB: 134 MiB, 67 blocks, 34 to cell 0 and 33 to cell 1; the guest gives back the rest.
    shrink = {**base, "total_memory": "646 MiB"}
    running_before = devices(live_xml(qemu_conn, guest.name))
    checked = run_module(shrink, check_mode=True)
    assert requested(checked["changes"]) == {0: (260 * MIB, 68 * MIB), 1: (258 * MIB, 66 * MIB)}
    assert inactive_xml(qemu_conn, guest.name) == settled, "check mode wrote to the definition"
    assert devices(live_xml(qemu_conn, guest.name)) == running_before, "check mode resized the running guest"
    shrunk = run_module(shrink, diff=True)
    assert requested(shrunk["changes"]) == {0: (260 * MIB, 68 * MIB), 1: (258 * MIB, 66 * MIB)}
    report = wait_for({0: 68 * MIB, 1: 66 * MIB}, report)
    assert report.nodes[0].cpus and report.nodes[1].cpus, describe([report])
    # libvirt's live state agrees with the plan and the guest kernel: each device asks for its share, and
    # (after QEMU's next size-change event) has exactly that plugged.
    assert live_sizes(qemu_conn, guest.name, {0: 68 * MIB, 1: 66 * MIB}) == {
        0: (68 * MIB, 68 * MIB),
        1: (66 * MIB, 66 * MIB),
    }
    assert {cell: report.nodes[cell].mem_kib - baseline[cell] for cell in (0, 1)} == {0: 68 * MIB, 1: 66 * MIB}
    assert run_module(shrink)["changed"] is False

    # A resize made by hand (virsh update-memory-device --live) is left alone by a run without total_memory,
    # which says so; a run with total_memory converges the running guest again.
    (element,) = [
        item
        for item in domain_root(live_xml(qemu_conn, guest.name)).iterfind("devices/memory")
        if item.find("alias").get("name") == "ua-vnuma-cell0"
    ]
    element.find("target/requested").text = str(100 * MIB)
    domain = qemu_conn.lookupByName(guest.name)
    domain.updateDeviceFlags(etree.tostring(element, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    left = run_module(base)
    assert left["changed"] is False
    said = (
        f"guest {guest.name}: virtio-mem of guest cell 0: the running guest requests 100 MiB, its definition 68 MiB; "
        "left as it is without total_memory (give total_memory to set both)"
    )
    assert said in left.get("warnings", []), left.get("warnings")
    assert devices(live_xml(qemu_conn, guest.name))[0]["requested"] == 100 * MIB
    assert devices(inactive_xml(qemu_conn, guest.name))[0]["requested"] == 68 * MIB
    converged = run_module(shrink)
    assert converged["changed"] is True
    assert devices(live_xml(qemu_conn, guest.name))[0]["requested"] == 68 * MIB


def test_virtio_mem_options_are_refused_where_they_do_not_apply(make_guest: GuestFactory, host_caps: str) -> None:
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    guest = make_guest("vmem-refuse", vcpus=2, memory_mib=512, start=False)
    base = {"name": guest.name, "nodeset": str(node), **SPEC}
    refused = fail_module({**base, "memory_device": "dimm", "total_memory": "1 GiB"})
    assert refused["msg"] == (
        f"guest {guest.name}: total_memory 1 GiB sets the requested sizes of virtio-mem cells, but the guest has "
        "memory_device dimm; set memory_device virtio-mem (with max_memory and memory_slots), or hot-add DIMMs "
        "with hotplug_memory"
    )
    refused = fail_module({**base, "hotplug_memory": "256 MiB"})
    assert refused["msg"] == (
        f"guest {guest.name}: hotplug_memory 256 MiB hot-adds DIMMs, but the guest's cells grow through virtio-mem "
        "(memory_device virtio-mem); give the guest's new size as total_memory"
    )
    refused = fail_module({**base, "memory_slots": 1})
    assert refused["msg"] == (
        f"guest {guest.name}: memory_device virtio-mem needs one memory slot per cell, 2; memory_slots is 1"
    )


def test_each_virtio_mem_device_takes_a_memory_slot_in_libvirt(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    """Why fewer memory_slots than cells is refused: libvirt counts each virtio-mem device against the slots."""
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    guest = make_guest("vmem-slots", vcpus=2, memory_mib=512, start=False)
    run_module({"name": guest.name, "nodeset": str(node), **SPEC, "memory_slots": 2})
    written = domain_root(inactive_xml(qemu_conn, guest.name))
    assert len(devices(inactive_xml(qemu_conn, guest.name))) == 2
    # One slot fewer than devices: libvirt's own validation refuses the definition the module refuses to write.
    written.find("maxMemory").set("slots", "1")
    try:
        qemu_conn.defineXMLFlags(etree.tostring(written, encoding="unicode"), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    except libvirt.libvirtError as error:
        assert "memory device count '2' exceeds slots count '1'" in str(error), str(error)
    else:
        raise AssertionError("libvirt accepted two virtio-mem devices in one memory slot")
    # As many slots as devices: accepted, and the guest starts.
    written.find("maxMemory").set("slots", "2")
    qemu_conn.defineXMLFlags(etree.tostring(written, encoding="unicode"), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    guest.start()
    assert guest.is_active()


def test_dimm_guests_are_unchanged_by_the_option(make_guest: GuestFactory, host_caps: str) -> None:
    """The default memory_device dimm writes no virtio-mem device and keeps DIMM hot-add as it was."""
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    guest = make_guest("vmem-dimm", vcpus=2, memory_mib=512, start=False)
    spec = {key: value for key, value in SPEC.items() if key != "memory_device"}
    result = run_module({"name": guest.name, "nodeset": str(node), **spec, "hotplug_memory": "256 MiB"})
    assert result["changed"] is True
    assert devices(guest.inactive_xml()) == {}
    assert [element.get("model") for element in domain_root(guest.inactive_xml()).iterfind("devices/memory")] == [
        "dimm",
        "dimm",
    ]


def dimms(xml: str) -> list[tuple[int, int]]:
    """The DIMMs of a definition: (guest cell, KiB)."""
    return [
        (int(element.find("target/node").text), int(element.find("target/size").text))
        for element in domain_root(xml).iterfind("devices/memory[@model='dimm']")
    ]


def test_switching_from_virtio_mem_to_dimms_with_hotplug_memory_in_one_run(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    """The virtio-mem devices the switch removes are not counted as hot-plugged DIMMs (they held 200 MiB)."""
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    guest = make_guest("vmem-switch", vcpus=2, memory_mib=512, start=False)
    base = {"name": guest.name, "nodeset": str(node), **SPEC}
    run_module({**base, "total_memory": "712 MiB"})
    assert sum(device["requested"] for device in devices(inactive_xml(qemu_conn, guest.name)).values()) == 200 * MIB
    switch = {**base, "memory_device": "dimm", "hotplug_memory": "128 MiB"}
    checked = run_module(switch, check_mode=True)
    assert checked["changed"] is True
    switched = run_module(switch)
    assert switched["changed"] is True
    written = inactive_xml(qemu_conn, guest.name)
    assert devices(written) == {}
    assert dimms(written) == [(0, 128 * MIB)]
    assert run_module(switch)["changed"] is False


def test_fewer_memory_slots_than_the_dimms_a_guest_keeps_is_refused_before_libvirt(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    """memory_slots below the guest's DIMMs: refused in check mode, not left to libvirt's define to refuse."""
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    guest = make_guest("vmem-slots-dimm", vcpus=2, memory_mib=512, start=False)
    spec = {key: value for key, value in SPEC.items() if key != "memory_device"}
    base = {"name": guest.name, "nodeset": str(node), **spec, "hotplug_memory": "256 MiB"}
    run_module(base)
    written = inactive_xml(qemu_conn, guest.name)
    assert len(dimms(written)) == 2
    for check_mode in (True, False):
        refused = fail_module({**base, "memory_slots": 1}, check_mode=check_mode)
        assert refused["msg"] == (
            f"guest {guest.name}: keeping the guest's 2 memory devices needs 2 memory slots; memory_slots is 1"
        )
    assert inactive_xml(qemu_conn, guest.name) == written
