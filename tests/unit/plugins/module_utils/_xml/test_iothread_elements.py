# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``<iothreads>``, ``<iothreadpin>`` and the virtio disks' ``<driver iothread>`` (``_xml/iothreads.py``)."""

from __future__ import annotations

from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.iothreads import (
    Iothreadpin,
    IothreadPins,
    IoThreads,
    device_cells,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_locality import PciDomain, PciLocality
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

RING = host("seed-4node-ring")

USER = """<domain type='kvm'>
  <name>db01</name>
  <memory unit='GiB'>4</memory>
  <vcpu>4</vcpu>
  <iothreadids>
    <iothread id='3'/>
    <iothread id='7'/>
  </iothreadids>
  <cputune>
    <iothreadpin iothread='3' cpuset='1'/>
    <iothreadpin iothread='7' cpuset='2-3'/>
  </cputune>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-expander-bus'>
      <target busNr='200'><node>2</node></target>
    </controller>
    <controller type='pci' index='2' model='pcie-root-port'>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </controller>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' iothread='7'/>
      <source file='/var/lib/a.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/var/lib/b.img'/>
      <target dev='vdb' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/c.img'/>
      <target dev='sda' bus='scsi'/>
    </disk>
  </devices>
</domain>"""


def root(text: str = USER) -> etree._Element:
    return parse_xml(text, "domain", root_tag="domain")


def target(tree: etree._Element, **spec: Any) -> DomainNuma:
    layout = compute_layout(RING, VnumaSpec.from_mapping(spec), GuestShape(vcpus=4, memory_kib=4 << 20, name="db01"))
    return DomainNuma.from_layout(layout, DomainNuma.from_domain(tree))


def test_read_as_written() -> None:
    tree = root()
    assert IoThreads.of(tree) == IoThreads((3, 7), (("vda", 7), ("vdb", None)))
    assert IothreadPins.of(tree) == IothreadPins((Iothreadpin(3, (1,)), Iothreadpin(7, (2, 3))))
    # The count alone gives ids 1..N.
    assert IoThreads.of(root("<domain><iothreads>2</iothreads></domain>")).ids == (1, 2)


def test_none_leaves_the_users_threads_and_disks_as_they_are() -> None:
    tree = root()
    before = etree.tostring(tree)
    current = DomainNuma.from_domain(tree)
    planned = target(tree, mode="host")
    assert planned.iothreads == current.iothreads and planned.iothreadpins == current.iothreadpins
    planned.apply(tree)
    after = root(etree.tostring(tree).decode())
    assert IoThreads.of(after) == current.iothreads
    assert IothreadPins.of(after) == current.iothreadpins
    assert b"<iothreadids>" in before and after.find("iothreadids") is not None


def test_per_cell_owns_the_threads_pins_and_disk_threads() -> None:
    tree = root()
    current = DomainNuma.from_domain(tree)
    planned = target(tree, mode="host", iothreads="per_cell")
    changes = {change.path: (change.before, change.after, change.kind) for change in current.changes(planned)}
    assert {path: value for path, value in changes.items() if "iothread" in path} == {
        "iothreads": (2, 4, ChangeKind.NEEDS_BOOT),
        "iothreadids": ("3,7", None, ChangeKind.NEEDS_BOOT),
        # vda sits on the root bus: cell 0; vdb behind the user's expander bus of cell 2.
        "devices/disk[vda]/driver/iothread": (7, 1, ChangeKind.NEEDS_BOOT),
        "devices/disk[vdb]/driver/iothread": (None, 3, ChangeKind.NEEDS_BOOT),
        "cputune/iothreadpin[1]": (None, "0-3", ChangeKind.LIVE),
        "cputune/iothreadpin[2]": (None, "4-7", ChangeKind.LIVE),
        "cputune/iothreadpin[3]": ("1", "8-11", ChangeKind.LIVE),
        "cputune/iothreadpin[4]": (None, "12-15", ChangeKind.LIVE),
        "cputune/iothreadpin[7]": ("2-3", None, ChangeKind.LIVE),
    }
    planned.apply(tree)
    text = etree.tostring(tree).decode()
    assert "<iothreadids>" not in text and "<iothreads>4</iothreads>" in text
    disks = {element.find("target").get("dev"): element.find("driver") for element in tree.iterfind("devices/disk")}
    # Only the iothread attribute is the collection's: the rest of vda's <driver> stays, the SCSI disk is left.
    assert dict(disks["vda"].attrib) == {"name": "qemu", "type": "qcow2", "cache": "none", "iothread": "1"}
    assert dict(disks["vdb"].attrib) == {"iothread": "3"}
    assert dict(disks["sda"].attrib) == {"name": "qemu", "type": "raw"}
    # A rerun reads what was written: nothing to change.
    again = DomainNuma.from_domain(root(text))
    assert again.changes(target(root(text), mode="host", iothreads="per_cell")) == []


def test_per_disk_then_fewer_disks() -> None:
    tree = root()
    target(tree, mode="host", iothreads="per_disk").apply(tree)
    assert IoThreads.of(tree) == IoThreads((1, 2), (("vda", 1), ("vdb", 2)))
    assert IothreadPins.of(tree) == IothreadPins((Iothreadpin(1, (0, 1, 2, 3)), Iothreadpin(2, (8, 9, 10, 11))))
    devices = tree.find("devices")
    assert devices is not None
    devices.remove(tree.findall("devices/disk")[1])
    target(tree, mode="host", iothreads="per_disk").apply(tree)
    assert IoThreads.of(tree) == IoThreads((1,), (("vda", 1),))
    assert IothreadPins.of(tree) == IothreadPins((Iothreadpin(1, (0, 1, 2, 3)),))


def test_pinning_none_writes_no_iothreadpin() -> None:
    tree = root()
    target(tree, mode="host", pinning="none", iothreads="per_cell").apply(tree)
    assert IoThreads.of(tree).ids == (1, 2, 3, 4)
    assert IothreadPins.of(tree) == IothreadPins()
    assert tree.find("cputune") is None


def test_device_cells_follow_controllers_up_to_a_node() -> None:
    domain = PciDomain.read(root())
    assert device_cells(domain, PciLocality()) == {"devices/disk[vdb]": 2}


def test_markup() -> None:
    assert Iothreadpin(2, (0, 1, 2, 5)).markup() == '<iothreadpin iothread="2" cpuset="0-2,5"/>'
