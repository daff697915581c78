# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""A guest that moves, as the planner reads it, and its plan on the destination host (docs/migration.md).

A guest keeps everything it sees across a live migration or a restore: its cells, their vCPUs and
memory, distances, CPU topology (``MovingGuest``, ``MovingCell``).  Only the host side is planned again:
which destination nodes hold each cell, the memory binding, the vCPU and emulator pins
(``DestinationPlan``, ``CellPlan``; the choice is ``_core/move_planner.py:plan_destination``, the check
after it ``_core/move_capacity.py:check_destination``).

Pure: no Ansible, libvirt or lxml.  ``_xml/migration.py`` reads a ``MovingGuest`` from a domain XML and
writes a ``DestinationPlan`` back into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import default_distance
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import (
    DEDICATED_PINNINGS,
    EMULATOR_PINS,
    EMULATOR_THREADS,
    MEMORY_MODES,
    PINNINGS,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    DimmBinding,
    GuestBinding,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology

__all__ = [
    "CellPlan",
    "DestinationPlan",
    "MovingCell",
    "MovingGuest",
]


@dataclass(frozen=True)
class MovingCell:
    """One guest cell as the guest sees it, and where its memory is bound on the source."""

    id: int
    vcpus: tuple[int, ...]
    memory_kib: int
    # The page size backing the cell in KiB; None for the host's normal pages.
    hugepage_kib: int | None = None
    # The source's ``<memnode nodeset>`` (or ``<numatune><memory nodeset>``); () when unbound.
    source_nodes: tuple[int, ...] = ()


@dataclass(frozen=True)
class MovingGuest:
    """What the planner needs of a guest that moves: its cells and how its spec pins and binds."""

    name: str
    vcpus: int
    cells: tuple[MovingCell, ...]
    # The guest's distance matrix by cell position (10 on the diagonal); () when the guest has none,
    # which the guest kernel reads as 10 local and 20 remote.
    distances: tuple[tuple[int, ...], ...] = ()
    # The spec's pinning: node (shared), core or thread (dedicated), none.
    pinning: str = "node"
    # The guest core width (``<cpu><topology threads>``): dedicated pins keep a guest core on one host core.
    threads: int = 1
    memory_mode: str = "strict"
    emulator_pin: str = "none"
    # The spec's emulator_threads: isolate gives the emulator one more dedicated host CPU of its own.
    emulator_threads: str = "share"
    # Memory devices (DIMM, virtio-mem): each is bound like the cell it targets on the destination, so its
    # memory counts with that cell's in the node choice (at ``_core/capacity.py:device_kib`` of a running guest).
    dimms: tuple[DimmBinding, ...] = ()
    # The source host's topology when known: a cell on a CPU-less source node prefers one on the destination.
    source: HostTopology | None = None

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("pinning", self.pinning, PINNINGS),
            ("memory_mode", self.memory_mode, MEMORY_MODES),
            ("emulator_pin", self.emulator_pin, EMULATOR_PINS),
            ("emulator_threads", self.emulator_threads, EMULATOR_THREADS),
        ):
            if value not in choices:
                raise SpecError(f"{name} {value!r} is not one of {', '.join(choices)}", self.name)
        if not self.cells:
            raise SpecError("the guest has no NUMA cells to place", self.name)
        ids = [cell.id for cell in self.cells]
        if ids != list(range(len(ids))):
            raise SpecError(f"guest cell ids {ids} are not 0..{len(ids) - 1} in order", self.name)
        if self.distances and (
            len(self.distances) != len(self.cells) or any(len(row) != len(self.cells) for row in self.distances)
        ):
            raise SpecError(f"the distance matrix is not {len(self.cells)} by {len(self.cells)}", self.name)

    def distance(self, first: int, second: int) -> int:
        if self.distances and first != second:
            return self.distances[first][second]
        return default_distance(first == second)

    @property
    def dedicated(self) -> bool:
        return self.pinning in DEDICATED_PINNINGS

    @property
    def isolates_emulator(self) -> bool:
        """``emulator_threads: isolate`` under dedicated pinning (the spec allows it under no other)."""
        return self.emulator_threads == "isolate" and self.dedicated


@dataclass(frozen=True)
class CellPlan:
    """One guest cell on the destination."""

    id: int
    vcpus: tuple[int, ...]
    memory_kib: int
    # The destination nodes the cell lives on, and those its memory is bound to (<memnode nodeset>).
    host_nodes: tuple[int, ...]
    memory_nodes: tuple[int, ...]
    source_nodes: tuple[int, ...]
    # The cell's distances as the guest sees them and as the destination nodes give them.
    guest_distances: tuple[int, ...]
    host_distances: tuple[int, ...]
    # The page size backing the cell in KiB (kept from the guest); None for normal pages.
    hugepage_kib: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "vcpus": format_cpuset(self.vcpus),
            "memory_kib": self.memory_kib,
            "host_nodes": format_cpuset(self.host_nodes),
            "memory_nodes": format_cpuset(self.memory_nodes),
            "source_nodes": format_cpuset(self.source_nodes),
            "guest_distances": list(self.guest_distances),
            "host_distances": list(self.host_distances),
        }


@dataclass(frozen=True)
class DestinationPlan:
    """The host-side bindings of a guest on its destination, and why."""

    guest: str
    cells: tuple[CellPlan, ...]
    memory_mode: str
    # <numatune><memory nodeset>.
    numatune_nodes: tuple[int, ...]
    # vCPU id -> host CPUs (<vcpupin>); empty under pinning none.
    vcpu_pins: Mapping[int, tuple[int, ...]]
    # <emulatorpin>, or None when the guest does not pin its emulator.
    emulator_pins: tuple[int, ...] | None
    # Host CPUs for the emulator and I/O threads: the chosen nodes' CPUs no vCPU holds (<iothreadpin>).
    shared_cpus: tuple[int, ...]
    # Host CPUs the dedicated pins hold.
    held_cpus: tuple[int, ...]
    # Sum over cell pairs of |guest distance - destination distance|: 0 when the destination keeps them.
    distance_error: int
    why: str
    considered: int = 0
    dimms: tuple[DimmBinding, ...] = field(default=(), compare=False)

    def cell(self, cell_id: int) -> CellPlan:
        return self.cells[cell_id]

    @property
    def host_nodes(self) -> tuple[int, ...]:
        return tuple(sorted({node for cell in self.cells for node in cell.host_nodes}))

    def binding(self, running: bool = True) -> GuestBinding:
        """The guest as it will be on the destination, for the capacity check."""
        return GuestBinding(
            name=self.guest,
            cells=tuple(
                CellBinding(
                    id=cell.id,
                    vcpus=cell.vcpus,
                    memory_kib=cell.memory_kib,
                    memory_mode=self.memory_mode,
                    memory_nodes=cell.memory_nodes,
                    hugepage_kib=cell.hugepage_kib,
                )
                for cell in self.cells
            ),
            vcpu_cpus=dict(self.vcpu_pins),
            emulator_cpus=self.emulator_pins,
            dimms=tuple(
                DimmBinding(
                    cell=dimm.cell,
                    size_kib=dimm.size_kib,
                    host_nodes=self.cells[dimm.cell].memory_nodes
                    if dimm.cell is not None and 0 <= dimm.cell < len(self.cells)
                    else dimm.host_nodes,
                    hugepage_kib=dimm.hugepage_kib,
                    plugged_kib=dimm.plugged_kib,
                )
                for dimm in self.dimms
            ),
            dedicated_cpus=self.held_cpus,
            running=running,
            source="planned",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "guest": self.guest,
            "cells": [cell.to_dict() for cell in self.cells],
            "host_nodes": format_cpuset(self.host_nodes),
            "memory_mode": self.memory_mode,
            "numatune_nodes": format_cpuset(self.numatune_nodes),
            "vcpu_pins": {str(vcpu): format_cpuset(cpus) for vcpu, cpus in sorted(self.vcpu_pins.items())},
            "emulator_pins": None if self.emulator_pins is None else format_cpuset(self.emulator_pins),
            "shared_cpus": format_cpuset(self.shared_cpus),
            "held_cpus": format_cpuset(self.held_cpus),
            "distance_error": self.distance_error,
            "considered": self.considered,
            "why": self.why,
        }
