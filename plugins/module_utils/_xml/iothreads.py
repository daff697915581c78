# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""I/O threads: ``<iothreads>`` (or ``<iothreadids>``), ``<cputune><iothreadpin>``, each virtio disk's
``<driver iothread>``.

Under ``iothreads: per_cell`` or ``per_disk`` the collection owns all three, but for the threads elements
it does not own use (a virtio-scsi controller's ``<driver iothread>``...: ``_thread_users``), which stay with
their pins while its own threads are numbered around them; under ``none`` it reads them and leaves them as
they are.  The rules (how many, pinned where, which disk on which) are ``_core/iothreads.py:plan_iothreads``.
https://libvirt.org/formatdomain.html#iothreads-allocation
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.iothreads import plan_iothreads
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel, make_markup, parse_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_controllers import PciLocality
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_domain import PciDomain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import (
    CPUTUNE_ORDER,
    DOMAIN_ORDER,
    insert_at,
    insert_children,
    insert_ordered,
    insert_run,
    remove_child,
    remove_children,
    remove_if_empty,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_cpuset,
    attr_int,
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


def _virtio_disks(root: etree._Element, mapped: bool = False) -> list[tuple[str, etree._Element]]:
    """The virtio disks (virtio-blk, the disks that take an I/O thread) by target, in document order.

    Without ``mapped``: those whose ``iothread`` attribute the collection owns.  With it: those that map
    their queues to I/O threads themselves (``<driver><iothreads>``, libvirt 10.0), which libvirt refuses
    to give an ``iothread`` attribute too: the user's, left alone.
    """
    found = []
    for element in root.iterfind("devices/disk"):
        target = element.find("target")
        dev = None if target is None else target.get("dev")
        own_list = element.find("driver/iothreads") is not None
        if target is not None and target.get("bus") == "virtio" and dev and own_list == mapped:
            found.append((dev, element))
    return found


def _driver_threads(element: etree._Element, what: str) -> list[int]:
    """The I/O threads a device's ``<driver>`` names: its ``iothread``, and each ``<iothreads><iothread id>``."""
    driver = element.find("driver")
    if driver is None:
        return []
    found = [] if driver.get("iothread") is None else [required_int(driver, "iothread", f"{what} <driver>")]
    found.extend(
        required_int(thread, "id", f"{what} <driver><iothreads><iothread>")
        for thread in driver.iterfind("iothreads/iothread")
    )
    return found


def _thread_users(root: etree._Element) -> tuple[tuple[int, str], ...]:
    """Each I/O thread an element the collection does not own uses, with that element, in document order.

    libvirt lets a thread be named (https://libvirt.org/formatdomain.html#controllers, #hard-drives-floppy-
    disks-cdroms) by a controller's ``<driver iothread>`` (virtio-scsi) or ``<driver><iothreads>``, and by
    a virtio disk's ``<driver><iothreads>``; it refuses a definition whose thread is not there.
    """
    found: list[tuple[int, str]] = []
    for element in root.iterfind("devices/controller"):
        what = f"<controller type='{element.get('type')}' index='{element.get('index')}'>"
        found.extend((thread, what) for thread in _driver_threads(element, what))
    for dev, element in _virtio_disks(root, mapped=True):
        what = f"<disk> {dev}"
        found.extend((thread, what) for thread in _driver_threads(element, what))
    return tuple(found)


def _scheduled(root: etree._Element) -> tuple[int, ...]:
    """The I/O threads ``<cputune><iothreadsched iothreads>`` names (libvirt refuses one that is not there)."""
    found: set[int] = set()
    for element in root.iterfind("cputune/iothreadsched"):
        found.update(attr_cpuset(element, "iothreads", "<cputune><iothreadsched>") or ())
    return tuple(sorted(found))


def _listed_ids(listed: list[int], count: int) -> tuple[int, ...]:
    """The I/O thread ids libvirt reads: those ``<iothreadids>`` lists, then the lowest free ids up to
    ``<iothreads>`` (virDomainIOThreadIDDefArrayInit), in ascending order."""
    ids = set(listed)
    return tuple(sorted(ids.union(_free_ids(count - len(ids), ids))))


def _has_details(element: etree._Element) -> bool:
    """Whether an ``<iothreadids><iothread>`` says more than its id (``thread_pool_min``, ``<poll>``...)."""
    return len(element.attrib) > 1 or any(isinstance(child.tag, str) for child in element)


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
    # The threads elements the collection does not own use, with each user (``_thread_users``), and the
    # threads ``<iothreadsched>`` names: read for ``iothreads_for``, which keeps them; not compared.
    users: tuple[tuple[int, str], ...] = field(default=(), compare=False)
    scheduled: tuple[int, ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, root: etree._Element) -> IoThreads:
        listed = [
            required_int(element, "id", "<iothreadids><iothread>") for element in root.iterfind("iothreadids/iothread")
        ]
        count_element = root.find("iothreads")
        count = 0 if count_element is None else text_int(count_element, "<iothreads>")
        ids = _listed_ids(listed, count)
        disks = []
        for dev, element in _virtio_disks(root):
            driver = element.find("driver")
            # Decimal, as libvirt reads it (virXMLPropUInt in base 10).
            disks.append((dev, None if driver is None else attr_int(driver, "iothread", f"<disk> {dev}: <driver>")))
        return cls(ids, tuple(disks), _thread_users(root), _scheduled(root))

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
            self._write_ids(root)
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

    def _write_ids(self, root: etree._Element) -> None:
        """``<iothreads>`` N, and ``<iothreadids>`` when the ids are not 1..N or a kept one says more than its id.

        The ``<iothread>`` of an id that stays is kept as written (its ``thread_pool_min``, ``<poll>``...).
        """
        listing = root.find("iothreadids")
        existing: dict[int, etree._Element] = {}
        for element in [] if listing is None else listing.iterfind("iothread"):
            existing.setdefault(required_int(element, "id", "<iothreadids><iothread>"), element)
        remove_children(root, "iothreads")
        if self.ids:
            insert_ordered(root, parse_markup(make_markup("iothreads", (), str(len(self.ids)))), DOMAIN_ORDER)
        contiguous = self.ids == tuple(range(1, len(self.ids) + 1))
        detailed = any(_has_details(existing[thread]) for thread in self.ids if thread in existing)
        if not self.ids or (contiguous and not detailed):
            remove_children(root, "iothreadids")
            return
        if listing is None:
            listing = etree.Element("iothreadids")
            insert_ordered(root, listing, DOMAIN_ORDER)
        staying = {id(existing[thread]) for thread in self.ids if thread in existing}
        for element in listing.findall("iothread"):
            if id(element) not in staying:
                remove_child(element)
        insert_children(
            listing,
            [parse_markup(make_markup("iothread", (("id", thread),))) for thread in self.ids if thread not in existing],
        )


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

    ``pci`` is the target PCI locality: a disk behind an expander bus goes with that bus's cell.  The
    threads ``current.users`` name stay, with their pins, and so does one only ``<iothreadsched>`` names
    unless it is one of the plan's: libvirt refuses a definition whose named thread is gone.
    """
    if layout.spec.iothreads == "none":
        return current, current_pins
    cells = device_cells(domain, pci)
    owned = {dev for dev, _thread in current.disks}
    disks = [
        (device.target or "", cells.get(device.path))
        for device in domain.devices
        if device.tag == "disk" and device.target in owned
    ]
    plan = plan_iothreads(layout, disks)
    # The threads elements the collection does not own use stay, with their pins; the collection's own
    # threads take the lowest ids around them.  A thread only <iothreadsched> names stays too unless it
    # is one of the collection's (the user then tunes that one).
    used = {thread for thread, _who in current.users}
    own = _free_ids(plan.count, used)
    kept = used | (set(current.scheduled) - set(own))
    planned = {dev: own[thread - 1] for dev, thread in plan.disks}
    pins = [Iothreadpin(own[number], cpus) for number, cpus in enumerate(plan.pins) if cpus is not None]
    pins.extend(pin for pin in current_pins.pins if pin.iothread in kept)
    return (
        IoThreads(
            tuple(sorted({*own, *kept})),
            tuple((dev, planned.get(dev)) for dev, _thread in current.disks),
            current.users,
            current.scheduled,
        ),
        IothreadPins(tuple(sorted(pins, key=lambda pin: pin.iothread))),
    )


def _free_ids(count: int, taken: set[int]) -> tuple[int, ...]:
    """The ``count`` lowest I/O thread ids (from 1) not in ``taken``."""
    ids: list[int] = []
    candidate = 1
    while len(ids) < count:
        if candidate not in taken:
            ids.append(candidate)
        candidate += 1
    return tuple(ids)
