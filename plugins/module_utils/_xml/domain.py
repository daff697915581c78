# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Domain XML <-> layout: the parts of a libvirt domain the collection owns, and nothing else.

One small frozen dataclass per owned element, each with ``from_element`` (tolerant of the spellings
libvirt accepts: units on sizes, absent optional attributes) and ``to_element`` (libvirt's own
spelling and attribute order).  Values are models, never text: cpusets are ascending tuples, sizes
are KiB.  ``DomainNuma`` gathers the owned parts of one domain: it reads them from any domain
(``from_domain``, hand-written XML included), says what a layout makes of them (``from_layout``),
lists the differences (``changes``) and writes them back in place (``apply``), leaving every other
element, attribute, comment and whitespace of the document as it was.

Elements are documented at https://libvirt.org/formatdomain.html (anchors named where used).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import (
    LOCAL_DISTANCE,
    MAX_DISTANCE,
    MIN_REMOTE_DISTANCE,
    validate_distances,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import parse_int, size_kib, to_kib
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import attr_int, etree

__all__ = [
    "LOCAL_DISTANCE",
    "MIN_REMOTE_DISTANCE",
    "MAX_DISTANCE",
    "Change",
    "ChangeKind",
    "Vcpu",
    "VcpuState",
    "Vcpus",
    "CpuTopology",
    "Sibling",
    "NumaCell",
    "Numa",
    "NumatuneMemory",
    "Memnode",
    "Numatune",
    "Vcpupin",
    "Emulatorpin",
    "MaxMemory",
    "HugePage",
    "Hugepages",
    "Memory",
    "CurrentMemory",
    "MemoryDevice",
    "DomainNuma",
    "validate_distances",
    "read_guest_shape",
    "changes_as_diff",
    "insert_child",
    "insert_children",
    "remove_if_empty",
    "replace_child",
    "remove_child",
]

_YES_NO = {"yes": True, "no": False}

# The order in which libvirt's own formatter writes the children we may create.  The schema
# (domaincommon.rng, cputypes.rng) uses <interleave> for <domain>, <cpu> and <cputune>, so any
# order is valid; following libvirt's keeps a created element where ``virsh dumpxml`` shows it.
_DOMAIN_ORDER = (
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
_CPU_ORDER = ("model", "vendor", "topology", "cache", "maxphysaddr", "feature", "numa")
_CPUTUNE_ORDER = (
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
_MEMORY_BACKING_ORDER = ("hugepages", "nosharepages", "locked", "source", "access", "allocation", "discard")
# The orders above by parent tag, for insert_child.
_CHILD_ORDERS = {
    "domain": _DOMAIN_ORDER,
    "cpu": _CPU_ORDER,
    "cputune": _CPUTUNE_ORDER,
    "memoryBacking": _MEMORY_BACKING_ORDER,
}


# --------------------------------------------------------------------------------------------------
# Small readers shared by the element classes
# --------------------------------------------------------------------------------------------------


def _require_tag(element: Any, tag: str) -> None:
    if element is None or element.tag != tag:
        found = "nothing" if element is None else f"<{element.tag}>"
        raise XmlError(f"expected a <{tag}> element, got {found}")


def _required_int(element: Any, name: str, what: str) -> int:
    value = attr_int(element, name, what)
    if value is None:
        raise XmlError(f"{what}: attribute {name} is missing")
    return value


def _text_int(element: Any, what: str) -> int:
    text = (element.text or "").strip()
    if not text.isdigit() or not text.isascii():
        raise XmlError(f"{what}: {element.text!r} is not a non-negative integer")
    return parse_int(text, f"{what}:", error=XmlError)


def _size_kib(value: str | None, unit: str | None, what: str) -> int:
    """A size in any unit libvirt accepts, in KiB (https://libvirt.org/formatdomain.html#memory-allocation)."""
    text = (value or "").strip()
    if not text.isdigit() or not text.isascii():
        raise XmlError(f"{what}: {value!r} is not a non-negative integer")
    unit = unit if unit is not None else "KiB"
    try:
        # The unit first, on its own: its message names the element as "<memory>: unknown unit ...".
        to_kib(0, unit, what)
    except SpecError as error:
        raise XmlError(error.message) from None
    return size_kib(text, unit, f"{what}:", error=XmlError)


def _cpuset(element: Any, name: str, what: str) -> tuple[int, ...] | None:
    raw = element.get(name)
    if raw is None:
        return None
    try:
        return tuple(sorted(parse_cpuset(raw, f"{what} {name}")))
    except SpecError as error:
        raise XmlError(error.message) from None


def _optional_size_kib(element: Any, what: str) -> int | None:
    return None if element is None else _size_kib(element.text, element.get("unit"), what)


def _text_cpuset(element: Any, what: str) -> tuple[int, ...] | None:
    if element is None or _is_blank(element.text):
        return None
    try:
        return tuple(sorted(parse_cpuset(element.text.strip(), what)))
    except SpecError as error:
        raise XmlError(error.message) from None


def _yes_no(element: Any, name: str, what: str) -> bool | None:
    raw = element.get(name)
    if raw is None:
        return None
    try:
        return _YES_NO[raw.strip()]
    except KeyError:
        raise XmlError(f"{what}: attribute {name}={raw!r} is not yes or no") from None


def _yes_no_text(value: bool) -> str:
    return "yes" if value else "no"


def _ids(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(set(values)))


def _fmt(ids: Iterable[int] | None) -> str | None:
    return None if ids is None else format_cpuset(ids)


@functools.lru_cache(maxsize=1024)
def _pin_text(cpuset: tuple[int, ...]) -> str:
    """``format_cpuset`` of a pin's cpuset: the vCPUs of a cell share one, so each is formatted once."""
    return format_cpuset(cpuset)


def _new(tag: str, attributes: Sequence[tuple[str, object | None]] = (), text: str | None = None) -> Any:
    """A new element with attributes in the given (fixed) order; None values are left out."""
    # One call with an (insertion-ordered) dict: lxml keeps the order and skips a set() per attribute.
    element = etree.Element(tag, {name: str(value) for name, value in attributes if value is not None})
    if text is not None:
        element.text = text
    return element


# What an attribute value must escape to be read back exactly: markup characters, the quote used,
# and the whitespace characters that a parser would otherwise normalise to spaces.
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)


def _markup(tag: str, attributes: Sequence[tuple[str, object | None]], inner: str = "") -> str:
    """The text of the element ``_new(tag, attributes)`` would make, with ``inner`` (markup) inside.

    The repetitive parts of a large layout (a ``<vcpupin>`` per vCPU, a ``<sibling>`` per pair of
    cells) are written as text and parsed in one go (``_parse_markup``): libxml2 builds the elements
    several times faster than one lxml call per element.  The elements are the same, attribute order
    included, so the document serialises to the same bytes.
    """
    parts = [f"<{tag}"]
    for name, value in attributes:
        if value is not None:
            text = value if isinstance(value, int) else str(value).translate(_ATTRIBUTE_ESCAPES)
            parts.append(f' {name}="{text}"')
    parts.append(f">{inner}</{tag}>" if inner else "/>")
    return "".join(parts)


@functools.cache
def _markup_parser() -> Any:
    # Markup written by this module: no DTD, no entity, nothing to fetch; refused all the same.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, collect_ids=False)


def _parse_markup(markup: str) -> Any:
    """The element written as ``markup`` (see ``_markup``)."""
    return etree.fromstring(markup, _markup_parser())


def _parse_markups(markups: Iterable[str]) -> list[Any]:
    """The elements written as ``markups``, parsed together (under a wrapper, then taken out of it)."""
    # Inserting one elsewhere moves it out of the wrapper, its tail too.
    return list(_parse_markup(f"<_>{''.join(markups)}</_>"))


# --------------------------------------------------------------------------------------------------
# Whitespace-preserving tree edits: only what we create is indented, to match its siblings
# --------------------------------------------------------------------------------------------------


def _indent_unit(element: Any) -> str | None:
    """The document's indentation step, or None when it is not pretty-printed (then add no whitespace)."""
    root = element.getroottree().getroot()
    text = root.text
    if text is None or text.strip() or "\n" not in text:
        return None
    return text.rsplit("\n", 1)[1]


def _depth(element: Any) -> int:
    return sum(1 for _ancestor in element.iterancestors())


def _is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


def _format_new(element: Any, depth: int) -> None:
    unit = _indent_unit(element)
    if unit is not None and len(element):
        etree.indent(element, space=unit, level=depth)


def _insert(parent: Any, index: int, child: Any) -> None:
    """Insert ``child`` at ``index`` (0 or more) and indent it like its siblings."""
    _insert_run(parent, index, (child,))


def _insert_run(parent: Any, index: int, children: Sequence[Any]) -> None:
    """Insert ``children`` one after the other from ``index``, each as ``_insert`` would.

    Only the first child's neighbours are read: after it, each next child of the run would find the
    same whitespace around it, so the others all get one tail and go in as one slice (a 1024-vCPU
    guest has 1024 pins).  When the run ends the parent, the last child takes over the closing
    indentation instead, as ``_insert`` hands it on.
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
        if _is_blank(parent.text):
            parent.text = sibling_ws
        first.tail = closing_ws
    elif following is None:
        # Appended after the previous last child, which hands it the closing indentation.
        before_previous = previous.getprevious()
        before_last = parent.text if before_previous is None else before_previous.tail
        first.tail = previous.tail
        previous.tail = before_last if _is_blank(before_last) and before_last else sibling_ws
    else:
        before = parent.text if previous is None else previous.tail
        first.tail = before if _is_blank(before) and before else sibling_ws
    if rest:
        if following is None:
            # At the end: the closing indentation moves on to the last child of the run, and the
            # first one gets the indentation that precedes it, as each next child would give it.
            before = parent.text if previous is None else previous.tail
            run_ws = before if _is_blank(before) and before else sibling_ws
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


def _insert_ordered(parent: Any, child: Any, order: Sequence[str]) -> None:
    """Insert ``child`` after the last sibling that libvirt writes before it (or first)."""
    rank = order.index(child.tag) if child.tag in order else len(order)
    index = 0
    for position, sibling in enumerate(parent):
        if isinstance(sibling.tag, str) and sibling.tag in order and order.index(sibling.tag) <= rank:
            index = position + 1
    _insert(parent, index, child)


def _replace(old: Any, new: Any) -> None:
    """Put ``new`` where ``old`` was, with ``old``'s surrounding whitespace."""
    new.tail = old.tail
    old.getparent().replace(old, new)
    _format_new(new, _depth(new))


def _remove(element: Any) -> None:
    """Remove ``element`` and its tail, keeping the whitespace of what stays."""
    parent = element.getparent()
    previous = element.getprevious()
    tail = element.tail
    if element.getnext() is None:
        # The last child's tail is the parent's closing indentation: hand it to the new last child.
        if previous is not None:
            previous.tail = tail
        elif _is_blank(parent.text) and _is_blank(tail):
            parent.text = None
    elif not _is_blank(tail):
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def insert_child(parent: Any, child: Any, order: Sequence[str] | None = None) -> None:
    """Insert ``child`` into ``parent``, indented like its siblings.

    It goes after the last sibling that ``order`` puts before it (under ``<domain>``, ``<cpu>``,
    ``<cputune>`` and ``<memoryBacking>``: where libvirt writes it), or last when there is no order.
    """
    if order is None:
        order = _CHILD_ORDERS.get(parent.tag, ())
    if order:
        _insert_ordered(parent, child, order)
    else:
        _insert(parent, len(parent), child)


def insert_children(parent: Any, children: Sequence[Any]) -> None:
    """Insert ``children`` one after the other, the first where ``insert_child`` puts it.

    The rest follow it as one run (a guest's ``<vcpupin>``s): one sibling scan, not one per child.
    """
    if not children:
        return
    first, rest = children[0], list(children[1:])
    insert_child(parent, first)
    _insert_run(parent, parent.index(first) + 1, rest)


def remove_if_empty(element: Any) -> None:
    """Remove ``element`` when it holds nothing: no child, no attribute, no text."""
    _remove_if_empty(element)


def replace_child(old: Any, new: Any) -> None:
    """Put ``new`` where ``old`` was, keeping the whitespace around it and indenting ``new``'s inside."""
    _replace(old, new)


def remove_child(element: Any) -> None:
    """Remove ``element`` and leave the whitespace of its siblings tidy."""
    _remove(element)


def _child_or_insert(parent: Any, tag: str, order: Sequence[str]) -> Any:
    """The child ``tag`` of ``parent``, created empty where libvirt writes it when there is none."""
    child = parent.find(tag)
    if child is None:
        child = etree.Element(tag)
        _insert_ordered(parent, child, order)
    return child


def _remove_if_empty(element: Any) -> None:
    if element is not None and len(element) == 0 and _is_blank(element.text) and not element.attrib:
        _remove(element)


# --------------------------------------------------------------------------------------------------
# Differences
# --------------------------------------------------------------------------------------------------


class ChangeKind(Enum):
    """How a running guest takes one change: the one restart rule (issue 9).

    Each element model says its own kind (``KIND``, and ``ITEM_KINDS`` for a value of another kind),
    so the rule depends on which model changed, never on a display path.
    """

    #: taken live by this collection: vCPU pins (``virDomainPinVcpu``), the stored spec (metadata).
    LIVE = "live"
    #: taken live when vCPUs or memory are being added: vCPUs brought online, DIMMs attached.
    HOTPLUG = "hotplug"
    #: differs in a running guest by nature, nothing waits for a boot: the balloon, ``<memory>``
    #: grown by live DIMMs.
    RUNTIME = "runtime"
    #: takes effect at the next boot only.
    NEEDS_BOOT = "needs_boot"

    def waits_for_boot(self, hotplugging: bool) -> bool:
        """Whether a running guest must restart for this change; ``hotplugging``: vCPUs are being added."""
        if self is ChangeKind.HOTPLUG:
            return not hotplugging
        return self is ChangeKind.NEEDS_BOOT

    def pending_in_live(self) -> bool:
        """Whether a difference between a running guest and its definition is waiting for a boot.

        Hot-plugged and runtime values make the running guest differ from its definition by nature;
        anything else (pins included: a pin changed in the definition only) is reported as pending.
        """
        return self is not ChangeKind.HOTPLUG and self is not ChangeKind.RUNTIME


@dataclass(frozen=True)
class Change:
    """One difference between two domains' owned parts, for check mode and diff.

    ``path`` names the value the way the XML does, ``/``-separated from the domain root, with
    attributes as the last step: ``cpu/numa/cell[1]/memory``.  A bracket holds the element's own
    id (cell id, vCPU id, memnode cellid, sibling id), not an XPath position; ``page[i]`` is the
    position of a hugepage size.  Values are plain: integers (sizes in KiB), canonical cpuset
    strings, ``yes``/``no``; None when absent on that side.  ``kind`` is set by the element model
    that lists the value; it is left out of equality (two equal differences are equal whoever
    classified them).
    """

    path: str
    before: object
    after: object
    kind: ChangeKind = field(default=ChangeKind.NEEDS_BOOT, compare=False)

    def __str__(self) -> str:
        return f"{self.path}: {self.before!r} -> {self.after!r}"


def _change(
    path: str,
    before: object,
    after: object,
    kind: ChangeKind = ChangeKind.NEEDS_BOOT,
    _new: Any = object.__new__,
    _cls: type = Change,
) -> Change:
    """``Change(path, before, after, kind)``, built in half the time.

    A frozen dataclass sets each field through ``object.__setattr__``; filling the instance's
    dictionary at once gives an equal, as immutable object (``Change`` has no ``__post_init__``).
    A new 1024-vCPU layout lists over two thousand changes.  (The defaults bind names once, for
    speed: they are not parameters.)
    """
    change = _new(_cls)
    change.__dict__.update(path=path, before=before, after=after, kind=kind)
    return change


def changes_as_diff(changes: Iterable[Change]) -> dict[str, dict[str, object]]:
    """Ansible's ``diff`` form of a change list: ``{"before": {path: value}, "after": {path: value}}``."""
    before: dict[str, object] = {}
    after: dict[str, object] = {}
    for change in changes:
        before[change.path] = change.before
        after[change.path] = change.after
    return {"before": before, "after": after}


_Items = list[tuple[str, object]]


# --------------------------------------------------------------------------------------------------
# <vcpu> and <vcpus>  (https://libvirt.org/formatdomain.html#cpu-allocation)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vcpu:
    """``<vcpu placement cpuset current>N</vcpu>``: N is the maximum, ``current`` those online at boot.

    ``current`` is None when every vCPU is online (libvirt writes the attribute only then); an
    absent ``placement`` is libvirt's ``static``.
    """

    TAG: ClassVar[str] = "vcpu"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT
    # vCPUs online at boot: brought online live when vCPUs are being added.
    ITEM_KINDS: ClassVar[dict[str, ChangeKind]] = {"vcpu/current": ChangeKind.HOTPLUG}

    count: int
    placement: str = "static"
    cpuset: tuple[int, ...] | None = None
    current: int | None = None

    @classmethod
    def from_element(cls, element: Any) -> Vcpu:
        _require_tag(element, cls.TAG)
        count = _text_int(element, "<vcpu>")
        current = attr_int(element, "current", "<vcpu>")
        return cls(
            count=count,
            placement=(element.get("placement") or "static").strip(),
            cpuset=_cpuset(element, "cpuset", "<vcpu>"),
            current=None if current == count else current,
        )

    def to_element(self) -> Any:
        return _new(
            self.TAG,
            (("placement", self.placement), ("cpuset", _fmt(self.cpuset)), ("current", self.current)),
            str(self.count),
        )

    def update(self, element: Any) -> None:
        """Write this model into an existing ``<vcpu>``, keeping its other attributes and their order."""
        element.text = str(self.count)
        for name, value in (("placement", self.placement), ("cpuset", _fmt(self.cpuset)), ("current", self.current)):
            if value is None:
                element.attrib.pop(name, None)
            else:
                element.set(name, str(value))

    def items(self) -> _Items:
        return [
            ("vcpu", self.count),
            ("vcpu/placement", self.placement),
            ("vcpu/cpuset", _fmt(self.cpuset)),
            ("vcpu/current", self.current),
        ]


@dataclass(frozen=True)
class VcpuState:
    """``<vcpus><vcpu id enabled hotpluggable order/>``: one vCPU's boot state."""

    TAG: ClassVar[str] = "vcpu"

    id: int
    enabled: bool
    hotpluggable: bool | None = None
    order: int | None = None

    @classmethod
    def from_element(cls, element: Any) -> VcpuState:
        _require_tag(element, cls.TAG)
        what = "<vcpus><vcpu>"
        enabled = _yes_no(element, "enabled", what)
        if enabled is None:
            raise XmlError(f"{what}: attribute enabled is missing")
        return cls(
            id=_required_int(element, "id", what),
            enabled=enabled,
            hotpluggable=_yes_no(element, "hotpluggable", what),
            order=attr_int(element, "order", what),
        )

    def to_element(self) -> Any:
        return _parse_markup(self.markup())

    def markup(self) -> str:
        hotpluggable = None if self.hotpluggable is None else _yes_no_text(self.hotpluggable)
        return _markup(
            self.TAG,
            (
                ("id", self.id),
                ("enabled", _yes_no_text(self.enabled)),
                ("hotpluggable", hotpluggable),
                ("order", self.order),
            ),
        )

    def items(self) -> _Items:
        prefix = f"vcpus/vcpu[{self.id}]"
        return [
            (f"{prefix}/enabled", _yes_no_text(self.enabled)),
            (f"{prefix}/hotpluggable", None if self.hotpluggable is None else _yes_no_text(self.hotpluggable)),
            (f"{prefix}/order", self.order),
        ]


@dataclass(frozen=True)
class Vcpus:
    """``<vcpus>``: the state of every vCPU, by id."""

    TAG: ClassVar[str] = "vcpus"
    KIND: ClassVar[ChangeKind] = ChangeKind.HOTPLUG

    vcpus: tuple[VcpuState, ...]

    @classmethod
    def from_element(cls, element: Any) -> Vcpus:
        _require_tag(element, cls.TAG)
        states = [VcpuState.from_element(child) for child in element.iterchildren(VcpuState.TAG)]
        return cls(tuple(sorted(states, key=lambda state: state.id)))

    @classmethod
    def from_layout(cls, layout: Layout) -> Vcpus | None:
        """The hotplug state a layout asks for, or None when every vCPU is online at boot.

        Rules (libvirt, https://libvirt.org/formatdomain.html#cpu-allocation): every vCPU is
        listed; the online ones are the first ``current_vcpus`` of the enable order; the online
        vCPUs that form the prefix 0..p-1 of ids are the boot set (``hotpluggable='no'``: QEMU's
        ``-smp`` creates exactly those, and vCPU 0 must be one of them); every other vCPU is
        hot-pluggable, as libvirt requires of disabled ones; ``order`` is the 1-based position in
        the enable order, given for every online vCPU and no offline one, because libvirt wants it
        on all online vCPUs once it is used at all.
        """
        if layout.current_vcpus >= layout.vcpus:
            return None
        _check_enable_order(layout)
        online = set(layout.enable_order[: layout.current_vcpus])
        position = {vcpu: index + 1 for index, vcpu in enumerate(layout.enable_order)}
        prefix = 0
        while prefix in online:
            prefix += 1
        return cls(
            tuple(
                VcpuState(
                    id=vcpu,
                    enabled=vcpu in online,
                    hotpluggable=vcpu >= prefix,
                    order=position[vcpu] if vcpu in online else None,
                )
                for vcpu in range(layout.vcpus)
            )
        )

    def to_element(self) -> Any:
        return _parse_markup(_markup(self.TAG, (), "".join([state.markup() for state in self.vcpus])))

    def items(self) -> _Items:
        return [item for state in self.vcpus for item in state.items()]


def _check_enable_order(layout: Layout) -> None:
    order = layout.enable_order
    if sorted(order) != list(range(layout.vcpus)):
        raise SpecError(f"the vCPU enable order {list(order)} is not a permutation of vCPUs 0-{layout.vcpus - 1}")
    if layout.current_vcpus < 1 or 0 not in order[: layout.current_vcpus]:
        raise SpecError("vCPU 0 must be online at boot (QEMU cannot hot-plug or unplug it)")


# --------------------------------------------------------------------------------------------------
# <cpu><topology> and <cpu><numa>  (https://libvirt.org/formatdomain.html#cpu-model-and-topology)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuTopology:
    """``<cpu><topology sockets dies cores threads/>``; absent ``dies``/``clusters`` are libvirt's 1."""

    TAG: ClassVar[str] = "topology"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    sockets: int
    dies: int
    cores: int
    threads: int
    # libvirt >= 10.1 writes clusters='1' too; 9.0's schema does not know it, so it is written
    # only when it is not 1 (it then came from the domain itself).
    clusters: int = 1

    @classmethod
    def from_element(cls, element: Any) -> CpuTopology:
        _require_tag(element, cls.TAG)
        what = "<cpu><topology>"
        return cls(
            sockets=_required_int(element, "sockets", what),
            dies=attr_int(element, "dies", what, 1),
            cores=_required_int(element, "cores", what),
            threads=_required_int(element, "threads", what),
            clusters=attr_int(element, "clusters", what, 1),
        )

    @property
    def vcpus(self) -> int:
        return self.sockets * self.dies * self.clusters * self.cores * self.threads

    def to_element(self) -> Any:
        clusters = None if self.clusters == 1 else self.clusters
        return _new(
            self.TAG,
            (
                ("sockets", self.sockets),
                ("dies", self.dies),
                ("clusters", clusters),
                ("cores", self.cores),
                ("threads", self.threads),
            ),
        )

    def items(self) -> _Items:
        return [
            ("cpu/topology/sockets", self.sockets),
            ("cpu/topology/dies", self.dies),
            ("cpu/topology/clusters", None if self.clusters == 1 else self.clusters),
            ("cpu/topology/cores", self.cores),
            ("cpu/topology/threads", self.threads),
        ]


@dataclass(frozen=True)
class Sibling:
    """``<distances><sibling id value/>``: the distance from the enclosing cell to cell ``id``."""

    TAG: ClassVar[str] = "sibling"

    id: int
    value: int

    @classmethod
    def from_element(cls, element: Any) -> Sibling:
        _require_tag(element, cls.TAG)
        what = "<distances><sibling>"
        return cls(id=_required_int(element, "id", what), value=_required_int(element, "value", what))

    def to_element(self) -> Any:
        return _new(self.TAG, (("id", self.id), ("value", self.value)))

    def markup(self) -> str:
        if isinstance(self.id, int) and isinstance(self.value, int):
            # Written out rather than through _markup: there is one per pair of cells (256 for 16 cells).
            return f'<sibling id="{self.id}" value="{self.value}"/>'
        return _markup(self.TAG, (("id", self.id), ("value", self.value)))


@dataclass(frozen=True)
class NumaCell:
    """``<cell id cpus memory unit memAccess discard>`` with its ``<distances>``.

    ``cpus`` is empty for a CPU-less cell (libvirt then has no ``cpus`` attribute); ``memory_kib``
    is in KiB whatever unit the domain used.
    """

    TAG: ClassVar[str] = "cell"

    id: int
    cpus: tuple[int, ...]
    memory_kib: int
    mem_access: str | None = None
    discard: bool | None = None
    distances: tuple[Sibling, ...] = ()

    @classmethod
    def from_element(cls, element: Any, position: int = 0) -> NumaCell:
        """Read a cell; ``position`` is its id when the cell has none (libvirt numbers them in order)."""
        _require_tag(element, cls.TAG)
        cell_id = attr_int(element, "id", "<numa><cell>", position)
        what = f"<numa><cell id='{cell_id}'>"
        memory = element.get("memory")
        if memory is None:
            raise XmlError(f"{what}: attribute memory is missing")
        siblings = [Sibling.from_element(child) for child in element.iterfind("distances/sibling")]
        return cls(
            id=cell_id,
            cpus=_cpuset(element, "cpus", what) or (),
            memory_kib=_size_kib(memory, element.get("unit"), f"{what} memory"),
            mem_access=element.get("memAccess"),
            discard=_yes_no(element, "discard", what),
            distances=tuple(sorted(siblings, key=lambda sibling: sibling.id)),
        )

    def to_element(self) -> Any:
        return _parse_markup(self.markup())

    def markup(self) -> str:
        """The cell with its distances as text (see ``_markup``)."""
        discard = None if self.discard is None else _yes_no_text(self.discard)
        distances = ""
        if self.distances:
            distances = _markup("distances", (), "".join([sibling.markup() for sibling in self.distances]))
        return _markup(
            self.TAG,
            (
                ("id", self.id),
                ("cpus", format_cpuset(self.cpus) if self.cpus else None),
                ("memory", self.memory_kib),
                ("unit", "KiB"),
                ("memAccess", self.mem_access),
                ("discard", discard),
            ),
            distances,
        )

    def items(self) -> _Items:
        prefix = f"cpu/numa/cell[{self.id}]"
        items: _Items = [
            (f"{prefix}/cpus", format_cpuset(self.cpus) if self.cpus else None),
            (f"{prefix}/memory", self.memory_kib),
            (f"{prefix}/memAccess", self.mem_access),
            (f"{prefix}/discard", None if self.discard is None else _yes_no_text(self.discard)),
        ]
        items.extend((f"{prefix}/distances/sibling[{sibling.id}]", sibling.value) for sibling in self.distances)
        return items


@dataclass(frozen=True)
class Numa:
    """``<cpu><numa>``: the guest cells, ascending by id."""

    TAG: ClassVar[str] = "numa"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    cells: tuple[NumaCell, ...]

    @classmethod
    def from_element(cls, element: Any) -> Numa:
        _require_tag(element, cls.TAG)
        cells = [NumaCell.from_element(child, position) for position, child in enumerate(element.iterchildren("cell"))]
        return cls(tuple(sorted(cells, key=lambda cell: cell.id)))

    def validate(self, vcpus: int | None = None) -> None:
        """What libvirt checks of the cells, and the distance rules it crashes on (see validate_distances)."""
        ids = [cell.id for cell in self.cells]
        if ids != list(range(len(ids))):
            raise SpecError(f"guest cell ids {ids} must be 0..{len(ids) - 1} in order")
        owner: dict[int, int] = {}
        for cell in self.cells:
            for vcpu in cell.cpus:
                if vcpu in owner:
                    raise SpecError(f"vCPU {vcpu} is in guest cells {owner[vcpu]} and {cell.id}")
                if vcpus is not None and vcpu >= vcpus:
                    raise SpecError(f"guest cell {cell.id} names vCPU {vcpu}, but the guest has {vcpus} vCPUs")
                owner[vcpu] = cell.id
        with_distances = [cell for cell in self.cells if cell.distances]
        if not with_distances:
            return
        if len(with_distances) != len(self.cells):
            raise SpecError("either every guest cell has <distances> or none has")
        matrix: list[list[int]] = []
        for cell in self.cells:
            row = {sibling.id: sibling.value for sibling in cell.distances}
            if sorted(row) != ids or len(row) != len(cell.distances):
                raise SpecError(
                    f"guest cell {cell.id} has distances to cells {[s.id for s in cell.distances]}, "
                    f"it needs exactly one to each of {ids}"
                )
            matrix.append([row[other] for other in ids])
        validate_distances(matrix)

    def to_element(self) -> Any:
        self.validate()
        return self.unchecked_element()

    def unchecked_element(self) -> Any:
        """``to_element`` without the checks, for a caller that has just made them (``DomainNuma.apply``)."""
        return _parse_markup(_markup(self.TAG, (), "".join([cell.markup() for cell in self.cells])))

    def items(self) -> _Items:
        return [item for cell in self.cells for item in cell.items()]


# --------------------------------------------------------------------------------------------------
# <numatune>  (https://libvirt.org/formatdomain.html#numa-node-tuning)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumatuneMemory:
    """``<numatune><memory mode nodeset placement/>``.

    An absent mode is libvirt's ``strict``; ``placement='static'`` is what a nodeset already
    means and libvirt never writes it back, so it reads as None.
    """

    TAG: ClassVar[str] = "memory"

    mode: str = "strict"
    nodeset: tuple[int, ...] | None = None
    placement: str | None = None

    @classmethod
    def from_element(cls, element: Any) -> NumatuneMemory:
        _require_tag(element, cls.TAG)
        placement = element.get("placement")
        return cls(
            mode=element.get("mode") or "strict",
            nodeset=_cpuset(element, "nodeset", "<numatune><memory>"),
            placement=None if placement == "static" else placement,
        )

    def to_element(self) -> Any:
        return _parse_markup(self.markup())

    def markup(self) -> str:
        return _markup(self.TAG, (("mode", self.mode), ("nodeset", _fmt(self.nodeset)), ("placement", self.placement)))

    def items(self) -> _Items:
        return [
            ("numatune/memory/mode", self.mode),
            ("numatune/memory/nodeset", _fmt(self.nodeset)),
            ("numatune/memory/placement", self.placement),
        ]


@dataclass(frozen=True)
class Memnode:
    """``<numatune><memnode cellid mode nodeset/>``: where one guest cell's memory lives."""

    TAG: ClassVar[str] = "memnode"

    cellid: int
    mode: str
    nodeset: tuple[int, ...]

    @classmethod
    def from_element(cls, element: Any) -> Memnode:
        _require_tag(element, cls.TAG)
        what = "<numatune><memnode>"
        cellid = _required_int(element, "cellid", what)
        nodeset = _cpuset(element, "nodeset", f"<numatune><memnode cellid='{cellid}'>")
        if nodeset is None:
            raise XmlError(f"<numatune><memnode cellid='{cellid}'>: attribute nodeset is missing")
        return cls(cellid=cellid, mode=element.get("mode") or "strict", nodeset=nodeset)

    def to_element(self) -> Any:
        return _parse_markup(self.markup())

    def markup(self) -> str:
        return _markup(
            self.TAG, (("cellid", self.cellid), ("mode", self.mode), ("nodeset", format_cpuset(self.nodeset)))
        )

    def items(self) -> _Items:
        prefix = f"numatune/memnode[{self.cellid}]"
        return [(f"{prefix}/mode", self.mode), (f"{prefix}/nodeset", format_cpuset(self.nodeset))]


@dataclass(frozen=True)
class Numatune:
    """``<numatune>``: the guest-wide memory policy and one ``<memnode>`` per cell."""

    TAG: ClassVar[str] = "numatune"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    memory: NumatuneMemory | None = None
    memnodes: tuple[Memnode, ...] = ()

    @classmethod
    def from_element(cls, element: Any) -> Numatune:
        _require_tag(element, cls.TAG)
        memory = element.find(NumatuneMemory.TAG)
        memnodes = [Memnode.from_element(child) for child in element.iterchildren(Memnode.TAG)]
        return cls(
            memory=None if memory is None else NumatuneMemory.from_element(memory),
            memnodes=tuple(sorted(memnodes, key=lambda memnode: memnode.cellid)),
        )

    def to_element(self) -> Any:
        memory = "" if self.memory is None else self.memory.markup()
        memnodes = "".join([memnode.markup() for memnode in self.memnodes])
        return _parse_markup(_markup(self.TAG, (), memory + memnodes))

    def items(self) -> _Items:
        items = [] if self.memory is None else self.memory.items()
        return items + [item for memnode in self.memnodes for item in memnode.items()]


# --------------------------------------------------------------------------------------------------
# <cputune> pins  (https://libvirt.org/formatdomain.html#cpu-tuning)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vcpupin:
    """``<cputune><vcpupin vcpu cpuset/>``."""

    TAG: ClassVar[str] = "vcpupin"
    KIND: ClassVar[ChangeKind] = ChangeKind.LIVE

    vcpu: int
    cpuset: tuple[int, ...]

    @classmethod
    def from_element(cls, element: Any) -> Vcpupin:
        _require_tag(element, cls.TAG)
        vcpu = _required_int(element, "vcpu", "<cputune><vcpupin>")
        cpuset = _cpuset(element, "cpuset", f"<cputune><vcpupin vcpu='{vcpu}'>")
        if cpuset is None:
            raise XmlError(f"<cputune><vcpupin vcpu='{vcpu}'>: attribute cpuset is missing")
        return cls(vcpu=vcpu, cpuset=cpuset)

    def to_element(self) -> Any:
        return _new(self.TAG, (("vcpu", self.vcpu), ("cpuset", _pin_text(self.cpuset))))

    def markup(self, cpuset_text: str | None = None) -> str:
        """The pin as text; ``cpuset_text`` is its cpuset's text when the caller has it already."""
        if cpuset_text is None:
            cpuset_text = _pin_text(self.cpuset)
        if isinstance(self.vcpu, int):
            # Written out rather than through _markup: there is one per vCPU.  A cpuset text is
            # digits, ',' and '-', nothing to escape.
            return f'<vcpupin vcpu="{self.vcpu}" cpuset="{cpuset_text}"/>'
        return _markup(self.TAG, (("vcpu", self.vcpu), ("cpuset", cpuset_text)))

    def items(self, cpuset_text: str | None = None) -> _Items:
        return [(f"cputune/vcpupin[{self.vcpu}]", _pin_text(self.cpuset) if cpuset_text is None else cpuset_text)]


def _pin_texts(pins: Sequence[Vcpupin]) -> list[str]:
    """``_pin_text`` of each pin's cpuset.

    The pins of one cell share one cpuset tuple (``DomainNuma.from_layout`` makes them so): a run of
    pins with the same tuple takes its text once, instead of hashing the tuple again for each vCPU.
    """
    texts: list[str] = []
    last: tuple[int, ...] | None = None
    text = ""
    for pin in pins:
        if pin.cpuset is not last:
            last = pin.cpuset
            text = _pin_text(last)
        texts.append(text)
    return texts


@dataclass(frozen=True)
class Emulatorpin:
    """``<cputune><emulatorpin cpuset/>``: where QEMU's own threads run."""

    TAG: ClassVar[str] = "emulatorpin"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    cpuset: tuple[int, ...]

    @classmethod
    def from_element(cls, element: Any) -> Emulatorpin:
        _require_tag(element, cls.TAG)
        cpuset = _cpuset(element, "cpuset", "<cputune><emulatorpin>")
        if cpuset is None:
            raise XmlError("<cputune><emulatorpin>: attribute cpuset is missing")
        return cls(cpuset)

    def to_element(self) -> Any:
        return _new(self.TAG, (("cpuset", format_cpuset(self.cpuset)),))

    def items(self) -> _Items:
        return [("cputune/emulatorpin", format_cpuset(self.cpuset))]


# --------------------------------------------------------------------------------------------------
# Memory: <maxMemory>, <memoryBacking><hugepages>, <memory>, <currentMemory>, memory devices
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaxMemory:
    """``<maxMemory slots unit>``: the memory hotplug ceiling (https://libvirt.org/formatdomain.html#memory-allocation)."""

    TAG: ClassVar[str] = "maxMemory"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    kib: int
    slots: int | None = None

    @classmethod
    def from_element(cls, element: Any) -> MaxMemory:
        _require_tag(element, cls.TAG)
        return cls(
            kib=_size_kib(element.text, element.get("unit"), "<maxMemory>"),
            slots=attr_int(element, "slots", "<maxMemory>"),
        )

    def to_element(self) -> Any:
        return _new(self.TAG, (("slots", self.slots), ("unit", "KiB")), str(self.kib))

    def items(self) -> _Items:
        return [("maxMemory", self.kib), ("maxMemory/slots", self.slots)]


@dataclass(frozen=True)
class HugePage:
    """``<hugepages><page size unit nodeset/>`` (https://libvirt.org/formatdomain.html#memory-backing)."""

    TAG: ClassVar[str] = "page"

    size_kib: int
    nodeset: tuple[int, ...] | None = None

    @classmethod
    def from_element(cls, element: Any) -> HugePage:
        _require_tag(element, cls.TAG)
        size = element.get("size")
        if size is None:
            raise XmlError("<hugepages><page>: attribute size is missing")
        return cls(
            size_kib=_size_kib(size, element.get("unit"), "<hugepages><page> size"),
            nodeset=_cpuset(element, "nodeset", "<hugepages><page>"),
        )

    def to_element(self) -> Any:
        return _new(self.TAG, (("size", self.size_kib), ("unit", "KiB"), ("nodeset", _fmt(self.nodeset))))


@dataclass(frozen=True)
class Hugepages:
    """``<memoryBacking><hugepages>``; no pages means the host's default huge page size for all cells."""

    TAG: ClassVar[str] = "hugepages"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    pages: tuple[HugePage, ...] = ()

    @classmethod
    def from_element(cls, element: Any) -> Hugepages:
        _require_tag(element, cls.TAG)
        return cls(tuple(HugePage.from_element(child) for child in element.iterchildren(HugePage.TAG)))

    def to_element(self) -> Any:
        element = _new(self.TAG)
        for page in self.pages:
            element.append(page.to_element())
        return element

    def items(self) -> _Items:
        if not self.pages:
            return [("memoryBacking/hugepages", "default size")]
        items: _Items = []
        for index, page in enumerate(self.pages):
            items.append((f"memoryBacking/hugepages/page[{index}]/size", page.size_kib))
            items.append((f"memoryBacking/hugepages/page[{index}]/nodeset", _fmt(page.nodeset)))
        return items


@dataclass(frozen=True)
class Memory:
    """``<memory unit>``: the guest's memory in KiB, hot-plugged memory devices included."""

    TAG: ClassVar[str] = "memory"
    # The balloon and live DIMMs make a running guest report other sizes: nothing waits for a boot.
    KIND: ClassVar[ChangeKind] = ChangeKind.RUNTIME

    kib: int

    @classmethod
    def from_element(cls, element: Any) -> Memory:
        _require_tag(element, cls.TAG)
        return cls(_size_kib(element.text, element.get("unit"), f"<{cls.TAG}>"))

    def to_element(self) -> Any:
        return _new(self.TAG, (("unit", "KiB"),), str(self.kib))

    def update(self, element: Any) -> None:
        """Write the size into an existing element, keeping its other attributes (``dumpCore``)."""
        element.text = str(self.kib)
        element.set("unit", "KiB")


@dataclass(frozen=True)
class CurrentMemory(Memory):
    """``<currentMemory unit>``: the balloon target at boot."""

    TAG: ClassVar[str] = "currentMemory"


@dataclass(frozen=True)
class MemoryDevice:
    """A ``<devices><memory>`` (DIMM, NVDIMM, virtio-mem...), read only here.

    ``index`` is its position among the domain's memory devices; ``node`` its ``<target><node>``.
    (https://libvirt.org/formatdomain.html#memory-devices)
    """

    TAG: ClassVar[str] = "memory"

    index: int
    model: str | None
    size_kib: int
    node: int | None = None
    # <source><nodemask>: the host nodes backing it; None when it follows its cell's <memnode>.
    nodemask: tuple[int, ...] | None = None
    # <source><pagesize>: the page size backing it; None when it follows its cell's <hugepages>.
    pagesize_kib: int | None = None

    @classmethod
    def from_element(cls, element: Any, index: int = 0) -> MemoryDevice:
        _require_tag(element, cls.TAG)
        model = element.get("model")
        what = f"memory device {index} (model {model})"
        size = element.find("target/size")
        if size is None:
            raise XmlError(f"{what}: <target><size> is missing")
        node = element.find("target/node")
        return cls(
            index=index,
            model=model,
            size_kib=_size_kib(size.text, size.get("unit"), f"{what} <target><size>"),
            node=None if node is None else _text_int(node, f"{what} <target><node>"),
            nodemask=_text_cpuset(element.find("source/nodemask"), f"{what} <source><nodemask>"),
            pagesize_kib=_optional_size_kib(element.find("source/pagesize"), f"{what} <source><pagesize>"),
        )


# --------------------------------------------------------------------------------------------------
# The aggregate
# --------------------------------------------------------------------------------------------------


def _memory_devices(root: Any) -> tuple[MemoryDevice, ...]:
    return tuple(
        MemoryDevice.from_element(element, index) for index, element in enumerate(root.iterfind("devices/memory"))
    )


def _find_parse(root: Any, path: str, kind: Any) -> Any:
    element = root.find(path)
    return None if element is None else kind.from_element(element)


@dataclass(frozen=True)
class DomainNuma:
    """The parts of one domain the collection owns, as models.

    ``memory_devices`` are read for the arithmetic of ``<memory>`` and the cell-count check but
    are never written (hot-plugging them is the libvirt layer's business).
    """

    vcpu: Vcpu | None = None
    vcpus: Vcpus | None = None
    topology: CpuTopology | None = None
    numa: Numa | None = None
    numatune: Numatune | None = None
    vcpupins: tuple[Vcpupin, ...] = ()
    emulatorpin: Emulatorpin | None = None
    max_memory: MaxMemory | None = None
    hugepages: Hugepages | None = None
    memory_kib: int | None = None
    # None only when <memory> is absent too: an absent <currentMemory> is libvirt's "same as <memory>".
    current_memory_kib: int | None = None
    memory_devices: tuple[MemoryDevice, ...] = field(default=(), compare=False)

    # ----------------------------------------------------------------------------------- reading

    @classmethod
    def from_domain(cls, root: Any) -> DomainNuma:
        """Read the owned parts of any domain, hand-written ones included."""
        _require_tag(root, "domain")
        memory = _find_parse(root, Memory.TAG, Memory)
        current = _find_parse(root, CurrentMemory.TAG, CurrentMemory)
        pins = [Vcpupin.from_element(element) for element in root.iterfind("cputune/vcpupin")]
        memory_kib = None if memory is None else memory.kib
        return cls(
            vcpu=_find_parse(root, Vcpu.TAG, Vcpu),
            vcpus=_find_parse(root, Vcpus.TAG, Vcpus),
            topology=_find_parse(root, "cpu/topology", CpuTopology),
            numa=_find_parse(root, "cpu/numa", Numa),
            numatune=_find_parse(root, Numatune.TAG, Numatune),
            vcpupins=tuple(sorted(pins, key=lambda pin: pin.vcpu)),
            emulatorpin=_find_parse(root, "cputune/emulatorpin", Emulatorpin),
            max_memory=_find_parse(root, MaxMemory.TAG, MaxMemory),
            hugepages=_find_parse(root, "memoryBacking/hugepages", Hugepages),
            memory_kib=memory_kib,
            current_memory_kib=memory_kib if current is None else current.kib,
            memory_devices=_memory_devices(root),
        )

    @property
    def device_memory_kib(self) -> int:
        """Memory held by memory devices, which libvirt counts in ``<memory>``."""
        return sum(device.size_kib for device in self.memory_devices)

    # ----------------------------------------------------------------------------------- target

    @classmethod
    def from_layout(cls, layout: Layout, current: DomainNuma) -> DomainNuma:
        """What the owned parts of the domain read as ``current`` must become under ``layout``."""
        cell_count = len(layout.cells)
        vcpu = Vcpu(
            count=layout.vcpus,
            # numad's advisory nodeset (placement='auto') would override the static <numatune> we write.
            placement="static",
            # A user's default cpuset stays: vcpupin and emulatorpin override it where they exist.
            cpuset=None if current.vcpu is None else current.vcpu.cpuset,
            # libvirt writes current only when some vCPUs are offline at boot.
            current=layout.current_vcpus if layout.current_vcpus < layout.vcpus else None,
        )
        previous_cells = {cell.id: cell for cell in current.numa.cells} if current.numa is not None else {}
        cells = []
        for cell in layout.cells:
            before = previous_cells.get(cell.id)
            cells.append(
                NumaCell(
                    id=cell.id,
                    cpus=_ids(cell.vcpus),
                    memory_kib=cell.memory_kib,
                    # memAccess/discard describe how the user backs that cell; keep them per cell id.
                    mem_access=None if before is None else before.mem_access,
                    discard=None if before is None else before.discard,
                    # One cell has nothing to be distant from: <distances> only with 2+ cells.
                    distances=(
                        tuple(Sibling(other, value) for other, value in enumerate(cell.distances))
                        if cell_count > 1
                        else ()
                    ),
                )
            )
        # <numatune>: the guest-wide <memory> over the selected host nodes, and one <memnode> per
        # cell in the spec's memory mode (https://libvirt.org/formatdomain.html#numa-node-tuning).
        memnodes = []
        for cell in layout.cells:
            if not cell.memory_nodes:
                raise SpecError(f"guest cell {cell.id} has no host node for its memory")
            memnodes.append(Memnode(cellid=cell.id, mode=layout.spec.memory_mode, nodeset=_ids(cell.memory_nodes)))
        if not layout.numatune_nodes:
            raise SpecError("the guest's memory is bound to no host node")
        numatune = Numatune(
            memory=NumatuneMemory(mode=layout.numatune_mode, nodeset=_ids(layout.numatune_nodes)),
            memnodes=tuple(memnodes),
        )
        # Pinning 'none' removes existing vcpupins: they would contradict the new cells.
        vcpupins: tuple[Vcpupin, ...] = ()
        if layout.vcpu_pins is not None:
            # The vCPUs of one cell float over one cpuset: sort each distinct cpuset once.  The
            # partitioner hands the vCPUs of a cell the same tuple, so a run of it is not even hashed
            # again (a cpuset of a large node has dozens of CPUs).
            cpusets: dict[tuple[int, ...], tuple[int, ...]] = {}
            pins: list[Vcpupin] = []
            last: tuple[int, ...] | None = None
            cpuset: tuple[int, ...] = ()
            for index, cpus in enumerate(layout.vcpu_pins):
                if cpus is not last:
                    last = cpus
                    cpuset = cpusets[cpus] if cpus in cpusets else cpusets.setdefault(cpus, _ids(cpus))
                pins.append(Vcpupin(index, cpuset))
            vcpupins = tuple(pins)
        # <emulatorpin> is only touched when the spec pins the emulator.
        emulatorpin = (
            Emulatorpin(_ids(layout.emulator_pins)) if layout.emulator_pins is not None else current.emulatorpin
        )
        # Huge pages and the hotplug ceiling only when the spec asks; otherwise the user's stay as written.
        hugepages = current.hugepages
        if layout.hugepages_kib is not None:
            hugepages = Hugepages((HugePage(size_kib=layout.hugepages_kib, nodeset=tuple(range(cell_count))),))
        max_memory = current.max_memory
        if layout.max_memory_kib is not None:
            max_memory = MaxMemory(kib=layout.max_memory_kib, slots=layout.memory_slots)
        # libvirt's <memory> counts the memory devices on top of the cells.
        memory_kib = layout.memory_kib + current.device_memory_kib
        # With no balloon (currentMemory == memory) the balloon target follows the new size;
        # a deliberate balloon target is kept (libvirt clamps it to <memory> if it is larger).
        if current.current_memory_kib is None or current.current_memory_kib == current.memory_kib:
            current_memory_kib = memory_kib
        else:
            current_memory_kib = current.current_memory_kib
        target = cls(
            vcpu=vcpu,
            vcpus=Vcpus.from_layout(layout),
            topology=CpuTopology(
                sockets=layout.topology.sockets,
                dies=layout.topology.dies,
                cores=layout.topology.cores,
                threads=layout.topology.threads,
            ),
            numa=Numa(tuple(cells)),
            numatune=numatune,
            vcpupins=vcpupins,
            emulatorpin=emulatorpin,
            max_memory=max_memory,
            hugepages=hugepages,
            memory_kib=memory_kib,
            current_memory_kib=current_memory_kib,
            memory_devices=current.memory_devices,
        )
        target.validate()
        return target

    # ----------------------------------------------------------------------------------- checks

    def validate(self) -> None:
        """Everything libvirt would refuse in these parts, checked before a single element is written."""
        vcpus = None if self.vcpu is None else self.vcpu.count
        if self.numa is not None:
            self.numa.validate(vcpus)
        if self.topology is not None and vcpus is not None and self.topology.vcpus != vcpus:
            raise SpecError(
                f"<cpu><topology> gives {self.topology.vcpus} vCPUs (sockets x dies x cores x threads), "
                f"<vcpu> says {vcpus}"
            )
        if vcpus is not None:
            for pin in self.vcpupins:
                if pin.vcpu >= vcpus:
                    raise SpecError(f"<vcpupin> for vCPU {pin.vcpu}, but the guest has {vcpus} vCPUs")
        cell_count = 0 if self.numa is None else len(self.numa.cells)
        for device in self.memory_devices:
            if device.node is not None and device.node >= cell_count:
                cells = f"{cell_count} cells (0-{cell_count - 1})" if cell_count else "no cells"
                raise SpecError(
                    f"memory device {device.index} ({device.model}) targets guest cell {device.node}, "
                    f"but the new layout has {cells}; detach it or choose at least {device.node + 1} cells"
                )
        if self.hugepages is not None and self.numa is not None:
            for page in self.hugepages.pages:
                beyond = [node for node in page.nodeset or () if node >= cell_count]
                if beyond:
                    raise SpecError(
                        f"<hugepages><page size='{page.size_kib}' nodeset='{format_cpuset(page.nodeset or ())}'> "
                        f"names guest cells {format_cpuset(beyond)}, but the layout has {cell_count} cells; "
                        "set hugepages in the vnuma spec or fix the page nodeset"
                    )
        if self.max_memory is not None and self.memory_kib is not None and self.max_memory.kib < self.memory_kib:
            raise SpecError(f"<maxMemory> {self.max_memory.kib} KiB is below the guest's memory {self.memory_kib} KiB")
        if self.vcpus is not None and vcpus is not None and [s.id for s in self.vcpus.vcpus] != list(range(vcpus)):
            raise SpecError(f"<vcpus> must list vCPUs 0-{vcpus - 1} once each")

    # ----------------------------------------------------------------------------------- compare

    def _sections(self) -> list[tuple[object, Callable[[], _Items], type]]:
        """The owned parts in domain order: each as a value, how to list it path by path, and its model.

        The model class says each value's ``ChangeKind`` (``KIND``, ``ITEM_KINDS``).
        """

        def of(part: Any, model: type) -> tuple[object, Callable[[], _Items], type]:
            return part, (list if part is None else part.items), model

        return [
            of(self.vcpu, Vcpu),
            of(self.vcpus, Vcpus),
            of(self.topology, CpuTopology),
            of(self.numa, Numa),
            of(self.numatune, Numatune),
            (
                self.vcpupins,
                lambda: [
                    item
                    for pin, text in zip(self.vcpupins, _pin_texts(self.vcpupins), strict=True)
                    for item in pin.items(text)
                ],
                Vcpupin,
            ),
            of(self.emulatorpin, Emulatorpin),
            of(self.max_memory, MaxMemory),
            of(self.hugepages, Hugepages),
            (
                (self.memory_kib, self.current_memory_kib),
                lambda: [("memory", self.memory_kib), ("currentMemory", self.current_memory_kib)],
                Memory,
            ),
        ]

    def changes(self, other: DomainNuma) -> list[Change]:
        """What changes from this domain (before) to ``other`` (after), value by value, in domain order."""
        result: list[Change] = []
        for (mine, my_items, model), (theirs, their_items, _model) in zip(
            self._sections(), other._sections(), strict=True
        ):
            if mine == theirs:
                # Equal parts list equal values: nothing to compare path by path (a rerun's case;
                # a 1024-vCPU guest has over a thousand paths).
                continue
            kind: ChangeKind = model.KIND
            item_kinds: dict[str, ChangeKind] = getattr(model, "ITEM_KINDS", {})
            before = {path: value for path, value in my_items() if value is not None}
            after = {path: value for path, value in their_items() if value is not None}
            # The paths of before in their order, then those only after has (None: absent).
            for path, value in before.items():
                new = after.get(path)
                if value != new:
                    result.append(_change(path, value, new, item_kinds.get(path, kind)))
            result.extend(
                [
                    _change(path, None, value, item_kinds.get(path, kind))
                    for path, value in after.items()
                    if path not in before
                ]
            )
        return result

    # ----------------------------------------------------------------------------------- writing

    def apply(self, root: Any) -> None:
        """Make the owned parts of ``root`` equal to this model, in place; nothing else is touched.

        Everything is checked first (this model, and the domain's memory devices, cell caches and
        interconnects against the new cells), so a refusal leaves ``root`` exactly as it was.
        """
        _require_tag(root, "domain")
        target = replace(self, memory_devices=_memory_devices(root))
        target.validate()
        carried = _carried_numa_parts(root, target.numa)

        self._apply_memory(root)
        self._apply_vcpu(root)
        self._apply_cpu(root, carried)
        self._apply_numatune(root)
        self._apply_cputune(root)

    def _apply_memory(self, root: Any) -> None:
        if self.max_memory is None:
            _remove_child(root, MaxMemory.TAG)
        else:
            _put(root, self.max_memory, _DOMAIN_ORDER)
        if self.memory_kib is not None:
            element = _child_or_insert(root, Memory.TAG, _DOMAIN_ORDER)
            if element.text is None or Memory.from_element(element).kib != self.memory_kib:
                Memory(self.memory_kib).update(element)
        current = root.find(CurrentMemory.TAG)
        if self.current_memory_kib is not None:
            if current is not None:
                if CurrentMemory.from_element(current).kib != self.current_memory_kib:
                    CurrentMemory(self.current_memory_kib).update(current)
            elif self.current_memory_kib != self.memory_kib:
                _insert_ordered(root, CurrentMemory(self.current_memory_kib).to_element(), _DOMAIN_ORDER)
        backing = root.find("memoryBacking")
        if self.hugepages is None:
            if backing is not None and backing.find(Hugepages.TAG) is not None:
                _remove(backing.find(Hugepages.TAG))
                _remove_if_empty(backing)
        else:
            backing = _child_or_insert(root, "memoryBacking", _DOMAIN_ORDER)
            _put(backing, self.hugepages, _MEMORY_BACKING_ORDER)

    def _apply_vcpu(self, root: Any) -> None:
        if self.vcpu is not None:
            element = root.find(Vcpu.TAG)
            if element is None:
                _insert_ordered(root, self.vcpu.to_element(), _DOMAIN_ORDER)
            elif Vcpu.from_element(element) != self.vcpu:
                self.vcpu.update(element)
        if self.vcpus is None:
            _remove_child(root, Vcpus.TAG)
        else:
            _put(root, self.vcpus, _DOMAIN_ORDER)

    def _apply_cpu(self, root: Any, carried: tuple[dict[int, list[Any]], Any]) -> None:
        cpu = root.find("cpu")
        if cpu is None and self.topology is None and self.numa is None:
            return
        if cpu is None:
            # A bare <cpu> (no mode) is valid and keeps the hypervisor's default CPU model.
            cpu = _child_or_insert(root, "cpu", _DOMAIN_ORDER)
        if self.topology is None:
            _remove_child(cpu, CpuTopology.TAG)
        else:
            _put(cpu, self.topology, _CPU_ORDER)
        if self.numa is None:
            _remove_child(cpu, Numa.TAG)
        else:
            # apply() has validated the whole model, these cells included.
            numa = self.numa.unchecked_element()
            caches, interconnects = carried
            for cell in numa.iterchildren(NumaCell.TAG):
                for cache in caches.get(int(cell.get("id")), ()):
                    cell.append(cache)
            if interconnects is not None:
                numa.append(interconnects)
            _put(cpu, self.numa, _CPU_ORDER, numa)
        _remove_if_empty(cpu)

    def _apply_numatune(self, root: Any) -> None:
        if self.numatune is None:
            _remove_child(root, Numatune.TAG)
        else:
            _put(root, self.numatune, _DOMAIN_ORDER)

    def _apply_cputune(self, root: Any) -> None:
        cputune = root.find("cputune")
        created = cputune is None
        if created:
            if not self.vcpupins and self.emulatorpin is None:
                return
            cputune = etree.Element("cputune")
            _insert_ordered(root, cputune, _DOMAIN_ORDER)
        old_pins = list(cputune.iterchildren(Vcpupin.TAG))
        if [Vcpupin.from_element(pin) for pin in old_pins] != list(self.vcpupins):
            anchor = cputune.index(old_pins[0]) if old_pins else None
            for pin in old_pins:
                _remove(pin)
            texts = _pin_texts(self.vcpupins)
            new_pins = _parse_markups([pin.markup(text) for pin, text in zip(self.vcpupins, texts, strict=True)])
            if anchor is None and new_pins:
                # The first pin goes where libvirt writes pins; each next one right after the one
                # before, where _insert_ordered would put it too, without scanning every sibling.
                first = new_pins.pop(0)
                _insert_ordered(cputune, first, _CPUTUNE_ORDER)
                anchor = cputune.index(first) + 1
            _insert_run(cputune, anchor, new_pins)
        if self.emulatorpin is None:
            _remove_child(cputune, Emulatorpin.TAG)
        else:
            _put(cputune, self.emulatorpin, _CPUTUNE_ORDER)
        # An emptied <cputune> carries nothing: drop it, whether we created it or the user did.
        _remove_if_empty(cputune)


def _remove_child(parent: Any, tag: str) -> None:
    for child in parent.findall(tag):
        _remove(child)


def _put(parent: Any, model: Any, order: Sequence[str], element: Any = None) -> None:
    """Make ``parent``'s child of ``model``'s kind equal to ``model``.

    A child that already reads as ``model`` is left exactly as written (its units, its spelling);
    otherwise it is replaced in place by ``element`` (default ``model.to_element()``), or inserted
    where libvirt writes it.
    """
    existing = parent.findall(model.TAG)
    for extra in existing[1:]:
        _remove(extra)
    if existing and type(model).from_element(existing[0]) == model:
        return
    if element is None:
        element = model.to_element()
    if existing:
        _replace(existing[0], element)
    else:
        _insert_ordered(parent, element, order)


def _carried_numa_parts(root: Any, numa: Numa | None) -> tuple[dict[int, list[Any]], Any]:
    """HMAT data of the old ``<numa>`` (cell ``<cache>``s, ``<interconnects>``) that stays valid.

    Caches stay with the cell of the same id; interconnects stay when every cell they name still
    exists, and are an error otherwise (rewriting them is the user's decision, not ours).
    """
    old = root.find("cpu/numa")
    if old is None or numa is None:
        return {}, None
    new_ids = {cell.id for cell in numa.cells}
    caches: dict[int, list[Any]] = {}
    for position, cell in enumerate(old.iterchildren(NumaCell.TAG)):
        cell_id = attr_int(cell, "id", "<numa><cell>", position)
        found = [_detached_copy(cache) for cache in cell.iterchildren("cache")]
        if found and cell_id in new_ids:
            caches[cell_id] = found
    interconnects = old.find("interconnects")
    if interconnects is None:
        return caches, None
    for entry in interconnects:
        if not isinstance(entry.tag, str):
            continue
        for name in ("initiator", "target"):
            value = attr_int(entry, name, f"<numa><interconnects><{entry.tag}>")
            if value is not None and value not in new_ids:
                raise SpecError(
                    f"<numa><interconnects><{entry.tag} {name}='{value}'> names a guest cell the new layout "
                    f"does not have ({len(new_ids)} cells); remove or rewrite the interconnects"
                )
    return caches, _detached_copy(interconnects)


def _detached_copy(element: Any) -> Any:
    copy = etree.fromstring(etree.tostring(element, with_tail=False))
    copy.tail = None
    return copy


# --------------------------------------------------------------------------------------------------
# The guest itself
# --------------------------------------------------------------------------------------------------


def read_guest_shape(root: Any) -> GuestShape:
    """Name, vCPUs (maximum and online at boot) and boot memory of a domain.

    Boot memory is ``<memory>`` less the memory devices, which libvirt counts in ``<memory>``.
    """
    _require_tag(root, "domain")
    name_element = root.find("name")
    name = None if name_element is None or not name_element.text else name_element.text.strip()
    try:
        element = root.find(Vcpu.TAG)
        if element is None:
            raise XmlError("the domain has no <vcpu> element (its vCPU count)")
        vcpu = Vcpu.from_element(element)
        memory = _find_parse(root, Memory.TAG, Memory)
        memory_kib = None
        if memory is not None:
            memory_kib = memory.kib - sum(device.size_kib for device in _memory_devices(root))
            if memory_kib < 1:
                raise XmlError(
                    f"<memory> {memory.kib} KiB leaves nothing for the cells once its memory devices are counted"
                )
        return GuestShape(vcpus=vcpu.count, memory_kib=memory_kib, current_vcpus=vcpu.current, name=name)
    except (XmlError, SpecError) as error:
        raise error.naming(name) from None
