# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Guest PCI addresses (``Slot``), and the record in ``<metadata>`` of those devices had before the collection
moved them.

The record is read with the rest of the domain (``pci_domain.py:PciDomain``) and written back with the
collection's controllers (``pci_controllers.py:PciLocality.apply``), so that a device the collection no longer
moves goes back to where it was (``pci_locality.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import make_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.metadata import MetadataRecord
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import libvirt_int, optional_libvirt_int

__all__ = ["ADDRESSES_NS", "Slot", "read_originals", "store_originals"]

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


def read_originals(root: etree._Element) -> tuple[tuple[str, Slot], ...]:
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


def store_originals(root: etree._Element, originals: tuple[tuple[str, Slot], ...]) -> None:
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
