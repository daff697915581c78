# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""``mode: auto``: the fewest host nodes that hold a guest, given what the host's other guests use.

Input: the host topology, the guest's spec and shape, and the capacity check's view of the host
without this guest (``_core/capacity.py``: what the running and autostart guests bind per node and per
hugepage pool).  The rules (docs/partitioning.md, "mode: auto"):

- Only host nodes with CPUs are candidates.  A memory-only (CXL, HBM) node is a slower tier that a
  user picks on purpose with ``mode: node``; auto never puts a guest's memory there.
- Sets of 1, 2, ... nodes are tried in turn: the first size with a set that holds the guest wins.
- Within a size, the nearest sets come first (smallest sum of host distances between their nodes,
  then fewest sockets); ties go to the least loaded (smallest largest committed share of a node's
  memory of the kind the guest uses, then smallest sum), then the lowest ids.
- A set holds the guest when the layout ``mode: node`` computes on it (the partitioner, with the
  dedicated CPUs of other guests taken) puts on each node no more memory than the node has left: its
  normal memory less what is bound there, or its pool of the guest's hugepage size less what is bound
  in it.  The partitioner also refuses a set without enough free host cores or threads for dedicated
  pinning.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from math import comb
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.affinity import admits, misses, unmet
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import (
    CapacityReport,
    MemoryRoom,
    format_size,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import GuestDevice
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import DEDICATED_PINNINGS
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import split_evenly
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.wording import nodes_text

__all__ = [
    "AutoChoice",
    "AutoRequest",
    "NodeRoom",
    "choose_nodes",
    "keep_nodes",
    "node_rooms",
    "nodeset_refusal",
    "rechosen",
    "stored_nodes_usable",
]

# Node sets of one size examined one by one; above it, one set per starting node (and one from the nodes of the
# guest's PCI devices together), grown nearest first
# (a 16-node host has 12870 sets of 8).
_EXHAUSTIVE_SETS = 256


@dataclass(frozen=True)
class NodeRoom:
    """One host node as the choice sees it: its memory of the guest's kind, what is committed, what is planned."""

    id: int
    # Normal memory guests may bind (the capacity check's available_kib), or the pool of the guest's page size.
    capacity_kib: int
    committed_kib: int
    planned_kib: int = 0

    @property
    def free_kib(self) -> int:
        return max(self.capacity_kib - self.committed_kib, 0)

    @property
    def left_kib(self) -> int:
        return self.free_kib - self.planned_kib

    @property
    def load(self) -> float:
        """The committed share of the node's memory (1.0 for a node without any)."""
        return min(self.committed_kib / self.capacity_kib, 1.0) if self.capacity_kib > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "capacity_kib": self.capacity_kib,
            "committed_kib": self.committed_kib,
            "free_kib": self.free_kib,
            "planned_kib": self.planned_kib,
            "left_kib": self.left_kib,
            "load": round(self.load, 4),
        }


@dataclass(frozen=True)
class AutoChoice:
    """The host nodes of a ``mode: auto`` guest, the layout on them, and why."""

    nodes: tuple[int, ...]
    spec: VnumaSpec
    layout: Layout
    # "chosen" now, or "kept" from the spec stored with the guest.
    how: str
    why: str
    memory_kib: int
    hugepages_kib: int | None
    # Per host node with CPUs (and any node the layout binds memory to): before and after the guest.
    rooms: tuple[NodeRoom, ...]
    considered: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": format_cpuset(self.nodes),
            "how": self.how,
            "why": self.why,
            "memory_kib": self.memory_kib,
            "hugepages_kib": self.hugepages_kib,
            "considered": self.considered,
            "nodes_left": [room.to_dict() for room in self.rooms],
        }


def _page(topology: HostTopology, spec: VnumaSpec) -> int | None:
    """The guest's hugepage size, None for the host's normal pages (as the capacity check counts them)."""
    page = spec.hugepages_kib
    return page if page is not None and page > min(topology.page_sizes_kib, default=4) else None


def node_rooms(
    topology: HostTopology, report: CapacityReport | MemoryRoom, page_kib: int | None
) -> dict[int, NodeRoom]:
    """Every host node's room for memory of the kind ``page_kib`` (None: normal), from the capacity check."""
    room = report if isinstance(report, MemoryRoom) else MemoryRoom.of(report)
    rooms: dict[int, NodeRoom] = {}
    for node, available in room.available_kib.items():
        capacity = available if page_kib is None else room.pool_kib.get((node, page_kib), 0)
        rooms[node] = NodeRoom(node, capacity, room.demand_kib.get((node, page_kib), 0))
    for host_node in topology.nodes:
        rooms.setdefault(host_node.id, NodeRoom(host_node.id, 0, 0))
    return rooms


def _planned(layout: Layout) -> dict[int, int]:
    """KiB the layout binds on each host node, split as the capacity check splits it (placement.split_evenly)."""
    planned: dict[int, int] = {}
    for cell in layout.cells:
        for node, kib in split_evenly(cell.memory_kib, sorted(set(cell.memory_nodes))).items():
            planned[node] = planned.get(node, 0) + kib
    return planned


def _distance(topology: HostTopology, nodes: Sequence[int]) -> int:
    """The sum of host distances between the set's nodes (the nearer direction of an asymmetric table)."""
    return sum(min(topology.distance(a, b), topology.distance(b, a)) for a, b in combinations(nodes, 2))


def _sockets(topology: HostTopology, nodes: Sequence[int]) -> int:
    return len({topology.socket_of(node) for node in nodes})


class _Search:
    def __init__(
        self,
        topology: HostTopology,
        spec: VnumaSpec,
        guest: GuestShape,
        report: CapacityReport | MemoryRoom,
        taken: Mapping[int, str],
        devices: Sequence[GuestDevice] = (),
    ) -> None:
        self.topology = topology
        # The guest's PCI passthrough devices: the affinity policy keeps the sets it admits, those local
        # to more devices first (_core/affinity.py).
        self.devices = tuple(devices)
        self.policy = spec.pci_numa_affinity
        self.spec = spec
        self.guest = guest
        self.taken = dict(taken)
        self.page = _page(topology, spec)
        room = report if isinstance(report, MemoryRoom) else MemoryRoom.of(report)
        self.rooms = node_rooms(topology, room, self.page)
        self.memory = spec.memory_kib or guest.memory_kib or 0
        # Guests bound to no node (no <numatune>: most guests on a host not yet converted) take normal
        # memory from whichever node: the capacity check counts it against what all nodes have left, so
        # the auto guest's normal memory must fit in what the nodes keep after it too.
        self.unbound_kib = room.unbound_kib if self.page is None else 0
        self.unbound_left_kib = room.unbound_available_kib - self.unbound_kib
        self.errors: list[tuple[tuple[int, ...], VnumaError]] = []
        self.considered = 0
        # Per set size: the sets the policy admits (in the order tried) and how many it does not; the
        # sets tried that lack the memory.  The explanation and the refusal say which of these it was.
        self.admitted: dict[int, list[tuple[int, ...]]] = {}
        self.excluded: dict[int, int] = {}
        self.grown: set[int] = set()
        self.short: set[tuple[int, ...]] = set()
        # Whether the policy rules out any set at all (it admits every superset of a set it admits).
        self.constrained = any(not self.admits((node,)) for node in topology.cpu_node_ids)
        # The sort key of each set looked at (``key``), and each seed's nodes in the order they were grown
        # (``_grown_from``): a set grown to k nodes is the first k of its seed's order, whatever k.
        self.keys: dict[tuple[int, ...], tuple[int, int, float, float, tuple[int, ...]]] = {}
        self.orders: dict[tuple[int, ...], list[tuple[int, ...]]] = {}

    def admits(self, nodes: Iterable[int]) -> bool:
        return admits(self.topology, self.policy, self.devices, nodes)

    def key(self, nodes: tuple[int, ...]) -> tuple[int, int, float, float, tuple[int, ...]]:
        found = self.keys.get(nodes)
        if found is None:
            loads = [self.rooms[node].load for node in nodes]
            found = (_distance(self.topology, nodes), _sockets(self.topology, nodes), max(loads), sum(loads), nodes)
            self.keys[nodes] = found
        return found

    def _grown_from(self, nodes: list[int], seed: Sequence[int]) -> list[tuple[int, ...]]:
        """The sets grown from ``seed`` nearest first, one per size from ``len(seed)`` to all of ``nodes``.

        Each step adds the node that gives the smallest ``key``.  The key of a set one node larger is the
        set's own plus what that node adds (its distances to the set, its socket, its load), so a step
        costs a pass over the nodes left, not a new key for each of them: the search stays within seconds
        on a 64-node host, where it took minutes.  Ties go to the lowest id, as the key's last element
        (the sorted set) decides them.
        """
        order = self.orders.get(tuple(seed))
        if order is not None:
            return order
        topology = self.topology
        group = sorted(seed)
        distance, _sockets, highest, total, _nodes = self.key(tuple(group))
        socket_set = {topology.socket_of(node) for node in group}
        rest = [node for node in nodes if node not in group]
        near = {
            node: sum(min(topology.distance(node, other), topology.distance(other, node)) for other in group)
            for node in rest
        }
        order = [tuple(group)]
        while rest:
            best = min(
                rest,
                key=lambda node: (
                    distance + near[node],
                    len(socket_set) + (topology.socket_of(node) not in socket_set),
                    max(highest, self.rooms[node].load),
                    total + self.rooms[node].load,
                    node,
                ),
            )
            load = self.rooms[best].load
            distance, highest, total = distance + near[best], max(highest, load), total + load
            socket_set.add(topology.socket_of(best))
            rest.remove(best)
            group.append(best)
            for node in rest:
                near[node] += min(topology.distance(node, best), topology.distance(best, node))
            grown = tuple(sorted(group))
            # The sum as key() adds it (in id order), so that sets compare as they always did.
            self.keys.setdefault(
                grown, (distance, len(socket_set), highest, sum(self.rooms[n].load for n in grown), grown)
            )
            order.append(grown)
        self.orders[tuple(seed)] = order
        return order

    def candidates(self) -> list[int]:
        """Nodes with CPUs that have room (or no memory at all: the kernel serves them from the nearest)."""
        return [
            node
            for node in self.topology.cpu_node_ids
            if self.rooms[node].free_kib > 0 or self.topology.node(node).memory_kib == 0
        ]

    def sets(self, nodes: list[int], size: int) -> list[tuple[int, ...]]:
        if comb(len(nodes), size) <= _EXHAUSTIVE_SETS:
            found: Iterable[tuple[int, ...]] = combinations(nodes, size)
        else:
            grown: set[tuple[int, ...]] = set()
            # Grown from each node, and from the nodes of the guest's PCI devices together: a policy that wants
            # devices on far apart nodes local admits none of the sets grown from one node until they are large.
            local = sorted({device.host_node for device in self.devices if device.host_node in nodes})
            seeds = [[node] for node in nodes] + ([local] if 1 < len(local) <= size else [])
            for seed in seeds:
                grown.add(self._grown_from(nodes, seed)[size - len(seed)])
            found = grown
            self.grown.add(size)
        every = list(found)
        admitted = sorted(
            (nodes for nodes in every if self.admits(nodes)),
            key=lambda nodes: (misses(self.devices, nodes), self.key(nodes)),
        )
        self.admitted[size] = admitted
        self.excluded[size] = len(every) - len(admitted)
        return admitted

    def trial(self, nodes: tuple[int, ...]) -> Layout | None:
        """The layout on ``nodes`` when it fits what they have left, else None (the reason kept)."""
        has_memory = all(self.topology.node(node).memory_kib > 0 for node in nodes)
        if has_memory and sum(self.rooms[node].free_kib for node in nodes) < self.memory:
            self.short.add(nodes)
            return None
        if self.unbound_kib and self.memory > self.unbound_left_kib:
            self.short.add(nodes)
            return None
        self.considered += 1
        try:
            layout = compute_layout(
                self.topology, replace(self.spec, nodeset=format_cpuset(nodes)), self.guest, self.taken
            )
        except (SpecError, PlacementError) as error:
            self.errors.append((nodes, error))
            return None
        planned = _planned(layout)
        if any(kib > self.rooms[node].free_kib for node, kib in planned.items()):
            self.short.add(nodes)
            return None
        return layout

    def choose(self) -> AutoChoice:
        nodes = self.candidates()
        for size in range(1, len(nodes) + 1):
            ordered = self.sets(nodes, size)
            for index, chosen in enumerate(ordered):
                layout = self.trial(chosen)
                if layout is None:
                    continue
                near = (misses(self.devices, chosen), *self.key(chosen)[:2])
                # The other sets as near that also hold the guest: what the load decided between.
                ties = [
                    other
                    for other in ordered[index + 1 :]
                    if (misses(self.devices, other), *self.key(other)[:2]) == near and self.trial(other) is not None
                ]
                why = self.explain(chosen, size, ties, ordered)
                return _choice(self.topology, self.spec, chosen, layout, "chosen", why, self)
        raise self.refusal()

    def explain(
        self, chosen: tuple[int, ...], size: int, ties: list[tuple[int, ...]], ordered: list[tuple[int, ...]]
    ) -> str:
        what = self.need_text()
        chosen_text = nodes_text(chosen)
        if size == 1:
            text = f"{chosen_text} holds the guest ({what}) alone"
        else:
            distance = _distance(self.topology, chosen)
            # What ordered the sets before the distance: the policy's admission, then the devices local.
            admitted = f"that pci_numa_affinity {self.policy} admits" if self.excluded.get(size) else ""
            fewer = misses(self.devices, chosen)
            local_first = any(
                misses(self.devices, other) > fewer and self.key(other)[:2] < self.key(chosen)[:2] for other in ordered
            )
            if admitted and local_first:
                which = f" {admitted}, with the most PCI devices local, and"
            elif admitted:
                which = f" {admitted} and"
            else:
                which = " with the most PCI devices local" if local_first else ""
            text = (
                f"{self.smaller(size - 1)}; {chosen_text} are the nearest {size}{which} that hold the guest "
                f"({what}), distance {distance}"
            )
        if self.devices:
            local = len(self.devices) - misses(self.devices, chosen)
            text += f"; {local} of {len(self.devices)} PCI devices local (pci_numa_affinity {self.policy})"
        if ties:
            worst = max(self.rooms[node].load for node in chosen)
            sets = "nodes" if size == 1 else "sets"
            text += f"; of {len(ties) + 1} equally near {sets} that do, "
            if any(self.key(other)[2:4] != self.key(chosen)[2:4] for other in ties):
                text += f"the least loaded ({round(worst * 100)} % committed)"
            else:
                text += f"all {round(worst * 100)} % committed, the lowest ids"
        return text

    def smaller(self, size: int) -> str:
        """Why no set of ``size`` nodes was chosen: the policy admits none, or those it admits lack room."""
        no_set = "no single host node" if size == 1 else f"no set of {size} host nodes"
        tried = self.admitted.get(size, [])
        if not tried and self.excluded.get(size):
            # Above _EXHAUSTIVE_SETS, only the sets grown nearest first were looked at.
            looked = (
                " of those grown nearest first from each node and from its devices' nodes" if size in self.grown else ""
            )
            return f"{no_set}{looked} is admitted by pci_numa_affinity {self.policy} ({self.devices_text()})"
        admitted = f" that pci_numa_affinity {self.policy} admits" if self.excluded.get(size) else ""
        reasons = []
        short = [nodes for nodes in tried if nodes in self.short]
        refused = [(nodes, error) for nodes, error in self.errors if len(nodes) == size]
        if short and size == 1:
            # The freest node of all those tried, also one refused for another reason (then that reason first).
            richest = max((nodes[0] for nodes in tried), key=lambda node: (self.rooms[node].free_kib, -node))
            reasons.append(f"the most free: node {richest}, {format_size(self.rooms[richest].free_kib)}")
            refused.sort(key=lambda item: item[0] != (richest,))
        if refused:
            nodes, error = refused[0]
            reasons.append(f"on {nodes_text(nodes)}: {error.message}")
        return f"{no_set}{admitted} holds it" + (f" ({'; '.join(reasons)})" if reasons else "")

    def devices_text(self) -> str:
        """Where the guest's PCI devices are, as the policy reads them (the socket too under ``socket``)."""
        nodes = sorted({device.host_node for device in self.devices if device.host_node is not None})
        if not nodes:
            return "its PCI devices report no host node"
        where = nodes_text(nodes)
        if self.policy == "socket":
            sockets = sorted({socket for node in nodes if (socket := self.topology.socket_of(node)) is not None})
            where += f" (socket {', '.join(map(str, sockets))})" if sockets else " (no socket)"
        return f"its PCI devices are on {where}"

    def need_text(self) -> str:
        text = format_size(self.memory)
        if self.page is not None:
            text += f" in {format_size(self.page)} hugepages"
        if self.spec.pinning in DEDICATED_PINNINGS:
            unit = "cores" if self.spec.pinning == "core" else "threads"
            text += f", {self.guest.vcpus} vCPUs on dedicated host {unit}"
        return text

    def offer(self, admitted_only: bool) -> tuple[tuple[int, ...], int]:
        """The set of host nodes with CPUs that offers the most memory under the even split, and how much.

        k nodes offer k times the least free of them.  With ``admitted_only``, only sets the policy
        admits: for each least free, the smallest admitted set among the nodes with at least that
        much, grown with the freest others (the policy admits every superset of a set it admits).
        """
        free = sorted(self.topology.cpu_node_ids, key=lambda node: (-self.rooms[node].free_kib, node))
        found: list[tuple[int, tuple[int, ...]]] = []
        for size in range(1, len(free) + 1):
            pool = free[:size]
            if not admitted_only:
                found.append((size * self.rooms[pool[-1]].free_kib, tuple(pool)))
                continue
            if not self.admits(pool):
                continue
            least = list(pool)
            for node in reversed(pool):
                if self.admits([other for other in least if other != node]):
                    least.remove(node)
            for count in range(len(least), size + 1):
                grown = least + [node for node in pool if node not in least][: count - len(least)]
                found.append((count * min(self.rooms[node].free_kib for node in grown), tuple(grown)))
        best, nodes = max(found, key=lambda item: (item[0], -len(item[1])), default=(0, ()))
        return tuple(sorted(nodes)), best

    def refusal(self) -> VnumaError:
        # A request that no set can make a layout of at all (memory not a multiple of the page, siblings
        # on a mixed host...) is wrong in itself: its own error says so.
        # The first set tried is the most likely to hold the guest.
        if self.errors and isinstance(self.errors[0][1], SpecError):
            return self.errors[0][1]
        cpu_nodes = self.topology.cpu_node_ids
        # The devices no set of host nodes with CPUs can meet the policy for: then it admits no set at all.
        blocked = [
            device
            for device in (self.devices if self.constrained else ())
            if unmet(self.topology, self.policy, [device], cpu_nodes)
        ]
        admitted_only = self.constrained and not blocked
        best_nodes, best = self.offer(admitted_only)
        kind = f" in {format_size(self.page)} hugepages" if self.page is not None else ""
        which = f" that pci_numa_affinity {self.policy} admits" if admitted_only else ""
        if best:
            offered = (
                f"the most any set of host nodes with CPUs{which} offers (split evenly) is {format_size(best)}{kind}, "
                f"on {nodes_text(best_nodes)}"
            )
        elif which:
            offered = f"no set of host nodes with CPUs{which} has memory{kind} left on all its nodes"
        else:
            offered = f"no host node with CPUs has any memory{kind} left"
        per_node = ", ".join(f"node {node}: {format_size(self.rooms[node].free_kib)}" for node in cpu_nodes)
        memory = f"{offered}; free: {per_node}"
        unbound_short = bool(self.unbound_kib) and self.memory > self.unbound_left_kib
        if self.unbound_kib:
            memory += (
                f"; guests bound to no host node use {format_size(self.unbound_kib)} of that, leaving "
                f"{format_size(max(self.unbound_left_kib, 0))}"
            )
        cpus = []
        if self.spec.pinning in DEDICATED_PINNINGS:
            cpus.append(self.free_cpus_text())
        placement = [(nodes, error) for nodes, error in self.errors if isinstance(error, PlacementError)]
        if placement:
            nodes, error = placement[0]
            cpus.append(f"on {nodes_text(nodes)}: {error.message}")
        policy = []
        if self.devices and self.policy != "preferred" and not blocked:
            where = ", ".join(
                f"{device.name} on host node {device.host_node if device.host_node is not None else 'unknown'}"
                for device in self.devices
            )
            policy.append(f"pci_numa_affinity {self.policy} admits only host nodes near its devices ({where})")
        need = f"it needs {self.need_text()}"
        # The limit first: the policy when it admits no set, the host CPUs when the memory is there.
        if blocked:
            parts = [self.blocked_text(blocked), need, memory, *cpus]
        elif placement and best >= self.memory and not unbound_short:
            parts = [need, *cpus, memory, *policy]
        else:
            parts = [need, memory, *cpus, *policy]
        return PlacementError(f"mode auto finds no host nodes that hold the guest: {'; '.join(parts)}")

    def blocked_text(self, blocked: list[GuestDevice]) -> str:
        """The policy's refusal of every set: the devices it cannot meet on any, and what would do."""
        lines = unmet(self.topology, self.policy, blocked, self.topology.cpu_node_ids)
        text = f"pci_numa_affinity {self.policy} admits no set of host nodes with CPUs ({'; '.join(lines)})"
        if any(device.host_node is None for device in blocked):
            text += "; pci_numa_affinity legacy or preferred allows devices without a host node"
        if any(device.host_node is not None for device in blocked):
            text += (
                "; mode auto chooses only host nodes with CPUs: name the devices' nodes with mode node and a "
                "nodeset, or use pci_numa_affinity preferred to allow it with a warning"
            )
        return text

    def free_cpus_text(self) -> str:
        cores = [
            core
            for node in self.topology.cpu_node_ids
            for core in self.topology.node(node).cores
            if not self.taken.keys() & set(core)
        ]
        return f"{len(cores)} host cores ({sum(len(core) for core in cores)} threads) are free of other guests"


def nodeset_refusal(nodeset: object) -> SpecError:
    """The refusal of a nodeset given with mode auto (the module and the vnuma_auto_nodes filter alike)."""
    return SpecError(
        f"nodeset {nodeset!r} is what mode auto chooses; leave it out, or use mode node to name the host nodes"
    )


@dataclass(frozen=True)
class AutoRequest:
    """What a mode auto choice is made for: the guest's memory, vCPUs, hugepage size and pinning.

    A stored choice is kept only for the request it was made for; when one of these changed, the
    nodes are chosen again (docs/partitioning.md, "mode: auto").
    """

    memory_kib: int
    vcpus: int
    hugepages_kib: int | None
    pinning: str

    def changes_since(self, before: AutoRequest) -> list[str]:
        """What differs from ``before``, as ``memory 512 MiB -> 1 GiB``; empty when nothing does."""

        def pages(kib: int | None) -> str:
            return "none" if kib is None else format_size(kib)

        found = []
        if self.memory_kib != before.memory_kib:
            found.append(f"memory {format_size(before.memory_kib)} -> {format_size(self.memory_kib)}")
        if self.vcpus != before.vcpus:
            found.append(f"vCPUs {before.vcpus} -> {self.vcpus}")
        if self.hugepages_kib != before.hugepages_kib:
            found.append(f"hugepages {pages(before.hugepages_kib)} -> {pages(self.hugepages_kib)}")
        if self.pinning != before.pinning:
            found.append(f"pinning {before.pinning} -> {self.pinning}")
        return found


def _choice(
    topology: HostTopology,
    spec: VnumaSpec,
    nodes: tuple[int, ...],
    layout: Layout,
    how: str,
    why: str,
    search: _Search,
) -> AutoChoice:
    planned = _planned(layout)
    shown = sorted(set(topology.cpu_node_ids) | set(planned))
    rooms = tuple(replace(search.rooms[node], planned_kib=planned.get(node, 0)) for node in shown)
    return AutoChoice(
        nodes=nodes,
        spec=replace(spec, nodeset=format_cpuset(nodes)),
        layout=layout,
        how=how,
        why=why,
        memory_kib=layout.memory_kib,
        hugepages_kib=search.page,
        rooms=rooms,
        considered=search.considered,
    )


def choose_nodes(
    topology: HostTopology,
    spec: VnumaSpec,
    guest: GuestShape,
    report: CapacityReport | MemoryRoom,
    taken_cpus: Mapping[int, str] | None = None,
    devices: Sequence[GuestDevice] = (),
) -> AutoChoice:
    """Choose the host nodes of the ``mode: auto`` guest ``guest``.

    ``report`` is the host's capacity without this guest (``check_capacity`` over the other guests
    that count, or its figures kept guest by guest: ``CapacityTally.room``); ``taken_cpus`` maps host
    CPUs dedicated to other guests to their names; ``devices`` are its PCI passthrough devices with
    their host nodes (the spec's ``pci_numa_affinity`` applies).
    A ``PlacementError`` naming the guest, what it needs and the most the host offers when no set fits.
    """
    try:
        return _Search(topology, spec, guest, report, taken_cpus or {}, devices).choose()
    except VnumaError as error:
        raise error.naming(guest.name) from None


def stored_nodes_usable(topology: HostTopology, spec: VnumaSpec) -> bool:
    """Whether the nodes stored with an auto spec are all host nodes with CPUs here (else choose again)."""
    nodes = spec.nodes
    if not nodes:
        return False
    return all(topology.has_node(node) and topology.node(node).has_cpus for node in nodes)


def rechosen(choice: AutoChoice, stored_nodes: Sequence[int], changes: Sequence[str]) -> AutoChoice:
    """A new choice made because the request changed since ``stored_nodes`` were chosen: its ``why`` says so."""
    why = (
        f"the request changed since {nodes_text(sorted(stored_nodes))} {'was' if len(stored_nodes) == 1 else 'were'} "
        f"chosen ({', '.join(changes)}): "
        f"chosen again; {choice.why}"
    )
    return replace(choice, why=why)


def keep_nodes(
    topology: HostTopology,
    spec: VnumaSpec,
    guest: GuestShape,
    report: CapacityReport | MemoryRoom,
    taken_cpus: Mapping[int, str] | None = None,
) -> AutoChoice:
    """The stored choice of an auto spec, laid out, with what it leaves on each node (no new choice).

    The load may have changed since: a kept choice is not judged against it (the capacity check is).
    """
    nodes = tuple(sorted(spec.nodes or frozenset()))
    search = _Search(topology, spec, guest, report, taken_cpus or {})
    # compute_layout names the guest in its errors.
    layout = compute_layout(topology, spec, guest, taken_cpus)
    why = f"{nodes_text(nodes)} stored with the spec by an earlier run: kept (replan chooses again)"
    return _choice(topology, spec, nodes, layout, "kept", why, search)
