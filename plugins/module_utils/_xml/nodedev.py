# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""PCI devices in XML: the host's (libvirt's node-device XML) and a guest's passthrough devices.

A host PCI device (``virsh nodedev-dumpxml pci_0000_03_00_0``)::

    <device><name>pci_0000_03_00_0</name>
      <capability type='pci'><class>0x020000</class><domain>0</domain><bus>3</bus><slot>0</slot>
        <function>0</function><product id='0x1521'/><vendor id='0x8086'/><numa node='1'/></capability>
    </device>

``<numa node>`` is absent on a host without NUMA information, and -1 where the kernel says so: both
read as no node.  A guest's passthrough devices are its ``<hostdev mode='subsystem' type='pci'>`` and
its ``<interface type='hostdev'>``, named by their ``<source><address>`` on the host.
"""

from __future__ import annotations

from collections.abc import Iterable

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import (
    GuestDevice,
    HostPciDevice,
    PciAddress,
    pci_class_kind,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import decimal_int, libvirt_int

__all__ = ["guest_pci_devices", "host_pci_devices", "parse_node_device"]

_FIELDS = ("domain", "bus", "slot", "function")


def _address(values: dict[str, str | None], what: str) -> PciAddress:
    try:
        # Numbers as libvirt reads them (strtol base 0): ``0x03`` hexadecimal, ``010`` octal, ``3`` decimal.
        return PciAddress(*(libvirt_int(values[name], f"{what}: {name}") for name in _FIELDS))
    except SpecError as error:
        raise XmlError(f"{what}: {error.message}") from None


def parse_node_device(xml: str | bytes) -> HostPciDevice | None:
    """One node device as a host PCI device, None when it is not a PCI device."""
    root = parse_xml(xml, "a node device", root_tag="device", keep_blank_text=False)
    name = root.findtext("name") or "a node device"
    cap = root.find("capability[@type='pci']")
    if cap is None:
        return None
    what = f"node device {name}"
    address = _address({field: cap.findtext(field) for field in _FIELDS}, what)
    numa = cap.find("numa")
    node = None
    if numa is not None and numa.get("node") is not None:
        raw = numa.get("node") or ""
        node = decimal_int(raw)
        if node is None:
            raise XmlError(f"{what}: <numa node={raw!r}> is not a node id")
        # The kernel's -1 (and anything below 0): no node.
        node = node if node >= 0 else None
    class_text = cap.findtext("class")
    class_code = libvirt_int(class_text, f"{what}: class") if class_text else None
    vendor, product = cap.find("vendor"), cap.find("product")
    return HostPciDevice(
        address=address,
        node=node,
        kind=pci_class_kind(class_code),
        vendor=vendor.get("id") if vendor is not None else None,
        product=product.get("id") if product is not None else None,
    )


def host_pci_devices(xmls: Iterable[str | bytes]) -> dict[PciAddress, HostPciDevice]:
    """The host's PCI devices by address, from node-device XML documents (others are left out)."""
    devices = (parse_node_device(xml) for xml in xmls)
    return {device.address: device for device in devices if device is not None}


def _source_address(element: etree._Element, what: str) -> PciAddress | None:
    address = element.find("source/address")
    if address is None or address.get("type", "pci") != "pci":
        return None
    return _address({field: address.get(field, "0") for field in _FIELDS}, what)


def guest_pci_devices(domain: etree._Element) -> list[GuestDevice]:
    """The guest's host PCI devices: ``<hostdev type='pci'>`` and ``<interface type='hostdev'>``, in order."""
    found = []
    for element in domain.iterfind("devices/*"):
        tag = element.tag
        if tag == "hostdev" and element.get("mode", "subsystem") == "subsystem" and element.get("type") == "pci":
            pass
        elif not (tag == "interface" and element.get("type") == "hostdev"):
            continue
        alias = element.find("alias")
        mac = element.find("mac")
        label = alias.get("name") if alias is not None else None
        address = _source_address(element, f"<{tag}>{' ' + label if label else ''}")
        if address is None:
            continue
        found.append(
            GuestDevice(
                element=str(tag),
                source=address,
                alias=label,
                mac=mac.get("address") if mac is not None else None,
            )
        )
    return found
