# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The collection's PCI controllers (expander buses, their root ports, the virtio-mem devices' root ports) and
the guest address of each device it moves (``PciLocality``): read from a domain, listed as changes, written.

What they become under a layout is ``pci_locality.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import read_digits
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import make_markup, parse_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_addresses import Slot, store_originals
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_domain import (
    MEMORY_PORT_ALIAS,
    PCI_EXPANDER,
    PCIE_EXPANDER,
    PORT_ALIAS,
    PXB_ALIAS,
    ROOT_PORT,
    Controller,
    PciDomain,
    controllers_of,
    devices_of,
    memory_device_cell,
    memory_path,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_indices import fillers, other_models
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import (
    insert_at,
    remove_child,
    replace_child,
)

__all__ = ["ExpanderBus", "MemoryPort", "PciLocality", "RootPort"]


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
        return PCIE_EXPANDER if self.pcie else PCI_EXPANDER

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
            (("type", "pci"), ("index", self.index), ("model", ROOT_PORT)),
            make_markup("alias", (("name", self.alias),)) + self.address.markup(),
        )

    def reads_as(self, controller: Controller) -> bool:
        return (controller.index, controller.model, controller.address) == (self.index, ROOT_PORT, self.address)

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
            (("type", "pci"), ("index", self.index), ("model", ROOT_PORT)),
            make_markup("alias", (("name", self.alias),)),
        )

    def reads_as(self, controller: Controller) -> bool:
        return (controller.index, controller.model) == (self.index, ROOT_PORT)

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
                            pcie=controller.model == PCIE_EXPANDER,
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
        ) + tuple((memory_path(cell), slot) for cell, slot in domain.memory if slot is not None and slot.bus in indices)
        in_use = {0, *(controller.index for controller in domain.controllers), *domain.buses_named}
        return cls(
            tuple(sorted(buses, key=lambda bus: bus.cell)),
            tuple(sorted(ports, key=lambda port: (port.cell, port.port))),
            placements,
            tuple(sorted(memory_ports, key=lambda port: port.cell)),
            domain.originals,
            tuple((device.path, device.address) for device in domain.devices),
            fillers=fillers(in_use, domain.pcie_root),
            others=other_models(domain),
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
                store_originals(root, self.originals)
                return
            raise SpecError("the guest has no <devices>: no PCI device to place near a cell")
        controllers = controllers_of(root)
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
        movable = [(device.path, device.address, element) for device, element in devices_of(root)]
        for element in devices.iterfind("memory"):
            cell = memory_device_cell(element)
            if cell is not None:
                path = memory_path(cell)
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
        store_originals(root, self.originals)
