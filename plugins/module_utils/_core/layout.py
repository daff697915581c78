# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""A computed guest layout: everything the collection renders into a domain, as plain values.

All id collections are ascending tuples, so two layouts compare equal exactly when they render
the same XML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hmat import GuestHmat
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import DEDICATED_PINNINGS, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import DIMM_BLOCK_KIB

__all__ = ["GuestCell", "GuestTopology", "Layout"]


@dataclass(frozen=True)
class GuestCell:
    """One guest NUMA cell (``<cpu><numa><cell>``) and where it lives on the host."""

    id: int
    vcpus: tuple[int, ...]
    memory_kib: int
    # The host nodes this cell mirrors (one, or a group when there are fewer cells than nodes).
    host_nodes: tuple[int, ...]
    # The host nodes its memory is bound to (``<memnode nodeset>``).
    memory_nodes: tuple[int, ...]
    # Guest distance from this cell to every cell, by cell id (10 on the diagonal).
    distances: tuple[int, ...]


@dataclass(frozen=True)
class GuestTopology:
    """``<cpu><topology>``: sockets x dies x cores x threads equals the maximum vCPUs."""

    sockets: int
    dies: int
    cores: int
    threads: int

    @property
    def vcpus(self) -> int:
        return self.sockets * self.dies * self.cores * self.threads


@dataclass(frozen=True)
class Layout:
    """The partitioner's answer for one guest on one host."""

    spec: VnumaSpec
    vcpus: int
    current_vcpus: int
    cells: tuple[GuestCell, ...]
    topology: GuestTopology
    # ``<numatune><memory mode nodeset>``: the mode and nodes for memory outside the cells.
    numatune_mode: str
    numatune_nodes: tuple[int, ...]
    # Host CPUs per vCPU id (``<vcpupin>``), or None when the spec asks for no pinning.
    vcpu_pins: tuple[tuple[int, ...], ...] | None
    # Host CPUs for the emulator threads (``<emulatorpin>``), or None when not asked.
    emulator_pins: tuple[int, ...] | None
    # Every vCPU id in the order they are brought online; the first ``current_vcpus`` are online at boot.
    enable_order: tuple[int, ...]
    hugepages_kib: int | None = None
    max_memory_kib: int | None = None
    memory_slots: int | None = None
    guest: str | None = None
    # What every hot-plugged DIMM is a multiple of on the host (HostTopology.dimm_block_kib).
    dimm_block_kib: int = DIMM_BLOCK_KIB
    # The guest's HMAT (spec option hmat), or None when it asks for none.
    hmat: GuestHmat | None = None
    # Whether the host's L3 banks shaped the cells (HostTopology.l3_shapes_cells): the guest's L3 is then
    # QEMU's own, one per guest die (docs/cache-locality.md).
    l3_cells: bool = False

    @property
    def memory_kib(self) -> int:
        """Boot memory: the sum of the cells."""
        return sum(cell.memory_kib for cell in self.cells)

    @property
    def dedicated(self) -> bool:
        return self.spec.pinning in DEDICATED_PINNINGS

    def to_dict(self) -> dict[str, Any]:
        """The documented dict form (filters, module results): cpusets as libvirt strings."""
        pins = self.vcpu_pins
        # The vCPUs of a cell share one cpuset under node pinning: format each distinct one once.
        texts: dict[tuple[int, ...], str] = {}

        def text(cpus: tuple[int, ...]) -> str:
            found = texts.get(cpus)
            if found is None:
                found = texts[cpus] = format_cpuset(cpus)
            return found

        return {
            "guest": self.guest,
            "vcpus": self.vcpus,
            "current_vcpus": self.current_vcpus,
            "memory_kib": self.memory_kib,
            "memory_mode": self.spec.memory_mode,
            "pinning": self.spec.pinning,
            "distribution": self.spec.distribution,
            "mode": self.spec.mode,
            "topology": {
                "sockets": self.topology.sockets,
                "dies": self.topology.dies,
                "cores": self.topology.cores,
                "threads": self.topology.threads,
            },
            "numatune": {"mode": self.numatune_mode, "nodeset": format_cpuset(self.numatune_nodes)},
            "cells": [
                {
                    "id": cell.id,
                    "vcpus": format_cpuset(cell.vcpus),
                    "vcpu_count": len(cell.vcpus),
                    "memory_kib": cell.memory_kib,
                    "host_nodes": format_cpuset(cell.host_nodes),
                    "memory_nodes": format_cpuset(cell.memory_nodes),
                    "distances": list(cell.distances),
                    "pinning": (
                        format_cpuset(set().union(*{pins[vcpu] for vcpu in cell.vcpus})) if pins is not None else None
                    ),
                }
                for cell in self.cells
            ],
            "vcpupin": ({str(vcpu): text(cpus) for vcpu, cpus in enumerate(pins)} if pins is not None else None),
            "emulatorpin": format_cpuset(self.emulator_pins) if self.emulator_pins is not None else None,
            "enable_order": list(self.enable_order),
            "hugepages_kib": self.hugepages_kib,
            "max_memory_kib": self.max_memory_kib,
            "memory_slots": self.memory_slots,
            "hmat": None if self.hmat is None else self.hmat.to_dict(),
        }
