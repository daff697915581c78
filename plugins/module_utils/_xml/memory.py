# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Memory: ``<maxMemory>``, ``<memoryBacking><hugepages>``, ``<memory>``, ``<currentMemory>``, memory devices.

https://libvirt.org/formatdomain.html#memory-allocation and #memory-backing
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel, make_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import attr_int, etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_cpuset,
    format_ids,
    optional_size_kib,
    read_size_kib,
    require_tag,
    text_cpuset,
    text_int,
)

__all__ = ["CurrentMemory", "HugePage", "Hugepages", "MaxMemory", "Memory", "MemoryDevice", "memory_devices_of"]


@dataclass(frozen=True)
class MaxMemory(ElementModel):
    """``<maxMemory slots unit>``: the memory hotplug ceiling (https://libvirt.org/formatdomain.html#memory-allocation)."""

    TAG: ClassVar[str] = "maxMemory"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    kib: int
    slots: int | None = None

    @classmethod
    def from_element(cls, element: etree._Element) -> MaxMemory:
        require_tag(element, cls.TAG)
        return cls(
            kib=read_size_kib(element.text, element.get("unit"), "<maxMemory>"),
            slots=attr_int(element, "slots", "<maxMemory>"),
        )

    def markup(self) -> str:
        return make_markup(self.TAG, (("slots", self.slots), ("unit", "KiB")), str(self.kib))

    def items(self) -> Items:
        return [("maxMemory", self.kib), ("maxMemory/slots", self.slots)]


@dataclass(frozen=True)
class HugePage(ElementModel):
    """``<hugepages><page size unit nodeset/>`` (https://libvirt.org/formatdomain.html#memory-backing)."""

    TAG: ClassVar[str] = "page"

    size_kib: int
    nodeset: tuple[int, ...] | None = None

    @classmethod
    def from_element(cls, element: etree._Element) -> HugePage:
        require_tag(element, cls.TAG)
        size = element.get("size")
        if size is None:
            raise XmlError("<hugepages><page>: attribute size is missing")
        return cls(
            size_kib=read_size_kib(size, element.get("unit"), "<hugepages><page> size"),
            nodeset=attr_cpuset(element, "nodeset", "<hugepages><page>"),
        )

    def markup(self) -> str:
        return make_markup(self.TAG, (("size", self.size_kib), ("unit", "KiB"), ("nodeset", format_ids(self.nodeset))))


@dataclass(frozen=True)
class Hugepages(ElementModel):
    """``<memoryBacking><hugepages>``; no pages means the host's default huge page size for all cells."""

    TAG: ClassVar[str] = "hugepages"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    pages: tuple[HugePage, ...] = ()

    @classmethod
    def from_element(cls, element: etree._Element) -> Hugepages:
        require_tag(element, cls.TAG)
        return cls(tuple(HugePage.from_element(child) for child in element.iterchildren(HugePage.TAG)))

    def markup(self) -> str:
        return make_markup(self.TAG, (), "".join([page.markup() for page in self.pages]))

    def items(self) -> Items:
        if not self.pages:
            return [("memoryBacking/hugepages", "default size")]
        items: Items = []
        for index, page in enumerate(self.pages):
            items.append((f"memoryBacking/hugepages/page[{index}]/size", page.size_kib))
            items.append((f"memoryBacking/hugepages/page[{index}]/nodeset", format_ids(page.nodeset)))
        return items


@dataclass(frozen=True)
class Memory(ElementModel):
    """``<memory unit>``: the guest's memory in KiB, hot-plugged memory devices included."""

    TAG: ClassVar[str] = "memory"
    # The balloon and live DIMMs make a running guest report other sizes: nothing waits for a boot.
    KIND: ClassVar[ChangeKind] = ChangeKind.RUNTIME

    kib: int

    @classmethod
    def from_element(cls, element: etree._Element) -> Memory:
        require_tag(element, cls.TAG)
        return cls(read_size_kib(element.text, element.get("unit"), f"<{cls.TAG}>"))

    def markup(self) -> str:
        return make_markup(self.TAG, (("unit", "KiB"),), str(self.kib))

    def update(self, element: etree._Element) -> None:
        """Write the size into an existing element, keeping its other attributes (``dumpCore``)."""
        self.overwrite(element, ("unit",))


@dataclass(frozen=True)
class CurrentMemory(Memory):
    """``<currentMemory unit>``: the balloon target at boot."""

    TAG: ClassVar[str] = "currentMemory"


@dataclass(frozen=True)
class MemoryDevice:
    """A ``<devices><memory>`` (DIMM, NVDIMM, virtio-mem...): read from a domain, written for a hot-add.

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
    def from_element(cls, element: etree._Element, index: int = 0) -> MemoryDevice:
        require_tag(element, cls.TAG)
        model = element.get("model")
        what = f"memory device {index} (model {model})"
        size = element.find("target/size")
        if size is None:
            raise XmlError(f"{what}: <target><size> is missing")
        node = element.find("target/node")
        return cls(
            index=index,
            model=model,
            size_kib=read_size_kib(size.text, size.get("unit"), f"{what} <target><size>"),
            node=None if node is None else text_int(node, f"{what} <target><node>"),
            nodemask=text_cpuset(element.find("source/nodemask"), f"{what} <source><nodemask>"),
            pagesize_kib=optional_size_kib(element.find("source/pagesize"), f"{what} <source><pagesize>"),
        )

    def markup(self) -> str:
        """The device as libvirt writes it (``virDomainMemoryDefFormat``), ``index`` aside.

        ``<source>`` binds the backing memory to host nodes and page size, ``<target><node>`` puts the
        device in a guest cell.
        """
        source = "".join(
            [
                make_markup("pagesize", (("unit", "KiB"),), str(self.pagesize_kib)) if self.pagesize_kib else "",
                make_markup("nodemask", (), format_ids(self.nodemask) or "") if self.nodemask is not None else "",
            ]
        )
        target = make_markup("size", (("unit", "KiB"),), str(self.size_kib))
        if self.node is not None:
            target += make_markup("node", (), str(self.node))
        return make_markup(
            self.TAG,
            (("model", self.model),),
            (make_markup("source", (), source) if source else "") + make_markup("target", (), target),
        )


def memory_devices_of(root: etree._Element) -> tuple[MemoryDevice, ...]:
    """The memory devices of a domain, in document order."""
    return tuple(
        MemoryDevice.from_element(element, index) for index, element in enumerate(root.iterfind("devices/memory"))
    )
