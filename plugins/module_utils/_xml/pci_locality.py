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
(``pci_addresses.py``) and put back when the device is no longer moved (``device_locality: none``, an
override removed, ``state: absent``); a controller of the collection's that something else still uses
stays.  On a PCIe root bus the collection's virtio-mem devices sit in root ports of its own too
(``ua-vnuma-memportC``), which go with them: libvirt's own would outlive them.  libvirt gives every index
below the highest in use a controller, so the collection's take the lowest indices nothing else uses
(``pci_indices.py:numbered``), and the ones libvirt still fills are listed (``PciLocality.fillers``).

This file works out what the collection's controllers and addresses become; the domain it reads is
``pci_domain.py``, the controllers and their writing ``pci_controllers.py``.  The rules without XML
(overrides, bus numbers, root bus slots) are ``_core/pci_locality.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import PciAddress, cell_for_host_node
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.pci_locality import (
    VIDEO_SLOT,
    bus_numbers,
    check_root_slots,
    parse_device_cells,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.wording import plural
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_addresses import Slot
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_controllers import (
    ExpanderBus,
    MemoryPort,
    PciLocality,
    RootPort,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_domain import (
    EXPANDERS,
    MEMORY_PORT_ALIAS,
    PORT_ALIAS,
    PXB_ALIAS,
    ROOT_PORT,
    ROOTS,
    PciDevice,
    PciDomain,
    memory_path,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_indices import (
    filler_warning,
    fillers,
    numbered,
    other_models,
)

__all__ = ["pci_locality_for", "restored_locality"]

# Functions of one slot: libvirt puts up to eight root ports in one root bus slot (multifunction).
_FUNCTIONS = 8
# Slots of one bus (PCI's 5-bit slot number); an expander bus takes devices (or root ports) in all 32.
_SLOTS = 32
# Bus numbers an expander bus spans besides those of its root ports: its own bus, and on i440fx the
# bridge inside QEMU's pxb (libvirt's qemuDomainAddressFindNewBusNr counts 2 for each pxb).
_PCIE_SPAN = 1
_PCI_SPAN = 2


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


def _all_cells(count: int) -> str:
    """The guest's cells as messages name them, with their ids: "3 cells (0-2)"."""
    return f"{plural(count, 'cell')} ({format_cpuset(range(count))})"


def _check_user_expanders(layout: Layout, domain: PciDomain) -> None:
    """Refuse a user's expander bus whose ``<target><node>`` is a guest cell ``layout`` does not have.

    libvirt refuses to define such a bus ("configured for a NUMA node ... not present in the domain's
    <cpu><numa> array"), whatever ``device_locality`` says: the bus is the user's, so it is named, not
    moved, as ``Numa.validate`` names a hand-written HMAT figure of a cell that is gone.
    """
    count = len(layout.cells)
    for controller in domain.controllers:
        if controller.owned or controller.model not in EXPANDERS or controller.node is None:
            continue
        if not 0 <= controller.node < count:
            raise SpecError(
                f"<controller type='pci' index='{controller.index}' model='{controller.model}'> has "
                f"<target><node>{controller.node}</node>, a guest cell the new layout does not have: it has "
                f"{_all_cells(count)}; move the expander bus to one of them, remove its <node>, "
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
                f"{_all_cells(count)}; move that device off the bus, or choose at least {bus.cell + 1} cells"
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
        if controller.model == ROOT_PORT
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


def _memory_ports(domain: PciDomain, current: PciLocality, memory_cells: Iterable[int]) -> list[int]:
    """The cells whose virtio-mem device sits in a root port of the collection's: on a PCIe root bus, a new
    device (or one without an address yet), and one already in such a port.  A device libvirt placed before
    the collection gave it a port (an earlier version) stays where it is."""
    if not domain.pcie_root:
        return []
    owned = {item.index for item in current.controllers}
    present = dict(domain.memory)
    return [cell for cell in sorted(set(memory_cells)) if (slot := present.get(cell)) is None or slot.bus in owned]


def _by_cell(placed: list[tuple[PciDevice, int]]) -> dict[int, list[PciDevice]]:
    """The devices to move behind each cell's expander bus, by cell, each cell's in document order."""
    by_cell: dict[int, list[PciDevice]] = {}
    for device, cell in sorted(placed, key=lambda pair: pair[1]):
        by_cell.setdefault(cell, []).append(device)
    for cell, members in by_cell.items():
        if len(members) > _SLOTS:
            raise SpecError(
                f"{len(members)} PCI devices near cell {cell}, but an expander bus has {_SLOTS} slots; "
                "spread them over more cells with device_cells"
            )
    return by_cell


def _wanted(by_cell: Mapping[int, list[PciDevice]], pcie: bool, memory: list[int]) -> list[tuple[str, str | None]]:
    """The collection's controllers this plan wants, as ``numbered`` takes them (alias, its expander bus's
    alias): each expander bus before its root ports, then the virtio-mem devices' root ports."""
    wanted: list[tuple[str, str | None]] = []
    for cell, members in by_cell.items():
        wanted.append((f"{PXB_ALIAS}{cell}", None))
        if pcie:
            wanted.extend((f"{PORT_ALIAS}{cell}-{number}", f"{PXB_ALIAS}{cell}") for number in range(len(members)))
    wanted.extend((f"{MEMORY_PORT_ALIAS}{cell}", None) for cell in memory)
    return wanted


def _indices(
    domain: PciDomain,
    current: PciLocality,
    wanted: list[tuple[str, str | None]],
    still_used: set[int],
    leaving: set[str],
) -> tuple[dict[str, int], set[int], list[ExpanderBus | RootPort | MemoryPort]]:
    """The index of each controller ``wanted``, the indices that stay in use, and the collection's controllers
    that stay as they are (something else still uses them and this plan does not want them).

    ``leaving`` are the owners of the addresses that do not stay (devices moved or put back, virtio-mem devices
    that go or get a port of the collection's).
    """
    aliases = {alias for alias, _parent in wanted}
    owned = current.controllers
    staying = [item for item in owned if item.index in still_used and item.alias not in aliases]
    owned_indices = {item.index for item in owned}
    owned_paths = {f"devices/controller[{item.alias}]" for item in owned}
    # Indices that stay in use: the other controllers', and the buses the addresses that stay name.
    named = {
        slot.bus
        for owner, slot in domain.addresses
        if owner not in leaving and owner not in owned_paths and slot.bus not in owned_indices
    }
    others = (controller.index for controller in domain.controllers if not controller.owned)
    fixed = {0, *others, *(item.index for item in staying), *named}
    had = {item.alias: item.index for item in owned if item.alias in aliases}
    pinned = {item.alias: item.index for item in owned if item.alias in aliases and item.index in still_used}
    return numbered(wanted, had, fixed, pinned), fixed, staying


def _expander_bus_numbers(
    domain: PciDomain,
    staying: list[ExpanderBus | RootPort | MemoryPort],
    by_cell: Mapping[int, list[PciDevice]],
    pcie: bool,
    bridges: int,
) -> dict[int, int]:
    """The bus number (``busNr``) of each cell's expander bus, by cell, below the lowest one in use.

    ``bridges`` are the root bus's bridges of the collection's (the virtio-mem devices' root ports) and
    libvirt's in the unused indices: they take a bus number each, as the other controllers' do.
    """
    others = [controller for controller in domain.controllers if not controller.owned]
    lowest = min(
        [controller.bus_nr for controller in others if controller.bus_nr is not None]
        + [item.bus_nr for item in staying if isinstance(item, ExpanderBus) and item.bus_nr >= 0]
        + [256]
    )
    behind_root = sum(1 for controller in others if controller.model not in (*ROOTS, *EXPANDERS)) + bridges
    sizes = [(cell, _PCIE_SPAN + len(members) if pcie else _PCI_SPAN) for cell, members in by_cell.items()]
    return bus_numbers(sizes, lowest, behind_root)


def _locality(
    domain: PciDomain, placed: list[tuple[PciDevice, int]], warnings: list[str], memory_cells: Iterable[int] = ()
) -> PciLocality:
    current = PciLocality.of(domain)
    keeps = {memory_path(cell) for cell in memory_cells}
    own_memory = {memory_path(cell) for cell, _slot in domain.memory}
    moving = {device.path for device, _cell in placed}
    moved_before = {path for path, _slot in current.placements if path not in own_memory}
    still_used = _still_used(domain, current, moved_before | moving | own_memory)
    back, back_warnings = _put_back(domain, current, moved_before - moving, still_used)
    warnings = [*warnings, *back_warnings]
    addresses = dict(current.addresses)
    addresses.update(back)
    pcie = domain.pcie if placed else domain.pcie_root
    by_cell = _by_cell(placed)
    memory = _memory_ports(domain, current, memory_cells)
    # The virtio-mem devices that go or get a port of the collection's: their addresses now do not stay.
    memory_moving = (own_memory - keeps) | {memory_path(cell) for cell in memory}
    indices, fixed, staying = _indices(
        domain, current, _wanted(by_cell, pcie, memory), still_used, moving | set(back) | memory_moving
    )
    owned_indices = {item.index for item in current.controllers}
    filling = fillers({*fixed, *indices.values()}, pcie)
    top = max({*fixed, *indices.values()})
    warnings.extend(filler_warning(filling, owned_indices - set(indices.values()), top))
    memory_ports = [MemoryPort(cell, indices[f"{MEMORY_PORT_ALIAS}{cell}"]) for cell in memory]
    memory_placements = tuple((memory_path(port.cell), Slot(port.index, 0)) for port in memory_ports)
    if not placed:
        return PciLocality(
            buses=tuple(item for item in current.buses if item in staying),
            ports=tuple(item for item in current.ports if item in staying),
            placements=tuple((path, back[path]) for path in addresses if path in back) + memory_placements,
            memory_ports=tuple(memory_ports),
            addresses=tuple(addresses.items()),
            warnings=tuple(warnings),
            fillers=filling,
            others=other_models(domain),
        )
    numbers = _expander_bus_numbers(domain, staying, by_cell, pcie, len(memory_ports) + len(filling))
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
    _check_root_slots(domain, buses, {**placements, **dict(memory_placements)}, pcie, memory_ports, len(filling))
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
        fillers=filling,
        others=other_models(domain),
    )
