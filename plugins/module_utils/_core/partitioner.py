# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The partitioner: host topology + vNUMA spec + guest shape -> guest layout.

Pure computation, no I/O.  The rules are those of docs/partitioning.md; every refusal is a
``SpecError`` or ``PlacementError`` naming the guest, the value and the limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import gcd, lcm
from typing import TypeVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import LOCAL_DISTANCE, MIN_REMOTE_DISTANCE
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    PlacementError,
    SpecError,
    VnumaError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hmat import guest_hmat
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import (
    balanced_enable_order,
    balanced_shares,
    even_split,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.iothreads import (
    isolated_emulator_cpu,
    isolation_node,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import GuestCell, GuestTopology, Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import CELLS_REASON, MAX_CELLS
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import held_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import (
    GuestShape,
    VnumaSpec,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.vcpu_distribution import distribute_vcpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.wording import cells_text, nodes_text

__all__ = [
    "SAME_NODE_DISTANCE",
    "CellBindings",
    "CellPlace",
    "bind_cells",
    "cell_distance",
    "compute_layout",
]

T = TypeVar("T")

# Two guest cells on one host node: as close as possible without being local (the limits are
# _core/distances.py's).
SAME_NODE_DISTANCE = MIN_REMOTE_DISTANCE


def _even_slices(items: Sequence[T], parts: int) -> tuple[tuple[T, ...], ...]:
    """``items`` cut in ``parts`` consecutive slices whose sizes differ by at most one, the larger first."""
    slices, start = [], 0
    for size in even_split(len(items), parts):
        slices.append(tuple(items[start : start + size]))
        start += size
    return tuple(slices)


@dataclass(frozen=True)
class CellPlace:
    """Where one guest cell lives: its host nodes and, for cells sharing one node, its slice of it."""

    nodes: tuple[int, ...]
    slot: int = 0
    slots: int = 1


@dataclass(frozen=True)
class CellBindings:
    """The host side of placed guest cells: memory binding, pins, and the distances the nodes give."""

    # Per guest cell, the host nodes its memory is bound to (``<memnode nodeset>``).
    memory_nodes: tuple[tuple[int, ...], ...]
    numatune_nodes: tuple[int, ...]
    vcpu_pins: tuple[tuple[int, ...], ...] | None
    emulator_pins: tuple[int, ...] | None
    # Host CPUs the dedicated pins hold (reserved siblings included).
    held: tuple[int, ...]
    # Guest cell distances as the chosen host nodes give them (the spec's rule for new guests).
    distances: tuple[tuple[int, ...], ...]


def bind_cells(
    topology: HostTopology,
    spec: VnumaSpec,
    guest: GuestShape,
    places: Sequence[CellPlace],
    cell_vcpus: Sequence[Sequence[int]],
    memory_kib: Sequence[int],
    threads: int = 1,
    taken_cpus: Mapping[int, str] | None = None,
) -> CellBindings:
    """The spec's host-side rules for cells whose host nodes are already chosen (a guest that moves).

    ``places`` and ``cell_vcpus`` and ``memory_kib`` are per guest cell, in cell id order; ``threads`` is
    the guest core width dedicated pinning keeps whole.
    """
    try:
        return _Partitioner(topology, spec, guest, dict(taken_cpus or {})).bindings(
            list(places), [list(vcpus) for vcpus in cell_vcpus], list(memory_kib), threads
        )
    except VnumaError as error:
        raise error.naming(guest.name) from None


def cell_distance(topology: HostTopology, first: Sequence[int], second: Sequence[int]) -> int:
    """The guest distance the spec gives two distinct cells on host node sets ``first`` and ``second``."""
    return _Partitioner(topology, VnumaSpec(), GuestShape(vcpus=1), {}).cell_distance(tuple(first), tuple(second))


def compute_layout(
    topology: HostTopology,
    spec: VnumaSpec,
    guest: GuestShape,
    taken_cpus: Mapping[int, str] | None = None,
) -> Layout:
    """Compute the guest layout.  ``taken_cpus`` maps host CPUs dedicated to other guests to their names."""
    try:
        return _Partitioner(topology, spec, guest, dict(taken_cpus or {})).layout()
    except VnumaError as error:
        raise error.naming(guest.name) from None


class _Partitioner:
    def __init__(self, topology: HostTopology, spec: VnumaSpec, guest: GuestShape, taken: dict[int, str]) -> None:
        self.topology = topology
        self.spec = spec
        self.guest = guest
        self.taken = taken

    # -- which host nodes, and which of them behind each guest cell ------------------------------

    def selected_nodes(self) -> tuple[int, ...]:
        topology = self.topology
        if self.spec.mode == "auto" and self.spec.nodes is None:
            # The choice needs the host's load, which only the orchestration sees (_run/auto.py).
            raise SpecError(
                "mode auto chooses its host nodes from what the host's guests use; choose them first "
                "(vnuma_domain, or the vnuma_auto_nodes filter) or use mode node with a nodeset"
            )
        if self.spec.mode == "host" or self.spec.nodes is None:
            # Host mode mirrors the nodes with CPUs only: memory-only (CXL, HBM) nodes would
            # otherwise receive an even share of the guest's memory on slow memory.
            nodes = topology.cpu_node_ids
            if not nodes:
                raise PlacementError("the host has no NUMA node with online CPUs")
            return nodes
        wanted = sorted(self.spec.nodes)
        missing = [node for node in wanted if not topology.has_node(node)]
        if missing:
            raise SpecError(
                f"nodeset {self.spec.nodeset!r} names {nodes_text(missing)}, which the host does not have "
                f"(it has nodes {format_cpuset(topology.node_ids)})"
            )
        if not any(topology.node(node).has_cpus for node in wanted):
            raise PlacementError(
                f"nodeset {self.spec.nodeset!r} selects only {nodes_text(wanted)} without CPUs; "
                "select at least one host node with CPUs"
            )
        return tuple(wanted)

    def place_cells(self, nodes: tuple[int, ...]) -> list[CellPlace]:
        count = len(nodes) if self.spec.mode == "host" or self.spec.cells is None else self.spec.cells
        if count > MAX_CELLS:
            # Only a host of more than 128 nodes gets here (cells itself is held to the limit by the spec).
            source = (
                f"mode host mirrors the host's {count} nodes with CPUs"
                if self.spec.mode == "host"
                else f"nodeset {self.spec.nodeset!r} selects {count} host nodes, one guest cell each"
                if self.spec.nodeset is not None
                else f"mode node takes the host's {count} nodes with CPUs, one guest cell each"
            )
            raise SpecError(
                f"{source}: {count} guest cells is above the limit of {MAX_CELLS} ({CELLS_REASON}); "
                "use mode node with fewer cells"
            )
        if count == len(nodes):
            return [CellPlace((node,)) for node in nodes]
        if count > len(nodes):
            places: list[CellPlace] = []
            for node, slots in zip(nodes, even_split(count, len(nodes)), strict=True):
                places.extend(CellPlace((node,), slot, slots) for slot in range(slots))
            return places
        return [CellPlace(group) for group in self.group_nodes(nodes, count)]

    def group_nodes(self, nodes: tuple[int, ...], count: int) -> list[tuple[int, ...]]:
        """Group host nodes into ``count`` groups, even in size, nearest first.

        Each group starts from the lowest unassigned node and takes, one at a time, the unassigned
        node sharing an L3 cache bank with the group (an Intel socket's sub-NUMA nodes), then on the
        seed's socket, then with the smallest total distance to the group, then the lowest id.
        """
        topology = self.topology
        remaining = list(nodes)
        groups: list[tuple[int, ...]] = []
        for size in even_split(len(nodes), count):
            seed = remaining.pop(0)
            seed_socket = topology.socket_of(seed)
            group = [seed]
            banks = set(topology.node_l3_banks(seed))
            while len(group) < size:
                best = min(
                    remaining,
                    key=lambda node: (
                        0 if banks.intersection(topology.node_l3_banks(node)) else 1,
                        0 if seed_socket is not None and topology.socket_of(node) == seed_socket else 1,
                        sum(self.host_distance(member, node) for member in group),
                        node,
                    ),
                )
                remaining.remove(best)
                group.append(best)
                banks.update(topology.node_l3_banks(best))
            groups.append(tuple(sorted(group)))
        return groups

    def slot_cpus(self, node: int, slots: int) -> tuple[tuple[int, ...], ...]:
        """The node's online CPUs cut into ``slots`` slices, one per guest cell on the node.

        On a node of two or more L3 banks the cuts fall on bank boundaries (``slot_banks``); cells that
        share a bank share its cores in equal slices (a core is never cut).  Without banks the node's
        CPUs are cut evenly in id order.
        """
        banks = self.node_banks(node)
        if len(banks) < 2:
            return _even_slices(self.topology.node(node).usable_cpus, slots)
        if slots <= len(banks):
            slices = [
                tuple(core for bank in group for core in banks[bank]) for group in self.slot_banks(len(banks), slots)
            ]
        else:
            # The cells in slot_banks' order: a bank's cells one after the other.
            slices = [
                piece
                for bank, count in zip(banks, even_split(slots, len(banks)), strict=True)
                for piece in _even_slices(bank, count)
            ]
        return tuple(tuple(sorted(cpu for core in piece for cpu in core)) for piece in slices)

    @staticmethod
    def slot_banks(banks: int, slots: int) -> list[tuple[int, ...]]:
        """The banks (indexes in the node's bank order) of each of ``slots`` cells on a node (docs/cache-locality.md).

        With as many banks as cells or more, each cell takes whole banks, in bank order, their counts
        differing by at most one; with fewer, the cells are spread evenly over the banks, each in one.
        """
        if banks >= slots:
            groups, start = [], 0
            for count in even_split(banks, slots):
                groups.append(tuple(range(start, start + count)))
                start += count
            return groups
        return [(bank,) for bank, count in enumerate(even_split(slots, banks)) for _slot in range(count)]

    def node_banks(self, node: int) -> list[tuple[tuple[int, ...], ...]]:
        """The node's cores per L3 bank, in bank order; a single group when the host reports no banks."""
        bank_of = self.topology.l3_bank_of
        banks: dict[int, list[tuple[int, ...]]] = {}
        for core in self.topology.node(node).cores:
            banks.setdefault(bank_of.get(core[0], -1), []).append(core)
        return [tuple(banks[bank]) for bank in sorted(banks)]

    def cell_home(self, place: CellPlace) -> tuple[int, ...] | None:
        """The host CPUs a cell sharing its node floats over: the whole L3 banks of its slice.

        None for a cell that has its nodes to itself, or whose node has fewer than two L3 banks: it
        floats over its whole nodes, as without banks.
        """
        if place.slots == 1 or not self.topology.l3_bank_of:
            return None
        banks = self.node_banks(place.nodes[0])
        if len(banks) < 2:
            return None
        group = self.slot_banks(len(banks), place.slots)[place.slot]
        return tuple(sorted(cpu for bank in group for core in banks[bank] for cpu in core))

    def host_distance(self, first: int, second: int) -> int:
        """The symmetric host distance: firmware tables are occasionally asymmetric; take the nearer.

        Valid by construction: ``HostTopology`` refuses a host reporting a distance libvirt would refuse.
        """
        return min(self.topology.distance(first, second), self.topology.distance(second, first))

    # -- vCPUs ------------------------------------------------------------------------------------

    def guest_threads(self, cpu_cells: list[int], places: list[CellPlace]) -> int:
        if self.spec.distribution != "siblings":
            return 1
        widths = {
            node: self.topology.node(node).threads_per_core
            for cell in cpu_cells
            for node in places[cell].nodes
            if self.topology.node(node).has_cpus
        }
        if len(set(widths.values())) > 1:
            detail = ", ".join(f"node {node}: {width}" for node, width in sorted(widths.items()))
            raise PlacementError(
                f"distribution siblings needs one SMT width on the selected host nodes; threads per core differ "
                f"({detail})"
            )
        threads = next(iter(widths.values()))
        if self.guest.vcpus % threads:
            raise SpecError(
                f"distribution siblings builds guest cores of {threads} threads like the host; "
                f"{self.guest.vcpus} vCPUs is not a multiple of {threads}"
            )
        # The vCPUs online at boot are the first `current` of the enable order, which goes by whole
        # guest cores: a count that is not whole cores would boot with a core split (and QEMU's
        # pseries machine refuses to start: "smp_cpus (3) must be multiple of threads (2)").
        current = self.guest.current_vcpus
        if current is not None and current % threads:
            raise SpecError(
                f"distribution siblings brings guest cores of {threads} threads online whole; "
                f"{current} vCPUs online at boot (<vcpu current>) is not a multiple of {threads}"
            )
        return threads

    def distribute(self, cpu_cells: list[int], places: list[CellPlace], threads: int) -> dict[int, list[int]]:
        host_cells: list[int] | None = None
        if self.spec.distribution == "round-robin":
            cell_of_cpu = self.cell_of_host_cpu(cpu_cells, places)
            host_cells = [cpu_cells.index(cell_of_cpu[cpu]) for cpu in sorted(cell_of_cpu)]
        blocks = distribute_vcpus(self.guest.vcpus, len(cpu_cells), self.spec.distribution, threads, host_cells)
        return dict(zip(cpu_cells, blocks, strict=True))

    def cell_of_host_cpu(self, cpu_cells: list[int], places: list[CellPlace]) -> dict[int, int]:
        """Host CPU -> guest cell, for round-robin: a node shared by several cells is cut in slices."""
        mapping: dict[int, int] = {}
        for cell in cpu_cells:
            place = places[cell]
            for node in place.nodes:
                cpus = self.topology.node(node).usable_cpus
                if place.slots == 1:
                    mapping.update(dict.fromkeys(cpus, cell))
                    continue
                mapping.update(dict.fromkeys(self.slot_cpus(node, place.slots)[place.slot], cell))
        return mapping

    def check_cells_have_vcpus(
        self, cpu_cells: list[int], assigned: dict[int, list[int]], places: list[CellPlace], threads: int
    ) -> None:
        if self.spec.cpuless_cells:
            return
        empty = [cell for cell in cpu_cells if not assigned[cell]]
        if not empty:
            return
        if len(cpu_cells) * threads > self.guest.vcpus:
            unit = "vCPUs" if threads == 1 else f"vCPUs (whole cores of {threads} threads)"
            raise PlacementError(
                f"{len(cpu_cells)} guest cells with host CPUs need at least {len(cpu_cells) * threads} {unit}, "
                f"the guest has {self.guest.vcpus}; use fewer cells or set cpuless_cells to allow cells "
                "without vCPUs"
            )
        cell = empty[0]
        raise PlacementError(
            f"distribution {self.spec.distribution} leaves guest cell {cell} ({nodes_text(places[cell].nodes)}) "
            f"without vCPUs for {self.guest.vcpus} vCPUs; use more vCPUs, another distribution, "
            "or set cpuless_cells"
        )

    @staticmethod
    def guest_topology(cell_of: list[int], threads: int) -> GuestTopology:
        """The fewest sockets such that no socket (hence no core) spans two cells.

        A socket of s vCPUs stays within one cell exactly when s divides every position where the
        cell changes; the largest such s is their gcd with the vCPU count.
        """
        size = len(cell_of)
        for position in range(1, len(cell_of)):
            if cell_of[position] != cell_of[position - 1]:
                size = gcd(size, position)
                if size == threads or size == 1:
                    break
        return GuestTopology(sockets=len(cell_of) // size, dies=1, cores=size // threads, threads=threads)

    # -- memory -----------------------------------------------------------------------------------

    def memory_total(self) -> int:
        memory = self.spec.memory_kib or self.guest.memory_kib
        if memory is None:
            raise SpecError("no memory size: set memory in the vnuma spec or <memory> in the domain")
        return memory

    def memory_granule(self) -> int:
        page = self.spec.hugepages_kib
        base = self.topology.cell_granule_kib
        if page is None:
            return base
        if page not in self.topology.page_sizes_kib:
            offered = ", ".join(format_kib(size) for size in self.topology.page_sizes_kib)
            raise PlacementError(f"hugepages of {format_kib(page)} are not offered by the host (it has {offered})")
        return lcm(base, page)

    def split_memory(self, total: int, granule: int, cell_vcpus: list[list[int]]) -> list[int]:
        if total % granule:
            if self.spec.hugepages_kib:
                reason = "the hugepage size"
            elif self.topology.is_power:
                reason = f"QEMU's pseries machine takes each NUMA node's memory in {format_kib(granule)} blocks"
            else:
                reason = "libvirt rounds each cell up to 1 MiB"
            raise SpecError(f"memory {format_kib(total)} is not a multiple of {format_kib(granule)} ({reason})")
        units = total // granule
        cells = len(cell_vcpus)
        if self.spec.memory_split == "vcpus":
            without = [cell for cell, vcpus in enumerate(cell_vcpus) if not vcpus]
            if without:
                raise SpecError(
                    f"memory_split vcpus gives memory in proportion to vCPUs, but {cells_text(without)} "
                    "has no vCPUs; use memory_split even"
                )
            shares = balanced_shares(units, cells, [len(vcpus) for vcpus in cell_vcpus])
        else:
            shares = balanced_shares(units, cells)
        if min(shares) == 0:
            raise SpecError(
                f"memory {format_kib(total)} is too small for {cells} cells of at least {format_kib(granule)} each"
            )
        return [share * granule for share in shares]

    def holds_memory(self, node: int) -> bool:
        page = self.spec.hugepages_kib
        host = self.topology.node(node)
        return (host.page_pool_kib(page) if page else host.memory_kib) > 0

    def memory_nodes(self, cell: int, place: CellPlace) -> tuple[int, ...]:
        nodes = tuple(node for node in place.nodes if self.holds_memory(node))
        if not nodes and all(self.topology.node(node).memory_kib == 0 for node in place.nodes):
            # A memory-less node with CPUs (some AMD and ARM hosts) is served by the kernel from the
            # nearest node with memory; the guest cell's memory is bound there too.
            nodes = self.nearest_memory(place.nodes)
        if not nodes:
            page = self.spec.hugepages_kib
            what = f"{format_kib(page)} hugepages" if page else "memory"
            raise PlacementError(
                f"guest cell {cell} would bind its memory to {nodes_text(place.nodes)}, which has no {what}"
            )
        # libvirt's 'preferred' policy takes exactly one node.
        return nodes[:1] if self.spec.memory_mode == "preferred" else nodes

    def nearest_memory(self, nodes: tuple[int, ...]) -> tuple[int, ...]:
        """The host node with memory nearest to ``nodes`` (then the lowest id), or () when none has any."""
        candidates = [node for node in self.topology.node_ids if self.holds_memory(node)]
        if not candidates:
            return ()
        return (min(candidates, key=lambda other: (min(self.host_distance(n, other) for n in nodes), other)),)

    def check_memory_fits(self, memory: list[int], bound: list[tuple[int, ...]]) -> None:
        # 'preferred' falls back to other nodes when the preferred one is full; the others do not.
        if self.spec.memory_mode == "preferred":
            return
        page = self.spec.hugepages_kib
        by_nodes: dict[tuple[int, ...], list[int]] = {}
        for cell, nodes in enumerate(bound):
            by_nodes.setdefault(nodes, []).append(cell)
        # A cell on memory-less nodes binds to the nearest node with memory, which may be in another
        # cell's group: the node sets then overlap, and their cells must also fit together in the union
        # (12 GiB bound to nodes 0-1 and 8 GiB to node 0 fit one by one in 8 GiB nodes, not together).
        # Groups are disjoint and such bindings are single nodes, so each set plus each union suffices.
        unions: list[tuple[set[int], list[int]]] = []
        for nodes, cells in by_nodes.items():
            merged = (set(nodes), list(cells))
            for other in [union for union in unions if union[0] & merged[0]]:
                unions.remove(other)
                merged = (merged[0] | other[0], merged[1] + other[1])
            unions.append(merged)
        for union_nodes, union_cells in unions:
            if sorted(union_cells) != by_nodes.get(tuple(sorted(union_nodes))):
                by_nodes[tuple(sorted(union_nodes))] = sorted(union_cells)
        for nodes, cells in by_nodes.items():
            need = sum(memory[cell] for cell in cells)
            if page:
                have = sum(self.topology.node(node).page_pool_kib(page) for node in nodes)
            else:
                have = sum(self.topology.node(node).memory_kib for node in nodes)
            if need <= have:
                continue
            verb = "needs" if len(cells) == 1 else "need together"
            has = "has" if len(nodes) == 1 else "have"
            pool = f" in its {format_kib(page)} page pool" if page else ""
            raise PlacementError(
                f"guest {cells_text(cells)} {verb} {format_kib(need)}, {nodes_text(nodes)} {has} "
                f"{format_kib(have)}{pool}"
            )

    # -- distances --------------------------------------------------------------------------------

    def distances(self, places: list[CellPlace]) -> list[tuple[int, ...]]:
        count = len(places)
        matrix = [[LOCAL_DISTANCE] * count for _place in places]
        # The distance between two cells does not depend on their order (host_distance is symmetric,
        # and so is the minimum over both node sets): each pair is worked out once, for both cells.
        for index, first in enumerate(places):
            for other in range(index + 1, count):
                matrix[index][other] = matrix[other][index] = self.cell_distance(first.nodes, places[other].nodes)
        return [tuple(row) for row in matrix]

    def cell_distance(self, first: tuple[int, ...], second: tuple[int, ...]) -> int:
        """The guest distance between two distinct cells on host node sets ``first`` and ``second``."""
        if first == second:
            return SAME_NODE_DISTANCE
        return max(min(self.host_distance(a, b) for a in first for b in second), SAME_NODE_DISTANCE)

    # -- pinning ----------------------------------------------------------------------------------

    def floating_pins(self, cell_vcpus: list[list[int]], places: list[CellPlace]) -> list[tuple[int, ...]]:
        pins: list[tuple[int, ...]] = [()] * self.guest.vcpus
        for cell, vcpus in enumerate(cell_vcpus):
            if not vcpus:
                continue
            nodes = places[cell].nodes
            home = self.cell_home(places[cell])
            if home is None:
                home = tuple(cpu for node in nodes for cpu in self.topology.node(node).usable_cpus)
            cpus = tuple(cpu for cpu in home if cpu not in self.taken)
            if not cpus:
                raise PlacementError(
                    f"every host CPU of {nodes_text(nodes)} is dedicated to other guests "
                    f"({self.owners(nodes)}); guest cell {cell} has nowhere to run"
                )
            cpus = tuple(sorted(cpus))
            for vcpu in vcpus:
                pins[vcpu] = cpus
        return pins

    def owners(self, nodes: Sequence[int], siblings: bool = False) -> str:
        """The guests holding a CPU of ``nodes``; with ``siblings``, also a sibling of one (a blocked core)."""
        here = {cpu for node in nodes for cpu in self.topology.node(node).usable_cpus}
        names = sorted(
            {
                owner
                for cpu, owner in self.taken.items()
                if cpu in here or (siblings and self.topology.sharing_a_core((cpu,)) & here)
            }
        )
        return ", ".join(names)

    def dedicated_pins(
        self, cell_vcpus: list[list[int]], places: list[CellPlace], threads: int
    ) -> tuple[list[tuple[int, ...]], set[int]]:
        """1:1 placement.  Returns the pins and every host CPU this guest holds (reserved siblings too)."""
        whole_cores = self.spec.pinning == "core" or threads > 1
        free: dict[int, list[list[int]]] = {}
        # A host core holding a CPU of another guest is not shared at all: its free siblings would run
        # next to that guest's vCPU (pinning thread, docs/partitioning.md §7), and it is not whole
        # (pinning core).  Siblings as the host lists them, also one on another node.
        blocked = self.topology.sharing_a_core(self.taken) if self.taken else set()
        for place in places:
            for node in place.nodes:
                if node not in free:
                    cores = self.topology.node(node).cores
                    free[node] = (
                        [[] if blocked.intersection(core) else list(core) for core in cores]
                        if blocked
                        else [list(core) for core in cores]
                    )
        pins: list[tuple[int, ...]] = [()] * self.guest.vcpus
        held: set[int] = set()
        for cell, vcpus in enumerate(cell_vcpus):
            if not vcpus:
                continue
            nodes = places[cell].nodes
            guest_cores = [vcpus[index : index + threads] for index in range(0, len(vcpus), threads)]
            pool = self.dedicated_pool(places[cell], free)
            if whole_cores:
                width = max(threads, 1)
                # A core is whole when its free threads are all the online threads of its host core.
                core_width = self.topology.core_width
                full = [
                    core
                    for core in pool
                    if core and len(core) >= width and len(core) == core_width.get(core[0], len(core))
                ]
                if len(full) < len(guest_cores):
                    self.refuse_dedicated(cell, nodes, len(guest_cores), len(full), "cores")
                for guest_core, host_core in zip(guest_cores, full, strict=False):
                    for vcpu, cpu in zip(guest_core, host_core, strict=False):
                        pins[vcpu] = (cpu,)
                    held.update(host_core)
                    # A sibling the host lists on another node shares the core too: held idle, as the core's own.
                    elsewhere = self.topology.sharing_a_core(host_core).difference(host_core)
                    if elsewhere:
                        held.update(elsewhere)
                        for spare in free.values():
                            for core in spare:
                                if elsewhere.intersection(core):
                                    core.clear()
                    host_core.clear()
            else:
                threads_free = sum(len(core) for core in pool)
                if threads_free < len(vcpus):
                    self.refuse_dedicated(cell, nodes, len(vcpus), threads_free, "threads")
                # Pack sibling threads: a vCPU shares a host core with the next vCPU of its own
                # guest rather than with another guest's.
                queue = iter([cpu for core in pool for cpu in core])
                for vcpu in vcpus:
                    cpu = next(queue)
                    pins[vcpu] = (cpu,)
                    held.add(cpu)
                for core in pool:
                    core[:] = [cpu for cpu in core if cpu not in held]
        return pins, held

    def dedicated_pool(self, place: CellPlace, free: dict[int, list[list[int]]]) -> list[list[int]]:
        """The free cores a cell takes from, in the order it takes them (the lists of ``free`` themselves).

        Cores go bank by bank, so that a cell's vCPUs fill one L3 bank before the next; a cell sharing
        its node takes the cores of its own slice's banks first (docs/cache-locality.md).
        """
        bank_of = self.topology.l3_bank_of
        if not bank_of:
            return [core for node in place.nodes for core in free[node]]
        home = set(self.cell_home(place) or ())
        keyed = []
        for node in place.nodes:
            for core, host_core in zip(free[node], self.topology.node(node).cores, strict=True):
                first = host_core[0]
                keyed.append(((0 if first in home or not home else 1, bank_of.get(first, -1)), core))
        # sorted() is stable: within a bank, cores keep the node's order.
        return [core for _key, core in sorted(keyed, key=lambda item: item[0])]

    def refuse_dedicated(self, cell: int, nodes: Sequence[int], need: int, have: int, unit: str) -> None:
        taken = self.owners(nodes, siblings=True)
        detail = f" (others are dedicated to {taken})" if taken else ""
        raise PlacementError(
            f"pinning {self.spec.pinning} needs {need} free host {unit} for guest cell {cell} on "
            f"{nodes_text(nodes)}, {have} are free{detail}"
        )

    def emulator_pins(
        self, nodes: tuple[int, ...], held: set[int], places: Sequence[CellPlace]
    ) -> tuple[int, ...] | None:
        """``<emulatorpin>``: the shared set under emulator_pin nodes, or one more dedicated CPU to isolate them.

        An isolated emulator's CPU joins ``held`` (its whole core under pinning core), as a vCPU's would.
        """
        if self.spec.isolates_emulator:
            node = isolation_node(self.topology, [place.nodes for place in places])
            cpu = isolated_emulator_cpu(self.topology, self.spec.pinning, node, held, self.taken)
            held.update(held_cpus((cpu,), self.spec.pinning, self.topology))
            return cpu
        if self.spec.emulator_pin == "none":
            return None
        cpus = tuple(
            cpu
            for node in nodes
            for cpu in self.topology.node(node).usable_cpus
            if cpu not in held and cpu not in self.taken
        )
        if not cpus:
            raise PlacementError(
                f"emulator_pin nodes: every host CPU of {nodes_text(nodes)} is dedicated to vCPUs; "
                "leave a host CPU free or set emulator_pin none"
            )
        return tuple(sorted(cpus))

    def pins(
        self, cell_vcpus: list[list[int]], places: list[CellPlace], threads: int
    ) -> tuple[list[tuple[int, ...]] | None, set[int]]:
        """The vCPU pins of the spec's pinning (None for none) and the host CPUs they hold."""
        if self.spec.pinning == "none":
            return None, set()
        if self.spec.pinning == "node":
            return self.floating_pins(cell_vcpus, places), set()
        return self.dedicated_pins(cell_vcpus, places, threads)

    def numatune_nodes(self, bound: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        """``<numatune><memory nodeset>``: every bound node; libvirt's 'preferred' takes exactly one."""
        if self.spec.memory_mode == "preferred":
            return tuple(bound[0])
        return tuple(sorted({node for nodes in bound for node in nodes}))

    def bindings(
        self, places: list[CellPlace], cell_vcpus: list[list[int]], memory: list[int], threads: int
    ) -> CellBindings:
        """The host side of cells already placed (a guest that moves keeps everything else)."""
        bound = [self.memory_nodes(cell, place) for cell, place in enumerate(places)]
        self.check_memory_fits(memory, bound)
        pins, held = self.pins(cell_vcpus, places, threads)
        nodes = tuple(sorted({node for place in places for node in place.nodes}))
        return CellBindings(
            memory_nodes=tuple(bound),
            numatune_nodes=self.numatune_nodes(bound),
            vcpu_pins=tuple(pins) if pins is not None else None,
            emulator_pins=self.emulator_pins(nodes, held, places),
            held=tuple(sorted(held)),
            distances=tuple(self.distances(places)),
        )

    # -- the whole layout -------------------------------------------------------------------------

    def layout(self) -> Layout:
        spec, guest = self.spec, self.guest
        nodes = self.selected_nodes()
        places = self.place_cells(nodes)
        cpu_cells = [
            cell for cell, place in enumerate(places) if any(self.topology.node(n).has_cpus for n in place.nodes)
        ]
        threads = self.guest_threads(cpu_cells, places)
        assigned = self.distribute(cpu_cells, places, threads)
        self.check_cells_have_vcpus(cpu_cells, assigned, places, threads)
        cell_vcpus = [assigned.get(cell, []) for cell in range(len(places))]

        total = self.memory_total()
        memory = self.split_memory(total, self.memory_granule(), cell_vcpus)
        bound = [self.memory_nodes(cell, place) for cell, place in enumerate(places)]
        self.check_memory_fits(memory, bound)
        if spec.max_memory_kib is not None and spec.max_memory_kib < total:
            raise SpecError(f"max_memory {format_kib(spec.max_memory_kib)} is below the memory {format_kib(total)}")

        cell_of = [0] * guest.vcpus
        for cell, vcpus in enumerate(cell_vcpus):
            for vcpu in vcpus:
                cell_of[vcpu] = cell
        topology = self.guest_topology(cell_of, threads)

        pins, held = self.pins(cell_vcpus, places, threads)
        emulator = self.emulator_pins(nodes, held, places)

        distances = self.distances(places)
        cells = tuple(
            GuestCell(
                id=cell,
                vcpus=tuple(cell_vcpus[cell]),
                memory_kib=memory[cell],
                host_nodes=places[cell].nodes,
                memory_nodes=bound[cell],
                distances=distances[cell],
            )
            for cell in range(len(places))
        )
        numatune_nodes = self.numatune_nodes(bound)
        units = [[tuple(v[i : i + threads]) for i in range(0, len(v), threads)] for v in cell_vcpus]
        order = [vcpu for unit in balanced_enable_order(units, first=tuple(range(threads))) for vcpu in unit]
        return Layout(
            spec=spec,
            vcpus=guest.vcpus,
            current_vcpus=guest.current_vcpus or guest.vcpus,
            cells=cells,
            topology=topology,
            numatune_mode=spec.memory_mode,
            numatune_nodes=numatune_nodes,
            vcpu_pins=tuple(pins) if pins is not None else None,
            emulator_pins=emulator,
            enable_order=tuple(order),
            hugepages_kib=spec.hugepages_kib,
            max_memory_kib=spec.max_memory_kib,
            memory_slots=spec.memory_slots,
            guest=guest.name,
            hmat=guest_hmat(self.topology, cells, spec.hmat),
            dimm_block_kib=self.topology.dimm_block_kib,
            l3_cells=self.topology.l3_shapes_cells,
        )
