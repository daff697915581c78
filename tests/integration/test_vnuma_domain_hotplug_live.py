# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a running guest lacks of its definition, on the real libvirtd and QEMU: DIMMs, vCPUs, memory slots.

A definition can bring at boot DIMMs and vCPUs the running guest does not have (attached or set with ``--config``,
or written while the guest needed a restart).  vnuma_info reports such a guest pending; vnuma_domain brings them in
live when the guest keeps running, and a rerun converges.  A DIMM attached live only holds a memory slot: a hot-add
that does not fit beside it is refused before anything is written, check mode included.  ``restart_required`` is
the same on two runs with nothing changed between them.

The guests run SeaBIOS with nothing to boot (the harness's guests without their kernel): QEMU takes DIMMs and vCPUs
without a guest OS, and they start at once.  They are not pinned (``pinning: none``): the shared libvirtd may hold
guests of other tests that dedicate this host's CPUs.
"""

from __future__ import annotations

from typing import Any

import libvirt
import libvirt_qemu
import pytest
from test_vnuma_domain_live_pins import idle_guest as idle_guest_of
from vnuma_domain_support import domain_root, enabled_vcpus, inactive_xml, live_xml

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_info
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import Guest, GuestFactory

MIB = 1024
# A user's DIMM (virsh attach-device): 128 MiB in guest cell 1, backed as the cell is.
USER_DIMM = "<memory model='dimm'><target><size unit='MiB'>128</size><node>1</node></target></memory>"


def idle_guest(make_guest: GuestFactory, prefix: str) -> Guest:
    """A harness guest of 4 vCPUs and 512 MiB (removed at the end) defined without its kernel: it runs SeaBIOS."""
    return idle_guest_of(make_guest, prefix, vcpus=4, memory_mib=512)


def laid_out(make_guest: GuestFactory, host_caps: str, prefix: str, **extra: Any) -> tuple[Guest, dict[str, Any]]:
    """An idle guest given two cells on this host's first node and room for 1.5 GiB of DIMMs, then started."""
    guest = idle_guest(make_guest, prefix)
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    spec = {"mode": "node", "nodeset": str(node), "cells": 2, "pinning": "none"}
    run_module({"name": guest.name, **spec, "max_memory": "2 GiB", "memory_slots": 4, **extra})
    guest.start()
    return guest, {"name": guest.name}


def info(name: str) -> dict[str, Any]:
    guest = run_module({"guests": [name]}, module=vnuma_info)["guests"][0]
    assert guest["source"] == "live" and guest["pending"] is bool(guest["pending_changes"])
    return guest


def cell_dimms(xml: str) -> list[int]:
    """The guest cells of the DIMMs of a definition, running or not, sorted."""
    return sorted(int(device.findtext("target/node")) for device in domain_root(xml).iterfind("devices/memory"))


def plugged(guest: Guest) -> str:
    """QEMU's own list of the guest's memory devices (HMP ``info memory-devices``)."""
    return libvirt_qemu.qemuMonitorCommand(
        guest.dom, "info memory-devices", libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
    )


def test_dimms_of_the_definition_go_in_live_once_the_guest_keeps_running(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    guest, name = laid_out(make_guest, host_caps, "vhl-defined")
    # Fewer vCPUs than run: a restart is needed, the DIMMs go into the definition only.
    lowered = run_module({**name, "current_vcpus": 2, "hotplug_memory": "256 MiB"})
    assert (lowered["changed"], lowered["restart_required"], lowered["live"]) == (True, True, [])
    assert (cell_dimms(live_xml(qemu_conn, guest.name)), cell_dimms(inactive_xml(qemu_conn, guest.name))) == (
        [],
        [0, 1],
    )
    pending = info(guest.name)["pending_changes"]
    assert [change for change in pending if change.startswith("devices/")] == [
        f"devices/memory[{cell}]: None -> 'DIMM of 128 MiB on guest cell {cell} (host nodes {node})'"
        for cell, node in enumerate([parse_capabilities(host_caps).cpu_node_ids[0]] * 2)
    ]

    # Back to the vCPUs it runs: it keeps running, so the DIMMs it lacks go in live (check mode says so first).
    args = {**name, "current_vcpus": 4, "hotplug_memory": "256 MiB"}
    before = live_xml(qemu_conn, guest.name)
    plan = run_module(args, check_mode=True)
    assert (plan["changed"], plan["restart_required"]) == (True, False)
    assert [text.endswith(" of the definition") for text in plan["live"]] == [True, True]
    assert live_xml(qemu_conn, guest.name) == before, "check mode attached a DIMM"
    applied = run_module(args)
    assert (applied["changed"], applied["restart_required"], applied["live"]) == (True, False, plan["live"])
    assert cell_dimms(live_xml(qemu_conn, guest.name)) == [0, 1]
    assert cell_dimms(inactive_xml(qemu_conn, guest.name)) == [0, 1]
    assert plugged(guest).count("node: ") == 2
    assert info(guest.name)["pending"] is False
    again = run_module(args)
    assert (again["changed"], again["live"]) == (False, [])


def test_a_dimm_a_user_attached_to_the_definition_goes_in_live_with_the_hot_add(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    guest, name = laid_out(make_guest, host_caps, "vhl-config", hotplug_memory="256 MiB")
    # It was shut off when the DIMMs were added: they came with its boot.
    assert cell_dimms(live_xml(qemu_conn, guest.name)) == cell_dimms(inactive_xml(qemu_conn, guest.name)) == [0, 1]
    guest.dom.attachDeviceFlags(USER_DIMM, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert info(guest.name)["pending_changes"] == ["devices/memory[2]: None -> 'DIMM of 128 MiB on guest cell 1'"]
    # 512 MiB in all: the user's DIMM goes in live, and the new 128 MiB to cell 0, which has less.
    result = run_module({**name, "hotplug_memory": "512 MiB"})
    assert result["live"][0] == "DIMM of 128 MiB on guest cell 1 of the definition"
    assert result["live"][1].startswith("DIMM of 128 MiB on guest cell 0 ")
    assert cell_dimms(live_xml(qemu_conn, guest.name)) == [0, 0, 1, 1]
    assert cell_dimms(inactive_xml(qemu_conn, guest.name)) == [0, 0, 1, 1]
    assert info(guest.name)["pending"] is False
    assert run_module({**name, "hotplug_memory": "512 MiB"})["changed"] is False


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "real"])
def test_a_dimm_attached_live_only_holds_a_slot_and_a_hot_add_beyond_is_refused_before_any_write(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str, check_mode: bool
) -> None:
    guest, name = laid_out(make_guest, host_caps, "vhl-slots")
    run_module({**name, "hotplug_memory": "256 MiB"})
    guest.dom.attachDeviceFlags(USER_DIMM, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    # Attached live only: not pending, and kept.
    assert info(guest.name)["pending"] is False
    live_before, inactive_before = live_xml(qemu_conn, guest.name), inactive_xml(qemu_conn, guest.name)
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    refused = fail_module({**name, "hotplug_memory": "512 MiB"}, check_mode=check_mode)
    assert refused["msg"] == (
        f"guest {guest.name}: the running guest holds 3 memory devices (DIMM of 128 MiB on guest cell 0 (host nodes "
        f"{node}), DIMM of 128 MiB on guest cell 1 (host nodes {node}), DIMM of 128 MiB on guest cell 1 attached live "
        "only); attaching 2 DIMMs live (2 new for hotplug_memory 512 MiB) makes 5, above memory_slots 4; detach a "
        "memory device from the running guest, or raise memory_slots"
    )
    assert refused["changed"] is False
    assert live_xml(qemu_conn, guest.name) == live_before
    assert inactive_xml(qemu_conn, guest.name) == inactive_before
    # What fits beside it goes in: 128 MiB more, one DIMM.
    added = run_module({**name, "hotplug_memory": "384 MiB"})
    assert (added["changed"], len(added["live"])) == (True, 1)
    assert cell_dimms(live_xml(qemu_conn, guest.name)) == [0, 0, 1, 1]
    assert cell_dimms(inactive_xml(qemu_conn, guest.name)) == [0, 0, 1]


def test_vcpus_the_definition_brings_online_are_brought_online_and_restart_required_is_stable(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    guest, name = laid_out(make_guest, host_caps, "vhl-vcpus", current_vcpus=2)
    assert len(enabled_vcpus(live_xml(qemu_conn, guest.name))) == 2
    # virsh setvcpus NAME 4 --config: the next boot brings 4 online, the guest runs 2.
    guest.dom.setVcpusFlags(4, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert "vcpu/current: 2 -> None" in info(guest.name)["pending_changes"]
    before = live_xml(qemu_conn, guest.name)
    plan = run_module(name, check_mode=True)
    assert (plan["changed"], plan["restart_required"], plan["live"]) == (True, False, ["enabled vCPUs 1,3"])
    assert live_xml(qemu_conn, guest.name) == before, "check mode enabled a vCPU"
    applied = run_module(name)
    assert (applied["changed"], applied["restart_required"], applied["live"]) == (True, False, ["enabled vCPUs 1,3"])
    assert enabled_vcpus(live_xml(qemu_conn, guest.name)) == {0, 1, 2, 3}
    assert guest.dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE) == 4
    assert info(guest.name)["pending"] is False
    again = run_module(name)
    assert (again["changed"], again["restart_required"], again["live"]) == (False, False, [])


def test_fewer_vcpus_defined_than_run_need_a_restart_on_every_run(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    guest, name = laid_out(make_guest, host_caps, "vhl-fewer")
    guest.dom.setVcpusFlags(2, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert info(guest.name)["pending"] is True
    answers = [run_module(name)["restart_required"] for _run in range(2)]
    assert answers == [True, True]
    assert info(guest.name)["pending"] is True
    assert guest.dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE) == 4
