# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""What a domain has that PCI locality works from (``PciDomain``): machine type, PCI controllers, the devices
the collection can move, and every guest PCI address in ``<devices>``.

Read only: ``pci_controllers.py`` writes the collection's controllers and the moved devices' addresses, and
``pci_locality.py`` works out what they become.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import PciAddress
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.pci_locality import DeviceCell
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import virtio_mem_alias, virtio_mem_cell
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_addresses import Slot, read_originals
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_int,
    optional_libvirt_int,
    string_value,
    text_int,
)

__all__ = [
    "EXPANDERS",
    "MEMORY_PORT_ALIAS",
    "PCIE_EXPANDER",
    "PCI_BRIDGE",
    "PCI_EXPANDER",
    "PORT_ALIAS",
    "PXB_ALIAS",
    "ROOTS",
    "ROOT_PORT",
    "Controller",
    "PciDevice",
    "PciDomain",
    "controllers_of",
    "devices_of",
    "memory_device_cell",
    "memory_path",
]

PXB_ALIAS = "ua-vnuma-pxb"
PORT_ALIAS = "ua-vnuma-port"
# The root port of the collection's virtio-mem device of a cell (q35), ``ua-vnuma-memportC``.
MEMORY_PORT_ALIAS = "ua-vnuma-memport"
PCIE_EXPANDER = "pcie-expander-bus"
PCI_EXPANDER = "pci-expander-bus"
ROOT_PORT = "pcie-root-port"
PCI_BRIDGE = "pci-bridge"
EXPANDERS = (PCIE_EXPANDER, PCI_EXPANDER)
ROOTS = ("pci-root", "pcie-root")


@dataclass(frozen=True)
class PciDevice:
    """A device of the domain that sits on a PCI bus and that the collection can move.

    ``path`` names it in changes: ``devices/disk[vda]``, ``devices/interface[52:54:00:12:34:56]``,
    ``devices/rng[ua-rng0]`` (``devices/rng[0]`` without a user alias), ``devices/hostdev[0000:03:00.0]``.
    ``source`` is a passthrough device's host address (None for an emulated one).
    """

    tag: str
    path: str
    address: Slot | None
    alias: str | None = None
    target: str | None = None
    mac: str | None = None
    source: PciAddress | None = None

    @property
    def passthrough(self) -> bool:
        return self.source is not None

    def named(self, override: DeviceCell) -> bool:
        names = {"alias": self.alias, "target": self.target, "mac": self.mac}
        return names.get(override.key) == override.value


def _source_address(element: etree._Element, what: str) -> PciAddress | None:
    address = element.find("source/address")
    if address is None:
        return None
    domain, bus, slot, function = (
        optional_libvirt_int(address.get(name), f"{what} <source><address> {name}")
        for name in ("domain", "bus", "slot", "function")
    )
    return PciAddress(domain or 0, bus or 0, slot or 0, function or 0)


def devices_of(root: etree._Element) -> list[tuple[PciDevice, etree._Element]]:
    """The movable PCI devices of a domain with their elements, in document order."""
    found: list[tuple[PciDevice, etree._Element]] = []
    counts: dict[str, int] = {}
    for element in root.iterfind("devices/*"):
        tag = element.tag
        # Comments and processing instructions have a function as their tag.
        if not isinstance(tag, str) or tag in ("emulator", "controller"):
            continue
        number = counts.get(tag, 0)
        counts[tag] = number + 1
        alias_element = element.find("alias")
        alias = None if alias_element is None else alias_element.get("name")
        # Only user aliases name a device in both the definition and the running guest (libvirt gives
        # the others, rng0 or net0, to the running guest only).
        alias = alias if alias is not None and alias.startswith("ua-") else None
        what = f"<{tag}> {number}"
        address = Slot.of(element.find("address"), f"{what} <address>")
        if element.find("address") is not None and address is None:
            continue  # on another kind of bus (drive, ccw, virtio-mmio): not ours to move
        device: PciDevice | None = None
        if tag == "disk":
            target = element.find("target")
            dev = None if target is None else target.get("dev")
            if target is not None and target.get("bus") == "virtio" and dev:
                device = PciDevice(tag, f"devices/disk[{dev}]", address, alias=alias, target=dev)
        elif tag == "interface":
            mac_element = element.find("mac")
            mac = None if mac_element is None else (mac_element.get("address") or "").lower() or None
            path = f"devices/interface[{mac or alias or number}]"
            source = _source_address(element, what) if element.get("type") == "hostdev" else None
            device = PciDevice(tag, path, address, alias=alias, mac=mac, source=source)
        elif tag == "rng" and element.get("model") == "virtio":
            device = PciDevice(tag, f"devices/rng[{alias or number}]", address, alias=alias)
        elif tag == "hostdev" and element.get("mode", "subsystem") == "subsystem" and element.get("type") == "pci":
            source = _source_address(element, what)
            if source is not None:
                device = PciDevice(tag, f"devices/hostdev[{source}]", address, alias=alias, source=source)
        if device is not None:
            found.append((device, element))
    return found


@dataclass(frozen=True)
class Controller:
    """A PCI controller of the domain as far as bus numbering goes."""

    index: int
    model: str
    alias: str | None = None
    bus_nr: int | None = None
    node: int | None = None
    address: Slot | None = None

    @property
    def owned(self) -> bool:
        return self.alias is not None and self.alias.startswith((PXB_ALIAS, PORT_ALIAS, MEMORY_PORT_ALIAS))


def controllers_of(root: etree._Element) -> list[tuple[Controller, etree._Element]]:
    found = []
    for element in root.iterfind("devices/controller"):
        if element.get("type") != "pci":
            continue
        what = f"PCI controller {element.get('index')}"
        # As virDomainControllerDefParseXML reads them: index in base 10, busNr in base 0, and <node> in
        # base 10 (virXPathInt), an empty one no node.
        index = attr_int(element, "index", what)
        alias = element.find("alias")
        node = element.find("target/node")
        found.append(
            (
                Controller(
                    index=0 if index is None else index,
                    model=element.get("model") or "",
                    alias=None if alias is None else alias.get("name"),
                    bus_nr=optional_libvirt_int(_target_attribute(element, "busNr"), f"{what} busNr"),
                    node=None if node is None or not string_value(node) else text_int(node, f"{what} <target><node>"),
                    address=Slot.of(element.find("address"), f"{what} <address>"),
                ),
                element,
            )
        )
    return found


def _target_attribute(element: etree._Element, name: str) -> str | None:
    target = element.find("target")
    return None if target is None else target.get(name)


def memory_device_cell(element: etree._Element) -> int | None:
    """The guest cell of a ``<memory>`` device that is the collection's virtio-mem device, else None."""
    alias = element.find("alias")
    return virtio_mem_cell(element.get("model"), None if alias is None else alias.get("name"))


def memory_path(cell: int) -> str:
    """The change path of the collection's virtio-mem device of ``cell`` (as ``_xml/memory.py`` names it)."""
    return f"devices/memory[{virtio_mem_alias(cell)}]"


def _unaddressed_video(root: etree._Element) -> bool:
    """Whether the primary video device has no address yet (libvirt gives it a root bus slot on define)."""
    video = root.find("devices/video")
    if video is None:
        return root.find("devices/graphics") is not None
    model = video.find("model")
    return (model is None or model.get("type") != "none") and video.find("address") is None


@dataclass(frozen=True)
class PciDomain:
    """What a domain has that PCI locality works from: machine type, PCI controllers, movable devices."""

    machine: str | None = None
    controllers: tuple[Controller, ...] = ()
    devices: tuple[PciDevice, ...] = ()
    # Every controller index a guest PCI address names (a bus libvirt adds a controller for when none has it).
    buses_named: frozenset[int] = frozenset()
    # Every guest PCI address in <devices>, with who has it: a movable device's path, a controller as
    # devices/controller[alias or index], anything else as devices/TAG[n].
    addresses: tuple[tuple[str, Slot], ...] = ()
    # The address each device the collection moved had before (``ADDRESSES_NS`` in <metadata>).
    originals: tuple[tuple[str, Slot], ...] = ()
    # Whether libvirt gives a primary video device a root bus slot when it is defined: a first <video>
    # without an address, or <graphics> without <video> (libvirt adds one).
    unaddressed_video: bool = False
    # The collection's virtio-mem devices (``ua-vnuma-cellC``): (cell, guest PCI address or None), by cell.
    memory: tuple[tuple[int, Slot | None], ...] = ()
    # Whether the root bus is PCIe (a pcie-root controller, or a q35 machine): a device there needs a root port.
    pcie_root: bool = False

    @classmethod
    def read(cls, root: etree._Element) -> PciDomain:
        os_type = root.find("os/type")
        devices = devices_of(root)
        paths = {id(element): device.path for device, element in devices}
        named = set()
        addresses: list[tuple[str, Slot]] = []
        memory: dict[int, Slot | None] = {}
        counts: dict[str, int] = {}
        for element in root.iterfind("devices/*"):
            tag = element.tag
            # Comments and processing instructions have a function as their tag.
            if not isinstance(tag, str) or not tag:
                continue
            number = counts.get(tag, 0)
            counts[tag] = number + 1
            owner = paths.get(id(element))
            cell = memory_device_cell(element) if tag == "memory" else None
            if cell is not None and cell not in memory:
                owner = memory_path(cell)
                memory[cell] = Slot.of(element.find("address"), f"{owner} <address>")
            if owner is None and tag == "controller":
                alias = element.find("alias")
                owner = f"devices/controller[{element.get('index') if alias is None else alias.get('name')}]"
            for address in element.iter("address"):
                parent = address.getparent()
                # A passthrough device's <source><address> is on the host, not in the guest.
                if parent is None or parent.tag == "source":
                    continue
                slot = Slot.of(address, "<address>")
                if slot is not None:
                    named.add(slot.bus)
                    addresses.append((owner or f"devices/{tag}[{number}]", slot))
        machine = None if os_type is None else os_type.get("machine")
        controllers = tuple(controller for controller, _element in controllers_of(root))
        return cls(
            machine=machine,
            controllers=controllers,
            devices=tuple(device for device, _element in devices),
            buses_named=frozenset(named),
            addresses=tuple(addresses),
            originals=read_originals(root),
            unaddressed_video=_unaddressed_video(root),
            memory=tuple(sorted(memory.items())),
            pcie_root="q35" in (machine or "") or any(controller.model == "pcie-root" for controller in controllers),
        )

    @property
    def pcie(self) -> bool:
        """Whether the machine's root bus is PCIe (q35), or PCI (i440fx: libvirt's ``pc``, the x86 default)."""
        machine = self.machine or "pc"
        if "q35" in machine:
            return True
        if machine == "pc" or machine.startswith("pc-i440fx") or machine.startswith("pc-"):
            return False
        raise SpecError(
            f"device_locality needs a q35 or i440fx (pc) machine, the guest's is {machine}: "
            "its PCI expander buses are QEMU's pxb-pcie and pxb"
        )
