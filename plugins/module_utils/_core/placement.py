# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Where a guest's cells live on the host, and how local their memory is.

A guest's definition says, per guest cell, which vCPUs it holds, how much memory, and where that
memory may come from (``<numatune>``), and per vCPU where it may run (``<vcpupin>``, ``<vcpu
cpuset>``).  From that this module works out, per cell, the share of its vCPU time on each host
node and the share of its memory on each host node, assuming (as nothing better is known from the
definition) that a vCPU runs evenly over the CPUs it may use and that memory bound to several
nodes is spread evenly over them.  Unbound memory is spread over the memory-bearing nodes in
proportion to their size.

- A cell is *aligned* when its memory is bound to exactly the host nodes its vCPUs run on.
- Its *locality* is the chance that a memory access of one of its vCPUs to its own cell's memory
  is node-local: the sum over host nodes of (vCPU time there) x (memory there).  A cell on one host
  node with pinned vCPUs and bound memory scores 1.0; an unpinned, unbound guest on a 4-node host
  about 0.25.
- A guest's locality is the mean over its vCPUs; a guest without vCPU-bearing cells scores 1.0.

Pure: no Ansible, libvirt or lxml.  The XML layer turns a definition into a ``GuestBinding``
(``_xml.binding.binding_from_domain``), the planned definition of a guest as well as its current one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import DEDICATED_PINNINGS
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib

__all__ = [
    "CellBinding",
    "DimmBinding",
    "GuestBinding",
    "CellPlacement",
    "GuestPlacement",
    "check_preallocation",
    "held_cpus",
    "holds_cpus",
    "place_guest",
    "place_guests",
    "split_evenly",
]


def held_cpus(
    pins: Iterable[Collection[int]],
    pinning: str | None,
    topology: HostTopology,
    emulator: Collection[int] | None = None,
) -> tuple[int, ...]:
    """The host CPUs a guest holds for itself, ascending: the one dedicated-CPU rule.

    ``pins`` are its vCPU pins' cpusets; ``pinning`` its spec's pinning, or None when there is no
    spec to say (a hand-pinned guest, or a stored spec that cannot be read).  Under ``node`` and
    ``none`` nothing is held.  Otherwise (dedicated pinning, or unknown: the conservative reading)
    every single-CPU pin holds its CPU; a pin to several CPUs shares them.  Under ``core`` the held
    CPUs' whole host cores are held too: their idle sibling threads run nothing else.
    ``emulator`` is the emulator pin of a guest that isolates its emulator threads
    (``emulator_threads: isolate``): it holds its CPU as one more vCPU pin would.
    """
    held = _pinned_alone((*pins, emulator or ()), pinning)
    if pinning == "core" and held:
        held.update(cpu for node in topology.nodes for core in node.cores if held.intersection(core) for cpu in core)
        # A sibling the host lists on another node shares the core all the same (HostTopology.sharing_a_core).
        held.update(cpu for cpu in topology.sharing_a_core(held) if cpu in topology.cpu_node)
    return tuple(sorted(held))


def holds_cpus(pins: Iterable[Collection[int]], pinning: str | None) -> bool:
    """Whether a guest holds any host CPU for itself: ``held_cpus`` is not empty.

    For a reader without the host's topology (a saved image's guest): whether a guest holds CPUs does
    not depend on it, only which sibling threads come with them under ``core``.
    """
    return bool(_pinned_alone(pins, pinning))


def _pinned_alone(pins: Iterable[Collection[int]], pinning: str | None) -> set[int]:
    """The CPUs ``held_cpus`` starts from: every single-CPU pin, unless the pinning holds none."""
    if pinning is not None and pinning not in DEDICATED_PINNINGS:
        return set()
    return {cpu for cpus in pins if len(cpus) == 1 for cpu in cpus}


@dataclass(frozen=True)
class CellBinding:
    """What a definition says about one guest cell."""

    id: int
    vcpus: tuple[int, ...]
    memory_kib: int
    # None when the cell's memory is not bound (no <numatune>, or placement='auto', left to numad).
    memory_mode: str | None = None
    memory_nodes: tuple[int, ...] = ()
    # Page size backing the cell in KiB; None for the host's normal pages.
    hugepage_kib: int | None = None


@dataclass(frozen=True)
class DimmBinding:
    """A hot-pluggable memory device: its guest cell, size and host nodemask (None: the cell's binding)."""

    cell: int | None
    size_kib: int
    host_nodes: tuple[int, ...] | None = None
    # Its own page size (<source><pagesize>); None: the page size of its cell.
    hugepage_kib: int | None = None
    # What a running guest's virtio-mem device has plugged now (the live <current>); 0 when not known.
    plugged_kib: int = 0


@dataclass(frozen=True)
class GuestBinding:
    """Everything about one guest that decides where it runs and where its memory lives."""

    name: str
    cells: tuple[CellBinding, ...]
    # Explicit per-vCPU affinity (<vcpupin>), by vCPU id.
    vcpu_cpus: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    # <vcpu cpuset>: the affinity of vCPUs without a pin; None means every host CPU.
    default_cpus: tuple[int, ...] | None = None
    emulator_cpus: tuple[int, ...] | None = None
    dimms: tuple[DimmBinding, ...] = ()
    # Host CPUs the guest holds for itself (dedicated pinning), if any.
    dedicated_cpus: tuple[int, ...] = ()
    running: bool = False
    autostart: bool = False
    # "defined" (read from a definition) or "planned" (from a computed layout).
    source: str = "defined"

    @property
    def pinned(self) -> bool:
        """Whether any vCPU or the emulator is confined to a subset of the host by the definition."""
        return bool(self.vcpu_cpus) or self.default_cpus is not None or self.emulator_cpus is not None

    def dimm_page_kib(self, dimm: DimmBinding) -> int | None:
        """The page size backing a DIMM: its own, else its cell's, as libvirt picks the backend's pages.

        https://libvirt.org/formatdomain.html#memory-devices: ``pagesize`` overrides the page size
        the guest NUMA node the device is targeted at is backed by.
        """
        if dimm.hugepage_kib is not None:
            return dimm.hugepage_kib
        owner = next((cell for cell in self.cells if cell.id == dimm.cell), None) if dimm.cell is not None else None
        return owner.hugepage_kib if owner is not None else None

    def vcpu_affinity(self, vcpu: int, all_cpus: tuple[int, ...]) -> tuple[int, ...]:
        return self.vcpu_cpus.get(vcpu) or self.default_cpus or all_cpus

    def explicit_cpus(self) -> frozenset[int]:
        """Every host CPU named by the guest's pins: where it may run when confined."""
        cpus: set[int] = set()
        for pins in self.vcpu_cpus.values():
            cpus.update(pins)
        cpus.update(self.default_cpus or ())
        cpus.update(self.emulator_cpus or ())
        return frozenset(cpus)


@dataclass(frozen=True)
class CellPlacement:
    """One guest cell as placed on the host."""

    id: int
    vcpus: tuple[int, ...]
    memory_kib: int
    memory_mode: str | None
    memory_nodes: tuple[int, ...]
    hugepage_kib: int | None
    # Host node -> share of the cell's vCPU time there: sums to 1.0 when the cell has vCPUs, less when
    # some vCPU is pinned only to CPUs the host lacks (a definition for another host: it runs nowhere here).
    cpu_share: Mapping[int, float]
    # Host node -> KiB of the cell's memory there (sums to memory_kib).
    memory_share: Mapping[int, int]
    aligned: bool
    locality: float

    @property
    def bound(self) -> bool:
        return self.memory_mode is not None

    @property
    def cpu_nodes(self) -> tuple[int, ...]:
        return tuple(sorted(node for node, share in self.cpu_share.items() if share > 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "vcpus": format_cpuset(self.vcpus),
            "vcpu_count": len(self.vcpus),
            "memory_kib": self.memory_kib,
            "memory_mode": self.memory_mode,
            "memory_nodes": format_cpuset(self.memory_nodes) if self.memory_mode is not None else None,
            "hugepages_kib": self.hugepage_kib,
            "cpu_nodes": format_cpuset(self.cpu_nodes),
            "cpu_share": {str(node): round(share, 4) for node, share in sorted(self.cpu_share.items())},
            "memory_share_kib": {str(node): kib for node, kib in sorted(self.memory_share.items())},
            "aligned": self.aligned,
            "locality": round(self.locality, 4),
        }


@dataclass(frozen=True)
class GuestPlacement:
    """A guest as placed on the host: its cells, its alignment and its locality."""

    binding: GuestBinding
    cells: tuple[CellPlacement, ...]
    # Hot-plugged memory: host node -> KiB, split like the cells' memory.
    dimm_share: Mapping[int, int]
    locality: float
    # The same by (host node, page size in KiB or None for normal pages).
    dimm_pages: Mapping[tuple[int, int | None], int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.binding.name

    @property
    def aligned(self) -> bool:
        return all(cell.aligned for cell in self.cells)

    @property
    def page_sizes(self) -> tuple[int, ...]:
        """The hugepage sizes (KiB) some cell is backed by."""
        return tuple(sorted({cell.hugepage_kib for cell in self.cells if cell.hugepage_kib is not None}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aligned": self.aligned,
            "locality": round(self.locality, 4),
            "cells": [cell.to_dict() for cell in self.cells],
        }


def split_evenly(total: int, nodes: Sequence[int]) -> dict[int, int]:
    """``total`` KiB over ``nodes``, the remainder to the first ones (node order as given)."""
    if not nodes:
        return {}
    share, extra = divmod(total, len(nodes))
    return {node: share + (1 if index < extra else 0) for index, node in enumerate(nodes)}


def _split_by_weight(total: int, weights: Mapping[int, int]) -> dict[int, int]:
    """``total`` KiB over the nodes in proportion to their weight (largest remainders get the rest)."""
    weight_sum = sum(weights.values())
    if weight_sum <= 0:
        return {}
    exact = {node: total * weight / weight_sum for node, weight in weights.items()}
    floors = {node: int(value) for node, value in exact.items()}
    left = total - sum(floors.values())
    for node in sorted(exact, key=lambda node: (floors[node] - exact[node], node))[:left]:
        floors[node] += 1
    return floors


class _Placer:
    def __init__(self, topology: HostTopology) -> None:
        self.topology = topology
        self.all_cpus = tuple(sorted(topology.cpu_node))
        self.memory_weights = {node.id: node.memory_kib for node in topology.nodes if node.memory_kib > 0}
        self.node_shares: dict[tuple[int, ...], dict[int, float]] = {}
        self.normal_page_kib = min(topology.page_sizes_kib, default=4)

    def memory_share(self, mode: str | None, nodes: Iterable[int], memory_kib: int) -> dict[int, int]:
        if mode is None:
            return _split_by_weight(memory_kib, self.memory_weights)
        # A nodeset may name nodes the host does not have (a definition written for another host):
        # their share is kept under their id so that capacity checks can name them.
        return split_evenly(memory_kib, sorted(set(nodes)))

    def cpu_share(self, binding: GuestBinding, vcpus: Iterable[int]) -> dict[int, float]:
        # vCPUs mostly share one affinity (the cell's nodes, or the whole host): count each once.
        counts: dict[tuple[int, ...], int] = {}
        for vcpu in vcpus:
            affinity = binding.vcpu_affinity(vcpu, self.all_cpus)
            counts[affinity] = counts.get(affinity, 0) + 1
        share: dict[int, float] = {}
        for affinity, count in counts.items():
            for node, cpus in self.nodes_of(affinity).items():
                share[node] = share.get(node, 0.0) + count * cpus
        # Divided once at the end: six vCPUs pinned one CPU each on one node make 6/6 = 1.0, where
        # six additions of 1/6 make 0.9999999999999999 and a cell pinned to one node would not score 1.0.
        total = sum(counts.values())
        return {node: value / total for node, value in share.items()}

    def nodes_of(self, cpus: tuple[int, ...]) -> dict[int, float]:
        """Host node -> the share of ``cpus`` on it (CPUs the host lacks are left out)."""
        found = self.node_shares.get(cpus)
        if found is None:
            per_node: dict[int, int] = {}
            for cpu in cpus:
                node = self.topology.cpu_node.get(cpu)
                if node is not None:
                    per_node[node] = per_node.get(node, 0) + 1
            known = sum(per_node.values())
            found = self.node_shares[cpus] = {node: count / known for node, count in per_node.items()} if known else {}
        return found

    def cell(self, binding: GuestBinding, cell: CellBinding) -> CellPlacement:
        memory = self.memory_share(cell.memory_mode, cell.memory_nodes, cell.memory_kib)
        cpu = self.cpu_share(binding, cell.vcpus)
        total = cell.memory_kib
        locality = sum(share * memory.get(node, 0) / total for node, share in cpu.items()) if total else 0.0
        cpu_nodes = {node for node, share in cpu.items() if share > 0}
        memory_nodes = {node for node, kib in memory.items() if kib > 0} if cell.memory_mode else set()
        if not cell.vcpus:
            aligned = cell.memory_mode is not None
        else:
            # Every vCPU must run on the memory's nodes: one that cannot run on this host at all does not.
            runs_here = sum(cpu.values()) > 1.0 - 1e-9
            aligned = cell.memory_mode is not None and runs_here and bool(memory_nodes) and memory_nodes == cpu_nodes
        return CellPlacement(
            id=cell.id,
            vcpus=cell.vcpus,
            memory_kib=cell.memory_kib,
            memory_mode=cell.memory_mode,
            memory_nodes=tuple(sorted(set(cell.memory_nodes))),
            hugepage_kib=cell.hugepage_kib,
            cpu_share=cpu,
            memory_share=memory,
            aligned=aligned,
            locality=min(locality, 1.0),
        )

    def guest(self, binding: GuestBinding) -> GuestPlacement:
        cells = tuple(self.cell(binding, cell) for cell in binding.cells)
        by_id = {cell.id: cell for cell in binding.cells}
        dimms: dict[int, int] = {}
        pages: dict[tuple[int, int | None], int] = {}
        for dimm in binding.dimms:
            page = binding.dimm_page_kib(dimm)
            if page is not None and page <= self.normal_page_kib:
                page = None  # <source><pagesize> naming the host's normal page size
            owner = by_id.get(dimm.cell) if dimm.cell is not None else None
            if dimm.host_nodes:
                share = split_evenly(dimm.size_kib, sorted(set(dimm.host_nodes)))
            elif owner is not None:
                share = self.memory_share(owner.memory_mode, owner.memory_nodes, dimm.size_kib)
            else:
                share = self.memory_share(None, (), dimm.size_kib)
            for node, kib in share.items():
                dimms[node] = dimms.get(node, 0) + kib
                pages[node, page] = pages.get((node, page), 0) + kib
        weighted = [(len(cell.vcpus), cell.locality) for cell in cells if cell.vcpus]
        count = sum(weight for weight, _locality in weighted)
        locality = sum(weight * value for weight, value in weighted) / count if count else 1.0
        return GuestPlacement(binding=binding, cells=cells, dimm_share=dimms, locality=locality, dimm_pages=pages)


def place_guest(topology: HostTopology, binding: GuestBinding) -> GuestPlacement:
    """Where ``binding``'s cells live on ``topology``, with their alignment and locality."""
    return _Placer(topology).guest(binding)


def place_guests(topology: HostTopology, bindings: Iterable[GuestBinding]) -> list[GuestPlacement]:
    placer = _Placer(topology)
    return [placer.guest(binding) for binding in bindings]


def check_preallocation(topology: HostTopology, cells: Iterable[CellBinding], immediate: bool) -> None:
    """Refuse a cell whose memory libvirt would preallocate on host nodes that have no CPUs.

    libvirt preallocates hugepage-backed memory, and all memory under ``<allocation mode='immediate'/>``.
    libvirt 9.0 with QEMU 7.2 runs the preallocation threads on the CPUs of the nodes the memory is bound
    to; on CPU-less (memory-only) nodes there are none, and QEMU exits at start ("The nodes select no
    CPUs").  The definition itself is valid, so libvirt's define accepts it: only a start would fail.
    A cell bound with ``restrictive`` has no host-nodes on its memory backend, so nothing pins its threads.
    """
    normal = min(topology.page_sizes_kib)
    for cell in cells:
        nodes = cell.memory_nodes
        if not nodes or cell.memory_mode == "restrictive" or not all(topology.has_node(node) for node in nodes):
            continue
        if any(topology.node(node).has_cpus for node in nodes):
            continue
        huge = cell.hugepage_kib is not None and cell.hugepage_kib > normal
        if not huge and not immediate:
            continue
        what = f"{format_kib(cell.hugepage_kib or 0)} hugepages" if huge else "<allocation mode='immediate'/>"
        fix = "leave hugepages unset for it" if huge else "remove <allocation mode='immediate'/>"
        nodes_text = f"host node{'s' if len(nodes) > 1 else ''} {format_cpuset(nodes)}"
        raise PlacementError(
            f"guest cell {cell.id} is bound to {nodes_text}, which has no CPUs, and {what} makes libvirt "
            "preallocate its memory with threads on that node's CPUs: the guest would fail to start (libvirt "
            f"9.0 with QEMU 7.2: 'The nodes select no CPUs'); {fix}, or keep the cell off CPU-less nodes"
        )
