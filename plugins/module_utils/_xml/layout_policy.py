# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Layout -> domain: what each owned element becomes under a layout, one function per element.

Each takes the layout and, where the user's own values stay, the element as the domain has it now.
``DomainNuma.from_layout`` (``domain.py``) gathers them and checks the result.
"""

from __future__ import annotations

from typing import TypeVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import (
    check_memory_slots,
    keep_requested,
    plan_requested,
    plan_virtio_mem,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cpu_numa import (
    L3_EMULATED,
    CpuCache,
    CpuTopology,
    Numa,
    NumaCell,
    Sibling,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cputune import Emulatorpin, Vcpupin
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.hmat import hmat_for
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import (
    HugePage,
    Hugepages,
    MaxMemory,
    MemoryDevice,
    VirtioMemCells,
    virtio_mem_alias,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.numatune import Memnode, Numatune, NumatuneMemory
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import sorted_ids
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vcpus import Vcpu, Vcpus, VcpuState

__all__ = [
    "emulatorpin_for",
    "hugepages_for",
    "max_memory_for",
    "memory_for",
    "numa_for",
    "numatune_for",
    "topology_for",
    "vcpu_for",
    "vcpupins_for",
    "vcpus_for",
    "virtio_mem_for",
]


def vcpu_for(layout: Layout, current: Vcpu | None) -> Vcpu:
    """``<vcpu>``: the layout's vCPUs, static placement, the user's default cpuset kept."""
    return Vcpu(
        count=layout.vcpus,
        # numad's advisory nodeset (placement='auto') would override the static <numatune> we write.
        placement="static",
        # A user's default cpuset stays: vcpupin and emulatorpin override it where they exist.
        cpuset=None if current is None else current.cpuset,
        # libvirt writes current only when some vCPUs are offline at boot.
        current=layout.current_vcpus if layout.current_vcpus < layout.vcpus else None,
    )


def vcpus_for(layout: Layout) -> Vcpus | None:
    """The hotplug state a layout asks for, or None when every vCPU is online at boot.

    Rules (libvirt, https://libvirt.org/formatdomain.html#cpu-allocation, and the QEMU driver's
    ``qemuDomainDefVcpusPostParse`` and ``qemuProcessValidateHotpluggableVcpus``): every vCPU is
    listed; the online ones are the first ``current_vcpus`` of the enable order; the online vCPUs
    that form the prefix 0..p-1 of ids are the boot set (``hotpluggable='no'``: QEMU's ``-smp``
    creates exactly those, and vCPU 0 must be one of them); every other vCPU is hot-pluggable, as
    libvirt requires of disabled ones.  ``order`` is given for every online vCPU and no offline
    one, because libvirt wants it on all online vCPUs once it is used at all; the numbers are
    1..``current_vcpus``, each used once (libvirt refuses a duplicate at start).

    ``order`` is the sequence in which libvirt hot-plugs the online hot-pluggable vCPUs at start,
    so each of those keeps its 1-based position in the enable order.  The boot set has no such
    sequence (``-smp`` creates it in one go) and libvirt wants its numbers ascending by id ("online
    non-hotpluggable vcpus must be ordered in ascending order"): it takes its own positions, sorted
    and handed out in id order.  Where those already ascend, every vCPU keeps its position: a
    definition libvirt accepted before does not change.
    """
    if layout.current_vcpus >= layout.vcpus:
        return None
    _check_enable_order(layout)
    online_order = layout.enable_order[: layout.current_vcpus]
    online = set(online_order)
    position = {vcpu: index + 1 for index, vcpu in enumerate(online_order)}
    prefix = 0
    while prefix in online:
        prefix += 1
    # The boot set's positions, ascending by id; vCPU 0 takes 1, as it is first in the enable order.
    position.update(zip(range(prefix), sorted(position[vcpu] for vcpu in range(prefix)), strict=True))
    return Vcpus(
        tuple(
            VcpuState(
                id=vcpu,
                enabled=vcpu in online,
                hotpluggable=vcpu >= prefix,
                order=position.get(vcpu),
            )
            for vcpu in range(layout.vcpus)
        )
    )


def _check_enable_order(layout: Layout) -> None:
    order = layout.enable_order
    if sorted(order) != list(range(layout.vcpus)):
        raise SpecError(f"the vCPU enable order {list(order)} is not a permutation of vCPUs 0-{layout.vcpus - 1}")
    if layout.current_vcpus < 1 or 0 not in order[: layout.current_vcpus]:
        raise SpecError("vCPU 0 must be online at boot (QEMU cannot hot-plug or unplug it)")
    if order[0] != 0:
        # libvirt: "vcpu0 must be enabled first" (its order is 1).
        raise SpecError(f"vCPU 0 must come first in the vCPU enable order {list(order)} (libvirt enables it first)")


def topology_for(layout: Layout) -> CpuTopology:
    """``<cpu><topology>``: the layout's guest topology."""
    topology = layout.topology
    return CpuTopology(sockets=topology.sockets, dies=topology.dies, cores=topology.cores, threads=topology.threads)


def cache_for(layout: Layout, current: CpuCache | None) -> CpuCache | None:
    """``<cpu><cache>``: QEMU's emulated L3 when the host's L3 banks shape the cells and the guest has none.

    A ``<cache>`` already there stays, whoever wrote it: the user's passthrough or disable is a choice,
    and the collection's own element must not change when the guest moves to a host without banks
    (what the guest sees is kept across a migration).  ``state: absent`` removes the one it wrote.
    """
    if current is not None or not layout.l3_cells:
        return current
    return L3_EMULATED


def numa_for(layout: Layout, current: Numa | None) -> Numa:
    """``<cpu><numa>``: the layout's cells and distances; the user's backing of the cells kept.

    Backing (``memAccess``, ``discard``; each attribute on its own): a cell takes the value of the
    domain's cell with its id; a cell the domain does not have takes the value every cell of the
    domain agrees on, and none (the guest-wide ``<memoryBacking>``) when they differ.  So one
    ``memAccess='shared'`` cell (virtiofs, vhost-user) makes every new cell shared, and a second run
    finds each cell with its own id and changes nothing.

    HMAT: the layout's when the spec asks for it (it then replaces what the domain had); otherwise the
    domain's own, hand-written one, caches with the cell of the same id (``Numa.validate`` refuses
    figures naming cells the layout no longer has).
    """
    cell_count = len(layout.cells)
    previous_cells = {cell.id: cell for cell in current.cells} if current is not None else {}
    if layout.hmat is not None:
        caches, interconnects = hmat_for(layout.hmat)
    else:
        caches = {cell_id: cell.caches for cell_id, cell in previous_cells.items()}
        interconnects = () if current is None else current.interconnects
    # memAccess/discard describe how the user backs the guest's memory: per cell id, else the common value.
    common_access = _common({cell.mem_access for cell in previous_cells.values()})
    common_discard = _common({cell.discard for cell in previous_cells.values()})
    cells = []
    for cell in layout.cells:
        before = previous_cells.get(cell.id)
        cells.append(
            NumaCell(
                id=cell.id,
                cpus=sorted_ids(cell.vcpus),
                memory_kib=cell.memory_kib,
                mem_access=common_access if before is None else before.mem_access,
                discard=common_discard if before is None else before.discard,
                # One cell has nothing to be distant from: <distances> only with 2+ cells.
                distances=(
                    tuple(Sibling(other, value) for other, value in enumerate(cell.distances)) if cell_count > 1 else ()
                ),
                caches=caches.get(cell.id, ()),
            )
        )
    return Numa(tuple(cells), interconnects)


_Value = TypeVar("_Value")


def _common(values: set[_Value]) -> _Value | None:
    """The one value every cell has (None among them counts as a value), or None when they differ."""
    return next(iter(values)) if len(values) == 1 else None


def numatune_for(layout: Layout) -> Numatune:
    """``<numatune>``: the guest-wide ``<memory>`` over the selected host nodes, one ``<memnode>`` per cell.

    Each in the spec's memory mode (https://libvirt.org/formatdomain.html#numa-node-tuning).
    """
    memnodes = []
    for cell in layout.cells:
        if not cell.memory_nodes:
            raise SpecError(f"guest cell {cell.id} has no host node for its memory")
        memnodes.append(Memnode(cellid=cell.id, mode=layout.spec.memory_mode, nodeset=sorted_ids(cell.memory_nodes)))
    if not layout.numatune_nodes:
        raise SpecError("the guest's memory is bound to no host node")
    return Numatune(
        memory=NumatuneMemory(mode=layout.numatune_mode, nodeset=sorted_ids(layout.numatune_nodes)),
        memnodes=tuple(memnodes),
    )


def vcpupins_for(layout: Layout) -> tuple[Vcpupin, ...]:
    """``<vcpupin>``s: one per vCPU; none with pinning ``none`` (existing pins would contradict the cells)."""
    if layout.vcpu_pins is None:
        return ()
    # The vCPUs of one cell float over one cpuset: sort each distinct cpuset once.  The
    # partitioner hands the vCPUs of a cell the same tuple, so a run of it is not even hashed
    # again (a cpuset of a large node has dozens of CPUs).  The pins keep sharing one tuple
    # (see cputune.pin_texts).
    cpusets: dict[tuple[int, ...], tuple[int, ...]] = {}
    pins: list[Vcpupin] = []
    last: tuple[int, ...] | None = None
    cpuset: tuple[int, ...] = ()
    for index, cpus in enumerate(layout.vcpu_pins):
        if cpus is not last:
            last = cpus
            cpuset = cpusets[cpus] if cpus in cpusets else cpusets.setdefault(cpus, sorted_ids(cpus))
        pins.append(Vcpupin(index, cpuset))
    return tuple(pins)


def emulatorpin_for(layout: Layout, current: Emulatorpin | None) -> Emulatorpin | None:
    """``<emulatorpin>``: only touched when the spec pins the emulator."""
    return Emulatorpin(sorted_ids(layout.emulator_pins)) if layout.emulator_pins is not None else current


def hugepages_for(layout: Layout, current: Hugepages | None) -> Hugepages | None:
    """``<hugepages>``: one page size for every cell when the spec asks; otherwise the user's stay as written."""
    if layout.hugepages_kib is None:
        return current
    return Hugepages((HugePage(size_kib=layout.hugepages_kib, nodeset=tuple(range(len(layout.cells)))),))


def max_memory_for(layout: Layout, current: MaxMemory | None) -> MaxMemory | None:
    """``<maxMemory>``: the hotplug ceiling when the spec asks; otherwise the user's stays as written."""
    if layout.max_memory_kib is None:
        return current
    return MaxMemory(kib=layout.max_memory_kib, slots=layout.memory_slots)


def virtio_mem_for(
    layout: Layout, current: tuple[MemoryDevice, ...], total_memory_kib: int | None = None
) -> VirtioMemCells:
    """The collection's virtio-mem devices: one per cell with ``memory_device: virtio-mem``, else none.

    ``current`` are the domain's memory devices.  The user's own (any without the collection's
    alias) stay and keep their memory and slots out of the cells' share.  Each device keeps the
    requested size it has (a resize of an earlier run), up to its new size, unless
    ``total_memory_kib`` asks for a new total (``_core/hotplug.py:plan_requested``).
    """
    others = [device for device in current if device.cell_owned is None]
    if layout.spec.memory_device != "virtio-mem":
        # The devices the guest keeps need their slots all the same (libvirt refuses fewer).
        check_memory_slots(layout, len(others))
        return VirtioMemCells()
    plans = plan_virtio_mem(layout, sum(device.size_kib for device in others), len(others))
    if total_memory_kib is not None:
        plans = plan_requested(layout, plans, total_memory_kib, sum(device.size_kib for device in others))
    else:
        had = {device.cell_owned: device.requested_kib or 0 for device in current if device.cell_owned is not None}
        plans = tuple(keep_requested(plan, had.get(plan.cell, 0)) for plan in plans)
    return VirtioMemCells(
        tuple(
            MemoryDevice(
                index=0,
                model="virtio-mem",
                size_kib=plan.size_kib,
                node=plan.cell,
                nodemask=plan.host_nodes,
                pagesize_kib=plan.page_kib,
                block_kib=plan.block_kib,
                requested_kib=plan.requested_kib,
                alias=virtio_mem_alias(plan.cell),
            )
            for plan in plans
        )
    )


def memory_for(
    layout: Layout, memory_kib: int | None, current_memory_kib: int | None, device_memory_kib: int
) -> tuple[int, int]:
    """``<memory>`` and ``<currentMemory>`` in KiB, from the domain's (``memory_kib``...) as they are."""
    # libvirt's <memory> counts the memory devices on top of the cells.
    memory = layout.memory_kib + device_memory_kib
    # With no balloon (currentMemory == memory) the balloon target follows the new size; a deliberate
    # balloon target is kept up to the new size.  libvirt clamps a larger one to <memory> when it defines
    # the guest, and the read-back would then take libvirt's clamp for a change it lost.
    if current_memory_kib is None or current_memory_kib == memory_kib:
        return memory, memory
    return memory, min(current_memory_kib, memory)
