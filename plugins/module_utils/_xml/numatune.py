# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""``<numatune>``: where the guest's memory lives, guest-wide and per cell.

https://libvirt.org/formatdomain.html#numa-node-tuning
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel, make_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_cpuset,
    format_ids,
    require_tag,
    required_int,
)

__all__ = ["Memnode", "Numatune", "NumatuneMemory"]


@dataclass(frozen=True)
class NumatuneMemory(ElementModel):
    """``<numatune><memory mode nodeset placement/>``.

    An absent mode is libvirt's ``strict``; ``placement='static'`` is what a nodeset already
    means and libvirt never writes it back, so it reads as None.
    """

    TAG: ClassVar[str] = "memory"

    mode: str = "strict"
    nodeset: tuple[int, ...] | None = None
    placement: str | None = None

    @classmethod
    def from_element(cls, element: etree._Element) -> NumatuneMemory:
        require_tag(element, cls.TAG)
        placement = element.get("placement")
        return cls(
            mode=element.get("mode") or "strict",
            nodeset=attr_cpuset(element, "nodeset", "<numatune><memory>"),
            placement=None if placement == "static" else placement,
        )

    def markup(self) -> str:
        return make_markup(
            self.TAG, (("mode", self.mode), ("nodeset", format_ids(self.nodeset)), ("placement", self.placement))
        )

    def items(self) -> Items:
        return [
            ("numatune/memory/mode", self.mode),
            ("numatune/memory/nodeset", format_ids(self.nodeset)),
            ("numatune/memory/placement", self.placement),
        ]


@dataclass(frozen=True)
class Memnode(ElementModel):
    """``<numatune><memnode cellid mode nodeset/>``: where one guest cell's memory lives."""

    TAG: ClassVar[str] = "memnode"

    cellid: int
    mode: str
    nodeset: tuple[int, ...]

    @classmethod
    def from_element(cls, element: etree._Element) -> Memnode:
        require_tag(element, cls.TAG)
        what = "<numatune><memnode>"
        cellid = required_int(element, "cellid", what)
        nodeset = attr_cpuset(element, "nodeset", f"<numatune><memnode cellid='{cellid}'>")
        if nodeset is None:
            raise XmlError(f"<numatune><memnode cellid='{cellid}'>: attribute nodeset is missing")
        return cls(cellid=cellid, mode=element.get("mode") or "strict", nodeset=nodeset)

    def markup(self) -> str:
        return make_markup(
            self.TAG, (("cellid", self.cellid), ("mode", self.mode), ("nodeset", format_cpuset(self.nodeset)))
        )

    def items(self) -> Items:
        prefix = f"numatune/memnode[{self.cellid}]"
        return [(f"{prefix}/mode", self.mode), (f"{prefix}/nodeset", format_cpuset(self.nodeset))]


@dataclass(frozen=True)
class Numatune(ElementModel):
    """``<numatune>``: the guest-wide memory policy and one ``<memnode>`` per cell."""

    TAG: ClassVar[str] = "numatune"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    memory: NumatuneMemory | None = None
    memnodes: tuple[Memnode, ...] = ()

    @classmethod
    def from_element(cls, element: etree._Element) -> Numatune:
        require_tag(element, cls.TAG)
        memory = element.find(NumatuneMemory.TAG)
        memnodes = [Memnode.from_element(child) for child in element.iterchildren(Memnode.TAG)]
        return cls(
            memory=None if memory is None else NumatuneMemory.from_element(memory),
            memnodes=tuple(sorted(memnodes, key=lambda memnode: memnode.cellid)),
        )

    def markup(self) -> str:
        memory = "" if self.memory is None else self.memory.markup()
        memnodes = "".join([memnode.markup() for memnode in self.memnodes])
        return make_markup(self.TAG, (), memory + memnodes)

    def items(self) -> Items:
        items = [] if self.memory is None else self.memory.items()
        return items + [item for memnode in self.memnodes for item in memnode.items()]
