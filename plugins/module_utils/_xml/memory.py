# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Memory: ``<maxMemory>``, ``<memoryBacking><hugepages>``, ``<memory>``, ``<currentMemory>``, memory devices.

https://libvirt.org/formatdomain.html#memory-allocation and #memory-backing
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib, read_digits
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel, make_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import detached_copy
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_cpuset,
    attr_int,
    format_ids,
    optional_size_kib,
    read_size_kib,
    require_tag,
    size_kib_of,
    text_cpuset,
    text_int,
)

__all__ = [
    "VIRTIO_MEM_ALIAS",
    "CurrentMemory",
    "HugePage",
    "Hugepages",
    "MaxMemory",
    "Memory",
    "MemoryDevice",
    "VirtioMemCells",
    "VirtioMemRequests",
    "attachable",
    "device_element",
    "dimms_not_running",
    "memory_devices_of",
    "not_among",
    "plugged_of",
    "requested_update",
    "virtio_mem_alias",
    "virtio_mem_cell",
]

# The alias (a libvirt user alias: "ua-" and a name of our own) of the virtio-mem device the collection
# gives guest cell N.  It tells the collection's devices from the user's, in the definition and in the
# running guest alike, and libvirt finds the device by it when its requested size is updated.
VIRTIO_MEM_ALIAS = "ua-vnuma-cell"


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
            kib=size_kib_of(element, "<maxMemory>"),
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
        return cls(size_kib_of(element, f"<{cls.TAG}>"))

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
    # virtio-mem only: <target><block>, <requested> (what the guest should have plugged) and, in a
    # running guest, <current> (what it has plugged).
    block_kib: int | None = None
    requested_kib: int | None = None
    current_kib: int | None = None
    alias: str | None = None

    @classmethod
    def from_element(cls, element: etree._Element, index: int = 0) -> MemoryDevice:
        require_tag(element, cls.TAG)
        model = element.get("model")
        what = f"memory device {index} (model {model})"
        size = element.find("target/size")
        if size is None:
            raise XmlError(f"{what}: <target><size> is missing")
        node = element.find("target/node")
        alias = element.find("alias")
        return cls(
            index=index,
            model=model,
            size_kib=size_kib_of(size, f"{what} <target><size>"),
            node=None if node is None else text_int(node, f"{what} <target><node>"),
            nodemask=text_cpuset(element.find("source/nodemask"), f"{what} <source><nodemask>"),
            pagesize_kib=optional_size_kib(element.find("source/pagesize"), f"{what} <source><pagesize>"),
            block_kib=optional_size_kib(element.find("target/block"), f"{what} <target><block>"),
            requested_kib=optional_size_kib(element.find("target/requested"), f"{what} <target><requested>"),
            current_kib=optional_size_kib(element.find("target/current"), f"{what} <target><current>"),
            alias=None if alias is None else alias.get("name"),
        )

    @property
    def cell_owned(self) -> int | None:
        """The guest cell whose virtio-mem device the collection made this, or None for anyone else's device."""
        return virtio_mem_cell(self.model, self.alias)

    @property
    def committed_kib(self) -> int:
        """Host memory the device holds for the guest: a virtio-mem device's requested size, any other's size.

        A virtio-mem device's size is only its ceiling; the guest gets (and the host backs) what is requested.
        """
        if self.model == "virtio-mem":
            return self.requested_kib or 0
        return self.size_kib

    def as_written(self) -> MemoryDevice:
        """The device as a definition states it: no position, no running guest's ``<current>``."""
        return replace(self, index=0, current_kib=None)

    def same_device(self) -> MemoryDevice:
        """What tells this device in a definition and in the running guest for the same: no position, no alias.

        A running guest's devices carry the aliases libvirt gave them (``dimm0``) and what virtio-mem has plugged
        (``<current>``); a definition has neither.  The slot (``<address>``) is not read: libvirt numbers a
        definition's and the running guest's slots each on its own.
        """
        return replace(self, index=0, alias=None, current_kib=None)

    def describe(self) -> str:
        """The device in words: ``DIMM of 128 MiB on guest cell 1 (host nodes 0)``."""
        what = "DIMM" if self.model == "dimm" else f"{self.model or 'memory'} device"
        text = f"{what} of {format_kib(self.size_kib)}"
        if self.node is not None:
            text += f" on guest cell {self.node}"
        if self.nodemask is not None:
            text += f" (host nodes {format_ids(self.nodemask) or ''})"
        return text

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
        for tag, kib in (("block", self.block_kib), ("requested", self.requested_kib), ("current", self.current_kib)):
            if kib is not None:
                target += make_markup(tag, (("unit", "KiB"),), str(kib))
        alias = make_markup("alias", (("name", self.alias),)) if self.alias is not None else ""
        return make_markup(
            self.TAG,
            (("model", self.model),),
            (make_markup("source", (), source) if source else "") + make_markup("target", (), target) + alias,
        )

    @classmethod
    def dimm(cls, cell: int, size_kib: int, host_nodes: Sequence[int]) -> MemoryDevice:
        """The collection's DIMM of ``size_kib`` for guest cell ``cell``, its memory from ``host_nodes`` (a hot-add)."""
        return cls(index=0, model="dimm", size_kib=size_kib, node=cell, nodemask=tuple(host_nodes))

    def paths(self) -> str:
        """The start of this device's change paths: ``devices/memory[ALIAS]``."""
        return f"devices/memory[{self.alias}]"


def virtio_mem_alias(cell: int) -> str:
    """The alias of the collection's virtio-mem device of guest cell ``cell``."""
    return f"{VIRTIO_MEM_ALIAS}{cell}"


def virtio_mem_cell(model: str | None, alias: str | None) -> int | None:
    """The guest cell of a memory device of ``model`` aliased ``alias`` when it is the collection's virtio-mem
    device (``virtio_mem_alias``), else None: the one reading of the alias, for a model and for raw XML."""
    if model != "virtio-mem" or alias is None or not alias.startswith(VIRTIO_MEM_ALIAS):
        return None
    return read_digits(alias[len(VIRTIO_MEM_ALIAS) :])


@dataclass(frozen=True)
class VirtioMemCells:
    """The collection's virtio-mem devices (one per guest cell), as written in a definition.

    Their size, cell, block and backing take effect at the next boot; the requested sizes are listed
    apart (``VirtioMemRequests``), since a running guest takes them live.
    (https://libvirt.org/formatdomain.html#memory-devices)
    """

    # Not one element but several <devices><memory>: listed and compared like an element model, written
    # device by device (DomainNuma._apply_virtio_mem).
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    devices: tuple[MemoryDevice, ...] = ()

    @classmethod
    def of(cls, devices: tuple[MemoryDevice, ...]) -> VirtioMemCells:
        """The collection's devices among a domain's memory devices, by cell."""
        owned = [device.as_written() for device in devices if device.cell_owned is not None]
        return cls(tuple(sorted(owned, key=lambda device: device.cell_owned or 0)))

    @property
    def requests(self) -> VirtioMemRequests:
        return VirtioMemRequests(tuple((device.alias or "", device.requested_kib or 0) for device in self.devices))

    def items(self) -> Items:
        items: Items = []
        for device in self.devices:
            path = device.paths()
            items.extend(
                [
                    (f"{path}/size", device.size_kib),
                    (f"{path}/node", device.node),
                    (f"{path}/block", device.block_kib),
                    (f"{path}/nodemask", format_ids(device.nodemask)),
                    (f"{path}/pagesize", device.pagesize_kib),
                ]
            )
        return items


@dataclass(frozen=True)
class VirtioMemRequests:
    """The requested sizes of the collection's virtio-mem devices: a running guest takes them live."""

    # Set live by the collection (updateDeviceFlags), like the vCPU pins: nothing waits for a boot.
    KIND: ClassVar[ChangeKind] = ChangeKind.LIVE

    # (alias, requested KiB) per device, in cell order.
    requests: tuple[tuple[str, int], ...] = ()

    def items(self) -> Items:
        return [(f"devices/memory[{alias}]/requested", kib) for alias, kib in self.requests]


def memory_devices_of(root: etree._Element) -> tuple[MemoryDevice, ...]:
    """The memory devices of a domain, in document order."""
    return tuple(
        MemoryDevice.from_element(element, index) for index, element in enumerate(root.iterfind("devices/memory"))
    )


def device_element(root: etree._Element, device: MemoryDevice) -> etree._Element:
    """The element of ``device``, one of ``memory_devices_of(root)``, in the domain ``root`` (by its position)."""
    return root.findall("devices/memory")[device.index]


def not_among(devices: Sequence[MemoryDevice], others: Sequence[MemoryDevice]) -> tuple[MemoryDevice, ...]:
    """The ``devices`` that ``others`` lacks, counted: two equal DIMMs and one in ``others`` leave one.

    Devices are compared as ``MemoryDevice.same_device`` says, so a definition's devices and a running
    guest's compare whatever aliases and slots libvirt gave them.
    """
    left = [other.same_device() for other in others]
    missing: list[MemoryDevice] = []
    for device in devices:
        key = device.same_device()
        if key in left:
            left.remove(key)
        else:
            missing.append(device)
    return tuple(missing)


def dimms_not_running(defined: Sequence[MemoryDevice], running: Sequence[MemoryDevice]) -> tuple[MemoryDevice, ...]:
    """The DIMMs of a definition (``defined``) that its running guest (``running``) does not have.

    A DIMM attached to the definition only (``virsh attach-device --config``, or a hot-add while the guest
    needed a restart) is memory the guest's next boot brings and it runs without.  DIMMs the running guest
    has beyond its definition (attached live only) are not listed: nothing waits for a boot there.
    """
    return tuple(device for device in not_among(defined, running) if device.model == "dimm")


def attachable(element: etree._Element) -> str:
    """A definition's ``<memory>`` device as a live attach takes it: its slot and libvirt's own alias left out.

    Everything else stays as the definition has it (``access``, ``discard``, ``<source>``...), so the running
    guest gets the device its next boot would have.  libvirt gives the device a free slot and an alias of its own;
    a user alias (``ua-``) is kept.
    """
    require_tag(element, MemoryDevice.TAG)
    copy = detached_copy(element)
    for child in copy.findall("address"):
        copy.remove(child)
    alias = copy.find("alias")
    if alias is not None and not (alias.get("name") or "").startswith("ua-"):
        copy.remove(alias)
    return str(etree.tostring(copy, encoding="unicode"))


def plugged_of(devices: Sequence[MemoryDevice]) -> dict[str, int]:
    """A running guest's memory devices by alias -> what each has plugged (live ``<current>``), where known."""
    return {device.alias: device.current_kib for device in devices if device.alias and device.current_kib}


def requested_update(element: etree._Element, requested_kib: int) -> str:
    """A running guest's ``<memory>`` device as libvirt's device update takes it, asking for ``requested_kib``.

    The device is the one libvirt wrote (alias, address, ``<current>`` and all): libvirt finds it by
    its alias and refuses an update that changes anything but the requested size.
    """
    require_tag(element, MemoryDevice.TAG)
    copy = detached_copy(element)
    target = copy.find("target")
    if target is None:
        raise XmlError("memory device without <target>: nothing to resize")
    requested = target.find("requested")
    if requested is None:
        requested = etree.SubElement(target, "requested")
    requested.set("unit", "KiB")
    requested.text = str(requested_kib)
    return str(etree.tostring(copy, encoding="unicode"))
