# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The whitespace-preserving tree editor: insert, replace and remove elements of a parsed document.

Only what is created is indented, to match its siblings; every other element, attribute, comment
and whitespace of the document stays as it was.  New children go where libvirt's own formatter
writes them (the order tables below).  Used for the owned elements (``domain.py``), the stored spec
(``vnuma.py``) and the record for ``state: absent`` (``absent.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_written

__all__ = [
    "CHILD_ORDERS",
    "CPUTUNE_ORDER",
    "CPU_ORDER",
    "DOMAIN_ORDER",
    "MEMORY_BACKING_ORDER",
    "child_or_insert",
    "detached_copy",
    "insert_at",
    "insert_child",
    "insert_children",
    "insert_ordered",
    "insert_run",
    "is_blank",
    "put_model",
    "remove_child",
    "remove_children",
    "remove_if_empty",
    "replace_child",
]

# The order in which libvirt's own formatter writes the children we may create.  The schema
# (domaincommon.rng, cputypes.rng) uses <interleave> for <domain>, <cpu> and <cputune>, so any
# order is valid; following libvirt's keeps a created element where ``virsh dumpxml`` shows it.
DOMAIN_ORDER = (
    "name",
    "uuid",
    "genid",
    "title",
    "description",
    "metadata",
    "maxMemory",
    "memory",
    "currentMemory",
    "blkiotune",
    "memtune",
    "memoryBacking",
    "vcpu",
    "vcpus",
    "iothreads",
    "iothreadids",
    "defaultiothread",
    "cputune",
    "numatune",
    "resource",
    "sysinfo",
    "bootloader",
    "bootloader_args",
    "os",
    "idmap",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_lockfailure",
    "pm",
    "perf",
    "devices",
)
CPU_ORDER = ("model", "vendor", "topology", "cache", "maxphysaddr", "feature", "numa")
CPUTUNE_ORDER = (
    "shares",
    "period",
    "quota",
    "global_period",
    "global_quota",
    "emulator_period",
    "emulator_quota",
    "iothread_period",
    "iothread_quota",
    "vcpupin",
    "emulatorpin",
    "iothreadpin",
    "vcpusched",
    "iothreadsched",
    "emulatorsched",
    "cachetune",
    "memorytune",
)
MEMORY_BACKING_ORDER = ("hugepages", "nosharepages", "locked", "source", "access", "allocation", "discard")
# The orders above by parent tag, for insert_child.
CHILD_ORDERS = {
    "domain": DOMAIN_ORDER,
    "cpu": CPU_ORDER,
    "cputune": CPUTUNE_ORDER,
    "memoryBacking": MEMORY_BACKING_ORDER,
}


# --------------------------------------------------------------------------------------------------
# Edits: only what we create is indented, to match its siblings
# --------------------------------------------------------------------------------------------------


def _indent_unit(element: etree._Element) -> str | None:
    """The document's indentation step, or None when it is not pretty-printed (then add no whitespace)."""
    root = element.getroottree().getroot()
    text: str | None = root.text
    if text is None or text.strip() or "\n" not in text:
        return None
    return text.rsplit("\n", 1)[1]


def _depth(element: etree._Element) -> int:
    return sum(1 for _ancestor in element.iterancestors())


def is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


def _format_new(element: etree._Element, depth: int) -> None:
    unit = _indent_unit(element)
    if unit is not None and len(element):
        etree.indent(element, space=unit, level=depth)


def insert_at(parent: etree._Element, index: int, child: etree._Element) -> None:
    """Insert ``child`` at ``index`` (0 or more) and indent it like its siblings."""
    insert_run(parent, index, (child,))


def insert_run(parent: etree._Element, index: int, children: Sequence[etree._Element]) -> None:
    """Insert ``children`` one after the other from ``index``, each as ``insert_at`` would.

    Only the first child's neighbours are read: after it, each next child of the run would find the
    same whitespace around it, so the others all get one tail and go in as one slice (a 1024-vCPU
    guest has 1024 pins).  When the run ends the parent, the last child takes over the closing
    indentation instead, as ``insert_at`` hands it on.
    """
    if not children:
        return
    unit = _indent_unit(parent)
    if unit is None:
        parent[index:index] = children
        return
    depth = _depth(parent)
    sibling_ws = "\n" + unit * (depth + 1)
    closing_ws = "\n" + unit * depth
    first, rest = children[0], children[1:]
    parent.insert(index, first)
    previous, following = first.getprevious(), first.getnext()
    if previous is None and following is None:
        # The only child.
        if is_blank(parent.text):
            parent.text = sibling_ws
        first.tail = closing_ws
    elif following is None and previous is not None:
        # Appended after the previous last child, which hands it the closing indentation.
        before_previous = previous.getprevious()
        before_last = parent.text if before_previous is None else before_previous.tail
        first.tail = previous.tail
        previous.tail = before_last if is_blank(before_last) and before_last else sibling_ws
    else:
        before = parent.text if previous is None else previous.tail
        first.tail = before if is_blank(before) and before else sibling_ws
    if rest:
        run_ws: str | None
        last_tail: str | None
        if following is None:
            # At the end: the closing indentation moves on to the last child of the run, and the
            # first one gets the indentation that precedes it, as each next child would give it.
            before = parent.text if previous is None else previous.tail
            run_ws = before if is_blank(before) and before else sibling_ws
            last_tail = first.tail
            first.tail = run_ws
        else:
            run_ws = last_tail = first.tail
        for child in rest:
            child.tail = run_ws
        rest[-1].tail = last_tail
        parent[index + 1 : index + 1] = rest
    for child in children:
        if len(child):
            etree.indent(child, space=unit, level=depth + 1)


def _parent(element: etree._Element) -> etree._Element:
    parent = element.getparent()
    if parent is None:
        raise XmlError(f"<{element.tag}> is the root element: it cannot be replaced or removed")
    return parent


def insert_ordered(parent: etree._Element, child: etree._Element, order: Sequence[str]) -> None:
    """Insert ``child`` after the last sibling that libvirt writes before it (or first)."""
    rank = order.index(child.tag) if child.tag in order else len(order)
    index = 0
    for position, sibling in enumerate(parent):
        if isinstance(sibling.tag, str) and sibling.tag in order and order.index(sibling.tag) <= rank:
            index = position + 1
    insert_at(parent, index, child)


def replace_child(old: etree._Element, new: etree._Element) -> None:
    """Put ``new`` where ``old`` was, keeping the whitespace around it and indenting ``new``'s inside."""
    new.tail = old.tail
    _parent(old).replace(old, new)
    _format_new(new, _depth(new))


def remove_child(element: etree._Element) -> None:
    """Remove ``element`` and its tail, leaving the whitespace of its siblings tidy."""
    parent = _parent(element)
    previous = element.getprevious()
    tail = element.tail
    if element.getnext() is None:
        # The last child's tail is the parent's closing indentation: hand it to the new last child.
        if previous is not None:
            previous.tail = tail
        elif is_blank(parent.text) and is_blank(tail):
            parent.text = None
    elif tail is not None and tail.strip():
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def insert_child(parent: etree._Element, child: etree._Element, order: Sequence[str] | None = None) -> None:
    """Insert ``child`` into ``parent``, indented like its siblings.

    It goes after the last sibling that ``order`` puts before it (under ``<domain>``, ``<cpu>``,
    ``<cputune>`` and ``<memoryBacking>``: where libvirt writes it), or last when there is no order.
    """
    if order is None:
        order = CHILD_ORDERS.get(parent.tag, ())
    if order:
        insert_ordered(parent, child, order)
    else:
        insert_at(parent, len(parent), child)


def insert_children(parent: etree._Element, children: Sequence[etree._Element]) -> None:
    """Insert ``children`` one after the other, the first where ``insert_child`` puts it.

    The rest follow it as one run (a guest's ``<vcpupin>``s): one sibling scan, not one per child.
    """
    if not children:
        return
    first, rest = children[0], list(children[1:])
    insert_child(parent, first)
    insert_run(parent, parent.index(first) + 1, rest)


def child_or_insert(parent: etree._Element, tag: str, order: Sequence[str]) -> etree._Element:
    """The child ``tag`` of ``parent``, created empty where libvirt writes it when there is none."""
    child = parent.find(tag)
    if child is None:
        child = etree.Element(tag)
        insert_ordered(parent, child, order)
    return child


def remove_if_empty(element: etree._Element | None) -> None:
    """Remove ``element`` (when there is one) if it holds nothing: no child, no attribute, no text."""
    if element is not None and len(element) == 0 and is_blank(element.text) and not element.attrib:
        remove_child(element)


def remove_children(parent: etree._Element, tag: str) -> None:
    """Remove every ``tag`` child of ``parent``."""
    for child in parent.findall(tag):
        remove_child(child)


def detached_copy(element: etree._Element) -> etree._Element:
    """A copy of ``element`` in a document of its own, without its tail.

    Serialised and parsed again (``parse_written``): the copy declares the namespaces in scope where
    ``element`` was, as a copy put elsewhere needs.
    """
    copy = parse_written(etree.tostring(element, with_tail=False))
    copy.tail = None
    return copy


def put_model(
    parent: etree._Element, model: ElementModel, order: Sequence[str], element: etree._Element | None = None
) -> None:
    """Make ``parent``'s child of ``model``'s kind equal to ``model``.

    A child that already reads as ``model`` is left exactly as written (its units, its spelling);
    otherwise it is replaced in place by ``element`` (default ``model.to_element()``), or inserted
    where libvirt writes it.
    """
    existing = parent.findall(model.TAG)
    for extra in existing[1:]:
        remove_child(extra)
    if existing and type(model).from_element(existing[0]) == model:
        return
    if element is None:
        element = model.to_element()
    if existing:
        replace_child(existing[0], element)
    else:
        insert_ordered(parent, element, order)
