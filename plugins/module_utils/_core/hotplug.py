# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""NUMA-aware hotplug plans: which vCPUs to bring online, and how to split a memory hot-add.

Both keep the guest balanced across its cells, where libvirt's own behaviour does not: vCPUs
are enabled lowest id first (all in cell 0 under a contiguous layout) and a DIMM without a
target node lands in node 0.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from math import lcm
from typing import Concatenate, ParamSpec, TypeVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import MAX_CPU_ID, format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import DIMM_BLOCK_KIB
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib, shown

__all__ = ["DIMM_BLOCK_KIB", "DimmPlan", "balanced_enable_order", "dimm_granule_kib", "plan_dimms", "vcpus_to_enable"]


def balanced_enable_order(
    units_by_cell: Sequence[Sequence[tuple[int, ...]]],
    online: Iterable[int] = (),
    first: tuple[int, ...] | None = None,
) -> list[tuple[int, ...]]:
    """Order the offline units (guest cores) so that each step keeps the cells balanced.

    ``units_by_cell[c]`` lists cell c's units (tuples of vCPU ids) in ascending order.  Cells are
    filled in proportion to their size: the next unit goes to the cell whose online share would be
    the smallest after taking it (ties: the lower cell id), and within a cell the lowest unit goes
    first.  ``first`` is placed before everything else (the boot vCPU 0's core).
    """
    online_set = set(online)
    order: list[tuple[int, ...]] = []
    sizes = [sum(len(unit) for unit in units) for units in units_by_cell]
    counts = [sum(1 for unit in units for vcpu in unit if vcpu in online_set) for units in units_by_cell]
    pending = [[unit for unit in units if not online_set.issuperset(unit)] for units in units_by_cell]
    if first is not None:
        for cell, units in enumerate(pending):
            if first in units:
                units.remove(first)
                counts[cell] += len(first)
                order.append(first)
    # (count + len) / size compared over one common denominator: integer keys, exact, and a heap
    # holding at most one candidate per cell orders them in O(log cells) per unit.
    scale = lcm(*(size for size in sizes if size)) if any(sizes) else 1
    cursor = [0] * len(pending)
    heap: list[tuple[int, int]] = [
        ((counts[cell] + len(units[0])) * (scale // sizes[cell]), cell) for cell, units in enumerate(pending) if units
    ]
    heapq.heapify(heap)
    while heap:
        _share, cell = heapq.heappop(heap)
        units = pending[cell]
        unit = units[cursor[cell]]
        order.append(unit)
        counts[cell] += len(unit)
        cursor[cell] += 1
        if cursor[cell] < len(units):
            heapq.heappush(heap, ((counts[cell] + len(units[cursor[cell]])) * (scale // sizes[cell]), cell))
    return order


_Args = ParamSpec("_Args")
_Result = TypeVar("_Result")


def _naming_guest(
    function: Callable[Concatenate[Layout, _Args], _Result],
) -> Callable[Concatenate[Layout, _Args], _Result]:
    """Name the layout's guest in every refusal (``guest db01: ...``), as the partitioner's checks do.

    The layout knows its guest (``Layout.guest``), and _core.errors asks that a known guest be named first.
    """

    @functools.wraps(function)
    def wrapper(layout: Layout, /, *args: _Args.args, **kwargs: _Args.kwargs) -> _Result:
        try:
            return function(layout, *args, **kwargs)
        except VnumaError as error:
            raise error.naming(layout.guest) from None

    return wrapper


def _units_by_cell(layout: Layout) -> list[list[tuple[int, ...]]]:
    threads = layout.topology.threads
    units: list[list[tuple[int, ...]]] = []
    for cell in layout.cells:
        ids = cell.vcpus
        units.append([tuple(ids[index : index + threads]) for index in range(0, len(ids), threads)])
    return units


@_naming_guest
def vcpus_to_enable(layout: Layout, online: Iterable[int], target: int) -> tuple[int, ...]:
    """The vCPU ids to enable so that ``target`` vCPUs are online and the cells stay balanced.

    Whole guest cores are enabled together; the result is in enable order.  A target at or below
    the current count enables nothing.
    """
    online_set = set(online)
    unknown = sorted(online_set - set(range(layout.vcpus)))
    if unknown:
        # format_cpuset refuses ids outside libvirt's range (with a message about cpusets): list those as given.
        in_range = unknown[0] >= 0 and unknown[-1] <= MAX_CPU_ID
        listed = format_cpuset(unknown) if in_range else ",".join(shown(vcpu) for vcpu in unknown[:8])
        if not in_range and len(unknown) > 8:
            listed += f"... ({len(unknown)} ids)"
        raise SpecError(
            f"online vCPU ids {listed} are not among the guest's {layout.vcpus} vCPUs (0-{layout.vcpus - 1})"
        )
    if isinstance(target, bool) or not isinstance(target, int) or target < 1:
        raise SpecError(f"the number of online vCPUs {shown(target)} must be a positive integer")
    if target > layout.vcpus:
        raise PlacementError(f"cannot bring {shown(target)} vCPUs online: the guest's maximum is {layout.vcpus} vCPUs")
    if target <= len(online_set):
        return ()
    chosen: list[int] = []
    for unit in balanced_enable_order(_units_by_cell(layout), online_set):
        if len(online_set) + len(chosen) >= target:
            break
        chosen.extend(vcpu for vcpu in unit if vcpu not in online_set)
    return tuple(chosen)


@dataclass(frozen=True)
class DimmPlan:
    """One DIMM to hot-add: its guest cell (``<target><node>``), size, and host nodes to bind."""

    cell: int
    size_kib: int
    host_nodes: tuple[int, ...]


def dimm_granule_kib(layout: Layout) -> int:
    """The size every DIMM is a multiple of: the Linux memory block, and the hugepage size when used."""
    return lcm(layout.dimm_block_kib, layout.hugepages_kib or 1)


@_naming_guest
def plan_dimms(layout: Layout, size_kib: int, existing: Sequence[tuple[int, int]] = ()) -> tuple[DimmPlan, ...]:
    """Split a hot-add of ``size_kib`` into one DIMM per cell, round-robin when it is smaller than the cells.

    ``existing`` lists the guest's present DIMMs as (guest cell, size KiB).  The granule units go
    evenly to every cell; a remainder goes to the cells with the least hot-added memory first
    (then the lower id), so successive small hot-adds walk round the cells.
    """
    if layout.max_memory_kib is None or layout.memory_slots is None:
        raise SpecError("memory hotplug needs max_memory and memory_slots in the vnuma spec")
    if isinstance(size_kib, bool) or not isinstance(size_kib, int) or size_kib < 1:
        raise SpecError(f"the memory to hot-add {shown(size_kib)} must be a positive size")
    granule = dimm_granule_kib(layout)
    if size_kib % granule:
        raise SpecError(
            f"the memory to hot-add, {format_kib(size_kib)}, is not a multiple of {format_kib(granule)} "
            "(the guest onlines memory in blocks of that size)"
        )
    cells = len(layout.cells)
    added = [0] * cells
    for cell, size in existing:
        if not 0 <= cell < cells:
            raise PlacementError(f"an existing DIMM targets guest cell {shown(cell)}, the guest has {cells} cells")
        added[cell] += size
    units = size_kib // granule
    per_cell = [units // cells] * cells
    for cell in sorted(range(cells), key=lambda c: (added[c], c))[: units % cells]:
        per_cell[cell] += 1
    plan = tuple(
        DimmPlan(cell=cell.id, size_kib=per_cell[cell.id] * granule, host_nodes=cell.memory_nodes)
        for cell in layout.cells
        if per_cell[cell.id]
    )
    free_slots = layout.memory_slots - len(existing)
    if len(plan) > free_slots:
        raise PlacementError(
            f"hot-adding {format_kib(size_kib)} needs {len(plan)} memory slots, "
            f"{free_slots} of {layout.memory_slots} are free"
        )
    total = layout.memory_kib + sum(added) + size_kib
    if total > layout.max_memory_kib:
        raise PlacementError(
            f"hot-adding {format_kib(size_kib)} would bring the guest to {format_kib(total)}, "
            f"above max_memory {format_kib(layout.max_memory_kib)}"
        )
    return plan
