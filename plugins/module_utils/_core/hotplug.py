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
from dataclasses import dataclass, replace
from math import lcm
from typing import Concatenate, ParamSpec, TypeVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import MAX_CPU_ID, format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib, shown
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.wording import plural

__all__ = [
    "VIRTIO_MEM_BLOCK_KIB",
    "DimmPlan",
    "VirtioMemPlan",
    "balanced_enable_order",
    "balanced_shares",
    "check_memory_options",
    "check_memory_slots",
    "dimm_granule_kib",
    "even_split",
    "keep_requested",
    "plan_dimms",
    "plan_requested",
    "plan_virtio_mem",
    "vcpus_to_enable",
    "virtio_mem_block_kib",
]

# virtio-mem plugs and unplugs in blocks of at least the host's transparent huge page (2 MiB on x86);
# QEMU refuses a smaller block for RAM-backed memory.
VIRTIO_MEM_BLOCK_KIB = 2048


def even_split(total: int, parts: int) -> list[int]:
    """Split ``total`` into ``parts`` integers differing by at most one, the larger ones first."""
    base, extra = divmod(total, parts)
    return [base + 1] * extra + [base] * (parts - extra)


def balanced_shares(units: int, cells: int, weights: Sequence[int] | None = None) -> list[int]:
    """Split ``units`` over ``cells``: evenly (``weights`` None, ``even_split``), or in proportion to ``weights``.

    The one balance rule of a guest's memory: the cells' boot memory (``memory_split``), the
    virtio-mem devices' sizes and their requested sizes all follow it.  Even shares differ by at
    most one, the larger first; proportional shares are rounded down and the rest goes one unit
    each to the first cells.
    """
    if weights is None:
        return even_split(units, cells)
    total = sum(weights)
    shares = [units * weight // total for weight in weights]
    for cell in range(units - sum(shares)):
        shares[cell] += 1
    return shares


def _cell_weights(layout: Layout) -> list[int] | None:
    """The balance rule's weights for a layout: None (even), or the cells' vCPU counts (``memory_split: vcpus``)."""
    return [len(cell.vcpus) for cell in layout.cells] if layout.spec.memory_split == "vcpus" else None


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
def check_memory_slots(layout: Layout, held: int, needed: int = 0, purpose: str = "", needs: str = "") -> None:
    """The one memory-slot rule: the memory devices a guest keeps and those it gets fit ``memory_slots``.

    ``held`` is the number of memory devices the guest keeps (DIMMs, its user's own devices), ``needed`` the
    number ``purpose`` adds (``needs`` says how many in words; ``N memory slots`` when empty).  Every memory
    device takes a slot: libvirt refuses a definition with more ("memory device count '2' exceeds slots count
    '1'").  A layout without ``memory_slots`` has no limit here.
    """
    slots = layout.memory_slots
    if slots is None or held + needed <= slots:
        return
    if not needed:
        purpose, needs, held = f"keeping the guest's {plural(held, 'memory device')}", plural(held, "memory slot"), 0
    others = f" ({held} held by other memory devices)" if held else ""
    raise PlacementError(f"{purpose} needs {needs or plural(needed, 'memory slot')}; memory_slots is {slots}{others}")


@_naming_guest
def plan_dimms(
    layout: Layout, size_kib: int, existing: Sequence[tuple[int, int]] = (), held: int | None = None
) -> tuple[DimmPlan, ...]:
    """Split a hot-add of ``size_kib`` into one DIMM per cell, round-robin when it is smaller than the cells.

    ``existing`` lists the guest's present DIMMs as (guest cell, size KiB).  The granule units go
    evenly to every cell; a remainder goes to the cells with the least hot-added memory first
    (then the lower id), so successive small hot-adds walk round the cells.  ``held`` is the number of
    memory slots the guest's memory devices hold (its DIMMs and any others it keeps; ``len(existing)``
    when None).
    """
    if layout.max_memory_kib is None or layout.memory_slots is None:
        raise SpecError("memory hotplug needs max_memory and memory_slots in the vnuma spec")
    held = len(existing) if held is None else held
    check_memory_slots(layout, held)
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
    free_slots = layout.memory_slots - held
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


@dataclass(frozen=True)
class VirtioMemPlan:
    """The virtio-mem device of one guest cell: its size, block, requested size and backing."""

    cell: int
    size_kib: int
    block_kib: int
    host_nodes: tuple[int, ...]
    # The hugepage size backing it (``<source><pagesize>``), None for normal pages.
    page_kib: int | None = None
    requested_kib: int = 0


def virtio_mem_block_kib(layout: Layout) -> int:
    """The block a cell's virtio-mem device plugs in: the hugepage size when used, else 2 MiB."""
    return max(VIRTIO_MEM_BLOCK_KIB, layout.hugepages_kib or 0)


@_naming_guest
def plan_virtio_mem(layout: Layout, other_kib: int = 0, other_devices: int = 0) -> tuple[VirtioMemPlan, ...]:
    """One virtio-mem device per cell, sharing the hotpluggable range by the cells' balance rule.

    The range is ``max_memory`` less the boot memory and less ``other_kib``, the memory of the
    guest's other memory devices (``other_devices`` of them, each holding a memory slot too).  Each
    size is whole blocks; what does not make a whole block is left unused.  Nothing is requested.
    """
    if layout.max_memory_kib is None or layout.memory_slots is None:
        raise SpecError("memory_device virtio-mem needs max_memory and memory_slots in the vnuma spec")
    cells = len(layout.cells)
    block = virtio_mem_block_kib(layout)
    check_memory_slots(layout, other_devices, cells, "memory_device virtio-mem", f"one memory slot per cell, {cells}")
    hotpluggable = layout.max_memory_kib - layout.memory_kib - other_kib
    shares = balanced_shares(max(hotpluggable, 0) // block, cells, _cell_weights(layout))
    if min(shares) == 0:
        others = f" and {format_kib(other_kib)} of other memory devices" if other_kib else ""
        raise PlacementError(
            f"max_memory {format_kib(layout.max_memory_kib)} leaves {format_kib(max(hotpluggable, 0))} above the "
            f"boot memory {format_kib(layout.memory_kib)}{others}: too little for a virtio-mem block of "
            f"{format_kib(block)} in each of {cells} cells"
        )
    return tuple(
        VirtioMemPlan(
            cell=cell.id,
            size_kib=share * block,
            block_kib=block,
            host_nodes=cell.memory_nodes,
            page_kib=layout.hugepages_kib,
        )
        for cell, share in zip(layout.cells, shares, strict=True)
    )


def keep_requested(plan: VirtioMemPlan, requested_kib: int) -> VirtioMemPlan:
    """``plan`` asking for the ``requested_kib`` its device has (an earlier resize): whole blocks, at most its size."""
    kept = min(requested_kib - requested_kib % plan.block_kib, plan.size_kib)
    return replace(plan, requested_kib=kept)


def check_memory_options(spec: VnumaSpec, total_memory_kib: int | None, hotplug_memory_kib: int | None) -> None:
    """Each memory hotplug option with the memory device it drives, refused before anything is planned."""
    if total_memory_kib is not None and spec.memory_device != "virtio-mem":
        raise SpecError(
            f"total_memory {format_kib(total_memory_kib)} sets the requested sizes of virtio-mem cells, "
            f"but the guest has memory_device {spec.memory_device}; set memory_device virtio-mem (with max_memory "
            "and memory_slots), or hot-add DIMMs with hotplug_memory"
        )
    if hotplug_memory_kib is not None and spec.memory_device == "virtio-mem":
        raise SpecError(
            f"hotplug_memory {format_kib(hotplug_memory_kib)} hot-adds DIMMs, but the guest's cells grow "
            "through virtio-mem (memory_device virtio-mem); give the guest's new size as total_memory"
        )


@_naming_guest
def plan_requested(
    layout: Layout, devices: Sequence[VirtioMemPlan], total_kib: int, other_kib: int = 0
) -> tuple[VirtioMemPlan, ...]:
    """``devices`` with the requested sizes that bring the guest's memory to ``total_kib``.

    The guest's memory is its boot memory, ``other_kib`` (its other memory devices) and what the
    virtio-mem devices have plugged.  The plugged part is split over the cells by the cells'
    balance rule, in whole blocks; a cell whose device is full passes the rest on to the next cells.
    """
    if isinstance(total_kib, bool) or not isinstance(total_kib, int) or total_kib < 1:
        raise SpecError(f"total_memory {shown(total_kib)} must be a positive size")
    fixed = layout.memory_kib + other_kib
    most = fixed + sum(device.size_kib for device in devices)
    others = f" and {format_kib(other_kib)} of other memory devices" if other_kib else ""
    if total_kib < fixed:
        raise PlacementError(
            f"total_memory {format_kib(total_kib)} is below the boot memory {format_kib(layout.memory_kib)}{others}: "
            "virtio-mem can only take back what it plugged"
        )
    if total_kib > most:
        ceiling = f"max_memory {format_kib(layout.max_memory_kib)}" if layout.max_memory_kib else "no max_memory"
        raise PlacementError(
            f"total_memory {format_kib(total_kib)} is above the {format_kib(most)} the guest can hold "
            f"({ceiling}: boot memory {format_kib(layout.memory_kib)}{others} and its virtio-mem devices)"
        )
    block = max((device.block_kib for device in devices), default=VIRTIO_MEM_BLOCK_KIB)
    plugged = total_kib - fixed
    if plugged % block or any(device.block_kib != block for device in devices):
        raise SpecError(
            f"total_memory {format_kib(total_kib)} leaves {format_kib(plugged)} to plug, not a multiple of the "
            f"virtio-mem block {format_kib(block)}"
        )
    by_cell = {cell.id: index for index, cell in enumerate(layout.cells)}
    weights = _cell_weights(layout)
    chosen = [
        weights[by_cell[device.cell]] if weights is not None and device.cell in by_cell else 1 for device in devices
    ]
    shares = balanced_shares(plugged // block, len(devices), chosen if weights is not None else None)
    room = [device.size_kib // block for device in devices]
    spill = 0
    for index in range(len(devices)):
        over = max(shares[index] - room[index], 0)
        shares[index] -= over
        spill += over
    for index in range(len(devices)):
        extra = min(spill, room[index] - shares[index])
        shares[index] += extra
        spill -= extra
    return tuple(replace(device, requested_kib=share * block) for device, share in zip(devices, shares, strict=True))
