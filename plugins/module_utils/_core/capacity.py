# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Whether a host can hold its guests: memory per host node, hugepage pools, dedicated CPUs.

Input: the host topology and the placements of the guests (``_core.placement``): planned ones from the
definitions about to be written, the others from their current definitions.  A guest *counts* when it runs or
starts with the host (autostart): that is the memory and the CPUs the host must really provide.  A
planned guest that is shut off and not autostart does not count (a host may hold more defined guests
than it can run at once); instead a warning says when starting it now would over-commit the host.

The rules:
- normal memory bound to a host node (cells and DIMMs) <= the node's memory - its hugepage pools -
  the reserve;
- hugepage-backed memory bound to a node <= that node's pool of the page size;
- memory bound to no node (no ``<numatune>``, ``placement='auto'``) <= what the nodes have left
  after the bound memory, summed over the host (and likewise per hugepage size);
- a binding that names a host node the host does not have is a problem;
- a dedicated host CPU held by two guests, or named in another guest's pins, is a problem;
- a guest with unpinned vCPUs on a host where some guest holds dedicated CPUs is a warning (its
  vCPUs may run there).

A problem that a planned guest takes part in *blocks*: ``capacity: fail`` refuses the plan.  A
problem among the other guests alone is reported but does not block, since the call neither causes
it nor can fix it.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    DimmBinding,
    GuestBinding,
    GuestPlacement,
    split_evenly,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import (
    HOST_CPU_ID_REASON,
    MAX_HOST_CPU_ID,
    HostNode,
    HostTopology,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    check_count,
    format_kib,
    format_kib_rounded,
    parse_int,
    shown,
)

__all__ = [
    "CAPACITY_MODES",
    "CapacityError",
    "CapacityReport",
    "CapacityTally",
    "GuestShare",
    "MemoryRoom",
    "NodeCapacity",
    "PoolCapacity",
    "check_capacity",
    "counts",
    "named_cpus",
    "device_kib",
    "format_size",
]

CAPACITY_MODES = ("fail", "report", "ignore")


def counts(binding: GuestBinding) -> bool:
    """Whether a guest takes from the host's capacity: it runs, or starts with the host."""
    return binding.running or binding.autostart


def named_cpus(others: Iterable[GuestBinding], guest: str) -> dict[int, str]:
    """Host CPU -> a guest other than ``guest`` whose pins name it (vCPU, default, emulator), of the counted guests.

    What ``_cpu_problems`` refuses a dedicated CPU for, as a map: a planner of dedicated pinning (the migration
    planner, ``_core/move_planner.py``) leaves these CPUs out so that its plan passes this check.
    """
    named: dict[int, str] = {}
    for binding in others:
        if binding.name != guest and counts(binding):
            for cpu in sorted(binding.explicit_cpus()):
                named.setdefault(cpu, binding.name)
    return named


def format_size(kib: int) -> str:
    """A size for a message: exact (``16 GiB``, ``1536 MiB``) when whole, else to two decimals (``4.34 GiB``)."""
    if kib == 0:
        return "0"
    text = format_kib(kib)
    if not text.endswith(" KiB") or kib < 1024:
        return text
    # Real hosts report node memory to the KiB (4548812 KiB): a rounded figure reads better, the
    # exact one is in the report's *_kib values.
    return format_kib_rounded(kib, 2)


@dataclass(frozen=True)
class GuestShare:
    """What one guest takes from one place (a node, a pool, the unbound remainder)."""

    name: str
    kib: int
    source: str  # "planned" (this call's plan) or "defined" (the guest's current definition)
    running: bool
    autostart: bool

    @property
    def label(self) -> str:
        """Why the guest is counted: planned by this call, running, or starting with the host."""
        if self.source == "planned":
            return "planned"
        return "running" if self.running else "autostart"

    def text(self) -> str:
        return f"{self.name} {format_size(self.kib)} ({self.label})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kib": self.kib,
            "source": self.source,
            "running": self.running,
            "autostart": self.autostart,
        }


def _by_size(shares: Iterable[GuestShare]) -> tuple[GuestShare, ...]:
    return tuple(sorted(shares, key=lambda share: (-share.kib, share.name)))


@dataclass(frozen=True)
class PoolCapacity:
    """One node's pool of one hugepage size and the guests backed by it."""

    size_kib: int
    pool_kib: int
    guests: tuple[GuestShare, ...] = ()

    @property
    def demand_kib(self) -> int:
        return sum(share.kib for share in self.guests)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_kib": self.size_kib,
            "pool_kib": self.pool_kib,
            "demand_kib": self.demand_kib,
            "guests": [share.to_dict() for share in self.guests],
        }


@dataclass(frozen=True)
class NodeCapacity:
    """One host node: its normal memory, what the guests bind there, and its hugepage pools."""

    id: int
    memory_kib: int
    hugepages_kib: int
    reserved_kib: int
    guests: tuple[GuestShare, ...] = ()
    hugepages: tuple[PoolCapacity, ...] = ()

    @property
    def available_kib(self) -> int:
        """Normal memory guests may bind here: the node less its hugepage pools and the reserve."""
        return max(self.memory_kib - self.hugepages_kib - self.reserved_kib, 0)

    @property
    def demand_kib(self) -> int:
        return sum(share.kib for share in self.guests)

    @property
    def free_after_kib(self) -> int:
        """Normal memory left after the bound memory; negative when over-committed."""
        return self.available_kib - self.demand_kib

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "memory_kib": self.memory_kib,
            "hugepages_kib": self.hugepages_kib,
            "reserved_kib": self.reserved_kib,
            "available_kib": self.available_kib,
            "demand_kib": self.demand_kib,
            "free_after_kib": self.free_after_kib,
            "guests": [share.to_dict() for share in self.guests],
            "hugepages": [pool.to_dict() for pool in self.hugepages],
        }


@dataclass(frozen=True)
class CapacityReport:
    """The host's capacity against its counted guests."""

    nodes: tuple[NodeCapacity, ...]
    # Normal memory bound to no node, and what the nodes have left for it.
    unbound: tuple[GuestShare, ...] = ()
    unbound_available_kib: int = 0
    # Host CPU -> the guest holding it (the first, when two do).
    dedicated: Mapping[int, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # The problems a planned guest takes part in: what ``capacity: fail`` refuses.
    blocking: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return not self.problems

    @property
    def unbound_kib(self) -> int:
        return sum(share.kib for share in self.unbound)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "problems": list(self.problems),
            "blocking": list(self.blocking),
            "warnings": list(self.warnings),
            "nodes": [node.to_dict() for node in self.nodes],
            "unbound_kib": self.unbound_kib,
            "unbound_available_kib": self.unbound_available_kib,
            "unbound_guests": [share.to_dict() for share in self.unbound],
            "dedicated": {str(cpu): name for cpu, name in sorted(self.dedicated.items())},
        }


class CapacityError(PlacementError):
    """The planned guests do not fit the host; ``report`` says where and who takes what."""

    def __init__(self, report: CapacityReport) -> None:
        count = len(report.problems)
        plural = "s" if count != 1 else ""
        super().__init__(f"the guests do not fit the host ({count} problem{plural}): " + "; ".join(report.problems))
        self.report = report


# -- what each guest takes --------------------------------------------------------------------------


@dataclass
class _Demand:
    """One guest's memory: bound per (node, page size or None), unbound per page size (None: normal)."""

    placement: GuestPlacement
    bound: dict[tuple[int, int | None], int] = field(default_factory=dict)
    unbound: dict[int | None, int] = field(default_factory=dict)

    @property
    def binding(self) -> GuestBinding:
        return self.placement.binding

    def share(self, kib: int) -> GuestShare:
        binding = self.binding
        return GuestShare(binding.name, kib, binding.source, binding.running, binding.autostart)

    def add(self, nodes: Mapping[int, int] | None, kib: int, page: int | None) -> None:
        if nodes is None:
            self.unbound[page] = self.unbound.get(page, 0) + kib
            return
        for node, part in nodes.items():
            if part:
                self.bound[node, page] = self.bound.get((node, page), 0) + part


def device_kib(dimm: DimmBinding, running: bool) -> int:
    """Host memory a memory device holds: its size (a virtio-mem device's requested size), or more while running.

    A running guest's virtio-mem device holds what it has plugged until the guest gives it back: a shrink
    still pending (live ``<current>`` above ``<requested>``) holds the larger figure.
    """
    return max(dimm.size_kib, dimm.plugged_kib) if running else dimm.size_kib


def _pools(node: HostNode) -> dict[int, int]:
    """Hugepage size -> KiB in the node's pool; the node's normal pages are not a pool."""
    return {size: size * count for size, count in node.pages if size in node.hugepage_sizes and count > 0}


def _demand(topology: HostTopology, placement: GuestPlacement) -> _Demand:
    demand = _Demand(placement)
    normal_page = min(topology.page_sizes_kib)
    cells = {cell.id: cell for cell in placement.cells}
    for cell in placement.cells:
        page = cell.hugepage_kib if cell.hugepage_kib is not None and cell.hugepage_kib > normal_page else None
        demand.add(dict(cell.memory_share) if cell.bound else None, cell.memory_kib, page)
    # DIMMs are bound to their nodemask, else to their cell's nodes (as placed), and backed by their
    # own page size, else their cell's.
    for dimm in placement.binding.dimms:
        owner = cells.get(dimm.cell) if dimm.cell is not None else None
        size = device_kib(dimm, placement.binding.running)
        if dimm.host_nodes:
            nodes: dict[int, int] | None = split_evenly(size, sorted(set(dimm.host_nodes)))
        elif owner is not None and owner.bound:
            nodes = split_evenly(size, sorted(set(owner.memory_nodes)))
        else:
            nodes = None
        page = placement.binding.dimm_page_kib(dimm)
        demand.add(nodes, size, page if page is not None and page > normal_page else None)
    return demand


# -- the check --------------------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.all: list[str] = []
        self.blocking: list[str] = []

    def add(self, text: str, shares: Iterable[GuestShare], planned: bool = False) -> None:
        """A problem; it blocks when a planned guest is named in it or (``planned``) brought it about."""
        self.all.append(text)
        if planned or any(share.source == "planned" for share in shares):
            self.blocking.append(text)


def _shares_text(shares: Sequence[GuestShare]) -> str:
    return ", ".join(share.text() for share in shares)


def _reserve(reserved_kib: int | Mapping[int, int], node_id: int) -> int:
    if isinstance(reserved_kib, Mapping):
        return reserved_kib.get(node_id, 0)
    return reserved_kib


def _node_capacity(
    topology: HostTopology, node: HostNode, demands: Sequence[_Demand], reserved_kib: int | Mapping[int, int]
) -> NodeCapacity:
    pools = _pools(node)
    sizes = sorted(set(pools) | {page for demand in demands for (at, page) in demand.bound if at == node.id and page})
    return NodeCapacity(
        id=node.id,
        memory_kib=node.memory_kib,
        hugepages_kib=sum(pools.values()),
        reserved_kib=_reserve(reserved_kib, node.id),
        guests=_by_size(
            demand.share(demand.bound[node.id, None]) for demand in demands if (node.id, None) in demand.bound
        ),
        hugepages=tuple(
            PoolCapacity(
                size_kib=size,
                pool_kib=pools.get(size, 0),
                guests=_by_size(
                    demand.share(demand.bound[node.id, size]) for demand in demands if (node.id, size) in demand.bound
                ),
            )
            for size in sizes
        ),
    )


def _left_for_unbound(free_after_kib: Iterable[int]) -> int:
    """Normal memory the nodes have left for memory bound to no node: what each keeps after its bound memory."""
    return sum(max(free, 0) for free in free_after_kib)


def _memory_problems(nodes: Sequence[NodeCapacity], demands: Sequence[_Demand], problems: _Problems) -> int:
    """Per node, per pool, and the unbound remainder; returns the normal memory left for unbound memory."""
    for node in nodes:
        if node.demand_kib > node.available_kib:
            hugepages = f" - {format_size(node.hugepages_kib)} hugepages" if node.hugepages_kib else ""
            problems.add(
                f"host node {node.id}: {format_size(node.demand_kib)} bound, {format_size(node.available_kib)} "
                f"available ({format_size(node.memory_kib)}{hugepages} - {format_size(node.reserved_kib)} reserved): "
                f"{_shares_text(node.guests)}",
                node.guests,
            )
        for pool in node.hugepages:
            if pool.demand_kib > pool.pool_kib:
                problems.add(
                    f"host node {node.id}: {format_size(pool.demand_kib)} bound in {format_size(pool.size_kib)} "
                    f"hugepages, the pool holds {format_size(pool.pool_kib)}: {_shares_text(pool.guests)}",
                    pool.guests,
                )
    left = _left_for_unbound(node.free_after_kib for node in nodes)
    # Normal memory (None) first, then the hugepage sizes: None and an int do not compare.
    sizes = sorted({page for demand in demands for page in demand.unbound}, key=lambda page: page or 0)
    for page in sizes:
        shares = _by_size(demand.share(demand.unbound[page]) for demand in demands if page in demand.unbound)
        wanted = sum(share.kib for share in shares)
        if page is None:
            have = left
            what = "memory bound to no host node"
            where = "the nodes have left after the bound memory"
        else:
            have = sum(
                max(pool.pool_kib - pool.demand_kib, 0)
                for node in nodes
                for pool in node.hugepages
                if pool.size_kib == page
            )
            what = f"{format_size(page)} hugepages bound to no host node"
            where = "the host's pools have left after the bound ones"
        # What a planned guest binds in the same kind of memory shrinks what is left: it takes part too.
        binds = any(d.binding.source == "planned" and any(p == page for _n, p in d.bound) for d in demands)
        if wanted > have:
            problems.add(
                f"{what}: {format_size(wanted)}, {format_size(have)} {where}: {_shares_text(shares)}", shares, binds
            )
    return left


def _unknown_node_problems(topology: HostTopology, demands: Sequence[_Demand], problems: _Problems) -> None:
    known = ", ".join(map(str, topology.node_ids))
    for demand in demands:
        missing: dict[int, int] = {}
        for (node, _page), kib in demand.bound.items():
            if not topology.has_node(node):
                missing[node] = missing.get(node, 0) + kib
        for node, kib in sorted(missing.items()):
            share = demand.share(kib)
            problems.add(
                f"guest {share.name} ({share.label}) binds {format_size(kib)} to host node {node}, which this host "
                f"does not have (nodes {known})",
                [share],
            )


def _cpu_problems(demands: Sequence[_Demand], problems: _Problems, warnings: list[str]) -> dict[int, str]:
    """Dedicated CPUs held twice or named in another guest's pins; unpinned guests beside dedicated CPUs."""
    holders: dict[int, list[_Demand]] = {}
    for demand in demands:
        for cpu in demand.binding.dedicated_cpus:
            holders.setdefault(cpu, []).append(demand)
    twice: dict[tuple[str, ...], set[int]] = {}
    named: dict[tuple[str, str], set[int]] = {}
    by_name = {demand.binding.name: demand for demand in demands}
    for cpu, owners in holders.items():
        if len(owners) > 1:
            twice.setdefault(tuple(sorted(owner.binding.name for owner in owners)), set()).add(cpu)
    for demand in demands:
        for cpu in demand.binding.explicit_cpus():
            for holder in holders.get(cpu, ()):
                if holder is not demand and cpu not in demand.binding.dedicated_cpus:
                    named.setdefault((holder.binding.name, demand.binding.name), set()).add(cpu)
    for names, cpus in sorted(twice.items()):
        shares = [by_name[name].share(0) for name in names]
        owners_text = " and ".join(f"{share.name} ({share.label})" for share in shares)
        problems.add(f"host CPUs {format_cpuset(cpus)} are dedicated to both {owners_text}", shares)
    for (owner, user), cpus in sorted(named.items()):
        shares = [by_name[owner].share(0), by_name[user].share(0)]
        problems.add(
            f"host CPUs {format_cpuset(cpus)} are dedicated to {owner} ({shares[0].label}) and named in the pins of "
            f"{user} ({shares[1].label})",
            shares,
        )
    dedicated = {cpu: owners[0].binding.name for cpu, owners in sorted(holders.items())}
    for demand in demands:
        binding = demand.binding
        floating = binding.default_cpus is None and any(
            vcpu not in binding.vcpu_cpus for cell in binding.cells for vcpu in cell.vcpus
        )
        others: dict[str, set[int]] = {}
        for cpu, owner in dedicated.items():
            if owner != binding.name:
                others.setdefault(owner, set()).add(cpu)
        if floating and others:
            held = ", ".join(f"{format_cpuset(cpus)} ({owner})" for owner, cpus in sorted(others.items()))
            warnings.append(
                f"guest {binding.name} ({demand.share(0).label}) has unpinned vCPUs that may run on host CPUs "
                f"dedicated to other guests: {held}"
            )
    return dedicated


def _uncounted_warnings(
    topology: HostTopology, nodes: Sequence[NodeCapacity], left: int, demands: Sequence[_Demand]
) -> list[str]:
    """Planned guests that do not count: would starting one now over-commit the host?"""
    free: dict[tuple[int, int | None], int] = {(node.id, None): node.free_after_kib for node in nodes}
    for node in nodes:
        free.update({(node.id, pool.size_kib): pool.pool_kib - pool.demand_kib for pool in node.hugepages})
    warnings = []
    for demand in demands:
        short = []
        for (node_id, page), kib in sorted(demand.bound.items(), key=lambda item: (item[0][0], item[0][1] or 0)):
            have = free.get((node_id, page), 0) if topology.has_node(node_id) else 0
            if kib > have:
                pages = f" in {format_size(page)} hugepages" if page else ""
                short.append(f"host node {node_id} ({format_size(kib)}{pages} bound, {format_size(max(have, 0))} free)")
        unbound = demand.unbound.get(None, 0)
        if unbound > left:
            short.append(f"unbound memory ({format_size(unbound)}, {format_size(left)} left)")
        if short:
            warnings.append(
                f"guest {demand.binding.name} is shut off and not autostart, so it is not counted; started now it "
                f"would over-commit {', '.join(short)}"
            )
    return warnings


def check_capacity(
    topology: HostTopology,
    placements: Iterable[GuestPlacement],
    reserved_kib: int | Mapping[int, int] = 0,
) -> CapacityReport:
    """Check the counted guests among ``placements`` against ``topology``, ``reserved_kib`` kept free per node."""
    demands = [_demand(topology, placement) for placement in placements]
    counted = [demand for demand in demands if counts(demand.binding)]
    cold = [demand for demand in demands if not counts(demand.binding) and demand.binding.source == "planned"]
    problems = _Problems()
    warnings: list[str] = []
    nodes = tuple(_node_capacity(topology, node, counted, reserved_kib) for node in topology.nodes)
    _unknown_node_problems(topology, counted, problems)
    left = _memory_problems(nodes, counted, problems)
    dedicated = _cpu_problems(counted, problems, warnings)
    warnings.extend(_uncounted_warnings(topology, nodes, left, cold))
    return CapacityReport(
        nodes=nodes,
        unbound=_by_size(demand.share(demand.unbound[None]) for demand in counted if None in demand.unbound),
        unbound_available_kib=left,
        dedicated=dedicated,
        problems=tuple(problems.all),
        warnings=tuple(warnings),
        blocking=tuple(problems.blocking),
    )


@dataclass(frozen=True)
class MemoryRoom:
    """The memory figures of a capacity report that mode auto chooses by, without the guests' names.

    Only what is there: a node without a pool of a size, or without memory bound in it, has no entry.
    """

    # Host node -> normal memory guests may bind there (NodeCapacity.available_kib), in the report's order.
    available_kib: Mapping[int, int]
    # (host node, page size) -> the node's pool of that size.
    pool_kib: Mapping[tuple[int, int], int]
    # (host node, page size, None for normal memory) -> what the counted guests bind there.
    demand_kib: Mapping[tuple[int, int | None], int]
    # Normal memory bound to no node, and what the nodes have left for it (CapacityReport's figures).
    unbound_kib: int = 0
    unbound_available_kib: int = 0

    @classmethod
    def of(cls, report: CapacityReport) -> MemoryRoom:
        demand: dict[tuple[int, int | None], int] = {(node.id, None): node.demand_kib for node in report.nodes}
        demand.update({(node.id, pool.size_kib): pool.demand_kib for node in report.nodes for pool in node.hugepages})
        return cls(
            available_kib={node.id: node.available_kib for node in report.nodes},
            pool_kib={
                (node.id, pool.size_kib): pool.pool_kib
                for node in report.nodes
                for pool in node.hugepages
                if pool.pool_kib
            },
            demand_kib={key: kib for key, kib in demand.items() if kib},
            unbound_kib=report.unbound_kib,
            unbound_available_kib=report.unbound_available_kib,
        )


class CapacityTally:
    """The memory figures of a capacity report, kept guest by guest: mode auto's room as a call places its guests.

    Mode auto chooses each guest of a call in what the host has left with the guests placed before it
    (``_run/plan.py``).  Made once from a whole check; then a guest placed replaces what it counted before, and
    the room without a guest is the totals less its shares.  A guest costs its own shares and a pass over the
    host's nodes and pools; a report rebuilt for each guest cost a pass over every guest's shares, so a call of
    N guests cost O(N^2).  Problems and warnings are not worked out again: the whole check after the plan does.
    """

    def __init__(self, report: CapacityReport) -> None:
        room = MemoryRoom.of(report)
        self._available = MappingProxyType(dict(room.available_kib))
        self._pools = MappingProxyType(dict(room.pool_kib))
        self._demand = dict(room.demand_kib)
        self._unbound_kib = room.unbound_kib
        # Guest name -> what it binds per (node, page size), and its normal memory bound to no node.
        self._bound: dict[str, dict[tuple[int, int | None], int]] = {}
        self._unbound: dict[str, int] = {}
        for node in report.nodes:
            places = [
                ((node.id, None), node.guests),
                *(((node.id, pool.size_kib), pool.guests) for pool in node.hugepages),
            ]
            for key, shares in places:
                for share in shares:
                    bound = self._bound.setdefault(share.name, {})
                    bound[key] = bound.get(key, 0) + share.kib
        for share in report.unbound:
            self._unbound[share.name] = self._unbound.get(share.name, 0) + share.kib

    def add(self, topology: HostTopology, placement: GuestPlacement) -> None:
        """Count ``placement``'s guest where it is placed, in place of what it counted before."""
        name = placement.binding.name
        for key, kib in self._bound.pop(name, {}).items():
            self._demand[key] -= kib
        self._unbound_kib -= self._unbound.pop(name, 0)
        demand = _demand(topology, placement)
        # Memory bound to a node the host does not have is the check's problem, not room on a node.
        bound = {key: kib for key, kib in demand.bound.items() if key[0] in self._available}
        for key, kib in bound.items():
            self._demand[key] = self._demand.get(key, 0) + kib
        self._bound[name] = bound
        if None in demand.unbound:
            self._unbound[name] = demand.unbound[None]
            self._unbound_kib += demand.unbound[None]

    def room(self, without: str | None = None) -> MemoryRoom:
        """What the host has left with every guest counted, or every guest but ``without`` (the one being placed)."""
        demand = dict(self._demand)
        unbound = self._unbound_kib
        if without is not None:
            for key, kib in self._bound.get(without, {}).items():
                demand[key] -= kib
            unbound -= self._unbound.get(without, 0)
        return MemoryRoom(
            available_kib=self._available,
            pool_kib=self._pools,
            demand_kib={key: kib for key, kib in demand.items() if kib},
            unbound_kib=unbound,
            unbound_available_kib=_left_for_unbound(
                available - demand.get((node, None), 0) for node, available in self._available.items()
            ),
        )


# What ``commitments_from_result`` reads back: the keys of a capacity result, from the one writer of it.
_RESULT_KEYS = tuple(CapacityReport(nodes=()).to_dict())


def _dicts(what: str, value: object) -> list[Mapping[str, Any]]:
    """``value`` as a list of dicts (absent or null: none), else a SpecError naming ``what``."""
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(v, Mapping) for v in value):
        raise SpecError(f"{what} must be a list of dicts, got {shown(value)}")
    return list(value)


def _dedicated_cpu(cpu: object) -> int:
    what = "capacity: dedicated CPU"
    if isinstance(cpu, str):
        return parse_int(cpu, what, MAX_HOST_CPU_ID, HOST_CPU_ID_REASON)
    return check_count(what, cpu, MAX_HOST_CPU_ID, HOST_CPU_ID_REASON, minimum=0)


def commitments_from_result(
    result: Mapping[str, Any],
) -> tuple[GuestBinding | None, dict[int, int], dict[int, str]]:
    """What a capacity result (``CapacityReport.to_dict()``) says the host's guests use, read back.

    For choices made away from the host (the vnuma_auto_nodes filter): one binding whose cells are each
    node's normal and hugepage demand bound there, and the memory bound to no node, so that
    ``check_capacity`` counts them where the host counted the guests; the reserve per node; the
    dedicated CPUs and their owners.  An empty ``result`` is a host without guests.  Anything else that
    is not a capacity result (a key it does not have, the module's whole result, a misspelt key) is a
    SpecError: read as empty, it would place the guest on nodes that are taken.
    """
    if not result:
        return None, {}, {}
    unknown = sorted(str(key) for key in result if key not in _RESULT_KEYS)
    if unknown or "nodes" not in result:
        found = f"it has {', '.join(unknown)}" if unknown else "it has no nodes"
        raise SpecError(
            f"capacity is not a capacity result ({found}): give the capacity of vnuma_domain's result "
            f"(its keys are {', '.join(_RESULT_KEYS)})"
        )
    cells: list[CellBinding] = []
    reserved: dict[int, int] = {}
    for node in _dicts("capacity: nodes", result["nodes"]):
        if "id" not in node:
            raise SpecError(f"capacity: each of nodes must be a dict with an id, got {shown(node)}")
        node_id = check_count("capacity: a node's id", node["id"], minimum=0)
        reserved[node_id] = check_count(
            f"capacity: node {node_id}'s reserved_kib", node.get("reserved_kib", 0), minimum=0
        )
        used: list[tuple[int, int | None]] = [
            (check_count(f"capacity: node {node_id}'s demand_kib", node.get("demand_kib", 0), minimum=0), None)
        ]
        for pool in _dicts(f"capacity: node {node_id}'s hugepages", node.get("hugepages")):
            what = f"capacity: node {node_id}'s hugepage pool"
            used.append(
                (
                    check_count(f"{what} demand_kib", pool.get("demand_kib", 0), minimum=0),
                    check_count(f"{what} size_kib", pool.get("size_kib")),
                )
            )
        cells.extend(
            CellBinding(len(cells) + index, (), kib, "strict", (node_id,), page)
            for index, (kib, page) in enumerate(item for item in used if item[0] > 0)
        )
    unbound = check_count("capacity: unbound_kib", result.get("unbound_kib", 0), minimum=0)
    if unbound:
        # Memory bound to no node: a cell without a binding, counted against what all nodes have left.
        cells.append(CellBinding(len(cells), (), unbound))
    owners = result.get("dedicated") or {}
    if not isinstance(owners, Mapping):
        raise SpecError(f"capacity: dedicated must be a dict of host CPU to guest name, got {shown(owners)}")
    dedicated = {_dedicated_cpu(cpu): str(owner) for cpu, owner in owners.items()}
    binding = GuestBinding("the host's other guests", tuple(cells), running=True) if cells else None
    return binding, reserved, dedicated
