# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""PCI locality the guest can see: which guest cell each device sits near, and the bus numbers that gives.

A device shows its cell to the guest when it sits behind a PCI expander bus whose ``<target><node>`` is
that cell (``_xml/pci_controllers.py`` writes the buses).  This module holds the rules that need no XML:
the spec's per-device overrides (``device_cells``) and the choice of each expander bus's first bus
number (``busNr``).

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import read_digits, shown

__all__ = [
    "CHIPSET_SLOT",
    "DEVICE_KEYS",
    "VIDEO_SLOT",
    "DeviceCell",
    "bus_numbers",
    "check_root_slots",
    "format_device_cells",
    "parse_device_cells",
]

# How an override names a device: its libvirt user alias, its target (a disk's dev), or a MAC address.
DEVICE_KEYS = ("alias", "target", "mac")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$")
# A disk's target dev, as libvirt takes it: letters and digits (vda, sdb, hdc, nvme0n1).
_TARGET = re.compile(r"^[a-z][a-z0-9]*$")
# Bus numbers are 8 bits; 0 is the root bus itself.
_LAST_BUS = 255
# The root bus's slots: 0 is the host bridge, 1-31 take devices, and an expander bus takes a whole slot.
# libvirt holds one more without writing it in the definition, keyed by whether the root is PCIe: on q35
# (pcie-root) slot 0x1f, the ICH9 LPC bridge and SMBus (qemuDomainValidateDevicePCISlotsQ35); on i440fx
# (pci-root) slot 1, the PIIX3 ISA bridge, IDE, USB and power management (...PIIX3).  A primary video
# device without an address is given slot 1 on q35, slot 2 on i440fx.
_ROOT_SLOTS = range(1, 32)
CHIPSET_SLOT = {True: 0x1F, False: 0x01}
VIDEO_SLOT = {True: 0x01, False: 0x02}


@dataclass(frozen=True)
class DeviceCell:
    """One override: the device named ``value`` (an alias, a target or a MAC) goes near guest cell ``cell``."""

    key: str
    value: str
    cell: int

    def __str__(self) -> str:
        return f"{self.value}={self.cell}"


def _key_of(value: str) -> str:
    """Which kind of name ``value`` is: the three cannot be mistaken for each other."""
    if value.startswith("ua-"):
        return "alias"
    if _MAC.match(value):
        return "mac"
    if _TARGET.match(value):
        return "target"
    raise SpecError(
        f"device_cells names device {value!r}, which is neither a user alias (ua-...), "
        "a disk target (vda) nor a MAC address (52:54:00:12:34:56)"
    )


def _cell(value: object, device: str) -> int:
    """A cell id: an int, or text of ASCII digits (blanks around allowed), read by the one reader."""
    if isinstance(value, str):
        number = read_digits(value.strip())
        value = value if number is None else number
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"device_cells gives device {device} the cell {shown(value)}, which is not a cell id (0, 1...)")
    return value


def _from_mapping(entry: Mapping[object, object]) -> DeviceCell:
    names = [key for key in DEVICE_KEYS if key in entry]
    unknown = sorted(str(key) for key in entry if key not in (*DEVICE_KEYS, "cell"))
    if unknown or len(names) != 1 or "cell" not in entry:
        raise SpecError(
            f"device_cells entry {shown(dict(entry))} must hold one of {', '.join(DEVICE_KEYS)} and a cell"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    raw = entry[names[0]]
    if not isinstance(raw, str) or not raw.strip():
        raise SpecError(f"device_cells entry {shown(dict(entry))}: {names[0]} must be a name")
    value = raw.strip().lower() if names[0] == "mac" else raw.strip()
    if _key_of(value) != names[0]:
        raise SpecError(f"device_cells entry {shown(dict(entry))}: {value!r} is not a {names[0]}")
    return DeviceCell(names[0], value, _cell(entry["cell"], value))


def _from_text(text: str) -> DeviceCell:
    name, sep, cell = text.rpartition("=")
    if not sep or not name.strip():
        raise SpecError(f"device_cells entry {text!r} must read DEVICE=CELL (vda=1, ua-nic0=0)")
    value = name.strip()
    key = _key_of(value)
    return DeviceCell(key, value.lower() if key == "mac" else value, _cell(cell, value))


def parse_device_cells(value: object) -> tuple[DeviceCell, ...]:
    """The overrides in ``value``: ``"vda=1,ua-nic0=0"``, or a list of ``{alias|target|mac: NAME, cell: N}``.

    A device named twice is refused: the two cells would contradict each other.
    """
    entries: Sequence[object]
    if isinstance(value, str):
        # Blanks separate entries like commas do, except around "=" ("vda = 1" is one entry).
        entries = [part for part in re.split(r"[\s,]+", re.sub(r"\s*=\s*", "=", value)) if part]
    elif isinstance(value, list | tuple):
        entries = value
    else:
        raise SpecError(f"device_cells {shown(value)} must be a list of devices and cells or text (vda=1,ua-nic0=0)")
    result: list[DeviceCell] = []
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        if isinstance(entry, str):
            item = _from_text(entry)
        elif isinstance(entry, Mapping):
            item = _from_mapping(entry)
        else:
            raise SpecError(f"device_cells entry {shown(entry)} must be a mapping or DEVICE=CELL")
        if (item.key, item.value) in seen:
            raise SpecError(f"device_cells names device {item.value} more than once")
        seen.add((item.key, item.value))
        result.append(item)
    return tuple(result)


def format_device_cells(items: Iterable[DeviceCell]) -> str:
    """The canonical text of overrides, as the spec stores it (``vda=1,ua-nic0=0``)."""
    return ",".join(str(item) for item in items)


def bus_numbers(sizes: Sequence[tuple[int, int]], lowest_taken: int, root_buses: int) -> dict[int, int]:
    """The first bus number (``busNr``) of each expander bus, keyed by cell.

    ``sizes`` gives, in cell order, each cell and how many bus numbers its expander bus spans (itself and
    the buses behind it).  libvirt gives an expander bus without ``busNr`` the lowest one in use less 2
    (qemuDomainAddressFindNewBusNr) and the guest numbers the root bus's bridges upward from 1, so ours are
    taken from the top down, below ``lowest_taken`` (the lowest ``busNr`` of the domain's other expander
    buses, 256 when none), and must stay above the ``root_buses`` numbers the root bus's own bridges use.
    """
    result: dict[int, int] = {}
    next_free = lowest_taken
    for cell, size in sizes:
        next_free -= size
        result[cell] = next_free
    needed = sum(size for _cell, size in sizes)
    room = lowest_taken - 1 - root_buses
    if needed > room:
        raise SpecError(
            f"the expander buses of {len(sizes)} cells need {needed} PCI bus numbers, but only {max(room, 0)} are "
            f"free (bus numbers 1-{_LAST_BUS}: {root_buses} used behind the root bus"
            + (f", {lowest_taken}-{_LAST_BUS} by the domain's own expander buses" if lowest_taken <= _LAST_BUS else "")
            + "); give fewer devices their own cell"
        )
    return result


def check_root_slots(buses: int, taken: Collection[int], pcie: bool, unaddressed: bool, port_slots: int = 0) -> None:
    """Refuse ``buses`` expander buses the root bus has too few free slots for.

    ``taken`` are the root bus's slots other devices and controllers hold (the expander buses' own not
    among them); ``unaddressed`` says whether libvirt places at least one of the buses itself.  On i440fx
    libvirt then holds one more free slot back for a PCI bridge (qemuDomainAssignPCIAddresses reserves
    "1 extra slot for a (potential) bridge" on a pci-root before it places anything), so the buses need one
    slot more.  Measured on libvirt 9.0: q35 takes 30 expander buses without addresses, i440fx 29.
    ``port_slots`` more are needed for root ports or PCI bridges libvirt places on the root bus besides.
    """
    chipset = CHIPSET_SLOT[pcie]
    free = [slot for slot in _ROOT_SLOTS if slot != chipset and slot not in taken]
    bridge = 1 if unaddressed and not pcie else 0
    if buses + bridge + port_slots > len(free):
        root = "pcie-root" if pcie else "pci-root"
        used = len(_ROOT_SLOTS) - 1 - len(free)
        kind = "root ports" if pcie else "PCI bridges"
        raise SpecError(
            f"the expander buses of {buses} cells need {buses + bridge + port_slots} slots on the root bus ({root}"
            + (", one of them the slot libvirt holds back for a PCI bridge" if bridge else "")
            + (f", {port_slots} of them for new {kind}" if port_slots else "")
            + f"), but only {len(free)} {'is' if len(free) == 1 else 'are'} free (slots 1-31: {chipset:#04x} is the "
            f"chipset's, {used} held by the "
            "guest's other devices and controllers); give fewer devices their own cell, or free root bus slots"
        )
