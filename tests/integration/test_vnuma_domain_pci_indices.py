# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's PCI controllers on the real libvirtd: no index left for libvirt to fill, undone exactly.

libvirt gives every PCI controller index below the highest in use a controller: one the collection's
controllers leave unused gets a root port of libvirt's own, which nothing of the collection's removes.  Here,
on shut-off q35 guests (nothing boots, a few seconds): a device moved from one cell to another, and the
collection's virtio-mem devices (each in a root port of its own), leave no such index, check mode says what
libvirt then has, and ``state: absent`` gives back the definition from before, byte for byte.  When another
tool keeps a higher index, check mode names the indices libvirt fills, and a warning says so.  ``state:
absent`` says when a moved device cannot go back to its address, and a call of absent alone checks no capacity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
from vnuma_domain_support import RING, domain_root, inactive_xml

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import GuestFactory


def disks(tmp_path: Path, *targets: str) -> str:
    # The images are never opened: the guests stay shut off.
    return "".join(
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{tmp_path / target}.img'/>"
        f"<target dev='{target}' bus='virtio'/></disk>"
        for target in targets
    )


def controllers(xml: str) -> list[tuple[int, str, str | None]]:
    """The PCI controllers by index: (index, model, alias)."""
    found = []
    for element in domain_root(xml).iterfind("devices/controller[@type='pci']"):
        alias = element.find("alias")
        found.append((int(element.get("index")), element.get("model"), None if alias is None else alias.get("name")))
    return sorted(found)


def without_gaps(xml: str) -> bool:
    return [index for index, _model, _alias in controllers(xml)] == list(range(len(controllers(xml))))


def address(xml: str, target: str) -> tuple[int, int]:
    element = domain_root(xml).find(f"devices/disk/target[@dev='{target}']/..")
    slot = element.find("address")
    return int(slot.get("bus"), 0), int(slot.get("slot"), 0)


def apply(args: dict[str, Any], conn: libvirt.virConnect) -> dict[str, Any]:
    """Check mode, then the run: both say the same, and the run leaves every index in use."""
    plan = run_module(args, check_mode=True, diff=True)
    applied = run_module(args)
    assert applied["changes"] == plan["changes"]
    assert without_gaps(inactive_xml(conn, args["name"])), controllers(inactive_xml(conn, args["name"]))
    assert run_module(args)["changed"] is False
    return applied


def test_a_device_moved_to_another_cell_leaves_no_index_for_libvirt_to_fill(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    guest = make_guest("fix-pci-cells", 4, 256, start=False, devices_xml=disks(tmp_path, "vda", "vdb"))
    before = inactive_xml(qemu_conn, guest.name)
    base = {"name": guest.name, "host_capabilities": RING, "capacity": "ignore", "mode": "host"}
    for cycle in range(2):
        three = apply({**base, "device_locality": "all", "device_cells": "vdb=3"}, qemu_conn)
        assert three["changed"] is True
        one = apply({**base, "device_locality": "all", "device_cells": "vdb=1"}, qemu_conn)
        # Cell 1's bus and port take the indices cell 3's leave: libvirt adds no controller of its own.
        assert not any(change.endswith("model: None -> 'pcie-root-port'") for change in one["changes"])
        written = inactive_xml(qemu_conn, guest.name)
        ours = [entry for entry in controllers(written) if entry[2]]
        assert [alias for _index, _model, alias in ours] == [
            "ua-vnuma-pxb0",
            "ua-vnuma-port0-0",
            "ua-vnuma-pxb1",
            "ua-vnuma-port1-0",
        ], (cycle, ours)
        assert [entry for entry in controllers(written) if not entry[2]] == controllers(before)
        removed = run_module({"name": guest.name, "state": "absent"})
        assert removed["changed"] is True and "warnings" not in removed, removed
        # Every device, controller and address as before, each cycle.
        assert inactive_xml(qemu_conn, guest.name) == before


def test_indices_libvirt_fills_below_another_tools_controller_are_said_before_it_does(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    guest = make_guest("fix-pci-fill", 4, 256, start=False, devices_xml=disks(tmp_path, "vda", "vdb"))
    args = {
        "name": guest.name,
        "host_capabilities": RING,
        "capacity": "ignore",
        "mode": "host",
        "device_locality": "all",
        "device_cells": "vdb=3",
    }
    apply(args, qemu_conn)
    ours = [index for index, _model, alias in controllers(inactive_xml(qemu_conn, guest.name)) if alias]
    # Another tool adds a root port after every index in use, above the collection's (virsh edit).
    top = max(index for index, _model, _alias in controllers(inactive_xml(qemu_conn, guest.name))) + 1
    root = domain_root(inactive_xml(qemu_conn, guest.name))
    root.find("devices").append(etree.fromstring(f"<controller type='pci' index='{top}' model='pcie-root-port'/>"))
    qemu_conn.defineXML(etree.tostring(root, encoding="unicode"))
    assert top > max(ours)
    none = {**args, "device_locality": "none", "device_cells": None}
    plan = run_module(none, check_mode=True)
    predicted = [change for change in plan["changes"] if change.endswith("/model: None -> 'pcie-root-port'")]
    assert predicted == [f"devices/controller[{index}]/model: None -> 'pcie-root-port'" for index in ours]
    said = [warning for warning in plan["warnings"] if "left unused below index" in warning]
    assert said == [
        f"guest {guest.name}: PCI controller indices {ours[0]}-{ours[-1]} of the collection's controllers are left "
        f"unused below index {top}, which stays in use: libvirt adds a pcie-root-port at each, which is not the "
        "collection's and stays when its controllers go"
    ], plan["warnings"]
    run_module(none)
    # What check mode said is what libvirt did: a root port of its own in each of those indices.
    written = controllers(inactive_xml(qemu_conn, guest.name))
    assert [(index, model) for index, model, alias in written if index in ours] == [
        (index, "pcie-root-port") for index in ours
    ]
    assert not any(alias for _index, _model, alias in written)
    assert run_module(none)["changed"] is False


def test_absent_says_when_a_moved_device_cannot_go_back(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    guest = make_guest("fix-pci-warn", 4, 256, start=False, devices_xml=disks(tmp_path, "vda", "vdb"))
    before = address(inactive_xml(qemu_conn, guest.name), "vda")
    args = {"name": guest.name, "host_capabilities": RING, "capacity": "ignore", "mode": "host"}
    apply({**args, "device_locality": "all"}, qemu_conn)
    # Another tool adds a disk (virsh attach-disk --config): libvirt puts it where vda was before the move.
    qemu_conn.lookupByName(guest.name).attachDeviceFlags(disks(tmp_path, "vdc"), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert address(inactive_xml(qemu_conn, guest.name), "vdc") == before
    said = (
        f"guest {guest.name}: devices/disk[vda] cannot go back to its address from before the move, "
        f"0000:{before[0]:02x}:{before[1]:02x}.0 (devices/disk[vdc] has it now): libvirt places it"
    )
    for check_mode in (True, False):
        removed = run_module({"name": guest.name, "state": "absent"}, check_mode=check_mode)
        assert removed["changed"] is True
        assert said in removed["warnings"], removed.get("warnings")
    assert address(inactive_xml(qemu_conn, guest.name), "vdc") == before
    assert address(inactive_xml(qemu_conn, guest.name), "vda") != before


def test_virtio_mem_devices_sit_in_root_ports_of_the_collections_that_go_with_them(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    guest = make_guest("fix-pci-vmem", 4, 512, start=False, devices_xml=disks(tmp_path, "vda", "vdb"))
    before = inactive_xml(qemu_conn, guest.name)
    args = {
        "name": guest.name,
        "host_capabilities": RING,
        "capacity": "ignore",
        "mode": "node",
        "cells": 2,
        "max_memory": "2 GiB",
        "memory_slots": 4,
        "memory_device": "virtio-mem",
    }
    applied = apply(args, qemu_conn)
    written = inactive_xml(qemu_conn, guest.name)
    ports = {alias: index for index, _model, alias in controllers(written) if alias}
    assert sorted(ports) == ["ua-vnuma-memport0", "ua-vnuma-memport1"]
    # Check mode said it: the collection's ports and the devices in them.
    assert {f"devices/controller[{alias}]/index: None -> {index}" for alias, index in ports.items()} <= set(
        applied["changes"]
    )
    # libvirt added no controller of its own: the devices have their addresses.
    assert [entry for entry in controllers(written) if not entry[2]] == controllers(before)
    for cell in (0, 1):
        device = domain_root(written).find(f"devices/memory/alias[@name='ua-vnuma-cell{cell}']/..")
        assert int(device.find("address").get("bus"), 0) == ports[f"ua-vnuma-memport{cell}"]
    qemu_conn.defineXMLFlags(written, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    # Absent: the definition from before, byte for byte, the ports gone with the devices.
    removed = run_module({"name": guest.name, "state": "absent"})
    assert removed["changed"] is True and "warnings" not in removed, removed
    assert inactive_xml(qemu_conn, guest.name) == before


def test_a_call_of_state_absent_alone_reports_no_capacity(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect
) -> None:
    guest = make_guest("fix-pci-plain", 2, 256, start=False)
    before = inactive_xml(qemu_conn, guest.name)
    # Never managed by the collection: left alone, and the other guests of the host are not its business.
    result = run_module({"name": guest.name, "state": "absent"})
    assert result["changed"] is False
    assert "capacity" not in result
    assert not any(warning.startswith("capacity:") for warning in result.get("warnings", [])), result["warnings"]
    assert inactive_xml(qemu_conn, guest.name) == before
