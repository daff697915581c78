# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""I/O threads per cell or per disk, and the emulator's isolated host CPU: the rules without XML.

``plan_iothreads`` says how many I/O threads a guest gets, where each runs and which disk uses which;
``isolated_emulator_cpu`` picks the dedicated host CPU of ``emulator_threads: isolate`` (the partitioner
calls it beside the vCPUs' dedicated pins).  docs/iothreads.md describes both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology

__all__ = ["IothreadPlan", "isolated_emulator_cpu", "isolation_node", "plan_iothreads"]


@dataclass(frozen=True)
class IothreadPlan:
    """The guest's I/O threads: ids 1..len(pins), each one's host CPUs, and each virtio disk's thread.

    ``pins[k - 1]`` is the cpuset of I/O thread ``k``; None leaves it unpinned (``pinning: none``).
    ``disks`` are (disk target, I/O thread id) in the order given.
    """

    pins: tuple[tuple[int, ...] | None, ...] = ()
    disks: tuple[tuple[str, int], ...] = ()

    @property
    def count(self) -> int:
        return len(self.pins)


def _cell_cpus(layout: Layout, cell: int) -> tuple[int, ...] | None:
    """The host CPUs of a cell's vCPUs (None without vCPU pins): where its I/O thread runs."""
    if layout.vcpu_pins is None:
        return None
    return tuple(sorted({cpu for vcpu in layout.cells[cell].vcpus for cpu in layout.vcpu_pins[vcpu]}))


def _serving_cell(layout: Layout, target: str, cell: int) -> int:
    """The cell with vCPUs that serves a disk near ``cell``: itself, else the nearest one (then the lowest id).

    A cell the layout does not have is refused: the disk's expander bus names a cell that is gone
    (``_xml/pci_locality.py:pci_locality_for`` refuses such a bus first, with the controller's index).
    """
    if not 0 <= cell < len(layout.cells):
        count = len(layout.cells)
        raise SpecError(
            f"iothreads {layout.spec.iothreads}: disk {target} sits near guest cell {cell}, but the layout has "
            f"{count} cells (0-{count - 1}); move its expander bus to one of those cells"
        )
    if layout.cells[cell].vcpus:
        return cell
    distances = layout.cells[cell].distances
    return min((other.id for other in layout.cells if other.vcpus), key=lambda other: (distances[other], other))


def plan_iothreads(layout: Layout, disk_cells: Sequence[tuple[str, int | None]]) -> IothreadPlan:
    """The I/O threads ``layout.spec.iothreads`` asks for, given each virtio disk's cell.

    ``disk_cells`` are (target, cell) in document order; the cell is that of the disk's PCI expander bus,
    None for a disk on the root bus, which goes with cell 0.  A disk near a cell without vCPUs (a
    memory-only cell) uses the I/O thread of the nearest cell with vCPUs.  ``per_cell``: one thread per
    cell with vCPUs, in cell order; ``per_disk``: one per disk, in disk order.
    """
    mode = layout.spec.iothreads
    if mode == "none":
        return IothreadPlan()
    served = [(target, _serving_cell(layout, target, 0 if cell is None else cell)) for target, cell in disk_cells]
    if mode == "per_disk":
        return IothreadPlan(
            pins=tuple(_cell_cpus(layout, cell) for _target, cell in served),
            disks=tuple((target, number + 1) for number, (target, _cell) in enumerate(served)),
        )
    cells = [cell.id for cell in layout.cells if cell.vcpus]
    thread_of = {cell: number + 1 for number, cell in enumerate(cells)}
    return IothreadPlan(
        pins=tuple(_cell_cpus(layout, cell) for cell in cells),
        disks=tuple((target, thread_of[cell]) for target, cell in served),
    )


def isolation_node(topology: HostTopology, cell_nodes: Sequence[Sequence[int]]) -> int:
    """The host node of the isolated emulator CPU: guest cell 0's first node with CPUs (else the next cell's)."""
    for nodes in cell_nodes:
        for node in nodes:
            if topology.node(node).has_cpus:
                return node
    raise PlacementError("emulator_threads isolate: no guest cell is on a host node with CPUs")


def isolated_emulator_cpu(
    topology: HostTopology,
    pinning: str,
    node: int,
    held: Collection[int],
    taken: Mapping[int, str],
) -> tuple[int, ...]:
    """One host CPU on ``node`` for the emulator threads, beside the vCPUs' dedicated ``held`` CPUs.

    As a dedicated vCPU takes it (``_Partitioner.dedicated_pins``): a core with a CPU of another guest
    (``taken``) is not used at all; under ``core`` the CPU is the first thread of a whole free core, whose
    siblings stay idle (``_core/placement.py:held_cpus`` holds them); under ``thread`` the first free
    thread.  Refused, naming the option, the node and its count, when none is free.
    """
    host = topology.node(node)
    whole = pinning == "core"
    width = topology.core_width
    for core in host.cores:
        if taken and any(cpu in taken for cpu in core):
            continue
        if whole:
            if not any(cpu in held for cpu in core) and len(core) == width.get(core[0], len(core)):
                return (core[0],)
            continue
        for cpu in core:
            if cpu not in held:
                return (cpu,)
    unit = "core" if whole else "thread"
    count = len(host.cores) if whole else len(host.usable_cpus)
    mine = sorted(cpu for cpu in host.usable_cpus if cpu in held)
    others = sorted({taken[cpu] for cpu in host.usable_cpus if cpu in taken})
    detail = f"; its vCPUs hold {format_cpuset(mine)}" if mine else ""
    if others:
        detail += f", other guests ({', '.join(others)}) hold the rest"
    raise PlacementError(
        f"emulator_threads isolate needs one more free host {unit} on host node {node} (guest cell 0's) for the "
        f"emulator threads; node {node} has {count} {unit}s and none is free{detail}"
    )
