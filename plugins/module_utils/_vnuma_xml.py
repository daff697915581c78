# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The ``<vnuma>`` element <-> ``VnumaSpec``, and the spec kept in the domain's ``<metadata>``.

The element is the one of the libvirt proposal (seed cover letter), with the collection's
extensions as further attributes and children::

    <vnuma mode='host|node' distribution='contiguous|siblings|round-robin|interleave'
           pinning='node|core|thread|none' memory_mode='strict|preferred|interleave|restrictive'
           memory_split='even|vcpus' emulator_pin='none|nodes' cpuless_cells='yes|no'>
      <memory unit='KiB'>524288</memory>
      <partition nodeset='1-4,^3' cells='8'/>
      <hugepages size='2' unit='MiB'/>
      <maxMemory slots='16' unit='GiB'>64</maxMemory>
    </vnuma>

Everything is optional (absent means the ``VnumaSpec`` default); anything unknown is an error, so
that a misspelt attribute cannot silently fall back to a default.  As in the proposal,
``<partition>`` only matters in ``node`` mode; in ``host`` mode it is kept in the spec and ignored
by the partitioner.

A domain template carries the element as a direct child of ``<domain>`` (stock libvirt would
refuse it, so it is taken out before anything reaches libvirt).  The collection stores the spec
it applied in ``<metadata>`` as the same element in its own namespace ``VNUMA_NS``, with every
attribute written out, so that a later re-render does not depend on defaults that may change.
(https://libvirt.org/formatdomain.html#general-metadata: each application owns one metadata child,
told apart by its namespace.)
"""

from __future__ import annotations

from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._domain_xml import insert_child, remove_child, replace_child
from ansible_collections.vnuma.libvirt.plugins.module_utils._errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._units import to_kib
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import etree

__all__ = [
    "VNUMA_NS",
    "VNUMA_PREFIX",
    "VNUMA_TAG",
    "spec_from_element",
    "spec_to_element",
    "read_stored_spec",
    "remove_stored_spec",
    "store_spec",
    "take_vnuma_element",
]

VNUMA_NS = "urn:vnuma:libvirt:1.0"
VNUMA_PREFIX = "vnuma"
VNUMA_TAG = "vnuma"

# Attribute name -> VnumaSpec field, in the order they are written.
_CHOICE_ATTRIBUTES = ("mode", "distribution", "pinning", "memory_mode", "memory_split", "emulator_pin")
_ATTRIBUTES = (*_CHOICE_ATTRIBUTES, "cpuless_cells")
_CHILDREN = ("memory", "partition", "hugepages", "maxMemory")
_CHILD_ATTRIBUTES = {
    "memory": ("unit",),
    "partition": ("nodeset", "cells"),
    "hugepages": ("size", "unit"),
    "maxMemory": ("slots", "unit"),
}
_YES_NO = {"yes": True, "no": False}


def _local(tag: Any) -> str | None:
    """The local name of an element tag, None for comments and processing instructions."""
    if not isinstance(tag, str):
        return None
    return etree.QName(tag).localname


def _namespace(tag: str) -> str | None:
    return etree.QName(tag).namespace


def _integer(raw: str, what: str) -> int:
    token = raw.strip()
    if not (token.isascii() and token.isdigit()):
        raise SpecError(f"{what} {raw!r} is not a non-negative integer")
    return int(token)


def _size(raw: str | None, unit: str | None, what: str) -> int:
    if raw is None or not raw.strip():
        raise SpecError(f"{what} has no size")
    return to_kib(_integer(raw, what), "KiB" if unit is None else unit.strip(), what)


def _check_attributes(element: Any, allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(name for name in element.attrib if name not in allowed)
    if unknown:
        raise SpecError(f"{what}: unknown attribute(s) {', '.join(unknown)}; known: {', '.join(allowed) or 'none'}")


def _check_no_text(element: Any, what: str) -> None:
    if element.text is not None and element.text.strip():
        raise SpecError(f"{what} holds text {element.text.strip()!r}, which means nothing here")
    for child in element:
        if child.tail is not None and child.tail.strip():
            raise SpecError(f"{what} holds text {child.tail.strip()!r}, which means nothing here")


def spec_from_element(element: Any) -> VnumaSpec:
    """Parse a ``<vnuma>`` element (plain, or in the collection's namespace) into a spec."""
    if element is None or _local(element.tag) != VNUMA_TAG:
        found = "nothing" if element is None else f"<{element.tag}>"
        raise XmlError(f"expected a <vnuma> element, got {found}")
    namespace = _namespace(element.tag)
    _check_attributes(element, _ATTRIBUTES, "<vnuma>")
    _check_no_text(element, "<vnuma>")
    values: dict[str, Any] = {name: element.get(name).strip() for name in _CHOICE_ATTRIBUTES if name in element.attrib}
    if "cpuless_cells" in element.attrib:
        raw = element.get("cpuless_cells").strip()
        if raw not in _YES_NO:
            raise SpecError(f"<vnuma cpuless_cells={raw!r}> must be yes or no")
        values["cpuless_cells"] = _YES_NO[raw]

    seen: set[str] = set()
    for child in element:
        name = _local(child.tag)
        if name is None:
            continue
        # Children are in the element's own namespace: none for a template, VNUMA_NS in metadata.
        if name not in _CHILDREN or _namespace(child.tag) != namespace:
            raise SpecError(f"<vnuma>: unknown child <{child.tag}>; known: {', '.join(_CHILDREN)}")
        if name in seen:
            raise SpecError(f"<vnuma>: <{name}> is given more than once")
        seen.add(name)
        what = f"<vnuma><{name}>"
        _check_attributes(child, _CHILD_ATTRIBUTES[name], what)
        nested = [grandchild.tag for grandchild in child if _local(grandchild.tag) is not None]
        if nested:
            raise SpecError(f"{what}: unknown child <{nested[0]}>; it takes none")
        if name == "memory":
            values["memory_kib"] = _size(child.text, child.get("unit"), what)
        elif name == "partition":
            _check_no_text(child, what)
            if child.get("nodeset") is not None:
                values["nodeset"] = child.get("nodeset")
            if child.get("cells") is not None:
                values["cells"] = _integer(child.get("cells"), f"{what} cells")
        elif name == "hugepages":
            _check_no_text(child, what)
            values["hugepages_kib"] = _size(child.get("size"), child.get("unit"), f"{what} size")
        else:
            if child.get("slots") is None:
                raise SpecError(f"{what} needs a slots attribute: memory hotplug needs both size and slots")
            values["max_memory_kib"] = _size(child.text, child.get("unit"), what)
            values["memory_slots"] = _integer(child.get("slots"), f"{what} slots")
    try:
        return VnumaSpec(**values)
    except SpecError as error:
        raise SpecError(f"<vnuma>: {error.message}") from None


def spec_to_element(spec: VnumaSpec, namespaced: bool = False) -> Any:
    """The ``<vnuma>`` element for ``spec``, every attribute written out (defaults included).

    ``namespaced`` gives the metadata form: the same element and children in ``VNUMA_NS``.
    """

    def tag(name: str) -> str:
        return f"{{{VNUMA_NS}}}{name}" if namespaced else name

    nsmap = {VNUMA_PREFIX: VNUMA_NS} if namespaced else None
    element = etree.Element(tag(VNUMA_TAG), nsmap=nsmap)
    for name in _CHOICE_ATTRIBUTES:
        element.set(name, getattr(spec, name))
    element.set("cpuless_cells", "yes" if spec.cpuless_cells else "no")
    if spec.memory_kib is not None:
        memory = etree.SubElement(element, tag("memory"), unit="KiB")
        memory.text = str(spec.memory_kib)
    if spec.nodeset is not None or spec.cells is not None:
        partition = etree.SubElement(element, tag("partition"))
        if spec.nodeset is not None:
            partition.set("nodeset", spec.nodeset)
        if spec.cells is not None:
            partition.set("cells", str(spec.cells))
    if spec.hugepages_kib is not None:
        etree.SubElement(element, tag("hugepages"), size=str(spec.hugepages_kib), unit="KiB")
    if spec.max_memory_kib is not None:
        max_memory = etree.SubElement(element, tag("maxMemory"), slots=str(spec.memory_slots), unit="KiB")
        max_memory.text = str(spec.max_memory_kib)
    return element


def _stored(root: Any) -> list[Any]:
    metadata = root.find("metadata")
    if metadata is None:
        return []
    return list(metadata.iterchildren(f"{{{VNUMA_NS}}}{VNUMA_TAG}"))


def read_stored_spec(root: Any) -> VnumaSpec | None:
    """The spec the collection stored in the domain's ``<metadata>``, or None."""
    stored = _stored(root)
    if not stored:
        return None
    if len(stored) > 1:
        raise XmlError(f"<metadata> holds {len(stored)} <vnuma:vnuma> elements; there must be at most one")
    return spec_from_element(stored[0])


def store_spec(root: Any, spec: VnumaSpec) -> None:
    """Store ``spec`` in ``<metadata>``, replacing only the collection's own child there.

    Other applications' metadata stays as it was; ``<metadata>`` is created where libvirt writes
    it (after name, uuid, title and description) when the domain has none.
    """
    element = spec_to_element(spec, namespaced=True)
    stored = _stored(root)
    if stored:
        replace_child(stored[0], element)
        for extra in stored[1:]:
            remove_child(extra)
        return
    metadata = root.find("metadata")
    if metadata is None:
        metadata = etree.Element("metadata")
        insert_child(root, metadata)
    insert_child(metadata, element)


def take_vnuma_element(root: Any) -> VnumaSpec | None:
    """Parse and remove the ``<vnuma>`` child of ``<domain>`` (a template's request), or None."""
    found = list(root.iterchildren(VNUMA_TAG))
    if not found:
        return None
    if len(found) > 1:
        raise SpecError(f"the domain has {len(found)} <vnuma> elements; there must be at most one")
    spec = spec_from_element(found[0])
    remove_child(found[0])
    return spec


def remove_stored_spec(root: Any) -> None:
    """Remove the collection's spec from ``<metadata>`` (and ``<metadata>`` itself when that empties it)."""
    for element in _stored(root):
        remove_child(element)
    metadata = root.find("metadata")
    if metadata is not None and len(metadata) == 0 and not (metadata.text or "").strip():
        remove_child(metadata)
