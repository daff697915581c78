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
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_controllers import PciLocality
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_domain import PciDomain
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


# -- threads elements the collection does not own use -----------------------------------------------------

SCSI = """<domain type='kvm'>
  <name>db01</name>
  <memory unit='GiB'>4</memory>
  <vcpu>4</vcpu>
  <iothreads>3</iothreads>{ids}
  <cputune>
    <iothreadpin iothread='1' cpuset='0'/>
    <iothreadpin iothread='{thread}' cpuset='1'/>{sched}
  </cputune>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'>
      <driver queues='4' iothread='{thread}'/>
    </controller>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/a.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/s.img'/>
      <target dev='sda' bus='scsi'/>
    </disk>
  </devices>
</domain>"""


def scsi(thread: int = 3, ids: str = "", sched: str = "") -> str:
    return SCSI.format(thread=thread, ids=ids, sched=sched)


def test_a_thread_a_virtio_scsi_controller_uses_stays_and_ours_are_numbered_around_it() -> None:
    tree = root(scsi(3))
    current = DomainNuma.from_domain(tree)
    assert current.iothreads.users == ((3, "<controller type='scsi' index='0'>"),)
    planned = target(tree, mode="node", nodeset="0-1", iothreads="per_cell")
    # Two cells: threads 1 and 2 are the collection's, 3 stays the controller's with the user's pin.
    assert planned.iothreads.ids == (1, 2, 3)
    assert planned.iothreadpins == IothreadPins(
        (Iothreadpin(1, (0, 1, 2, 3)), Iothreadpin(2, (4, 5, 6, 7)), Iothreadpin(3, (1,)))
    )
    changes = {change.path: (change.before, change.after) for change in current.changes(planned)}
    assert {path: value for path, value in changes.items() if "iothread" in path} == {
        "devices/disk[vda]/driver/iothread": (None, 1),
        "cputune/iothreadpin[1]": ("0", "0-3"),
        "cputune/iothreadpin[2]": (None, "4-7"),
    }
    planned.apply(tree)
    text = etree.tostring(tree).decode()
    assert "<iothreads>3</iothreads>" in text and "<iothreadids>" not in text
    controller = tree.find("devices/controller/driver")
    assert controller is not None and dict(controller.attrib) == {"queues": "4", "iothread": "3"}
    again = DomainNuma.from_domain(root(text))
    assert again.changes(target(root(text), mode="node", nodeset="0-1", iothreads="per_cell")) == []


def test_a_kept_thread_above_ours_is_listed_by_id_with_what_its_element_says() -> None:
    ids = "\n  <iothreadids><iothread id='9' thread_pool_min='2'/><iothread id='1'/><iothread id='2'/></iothreadids>"
    tree = root(scsi(9, ids))
    assert IoThreads.of(tree).ids == (1, 2, 9)
    planned = target(tree, mode="host", iothreads="per_disk")
    # One disk, one thread of the collection's: id 1; 9 stays, 2 goes.
    assert planned.iothreads.ids == (1, 9)
    planned.apply(tree)
    text = etree.tostring(tree).decode()
    assert "<iothreads>2</iothreads>" in text
    listed = {element.get("id"): dict(element.attrib) for element in tree.iterfind("iothreadids/iothread")}
    assert listed == {"9": {"id": "9", "thread_pool_min": "2"}, "1": {"id": "1"}}
    again = root(text)
    assert DomainNuma.from_domain(again).changes(target(again, mode="host", iothreads="per_disk")) == []


def test_per_disk_threads_go_after_a_kept_thread_1() -> None:
    tree = root(scsi(1).replace("<iothreadpin iothread='1' cpuset='0'/>", ""))
    planned = target(tree, mode="host", iothreads="per_disk")
    assert planned.iothreads.ids == (1, 2)
    assert planned.iothreads.disks == (("vda", 2),)
    assert planned.iothreadpins.pins[0] == Iothreadpin(1, (1,))


def test_a_thread_only_iothreadsched_names_stays_unless_it_is_one_of_ours() -> None:
    sched = "\n    <iothreadsched iothreads='{}' scheduler='fifo' priority='1'/>"
    # It names thread 2, one of the collection's: the user tunes that one, nothing more is kept.
    tree = root(scsi(3, sched=sched.format(2)))
    assert IoThreads.of(tree).scheduled == (2,)
    assert target(tree, mode="node", nodeset="0-1", iothreads="per_cell").iothreads.ids == (1, 2, 3)
    # It names thread 7, which libvirt would refuse were it gone: 7 stays.
    tree = root(scsi(3, "\n  <iothreadids><iothread id='7'/></iothreadids>", sched.format(7)))
    assert IoThreads.of(tree).ids == (1, 2, 7)
    planned = target(tree, mode="node", nodeset="0-1", iothreads="per_cell")
    assert planned.iothreads.ids == (1, 2, 3, 7)
    planned.apply(tree)
    listed = sorted(int(element.get("id")) for element in tree.iterfind("iothreadids/iothread"))
    assert listed == [1, 2, 3, 7]


def test_threads_mapped_by_a_driver_iothreads_list_are_the_users() -> None:
    # libvirt 10.0's <driver><iothreads>: on a virtio disk (which then takes no iothread attribute) and on a
    # virtio-scsi controller.
    text = (
        scsi(3)
        .replace(
            "<driver queues='4' iothread='3'/>", "<driver queues='4'><iothreads><iothread id='4'/></iothreads></driver>"
        )
        .replace(
            "<target dev='sda' bus='scsi'/>",
            "<target dev='sda' bus='scsi'/>\n    </disk>\n    <disk type='file' device='disk'>"
            "<driver name='qemu' queues='2'><iothreads><iothread id='5'/><iothread id='6'/></iothreads></driver>"
            "<source file='/var/lib/m.img'/><target dev='vdm' bus='virtio'/>",
        )
    )
    tree = root(text)
    current = IoThreads.of(tree)
    assert [thread for thread, _who in current.users] == [4, 5, 6]
    assert current.disks == (("vda", None),)
    planned = target(tree, mode="node", nodeset="0-1", iothreads="per_disk")
    assert planned.iothreads.ids == (1, 4, 5, 6)
    assert planned.iothreads.disks == (("vda", 1),)
    planned.apply(tree)
    mapped = tree.find("devices/disk[3]/driver")
    assert mapped is not None and mapped.get("iothread") is None


def test_read_as_libvirt_fills_ids_up_to_the_count() -> None:
    # <iothreads>3 with only id 5 listed: libvirt adds the lowest free ids, 1 and 2.
    assert IoThreads.of(
        root("<domain><iothreads>3</iothreads><iothreadids><iothread id='5'/></iothreadids></domain>")
    ).ids == (1, 2, 5)
