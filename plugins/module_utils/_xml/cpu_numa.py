# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""``<cpu><topology>``, ``<cpu><cache>`` and ``<cpu><numa>``: the guest cells, their distances, and their HMAT.

The HMAT elements themselves (a cell's ``<cache>``, an ``<interconnects>`` figure) are in ``hmat.py``;
the checks libvirt makes of them as a whole are here, with the cells they name.

https://libvirt.org/formatdomain.html#cpu-model-and-topology and #numa-topology
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import validate_distances
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HMAT_KINDS, cache_level_problem
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.hmat import Interconnect, NumaCache
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel, make_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_cpuset,
    attr_int,
    attr_int_or,
    read_size_kib,
    require_tag,
    required_int,
    yes_no,
    yes_no_text,
)

__all__ = [
    "L3_EMULATED",
    "CpuCache",
    "CpuTopology",
    "Numa",
    "NumaCell",
    "Sibling",
]


@dataclass(frozen=True)
class CpuTopology(ElementModel):
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
    def from_element(cls, element: etree._Element) -> CpuTopology:
        require_tag(element, cls.TAG)
        what = "<cpu><topology>"
        return cls(
            sockets=required_int(element, "sockets", what),
            dies=attr_int_or(element, "dies", what, 1),
            cores=required_int(element, "cores", what),
            threads=required_int(element, "threads", what),
            clusters=attr_int_or(element, "clusters", what, 1),
        )

    @property
    def vcpus(self) -> int:
        return self.sockets * self.dies * self.clusters * self.cores * self.threads

    def markup(self) -> str:
        clusters = None if self.clusters == 1 else self.clusters
        return make_markup(
            self.TAG,
            (
                ("sockets", self.sockets),
                ("dies", self.dies),
                ("clusters", clusters),
                ("cores", self.cores),
                ("threads", self.threads),
            ),
        )

    def items(self) -> Items:
        return [
            ("cpu/topology/sockets", self.sockets),
            ("cpu/topology/dies", self.dies),
            ("cpu/topology/clusters", None if self.clusters == 1 else self.clusters),
            ("cpu/topology/cores", self.cores),
            ("cpu/topology/threads", self.threads),
        ]


@dataclass(frozen=True)
class CpuCache(ElementModel):
    """``<cpu><cache level mode/>``: the CPU caches QEMU shows the guest (one element at most, libvirt's rule).

    libvirt 9.0 takes ``level='3'`` with ``emulate`` only (QEMU's ``l3-cache=on``, and ``host-cache-info=off``
    for host-passthrough and maximum CPUs), and no level with ``passthrough`` (host-passthrough and maximum
    CPUs only) or ``disable``.  See docs/cache-locality.md for what each means for the cells.
    """

    TAG: ClassVar[str] = "cache"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT
    MODES: ClassVar[tuple[str, ...]] = ("emulate", "passthrough", "disable")

    mode: str
    level: int | None = None

    @classmethod
    def from_element(cls, element: etree._Element) -> CpuCache:
        require_tag(element, cls.TAG)
        what = "<cpu><cache>"
        mode = element.get("mode")
        if mode not in cls.MODES:
            raise XmlError(f"{what} mode {mode!r} is not one of {', '.join(cls.MODES)}")
        return cls(mode=mode, level=attr_int(element, "level", what))

    def markup(self) -> str:
        return make_markup(self.TAG, (("level", self.level), ("mode", self.mode)))

    def items(self) -> Items:
        return [("cpu/cache/level", self.level), ("cpu/cache/mode", self.mode)]


# What the collection writes when the host's L3 banks shape the cells: QEMU's own L3, shared by one guest
# die, so that no guest L3 spans two cells whatever the host's caches are (docs/cache-locality.md).
L3_EMULATED = CpuCache(mode="emulate", level=3)


@dataclass(frozen=True)
class Sibling(ElementModel):
    """``<distances><sibling id value/>``: the distance from the enclosing cell to cell ``id``."""

    TAG: ClassVar[str] = "sibling"

    id: int
    value: int

    @classmethod
    def from_element(cls, element: etree._Element) -> Sibling:
        require_tag(element, cls.TAG)
        what = "<distances><sibling>"
        return cls(id=required_int(element, "id", what), value=required_int(element, "value", what))

    def markup(self) -> str:
        if isinstance(self.id, int) and isinstance(self.value, int):
            # Written out rather than through make_markup: there is one per pair of cells (256 for 16 cells).
            return f'<sibling id="{self.id}" value="{self.value}"/>'
        # Only a model built from other values than the typed ints (not by this collection) gets here.
        return make_markup(self.TAG, (("id", self.id), ("value", self.value)))  # type: ignore[unreachable]


@dataclass(frozen=True)
class NumaCell(ElementModel):
    """``<cell id cpus memory unit memAccess discard>`` with its ``<distances>``.

    ``cpus`` is empty for a CPU-less cell (libvirt then has no ``cpus`` attribute); ``memory_kib``
    is in KiB whatever unit the domain used; ``caches`` are its memory-side caches (HMAT).
    """

    TAG: ClassVar[str] = "cell"

    id: int
    cpus: tuple[int, ...]
    memory_kib: int
    mem_access: str | None = None
    discard: bool | None = None
    distances: tuple[Sibling, ...] = ()
    caches: tuple[NumaCache, ...] = ()

    @classmethod
    def from_element(cls, element: etree._Element, position: int = 0) -> NumaCell:
        """Read a cell; ``position`` is its id when the cell has none (libvirt numbers them in order)."""
        require_tag(element, cls.TAG)
        cell_id = attr_int_or(element, "id", "<numa><cell>", position)
        what = f"<numa><cell id='{cell_id}'>"
        memory = element.get("memory")
        if memory is None:
            raise XmlError(f"{what}: attribute memory is missing")
        siblings = [Sibling.from_element(child) for child in element.iterfind("distances/sibling")]
        return cls(
            id=cell_id,
            cpus=attr_cpuset(element, "cpus", what) or (),
            memory_kib=read_size_kib(memory, element.get("unit"), f"{what} memory"),
            mem_access=element.get("memAccess"),
            discard=yes_no(element, "discard", what),
            distances=tuple(sorted(siblings, key=lambda sibling: sibling.id)),
            caches=tuple(NumaCache.from_element(child) for child in element.iterchildren(NumaCache.TAG)),
        )

    def markup(self) -> str:
        discard = None if self.discard is None else yes_no_text(self.discard)
        distances = ""
        if self.distances:
            distances = make_markup("distances", (), "".join([sibling.markup() for sibling in self.distances]))
        caches = "".join(cache.markup() for cache in self.caches)
        return make_markup(
            self.TAG,
            (
                ("id", self.id),
                ("cpus", format_cpuset(self.cpus) if self.cpus else None),
                ("memory", self.memory_kib),
                ("unit", "KiB"),
                ("memAccess", self.mem_access),
                ("discard", discard),
            ),
            distances + caches,
        )

    def items(self) -> Items:
        prefix = f"cpu/numa/cell[{self.id}]"
        items: Items = [
            (f"{prefix}/cpus", format_cpuset(self.cpus) if self.cpus else None),
            (f"{prefix}/memory", self.memory_kib),
            (f"{prefix}/memAccess", self.mem_access),
            (f"{prefix}/discard", None if self.discard is None else yes_no_text(self.discard)),
        ]
        items.extend((f"{prefix}/distances/sibling[{sibling.id}]", sibling.value) for sibling in self.distances)
        for cache in self.caches:
            items.extend(cache.items(self.id))
        return items


@dataclass(frozen=True)
class Numa(ElementModel):
    """``<cpu><numa>``: the guest cells, ascending by id, and the HMAT ``<interconnects>`` in their order."""

    TAG: ClassVar[str] = "numa"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    cells: tuple[NumaCell, ...]
    interconnects: tuple[Interconnect, ...] = ()

    @classmethod
    def from_element(cls, element: etree._Element) -> Numa:
        require_tag(element, cls.TAG)
        cells = [NumaCell.from_element(child, position) for position, child in enumerate(element.iterchildren("cell"))]
        found = element.find(Interconnect.TAG)
        # libvirt reads the first <interconnects> only, and skips what is neither latency nor bandwidth.
        entries = () if found is None else tuple(map(Interconnect.from_element, found.iterchildren(*HMAT_KINDS)))
        return cls(tuple(sorted(cells, key=lambda cell: cell.id)), entries)

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
        self._validate_hmat()
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

    def _validate_hmat(self) -> None:
        """libvirt's checks of the HMAT (virDomainNumaDefValidate), and the initiator QEMU needs per cell."""
        for cell in self.cells:
            problem = cache_level_problem([cache.level for cache in cell.caches])
            if problem is not None:
                raise SpecError(f"guest cell {cell.id} has {problem}")
        by_id = {cell.id: cell for cell in self.cells}
        seen: set[tuple[str, int, int, int, str]] = set()
        links: set[tuple[int, int]] = set()
        for entry in self.interconnects:
            what = f"<numa><interconnects>{entry.describe()}"
            for name, cell_id in (("initiator", entry.initiator), ("target", entry.target)):
                if cell_id not in by_id:
                    raise SpecError(
                        f"<numa><interconnects><{entry.kind} {name}='{cell_id}'> names a guest cell the layout does "
                        f"not have ({len(by_id)} cells); remove or rewrite the interconnects"
                    )
            if not by_id[entry.initiator].cpus:
                raise SpecError(f"{what}: guest cell {entry.initiator} has no vCPUs, so it cannot be an initiator")
            if entry.cache and entry.cache not in {cache.level for cache in by_id[entry.target].caches}:
                raise SpecError(f"{what}: guest cell {entry.target} has no memory-side cache of level {entry.cache}")
            key = (entry.kind, entry.initiator, entry.target, entry.cache, entry.access)
            if key in seen:
                raise SpecError(f"{what} is given twice")
            seen.add(key)
            # libvirt keeps one direction per pair of cells ("Link already defined").
            if entry.initiator != entry.target:
                if (entry.target, entry.initiator) in links:
                    raise SpecError(
                        f"{what}: the link between cells {entry.target} and {entry.initiator} is given "
                        "the other way too; libvirt takes one direction per pair"
                    )
                links.add((entry.initiator, entry.target))
        if not self.interconnects and not any(cell.caches for cell in self.cells):
            return
        # With HMAT, libvirt gives QEMU an initiator for every cell: a cell's own, or for a cell without
        # vCPUs the initiator of its best figure; a cell with neither makes the guest fail to start.
        targets = {entry.target for entry in self.interconnects}
        for cell in self.cells:
            if not cell.cpus and cell.id not in targets:
                raise SpecError(
                    f"guest cell {cell.id} has no vCPUs and no <interconnects> figure names it as target, so "
                    "it has no initiator, which QEMU needs with HMAT; add a figure from a cell with vCPUs"
                )

    def markup(self) -> str:
        # Not checked here: to_element checks first, DomainNuma.apply has checked the whole model.
        inner = "".join([cell.markup() for cell in self.cells])
        if self.interconnects:
            inner += make_markup(Interconnect.TAG, (), "".join(entry.markup() for entry in self.interconnects))
        return make_markup(self.TAG, (), inner)

    def items(self) -> Items:
        items = [item for cell in self.cells for item in cell.items()]
        items.extend((entry.path, entry.value) for entry in self.interconnects)
        return items
