# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The collection's records in a domain's ``<metadata>``: found, put and removed in one place.

Each record is a child of ``<metadata>`` in a namespace of the collection's own: the stored spec
(``vnuma.py:VNUMA_NS``), the owned parts from before the collection (``vnuma.py:ORIGINAL_NS``), the
addresses of moved devices (``pci_addresses.py:ADDRESSES_NS``), a move with the topology kept
(``migration.py:MOVED_NS``).  libvirt keeps one ``<metadata>`` child per namespace and drops the others
(virXMLNodeSanitizeNamespaces; https://libvirt.org/formatdomain.html#general-metadata), so each record
has a namespace of its own, and other applications' children are never touched.  A ``<metadata>`` that
a removal leaves empty goes too, whichever record went last: the definition then has none, as before
the collection.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import (
    insert_child,
    remove_child,
    remove_if_empty,
    replace_child,
)

__all__ = ["MetadataRecord"]


@dataclass(frozen=True)
class MetadataRecord:
    """The children of ``<metadata>`` in ``namespace``; only those named ``tag`` when a tag is given."""

    namespace: str
    tag: str | None = None

    def find(self, root: etree._Element) -> list[etree._Element]:
        """The record's elements in the domain ``root``'s ``<metadata>``, in document order (none: empty)."""
        metadata = root.find("metadata")
        if metadata is None:
            return []
        if self.tag is not None:
            return list(metadata.iterchildren(f"{{{self.namespace}}}{self.tag}"))
        # Comments and processing instructions have a function as their tag.
        return [
            child
            for child in metadata
            if isinstance(child.tag, str) and etree.QName(child.tag).namespace == self.namespace
        ]

    def put(self, root: etree._Element, element: etree._Element) -> None:
        """``element`` in ``<metadata>`` in place of the record's elements (the first replaced, any other
        removed), or added; ``<metadata>`` is created where libvirt writes it when the domain has none."""
        existing = self.find(root)
        if existing:
            replace_child(existing[0], element)
            for extra in existing[1:]:
                remove_child(extra)
            return
        metadata = root.find("metadata")
        if metadata is None:
            metadata = etree.Element("metadata")
            insert_child(root, metadata)
        insert_child(metadata, element)

    def remove(self, root: etree._Element) -> None:
        """Remove the record's elements, and ``<metadata>`` itself when that leaves it holding nothing."""
        for element in self.find(root):
            remove_child(element)
        remove_if_empty(root.find("metadata"))
