# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Where a guest that moves lives on its destination host: the choice of nodes (docs/migration.md).

Cells that shared host nodes on the source share them on the destination; a cell spread over several
source nodes gets as many destination nodes.  Among the node choices where every cell's memory fits (with
what other guests hold) and its dedicated CPUs are free, the planner takes the one whose distances between
cells are closest to the guest's own: the sum over cell pairs of |guest distance - host distance| is the
smallest; every choice is examined up to ``EXHAUSTIVE_CHOICES``, above that the cells are placed one by
one, most constrained first, backtracking on a dead end.  A group of cells spread over several nodes tries
every set of that many nodes, or, when there are too many (``_MAX_SETS``), its own source nodes, one tiling
of the destination into disjoint sets and the set grown from each node (``_Planner.sets``).  The choice's
key is kept as groups take sets (``_Choice``): a set tried costs its error against the groups placed, not
every pair again.
The pins and memory nodes then come from the spec's own rules (``_core/partitioner.py:bind_cells``).  The
guest and its plan: ``_core/move_models.py``; the capacity check of the plan: ``_core/move_capacity.py``.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from math import comb, lcm, prod
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.auto import node_rooms
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityReport, device_kib, named_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_models import (
    CellPlan,
    DestinationPlan,
    MovingCell,
    MovingGuest,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import (
    SAME_NODE_DISTANCE,
    CellPlace,
    bind_cells,
    cell_distance,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    GuestBinding,
    split_evenly,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.wording import cells_text, nodes_text

__all__ = [
    "EXHAUSTIVE_CHOICES",
    "plan_destination",
]

# Complete choices (one node set per group of cells) examined one by one; a 4-cell guest on an 8-node
# host has 8^4 = 4096.  Above it the groups are placed one at a time, most constrained first, backtracking on
# a dead end, with at most as many node sets tried.
EXHAUSTIVE_CHOICES = 20000
# Node sets of one size a group may take, at most; above it the group's own source nodes, one tiling of the
# destination into disjoint sets, and the set grown nearest first from each node (``_Planner.sets``).
_MAX_SETS = 256


@dataclass(frozen=True)
class _Group:
    """Guest cells that shared their source nodes: they share destination nodes too."""

    cells: tuple[int, ...]
    width: int
    # The cells' memory, in pages of ``page_kib`` (None: normal pages).
    memory_kib: int
    page_kib: int | None
    vcpus: int
    source_nodes: tuple[int, ...]
    cpuless_source: bool
    # The memory devices targeting the cells: bound with them on the destination.
    devices_kib: int = 0
    # What the group binds on its nodes, by page size (None: normal pages): the cells and their devices.
    demand: tuple[tuple[int | None, int], ...] = ()
    # 1 for the group whose nodes take the isolated emulator CPU (emulator_threads isolate), else 0.
    emulator: int = 0

    @property
    def total_kib(self) -> int:
        return self.memory_kib + self.devices_kib

    def text(self) -> str:
        """The group's memory and vCPUs for a message: ``512 MiB and 1 GiB of memory devices, 2 vCPUs``."""
        devices = f" and {format_kib(self.devices_kib)} of memory devices" if self.devices_kib else ""
        emulator = " and the isolated emulator's CPU" if self.emulator else ""
        return f"{format_kib(self.memory_kib)}{devices}, {self.vcpus} vCPUs{emulator}"


class _Planner:
    def __init__(
        self,
        guest: MovingGuest,
        topology: HostTopology,
        report: CapacityReport | None,
        taken: Mapping[int, str],
        named: Mapping[int, str] | None = None,
    ) -> None:
        self.guest = guest
        self.topology = topology
        self.taken = dict(taken)
        # Host CPUs dedicated pins may not take: other guests' dedicated CPUs and the CPUs their pins name
        # (the capacity check refuses a dedicated CPU another guest's pins name, _core/capacity.py).
        self.blocked = {**dict(named or {}), **self.taken} if guest.dedicated else dict(self.taken)
        self.normal_page = min(topology.page_sizes_kib, default=4)
        self.rooms: dict[int | None, dict[int, int]] = {}
        self.report = report
        self.groups = self.make_groups()
        self.distance_memo: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        self.free_memo: dict[int, int] = {}
        # The sets grown and tiled over some nodes, of a width: the same for every group (``sets``).
        self.sets_memo: dict[tuple[tuple[int, ...], int], set[tuple[int, ...]]] = {}
        self.cpu_memo: dict[tuple[int, tuple[int, ...]], tuple[str, int, dict[int, int]]] = {}
        # A group spreads its vCPUs evenly over its nodes: loads are kept in vCPUs x ``scale`` (every
        # group's width divides it), so that "more vCPUs than free CPUs" is exact.
        self.scale = lcm(*(group.width for group in self.groups))

    # -- what each group needs, and what each node has -------------------------------------------

    def page_of(self, cell: MovingCell) -> int | None:
        page = cell.hugepage_kib
        return page if page is not None and page > self.normal_page else None

    def device_demand(self) -> dict[int, dict[int | None, int]]:
        """Guest cell -> page size (None: normal) -> KiB of the memory devices that target it.

        A device is bound with the cell it targets on the destination (``DestinationPlan.binding``,
        ``_xml/migration.py:rewrite_root``), and holds what the capacity check counts for a running guest
        (``_core/capacity.py:device_kib``), in its own page size, else its cell's (``GuestBinding.dimm_page_kib``).
        A device without a guest cell is bound to no cell's nodes: the capacity check counts it after the plan.
        """
        guest = self.guest
        binding = GuestBinding(
            name=guest.name,
            cells=tuple(
                CellBinding(id=cell.id, vcpus=cell.vcpus, memory_kib=cell.memory_kib, hugepage_kib=cell.hugepage_kib)
                for cell in guest.cells
            ),
            dimms=guest.dimms,
            running=True,
        )
        ids = {cell.id for cell in guest.cells}
        demand: dict[int, dict[int | None, int]] = {}
        for dimm in guest.dimms:
            if dimm.cell is None or dimm.cell not in ids:
                continue
            page = binding.dimm_page_kib(dimm)
            page = page if page is not None and page > self.normal_page else None
            pages = demand.setdefault(dimm.cell, {})
            pages[page] = pages.get(page, 0) + device_kib(dimm, binding.running)
        return demand

    def make_groups(self) -> list[_Group]:
        by_source: dict[tuple[int, ...], list[MovingCell]] = {}
        alone: list[list[MovingCell]] = []
        for cell in self.guest.cells:
            if cell.source_nodes:
                by_source.setdefault(cell.source_nodes, []).append(cell)
            else:
                alone.append([cell])
        groups = []
        usable = len(self.topology.nodes)
        source = self.guest.source
        devices = self.device_demand()
        for key, cells in [*by_source.items(), *(((), cells) for cells in alone)]:
            cpuless = (
                source is not None
                and bool(key)
                and all(source.has_node(node) and not source.node(node).has_cpus for node in key)
            )
            memory = sum(cell.memory_kib for cell in cells)
            page = self.page_of(cells[0])
            demand: dict[int | None, int] = {page: memory}
            for cell in cells:
                for device_page, kib in devices.get(cell.id, {}).items():
                    demand[device_page] = demand.get(device_page, 0) + kib
            groups.append(
                _Group(
                    cells=tuple(cell.id for cell in cells),
                    width=min(max(len(key), 1), usable),
                    memory_kib=memory,
                    page_kib=page,
                    vcpus=sum(len(cell.vcpus) for cell in cells),
                    source_nodes=key,
                    cpuless_source=cpuless,
                    devices_kib=sum(kib for cell in cells for kib in devices.get(cell.id, {}).values()),
                    demand=tuple(sorted(demand.items(), key=lambda item: (item[0] is not None, item[0] or 0))),
                )
            )
        groups.sort(key=lambda group: group.cells[0])
        if self.guest.isolates_emulator:
            # The partitioner's rule (_core/iothreads.py:isolation_node): the emulator's CPU is on the node of
            # guest cell 0, else of the next cell with CPUs; counted here with the first group that has vCPUs.
            first = next((index for index, group in enumerate(groups) if group.vcpus), None)
            if first is not None:
                groups[first] = replace(groups[first], emulator=1)
        return groups

    def room(self, page: int | None) -> dict[int, int]:
        """Destination node -> KiB of ``page`` memory (None: normal) other guests leave free."""
        if page not in self.rooms:
            if self.report is not None:
                self.rooms[page] = {
                    node: room.free_kib for node, room in node_rooms(self.topology, self.report, page).items()
                }
            else:
                self.rooms[page] = {
                    node.id: node.page_pool_kib(page) if page else node.memory_kib for node in self.topology.nodes
                }
        return self.rooms[page]

    def free_threads(self, node: int) -> int:
        if node not in self.free_memo:
            self.free_memo[node] = sum(1 for cpu in self.topology.node(node).usable_cpus if cpu not in self.blocked)
        return self.free_memo[node]

    def free_cores(self, node: int, width: int) -> int:
        return sum(
            1 for core in self.topology.node(node).cores if len(core) >= width and not self.blocked.keys() & set(core)
        )

    def cpu_units(self, group: _Group, nodes: tuple[int, ...]) -> tuple[str, int, dict[int, int]]:
        """What dedicated pinning takes of each node: the unit (threads or cores), the need, the supply."""
        threads = self.threads_on(nodes)
        if self.guest.pinning == "core" or threads > 1:
            width = max(threads, 1)
            cores = (-(-group.vcpus // width) if threads > 1 else group.vcpus) + group.emulator
            return "cores", cores, {node: self.free_cores(node, width) for node in nodes}
        return "threads", group.vcpus + group.emulator, {node: self.free_threads(node) for node in nodes}

    def threads_on(self, nodes: Sequence[int]) -> int:
        """The guest core width dedicated pins keep whole on ``nodes``: 1 when their cores are narrower."""
        widths = [self.topology.node(node).threads_per_core for node in nodes if self.topology.node(node).has_cpus]
        return self.guest.threads if widths and min(widths) >= self.guest.threads else 1

    # -- the node sets each group may take ------------------------------------------------------

    def candidates(self, group: _Group) -> list[tuple[int, ...]]:
        nodes = [node.id for node in self.topology.nodes if self.room(group.page_kib).get(node.id, 0) > 0]
        if group.vcpus:
            sets = [s for s in self.sets(nodes, group.width, group) if any(self.topology.node(n).has_cpus for n in s)]
        else:
            sets = self.sets(nodes, group.width, group)
        return [s for s in sets if self.fits_alone(group, s) is None]

    def sets(self, nodes: list[int], width: int, group: _Group | None = None) -> list[tuple[int, ...]]:
        """The sets of ``width`` of ``nodes`` that ``group`` may take (docs/migration.md, Candidates).

        Every combination up to ``_MAX_SETS``.  Above it: the group's own source nodes when the destination
        has them all (a restore on the same host, a host numbered alike), one tiling of ``nodes`` into
        disjoint sets (so that as many groups as it has sets can have nodes of their own), and the set
        grown from each node.
        """
        if width > len(nodes):
            return []
        if comb(len(nodes), width) <= _MAX_SETS:
            return list(combinations(nodes, width))
        shared = (tuple(nodes), width)
        if shared not in self.sets_memo:
            grown = {self.grow(seed, nodes, width) for seed in nodes}
            self.sets_memo[shared] = grown.union(self.tiling(nodes, width))
        found = set(self.sets_memo[shared])
        own = tuple(sorted(set(group.source_nodes))) if group is not None else ()
        if len(own) == width and set(own) <= set(nodes):
            found.add(own)
        return sorted(found)

    def grow(self, seed: int, nodes: Sequence[int], width: int) -> tuple[int, ...]:
        """``width`` of ``nodes`` grown from ``seed`` nearest first.

        The next member is the node whose distances to the members sum smallest, then the lowest id; the
        sums are kept as the set grows.
        """
        distance = self.topology.distance
        members = [seed]
        rest = {node: distance(seed, node) for node in nodes if node != seed}
        while len(members) < width:
            nearest = min(rest, key=lambda node: (rest[node], node))
            members.append(nearest)
            del rest[nearest]
            for node in rest:
                rest[node] += distance(nearest, node)
        return tuple(sorted(members))

    def tiling(self, nodes: Sequence[int], width: int) -> list[tuple[int, ...]]:
        """``nodes`` cut into disjoint sets of ``width``, each grown from the lowest node not yet taken."""
        rest = list(nodes)
        sets = []
        while len(rest) >= width:
            block = self.grow(min(rest), rest, width)
            sets.append(block)
            rest = [node for node in rest if node not in block]
        return sets

    def fits_alone(self, group: _Group, nodes: tuple[int, ...]) -> str | None:
        """Why ``group`` cannot live on ``nodes`` even with the rest of the host empty of this guest, or None."""
        for page, need in group.demand:
            room = self.room(page)
            have = sum(room.get(node, 0) for node in nodes)
            if need > have:
                pool = f" in {format_kib(page)} pages" if page else ""
                return f"needs {format_kib(need)}{pool}, {nodes_text(nodes)} has {format_kib(have)} free"
        if self.guest.dedicated and group.vcpus:
            unit, need, supply = self.cpu_units(group, nodes)
            if need > sum(supply.values()):
                return (
                    f"needs {need} free host {unit} for pinning {self.guest.pinning}, "
                    f"{nodes_text(nodes)} has {sum(supply.values())}"
                )
        return None

    # -- choosing ---------------------------------------------------------------------------------

    def set_distance(self, first: tuple[int, ...], second: tuple[int, ...]) -> int:
        key = (first, second) if first <= second else (second, first)
        if key not in self.distance_memo:
            self.distance_memo[key] = cell_distance(self.topology, key[0], key[1])
        return self.distance_memo[key]

    def pair_error(
        self, first: _Group, first_nodes: tuple[int, ...], second: _Group, second_nodes: tuple[int, ...]
    ) -> int:
        host = self.set_distance(first_nodes, second_nodes)
        return sum(abs(self.guest.distance(a, b) - host) for a in first.cells for b in second.cells)

    def inner_error(self, group: _Group) -> int:
        """Cells of one group share their nodes: the spec's distance between them (11) against the guest's."""
        return sum(abs(self.guest.distance(a, b) - SAME_NODE_DISTANCE) for a, b in combinations(group.cells, 2))

    def cpus_fit(self, sets: Mapping[int, tuple[int, ...]]) -> bool:
        """Whether the dedicated CPUs of the groups placed in ``sets`` (group index -> nodes) fit at once.

        Each group, in group order, takes what its nodes have left, node by node; shared nodes are summed.
        The memory is counted as the sets are chosen (``_Choice.push``).
        """
        if not self.guest.dedicated:
            return True
        used: dict[tuple[str, int], int] = {}
        for index in sorted(sets):
            group = self.groups[index]
            if not group.vcpus:
                continue
            nodes = sets[index]
            if (index, nodes) not in self.cpu_memo:
                self.cpu_memo[index, nodes] = self.cpu_units(group, nodes)
            unit, need, supply = self.cpu_memo[index, nodes]
            for node in nodes:
                take = min(need, supply[node] - used.get((unit, node), 0))
                if take > 0:
                    used[unit, node] = used.get((unit, node), 0) + take
                    need -= take
            if need > 0:
                return False
        return True

    def refuse(self, options: list[list[tuple[int, ...]]]) -> VnumaError:
        for group, sets in zip(self.groups, options, strict=True):
            if sets:
                continue
            nodes = [node.id for node in self.topology.nodes]
            if group.vcpus:
                nodes = [node for node in nodes if self.topology.node(node).has_cpus]
            reasons = [
                why for s in self.sets(nodes, group.width, group) if (why := self.fits_alone(group, s)) is not None
            ]
            width = "one destination node" if group.width == 1 else f"{group.width} destination nodes"
            shared = " together (they share their source nodes)" if len(group.cells) > 1 else ""
            best = self.best_reason(group)
            detail = f"; the roomiest {best}" if best else (f"; {reasons[0]}" if reasons else "")
            return PlacementError(
                f"guest {cells_text(group.cells)} ({group.text()}) must live "
                f"on {width}{shared}, and none of the destination's nodes {format_cpuset(nodes) or '(none)'} "
                f"can hold it{detail}"
            )
        need = sum(group.total_kib for group in self.groups)
        devices = sum(group.devices_kib for group in self.groups)
        with_devices = f" (with {format_kib(devices)} of memory devices)" if devices else ""
        usable = sorted({node for sets in options for node_set in sets for node in node_set})
        room = self.room(None)
        free = ", ".join(f"node {node} {format_kib(room.get(node, 0))}" for node in usable)
        named = len(self.blocked) - len(self.taken)
        dedicated = (
            f" and {self.guest.vcpus + sum(group.emulator for group in self.groups)} dedicated host CPUs "
            f"(pinning {self.guest.pinning}; {len(self.taken)} are dedicated to other guests"
            f"{f', {named} more are named in their pins' if named else ''})"
            if self.guest.dedicated
            else ""
        )
        return PlacementError(
            f"every guest cell fits the destination alone, but not all at once: the cells need {format_kib(need)}"
            f"{with_devices}{dedicated} on destination {nodes_text(usable)}, which have {free} free"
        )

    def best_reason(self, group: _Group) -> str | None:
        # The kind of memory no node has room for (a memory device's own page size may be it), else the cells'.
        page = next(
            (kind for kind, need in group.demand if need > max(self.room(kind).values(), default=0)), group.page_kib
        )
        room = self.room(page)
        if not room:
            return None
        node = max(sorted(room), key=lambda node: room[node])
        pool = f" in {format_kib(page)} pages" if page else ""
        text = f"destination node {node} has {format_kib(room[node])} free{pool}"
        if self.guest.dedicated and group.vcpus:
            unit, _need, supply = self.cpu_units(group, (node,))
            text += f" and {supply[node]} free host {unit} for pinning {self.guest.pinning}"
        return text

    def search(self, options: list[list[tuple[int, ...]]]) -> tuple[list[tuple[int, ...]], int, str]:
        total = prod(len(sets) for sets in options)
        if total <= EXHAUSTIVE_CHOICES:
            return self.exhaustive(options, total)
        return self.backtrack(options)

    def exhaustive(self, options: list[list[tuple[int, ...]]], total: int) -> tuple[list[tuple[int, ...]], int, str]:
        """Up to ``EXHAUSTIVE_CHOICES``: the choice of the smallest key (``_Choice.key``) among all that fit.

        The choices are walked as a tree, one group a level (the groups with the fewest sets first), the
        key's terms added as each group takes a set.  A subtree is left when the groups placed already
        fit no longer (memory) or score worse than the best choice found: each term only grows as groups
        are added, so no choice below can be better.  The choice of the smallest key is unique (the key
        ends with the choice itself), so the order of the walk does not change it.
        """
        order = sorted(range(len(self.groups)), key=lambda i: (len(options[i]), i))
        choice = _Choice(self, memo=True)
        best: tuple[_Key, dict[int, tuple[int, ...]]] | None = None

        def walk(depth: int) -> None:
            nonlocal best
            if best is not None and choice.score() > best[0][:5]:
                return
            if depth == len(order):
                key = choice.key()
                if (best is None or key < best[0]) and self.cpus_fit(choice.sets):
                    best = (key, dict(choice.sets))
                return
            index = order[depth]
            for position, node_set in enumerate(options[index]):
                if choice.push(index, node_set, position):
                    walk(depth + 1)
                choice.pop()

        walk(0)
        if best is None:
            raise self.refuse(options)
        chosen = best[1]
        return [chosen[i] for i in range(len(self.groups))], total, f"exhaustive over {total} choices"

    def backtrack(self, options: list[list[tuple[int, ...]]]) -> tuple[list[tuple[int, ...]], int, str]:
        """Above ``EXHAUSTIVE_CHOICES``: place the groups one at a time, most constrained first, backtracking.

        The group with the fewest candidate sets goes first (then the largest memory); each tries its sets
        best first (``_Choice.key`` with the groups already placed) and, at a dead end, the group before it
        takes its next set.  At most ``EXHAUSTIVE_CHOICES`` sets are tried in all.  A set's key is what it
        adds to the groups already placed (``_Choice.push``): the distance errors against each of them, not
        every pair again.
        """
        order = sorted(range(len(self.groups)), key=lambda i: (len(options[i]), -self.groups[i].total_kib, i))
        choice = _Choice(self)
        tried = 0
        # The deepest dead end: how many groups were placed, and the group that found no set beside them.
        stuck: tuple[int, int] = (-1, order[0])

        def place(depth: int) -> bool:
            nonlocal tried, stuck
            if depth == len(order):
                return True
            index = order[depth]
            # The groups placed are the same for every set tried here: the key's last term (the choice)
            # differs only in this group's set, so (score, set) orders the sets as the key does.
            ranked = []
            for node_set in options[index]:
                if tried >= EXHAUSTIVE_CHOICES:
                    break
                tried += 1
                if choice.push(index, node_set) and self.cpus_fit(choice.sets):
                    ranked.append((choice.score(), node_set))
                choice.pop()
            for _score, node_set in sorted(ranked):
                choice.push(index, node_set)
                if place(depth + 1):
                    return True
                choice.pop()
            if depth > stuck[0]:
                stuck = (depth, index)
            return False

        if not place(0):
            if tried < EXHAUSTIVE_CHOICES:
                # Every combination was ruled out: the groups fit alone, not all at once.
                raise self.refuse(options)
            depth, index = stuck
            group = self.groups[index]
            beside = sorted(cell for i in order[:depth] for cell in self.groups[i].cells)
            where = f"beside {cells_text(beside)}" if beside else "on any destination node"
            raise PlacementError(
                f"found no place for guest {cells_text(group.cells)} ({group.text()}) {where} within "
                f"{EXHAUSTIVE_CHOICES} tries of node sets (the destination has more choices than are examined "
                f"one by one); every guest cell fits the destination alone"
            )
        return (
            [choice.sets[i] for i in range(len(self.groups))],
            tried,
            f"most constrained cells first, backtracking, {tried} sets tried",
        )

    # -- the plan ---------------------------------------------------------------------------------

    def plan(self) -> DestinationPlan:
        guest = self.guest
        options = [self.candidates(group) for group in self.groups]
        if any(not sets for sets in options):
            raise self.refuse(options)
        choice, considered, how = self.search(options)
        places: list[CellPlace] = [CellPlace(())] * len(guest.cells)
        for group, nodes in zip(self.groups, choice, strict=True):
            for slot, cell in enumerate(group.cells):
                places[cell] = CellPlace(nodes, slot, len(group.cells))
        pages = {self.page_of(cell) for cell in guest.cells}
        page = pages.pop() if len(pages) == 1 else None
        threads = self.threads_on([node for nodes in choice for node in nodes])
        shape = GuestShape(vcpus=guest.vcpus, name=guest.name)

        def bind(emulator_pin: str, emulator_threads: str = "share") -> Any:
            spec = VnumaSpec(
                mode="node",
                pinning=guest.pinning,
                memory_mode=guest.memory_mode,
                emulator_pin=emulator_pin,
                emulator_threads=emulator_threads,
                hugepages_kib=page,
            )
            return bind_cells(
                self.topology,
                spec,
                shape,
                places,
                [cell.vcpus for cell in guest.cells],
                [cell.memory_kib for cell in guest.cells],
                threads,
                self.blocked,
            )

        isolate = guest.isolates_emulator
        # Under isolate, the partitioner's own rule (_core/iothreads.py:isolated_emulator_cpu): one more dedicated CPU.
        bound = bind("none", "isolate") if isolate else bind("nodes" if guest.emulator_pin == "nodes" else "none")
        try:
            shared = bound.emulator_pins if guest.emulator_pin == "nodes" else bind("nodes").emulator_pins
        except PlacementError:
            # Every CPU of the chosen nodes runs a dedicated vCPU: I/O threads float with the emulator.
            shared = None
        if shared is not None and isolate:
            # Not the isolated emulator's CPU: it is held (bound.held) as a vCPU's would be.
            shared = tuple(cpu for cpu in shared if cpu not in bound.held) or None
        pins = {vcpu: cpus for vcpu, cpus in enumerate(bound.vcpu_pins or ()) if cpus}
        cells = tuple(
            CellPlan(
                id=cell.id,
                vcpus=cell.vcpus,
                memory_kib=cell.memory_kib,
                host_nodes=places[cell.id].nodes,
                memory_nodes=bound.memory_nodes[cell.id],
                source_nodes=cell.source_nodes,
                guest_distances=tuple(guest.distance(cell.id, other.id) for other in guest.cells),
                host_distances=bound.distances[cell.id],
                hugepage_kib=cell.hugepage_kib,
            )
            for cell in guest.cells
        )
        error = (
            sum(abs(a - b) for cell in cells for a, b in zip(cell.guest_distances, cell.host_distances, strict=True))
            // 2
        )
        return DestinationPlan(
            guest=guest.name,
            cells=cells,
            memory_mode=guest.memory_mode,
            numatune_nodes=bound.numatune_nodes,
            vcpu_pins=pins,
            emulator_pins=bound.emulator_pins if guest.emulator_pin == "nodes" or isolate else None,
            shared_cpus=shared or (),
            held_cpus=bound.held,
            distance_error=error,
            why=self.explain(cells, error, how, threads),
            considered=considered,
            dimms=guest.dimms,
        )

    def explain(self, cells: Sequence[CellPlan], error: int, how: str, threads: int) -> str:
        moves = "; ".join(
            f"cell {cell.id} {nodes_text(cell.source_nodes) if cell.source_nodes else 'unbound'} -> "
            f"{nodes_text(cell.host_nodes)}"
            for cell in cells
        )
        kept = "the guest's distances kept exactly" if error == 0 else f"distance error {error} (sum over cell pairs)"
        text = f"{moves}; {kept}; {how}"
        if self.guest.isolates_emulator:
            text += "; emulator threads isolated on a dedicated host CPU of their own"
        if self.guest.dedicated and self.guest.threads > 1 and threads == 1:
            text += (
                f"; the destination's cores have fewer than {self.guest.threads} threads: "
                "each vCPU is pinned to a host thread of its own"
            )
        return text


_Key = tuple[int, int, int, int, int, tuple[tuple[int, ...], ...]]


class _Choice:
    """Node sets chosen for some of the guest's groups, with the terms of the choice's key kept as it grows.

    The key (smaller is better, docs/migration.md, Choice) is, in this order: the pairs of groups that share
    a node, the nodes with more vCPUs than free CPUs, the distance error, the groups that left a CPU-less
    node for one with CPUs, the groups off their source nodes, then the node sets in group order.
    ``push`` adds a group's set and says whether the memory of the groups placed still fits the nodes;
    ``pop`` takes the last set back.  Each costs what the one group adds: its distance error against each
    group placed, never every pair again.
    """

    def __init__(self, planner: _Planner, memo: bool = False) -> None:
        self.planner = planner
        self.sets: dict[int, tuple[int, ...]] = {}
        self.positions: dict[int, int] = {}
        # Node -> the groups placed on it; (page, node) -> KiB bound there; node -> vCPUs x planner.scale.
        self.on_node: dict[int, list[int]] = {}
        self.memory: dict[tuple[int | None, int], int] = {}
        self.load: dict[int, int] = {}
        self.over = 0
        self.shared = self.crowded = self.error = self.kind = self.moved = 0
        self.added: list[tuple[int, int, int, int, int]] = []
        # Pair errors by group and set position, when the same pairs come back often (the exhaustive walk).
        self.pairs: dict[tuple[int, int, int, int], int] | None = {} if memo else None

    def errors_beside(self, index: int, nodes: tuple[int, ...], position: int | None) -> int:
        """The distance error of group ``index`` on ``nodes`` against each group placed."""
        planner = self.planner
        group, groups, pair_error = planner.groups[index], planner.groups, planner.pair_error
        if self.pairs is None or position is None:
            return sum(pair_error(group, nodes, groups[other], placed) for other, placed in self.sets.items())
        error = 0
        for other, placed in self.sets.items():
            key = (index, position, other, self.positions[other])
            if key not in self.pairs:
                self.pairs[key] = pair_error(group, nodes, groups[other], placed)
            error += self.pairs[key]
        return error

    def push(self, index: int, nodes: tuple[int, ...], position: int | None = None) -> bool:
        planner = self.planner
        group = planner.groups[index]
        beside = {other for node in nodes for other in self.on_node.get(node, ())}
        error = planner.inner_error(group) + self.errors_beside(index, nodes, position)
        kind = 1 if group.cpuless_source and any(planner.topology.node(node).has_cpus for node in nodes) else 0
        moved = 0 if nodes == group.source_nodes else 1
        share = group.vcpus * (planner.scale // len(nodes))
        crowded = 0
        for node in nodes:
            before = self.load.get(node, 0)
            self.load[node] = before + share
            limit = planner.free_threads(node) * planner.scale
            crowded += (before + share > limit) - (before > limit)
            self.on_node.setdefault(node, []).append(index)
        for page, need in group.demand:
            room = planner.room(page)
            for node, kib in split_evenly(need, nodes).items():
                before = self.memory.get((page, node), 0)
                self.memory[page, node] = before + kib
                limit = room.get(node, 0)
                self.over += (before + kib > limit) - (before > limit)
        self.sets[index] = nodes
        if position is not None:
            self.positions[index] = position
        added = (len(beside), crowded, error, kind, moved)
        self.added.append(added)
        self.shared += added[0]
        self.crowded += crowded
        self.error += error
        self.kind += kind
        self.moved += moved
        return self.over == 0

    def pop(self) -> None:
        """Take back the set added last."""
        planner = self.planner
        index = next(reversed(self.sets))
        nodes = self.sets.pop(index)
        self.positions.pop(index, None)
        group = planner.groups[index]
        shared, crowded, error, kind, moved = self.added.pop()
        self.shared -= shared
        self.crowded -= crowded
        self.error -= error
        self.kind -= kind
        self.moved -= moved
        share = group.vcpus * (planner.scale // len(nodes))
        for node in nodes:
            self.load[node] -= share
            self.on_node[node].pop()
        for page, need in group.demand:
            room = planner.room(page)
            for node, kib in split_evenly(need, nodes).items():
                before = self.memory[page, node]
                self.memory[page, node] = before - kib
                limit = room.get(node, 0)
                self.over -= (before > limit) - (before - kib > limit)

    def score(self) -> tuple[int, int, int, int, int]:
        """The key without its last term (the choice itself); each term only grows as groups are added."""
        return (self.shared, self.crowded, self.error, self.kind, self.moved)

    def key(self) -> _Key:
        """Smaller is better: nodes of their own, CPUs enough, distances, kind, source nodes, node ids."""
        return (*self.score(), tuple(self.sets[index] for index in sorted(self.sets)))


def plan_destination(
    guest: MovingGuest,
    topology: HostTopology,
    report: CapacityReport | None = None,
    taken_cpus: Mapping[int, str] | None = None,
    others: Iterable[GuestBinding] = (),
) -> DestinationPlan:
    """Plan ``guest``'s host-side bindings on the destination ``topology``.

    ``report`` is the destination's capacity check without this guest (what other guests hold per
    node; None: the nodes are empty); ``taken_cpus`` maps the host CPUs other guests hold for
    themselves to their names (``report.dedicated`` when None).  ``others`` are the destination's guests
    as the capacity check counts them (``check_destination``): under dedicated pinning the CPUs their pins
    name are not taken either.  Raises ``PlacementError`` naming the guest, the cell and the limit when no
    choice of nodes holds it.
    """
    taken = dict(taken_cpus) if taken_cpus is not None else dict(report.dedicated) if report is not None else {}
    taken = {cpu: name for cpu, name in taken.items() if name != guest.name}
    try:
        return _Planner(guest, topology, report, taken, named_cpus(others, guest.name)).plan()
    except VnumaError as error:
        raise error.naming(guest.name) from None
