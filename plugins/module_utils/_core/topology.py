# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The host's NUMA topology as libvirt reports it, as plain values.

Real hosts come in many shapes: node ids may be sparse (0 and 8), nodes may differ in CPUs and
memory, a node may have no CPUs (CXL or HBM memory) or no memory, SMT may be 1 to 8 threads, and
sibling threads may be numbered next to each other (8,9) or far apart (8,72).  Nothing here
assumes otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import (
    LOCAL_DISTANCE,
    MAX_DISTANCE,
    MIN_REMOTE_DISTANCE,
    default_distance,
    is_valid_distance,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import TopologyError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import MAX_MEMORY_KIB, format_kib

__all__ = [
    "CELL_GRANULE_KIB",
    "DIMM_BLOCK_KIB",
    "HOST_CPU_ID_REASON",
    "MAX_HOST_CPU_ID",
    "MAX_NODE_ID",
    "HMAT_ACCESS_TYPES",
    "HMAT_KINDS",
    "HostCache",
    "HostCacheBank",
    "HostCpu",
    "HostInterconnect",
    "HostNode",
    "HostTopology",
    "MAX_CACHE_LEVEL",
    "L3_LEVEL",
]

# The largest host NUMA node id: Linux numbers nodes below MAX_NUMNODES = 1 << CONFIG_NODES_SHIFT, and
# NODES_SHIFT is at most 10 on every architecture libvirt runs on (x86_64 and arm64 Kconfig: range 1 10).
MAX_NODE_ID = 1023
NODE_ID_REASON = "Linux has at most 1024 NUMA nodes (MAX_NUMNODES)"
# The largest host CPU id: Linux numbers CPUs below NR_CPUS, at most 8192 (x86_64 with MAXSMP, ppc64).
MAX_HOST_CPU_ID = 8191
HOST_CPU_ID_REASON = "Linux has at most 8192 CPUs (NR_CPUS)"
# libvirt rounds every guest cell's memory up to a whole MiB.
CELL_GRANULE_KIB = 1024
# Linux onlines hot-added memory in blocks of 128 MiB on x86_64 (memory_block_size_bytes); a DIMM
# that is not a whole number of blocks is only partly usable by the guest.
DIMM_BLOCK_KIB = 128 * 1024
# QEMU's pseries machine (ppc64) wants each NUMA node's memory and each DIMM in whole 256 MiB blocks
# (SPAPR_MEMORY_BLOCK_SIZE, the LMB size): "Node 1 memory size 0x... is not aligned to 256 MiB".
_POWER_BLOCK_KIB = 256 * 1024


# The HMAT figures libvirt reports (https://libvirt.org/formatcaps.html, <interconnects>): latency in
# nanoseconds, bandwidth in KiB per second, each for reads, writes or both ("access").
HMAT_KINDS = ("latency", "bandwidth")
HMAT_ACCESS_TYPES = ("access", "read", "write")
# ACPI HMAT describes at most three levels of memory-side cache (libvirt refuses a fourth).
MAX_CACHE_LEVEL = 3
# The CPU cache level the guest's cells follow (docs/cache-locality.md): the last level on x86 and arm64.
L3_LEVEL = 3


def cache_level_problem(levels: Sequence[int]) -> str | None:
    """What is wrong with the memory-side cache levels of one node or guest cell, or None.

    HMAT has levels 1-3, each at most once; the host's capabilities and a guest's ``<cell><cache>``
    are held to the same rule (libvirt's virDomainNumaDefValidate), phrased after the owner's name.
    """
    for level in levels:
        if not 1 <= level <= MAX_CACHE_LEVEL:
            return f"a memory-side cache of level {level}; HMAT has levels 1-{MAX_CACHE_LEVEL}"
    if len(set(levels)) != len(levels):
        return "a memory-side cache level twice"
    return None


class HostCache(NamedTuple):
    """A memory-side cache in front of a node's memory (``<cell><cache>``, Linux's memory_side_cache).

    ``associativity`` and ``policy`` are libvirt's words (none/direct/full, none/writeback/writethrough).
    """

    level: int
    size_kib: int
    line_bytes: int = 0
    associativity: str | None = None
    policy: str | None = None


class HostCacheBank(NamedTuple):
    """One CPU cache bank of the host (``<host><cache><bank>``): the CPUs sharing one cache of a level.

    ``kind`` is libvirt's ``type``: both (unified), code or data.  An L3 bank is what the CPUs of an AMD
    CCX or CCD share, or a whole Intel socket (spanning its sub-NUMA nodes).
    """

    id: int
    level: int
    kind: str
    size_kib: int
    cpus: frozenset[int]


class HostInterconnect(NamedTuple):
    """One HMAT figure from ``<interconnects>``: from the CPUs of ``initiator`` to the memory of ``target``.

    ``value`` is nanoseconds for a latency, KiB per second for a bandwidth; ``cache`` is the level of
    the target's memory-side cache the figure is for (0: its memory).
    """

    kind: str
    initiator: int
    target: int
    access: str
    value: int
    cache: int = 0


class HostCpu(NamedTuple):
    """One logical CPU.  Offline CPUs are reported by libvirt without socket/core ids.

    A named tuple rather than a frozen dataclass: a large host has thousands of CPUs, and a tuple is
    built several times faster (the capabilities parser makes one per CPU with ``tuple.__new__``),
    while staying as immutable and comparing by value all the same.
    """

    id: int
    socket_id: int | None = None
    die_id: int | None = None
    core_id: int | None = None
    siblings: frozenset[int] = frozenset()

    @property
    def online(self) -> bool:
        return self.socket_id is not None


@dataclass(frozen=True)
class HostNode:
    """One host NUMA node (a ``<cell>`` of the capabilities)."""

    id: int
    memory_kib: int
    cpus: tuple[HostCpu, ...] = ()
    # (page size in KiB, number of pages in this node's pool), ascending by size.
    pages: tuple[tuple[int, int], ...] = ()
    # (other node id, distance) exactly as reported; empty when the host reports none.
    distances: tuple[tuple[int, int], ...] = ()
    # Memory-side caches, ascending by level; empty on most hosts.
    caches: tuple[HostCache, ...] = ()

    @cached_property
    def hugepage_sizes(self) -> tuple[int, ...]:
        """The node's hugepage pool sizes in KiB, ascending: every page size it lists but the smallest.

        libvirt lists the system page size first (4 KiB on x86, 64 KiB on POWER): that is the node's
        normal memory, not a pool.
        """
        sizes = sorted({size for size, _count in self.pages})
        return tuple(sizes[1:])

    @cached_property
    def usable_cpus(self) -> tuple[int, ...]:
        """Online CPU ids in ascending order: the CPUs a guest can be placed on."""
        # `socket_id is not None` is HostCpu.online, inline: this runs once per CPU of the host.
        return tuple(sorted([cpu.id for cpu in self.cpus if cpu.socket_id is not None]))

    @cached_property
    def cores(self) -> tuple[tuple[int, ...], ...]:
        """Physical cores as tuples of their online thread ids, ordered by their first thread."""
        usable = set(self.usable_cpus)
        groups: dict[object, set[int]] = {}
        # The threads of a core share one siblings set (the parser even shares the object): work out
        # the lowest online sibling once per distinct set, not once per thread.
        first_of: dict[frozenset[int], int | None] = {}
        for cpu in self.cpus:
            if cpu.socket_id is None:
                continue
            siblings = cpu.siblings
            if siblings in first_of:
                key: object = first_of[siblings]
            else:
                online = siblings & usable
                key = first_of[siblings] = min(online) if online else None
            if key is None:
                key = ("core", cpu.socket_id, cpu.die_id, cpu.core_id) if cpu.core_id is not None else ("cpu", cpu.id)
            if key in groups:
                groups[key].add(cpu.id)
            else:
                groups[key] = {cpu.id}
        # Cores are disjoint, so their first threads differ and plain tuple order is by first thread.
        return tuple(sorted([tuple(sorted(group)) for group in groups.values()]))

    @cached_property
    def threads_per_core(self) -> int:
        """The SMT width of this node's cores (the widest core; 0 for a node without CPUs)."""
        return max((len(core) for core in self.cores), default=0)

    @cached_property
    def sockets(self) -> frozenset[int]:
        return frozenset(cpu.socket_id for cpu in self.cpus if cpu.socket_id is not None)

    @property
    def has_cpus(self) -> bool:
        return bool(self.usable_cpus)

    def page_pool_kib(self, page_kib: int) -> int:
        """KiB held in this node's pool of ``page_kib`` pages (0 when there is no such pool)."""
        return sum(count * size for size, count in self.pages if size == page_kib)


@dataclass(frozen=True)
class HostTopology:
    """All host nodes, ascending by id, and the page sizes the host supports."""

    nodes: tuple[HostNode, ...]
    page_sizes_kib: tuple[int, ...] = (4,)
    # The host CPU architecture (<host><cpu><arch>), when reported: it decides the memory granules.
    arch: str | None = None
    # HMAT figures as reported (Linux reports each node's from its nearest initiators); empty without HMAT.
    interconnects: tuple[HostInterconnect, ...] = ()
    # CPU cache banks as reported (<host><cache>), ascending by level then id; empty when not reported.
    cache_banks: tuple[HostCacheBank, ...] = ()
    _by_id: dict[int, HostNode] = field(init=False, repr=False, compare=False)

    @property
    def cell_granule_kib(self) -> int:
        """What every guest cell's memory is a multiple of on this host."""
        return _POWER_BLOCK_KIB if self.is_power else CELL_GRANULE_KIB

    @property
    def dimm_block_kib(self) -> int:
        """What every hot-plugged DIMM is a multiple of on this host."""
        return _POWER_BLOCK_KIB if self.is_power else DIMM_BLOCK_KIB

    @property
    def is_power(self) -> bool:
        return self.arch is not None and self.arch.startswith("ppc64")

    def __post_init__(self) -> None:
        if not self.nodes:
            raise TopologyError("the host reports no NUMA nodes")
        by_id: dict[int, HostNode] = {}
        for node in self.nodes:
            if node.id in by_id:
                raise TopologyError(f"host node {node.id} is reported twice")
            if not 0 <= node.id <= MAX_NODE_ID:
                raise TopologyError(f"host node id {node.id} is outside 0-{MAX_NODE_ID} ({NODE_ID_REASON})")
            if node.memory_kib < 0:
                raise TopologyError(f"host node {node.id} reports negative memory {node.memory_kib} KiB")
            if node.memory_kib > MAX_MEMORY_KIB:
                raise TopologyError(
                    f"host node {node.id} reports {format_kib(node.memory_kib)} of memory, above the limit of "
                    f"{format_kib(MAX_MEMORY_KIB)}"
                )
            by_id[node.id] = node
        cpu_ids = [cpu.id for node in self.nodes for cpu in node.cpus]
        if cpu_ids and not 0 <= min(cpu_ids) <= max(cpu_ids) <= MAX_HOST_CPU_ID:
            bad = min(cpu_ids) if min(cpu_ids) < 0 else max(cpu_ids)
            raise TopologyError(f"host CPU id {bad} is outside 0-{MAX_HOST_CPU_ID} ({HOST_CPU_ID_REASON})")
        if len(set(cpu_ids)) != len(cpu_ids):
            # Rare, so only then is the CPU reported twice looked for, node by node, for the message.
            owner: dict[int, int] = {}
            for node in self.nodes:
                for cpu in node.cpus:
                    if cpu.id in owner:
                        raise TopologyError(
                            f"host CPU {cpu.id} is reported in host nodes {owner[cpu.id]} and {node.id}"
                        )
                    owner[cpu.id] = node.id
        self._check_distances(by_id)
        self._check_hmat(by_id)
        self._check_cache_banks(set(cpu_ids))
        ordered = tuple(sorted(self.nodes, key=lambda node: node.id))
        object.__setattr__(self, "nodes", ordered)
        object.__setattr__(self, "_by_id", by_id)

    def _check_distances(self, by_id: dict[int, HostNode]) -> None:
        """Refuse a distance libvirt would refuse (``_core/distances.py``), naming the nodes, the value and the limit.

        Checked here, where every host is built (capabilities XML, a host report), so that no reader of a
        topology meets one: a guest laid out from it would carry it into a ``<distances>`` matrix.
        """
        for node in self.nodes:
            for other, value in node.distances:
                if other not in by_id:
                    raise TopologyError(
                        f"host node {node.id} reports a distance to node {other}, which is not a host node"
                    )
                if is_valid_distance(value, other == node.id):
                    continue
                if other == node.id:
                    raise TopologyError(
                        f"host node {node.id} reports distance {value} to itself; it must be {LOCAL_DISTANCE}"
                    )
                raise TopologyError(
                    f"host node {node.id} reports distance {value} to node {other}; distances between two nodes "
                    f"must be {MIN_REMOTE_DISTANCE}-{MAX_DISTANCE}"
                )

    def _check_hmat(self, by_id: dict[int, HostNode]) -> None:
        """HMAT figures that name no node, or that no kernel reports, are refused: they reach guests."""
        for node in self.nodes:
            problem = cache_level_problem([cache.level for cache in node.caches])
            if problem is not None:
                raise TopologyError(f"host node {node.id} reports {problem}")
        for entry in self.interconnects:
            what = f"host <interconnects> <{entry.kind} initiator='{entry.initiator}' target='{entry.target}'>"
            if entry.kind not in HMAT_KINDS or entry.access not in HMAT_ACCESS_TYPES:
                raise TopologyError(f"{what}: unknown figure {entry.kind} of type {entry.access}")
            for role, node_id in (("initiator", entry.initiator), ("target", entry.target)):
                if node_id not in by_id:
                    raise TopologyError(f"{what}: the {role} is not a host node")
            if entry.cache and entry.cache not in {cache.level for cache in by_id[entry.target].caches}:
                raise TopologyError(f"{what}: node {entry.target} reports no memory-side cache of level {entry.cache}")

    def _check_cache_banks(self, cpu_ids: set[int]) -> None:
        """A bank naming a CPU the host lacks, or a CPU in two banks of one level, would mislead the cells."""
        owner: dict[tuple[int, str, int], int] = {}
        for bank in self.cache_banks:
            what = f"host <cache><bank id='{bank.id}' level='{bank.level}'>"
            unknown = sorted(bank.cpus - cpu_ids)
            if unknown:
                raise TopologyError(f"{what} names CPU {unknown[0]}, which no host node has")
            for cpu in bank.cpus:
                key = (bank.level, bank.kind, cpu)
                if key in owner and owner[key] != bank.id:
                    raise TopologyError(f"{what}: CPU {cpu} is in bank {owner[key]} of the same level too")
                owner[key] = bank.id

    @cached_property
    def l3_banks(self) -> tuple[frozenset[int], ...]:
        """The host's L3 banks as sets of online CPUs, ascending by their lowest CPU; empty when not reported.

        Offline CPUs are left out: a bank with none online is left out too.
        """
        online = self.cpu_node
        banks = {
            frozenset(cpu for cpu in bank.cpus if cpu in online)
            for bank in self.cache_banks
            if bank.level == L3_LEVEL and bank.kind in ("both", "data")
        }
        return tuple(sorted((bank for bank in banks if bank), key=min))

    @cached_property
    def l3_bank_of(self) -> dict[int, int]:
        """Online CPU id -> the index of its L3 bank in ``l3_banks`` (CPUs without a reported bank: absent)."""
        return {cpu: index for index, bank in enumerate(self.l3_banks) for cpu in bank}

    @cached_property
    def _node_l3_banks(self) -> dict[int, tuple[int, ...]]:
        bank_of = self.l3_bank_of
        return {
            node.id: tuple(sorted({bank_of[cpu] for cpu in node.usable_cpus if cpu in bank_of})) for node in self.nodes
        }

    @cached_property
    def l3_shapes_cells(self) -> bool:
        """Whether the host's L3 banks shape guest cells: a node with two or more, or a bank across nodes."""
        per_node = self._node_l3_banks
        if any(len(banks) > 1 for banks in per_node.values()):
            return True
        owners = [{self.cpu_node[cpu] for cpu in bank} for bank in self.l3_banks]
        return any(len(nodes) > 1 for nodes in owners)

    def node_l3_banks(self, node_id: int) -> tuple[int, ...]:
        """Indexes (in ``l3_banks``) of the L3 banks holding the node's online CPUs, ascending."""
        try:
            return self._node_l3_banks[node_id]
        except KeyError:
            # Not a host node: the refusal that names the host's nodes.
            self.node(node_id)
            raise

    @cached_property
    def node_ids(self) -> tuple[int, ...]:
        return tuple(node.id for node in self.nodes)

    @cached_property
    def cpu_node_ids(self) -> tuple[int, ...]:
        """Ids of the nodes that have at least one online CPU."""
        return tuple(node.id for node in self.nodes if node.has_cpus)

    @cached_property
    def _distance_table(self) -> dict[tuple[int, int], int]:
        return {(node.id, other): value for node in self.nodes for other, value in node.distances}

    @cached_property
    def cpu_node(self) -> dict[int, int]:
        """Online CPU id -> the id of its node."""
        return {cpu: node.id for node in self.nodes for cpu in node.usable_cpus}

    @cached_property
    def core_width(self) -> dict[int, int]:
        """Online CPU id -> the number of online threads of its physical core."""
        return {cpu: len(core) for node in self.nodes for core in node.cores for cpu in core}

    @cached_property
    def _siblings(self) -> dict[int, frozenset[int]]:
        return {cpu.id: cpu.siblings for node in self.nodes for cpu in node.cpus if cpu.siblings}

    def sharing_a_core(self, cpus: Iterable[int]) -> set[int]:
        """``cpus`` and every CPU the host reports as an SMT sibling of one of them, on whatever node.

        A node's ``cores`` hold its own CPUs only; a capabilities document may list a sibling on another
        node (no real core spans two nodes, but nothing in the XML forbids it), and that sibling shares
        the core all the same.
        """
        siblings = self._siblings
        mates = set(cpus)
        for cpu in list(mates):
            mates.update(siblings.get(cpu, ()))
        return mates

    def node(self, node_id: int) -> HostNode:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise TopologyError(
                f"host node {node_id} does not exist (the host has nodes {', '.join(map(str, self.node_ids))})"
            ) from None

    def has_node(self, node_id: int) -> bool:
        return node_id in self._by_id

    def distance(self, from_id: int, to_id: int) -> int:
        """The reported distance; the other direction's when only that is reported; else libvirt's default.

        libvirt's defaults are 10 local and 20 remote (``_core/distances.py:default_distance``).  A table
        with a direction missing (a hand-written capabilities file: Linux reports every row) keeps the value
        it does report, which a default of 20 would hide.
        """
        table = self._distance_table
        value = table.get((from_id, to_id))
        if value is None:
            value = table.get((to_id, from_id))
        if value is not None:
            return value
        return default_distance(from_id == to_id)

    def socket_of(self, node_id: int) -> int | None:
        """The socket of a node's CPUs when they all share one, else None (memory-only nodes)."""
        sockets = self.node(node_id).sockets
        return next(iter(sockets)) if len(sockets) == 1 else None
