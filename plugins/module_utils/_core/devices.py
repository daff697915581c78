# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""PCI devices and their host nodes: the host's devices, a guest's passthrough devices, and their cells.

A host PCI device has the host node its kernel reports (``/sys/bus/pci/devices/*/numa_node``, which
libvirt's node-device XML carries as ``<numa node='N'/>``), or none: a single-node host, firmware that
gives no ``_PXM``, or the kernel's -1.  A guest's passthrough device (``<hostdev type='pci'>``, or an
``<interface type='hostdev'>``) is one of them, named by its host address.  The readers are
``_xml/nodedev.py``; the affinity policy is ``_core/affinity.py``.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout

__all__ = [
    "GuestDevice",
    "HostPciDevice",
    "PciAddress",
    "cell_for_host_node",
    "device_report",
    "devices_by_node",
    "local_cell",
    "pci_class_kind",
    "with_host_nodes",
]

# PCI's limits (domain 16 bits, bus 8, slot 5, function 3).
_LIMITS = (("domain", 0xFFFF), ("bus", 0xFF), ("slot", 0x1F), ("function", 0x7))
_ADDRESS = re.compile(r"^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")

# The PCI base class (the top byte of the class code) as a word (PCI Code and ID Assignment, 1.1).
_CLASSES = {
    0x01: "storage",
    0x02: "network",
    0x03: "display",
    0x04: "multimedia",
    0x05: "memory",
    0x06: "bridge",
    0x0B: "processor",
    0x0C: "serial-bus",
    0x12: "accelerator",
}


@dataclass(frozen=True, order=True)
class PciAddress:
    """A PCI address on the host, written as Linux and libvirt's node devices write it (``0000:03:00.0``)."""

    domain: int
    bus: int
    slot: int
    function: int

    def __post_init__(self) -> None:
        for name, limit in _LIMITS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise SpecError(f"PCI {name} {value!r} is outside 0 to {limit:#x}")

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @classmethod
    def parse(cls, text: object, what: str = "PCI address") -> PciAddress:
        """``0000:03:00.0`` or ``03:00.0`` (domain 0), hexadecimal as Linux writes it."""
        match = _ADDRESS.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise SpecError(f"{what} {text!r} is not a PCI address such as 0000:03:00.0")
        domain, bus, slot, function = match.groups()
        return cls(int(domain or "0", 16), int(bus, 16), int(slot, 16), int(function, 16))


def pci_class_kind(class_code: int | None) -> str:
    """What a PCI class code says a device is (``network``, ``display``...), ``other`` when it says nothing known."""
    if class_code is None:
        return "other"
    return _CLASSES.get((class_code >> 16) & 0xFF, "other")


@dataclass(frozen=True)
class HostPciDevice:
    """One PCI device of the host and the host node it is attached to (None when the host does not say)."""

    address: PciAddress
    node: int | None
    kind: str = "other"
    vendor: str | None = None
    product: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "kind": self.kind,
            "node": self.node,
            "vendor": self.vendor,
            "product": self.product,
        }


@dataclass(frozen=True)
class GuestDevice:
    """A device of a guest that is a host PCI device: its identity in the guest and its host node.

    ``element`` is what the guest's definition calls it (``hostdev``, ``interface``); ``alias`` its
    ``<alias name>`` (``ua-nic0``), ``mac`` an interface's MAC address.  ``host_node`` is None when the
    host does not report one, or has no such device (``known`` False).
    """

    element: str
    source: PciAddress
    alias: str | None = None
    mac: str | None = None
    host_node: int | None = None
    kind: str = "other"
    # Whether the host has a PCI device at ``source``.
    known: bool = False

    @property
    def name(self) -> str:
        """How messages name the device: its host address, and its alias or MAC when it has one."""
        label = self.alias or self.mac
        return f"PCI device {self.source}" + (f" ({label})" if label else "")


def with_host_nodes(devices: Iterable[GuestDevice], host: Mapping[PciAddress, HostPciDevice]) -> list[GuestDevice]:
    """``devices`` with the host node and kind of the host's device at each one's address."""
    found = []
    for device in devices:
        host_device = host.get(device.source)
        if host_device is None:
            found.append(replace(device, host_node=None, known=False))
        else:
            found.append(replace(device, host_node=host_device.node, kind=host_device.kind, known=True))
    return found


def local_cell(node: int | None, cells: Iterable[tuple[int, Collection[int], bool]]) -> int | None:
    """The cell a device on host node ``node`` is local to, of ``cells`` as (id, host nodes, has vCPUs).

    The first cell on that node, a cell with vCPUs before a CPU-less one: the device's interrupts and
    DMA serve the vCPUs.  None when the node is unknown or no cell is on it.
    """
    if node is None:
        return None
    on_node = [(cell, has_vcpus) for cell, nodes, has_vcpus in cells if node in nodes]
    found = [cell for cell, has_vcpus in on_node if has_vcpus] or [cell for cell, _has_vcpus in on_node]
    return found[0] if found else None


def cell_for_host_node(layout: Layout, node: int | None) -> int | None:
    """The guest cell of ``layout`` a device on host node ``node`` is local to (``local_cell``), else None."""
    return local_cell(node, ((cell.id, cell.host_nodes, bool(cell.vcpus)) for cell in layout.cells))


def device_report(device: GuestDevice, cells: Iterable[tuple[int, Collection[int], bool]]) -> dict[str, Any]:
    """One guest device as vnuma_info reports it: where it is on the host and the cell it is local to.

    ``local`` is null when the host does not say where the device is.
    """
    cell = local_cell(device.host_node, cells)
    return {
        "address": str(device.source),
        "element": device.element,
        "alias": device.alias,
        "mac": device.mac,
        "kind": device.kind,
        "host_node": device.host_node,
        "known": device.known,
        "local": None if device.host_node is None else cell is not None,
        "cell": cell,
    }


def devices_by_node(devices: Sequence[HostPciDevice]) -> dict[str, list[str]]:
    """The host's PCI devices by node, compact: ``{"0": ["0000:03:00.0"], "unknown": [...]}``."""
    grouped: dict[str, list[str]] = {}
    for device in sorted(devices, key=lambda item: item.address):
        key = "unknown" if device.node is None else str(device.node)
        grouped.setdefault(key, []).append(str(device.address))
    return dict(sorted(grouped.items(), key=lambda item: (item[0] == "unknown", len(item[0]), item[0])))
