# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""I/O threads: ``<iothreads>`` (or ``<iothreadids>``), ``<cputune><iothreadpin>``, each virtio disk's
``<driver iothread>``.

Under ``iothreads: per_cell`` or ``per_disk`` the collection owns all three; under ``none`` it reads them
and leaves them as they are.  The rules (how many, pinned where, which disk on which) are
``_core/iothreads.py:plan_iothreads``.  https://libvirt.org/formatdomain.html#iothreads-allocation
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.iothreads import plan_iothreads
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel, make_markup, parse_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_locality import PciDomain, PciLocality
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import (
    CPUTUNE_ORDER,
    DOMAIN_ORDER,
    insert_at,
    insert_ordered,
    insert_run,
    remove_child,
    remove_children,
    remove_if_empty,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_cpuset,
    require_tag,
    required_int,
    text_int,
)

__all__ = ["IoThreads", "Iothreadpin", "IothreadPins", "device_cells", "iothreads_for"]


@dataclass(frozen=True)
class Iothreadpin(ElementModel):
    """``<cputune><iothreadpin iothread cpuset/>``."""

    TAG: ClassVar[str] = "iothreadpin"
    # virDomainPinIOThread changes a running guest's pin (_run/live.py).
    KIND: ClassVar[ChangeKind] = ChangeKind.LIVE

    iothread: int
    cpuset: tuple[int, ...]

    @classmethod
    def from_element(cls, element: etree._Element) -> Iothreadpin:
        require_tag(element, cls.TAG)
        iothread = required_int(element, "iothread", "<cputune><iothreadpin>")
        cpuset = attr_cpuset(element, "cpuset", f"<cputune><iothreadpin iothread='{iothread}'>")
        if cpuset is None:
            raise XmlError(f"<cputune><iothreadpin iothread='{iothread}'>: attribute cpuset is missing")
        return cls(iothread, cpuset)

    def markup(self) -> str:
        return make_markup(self.TAG, (("iothread", self.iothread), ("cpuset", format_cpuset(self.cpuset))))

    def items(self) -> Items:
        return [(f"cputune/iothreadpin[{self.iothread}]", format_cpuset(self.cpuset))]


@dataclass(frozen=True)
class IothreadPins:
    """Every ``<iothreadpin>`` of the domain, by I/O thread id."""

    KIND: ClassVar[ChangeKind] = ChangeKind.LIVE

    pins: tuple[Iothreadpin, ...] = ()

    @classmethod
    def of(cls, root: etree._Element) -> IothreadPins:
        pins = [Iothreadpin.from_element(element) for element in root.iterfind("cputune/iothreadpin")]
        return cls(tuple(sorted(pins, key=lambda pin: pin.iothread)))

    def items(self) -> Items:
        return [item for pin in self.pins for item in pin.items()]

    def apply(self, root: etree._Element) -> None:
        """Make ``root``'s ``<iothreadpin>``s these, in place (nothing is touched when they read the same)."""
        if IothreadPins.of(root) == self:
            return
        cputune = root.find("cputune")
        if cputune is None:
            if not self.pins:
                return
            cputune = etree.Element("cputune")
            insert_ordered(root, cputune, DOMAIN_ORDER)
        old = list(cputune.iterchildren(Iothreadpin.TAG))
        anchor = cputune.index(old[0]) if old else None
        for element in old:
            remove_child(element)
        new = [parse_markup(pin.markup()) for pin in self.pins]
        if new:
            if anchor is None:
                first = new.pop(0)
                insert_ordered(cputune, first, CPUTUNE_ORDER)
                anchor = cputune.index(first) + 1
            insert_run(cputune, anchor, new)
        remove_if_empty(cputune)


def _virtio_disks(root: etree._Element) -> list[tuple[str, etree._Element]]:
    """The virtio disks (virtio-blk, the disks that take an I/O thread) by target, in document order."""
    found = []
    for element in root.iterfind("devices/disk"):
        target = element.find("target")
        dev = None if target is None else target.get("dev")
        if target is not None and target.get("bus") == "virtio" and dev:
            found.append((dev, element))
    return found


@dataclass(frozen=True)
class IoThreads:
    """The domain's I/O thread ids and the I/O thread of each virtio disk (None: the main loop).

    Read from ``<iothreadids>`` when the domain lists ids, else ``<iothreads>`` N gives ids 1..N.
    """

    # A new I/O thread or disk assignment takes effect at the next boot: a disk's iothread cannot
    # change while it is attached (virDomainAddIOThread adds a thread no disk would use).
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    ids: tuple[int, ...] = ()
    disks: tuple[tuple[str, int | None], ...] = ()

    @classmethod
    def of(cls, root: etree._Element) -> IoThreads:
        listed = [
            required_int(element, "id", "<iothreadids><iothread>") for element in root.iterfind("iothreadids/iothread")
        ]
        count_element = root.find("iothreads")
        count = 0 if count_element is None else text_int(count_element, "<iothreads>")
        ids = tuple(sorted(listed)) if listed else tuple(range(1, count + 1))
        disks = []
        for dev, element in _virtio_disks(root):
            driver = element.find("driver")
            raw = None if driver is None else driver.get("iothread")
            try:
                disks.append((dev, None if raw is None else int(raw)))
            except ValueError:
                raise XmlError(f"<disk> {dev}: <driver iothread> {raw!r} is not a number") from None
        return cls(ids, tuple(disks))

    def items(self) -> Items:
        items: Items = [("iothreads", len(self.ids) or None)]
        if self.ids != tuple(range(1, len(self.ids) + 1)):
            items.append(("iothreadids", format_cpuset(self.ids)))
        items.extend((f"devices/disk[{dev}]/driver/iothread", thread) for dev, thread in self.disks)
        return items

    def apply(self, root: etree._Element) -> None:
        """Make ``root``'s I/O threads and its virtio disks' ``iothread`` these, in place.

        Only the disks' ``iothread`` attribute is written; the rest of each ``<driver>`` stays.
        """
        current = IoThreads.of(root)
        if current == self:
            return
        if current.ids != self.ids:
            remove_children(root, "iothreadids")
            remove_children(root, "iothreads")
            if self.ids:
                element = parse_markup(make_markup("iothreads", (), str(len(self.ids))))
                insert_ordered(root, element, DOMAIN_ORDER)
        wanted = dict(self.disks)
        for dev, element in _virtio_disks(root):
            thread = wanted.get(dev)
            driver = element.find("driver")
            if thread is None:
                if driver is not None and "iothread" in driver.attrib:
                    del driver.attrib["iothread"]
                continue
            if driver is None:
                # libvirt writes <driver> first in a <disk>, and fills in its name and type itself.
                driver = parse_markup(make_markup("driver", (("iothread", thread),)))
                insert_at(element, 0, driver)
            else:
                driver.set("iothread", str(thread))


def device_cells(domain: PciDomain, pci: PciLocality) -> dict[str, int]:
    """The guest cell of each of ``domain``'s devices that sits behind an expander bus with a node, by path.

    With ``pci``'s buses and addresses in place of the domain's: up the chain of controllers (a
    root port, then its expander bus) to the first with a ``<target><node>``; the user's own expander
    buses count too.
    """
    parent: dict[int, int] = {}
    node: dict[int, int] = {}
    for controller in domain.controllers:
        if controller.owned:
            continue
        if controller.node is not None:
            node[controller.index] = controller.node
        if controller.address is not None:
            parent[controller.index] = controller.address.bus
    for bus in pci.buses:
        node[bus.index] = bus.cell
    for port in pci.ports:
        parent[port.index] = port.address.bus
    moved = dict(pci.placements)
    cells: dict[str, int] = {}
    for device in domain.devices:
        slot = moved.get(device.path, device.address)
        index = None if slot is None else slot.bus
        seen: set[int] = set()
        while index is not None and index not in node and index not in seen:
            seen.add(index)
            index = parent.get(index)
        if index is not None and index in node:
            cells[device.path] = node[index]
    return cells


def iothreads_for(
    layout: Layout, domain: PciDomain, pci: PciLocality, current: IoThreads, current_pins: IothreadPins
) -> tuple[IoThreads, IothreadPins]:
    """What the I/O threads and their pins become: the layout's plan, or the domain's own under ``none``.

    ``pci`` is the target PCI locality: a disk behind an expander bus goes with that bus's cell.
    """
    if layout.spec.iothreads == "none":
        return current, current_pins
    cells = device_cells(domain, pci)
    disks = [(device.target or "", cells.get(device.path)) for device in domain.devices if device.tag == "disk"]
    plan = plan_iothreads(layout, disks)
    planned = dict(plan.disks)
    return (
        IoThreads(
            tuple(range(1, plan.count + 1)),
            tuple((dev, planned.get(dev)) for dev, _thread in current.disks),
        ),
        IothreadPins(tuple(Iothreadpin(number + 1, cpus) for number, cpus in enumerate(plan.pins) if cpus is not None)),
    )
