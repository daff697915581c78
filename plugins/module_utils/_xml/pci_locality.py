# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""PCI locality the guest can see: one expander bus per guest cell that has a device, devices behind it.

A device behind a PCI expander bus whose ``<target><node>`` is guest cell C reads C in the guest's
``/sys/bus/pci/devices/*/numa_node`` (QEMU's ``pxb``/``pxb-pcie`` with ``numa_node``).  On q35 the
expander bus is a ``pcie-expander-bus`` with one ``pcie-root-port`` per device (a PCIe device plugs into a
port, never into the expander bus itself); on i440fx it is a ``pci-expander-bus`` with the devices
directly in its slots (https://libvirt.org/formatdomain.html#controllers).

The collection owns these controllers (libvirt user aliases ``ua-vnuma-pxbC`` and ``ua-vnuma-portC-J``)
and the guest PCI address of each device it moves.  Every other controller and every other device's
address stays as written.  The address a device had before its first move is kept in ``<metadata>``
(``ADDRESSES_NS``) and put back when the device is no longer moved (``device_locality: none``, an
override removed, ``state: absent``); a controller of the collection's that something else still uses
stays.  On a PCIe root bus the collection's virtio-mem devices sit in root ports of its own too
(``ua-vnuma-memportC``), which go with them: libvirt's own would outlive them.  libvirt gives every index
below the highest in use a controller, so the collection's take the lowest indices nothing else uses
(``_numbered``), and the ones libvirt still fills are listed (``PciLocality.fillers``).  The rules without
XML (overrides, bus numbers, root bus slots) are ``_core/pci_locality.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import count, islice
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import PciAddress, cell_for_host_node
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.pci_locality import (
    VIDEO_SLOT,
    DeviceCell,
    bus_numbers,
    check_root_slots,
    parse_device_cells,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import read_digits
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import make_markup, parse_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import virtio_mem_alias, virtio_mem_cell
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.metadata import MetadataRecord
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import (
    insert_at,
    remove_child,
    replace_child,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_int,
    libvirt_int,
    optional_libvirt_int,
    string_value,
    text_int,
)

__all__ = ["ADDRESSES_NS", "PciDevice", "PciDomain", "PciLocality", "pci_locality_for", "restored_locality"]

PXB_ALIAS = "ua-vnuma-pxb"
PORT_ALIAS = "ua-vnuma-port"
# The root port of the collection's virtio-mem device of a cell (q35), ``ua-vnuma-memportC``.
MEMORY_PORT_ALIAS = "ua-vnuma-memport"
_PCIE_EXPANDER = "pcie-expander-bus"
_PCI_EXPANDER = "pci-expander-bus"
_ROOT_PORT = "pcie-root-port"
_PCI_BRIDGE = "pci-bridge"
# Functions of one slot: libvirt puts up to eight root ports in one root bus slot (multifunction).
_FUNCTIONS = 8
_EXPANDERS = (_PCIE_EXPANDER, _PCI_EXPANDER)
_ROOTS = ("pci-root", "pcie-root")
# Slots of one bus (PCI's 5-bit slot number); an expander bus takes devices (or root ports) in all 32.
_SLOTS = 32
# Bus numbers an expander bus spans besides those of its root ports: its own bus, and on i440fx the
# bridge inside QEMU's pxb (libvirt's qemuDomainAddressFindNewBusNr counts 2 for each pxb).
_PCIE_SPAN = 1
_PCI_SPAN = 2
# The addresses devices had before the collection moved them.  libvirt keeps one <metadata> child per
# namespace (virXMLNodeSanitizeNamespaces), so they have a namespace of their own, as the record of the
# owned parts has (_xml/vnuma.py ORIGINAL_NS).
ADDRESSES_NS = "urn:vnuma:libvirt:addresses:1.0"
_ADDRESSES_PREFIX = "vnuma-addresses"
_ADDRESSES_TAG = "addresses"
_ADDRESSES = MetadataRecord(ADDRESSES_NS, _ADDRESSES_TAG)


@dataclass(frozen=True, order=True)
class Slot:
    """A guest PCI address on domain 0 (libvirt's ``<address type='pci'>``); ``bus`` is a controller index."""

    bus: int
    slot: int
    function: int = 0
    # libvirt's multifunction='on|off' of a function 0: carried back with an address put back, not compared.
    multifunction: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"0000:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    def attributes(self) -> tuple[tuple[str, str], ...]:
        values = (
            ("bus", f"{self.bus:#04x}"),
            ("slot", f"{self.slot:#04x}"),
            ("function", f"{self.function:#x}"),
        )
        return values + ((("multifunction", self.multifunction),) if self.multifunction else ())

    def markup(self) -> str:
        return make_markup("address", (("type", "pci"), ("domain", "0x0000"), *self.attributes()))

    @classmethod
    def of(cls, element: etree._Element | None, what: str) -> Slot | None:
        """The PCI address ``element`` (an ``<address>``) gives, None when it is none or not PCI."""
        if element is None or element.get("type") != "pci":
            return None
        # libvirt reads an address's numbers in base 0 (virPCIDeviceAddressParseXML): 0x01, 010, 1.
        return cls(
            optional_libvirt_int(element.get("bus"), f"{what} bus") or 0,
            optional_libvirt_int(element.get("slot"), f"{what} slot") or 0,
            optional_libvirt_int(element.get("function"), f"{what} function") or 0,
            element.get("multifunction"),
        )


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


def _devices_of(root: etree._Element) -> list[tuple[PciDevice, etree._Element]]:
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


def _controllers_of(root: etree._Element) -> list[tuple[Controller, etree._Element]]:
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


def _address_of(element: etree._Element) -> tuple[str, Slot] | None:
    """One ``<vnuma-addresses:address device=PATH bus slot function/>`` of the record, None when unusable."""
    path = element.get("device")
    try:
        slot = Slot(
            libvirt_int(element.get("bus"), "bus"),
            libvirt_int(element.get("slot"), "slot"),
            libvirt_int(element.get("function") or "0", "function"),
            element.get("multifunction"),
        )
    except XmlError:
        return None
    return None if not path else (path, slot)


def _read_originals(root: etree._Element) -> tuple[tuple[str, Slot], ...]:
    """The addresses devices had before the collection moved them, from ``<metadata>``.

    An entry that does not read as an address is skipped: its device then goes back to libvirt's
    placement, as one moved before the addresses were kept.
    """
    found: dict[str, Slot] = {}
    for record in _ADDRESSES.find(root):
        for element in record.iterchildren(f"{{{ADDRESSES_NS}}}address"):
            entry = _address_of(element)
            if entry is not None and entry[0] not in found:
                found[entry[0]] = entry[1]
    return tuple(found.items())


def _store_originals(root: etree._Element, originals: tuple[tuple[str, Slot], ...]) -> None:
    """``originals`` in ``<metadata>`` in place of the collection's earlier ones; none: the element goes."""
    existing = _ADDRESSES.find(root)
    if [_read_originals_of(element) for element in existing] == ([originals] if originals else []):
        return
    if not originals:
        _ADDRESSES.remove(root)
        return
    record = etree.Element(f"{{{ADDRESSES_NS}}}{_ADDRESSES_TAG}", nsmap={_ADDRESSES_PREFIX: ADDRESSES_NS})
    for path, slot in originals:
        etree.SubElement(record, f"{{{ADDRESSES_NS}}}address", {"device": path, **dict(slot.attributes())})
    _ADDRESSES.put(root, record)


def _read_originals_of(record: etree._Element) -> tuple[tuple[str, Slot], ...]:
    entries = (_address_of(element) for element in record.iterchildren(f"{{{ADDRESSES_NS}}}address"))
    return tuple(entry for entry in entries if entry is not None)


def _virtio_mem_cell(element: etree._Element) -> int | None:
    """The guest cell of a ``<memory>`` device that is the collection's virtio-mem device, else None."""
    alias = element.find("alias")
    return virtio_mem_cell(element.get("model"), None if alias is None else alias.get("name"))


def _memory_path(cell: int) -> str:
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
        devices = _devices_of(root)
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
            cell = _virtio_mem_cell(element) if tag == "memory" else None
            if cell is not None and cell not in memory:
                owner = _memory_path(cell)
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
        controllers = tuple(controller for controller, _element in _controllers_of(root))
        return cls(
            machine=machine,
            controllers=controllers,
            devices=tuple(device for device, _element in devices),
            buses_named=frozenset(named),
            addresses=tuple(addresses),
            originals=_read_originals(root),
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


@dataclass(frozen=True)
class ExpanderBus:
    """The collection's expander bus of guest cell ``cell`` (``<controller type='pci' model='...-expander-bus'>``)."""

    cell: int
    index: int
    pcie: bool
    bus_nr: int

    @property
    def alias(self) -> str:
        return f"{PXB_ALIAS}{self.cell}"

    @property
    def model(self) -> str:
        return _PCIE_EXPANDER if self.pcie else _PCI_EXPANDER

    def markup(self) -> str:
        target = make_markup("target", (("busNr", self.bus_nr),), make_markup("node", (), str(self.cell)))
        return make_markup(
            "controller",
            (("type", "pci"), ("index", self.index), ("model", self.model)),
            target + make_markup("alias", (("name", self.alias),)),
        )

    def reads_as(self, controller: Controller) -> bool:
        bus_nr = -1 if controller.bus_nr is None else controller.bus_nr
        return (controller.index, controller.model, bus_nr, controller.node) == (
            self.index,
            self.model,
            self.bus_nr,
            self.cell,
        )

    def items(self) -> Items:
        path = f"devices/controller[{self.alias}]"
        return [(f"{path}/index", self.index), (f"{path}/busNr", self.bus_nr), (f"{path}/node", self.cell)]


@dataclass(frozen=True)
class RootPort:
    """The collection's ``pcie-root-port`` number ``port`` on cell ``cell``'s expander bus (q35 only)."""

    cell: int
    port: int
    index: int
    address: Slot

    @property
    def alias(self) -> str:
        return f"{PORT_ALIAS}{self.cell}-{self.port}"

    def markup(self) -> str:
        return make_markup(
            "controller",
            (("type", "pci"), ("index", self.index), ("model", _ROOT_PORT)),
            make_markup("alias", (("name", self.alias),)) + self.address.markup(),
        )

    def reads_as(self, controller: Controller) -> bool:
        return (controller.index, controller.model, controller.address) == (self.index, _ROOT_PORT, self.address)

    def items(self) -> Items:
        path = f"devices/controller[{self.alias}]"
        return [(f"{path}/index", self.index), (f"{path}/address", str(self.address))]


@dataclass(frozen=True)
class MemoryPort:
    """The collection's ``pcie-root-port`` for its virtio-mem device of cell ``cell`` (a PCIe root bus only).

    libvirt would add a root port for a virtio-mem device without an address when no free one is left, a
    controller that would outlive the device; the collection adds its own and puts the device in its slot 0,
    so that the port goes with the device.  libvirt places the port on the root bus (a free function of a
    slot with root ports, else a new slot), as it places its own.
    """

    cell: int
    index: int

    @property
    def alias(self) -> str:
        return f"{MEMORY_PORT_ALIAS}{self.cell}"

    def markup(self) -> str:
        return make_markup(
            "controller",
            (("type", "pci"), ("index", self.index), ("model", _ROOT_PORT)),
            make_markup("alias", (("name", self.alias),)),
        )

    def reads_as(self, controller: Controller) -> bool:
        return (controller.index, controller.model) == (self.index, _ROOT_PORT)

    def items(self) -> Items:
        return [(f"devices/controller[{self.alias}]/index", self.index)]


@dataclass(frozen=True)
class PciLocality:
    """The collection's expander buses, root ports, and the guest address of each device it moved or puts back.

    Read from a domain (``of``), the moved devices are those whose address is on one of the collection's
    buses.  ``warnings`` name the passthrough devices left where they are, and devices that cannot go
    back to their old address (not compared).
    """

    # Controllers and addresses are read when the guest starts: a change waits for the next boot.
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    buses: tuple[ExpanderBus, ...] = ()
    ports: tuple[RootPort, ...] = ()
    # (device path, its address), in document order: the devices moved, and those put back (None: the
    # device had no address before, libvirt places it); then the collection's virtio-mem devices in the
    # slots of their root ports, by cell.
    placements: tuple[tuple[str, Slot | None], ...] = ()
    # The root ports of the collection's virtio-mem devices, by cell.
    memory_ports: tuple[MemoryPort, ...] = ()
    # The address each moved device had before its first move, kept in <metadata> to be put back.
    originals: tuple[tuple[str, Slot], ...] = field(default=(), compare=False)
    # Every movable device's address as this model leaves it (None: none).  Not compared, the collection
    # owns only the addresses it moves: it gives the diff the address a device had before its first move.
    addresses: tuple[tuple[str, Slot | None], ...] = field(default=(), compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    # (index, model) of each PCI controller libvirt adds when it defines the domain, because no controller
    # has that index and one above it is in use: libvirt numbers buses without gaps and fills each gap with a
    # root port (q35) or a PCI bridge (i440fx) of its own.  Listed in the changes, not compared: libvirt's,
    # not the collection's.
    fillers: tuple[tuple[int, str], ...] = field(default=(), compare=False)
    # (index, model) of every other PCI controller (not compared): the other end of a filler, once libvirt
    # has added it.
    others: tuple[tuple[int, str], ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, domain: PciDomain) -> PciLocality:
        owned = [controller for controller in domain.controllers if controller.owned]
        buses = []
        ports = []
        memory_ports = []
        for controller in owned:
            alias = controller.alias or ""
            # The numbers in the collection's aliases (``_core/units.py:read_digits``): '²' or '٢' is none.
            if alias.startswith(PXB_ALIAS):
                bus_cell = read_digits(alias[len(PXB_ALIAS) :])
                if bus_cell is not None:
                    buses.append(
                        ExpanderBus(
                            cell=bus_cell,
                            index=controller.index,
                            pcie=controller.model == _PCIE_EXPANDER,
                            bus_nr=-1 if controller.bus_nr is None else controller.bus_nr,
                        )
                    )
            elif alias.startswith(PORT_ALIAS):
                cell, _sep, port = alias[len(PORT_ALIAS) :].partition("-")
                port_cell, number = read_digits(cell), read_digits(port)
                if port_cell is not None and number is not None:
                    ports.append(RootPort(port_cell, number, controller.index, controller.address or Slot(0, 0)))
            elif alias.startswith(MEMORY_PORT_ALIAS):
                memory_cell = read_digits(alias[len(MEMORY_PORT_ALIAS) :])
                if memory_cell is not None:
                    memory_ports.append(MemoryPort(memory_cell, controller.index))
        indices = {controller.index for controller in owned}
        placements: tuple[tuple[str, Slot | None], ...] = tuple(
            (device.path, device.address)
            for device in domain.devices
            if device.address is not None and device.address.bus in indices
        ) + tuple(
            (_memory_path(cell), slot) for cell, slot in domain.memory if slot is not None and slot.bus in indices
        )
        in_use = {0, *(controller.index for controller in domain.controllers), *domain.buses_named}
        return cls(
            tuple(sorted(buses, key=lambda bus: bus.cell)),
            tuple(sorted(ports, key=lambda port: (port.cell, port.port))),
            placements,
            tuple(sorted(memory_ports, key=lambda port: port.cell)),
            domain.originals,
            tuple((device.path, device.address) for device in domain.devices),
            fillers=_fillers(in_use, domain.pcie_root),
            others=_other_models(domain),
        )

    @property
    def controllers(self) -> tuple[ExpanderBus | RootPort | MemoryPort, ...]:
        return (*self.buses, *self.ports, *self.memory_ports)

    def items(self) -> Items:
        items: Items = []
        for bus in self.buses:
            items.extend(bus.items())
        for port in self.ports:
            items.extend(port.items())
        for memory_port in self.memory_ports:
            items.extend(memory_port.items())
        items.extend((f"{path}/address", str(slot)) for path, slot in self.placements if slot is not None)
        # libvirt's controllers for the gaps in the indices, named by index as PciDomain names an unaliased one.
        items.extend((f"devices/controller[{index}]/model", model) for index, model in self.fillers)
        return items

    def unowned_items(self) -> Items:
        """Every movable device's address, by the paths of ``items``: the other side of a device's move; and
        every other PCI controller's model by index: the other side of a filler."""
        items: Items = [(f"{path}/address", str(slot)) for path, slot in self.addresses if slot is not None]
        items.extend((f"devices/controller[{index}]/model", model) for index, model in self.others)
        return items

    def apply(self, root: etree._Element) -> None:
        """Make ``root``'s owned controllers and moved devices' addresses equal to this model, in place.

        A device put back gets the address it had before the collection moved it, or none (libvirt places
        it again) when it had none.  The addresses from before are kept in ``<metadata>`` while moved.
        """
        devices = root.find("devices")
        if devices is None:
            if not self.controllers:
                _store_originals(root, self.originals)
                return
            raise SpecError("the guest has no <devices>: no PCI device to place near a cell")
        controllers = _controllers_of(root)
        # In index order, as libvirt writes controllers: each expander bus before its root ports.
        ordered = sorted(self.controllers, key=lambda item: item.index)
        wanted: dict[str, ExpanderBus | RootPort | MemoryPort] = {item.alias: item for item in ordered}
        present: dict[str, tuple[Controller, etree._Element]] = {}
        for controller, element in controllers:
            if controller.owned:
                if controller.alias in wanted and controller.alias not in present:
                    present[controller.alias or ""] = (controller, element)
                else:
                    remove_child(element)
        anchor = None
        for controller, element in controllers:
            if not controller.owned:
                anchor = element
        for alias, item in wanted.items():
            found = present.get(alias)
            if found is not None and item.reads_as(found[0]):
                anchor = found[1]
                continue  # libvirt's own additions (<model name>, its address, chassis) stay
            new = parse_markup(item.markup())
            if found is not None:
                replace_child(found[1], new)
            else:
                position = len(devices) if anchor is None else devices.index(anchor) + 1
                insert_at(devices, position, new)
            anchor = new
        placed = dict(self.placements)
        kept = {item.index for item in wanted.values()}
        owned_indices = {controller.index for controller, _element in controllers if controller.owned}
        movable = [(device.path, device.address, element) for device, element in _devices_of(root)]
        for element in devices.iterfind("memory"):
            cell = _virtio_mem_cell(element)
            if cell is not None:
                path = _memory_path(cell)
                movable.append((path, Slot.of(element.find("address"), f"{path} <address>"), element))
        for path, address, element in movable:
            old = element.find("address")
            if path in placed:
                slot = placed[path]
                if slot is None:
                    if old is not None:
                        remove_child(old)
                    continue
                if address == slot and (old is None or old.get("multifunction") == slot.multifunction):
                    continue
                new = parse_markup(slot.markup())
                if old is not None:
                    replace_child(old, new)
                else:
                    insert_at(element, len(element), new)
            elif old is not None and address is not None and address.bus in owned_indices and address.bus not in kept:
                remove_child(old)
        _store_originals(root, self.originals)


def _placed_cells(
    layout: Layout, domain: PciDomain, host_nodes: Mapping[PciAddress, int | None]
) -> tuple[list[tuple[PciDevice, int]], list[str]]:
    """Each device to move with its cell, in document order, and warnings for passthrough devices left alone."""
    spec = layout.spec
    overrides = parse_device_cells(spec.device_cells or "")
    cells = len(layout.cells)
    chosen: dict[str, int] = {}
    for override in overrides:
        named = [device for device in domain.devices if device.named(override)]
        if not named:
            known = ", ".join(device.target or device.mac or device.alias or device.path for device in domain.devices)
            raise SpecError(
                f"device_cells names {override.key} {override.value}, but the guest has no PCI device of that "
                f"{override.key} (its movable PCI devices: {known or 'none'})"
            )
        if override.cell >= cells:
            raise SpecError(
                f"device_cells puts device {override.value} near cell {override.cell}, but the guest has "
                f"{cells} cells (0-{cells - 1})"
            )
        for device in named:
            chosen[device.path] = override.cell
    placed: list[tuple[PciDevice, int]] = []
    warnings: list[str] = []
    for device in domain.devices:
        cell = chosen.get(device.path)
        if cell is None and device.source is not None:
            node = host_nodes.get(device.source)
            cell = cell_for_host_node(layout, node)
            if cell is None:
                where = "reports no host node" if node is None else f"is on host node {node}, which no guest cell uses"
                warnings.append(f"PCI device {device.source} ({device.path}) {where}: it stays where it is")
        elif cell is None and spec.device_locality == "all":
            cell = 0
        if cell is not None:
            placed.append((device, cell))
    return placed, warnings


def pci_locality_for(
    layout: Layout, domain: PciDomain, host_nodes: Mapping[PciAddress, int | None] | None = None
) -> PciLocality:
    """What the collection's expander buses and the moved devices' addresses become under ``layout``.

    ``host_nodes`` gives the host node of each passthrough device by host address (``_xml/nodedev.py``);
    a device missing from it has no known node.  Indices of the collection's controllers are kept from
    ``domain`` where they still fit, so that a rerun writes nothing; new ones take the lowest indices free,
    those the collection's controllers that go leave included, so that no index is left unused below one in
    use (libvirt would fill it with a controller of its own).  A device moved before and not now goes back to
    the address it had before its first move.  On a PCIe root bus each of the collection's virtio-mem devices
    (one per cell, ``_core/hotplug.py:plan_virtio_mem``) sits in a root port of the collection's.
    """
    _check_user_expanders(layout, domain)
    memory_cells = tuple(cell.id for cell in layout.cells) if layout.spec.memory_device == "virtio-mem" else ()
    if layout.spec.device_locality == "none":
        result = restored_locality(domain, memory_cells)
    else:
        placed, warnings = _placed_cells(layout, domain, host_nodes or {})
        result = _locality(domain, placed, warnings, memory_cells)
    _check_staying_buses(layout, result)
    return result


def _cells_text(count: int) -> str:
    return f"{count} cells (0-{count - 1})" if count > 1 else f"{count} cell (0)"


def _check_user_expanders(layout: Layout, domain: PciDomain) -> None:
    """Refuse a user's expander bus whose ``<target><node>`` is a guest cell ``layout`` does not have.

    libvirt refuses to define such a bus ("configured for a NUMA node ... not present in the domain's
    <cpu><numa> array"), whatever ``device_locality`` says: the bus is the user's, so it is named, not
    moved, as ``Numa.validate`` names a hand-written HMAT figure of a cell that is gone.
    """
    count = len(layout.cells)
    for controller in domain.controllers:
        if controller.owned or controller.model not in _EXPANDERS or controller.node is None:
            continue
        if not 0 <= controller.node < count:
            raise SpecError(
                f"<controller type='pci' index='{controller.index}' model='{controller.model}'> has "
                f"<target><node>{controller.node}</node>, a guest cell the new layout does not have: it has "
                f"{_cells_text(count)}; move the expander bus to one of them, remove its <node>, "
                f"or choose at least {controller.node + 1} cells"
            )


def _check_staying_buses(layout: Layout, locality: PciLocality) -> None:
    """Refuse one of the collection's expander buses that stays (a device it does not move sits behind it)
    on a guest cell ``layout`` does not have: libvirt would refuse it as it refuses a user's."""
    count = len(layout.cells)
    for bus in locality.buses:
        if not 0 <= bus.cell < count:
            raise SpecError(
                f"the expander bus {bus.alias} (controller index {bus.index}, <target><node>{bus.cell}</node>) "
                f"stays, as a device the collection does not move sits behind it, but the new layout has "
                f"{_cells_text(count)}; move that device off the bus, or choose at least {bus.cell + 1} cells"
            )


def restored_locality(domain: PciDomain, memory_cells: Iterable[int] = ()) -> PciLocality:
    """No device near a cell (``device_locality: none``, ``state: absent``): each moved device goes back to
    its address from before the move, and the collection's controllers go unless something else uses them.

    ``memory_cells`` are the cells whose virtio-mem device the collection keeps (none for absent): their
    root ports stay."""
    return _locality(domain, [], [], memory_cells)


def _put_back(
    domain: PciDomain, current: PciLocality, leaving: set[str], kept: set[int]
) -> tuple[dict[str, Slot | None], list[str]]:
    """Where each device behind the collection's controllers that moves no more goes: its address from before,
    or none (libvirt places it) when it had none, when its bus is gone, or when another device took it."""
    recorded = dict(domain.originals)
    owned = {item.index for item in current.controllers}
    buses = {controller.index for controller in domain.controllers if not controller.owned} | kept | {0}
    taken = {
        (slot.bus, slot.slot, slot.function): owner
        for owner, slot in domain.addresses
        if owner not in leaving and (slot.bus not in owned or slot.bus in kept)
    }
    result: dict[str, Slot | None] = {}
    warnings: list[str] = []
    for path, _slot in current.placements:
        if path in leaving and path not in result:
            original = recorded.get(path)
            if original is not None:
                other = taken.get((original.bus, original.slot, original.function))
                if other is not None or original.bus not in buses:
                    why = f"{other} has it now" if other is not None else f"its bus {original.bus} is gone"
                    warnings.append(
                        f"{path} cannot go back to its address from before the move, {original} ({why}): "
                        "libvirt places it"
                    )
                    original = None
                else:
                    taken[(original.bus, original.slot, original.function)] = path
            result[path] = original
    return result, warnings


def _still_used(domain: PciDomain, current: PciLocality, leaving: set[str]) -> set[int]:
    """Indices of the collection's controllers that something it does not move sits on (a device the user
    placed there, or one libvirt put on a free root port): they stay, with the expander bus behind them."""
    owned = {item.index for item in current.controllers}
    own_paths = {f"devices/controller[{item.alias}]" for item in current.controllers}
    used = {
        slot.bus
        for owner, slot in domain.addresses
        if slot.bus in owned and owner not in leaving and owner not in own_paths
    }
    used.update(port.address.bus for port in current.ports if port.index in used)
    return used


def _root_port_slots(
    domain: PciDomain, placements: Mapping[str, Slot | None], kept: set[str], new_ports: int, pcie: bool
) -> tuple[set[int], int]:
    """The root bus slots held once the moves are made, and how many more the root ports (q35) or PCI bridges
    (i440fx) libvirt places itself need: ``new_ports`` of them (the collection's virtio-mem root ports without
    an address, and the controllers libvirt adds in unused indices).

    The slots held are those the definition's addresses give on bus 0, the collection's controllers left out
    unless they are written as they read (``kept``, their owner paths), and the devices that move left out.
    libvirt puts a root port in a free function of a slot that holds root ports, else in function 0 of a free
    slot, up to eight to a slot; a PCI bridge takes a slot of its own.
    """
    owned = {f"devices/controller[{controller.alias}]" for controller in domain.controllers if controller.owned}
    functions: dict[int, set[int]] = {}
    for owner, slot in domain.addresses:
        if slot.bus == 0 and owner not in placements and (owner not in owned or owner in kept):
            functions.setdefault(slot.slot, set()).add(slot.function)
    taken = set(functions)
    taken.update(slot.slot for slot in placements.values() if slot is not None and slot.bus == 0)
    if domain.unaddressed_video:
        taken.add(VIDEO_SLOT[pcie])
    if not pcie:
        return taken, new_ports
    with_ports = {
        controller.address.slot
        for controller in domain.controllers
        if controller.model == _ROOT_PORT
        and controller.address is not None
        and controller.address.bus == 0
        and (not controller.owned or f"devices/controller[{controller.alias}]" in kept)
    }
    free = sum(_FUNCTIONS - len(functions.get(slot, ())) for slot in with_ports)
    return taken, -(-max(new_ports - free, 0) // _FUNCTIONS)


def _check_root_slots(
    domain: PciDomain,
    buses: list[ExpanderBus],
    placements: Mapping[str, Slot | None],
    pcie: bool,
    memory_ports: list[MemoryPort],
    fillers: int,
) -> None:
    """Refuse expander buses the root bus has no free slot for, as libvirt would on define.

    Every expander bus takes a slot of its own on the root bus (``_root_port_slots`` counts the rest).  One of
    the collection's buses and root ports keeps its address only when it is written as it reads.
    """
    owned = {
        f"devices/controller[{controller.alias}]": controller for controller in domain.controllers if controller.owned
    }
    kept = {
        path
        for path, controller in owned.items()
        for port in memory_ports
        if path == f"devices/controller[{port.alias}]" and port.reads_as(controller)
    }
    new_ports = len(memory_ports) - len(kept) + fillers
    taken, port_slots = _root_port_slots(domain, placements, kept, new_ports, pcie)
    unaddressed = False
    for bus in buses:
        controller = owned.get(f"devices/controller[{bus.alias}]")
        if controller is None or controller.address is None or not bus.reads_as(controller):
            unaddressed = True
    check_root_slots(len(buses), taken, pcie, unaddressed, port_slots)


def _other_models(domain: PciDomain) -> tuple[tuple[int, str], ...]:
    return tuple(
        sorted((controller.index, controller.model) for controller in domain.controllers if not controller.owned)
    )


def _fillers(in_use: Iterable[int], pcie: bool) -> tuple[tuple[int, str], ...]:
    """The controllers libvirt adds for the indices below the highest in use that nothing uses (qemuDomain-
    PCIAddressSetCreate gives every bus up to the highest a controller): root ports on q35, PCI bridges else."""
    used = set(in_use)
    model = _ROOT_PORT if pcie else _PCI_BRIDGE
    return tuple((index, model) for index in range(1, max(used, default=0)) if index not in used)


def _numbered(
    wanted: list[tuple[str, str | None]], had: Mapping[str, int], fixed: set[int], pinned: Mapping[str, int]
) -> dict[str, int]:
    """The index of each of the collection's controllers ``wanted`` (alias, the alias of the expander bus it
    plugs into), in order, each expander bus before its root ports.

    ``pinned`` keep theirs (something else sits on them).  The others take the lowest indices not in ``fixed``
    (the indices that stay in use), as many as they are, so that no index is left unused below them; one that
    already has one of those keeps it (a rerun writes nothing).  A root port's index must be above its expander
    bus's (libvirt: "index must be larger than bus"); when keeping breaks that, they are numbered in order.
    """
    taken = set(fixed) | set(pinned.values())
    rest = [(alias, parent) for alias, parent in wanted if alias not in pinned]
    free = list(islice((index for index in count(1) if index not in taken), len(rest)))
    result = dict(pinned)
    for alias, _parent in rest:
        index = had.get(alias)
        if index in free and index not in result.values():
            result[alias] = index
    left = iter(sorted(set(free) - set(result.values())))
    for alias, _parent in rest:
        if alias not in result:
            result[alias] = next(left)
    if any(parent is not None and result[alias] <= result[parent] for alias, parent in wanted):
        result = dict(pinned)
        used = set(taken)
        for alias, parent in rest:
            floor = 0 if parent is None else result[parent]
            index = next(index for index in count(floor + 1) if index not in used)
            used.add(index)
            result[alias] = index
    return result


def _memory_ports(domain: PciDomain, current: PciLocality, memory_cells: Iterable[int]) -> list[int]:
    """The cells whose virtio-mem device sits in a root port of the collection's: on a PCIe root bus, a new
    device (or one without an address yet), and one already in such a port.  A device libvirt placed before
    the collection gave it a port (an earlier version) stays where it is."""
    if not domain.pcie_root:
        return []
    owned = {item.index for item in current.controllers}
    present = dict(domain.memory)
    return [cell for cell in sorted(set(memory_cells)) if (slot := present.get(cell)) is None or slot.bus in owned]


def _filler_warning(fillers: tuple[tuple[int, str], ...], freed: set[int], top: int) -> list[str]:
    """A warning for the unused indices the collection's controllers leave: libvirt's controllers there stay."""
    left = sorted(index for index, _model in fillers if index in freed)
    if not left:
        return []
    model = fillers[0][1]
    several = len(left) > 1
    return [
        f"PCI controller {'indices' if several else 'index'} {format_cpuset(left)} of the collection's controllers "
        f"{'are' if several else 'is'} left unused below index {top}, which stays in use: libvirt adds a {model} "
        f"at {'each' if several else 'it'}, which is not the collection's and stays when its controllers go"
    ]


def _locality(
    domain: PciDomain, placed: list[tuple[PciDevice, int]], warnings: list[str], memory_cells: Iterable[int] = ()
) -> PciLocality:
    current = PciLocality.of(domain)
    keeps = {_memory_path(cell) for cell in memory_cells}
    own_memory = {_memory_path(cell) for cell, _slot in domain.memory}
    moving = {device.path for device, _cell in placed}
    moved_before = {path for path, _slot in current.placements if path not in own_memory}
    still_used = _still_used(domain, current, moved_before | moving | own_memory)
    back, back_warnings = _put_back(domain, current, moved_before - moving, still_used)
    warnings = [*warnings, *back_warnings]
    addresses = dict(current.addresses)
    addresses.update(back)
    pcie = domain.pcie if placed else domain.pcie_root
    by_cell: dict[int, list[PciDevice]] = {}
    for device, cell in sorted(placed, key=lambda pair: pair[1]):
        by_cell.setdefault(cell, []).append(device)
    for cell, members in by_cell.items():
        if len(members) > _SLOTS:
            raise SpecError(
                f"{len(members)} PCI devices near cell {cell}, but an expander bus has {_SLOTS} slots; "
                "spread them over more cells with device_cells"
            )
    # The collection's controllers this plan wants, each expander bus before its root ports, then the
    # virtio-mem devices' root ports.
    wanted: list[tuple[str, str | None]] = []
    for cell, members in by_cell.items():
        wanted.append((f"{PXB_ALIAS}{cell}", None))
        if pcie:
            wanted.extend((f"{PORT_ALIAS}{cell}-{number}", f"{PXB_ALIAS}{cell}") for number in range(len(members)))
    memory = _memory_ports(domain, current, memory_cells)
    wanted.extend((f"{MEMORY_PORT_ALIAS}{cell}", None) for cell in memory)
    # The virtio-mem devices that go or get a port of the collection's: their addresses now do not stay.
    memory_moving = (own_memory - keeps) | {_memory_path(cell) for cell in memory}
    aliases = {alias for alias, _parent in wanted}
    owned = current.controllers
    # The collection's controllers something else still uses and this plan does not want: they stay as they are.
    staying = [item for item in owned if item.index in still_used and item.alias not in aliases]
    others = [controller for controller in domain.controllers if not controller.owned]
    owned_indices = {item.index for item in owned}
    owned_paths = {f"devices/controller[{item.alias}]" for item in owned}
    # Indices that stay in use: the other controllers', and the buses the addresses that stay name.
    named = {
        slot.bus
        for owner, slot in domain.addresses
        if owner not in moving
        and owner not in back
        and owner not in memory_moving
        and owner not in owned_paths
        and slot.bus not in owned_indices
    }
    fixed = {0, *(controller.index for controller in others), *(item.index for item in staying), *named}
    had = {item.alias: item.index for item in owned if item.alias in aliases}
    pinned = {item.alias: item.index for item in owned if item.alias in aliases and item.index in still_used}
    indices = _numbered(wanted, had, fixed, pinned)
    fillers = _fillers({*fixed, *indices.values()}, pcie)
    top = max({*fixed, *indices.values()})
    warnings.extend(_filler_warning(fillers, owned_indices - set(indices.values()), top))
    memory_ports = [MemoryPort(cell, indices[f"{MEMORY_PORT_ALIAS}{cell}"]) for cell in memory]
    memory_placements = tuple((_memory_path(port.cell), Slot(port.index, 0)) for port in memory_ports)
    if not placed:
        return PciLocality(
            buses=tuple(item for item in current.buses if item in staying),
            ports=tuple(item for item in current.ports if item in staying),
            placements=tuple((path, back[path]) for path in addresses if path in back) + memory_placements,
            memory_ports=tuple(memory_ports),
            addresses=tuple(addresses.items()),
            warnings=tuple(warnings),
            fillers=fillers,
            others=_other_models(domain),
        )
    lowest = min(
        [controller.bus_nr for controller in others if controller.bus_nr is not None]
        + [item.bus_nr for item in staying if isinstance(item, ExpanderBus) and item.bus_nr >= 0]
        + [256]
    )
    # The root bus's bridges take a bus number each: the other controllers', and the root ports and
    # bridges of the collection's virtio-mem devices and in the unused indices.
    behind_root = (
        sum(1 for controller in others if controller.model not in (*_ROOTS, *_EXPANDERS))
        + len(memory_ports)
        + len(fillers)
    )
    sizes = [(cell, _PCIE_SPAN + len(members) if pcie else _PCI_SPAN) for cell, members in by_cell.items()]
    numbers = bus_numbers(sizes, lowest, behind_root)
    buses: list[ExpanderBus] = [item for item in staying if isinstance(item, ExpanderBus)]
    ports: list[RootPort] = [item for item in staying if isinstance(item, RootPort)]
    placements: dict[str, Slot | None] = dict(back)
    recorded = dict(domain.originals)
    originals: dict[str, Slot] = {}
    for cell, members in by_cell.items():
        bus = ExpanderBus(cell, indices[f"{PXB_ALIAS}{cell}"], pcie, numbers[cell])
        buses.append(bus)
        for number, device in enumerate(members):
            if pcie:
                port = RootPort(cell, number, indices[f"{PORT_ALIAS}{cell}-{number}"], Slot(bus.index, number))
                ports.append(port)
                placements[device.path] = Slot(port.index, 0)
            else:
                placements[device.path] = Slot(bus.index, number)
            # The address from before the first move; one moved by a version that kept none has none.
            original = recorded.get(device.path)
            if original is None and device.address is not None and device.address.bus not in owned_indices:
                original = device.address
            if original is not None:
                originals[device.path] = original
    _check_root_slots(domain, buses, {**placements, **dict(memory_placements)}, pcie, memory_ports, len(fillers))
    addresses.update(placements)
    order = [path for path in addresses if path in placements]
    return PciLocality(
        buses=tuple(sorted(buses, key=lambda bus: bus.cell)),
        ports=tuple(sorted(ports, key=lambda port: (port.cell, port.port))),
        placements=tuple((path, placements[path]) for path in order) + memory_placements,
        memory_ports=tuple(memory_ports),
        originals=tuple((path, originals[path]) for path in order if path in originals),
        addresses=tuple(addresses.items()),
        warnings=tuple(warnings),
        fillers=fillers,
        others=_other_models(domain),
    )
