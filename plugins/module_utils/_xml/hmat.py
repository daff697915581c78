# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The guest's HMAT elements: a cell's memory-side ``<cache>`` and one ``<interconnects>`` figure.

https://libvirt.org/formatdomain.html#numa-topology (libvirt 6.6+; its parser and checks are
virDomainNumaDefParseXML and virDomainNumaDefValidate in src/conf/numa_conf.c).  ``<cpu><numa>``
(``cpu_numa.py``) holds them; ``hmat_for`` turns the core's ``GuestHmat`` into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hmat import GuestHmat
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HMAT_ACCESS_TYPES, HMAT_KINDS
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import unit_bytes
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel, make_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_int_or,
    read_size_kib,
    require_tag,
    required_int,
)

__all__ = ["Interconnect", "NumaCache", "hmat_for"]


def cache_line_bytes(line: etree._Element | None, what: str) -> int | None:
    """A memory-side cache's ``<line value unit/>`` in bytes (libvirt writes ``unit='B'``), None without one.

    The one reading of the line, for the host's capabilities and a guest's ``<cell><cache>`` alike.
    """
    if line is None:
        return None
    unit = line.get("unit") or "B"
    scale = unit_bytes(unit)
    if scale is None:
        raise XmlError(f"{what}<line>: unknown unit {unit!r}")
    return required_int(line, "value", f"{what}<line>") * scale


@dataclass(frozen=True)
class NumaCache(ElementModel):
    """``<cell><cache level associativity policy><size/><line/></cache>``: sizes in KiB, the line in bytes."""

    TAG: ClassVar[str] = "cache"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    level: int
    size_kib: int
    line_bytes: int | None = None
    associativity: str | None = None
    policy: str | None = None

    @classmethod
    def from_element(cls, element: etree._Element) -> NumaCache:
        require_tag(element, cls.TAG)
        what = "<numa><cell><cache>"
        size = element.find("size")
        if size is None:
            raise XmlError(f"{what}: <size> is missing")
        return cls(
            level=required_int(element, "level", what),
            size_kib=read_size_kib(size.get("value"), size.get("unit"), f"{what}<size>"),
            line_bytes=cache_line_bytes(element.find("line"), what),
            associativity=element.get("associativity"),
            policy=element.get("policy"),
        )

    def markup(self) -> str:
        size = make_markup("size", (("value", self.size_kib), ("unit", "KiB")))
        line = "" if self.line_bytes is None else make_markup("line", (("value", self.line_bytes), ("unit", "B")))
        return make_markup(
            self.TAG,
            (("level", self.level), ("associativity", self.associativity), ("policy", self.policy)),
            size + line,
        )

    def items(self, cell: int) -> Items:
        prefix = f"cpu/numa/cell[{cell}]/cache[{self.level}]"
        return [
            (f"{prefix}/size", self.size_kib),
            (f"{prefix}/line", self.line_bytes),
            (f"{prefix}/associativity", self.associativity),
            (f"{prefix}/policy", self.policy),
        ]


@dataclass(frozen=True)
class Interconnect(ElementModel):
    """``<interconnects><latency|bandwidth initiator target [cache] type value [unit]/>``.

    ``value`` is nanoseconds for a latency and KiB per second for a bandwidth; ``cache`` is the level
    of the target's memory-side cache the figure is for (0: the target's memory).
    """

    # The element that holds the figures; each is written as its ``kind`` (``<latency>``, ``<bandwidth>``).
    TAG: ClassVar[str] = "interconnects"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    kind: str
    initiator: int
    target: int
    access: str
    value: int
    cache: int = 0

    @classmethod
    def from_element(cls, element: etree._Element) -> Interconnect:
        tag: object = element.tag
        if tag not in HMAT_KINDS:
            raise XmlError(f"expected <latency> or <bandwidth> in <interconnects>, got <{tag}>")
        kind = str(tag)
        what = f"<numa><interconnects><{kind}>"
        if kind == "latency":
            value = required_int(element, "value", what)
        else:
            value = read_size_kib(element.get("value"), element.get("unit"), f"{what} value")
        access = element.get("type")
        if access not in HMAT_ACCESS_TYPES:
            raise XmlError(f"{what}: type {access!r} is not one of {', '.join(HMAT_ACCESS_TYPES)}")
        return cls(
            kind=kind,
            initiator=required_int(element, "initiator", what),
            target=required_int(element, "target", what),
            access=access,
            value=value,
            cache=attr_int_or(element, "cache", what, 0),
        )

    def markup(self) -> str:
        return make_markup(
            self.kind,
            (
                ("initiator", self.initiator),
                ("target", self.target),
                ("cache", self.cache or None),
                ("type", self.access),
                ("value", self.value),
                ("unit", "KiB" if self.kind == "bandwidth" else None),
            ),
        )

    @property
    def path(self) -> str:
        cache = f" cache {self.cache}" if self.cache else ""
        return f"cpu/numa/interconnects/{self.kind}[{self.initiator}->{self.target}{cache} {self.access}]"

    def describe(self) -> str:
        cache = f" cache='{self.cache}'" if self.cache else ""
        return f"<{self.kind} initiator='{self.initiator}' target='{self.target}'{cache} type='{self.access}'>"


# The figures of a CellAccess, as (kind, type, field), in the order they are written.
_FIGURES = (
    ("latency", "read", "read_latency_ns"),
    ("latency", "write", "write_latency_ns"),
    ("bandwidth", "read", "read_bandwidth_kib"),
    ("bandwidth", "write", "write_bandwidth_kib"),
)


def hmat_for(hmat: GuestHmat) -> tuple[dict[int, tuple[NumaCache, ...]], tuple[Interconnect, ...]]:
    """The caches of each cell id and the interconnects that render ``hmat``.

    Latencies first, then bandwidths, each by cell: libvirt's order in the host capabilities.  Read and
    write always apart, for every cell alike: QEMU writes one table per type over every initiator and
    target, and Linux takes a missing entry of a table as a figure of 0.
    """
    caches = {
        cell: tuple(
            NumaCache(
                level=cache.level,
                size_kib=cache.size_kib,
                line_bytes=cache.line_bytes or None,
                associativity=cache.associativity,
                policy=cache.policy,
            )
            for cache in found
        )
        for cell, found in enumerate(hmat.caches)
        if found
    }
    entries = [
        Interconnect(kind=kind, initiator=access.initiator, target=access.cell, access=type_, value=value)
        for kind in ("latency", "bandwidth")
        for access in hmat.accesses
        for figure_kind, type_, name in _FIGURES
        if figure_kind == kind and (value := getattr(access, name)) is not None
    ]
    return caches, tuple(entries)
