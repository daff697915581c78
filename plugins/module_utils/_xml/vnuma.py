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
that a misspelt attribute cannot silently fall back to a default.  ``<partition>`` only matters
in ``node`` mode: in a template, ``host`` mode with a ``<partition>`` is refused (the proposal
ignored it; the collection refuses a request it would drop, docs/partitioning.md).  A spec stored
in ``<metadata>`` by an earlier version may hold both: there the partition is dropped, as nobody
typed it now.

A domain template carries the element as a direct child of ``<domain>`` (stock libvirt would
refuse it, so it is taken out before anything reaches libvirt).  The collection stores the spec
it applied in ``<metadata>`` as the same element in its own namespace ``VNUMA_NS``, with every
attribute written out, so that a later re-render does not depend on defaults that may change.
(https://libvirt.org/formatdomain.html#general-metadata: each application owns one metadata child,
told apart by its namespace.)
"""

from __future__ import annotations

from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import SPEC_OPTIONS, Kind, Option
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.metadata import MetadataRecord
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import detached_copy, remove_child
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    read_size_kib,
    string_value,
    yes_no_text,
    yes_no_value,
)

__all__ = [
    "ORIGINAL_NS",
    "ORIGINAL_WHAT",
    "OWNED_PARTS",
    "VNUMA_NS",
    "VNUMA_PREFIX",
    "VNUMA_TAG",
    "WRITTEN_PARTS",
    "has_original",
    "has_stored_spec",
    "owned_parts",
    "read_original",
    "remove_original",
    "store_original",
    "stripped_copy",
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

# Where each spec option goes, from the option table, in the order written: the options that are
# attributes of <vnuma>, then its children with the options each holds.
_ON_VNUMA = tuple(
    (item.xml_attribute, item) for item in SPEC_OPTIONS if item.xml_child is None and item.xml_attribute is not None
)
_ATTRIBUTES = tuple(attribute for attribute, _item in _ON_VNUMA)
_CHILDREN = tuple(dict.fromkeys(item.xml_child for item in SPEC_OPTIONS if item.xml_child is not None))
_IN_CHILD = {child: tuple(item for item in SPEC_OPTIONS if item.xml_child == child) for child in _CHILDREN}
# A child holding a size takes a unit for it (KiB when absent), after the options' own attributes.
_SIZED = {child for child, items in _IN_CHILD.items() if any(item.kind is Kind.SIZE for item in items)}
_CHILD_ATTRIBUTES = {
    child: (
        *(item.xml_attribute for item in items if item.xml_attribute is not None),
        *(("unit",) if child in _SIZED else ()),
    )
    for child, items in _IN_CHILD.items()
}


def _local(tag: Any) -> str | None:
    """The local name of an element tag, None for comments and processing instructions."""
    if not isinstance(tag, str):
        return None
    return etree.QName(tag).localname


def _namespace(tag: str) -> str | None:
    return etree.QName(tag).namespace


def _size(item: Option, raw: str | None, unit: str | None, what: str) -> int:
    if raw is None or not raw.strip():
        raise SpecError(f"{what} has no size")
    # The row's own limit, as the module reads the option: a page size is bounded by a page's, not by memory's.
    return read_size_kib(raw, unit, what, error=SpecError, **item.limit_args)


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


def _read(item: Option, raw: str | None, unit: str | None, what: str) -> Any:
    """The value of ``item`` written ``raw`` in ``<vnuma>`` (``what`` names where, for messages)."""
    if item.kind is Kind.SIZE:
        return _size(item, raw, unit, what)
    if raw is None:
        # Only a size is read when absent (it is its element's reason to be); kept for the types.
        raise SpecError(f"{what} is missing")
    if item.kind is Kind.CHOICE:
        return raw.strip()
    if item.kind is Kind.BOOLEAN:
        value = yes_no_value(raw)
        if value is None:
            place = "<vnuma" if item.xml_child is None else f"<vnuma><{item.xml_child}"
            raise SpecError(f"{place} {item.xml_attribute}={raw.strip()!r}> must be yes or no")
        return value
    if item.kind is Kind.COUNT:
        # Read as the module reads the option, so that cells='1.5' and cells: 1.5 get one message (the option, the
        # value, its range); the element names where it was written.
        try:
            return item.coerce(raw)
        except SpecError as error:
            place = "<vnuma>" if item.xml_child is None else f"<vnuma><{item.xml_child}>"
            raise SpecError(f"{place}: {error.message}") from None
    return raw


def _written(item: Option, value: Any) -> str:
    """``value`` of ``item`` as ``<vnuma>`` writes it: sizes in KiB, booleans as yes or no."""
    if item.kind is Kind.BOOLEAN:
        return yes_no_text(value)
    return str(value)


def spec_from_element(element: Any) -> VnumaSpec:
    """Parse a ``<vnuma>`` element (plain, or in the collection's namespace) into a spec."""
    if element is None or _local(element.tag) != VNUMA_TAG:
        found = "nothing" if element is None else f"<{element.tag}>"
        raise XmlError(f"expected a <vnuma> element, got {found}")
    namespace = _namespace(element.tag)
    _check_attributes(element, _ATTRIBUTES, "<vnuma>")
    _check_no_text(element, "<vnuma>")
    values: dict[str, Any] = {}
    for attribute, item in _ON_VNUMA:
        raw = element.get(attribute)
        if raw is not None:
            values[item.field] = _read(item, raw, None, f"<vnuma> {attribute}")

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
        if name == "maxMemory" and child.get("slots") is None:
            raise SpecError(f"{what} needs a slots attribute: memory hotplug needs both size and slots")
        items = _IN_CHILD[name]
        if all(item.xml_attribute is not None for item in items):
            _check_no_text(child, what)
        for item in items:
            if item.xml_attribute is None:
                values[item.field] = _read(item, string_value(child), child.get("unit"), what)
            elif child.get(item.xml_attribute) is not None or item.kind is Kind.SIZE:
                raw = child.get(item.xml_attribute)
                values[item.field] = _read(item, raw, child.get("unit"), f"{what} {item.xml_attribute}")
    if namespace == VNUMA_NS and values.get("mode", "host") == "host":
        # Stored by a version that kept <partition> in host mode (and ignored it): not refused, since
        # nobody typed it now, and refusing would make the guest unmanageable.
        for item in _IN_CHILD["partition"]:
            values.pop(item.field, None)
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
    for attribute, item in _ON_VNUMA:
        element.set(attribute, _written(item, getattr(spec, item.field)))
    for name in _CHILDREN:
        given = [(item, getattr(spec, item.field)) for item in _IN_CHILD[name]]
        given = [(item, value) for item, value in given if value is not None]
        if not given:
            continue
        child = etree.SubElement(element, tag(name))
        for item, value in given:
            if item.xml_attribute is not None:
                child.set(item.xml_attribute, _written(item, value))
        if name in _SIZED:
            child.set("unit", "KiB")
        for item, value in given:
            if item.xml_attribute is None:
                child.text = _written(item, value)
    return element


# The stored spec: the <vnuma:vnuma> child of <metadata>.
_SPEC = MetadataRecord(VNUMA_NS, VNUMA_TAG)


def read_stored_spec(root: Any) -> VnumaSpec | None:
    """The spec the collection stored in the domain's ``<metadata>``, or None."""
    stored = _SPEC.find(root)
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
    _SPEC.put(root, spec_to_element(spec, namespaced=True))


def take_vnuma_element(root: Any) -> VnumaSpec | None:
    """Parse and remove the ``<vnuma>`` child of ``<domain>`` (a template's request), or None."""
    found = list(root.iterchildren(VNUMA_TAG))
    misplaced = [element for element in root.iterdescendants(VNUMA_TAG) if element.getparent() is not root]
    if misplaced:
        # libvirt drops an element it does not know (or refuses it when validating): a request one level
        # too deep would otherwise leave the guest without the layout its author asked for, silently.
        where = "/".join(ancestor.tag for ancestor in reversed(list(misplaced[0].iterancestors())))
        raise SpecError(f"a <vnuma> element sits inside /{where}; it must be a direct child of <domain>")
    if not found:
        return None
    if len(found) > 1:
        raise SpecError(f"the domain has {len(found)} <vnuma> elements; there must be at most one")
    spec = spec_from_element(found[0])
    remove_child(found[0])
    return spec


def remove_stored_spec(root: Any) -> None:
    """Remove the collection's spec from ``<metadata>`` (and ``<metadata>`` itself when that empties it)."""
    _SPEC.remove(root)


# --------------------------------------------------------------------------------------------------
# The record of the owned parts as they were before the collection (``state: absent`` restores them)
# --------------------------------------------------------------------------------------------------

# libvirt keeps one <metadata> child per namespace and silently drops the others
# (virXMLNodeSanitizeNamespaces), so the record cannot sit next to the spec in VNUMA_NS: it has a
# namespace of its own, and older versions of the collection, which read VNUMA_NS only, never see it.
ORIGINAL_NS = "urn:vnuma:libvirt:original:1.0"
ORIGINAL_PREFIX = "vnuma-original"
ORIGINAL_TAG = "original"
ORIGINAL_VERSION = "1"
# How messages name the record.
ORIGINAL_WHAT = "the record of the definition before the collection"
# Every child of <metadata> in ORIGINAL_NS, whatever its tag: read_original refuses all but one <original>.
_ORIGINAL = MetadataRecord(ORIGINAL_NS)

# Every owned part as (container, tag): a child of <domain> (container None) or of the container.
OWNED_PARTS: tuple[tuple[str | None, str], ...] = (
    (None, "maxMemory"),
    (None, "memory"),
    (None, "currentMemory"),
    ("memoryBacking", "hugepages"),
    (None, "vcpu"),
    (None, "vcpus"),
    ("cputune", "vcpupin"),
    ("cputune", "emulatorpin"),
    (None, "numatune"),
    ("cpu", "topology"),
    ("cpu", "cache"),
    ("cpu", "numa"),
)
# The parts a user may change by hand after an apply; the record keeps them as last written too, so
# that absent can tell a part the collection wrote from one changed since (see _xml.absent).
WRITTEN_PARTS: tuple[tuple[str | None, str], ...] = (
    (None, "maxMemory"),
    (None, "memory"),
    (None, "currentMemory"),
    ("memoryBacking", "hugepages"),
    (None, "vcpu"),
    ("cputune", "emulatorpin"),
    ("cpu", "topology"),
    ("cpu", "cache"),
)
_CONTAINERS = ("memoryBacking", "cputune", "cpu")


def stripped_copy(element: Any) -> Any:
    """A detached copy of ``element`` without its tail and without whitespace-only text.

    Whitespace between elements is layout, not content: libvirt re-indents <metadata> anyway, and
    a part put back is indented like the document it goes into.
    """
    copy = detached_copy(element)
    for node in copy.iter():
        if node.text is not None and not node.text.strip() and len(node):
            node.text = None
        if node is not copy and node.tail is not None and not node.tail.strip():
            node.tail = None
    return copy


def owned_parts(root: Any, parts: tuple[tuple[str | None, str], ...] = OWNED_PARTS) -> Any:
    """A detached ``<domain>`` holding copies of ``root``'s owned ``parts`` and nothing else.

    A container (``<cpu>``, ``<cputune>``, ``<memoryBacking>``) is there, empty of anything else and
    without attributes, when ``root`` has one: absent then knows whether the domain had it.
    """
    result = etree.Element("domain")
    containers: dict[str, Any] = {}
    for container, tag in parts:
        source = root if container is None else root.find(container)
        if source is None:
            continue
        parent = result
        if container is not None:
            if container not in containers:
                containers[container] = etree.SubElement(result, container)
            parent = containers[container]
        for element in source.iterchildren(tag):
            parent.append(stripped_copy(element))
    return result


def _rename(element: Any, namespace: str | None) -> None:
    """Move ``element`` and its descendants into ``namespace`` (None: out of any namespace), in place.

    Done once the element is under the record, lxml reuses the record's prefix declaration.
    """
    for node in element.iter():
        tag = node.tag
        if isinstance(tag, str):
            # "{namespace}local" or "local": the text after the last "}" (no QName object per node).
            local = tag.rpartition("}")[2]
            node.tag = local if namespace is None else f"{{{namespace}}}{local}"


def has_original(root: Any) -> bool:
    """Whether ``<metadata>`` holds a record of the owned parts (readable or not)."""
    return bool(_ORIGINAL.find(root))


def has_stored_spec(root: Any) -> bool:
    """Whether ``<metadata>`` holds a stored spec, readable or not (the guest was managed)."""
    return bool(_SPEC.find(root))


def store_original(root: Any, before: Any, written: Any) -> None:
    """Record ``before`` and ``written`` (``<domain>``s as ``owned_parts`` gives) in ``<metadata>``.

    Written as ``<vnuma-original:original version='1'>`` holding ``<before>`` and ``<written>``, each
    with the parts in the record's namespace, so that no XPath over the domain (``//vcpu``) finds
    them.  An existing record is replaced; other applications' metadata stays as it was.  The parts
    move into the record: ``before`` and ``written`` are left empty.
    """
    record = etree.Element(f"{{{ORIGINAL_NS}}}{ORIGINAL_TAG}", nsmap={ORIGINAL_PREFIX: ORIGINAL_NS})
    record.set("version", ORIGINAL_VERSION)
    for name, parts in (("before", before), ("written", written)):
        section = etree.SubElement(record, f"{{{ORIGINAL_NS}}}{name}")
        # The parts are stripped copies made for the record (owned_parts, merged_parts): moved, not
        # copied a second time (a guest's 256 <vcpupin>s were parsed twice over).
        for child in list(parts):
            section.append(child)
            _rename(child, ORIGINAL_NS)
    _ORIGINAL.put(root, record)


def _record_section(record: Any, name: str, parts: tuple[tuple[str | None, str], ...]) -> Any:
    """The ``<before>`` or ``<written>`` of a record as a plain ``<domain>``; XmlError when malformed."""
    found = [child for child in record if isinstance(child.tag, str) and _local(child.tag) == name]
    if len(found) != 1:
        raise XmlError(f"it has {len(found)} <{name}> sections, it needs exactly one")
    section = stripped_copy(found[0])
    _rename(section, None)
    etree.cleanup_namespaces(section)
    allowed = {container or tag for container, tag in parts}
    inside = {container: {tag for owner, tag in parts if owner == container} for container in _CONTAINERS}
    seen: set[str] = set()
    for child in section:
        if not isinstance(child.tag, str):
            continue
        if child.tag not in allowed:
            raise XmlError(f"<{name}> holds <{child.tag}>, which is not a part the collection owns")
        if child.tag in seen:
            raise XmlError(f"<{name}> holds <{child.tag}> more than once")
        seen.add(child.tag)
        inner: set[str] = set()
        for grandchild in child if child.tag in _CONTAINERS else ():
            if not isinstance(grandchild.tag, str):
                continue
            if grandchild.tag not in inside[child.tag]:
                raise XmlError(
                    f"<{name}><{child.tag}> holds <{grandchild.tag}>, which is not a part the collection owns"
                )
            # A domain has one of each, but a <vcpupin> per vCPU.
            if grandchild.tag in inner and grandchild.tag != "vcpupin":
                raise XmlError(f"<{name}><{child.tag}> holds <{grandchild.tag}> more than once")
            inner.add(grandchild.tag)
    section.tag = "domain"
    return section


def read_original(root: Any) -> tuple[Any, Any] | None:
    """The recorded ``(before, written)`` parts as plain ``<domain>``s (see ``owned_parts``), or None.

    XmlError (naming what is wrong) when the record is there but cannot be used: absent then falls
    back to removing the layout (``_xml.absent``), it never fails because of the record.
    """
    found = _ORIGINAL.find(root)
    if not found:
        return None
    what = ORIGINAL_WHAT
    if len(found) > 1:
        raise XmlError(f"{what}: <metadata> holds {len(found)} elements in {ORIGINAL_NS}, there must be one")
    record = found[0]
    try:
        if _local(record.tag) != ORIGINAL_TAG:
            raise XmlError(f"<{_local(record.tag)}> is not <{ORIGINAL_TAG}>")
        version = record.get("version")
        if version != ORIGINAL_VERSION:
            raise XmlError(f"version {version!r} is not {ORIGINAL_VERSION!r}")
        before = _record_section(record, "before", OWNED_PARTS)
        written = _record_section(record, "written", WRITTEN_PARTS)
        # Every value must read as libvirt's: a record edited by hand is refused here, not half used.
        DomainNuma.from_domain(before)
        DomainNuma.from_domain(written)
    except (XmlError, SpecError) as error:
        raise XmlError(f"{what}: {error.message}") from None
    return before, written


def remove_original(root: Any) -> None:
    """Remove the record from ``<metadata>`` (and ``<metadata>`` itself when that empties it)."""
    _ORIGINAL.remove(root)
