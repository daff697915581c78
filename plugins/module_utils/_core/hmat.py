# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Guest HMAT: the latency and bandwidth each guest cell shows, and from which initiator.

The rules (docs/partitioning.md, "Guest HMAT"):

- Every guest cell gets one initiator: a cell with vCPUs is its own; a cell without vCPUs gets the
  cell with vCPUs that mirrors the host's initiator of its memory, else the nearest cell with vCPUs
  (guest distance, then the lowest id).  libvirt has no attribute for it: it takes, for a cell
  without CPUs, the initiator of the lowest latency naming the cell as target, so the figures
  written for a cell come from its initiator only.  That is also all Linux uses: a node's
  ``access0`` figures are those from its initiator.
- ``host``: a cell shows the host's figures for its memory nodes, each as the host reports it from
  that node's nearest initiator.  A cell over several nodes shows the worst of them: the highest
  latency and the lowest bandwidth, because a binding over several nodes fills them in an order
  the guest cannot see, so any of its pages may be on the slowest.
- ``synthesize``: figures from the guest distance d between the initiator and the cell, as the lab's
  firmware tables are made: ``d`` x 10 ns and 20 GiB/s x 10 / d (100 ns and 20 GiB/s for a cell's
  own memory, 210 ns and 9752 MiB/s at distance 21).
- ``host``: a cell's memory-side caches are its memory nodes' (when they all report the same ones).
  ``synthesize`` takes nothing from the host, caches included: every host gives the same HMAT (and a
  guest keeps it across a migration, DESIGN.md section 5).

Figures are fitted to what QEMU can put in the ACPI table: bandwidths in whole MiB/s, and every
figure of one kind within the 16 bits QEMU keeps per entry over a common base.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import LOCAL_DISTANCE
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import HMAT_MODES
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCache, HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.wording import nodes_text

__all__ = [
    "SYNTHETIC_BANDWIDTH_KIB",
    "SYNTHETIC_LATENCY_NS",
    "CellAccess",
    "GuestHmat",
    "HmatCell",
    "NodeAccess",
    "guest_hmat",
    "host_access",
]

# What ``synthesize`` gives a cell's own memory (distance 10); farther memory scales with the distance.
SYNTHETIC_LATENCY_NS = 100
SYNTHETIC_BANDWIDTH_KIB = 20 * 1024 * 1024
_MIB = 1024
# QEMU stores each figure as a 16-bit entry times a base common to the table (hw/core/numa.c,
# parse_numa_hmat_lb): latencies over a power of ten, bandwidths over a power of two of at least 1 MiB/s.
_ENTRY_LIMIT = 0xFFFF


class HmatCell(Protocol):
    """What the rules read of a guest cell (``_core/layout.py:GuestCell``)."""

    @property
    def id(self) -> int: ...

    @property
    def vcpus(self) -> tuple[int, ...]: ...

    @property
    def host_nodes(self) -> tuple[int, ...]: ...

    @property
    def memory_nodes(self) -> tuple[int, ...]: ...

    @property
    def distances(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class NodeAccess:
    """What the host reports for one node's memory: its initiator and the figures from there.

    Latencies in nanoseconds, bandwidths in KiB per second; None when the host reports none.
    """

    initiator: int
    read_latency_ns: int | None = None
    write_latency_ns: int | None = None
    read_bandwidth_kib: int | None = None
    write_bandwidth_kib: int | None = None

    @property
    def figures(self) -> tuple[int | None, int | None, int | None, int | None]:
        return (self.read_latency_ns, self.write_latency_ns, self.read_bandwidth_kib, self.write_bandwidth_kib)


@dataclass(frozen=True)
class CellAccess:
    """What the guest sees of one cell's memory: from which cell, how fast."""

    cell: int
    initiator: int
    read_latency_ns: int | None
    write_latency_ns: int | None
    read_bandwidth_kib: int | None
    write_bandwidth_kib: int | None


@dataclass(frozen=True)
class GuestHmat:
    """The guest's HMAT: one ``CellAccess`` and the memory-side caches of each cell, by cell id."""

    mode: str
    accesses: tuple[CellAccess, ...]
    caches: tuple[tuple[HostCache, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "cells": [
                {
                    "id": access.cell,
                    "initiator": access.initiator,
                    "read_latency_ns": access.read_latency_ns,
                    "write_latency_ns": access.write_latency_ns,
                    "read_bandwidth_kib": access.read_bandwidth_kib,
                    "write_bandwidth_kib": access.write_bandwidth_kib,
                    "caches": [cache._asdict() for cache in caches],
                }
                for access, caches in zip(self.accesses, self.caches, strict=True)
            ],
        }


def host_access(host: HostTopology, node_id: int, initiators: Collection[int] | None = None) -> NodeAccess | None:
    """The host's figures for the memory of ``node_id``, from its best initiator; None without any.

    Linux (and so libvirt) reports a node's figures from its nearest initiators only; when several
    are reported, the one with the lowest latency (then the highest bandwidth, then the lowest id).
    With ``initiators``, only figures from those host nodes count.
    """
    by_initiator: dict[int, dict[str, int]] = {}
    for entry in host.interconnects:
        if entry.target != node_id or entry.cache:
            continue
        if initiators is not None and entry.initiator not in initiators:
            continue
        figures = by_initiator.setdefault(entry.initiator, {})
        # "access" is both reads and writes; a figure given for one of them as well wins for that one.
        kinds = ("read", "write") if entry.access == "access" else (entry.access,)
        for access in kinds:
            key = f"{access}_{entry.kind}"
            if entry.access != "access" or key not in figures:
                figures[key] = entry.value
    if not by_initiator:
        return None

    def rank(initiator: int) -> tuple[int, int, int]:
        figures = by_initiator[initiator]
        latency = figures.get("read_latency", figures.get("write_latency", 2**63))
        bandwidth = figures.get("read_bandwidth", figures.get("write_bandwidth", 0))
        return latency, -bandwidth, initiator

    best = min(by_initiator, key=rank)
    figures = by_initiator[best]
    return NodeAccess(
        initiator=best,
        read_latency_ns=figures.get("read_latency"),
        write_latency_ns=figures.get("write_latency"),
        read_bandwidth_kib=figures.get("read_bandwidth"),
        write_bandwidth_kib=figures.get("write_bandwidth"),
    )


def _worst(values: Sequence[int | None], latency: bool) -> int | None:
    """The worst of several nodes' figures; None when any of them has none (unknown is not good)."""
    if any(value is None for value in values):
        return None
    known = [value for value in values if value is not None]
    return max(known) if latency else min(known)


def _initiator(cell: HmatCell, cells: Sequence[HmatCell], preferred_nodes: set[int]) -> int:
    """The cell with vCPUs that serves ``cell``: one over the host's initiators of its memory, else the nearest."""
    if cell.vcpus:
        return cell.id
    candidates = [other for other in cells if other.vcpus]
    if not candidates:
        raise SpecError("the guest has no cell with vCPUs to be the initiator of its HMAT")
    mirrored = [other for other in candidates if preferred_nodes & set(other.host_nodes)]
    pool = mirrored or candidates
    return min(pool, key=lambda other: (cell.distances[other.id], other.id)).id


def _caches(host: HostTopology, nodes: Sequence[int]) -> tuple[HostCache, ...]:
    found = {host.node(node).caches for node in nodes}
    return next(iter(found)) if len(found) == 1 else ()


def _fit_latencies(values: list[int]) -> list[int]:
    """Latencies rounded up to a power of ten that keeps the largest within QEMU's 16-bit entries."""
    base = 1
    while max(values, default=0) > _ENTRY_LIMIT * base - base:
        base *= 10
    return [max(base, -(-value // base) * base) for value in values]


def _fit_bandwidths(values: list[int]) -> list[int]:
    """Bandwidths rounded down to whole MiB/s (at least 1), then to a power of two keeping 16 bits."""
    mib = [max(1, value // _MIB) for value in values]
    base = 1
    while max(mib, default=0) // base >= _ENTRY_LIMIT:
        base *= 2
    return [max(base, value // base * base) * _MIB for value in mib]


def _fitted(accesses: list[CellAccess]) -> list[CellAccess]:
    fields = ("read_latency_ns", "write_latency_ns", "read_bandwidth_kib", "write_bandwidth_kib")
    columns: dict[str, list[int]] = {}
    for name in fields:
        known = [getattr(access, name) for access in accesses if getattr(access, name) is not None]
        fit = _fit_latencies if name.endswith("_ns") else _fit_bandwidths
        columns[name] = fit(known)
    result = []
    positions = dict.fromkeys(fields, 0)
    for access in accesses:
        values: dict[str, int | None] = {}
        for name in fields:
            if getattr(access, name) is None:
                values[name] = None
            else:
                values[name] = columns[name][positions[name]]
                positions[name] += 1
        result.append(CellAccess(cell=access.cell, initiator=access.initiator, **values))
    return result


_FIGURES = {
    "read_latency_ns": "read latency",
    "write_latency_ns": "write latency",
    "read_bandwidth_kib": "read bandwidth",
    "write_bandwidth_kib": "write bandwidth",
}


def _check_complete(
    accesses: Sequence[CellAccess], cells: Sequence[HmatCell], served: dict[int, dict[int, NodeAccess | None]]
) -> None:
    """Every cell has each kind of figure or none has it: Linux reads a missing entry as 0.

    ``served`` holds, per cell id, the host's figures for each of its memory nodes as its initiator
    sees them (host mode; empty for synthesize), so a refusal names the nodes that lack the figure.
    """
    nodes = {cell.id: cell.memory_nodes for cell in cells}
    for name, words in _FIGURES.items():
        lacking = [access.cell for access in accesses if getattr(access, name) is None]
        if lacking and len(lacking) < len(accesses):
            first = lacking[0]
            figures = served.get(first, {})
            without = [
                node for node in nodes[first] if figures.get(node) is None or getattr(figures[node], name) is None
            ]
            shown = without or list(nodes[first])
            raise SpecError(
                f"hmat host: the host reports a {words} for some of the guest's memory but not for "
                f"{nodes_text(shown)} (guest cell {first}); the guest would read 0 there: use hmat "
                f"synthesize, or leave {'that node' if len(shown) == 1 else 'those nodes'} out"
            )
    for access in accesses:
        given = (access.read_latency_ns, access.write_latency_ns, access.read_bandwidth_kib, access.write_bandwidth_kib)
        if access.initiator != access.cell and all(figure is None for figure in given):
            # Without a figure naming it, libvirt finds no initiator for a cell without vCPUs.
            own = nodes[access.cell]
            raise SpecError(
                f"hmat host: guest cell {access.cell} has no vCPUs and the host reports no figure for its "
                f"{nodes_text(own)}: use hmat synthesize, or leave {'that node' if len(own) == 1 else 'those nodes'} "
                "out"
            )


def _unserved_advice(host: HostTopology, cells: Sequence[HmatCell], initiator: int, unserved: dict[int, int]) -> str:
    """What would let the host's figures reach the cell: per host initiator of the ``unserved`` nodes.

    ``unserved`` maps each memory node the initiator cell has no figures for to the host node its
    figures are from.  That node may be outside the guest (add it), under a guest cell without vCPUs
    (give that cell vCPUs), or under another cell with vCPUs than the initiator (a CPU-less node needs
    a guest cell of its own to be served by it).
    """
    # The cell over each host node; of several (cells sharing a node), one with vCPUs.
    holder: dict[int, HmatCell] = {}
    for cell in cells:
        for node in cell.host_nodes:
            if node not in holder or (cell.vcpus and not holder[node].vcpus):
                holder[node] = cell
    cpu_cells = [cell for cell in cells if any(host.node(node).has_cpus for node in cell.host_nodes)]
    vcpus = sum(len(cell.vcpus) for cell in cells)
    advice = []
    for source in sorted(set(unserved.values())):
        targets = sorted(node for node, found in unserved.items() if found == source)
        under = holder.get(source)
        if under is None:
            advice.append(f"its figures are from {nodes_text([source])}: add that node to the guest")
        elif not under.vcpus:
            more = (
                f"at least {len(cpu_cells)} vCPUs, one per guest cell on host nodes with CPUs; the guest has {vcpus}"
                if vcpus < len(cpu_cells)
                else "more vCPUs, or another distribution"
            )
            advice.append(
                f"its figures are from {nodes_text([source])}, which guest cell {under.id} holds without vCPUs: "
                f"give that cell vCPUs ({more})"
            )
        elif all(not host.node(node).has_cpus for node in targets) and under.id != initiator:
            own = nodes_text(targets) + (
                " a guest cell of its own" if len(targets) == 1 else " guest cells of their own"
            )
            advice.append(
                f"its figures are from {nodes_text([source])}, in guest cell {under.id}: give {own} (more cells), "
                f"which guest cell {under.id} then serves"
            )
        else:
            advice.append(f"its figures are from {nodes_text([source])} (guest cell {under.id}) only")
    return "; ".join(advice)


def guest_hmat(host: HostTopology, cells: Sequence[HmatCell], mode: str) -> GuestHmat | None:
    """The HMAT of a guest whose cells are ``cells`` (``GuestCell``s, by id) under ``mode``; None for ``none``.

    ``host`` refuses, naming the node, when the host reports no figures for a node a cell's memory is on.
    """
    if mode == "none":
        return None
    if mode not in HMAT_MODES:
        raise SpecError(f"hmat {mode!r} is not one of {', '.join(HMAT_MODES)}")
    accesses: list[CellAccess] = []
    by_id = {cell.id: cell for cell in cells}
    served_by_cell: dict[int, dict[int, NodeAccess | None]] = {}
    for cell in cells:
        reported = {node: host_access(host, node) for node in cell.memory_nodes}
        if mode == "host":
            missing = sorted(node for node, access in reported.items() if access is None)
            if missing:
                raise SpecError(
                    f"hmat host: the host reports no HMAT latency or bandwidth for {nodes_text(missing)} "
                    f"(guest cell {cell.id}'s memory); use hmat synthesize or none"
                )
        initiators = {access.initiator for access in reported.values() if access is not None}
        initiator = _initiator(cell, cells, initiators if mode == "host" else set())
        if mode == "host":
            # The figures the guest sees for this cell are from its initiator cell: they must be the
            # host's from that cell's nodes, never another node's (the guest would see faster memory).
            serving = by_id[initiator].host_nodes
            served = {node: host_access(host, node, serving) for node in cell.memory_nodes}
            unserved = {
                node: access.initiator
                for node, access in reported.items()
                if access is not None and served[node] is None
            }
            if unserved:
                role = "its own initiator" if initiator == cell.id else f"the initiator of guest cell {cell.id}"
                raise SpecError(
                    f"hmat host: the host reports no figures from {nodes_text(serving)} (guest cell "
                    f"{initiator}, {role}) for {nodes_text(unserved)} (guest cell {cell.id}'s "
                    f"memory); {_unserved_advice(host, cells, initiator, unserved)}, or use hmat synthesize"
                )
            served_by_cell[cell.id] = served
            figures = [access.figures for access in served.values() if access is not None]
            read_latency, write_latency, read_bandwidth, write_bandwidth = (
                _worst([row[index] for row in figures], latency=index < 2) for index in range(4)
            )
        else:
            distance = cell.distances[initiator] if initiator != cell.id else LOCAL_DISTANCE
            read_latency = write_latency = SYNTHETIC_LATENCY_NS * distance // LOCAL_DISTANCE
            read_bandwidth = write_bandwidth = SYNTHETIC_BANDWIDTH_KIB // _MIB * LOCAL_DISTANCE // distance * _MIB
        accesses.append(
            CellAccess(
                cell=cell.id,
                initiator=initiator,
                read_latency_ns=read_latency,
                write_latency_ns=write_latency,
                read_bandwidth_kib=read_bandwidth,
                write_bandwidth_kib=write_bandwidth,
            )
        )
    _check_complete(accesses, cells, served_by_cell)
    caches = tuple(_caches(host, cell.memory_nodes) if mode == "host" else () for cell in cells)
    return GuestHmat(mode=mode, accesses=tuple(_fitted(accesses)), caches=caches)
