# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reading PCI devices: libvirt's node-device XML (the host's) and a guest's passthrough devices."""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import PciAddress
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.nodedev import (
    guest_pci_devices,
    host_pci_devices,
    parse_node_device,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.tests.support.devices import hostdev, node_device_xmls, passthrough_domain


def node_device(numa: str = "", cap: str = "pci", bus: str = "3") -> str:
    return (
        "<device><name>pci_0000_03_00_0</name><parent>computer</parent>"
        f"<capability type='{cap}'><class>0x020000</class><domain>0</domain><bus>{bus}</bus><slot>0</slot>"
        f"<function>0</function><product id='0x1521'/><vendor id='0x8086'/>{numa}</capability></device>"
    )


def test_the_fixture_host() -> None:
    devices = host_pci_devices(node_device_xmls("amd-2s-nps4"))
    # The network device (net_eth0...) is left out; every PCI device is kept.
    assert len(devices) == 6
    gpu = devices[PciAddress(0, 0xC1, 0, 0)]
    assert gpu.to_dict() == {
        "address": "0000:c1:00.0",
        "kind": "display",
        "node": 5,
        "vendor": "0x10de",
        "product": "0x20f1",
    }
    assert devices[PciAddress(0, 1, 0, 0)].kind == "storage"
    assert devices[PciAddress(0, 0, 0x14, 0)].kind == "serial-bus"


@pytest.mark.parametrize(("numa", "node"), [("<numa node='1'/>", 1), ("<numa node='-1'/>", None), ("", None)])
def test_the_node_of_a_device(numa: str, node: int | None) -> None:
    device = parse_node_device(node_device(numa))
    assert device is not None
    assert (str(device.address), device.node) == ("0000:03:00.0", node)


def test_a_device_that_is_not_pci() -> None:
    assert parse_node_device(node_device(cap="usb_device")) is None


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (node_device("<numa node='one'/>"), "node device pci_0000_03_00_0: <numa node='one'> is not a node id"),
        (node_device(bus="x3"), "node device pci_0000_03_00_0: bus 'x3' is not a number"),
        (node_device(bus="300"), "node device pci_0000_03_00_0: PCI bus 300 is outside 0 to 0xff"),
        ("<domain/>", "must have a <device> root element"),
    ],
)
def test_bad_node_devices_are_refused(xml: str, message: str) -> None:
    with pytest.raises(XmlError, match=message):
        parse_node_device(xml)


def test_a_guests_passthrough_devices() -> None:
    devices = (
        hostdev("0000:41:00.0", alias="ua-nic0")
        # libvirt reads the numbers as C's strtol with base 0: decimal here.
        + "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='193' slot='0' function='0'/>"
        "</source></hostdev>" + "<interface type='hostdev'><mac address='52:54:00:6d:90:02'/><source>"
        "<address type='pci' domain='0x0000' bus='0xe1' slot='0x00' function='0x2'/></source></interface>"
        # Neither is a host PCI device.
        + "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>"
        + "<interface type='network'><source network='default'/></interface>"
    )
    found = guest_pci_devices(parse_xml(passthrough_domain("db", devices), "a domain"))
    assert [(device.element, str(device.source), device.alias, device.mac) for device in found] == [
        ("hostdev", "0000:41:00.0", "ua-nic0", None),
        ("hostdev", "0000:c1:00.0", None, None),
        ("interface", "0000:e1:00.2", None, "52:54:00:6d:90:02"),
    ]
    assert [device.name for device in found] == [
        "PCI device 0000:41:00.0 (ua-nic0)",
        "PCI device 0000:c1:00.0",
        "PCI device 0000:e1:00.2 (52:54:00:6d:90:02)",
    ]


def test_a_bad_guest_device_address_is_refused() -> None:
    devices = "<hostdev mode='subsystem' type='pci'><source><address bus='0x1ff'/></source></hostdev>"
    with pytest.raises(XmlError, match="<hostdev>: PCI bus 511 is outside 0 to 0xff"):
        guest_pci_devices(parse_xml(passthrough_domain("db", devices), "a domain"))
