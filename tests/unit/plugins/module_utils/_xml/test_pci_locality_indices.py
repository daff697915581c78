# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The indices of the collection's PCI controllers, and the root ports of its virtio-mem devices.

libvirt gives every PCI controller index up to the highest in use a controller: an index nothing uses is
filled with a root port (q35) or a PCI bridge (i440fx) of libvirt's own, which then outlives the
collection's controllers.  So the collection numbers its controllers without leaving an index unused, says
in the changes (and a warning) which indices libvirt fills when something else keeps a higher one, and puts
each virtio-mem device of its own in a root port of its own, which goes with the device.  Here on a q35
definition as libvirt keeps it; on the real libvirtd in tests/integration/test_vnuma_domain_pci_indices.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.absent import render_absent
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import DomainPlan, plan_domain, render_plan
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_domain import PciDomain

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
TOPOLOGY = parse_capabilities((FIXTURES / "capabilities" / "seed-4node-ring.xml").read_text(encoding="utf-8"))

# A q35 guest with two virtio disks as libvirt's QEMU driver keeps it: four root ports in slot 1, the USB
# controller and the disks in three of them, the fourth free.
GUEST = """<domain type='qemu'>
  <name>pci-indices</name>
  <uuid>e580094c-7413-481f-ac06-e5f4e2ad229a</uuid>
  <memory unit='KiB'>1048576</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static'>4</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
  </features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/a.img'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/b.img'/>
      <target dev='vdb' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci'>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </controller>
    <controller type='sata' index='0'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='1' port='0x8'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0' multifunction='on'/>
    </controller>
    <controller type='pci' index='2' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='2' port='0x9'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x1'/>
    </controller>
    <controller type='pci' index='3' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='3' port='0xa'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>
    <controller type='pci' index='4' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='4' port='0xb'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x3'/>
    </controller>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""

# The same guest on i440fx: the disks directly on the root bus.
GUEST_I440FX = """<domain type='qemu'>
  <name>pci-indices-pc</name>
  <memory unit='KiB'>1048576</memory>
  <vcpu placement='static'>4</vcpu>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/a.img'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </disk>
    <controller type='pci' index='0' model='pci-root'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""

VIRTIO_MEM = {"mode": "node", "cells": 2, "max_memory": "3 GiB", "memory_slots": 4, "memory_device": "virtio-mem"}


def _apply(text: str, **options: Any) -> tuple[str, DomainPlan]:
    root = parse_xml(text, "domain")
    plan = plan_domain(root, TOPOLOGY, VnumaSpec.from_mapping(options))
    render_plan(root, plan)
    return to_text(root), plan


def _absent(text: str) -> tuple[str, list[str]]:
    root = parse_xml(text, "domain")
    warnings = render_absent(root, "pci-indices")
    return to_text(root), warnings


def _controllers(text: str) -> list[tuple[int, str, str | None]]:
    """The PCI controllers by index: (index, model, alias)."""
    found = []
    for element in parse_xml(text, "domain").iterfind("devices/controller[@type='pci']"):
        alias = element.find("alias")
        found.append(
            (int(element.get("index") or "0"), element.get("model") or "", None if alias is None else alias.get("name"))
        )
    return sorted(found)


def _devices(text: str) -> list[tuple[str, dict[str, str], dict[str, str] | None]]:
    """Every device as (tag, attributes, its address's attributes), in document order: a model, not text."""
    result = []
    for element in parse_xml(text, "domain").iterfind("devices/*"):
        address = element.find("address")
        result.append((element.tag, dict(element.attrib), None if address is None else dict(address.attrib)))
    return result


def _address(text: str, path: str) -> str | None:
    root = parse_xml(text, "domain")
    if path.startswith("memory:"):
        element = root.find(f"devices/memory/alias[@name='{path[7:]}']/..")
    else:
        element = root.find(f"devices/disk/target[@dev='{path}']/..")
    assert element is not None
    address = element.find("address")
    return None if address is None else f"{int(address.get('bus') or '0', 0)}:{int(address.get('slot') or '0', 0)}"


def _indices_without_gaps(text: str) -> bool:
    indices = [index for index, _model, _alias in _controllers(text)]
    return indices == list(range(len(indices)))


# ------------------------------------------------------------------------------------------ indices


def test_a_device_moved_to_another_cell_takes_the_indices_its_old_controllers_leave() -> None:
    # vdb near cell 3: the expander buses and root ports of cells 0 and 3 take indices 5-8.
    first, _plan = _apply(GUEST, mode="host", device_locality="all", device_cells="vdb=3")
    assert _controllers(first)[5:] == [
        (5, "pcie-expander-bus", "ua-vnuma-pxb0"),
        (6, "pcie-root-port", "ua-vnuma-port0-0"),
        (7, "pcie-expander-bus", "ua-vnuma-pxb3"),
        (8, "pcie-root-port", "ua-vnuma-port3-0"),
    ]
    # vdb near cell 1: cell 1's bus and port take 7 and 8, which cell 3's leave.  From 9 on, libvirt would
    # fill 7 and 8 with root ports of its own, which neither device_locality none nor absent removes.
    second, plan = _apply(first, mode="host", device_locality="all", device_cells="vdb=1")
    assert _controllers(second)[5:] == [
        (5, "pcie-expander-bus", "ua-vnuma-pxb0"),
        (6, "pcie-root-port", "ua-vnuma-port0-0"),
        (7, "pcie-expander-bus", "ua-vnuma-pxb1"),
        (8, "pcie-root-port", "ua-vnuma-port1-0"),
    ]
    assert _indices_without_gaps(second)
    assert plan.target.pci.fillers == () and plan.target.pci.warnings == ()
    changes = {str(change) for change in plan.changes}
    assert "devices/controller[ua-vnuma-pxb1]/index: None -> 7" in changes
    assert "devices/controller[ua-vnuma-port1-0]/index: None -> 8" in changes
    assert not any(change.path.endswith("/model") for change in plan.changes)
    # Absent gives back the controllers and devices from before, every address included.
    back, warnings = _absent(second)
    assert warnings == []
    assert _devices(back) == _devices(GUEST)


def test_a_bus_that_stays_moves_down_into_the_indices_that_go_and_its_device_follows() -> None:
    both, _plan = _apply(GUEST, mode="host", device_locality="hostdev", device_cells="vda=0,vdb=1")
    assert [alias for _index, _model, alias in _controllers(both)[5:]] == [
        "ua-vnuma-pxb0",
        "ua-vnuma-port0-0",
        "ua-vnuma-pxb1",
        "ua-vnuma-port1-0",
    ]
    assert _address(both, "vdb") == "8:0"
    # vda moves no more: cell 0's controllers at 5 and 6 go, cell 1's take their indices.
    one, plan = _apply(both, mode="host", device_locality="hostdev", device_cells="vdb=1")
    assert _controllers(one)[5:] == [
        (5, "pcie-expander-bus", "ua-vnuma-pxb1"),
        (6, "pcie-root-port", "ua-vnuma-port1-0"),
    ]
    assert _indices_without_gaps(one)
    assert (_address(one, "vda"), _address(one, "vdb")) == ("2:0", "6:0")
    assert "devices/disk[vdb]/address: '0000:08:00.0' -> '0000:06:00.0'" in {str(change) for change in plan.changes}
    # A rerun keeps them.
    assert _apply(one, mode="host", device_locality="hostdev", device_cells="vdb=1")[1].changes == []


LIBVIRTS_PORT = """<controller type='pci' index='9' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='9' port='0xc'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x4'/>
    </controller>
    <disk type='file' device='disk'>
      <source file='/var/lib/c.img'/>
      <target dev='vdc' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x09' slot='0x00' function='0x0'/>
    </disk>
    <input"""


def test_indices_libvirt_fills_below_a_controller_that_stays_are_in_the_changes_and_a_warning() -> None:
    moved, _plan = _apply(GUEST, mode="host", device_locality="all", device_cells="vdb=3")
    # Another tool added a disk since, and libvirt a root port for it at index 9, above the collection's 5-8.
    added = moved.replace("<input", LIBVIRTS_PORT, 1)
    assert added != moved
    warning = (
        "PCI controller indices 5-8 of the collection's controllers are left unused below index 9, which stays "
        "in use: libvirt adds a pcie-root-port at each, which is not the collection's and stays when its "
        "controllers go"
    )
    _none, plan = _apply(added, mode="host", device_locality="none")
    assert plan.target.pci.warnings == (warning,)
    assert [str(change) for change in plan.changes if change.path.endswith("/model")] == [
        f"devices/controller[{index}]/model: None -> 'pcie-root-port'" for index in (5, 6, 7, 8)
    ]
    # Absent says so too, and its changes (read from what it writes) list them as well.
    back, warnings = _absent(added)
    assert warnings == [f"guest pci-indices: {warning}"]
    before, after = (DomainNuma.from_domain(parse_xml(text, "domain")) for text in (added, back))
    assert [str(change) for change in before.changes(after) if change.path.endswith("/model")] == [
        f"devices/controller[{index}]/model: None -> 'pcie-root-port'" for index in (5, 6, 7, 8)
    ]
    # Once libvirt has filled them, a rerun has nothing to say.
    ports = "".join(f"<controller type='pci' index='{index}' model='pcie-root-port'/>" for index in (5, 6, 7, 8))
    filled = _none.replace("<input", ports + "<input", 1)
    # The read-back after the define finds what the plan said: libvirt's root ports are no lost change.
    assert DomainNuma.from_domain(parse_xml(filled, "domain")).changes(plan.target) == []
    again = _apply(filled, mode="host", device_locality="none")[1]
    assert again.changes == [] and again.target.pci.warnings == ()


# ------------------------------------------------------------------------------------------ virtio-mem


def test_each_virtio_mem_device_sits_in_a_root_port_of_the_collections_that_goes_with_it() -> None:
    applied, plan = _apply(GUEST, **VIRTIO_MEM)
    # libvirt would take the free root port 4 for the first device and add one of its own for the second,
    # which stays when the device goes: the collection adds a port per device, and the changes say so.
    assert _controllers(applied)[5:] == [
        (5, "pcie-root-port", "ua-vnuma-memport0"),
        (6, "pcie-root-port", "ua-vnuma-memport1"),
    ]
    assert (_address(applied, "memory:ua-vnuma-cell0"), _address(applied, "memory:ua-vnuma-cell1")) == ("5:0", "6:0")
    changes = {str(change) for change in plan.changes}
    assert {
        "devices/controller[ua-vnuma-memport0]/index: None -> 5",
        "devices/controller[ua-vnuma-memport1]/index: None -> 6",
        "devices/memory[ua-vnuma-cell0]/address: None -> '0000:05:00.0'",
        "devices/memory[ua-vnuma-cell1]/address: None -> '0000:06:00.0'",
    } <= changes
    # The free root port 4 stays free.
    assert _address(GUEST, "vda") == _address(applied, "vda") == "2:0"
    assert _apply(applied, **VIRTIO_MEM)[1].changes == []
    # Back to DIMMs: the devices go, and their ports with them.
    dimms, _plan = _apply(applied, **{**VIRTIO_MEM, "memory_device": "dimm"})
    assert _controllers(dimms) == _controllers(GUEST)
    # Absent: every device, controller and address as before.
    back, warnings = _absent(applied)
    assert warnings == []
    assert _devices(back) == _devices(GUEST)


def test_with_device_locality_the_virtio_mem_ports_are_numbered_with_the_expander_buses() -> None:
    applied, plan = _apply(GUEST, **VIRTIO_MEM, device_locality="all", device_cells="vdb=1")
    assert [(index, alias) for index, _model, alias in _controllers(applied)[5:]] == [
        (5, "ua-vnuma-pxb0"),
        (6, "ua-vnuma-port0-0"),
        (7, "ua-vnuma-pxb1"),
        (8, "ua-vnuma-port1-0"),
        (9, "ua-vnuma-memport0"),
        (10, "ua-vnuma-memport1"),
    ]
    # The virtio-mem devices take a bus number each, as the root ports behind the root bus do.
    assert [bus.bus_nr for bus in plan.target.pci.buses] == [254, 252]
    without, _plan = _apply(applied, **VIRTIO_MEM)
    assert _controllers(without)[5:] == [
        (5, "pcie-root-port", "ua-vnuma-memport0"),
        (6, "pcie-root-port", "ua-vnuma-memport1"),
    ]
    assert _address(without, "memory:ua-vnuma-cell1") == "6:0"
    back, _warnings = _absent(applied)
    assert _devices(back) == _devices(GUEST)


def test_a_virtio_mem_device_libvirt_placed_keeps_its_place_and_a_new_one_gets_a_port() -> None:
    # An earlier version left cell 0's device to libvirt, which put it in the free root port 4.
    applied, _plan = _apply(GUEST, **VIRTIO_MEM)
    root = parse_xml(applied, "domain")
    for element in root.iterfind("devices/controller[@model='pcie-root-port']"):
        alias = element.find("alias")
        if alias is not None and alias.get("name", "").startswith("ua-vnuma-memport"):
            element.getparent().remove(element)
    cell0 = root.find("devices/memory/alias[@name='ua-vnuma-cell0']/..")
    cell1 = root.find("devices/memory/alias[@name='ua-vnuma-cell1']/..")
    cell0.find("address").set("bus", "0x04")
    cell1.remove(cell1.find("address"))
    earlier = to_text(root)
    again, plan = _apply(earlier, **VIRTIO_MEM)
    assert _controllers(again)[5:] == [(5, "pcie-root-port", "ua-vnuma-memport1")]
    assert (_address(again, "memory:ua-vnuma-cell0"), _address(again, "memory:ua-vnuma-cell1")) == ("4:0", "5:0")
    assert _apply(again, **VIRTIO_MEM)[1].changes == []
    assert plan.target.pci.fillers == ()


def test_on_i440fx_virtio_mem_devices_get_no_port() -> None:
    applied, plan = _apply(GUEST_I440FX, **VIRTIO_MEM)
    assert _controllers(applied) == [(0, "pci-root", None)]
    assert plan.target.pci.memory_ports == ()
    assert _address(applied, "memory:ua-vnuma-cell0") is None


def test_new_root_ports_fill_free_functions_of_the_slots_with_root_ports_first() -> None:
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_locality import _root_port_slots

    domain = PciDomain.read(parse_xml(GUEST, "domain"))
    # Slot 1 holds four root ports in functions 0-3: four more fit there, a fifth takes a slot.
    assert _root_port_slots(domain, {}, set(), 4, True) == ({1, 0x1F}, 0)
    assert _root_port_slots(domain, {}, set(), 5, True) == ({1, 0x1F}, 1)
    # A PCI bridge takes a slot of its own.
    assert _root_port_slots(domain, {}, set(), 2, False)[1] == 2
