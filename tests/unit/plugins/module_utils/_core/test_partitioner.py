# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The partitioner on real host shapes: worked examples, each rule of docs/partitioning.md, and every refusal.

Expected values are worked out from the rules by hand (the comments show the arithmetic), never copied
from the partitioner's output.  Sizes are KiB; cpusets are compared in libvirt's canonical syntax.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    PlacementError,
    SpecError,
    TopologyError,
    VnumaError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import even_split
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import held_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCpu, HostNode, HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.vcpu_distribution import distribute_vcpus
from ansible_collections.vnuma.libvirt.tests.support.hosts import host
from ansible_collections.vnuma.libvirt.tests.support.layouts import online_at_boot

MIB = 1024
GIB = 1024 * 1024
GUEST = "db01"


def plan(
    topology: str | HostTopology,
    vcpus: int,
    memory_kib: int,
    taken: dict[int, str] | None = None,
    current: int | None = None,
    **spec: Any,
) -> Layout:
    """The layout of guest db01 on a fixture host (by name) or on a hand-built host."""
    hosts = host(topology) if isinstance(topology, str) else topology
    guest = GuestShape(vcpus=vcpus, memory_kib=memory_kib, current_vcpus=current, name=GUEST)
    return compute_layout(hosts, VnumaSpec.from_mapping(spec), guest, taken)


def cells(layout: Layout) -> list[tuple[str, int, str, str]]:
    """Each cell as (vCPUs, memory KiB, host nodes, memory nodes)."""
    return [
        (format_cpuset(c.vcpus), c.memory_kib, format_cpuset(c.host_nodes), format_cpuset(c.memory_nodes))
        for c in layout.cells
    ]


def distances(layout: Layout) -> list[list[int]]:
    return [list(cell.distances) for cell in layout.cells]


def topology(layout: Layout) -> tuple[int, int, int, int]:
    t = layout.topology
    return (t.sockets, t.dies, t.cores, t.threads)


def pins(layout: Layout) -> list[int]:
    """Dedicated pins as one host CPU per vCPU."""
    assert layout.vcpu_pins is not None
    assert all(len(pin) == 1 for pin in layout.vcpu_pins)
    return [pin[0] for pin in layout.vcpu_pins]


def cell_pins(layout: Layout) -> list[str]:
    """The host CPUs each cell's vCPUs float over (every vCPU of a cell pinned alike)."""
    assert layout.vcpu_pins is not None
    result = []
    for cell in layout.cells:
        sets = {layout.vcpu_pins[vcpu] for vcpu in cell.vcpus}
        assert len(sets) <= 1, f"cell {cell.id}: vCPUs pinned differently under pinning node"
        result.append(format_cpuset(next(iter(sets))) if sets else "")
    return result


def build_host(nodes: list[dict[str, Any]], page_sizes_kib: tuple[int, ...] = (4, 2048)) -> HostTopology:
    """A hand-built host: each node a dict of id, cores (tuples of CPU ids), memory (KiB), socket, distances."""
    built = []
    for node in nodes:
        cpus = tuple(
            HostCpu(id=cpu, socket_id=node.get("socket", 0), die_id=0, core_id=index, siblings=frozenset(core))
            for index, core in enumerate(node.get("cores", ()))
            for cpu in core
        )
        built.append(
            HostNode(
                id=node["id"],
                memory_kib=node.get("memory", 8 * GIB),
                cpus=tuple(sorted(cpus, key=lambda cpu: cpu.id)),
                pages=((4, node.get("memory", 8 * GIB) // 4),),
                distances=tuple(sorted(node.get("distances", {}).items())),
            )
        )
    return HostTopology(nodes=tuple(built), page_sizes_kib=page_sizes_kib)


def single_threads(first: int, count: int) -> list[tuple[int]]:
    return [(cpu,) for cpu in range(first, first + count)]


# The cover letter's ring: nodes 0-3 of 4 CPUs (0-3, 4-7, 8-11, 12-15) and 8 GiB each, one socket each;
# neighbours on the ring (0-1, 1-2, 2-3, 3-0) are 21 apart, opposite nodes (0-2, 1-3) 31.
RING = [[10, 21, 31, 21], [21, 10, 21, 31], [31, 21, 10, 21], [21, 31, 21, 10]]
RING_CPUS = ["0-3", "4-7", "8-11", "12-15"]


# -- table: layouts on the fixture hosts ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    host: str
    vcpus: int
    memory: int
    spec: dict[str, Any]
    cells: list[tuple[str, int, str, str]]
    distances: list[list[int]]
    topology: tuple[int, int, int, int]
    numatune: tuple[str, str] = ("strict", "")
    # pinning node: the host CPUs each cell floats over; core/thread: the host CPU of each vCPU.
    cell_pins: list[str] | None = None
    pins: list[int] | None = None
    enable_order: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


CASES = {
    # Host mode: one guest cell per host node, in id order, whatever the distribution; 4 GiB / 4 = 1 GiB.
    "ring-host-contiguous": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "host", "distribution": "contiguous"},
        cells=[("0-1", GIB, "0", "0"), ("2-3", GIB, "1", "1"), ("4-5", GIB, "2", "2"), ("6-7", GIB, "3", "3")],
        distances=RING, topology=(4, 1, 2, 1), numatune=("strict", "0-3"), cell_pins=RING_CPUS,
        enable_order=[0, 2, 4, 6, 1, 3, 5, 7],
    ),
    # siblings on an SMT1 host: guest cores of 1 thread, so the same blocks as contiguous.
    "ring-host-siblings": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "host", "distribution": "siblings"},
        cells=[("0-1", GIB, "0", "0"), ("2-3", GIB, "1", "1"), ("4-5", GIB, "2", "2"), ("6-7", GIB, "3", "3")],
        distances=RING, topology=(4, 1, 2, 1), numatune=("strict", "0-3"), cell_pins=RING_CPUS,
    ),
    # round-robin: H=16 host CPUs numbered node by node; vCPU k follows host CPU floor(16k/8)=2k: 0,2 on node 0...
    "ring-host-round-robin": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "host", "distribution": "round-robin"},
        cells=[("0-1", GIB, "0", "0"), ("2-3", GIB, "1", "1"), ("4-5", GIB, "2", "2"), ("6-7", GIB, "3", "3")],
        distances=RING, topology=(4, 1, 2, 1), numatune=("strict", "0-3"), cell_pins=RING_CPUS,
    ),
    # ... and with V=6: floor(16k/6) = 0,2,5,8,10,13 -> nodes 0,0,1,2,2,3 (socket size gcd(6,2,3,5)=1).
    "ring-host-round-robin-6": Case(
        "seed-4node-ring", 6, 4 * GIB, {"distribution": "round-robin"},
        cells=[("0-1", GIB, "0", "0"), ("2", GIB, "1", "1"), ("3-4", GIB, "2", "2"), ("5", GIB, "3", "3")],
        distances=RING, topology=(6, 1, 1, 1), numatune=("strict", "0-3"),
    ),
    # contiguous with V=6 over 4 cells: blocks 2,2,1,1 (the first cells get the extra vCPU).
    "ring-host-contiguous-6": Case(
        "seed-4node-ring", 6, 4 * GIB, {"distribution": "contiguous"},
        cells=[("0-1", GIB, "0", "0"), ("2-3", GIB, "1", "1"), ("4", GIB, "2", "2"), ("5", GIB, "3", "3")],
        distances=RING, topology=(6, 1, 1, 1), numatune=("strict", "0-3"),
    ),
    # interleave: vCPU k in cell k mod 4; every socket holds one vCPU.
    "ring-host-interleave": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "host", "distribution": "interleave"},
        cells=[("0,4", GIB, "0", "0"), ("1,5", GIB, "1", "1"), ("2,6", GIB, "2", "2"), ("3,7", GIB, "3", "3")],
        distances=RING, topology=(8, 1, 1, 1), numatune=("strict", "0-3"), cell_pins=RING_CPUS,
        enable_order=[0, 1, 2, 3, 4, 5, 6, 7],
    ),
    # host mode mirrors every node (a partition with it is refused: SPEC_ERRORS).
    "ring-host-mirrors-every-node": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "host"},
        cells=[("0-1", GIB, "0", "0"), ("2-3", GIB, "1", "1"), ("4-5", GIB, "2", "2"), ("6-7", GIB, "3", "3")],
        distances=RING, topology=(4, 1, 2, 1), numatune=("strict", "0-3"),
    ),
    # node mode, nodeset '1-3,^2' = nodes 1 and 3, which are opposite on the ring (31); 2 GiB each.
    "ring-node-nodeset-exclusion": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "node", "nodeset": "1-3,^2"},
        cells=[("0-3", 2 * GIB, "1", "1"), ("4-7", 2 * GIB, "3", "3")],
        distances=[[10, 31], [31, 10]], topology=(2, 1, 4, 1), numatune=("strict", "1,3"),
        cell_pins=["4-7", "12-15"], enable_order=[0, 4, 1, 5, 2, 6, 3, 7],
    ),
    # cells 2 on 4 nodes: the group of node 0 takes its nearest node; 1 and 3 tie at 21 (2 is 31 away) and
    # the lower id wins, so {0,1} and {2,3}; between the groups min(d(0,2)=31, d(0,3)=21, d(1,2)=21, d(1,3)=31).
    "ring-node-cells-2": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "node", "cells": 2},
        cells=[("0-3", 2 * GIB, "0-1", "0-1"), ("4-7", 2 * GIB, "2-3", "2-3")],
        distances=[[10, 21], [21, 10]], topology=(2, 1, 4, 1), numatune=("strict", "0-3"),
        cell_pins=["0-7", "8-15"],
    ),
    # cells 3 on 4 nodes: groups of 2,1,1: {0,1}, {2}, {3}; vCPUs 3,3,2; 4096 MiB = 1366+1365+1365 MiB.
    "ring-node-cells-3": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "node", "cells": 3},
        cells=[("0-2", 1366 * MIB, "0-1", "0-1"), ("3-5", 1365 * MIB, "2", "2"), ("6-7", 1365 * MIB, "3", "3")],
        distances=[[10, 21, 21], [21, 10, 21], [21, 21, 10]], topology=(8, 1, 1, 1), numatune=("strict", "0-3"),
    ),
    # cells 8 on 4 nodes: two consecutive cells per node, 11 apart; 512 MiB each.
    "ring-node-cells-8": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "node", "cells": 8},
        cells=[(str(c), 512 * MIB, str(c // 2), str(c // 2)) for c in range(8)],
        distances=[
            [10 if a == b else 11 if a // 2 == b // 2 else RING[a // 2][b // 2] for b in range(8)] for a in range(8)
        ],
        topology=(8, 1, 1, 1), numatune=("strict", "0-3"), cell_pins=[RING_CPUS[c // 2] for c in range(8)],
    ),
    # cells 6 on 4 nodes: counts 2,2,1,1 (the first nodes get the extra cell); 4096 MiB = 4x683 + 2x682.
    "ring-node-cells-6": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "node", "cells": 6},
        cells=[
            ("0-1", 683 * MIB, "0", "0"), ("2-3", 683 * MIB, "0", "0"), ("4", 683 * MIB, "1", "1"),
            ("5", 683 * MIB, "1", "1"), ("6", 682 * MIB, "2", "2"), ("7", 682 * MIB, "3", "3"),
        ],
        distances=[
            [10, 11, 21, 21, 31, 21], [11, 10, 21, 21, 31, 21], [21, 21, 10, 11, 21, 31],
            [21, 21, 11, 10, 21, 31], [31, 31, 21, 21, 10, 21], [21, 21, 31, 31, 21, 10],
        ],
        topology=(8, 1, 1, 1), numatune=("strict", "0-3"),
    ),
    # cells 8 with round-robin: each node's CPUs are cut in two slices (0-1 | 2-3 ...); floor(16k/12) maps
    # vCPUs 0,1 -> CPUs 0,1 (cell 0), vCPU 2 -> CPU 2 (cell 1), vCPUs 3,4 -> CPUs 4,5 (cell 2) ...
    "ring-node-cells-8-round-robin": Case(
        "seed-4node-ring", 12, 4 * GIB, {"mode": "node", "cells": 8, "distribution": "round-robin"},
        cells=[
            ("0-1", 512 * MIB, "0", "0"), ("2", 512 * MIB, "0", "0"), ("3-4", 512 * MIB, "1", "1"),
            ("5", 512 * MIB, "1", "1"), ("6-7", 512 * MIB, "2", "2"), ("8", 512 * MIB, "2", "2"),
            ("9-10", 512 * MIB, "3", "3"), ("11", 512 * MIB, "3", "3"),
        ],
        distances=[
            [10 if a == b else 11 if a // 2 == b // 2 else RING[a // 2][b // 2] for b in range(8)] for a in range(8)
        ],
        topology=(12, 1, 1, 1), numatune=("strict", "0-3"),
    ),
    # cells 8 with core pinning: cells on one node share its cores without overlap.
    "ring-node-cells-8-core": Case(
        "seed-4node-ring", 16, 4 * GIB, {"mode": "node", "cells": 8, "pinning": "core"},
        cells=[(f"{2 * c}-{2 * c + 1}", 512 * MIB, str(c // 2), str(c // 2)) for c in range(8)],
        distances=[
            [10 if a == b else 11 if a // 2 == b // 2 else RING[a // 2][b // 2] for b in range(8)] for a in range(8)
        ],
        topology=(8, 1, 2, 1), numatune=("strict", "0-3"), pins=list(range(16)),
    ),
    # memory_mode passes through to numatune; pinning none leaves no vcpupin.
    "ring-node-interleave-memory": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "node", "nodeset": "0-3,^1,^2", "memory_mode": "interleave",
                                        "pinning": "none"},
        cells=[("0-3", 2 * GIB, "0", "0"), ("4-7", 2 * GIB, "3", "3")],
        distances=[[10, 21], [21, 10]], topology=(2, 1, 4, 1), numatune=("interleave", "0,3"),
    ),
    # preferred binds one node per cell, the first of its group; the top-level nodeset is cell 0's node.
    "ring-node-cells-2-preferred": Case(
        "seed-4node-ring", 8, 4 * GIB, {"mode": "node", "cells": 2, "memory_mode": "preferred"},
        cells=[("0-3", 2 * GIB, "0-1", "0"), ("4-7", 2 * GIB, "2-3", "2")],
        distances=[[10, 21], [21, 10]], topology=(2, 1, 4, 1), numatune=("preferred", "0"),
    ),
    # SNC2 + CXL: host mode mirrors the four CPU nodes only; the CXL nodes 4 and 5 get nothing.
    "snc2-cxl-host": Case(
        "intel-snc2-cxl", 16, 16 * GIB, {"mode": "host"},
        cells=[("0-3", 4 * GIB, "0", "0"), ("4-7", 4 * GIB, "1", "1"), ("8-11", 4 * GIB, "2", "2"),
               ("12-15", 4 * GIB, "3", "3")],
        distances=[[10, 12, 21, 21], [12, 10, 21, 21], [21, 21, 10, 12], [21, 21, 12, 10]],
        topology=(4, 1, 4, 1), numatune=("strict", "0-3"),
        cell_pins=["0-3,16-19", "4-7,20-23", "8-11,24-27", "12-15,28-31"],
    ),
    # node mode selecting CXL node 4: a CPU-less guest cell with memory; 16384 MiB = 5462 + 5461 + 5461 MiB.
    "snc2-cxl-node-cpuless-cell": Case(
        "intel-snc2-cxl", 16, 16 * GIB, {"mode": "node", "nodeset": "0-1,4"},
        cells=[("0-7", 5462 * MIB, "0", "0"), ("8-15", 5461 * MIB, "1", "1"), ("", 5461 * MIB, "4", "4")],
        distances=[[10, 12, 22], [12, 10, 22], [22, 22, 10]], topology=(2, 1, 8, 1),
        numatune=("strict", "0-1,4"), cell_pins=["0-3,16-19", "4-7,20-23", ""],
        enable_order=[0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15],
    ),
    # cells 3 over all six nodes: sockets first ({0,1}, {2,3}), the CXL nodes (no socket) last.
    "snc2-cxl-node-groups": Case(
        "intel-snc2-cxl", 16, 15 * GIB, {"mode": "node", "nodeset": "0-5", "cells": 3},
        cells=[("0-7", 5 * GIB, "0-1", "0-1"), ("8-15", 5 * GIB, "2-3", "2-3"), ("", 5 * GIB, "4-5", "4-5")],
        distances=[[10, 21, 22], [21, 10, 22], [22, 22, 10]], topology=(2, 1, 8, 1), numatune=("strict", "0-5"),
    ),
    # siblings on SMT2 with far sibling numbering (0 and 16): guest cores of 2 threads on sibling pairs.
    "smt2-siblings-thread": Case(
        "intel-2s-smt2", 8, 8 * GIB, {"distribution": "siblings", "pinning": "thread"},
        cells=[("0-3", 4 * GIB, "0", "0"), ("4-7", 4 * GIB, "1", "1")],
        distances=[[10, 21], [21, 10]], topology=(2, 1, 2, 2), numatune=("strict", "0-1"),
        pins=[0, 16, 1, 17, 8, 24, 9, 25], enable_order=[0, 1, 4, 5, 2, 3, 6, 7],
    ),
    "smt2-siblings-core": Case(
        "intel-2s-smt2", 8, 8 * GIB, {"distribution": "siblings", "pinning": "core"},
        cells=[("0-3", 4 * GIB, "0", "0"), ("4-7", 4 * GIB, "1", "1")],
        distances=[[10, 21], [21, 10]], topology=(2, 1, 2, 2), numatune=("strict", "0-1"),
        pins=[0, 16, 1, 17, 8, 24, 9, 25],
    ),
    # core pinning with guest threads 1: one whole host core per vCPU, the first thread, sibling idle.
    "smt2-contiguous-core": Case(
        "intel-2s-smt2", 8, 8 * GIB, {"pinning": "core", "emulator_pin": "nodes"},
        cells=[("0-3", 4 * GIB, "0", "0"), ("4-7", 4 * GIB, "1", "1")],
        distances=[[10, 21], [21, 10]], topology=(2, 1, 4, 1), numatune=("strict", "0-1"),
        pins=[0, 1, 2, 3, 8, 9, 10, 11],
        # The emulator gets what the vCPUs leave: not their cores' idle siblings 16-19 and 24-27 either.
        extra={"emulator": "4-7,12-15,20-23,28-31"},
    ),
    # thread pinning with guest threads 1: 1:1 threads, packed on sibling pairs.
    "smt2-contiguous-thread": Case(
        "intel-2s-smt2", 8, 8 * GIB, {"pinning": "thread", "emulator_pin": "nodes"},
        cells=[("0-3", 4 * GIB, "0", "0"), ("4-7", 4 * GIB, "1", "1")],
        distances=[[10, 21], [21, 10]], topology=(2, 1, 4, 1), numatune=("strict", "0-1"),
        pins=[0, 16, 1, 17, 8, 24, 9, 25], extra={"emulator": "2-7,10-15,18-23,26-31"},
    ),
    # round-robin on a host numbering every core's first thread first: node 0 is CPUs 0-7 and 16-23, so
    # floor(32k/4) = 0, 8, 16, 24 alternates nodes 0, 1, 0, 1.
    "smt2-round-robin-alternates": Case(
        "intel-2s-smt2", 4, 2 * GIB, {"distribution": "round-robin"},
        cells=[("0,2", GIB, "0", "0"), ("1,3", GIB, "1", "1")],
        distances=[[10, 21], [21, 10]], topology=(4, 1, 1, 1), numatune=("strict", "0-1"),
        cell_pins=["0-7,16-23", "8-15,24-31"],
    ),
    # V=8: floor(32k/8) = 4k = 0, 4 (node 0), 8, 12 (node 1), 16, 20 (node 0), 24, 28 (node 1).
    "smt2-round-robin-pairs": Case(
        "intel-2s-smt2", 8, 2 * GIB, {"distribution": "round-robin"},
        cells=[("0-1,4-5", GIB, "0", "0"), ("2-3,6-7", GIB, "1", "1")],
        distances=[[10, 21], [21, 10]], topology=(4, 1, 2, 1), numatune=("strict", "0-1"),
        enable_order=[0, 2, 1, 3, 4, 6, 5, 7],
    ),
    # ... and with V = H the guest numbering is the host's own: blocks of 8 alternate (socket size 8).
    "smt2-round-robin-v-equals-h": Case(
        "intel-2s-smt2", 32, 2 * GIB, {"distribution": "round-robin"},
        cells=[("0-7,16-23", GIB, "0", "0"), ("8-15,24-31", GIB, "1", "1")],
        distances=[[10, 21], [21, 10]], topology=(4, 1, 8, 1), numatune=("strict", "0-1"),
    ),
    "smt2-far-siblings-round-robin": Case(
        "smt2-far-siblings", 4, 2 * GIB, {"distribution": "round-robin"},
        cells=[("0,2", GIB, "0", "0"), ("1,3", GIB, "1", "1")],
        distances=[[10, 21], [21, 10]], topology=(4, 1, 1, 1), numatune=("strict", "0-1"),
        cell_pins=["0-31,64-95", "32-63,96-127"],
    ),
    "smt2-far-siblings-siblings-thread": Case(
        "smt2-far-siblings", 4, 2 * GIB, {"distribution": "siblings", "pinning": "thread"},
        cells=[("0-1", GIB, "0", "0"), ("2-3", GIB, "1", "1")],
        distances=[[10, 21], [21, 10]], topology=(2, 1, 1, 2), numatune=("strict", "0-1"),
        pins=[0, 64, 32, 96],
    ),
    # sparse node ids 0 and 8 (SMT4, threads adjacent).
    "sparse-ids-host": Case(
        "sparse-ids", 8, 8 * GIB, {},
        cells=[("0-3", 4 * GIB, "0", "0"), ("4-7", 4 * GIB, "8", "8")],
        distances=[[10, 40], [40, 10]], topology=(2, 1, 4, 1), numatune=("strict", "0,8"),
        cell_pins=["0-15", "16-31"],
    ),
    "sparse-ids-siblings-thread": Case(
        "sparse-ids", 8, 8 * GIB, {"distribution": "siblings", "pinning": "thread"},
        cells=[("0-3", 4 * GIB, "0", "0"), ("4-7", 4 * GIB, "8", "8")],
        distances=[[10, 40], [40, 10]], topology=(2, 1, 1, 4), numatune=("strict", "0,8"),
        pins=[0, 1, 2, 3, 16, 17, 18, 19], enable_order=[0, 1, 2, 3, 4, 5, 6, 7],
    ),
    "sparse-ids-node-8": Case(
        "sparse-ids", 8, 8 * GIB, {"mode": "node", "nodeset": "8"},
        cells=[("0-7", 8 * GIB, "8", "8")], distances=[[10]], topology=(1, 1, 8, 1), numatune=("strict", "8"),
        cell_pins=["16-31"],
    ),
    # unequal nodes (16, 8, 12 CPUs; first threads 0-17 node by node, then second threads 18-35):
    # with V = H each cell gets exactly its node's CPU ids.
    "unequal-round-robin-v-equals-h": Case(
        "unequal-nodes", 36, 36 * GIB, {"distribution": "round-robin", "memory_split": "vcpus"},
        # memory in proportion to vCPUs: 16:8:12 of 36 GiB.
        cells=[("0-7,18-25", 16 * GIB, "0", "0"), ("8-11,26-29", 8 * GIB, "1", "1"),
               ("12-17,30-35", 12 * GIB, "2", "2")],
        distances=[[10, 11, 11], [11, 10, 11], [11, 11, 10]], topology=(18, 1, 2, 1), numatune=("strict", "0-2"),
    ),
    # V = 18: floor(36k/18) = 2k: blocks of 4, 2, 3 (the nodes' 8:4:6 first threads) twice.
    "unequal-round-robin-half": Case(
        "unequal-nodes", 18, 12 * GIB, {"distribution": "round-robin"},
        cells=[("0-3,9-12", 4 * GIB, "0", "0"), ("4-5,13-14", 4 * GIB, "1", "1"), ("6-8,15-17", 4 * GIB, "2", "2")],
        distances=[[10, 11, 11], [11, 10, 11], [11, 11, 10]], topology=(18, 1, 1, 1), numatune=("strict", "0-2"),
        # enable order keeps the online share balanced: 0 (cell 0, 1/8); cell 2 (1/6 < 2/8 = 1/4); then cells 0
        # and 1 tie at 1/4 and 0 wins; then cell 1 (1/4 < 3/8 and 2/6) ...
        enable_order=[0, 6, 1, 4, 7, 2, 3, 5, 8, 9, 15, 10, 13, 16, 11, 12, 14, 17],
    ),
    # memory-less CPU nodes 1 and 3: grouped with 0 and 2 (all 16 apart, so by id), memory bound to 0 and 2.
    "memoryless-node-groups": Case(
        "memoryless-node", 8, 8 * GIB, {"mode": "node", "cells": 2},
        cells=[("0-3", 4 * GIB, "0-1", "0"), ("4-7", 4 * GIB, "2-3", "2")],
        distances=[[10, 16], [16, 10]], topology=(2, 1, 4, 1), numatune=("strict", "0,2"),
        cell_pins=["0-15,32-47", "16-31,48-63"],
    ),
    # host mode mirrors the memory-less CPU nodes 1 and 3 too; their cells bind their memory to the nearest node
    # with memory (0 and 2 are both 16 away: the lower id, 0), as the kernel serves those CPUs.
    "memoryless-node-host": Case(
        "memoryless-node", 8, 8 * GIB, {},
        cells=[("0-1", 2 * GIB, "0", "0"), ("2-3", 2 * GIB, "1", "0"), ("4-5", 2 * GIB, "2", "2"),
               ("6-7", 2 * GIB, "3", "0")],
        distances=[[10, 16, 16, 16], [16, 10, 16, 16], [16, 16, 10, 16], [16, 16, 16, 10]],
        topology=(4, 1, 2, 1), numatune=("strict", "0,2"),
        cell_pins=["0-7,32-39", "8-15,40-47", "16-23,48-55", "24-31,56-63"],
    ),
    # ... and that node may lie outside the selected nodes.
    "memoryless-node-only": Case(
        "memoryless-node", 8, 8 * GIB, {"mode": "node", "nodeset": "3"},
        cells=[("0-7", 8 * GIB, "3", "0")], distances=[[10]], topology=(1, 1, 8, 1), numatune=("strict", "0"),
        cell_pins=["24-31,56-63"],
    ),
    # offline CPUs are never used: node 0 has 0,8,16,24 online, node 1 has 32,40,48 (56 is offline).
    "offline-cpus-core": Case(
        "offline-cpus", 7, 8 * GIB, {"pinning": "core"},
        cells=[("0-3", 4 * GIB, "0", "0"), ("4-6", 4 * GIB, "1", "1")],
        distances=[[10, 40], [40, 10]], topology=(7, 1, 1, 1), numatune=("strict", "0-1"),
        pins=[0, 8, 16, 24, 32, 40, 48],
    ),
    # no <distances>: libvirt's default 20 between nodes.
    "no-distances": Case(
        "no-distances", 4, 2 * GIB, {},
        cells=[("0-1", GIB, "0", "0"), ("2-3", GIB, "1", "1")],
        distances=[[10, 20], [20, 10]], topology=(2, 1, 2, 1), numatune=("strict", "0-1"),
        cell_pins=["0-7", "8-15"],
    ),
    # SMT8 with 16 MiB huge pages: 256 pages = 4 GiB per node, the granule lcm(1 MiB, 16 MiB).
    "smt8-siblings-hugepages": Case(
        "smt8-power", 16, 8 * GIB, {"distribution": "siblings", "pinning": "thread", "hugepages": 16 * MIB},
        cells=[("0-7", 4 * GIB, "0", "0"), ("8-15", 4 * GIB, "1", "1")],
        distances=[[10, 40], [40, 10]], topology=(2, 1, 1, 8), numatune=("strict", "0-1"),
        pins=[*range(8), *range(32, 40)],
    ),
    "smt4-siblings": Case(
        "smt4-power", 16, 4 * GIB, {"distribution": "siblings"},
        cells=[("0-7", 2 * GIB, "0", "0"), ("8-15", 2 * GIB, "1", "1")],
        distances=[[10, 40], [40, 10]], topology=(2, 1, 2, 4), numatune=("strict", "0-1"),
        cell_pins=["0-23", "24-47"], enable_order=[0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15],
    ),
    # 16 nodes on 2 sockets at distance 12 within a socket, 32 across: 4 groups of 4 by socket, then id.
    "large-16node-cells-4": Case(
        "large-16node-1024cpu", 8, 8 * GIB, {"mode": "node", "cells": 4},
        cells=[("0-1", 2 * GIB, "0-3", "0-3"), ("2-3", 2 * GIB, "4-7", "4-7"), ("4-5", 2 * GIB, "8-11", "8-11"),
               ("6-7", 2 * GIB, "12-15", "12-15")],
        distances=[[10, 12, 32, 32], [12, 10, 32, 32], [32, 32, 10, 12], [32, 32, 12, 10]],
        topology=(4, 1, 2, 1), numatune=("strict", "0-15"),
        cell_pins=["0-127,512-639", "128-255,640-767", "256-383,768-895", "384-511,896-1023"],
    ),
    "large-16node-cells-2-siblings-core": Case(
        "large-16node-1024cpu", 8, 8 * GIB, {"mode": "node", "cells": 2, "distribution": "siblings",
                                             "pinning": "core"},
        cells=[("0-3", 4 * GIB, "0-7", "0-7"), ("4-7", 4 * GIB, "8-15", "8-15")],
        distances=[[10, 32], [32, 10]], topology=(2, 1, 2, 2), numatune=("strict", "0-15"),
        pins=[0, 512, 1, 513, 256, 768, 257, 769],
    ),
    # AMD NPS4: 2 sockets x 4 nodes (12 apart within a socket, 32 across), 6 SMT2 cores per node (0-5 and 48-53...).
    "nps4-cells-2-siblings-thread": Case(
        "amd-2s-nps4", 16, 16 * GIB, {"mode": "node", "cells": 2, "distribution": "siblings", "pinning": "thread"},
        cells=[("0-7", 8 * GIB, "0-3", "0-3"), ("8-15", 8 * GIB, "4-7", "4-7")],
        distances=[[10, 32], [32, 10]], topology=(2, 1, 4, 2), numatune=("strict", "0-7"),
        pins=[0, 48, 1, 49, 2, 50, 3, 51, 24, 72, 25, 73, 26, 74, 27, 75],
        enable_order=[0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15],
    ),
    # cells 3 = groups of 3, 3, 2.  {0,1,2} by socket; then seed 3 has no socket mate left, so the smallest
    # summed distance decides: 4 (32), then 5 (d(3,5)+d(4,5) = 32+12, tied with 6 and 7, lowest id); {6,7} last.
    "nps4-cells-3": Case(
        "amd-2s-nps4", 12, 12 * GIB, {"mode": "node", "cells": 3},
        cells=[("0-3", 4 * GIB, "0-2", "0-2"), ("4-7", 4 * GIB, "3-5", "3-5"), ("8-11", 4 * GIB, "6-7", "6-7")],
        distances=[[10, 12, 32], [12, 10, 12], [32, 12, 10]], topology=(3, 1, 4, 1), numatune=("strict", "0-7"),
        cell_pins=["0-17,48-65", "18-35,66-83", "36-47,84-95"],
    ),
    # a single node: one cell, no distances to anything else.
    "single-node-siblings": Case(
        "single-node", 8, 8 * GIB, {"distribution": "siblings"},
        cells=[("0-7", 8 * GIB, "0", "0")], distances=[[10]], topology=(1, 1, 4, 2), numatune=("strict", "0"),
        cell_pins=["0-7"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_layout_on_fixture_hosts(case: Case) -> None:
    layout = plan(case.host, case.vcpus, case.memory, **case.spec)
    assert cells(layout) == case.cells
    assert distances(layout) == case.distances
    assert topology(layout) == case.topology
    assert (layout.numatune_mode, format_cpuset(layout.numatune_nodes)) == case.numatune
    assert layout.memory_kib == case.memory
    assert layout.vcpus == layout.current_vcpus == case.vcpus
    assert layout.guest == GUEST
    if case.cell_pins is not None:
        assert cell_pins(layout) == case.cell_pins
    if case.pins is not None:
        assert pins(layout) == case.pins
    if case.enable_order is not None:
        assert list(layout.enable_order) == case.enable_order
    if "emulator" in case.extra:
        assert layout.emulator_pins is not None
        assert format_cpuset(layout.emulator_pins) == case.extra["emulator"]
    elif case.spec.get("emulator_pin", "none") == "none":
        assert layout.emulator_pins is None
    if case.spec.get("pinning") == "none":
        assert layout.vcpu_pins is None


# -- the rules, one at a time --------------------------------------------------------------------------


def test_host_mode_mirrors_every_cpu_node_in_id_order() -> None:
    for name in ("seed-4node-ring", "amd-2s-nps4", "intel-snc2-cxl", "sparse-ids", "large-16node-1024cpu"):
        topology_ = host(name)
        layout = plan(name, 64, 64 * GIB, memory_mode="preferred")
        assert [cell.host_nodes for cell in layout.cells] == [(node,) for node in topology_.cpu_node_ids]


def test_node_mode_defaults_to_the_cpu_nodes() -> None:
    """Without a nodeset, node mode selects the nodes with CPUs (not the CXL ones), like host mode."""
    layout = plan("intel-snc2-cxl", 16, 16 * GIB, mode="node")
    assert [cell.host_nodes for cell in layout.cells] == [(0,), (1,), (2,), (3,)]
    assert cells(layout) == cells(plan("intel-snc2-cxl", 16, 16 * GIB, mode="host"))


def test_node_mode_with_a_cxl_node_allows_cpuless_cell_without_option() -> None:
    layout = plan("intel-snc2-cxl", 4, 4 * GIB, mode="node", nodeset="0,4")
    assert [len(cell.vcpus) for cell in layout.cells] == [4, 0]
    assert layout.vcpu_pins is not None
    assert {layout.vcpu_pins[vcpu] for vcpu in range(4)} == {(0, 1, 2, 3, 16, 17, 18, 19)}


def test_grouping_prefers_the_seed_socket_over_distance() -> None:
    # Node 0 shares socket 0 with node 3 only; node 1 is nearer by distance but on socket 1.
    near = {0: 10, 1: 15, 2: 30, 3: 20}
    topology_ = build_host(
        [
            {"id": 0, "cores": single_threads(0, 2), "socket": 0, "distances": near},
            {"id": 1, "cores": single_threads(2, 2), "socket": 1, "distances": {0: 15, 1: 10, 2: 20, 3: 30}},
            {"id": 2, "cores": single_threads(4, 2), "socket": 1, "distances": {0: 30, 1: 20, 2: 10, 3: 30}},
            {"id": 3, "cores": single_threads(6, 2), "socket": 0, "distances": {0: 20, 1: 30, 2: 30, 3: 10}},
        ]
    )
    layout = plan(topology_, 4, 4 * GIB, mode="node", cells=2)
    assert [cell.host_nodes for cell in layout.cells] == [(0, 3), (1, 2)]
    # min over pairs: d(0,1)=15.
    assert distances(layout) == [[10, 15], [15, 10]]


def test_grouping_by_smallest_summed_distance_then_id() -> None:
    # One socket per node: distance decides.  Node 0's nearest is 2 (15); then the group {0,2} takes the
    # node with the smallest summed distance: 1 (20+20=40) beats 3 (30+12=42).
    table = {
        0: {0: 10, 1: 20, 2: 15, 3: 30, 4: 40},
        1: {0: 20, 1: 10, 2: 20, 3: 25, 4: 40},
        2: {0: 15, 1: 20, 2: 10, 3: 12, 4: 40},
        3: {0: 30, 1: 25, 2: 12, 3: 10, 4: 40},
        4: {0: 40, 1: 40, 2: 40, 3: 40, 4: 10},
    }
    topology_ = build_host(
        [{"id": n, "cores": single_threads(2 * n, 2), "socket": n, "distances": table[n]} for n in range(5)]
    )
    layout = plan(topology_, 4, 4 * GIB, mode="node", cells=2)
    # Group sizes 3 and 2 (the first group gets the extra).
    assert [cell.host_nodes for cell in layout.cells] == [(0, 1, 2), (3, 4)]
    # min over pairs between {0,1,2} and {3,4}: d(2,3)=12.
    assert distances(layout) == [[10, 12], [12, 10]]


def test_asymmetric_host_distances_are_symmetrised_by_min() -> None:
    topology_ = build_host(
        [
            {"id": 0, "cores": single_threads(0, 2), "socket": 0, "distances": {0: 10, 1: 20}},
            {"id": 1, "cores": single_threads(2, 2), "socket": 1, "distances": {0: 30, 1: 10}},
        ]
    )
    assert distances(plan(topology_, 2, 2 * GIB)) == [[10, 20], [20, 10]]


@pytest.mark.parametrize("value", [10, 300])
def test_a_host_distance_libvirt_refuses_never_reaches_the_partitioner(value: int) -> None:
    # libvirt refuses 10 off the diagonal and anything above 255: the host is refused where it is built
    # (HostTopology), as capabilities XML and a host report are (_core/test_distances.py).
    with pytest.raises(TopologyError) as caught:
        build_host(
            [
                {"id": 0, "cores": single_threads(0, 2), "socket": 0, "distances": {0: 10, 1: value}},
                {"id": 1, "cores": single_threads(2, 2), "socket": 0, "distances": {0: value, 1: 10}},
            ]
        )
    assert str(caught.value) == (
        f"host node 0 reports distance {value} to node 1; distances between two nodes must be 11-255"
    )


def test_round_robin_on_a_host_numbering_node_by_node_gives_proportional_blocks() -> None:
    # Nodes of 8, 4 and 6 CPUs numbered node by node (0-7, 8-11, 12-17).  V=9: floor(18k/9) = 2k, so
    # vCPUs 0-3 -> node 0, 4-5 -> node 1, 6-8 -> node 2: blocks of 4, 2, 3, in proportion 8:4:6.
    topology_ = build_host(
        [
            {"id": 0, "cores": single_threads(0, 8), "distances": {0: 10, 1: 11, 2: 11}},
            {"id": 1, "cores": single_threads(8, 4), "distances": {0: 11, 1: 10, 2: 11}},
            {"id": 2, "cores": single_threads(12, 6), "distances": {0: 11, 1: 11, 2: 10}},
        ]
    )
    layout = plan(topology_, 9, 3 * GIB, distribution="round-robin")
    assert [format_cpuset(cell.vcpus) for cell in layout.cells] == ["0-3", "4-5", "6-8"]
    # With V = H the guest's numbering is the host's own.
    layout = plan(topology_, 18, 3 * GIB, distribution="round-robin")
    assert [format_cpuset(cell.vcpus) for cell in layout.cells] == ["0-7", "8-11", "12-17"]


def test_round_robin_on_a_host_alternating_nodes_alternates() -> None:
    # CPUs numbered alternately over two nodes (even ids on node 0, odd on node 1).
    topology_ = build_host(
        [
            {"id": 0, "cores": [(0,), (2,), (4,), (6,)], "socket": 0},
            {"id": 1, "cores": [(1,), (3,), (5,), (7,)], "socket": 1},
        ]
    )
    layout = plan(topology_, 8, 2 * GIB, distribution="round-robin")
    assert [format_cpuset(cell.vcpus) for cell in layout.cells] == ["0,2,4,6", "1,3,5,7"]
    assert topology(layout) == (8, 1, 1, 1)


def test_contiguous_blocks_differ_by_at_most_one_guest_core() -> None:
    # 12 vCPUs of SMT2 guest cores over 4 cells: 6 cores -> 2,2,1,1 cores.
    layout = plan("amd-2s-nps4", 12, 4 * GIB, mode="node", nodeset="0-3", distribution="siblings")
    assert [format_cpuset(cell.vcpus) for cell in layout.cells] == ["0-3", "4-7", "8-9", "10-11"]
    assert topology(layout) == (6, 1, 1, 2)


def test_memory_even_split_gives_the_remainder_to_the_first_cells() -> None:
    # 4 GiB + 3 MiB over 4 cells: 4099 MiB = 1025 + 1025 + 1025 + 1024 MiB.
    layout = plan("seed-4node-ring", 8, 4 * GIB + 3 * MIB)
    assert [cell.memory_kib for cell in layout.cells] == [1025 * MIB] * 3 + [1024 * MIB]


def test_memory_split_by_vcpus_is_proportional() -> None:
    # round-robin V=6 on the ring gives 2,1,2,1 vCPUs; 6 GiB = 6144 MiB -> 2048, 1024, 2048, 1024 MiB.
    layout = plan("seed-4node-ring", 6, 6 * GIB, distribution="round-robin", memory_split="vcpus")
    assert [cell.memory_kib for cell in layout.cells] == [2 * GIB, GIB, 2 * GIB, GIB]
    # 1000 MiB: floor(1000*2/6)=333, 166, 333, 166 = 998; the remainder 2 MiB goes to the first cells.
    layout = plan("seed-4node-ring", 6, 1000 * MIB, distribution="round-robin", memory_split="vcpus")
    assert [cell.memory_kib // MIB for cell in layout.cells] == [334, 167, 333, 166]


def test_memory_granule_is_the_hugepage_size() -> None:
    # 2 MiB pages: 2050 MiB = 1025 pages over 2 cells: 513 + 512 pages (the pools hold 1024 pages each).
    layout = plan("intel-2s-smt2", 8, 2050 * MIB, hugepages="2 MiB")
    assert [cell.memory_kib for cell in layout.cells] == [1026 * MIB, 1024 * MIB]
    assert layout.hugepages_kib == 2048


def test_memory_comes_from_the_domain_when_the_spec_has_none() -> None:
    layout = plan("seed-4node-ring", 4, 2 * GIB)
    assert layout.memory_kib == 2 * GIB
    # The spec's memory wins over the domain's.
    layout = plan("seed-4node-ring", 4, 2 * GIB, memory="1 GiB")
    assert layout.memory_kib == GIB


def test_cpuless_cells_allows_more_cells_than_vcpus() -> None:
    layout = plan("seed-4node-ring", 2, 4 * GIB, mode="node", cells=4, cpuless_cells=True)
    assert cells(layout) == [("0", GIB, "0", "0"), ("1", GIB, "1", "1"), ("", GIB, "2", "2"), ("", GIB, "3", "3")]
    assert list(layout.enable_order) == [0, 1]


def test_preferred_allows_a_cell_larger_than_its_node() -> None:
    layout = plan("seed-4node-ring", 8, 32 * GIB, mode="node", nodeset="0", memory_mode="preferred")
    assert cells(layout) == [("0-7", 32 * GIB, "0", "0")]
    assert (layout.numatune_mode, layout.numatune_nodes) == ("preferred", (0,))


def test_memory_fits_exactly() -> None:
    # 8 GiB per ring node: 32 GiB over 4 cells is exactly full, and allowed.
    layout = plan("seed-4node-ring", 4, 32 * GIB)
    assert [cell.memory_kib for cell in layout.cells] == [8 * GIB] * 4


def test_cells_on_one_node_share_its_capacity() -> None:
    # Two cells of 5 GiB on one 8 GiB node: together 10 GiB.
    with pytest.raises(PlacementError) as caught:
        plan("seed-4node-ring", 8, 10 * GIB, mode="node", nodeset="0", cells=2)
    assert str(caught.value) == "guest db01: guest cells 0-1 need together 10 GiB, host node 0 has 8 GiB"


def test_a_group_holds_the_memory_of_all_its_nodes() -> None:
    # cells 2 on the ring: each cell binds two 8 GiB nodes, so 16 GiB per cell fits.
    layout = plan("seed-4node-ring", 8, 32 * GIB, mode="node", cells=2)
    assert [cell.memory_kib for cell in layout.cells] == [16 * GIB, 16 * GIB]


def test_cells_bound_to_overlapping_nodes_must_fit_together() -> None:
    # Node 2 has CPUs and no memory; cells 2 on three nodes gives {0,1} and {2}, and cell 1 binds its memory
    # to node 0, the nearest with memory.  memory_split vcpus: 3 and 2 vCPUs of 5 take 12 and 8 of 20 GiB.
    # Each fits on its own (12 <= 16, 8 <= 8), not together: 20 GiB strictly bound to nodes 0-1 of 16 GiB.
    topology_ = build_host(
        [
            {"id": 0, "cores": single_threads(0, 2), "distances": {0: 10, 1: 12, 2: 14}},
            {"id": 1, "cores": single_threads(2, 2), "distances": {0: 12, 1: 10, 2: 20}},
            {"id": 2, "cores": single_threads(4, 2), "memory": 0, "distances": {0: 14, 1: 20, 2: 10}},
        ]
    )
    with pytest.raises(PlacementError) as caught:
        plan(topology_, 5, 20 * GIB, mode="node", cells=2, memory_split="vcpus")
    assert str(caught.value) == "guest db01: guest cells 0-1 need together 20 GiB, host nodes 0-1 have 16 GiB"
    layout = plan(topology_, 5, 15 * GIB, mode="node", cells=2, memory_split="vcpus")
    assert cells(layout) == [("0-2", 9 * GIB, "0-1", "0-1"), ("3-4", 6 * GIB, "2", "0")]


def test_guest_threads_follow_the_host_only_under_siblings() -> None:
    for distribution in ("contiguous", "round-robin", "interleave"):
        assert plan("smt4-power", 8, 4 * GIB, distribution=distribution).topology.threads == 1
    assert plan("smt4-power", 8, 4 * GIB, distribution="siblings").topology.threads == 4


def test_pinning_node_skips_cpus_dedicated_to_other_guests() -> None:
    layout = plan("seed-4node-ring", 4, 4 * GIB, taken={0: "web01", 5: "web02"})
    assert cell_pins(layout) == ["1-3", "4,6-7", "8-11", "12-15"]


def test_dedicated_pinning_skips_cpus_of_other_guests() -> None:
    # core pinning: the cores holding 0, 1 (web01) and 16 (sibling of 0) are not free; node 0's next free
    # whole cores are (2,18) and (3,19).
    layout = plan("intel-2s-smt2", 4, 4 * GIB, taken={0: "web01", 1: "web01", 17: "web02"}, pinning="core")
    assert pins(layout) == [2, 3, 8, 9]
    # thread pinning never shares a host core with another guest: 16 and 17 stay idle beside 0 and 1, so cell 0
    # packs onto (2,18); cell 1 onto (8,24).
    layout = plan("intel-2s-smt2", 4, 4 * GIB, taken={0: "web01", 1: "web01", 17: "web02"}, pinning="thread")
    assert pins(layout) == [2, 18, 8, 24]


def test_emulator_pin_nodes_floats_over_the_selected_nodes() -> None:
    layout = plan("seed-4node-ring", 4, 4 * GIB, mode="node", nodeset="1-2", emulator_pin="nodes", taken={4: "x"})
    assert layout.emulator_pins == (5, 6, 7, 8, 9, 10, 11)


def test_current_vcpus_and_online_at_boot() -> None:
    layout = plan("seed-4node-ring", 8, 4 * GIB, current=3)
    assert layout.current_vcpus == 3
    # enable order 0 (cell 0), 2 (cell 1), 4 (cell 2), 6 (cell 3)...: the first three are online at boot.
    assert online_at_boot(layout) == (0, 2, 4)


def test_layout_dict_form() -> None:
    layout = plan("intel-2s-smt2", 4, 2 * GIB, distribution="siblings", pinning="thread")
    data = layout.to_dict()
    assert data["guest"] == GUEST
    assert data["topology"] == {"sockets": 2, "dies": 1, "cores": 1, "threads": 2}
    assert data["numatune"] == {"mode": "strict", "nodeset": "0-1"}
    assert [cell["pinning"] for cell in data["cells"]] == ["0,16", "8,24"]
    assert data["vcpupin"] == {"0": "0", "1": "16", "2": "8", "3": "24"}


# -- every check (docs/partitioning.md §10): the error class, the guest, the value and the limit -------------

# (host, vcpus, memory KiB, taken CPUs, spec options, error class, exact message)
ERRORS: dict[str, tuple[str, int, int, dict[int, str] | None, dict[str, Any], type[VnumaError], str]] = {
    "nodes-that-do-not-exist": (
        "seed-4node-ring", 8, 4 * GIB, None, {"mode": "node", "nodeset": "1,5-6"}, SpecError,
        "guest db01: nodeset '1,5-6' names host nodes 5-6, which the host does not have (it has nodes 0-3)",
    ),
    "sparse-node-that-does-not-exist": (
        "sparse-ids", 8, 4 * GIB, None, {"mode": "node", "nodeset": "0-1"}, SpecError,
        "guest db01: nodeset '0-1' names host node 1, which the host does not have (it has nodes 0,8)",
    ),
    "no-cpu-bearing-node": (
        "intel-snc2-cxl", 8, 4 * GIB, None, {"mode": "node", "nodeset": "4-5"}, PlacementError,
        "guest db01: nodeset '4-5' selects only host nodes 4-5 without CPUs; select at least one host node with "
        "CPUs",
    ),
    "more-cells-than-vcpus": (
        "seed-4node-ring", 2, 4 * GIB, None, {"mode": "node", "cells": 4}, PlacementError,
        "guest db01: 4 guest cells with host CPUs need at least 4 vCPUs, the guest has 2; use fewer cells or set "
        "cpuless_cells to allow cells without vCPUs",
    ),
    "more-cells-than-guest-cores": (
        "intel-2s-smt2", 2, 4 * GIB, None, {"distribution": "siblings"}, PlacementError,
        "guest db01: 2 guest cells with host CPUs need at least 4 vCPUs (whole cores of 2 threads), the guest "
        "has 2; use fewer cells or set cpuless_cells to allow cells without vCPUs",
    ),
    "round-robin-leaves-a-cell-empty": (
        # floor(36k/3) = 0, 12, 24: CPUs 0 (node 0), 12 (node 2), 24 (node 0); node 1 gets none.
        "unequal-nodes", 3, 3 * GIB, None, {"distribution": "round-robin"}, PlacementError,
        "guest db01: distribution round-robin leaves guest cell 1 (host node 1) without vCPUs for 3 vCPUs; use "
        "more vCPUs, another distribution, or set cpuless_cells",
    ),
    "cell-larger-than-its-node": (
        "seed-4node-ring", 8, 64 * GIB, None, {}, PlacementError,
        "guest db01: guest cell 0 needs 16 GiB, host node 0 has 8 GiB",
    ),
    "cell-larger-than-its-node-interleave": (
        "seed-4node-ring", 8, 16 * GIB, None, {"mode": "node", "nodeset": "2", "memory_mode": "interleave"},
        PlacementError, "guest db01: guest cell 0 needs 16 GiB, host node 2 has 8 GiB",
    ),
    "cell-larger-than-its-node-restrictive": (
        "seed-4node-ring", 8, 16 * GIB, None, {"mode": "node", "nodeset": "2", "memory_mode": "restrictive"},
        PlacementError, "guest db01: guest cell 0 needs 16 GiB, host node 2 has 8 GiB",
    ),
    "cell-larger-than-its-group": (
        "seed-4node-ring", 8, 40 * GIB, None, {"mode": "node", "cells": 2}, PlacementError,
        "guest db01: guest cell 0 needs 20 GiB, host nodes 0-1 have 16 GiB",
    ),
    "unequal-small-node": (
        "unequal-nodes", 36, 60 * GIB, None, {}, PlacementError,
        "guest db01: guest cell 1 needs 20 GiB, host node 1 has 16 GiB",
    ),
    "cell-larger-than-its-page-pool": (
        "smt8-power", 16, 16 * GIB, None, {"hugepages": "16 MiB"}, PlacementError,
        "guest db01: guest cell 0 needs 8 GiB, host node 0 has 4 GiB in its 16 MiB page pool",
    ),
    "current-vcpus-not-whole-cores": (
        "smt4-power", 8, 4 * GIB, None, {"distribution": "siblings"}, SpecError,
        "guest db01: distribution siblings brings guest cores of 4 threads online whole; 6 vCPUs online at boot "
        "(<vcpu current>) is not a multiple of 4",
    ),
    "no-page-pool": (
        "intel-2s-smt2", 8, 4 * GIB, None, {"hugepages": "1 GiB"}, PlacementError,
        "guest db01: guest cell 0 would bind its memory to host node 0, which has no 1 GiB hugepages",
    ),
    "vcpus-not-multiple-of-threads": (
        "intel-2s-smt2", 7, 4 * GIB, None, {"distribution": "siblings"}, SpecError,
        "guest db01: distribution siblings builds guest cores of 2 threads like the host; 7 vCPUs is not a "
        "multiple of 2",
    ),
    "vcpus-not-multiple-of-smt8": (
        "smt8-power", 12, 4 * GIB, None, {"distribution": "siblings"}, SpecError,
        "guest db01: distribution siblings builds guest cores of 8 threads like the host; 12 vCPUs is not a "
        "multiple of 8",
    ),
    "memory-not-multiple-of-mib": (
        "intel-2s-smt2", 8, 4 * GIB + 1, None, {}, SpecError,
        "guest db01: memory 4194305 KiB is not a multiple of 1 MiB (libvirt rounds each cell up to 1 MiB)",
    ),
    "memory-not-multiple-of-page": (
        "intel-2s-smt2", 8, 4097 * MIB, None, {"hugepages": "2 MiB"}, SpecError,
        "guest db01: memory 4097 MiB is not a multiple of 2 MiB (the hugepage size)",
    ),
    "memory-too-small-for-cells": (
        "seed-4node-ring", 8, 3 * MIB, None, {}, SpecError,
        "guest db01: memory 3 MiB is too small for 4 cells of at least 1 MiB each",
    ),
    "hugepage-size-the-host-lacks": (
        "intel-2s-smt2", 8, 4 * GIB, None, {"hugepages": "16 MiB"}, PlacementError,
        "guest db01: hugepages of 16 MiB are not offered by the host (it has 4 KiB, 2 MiB, 1 GiB)",
    ),
    "dedicated-core-needs-more-cores": (
        "intel-2s-smt2", 40, 4 * GIB, None, {"pinning": "core"}, PlacementError,
        "guest db01: pinning core needs 20 free host cores for guest cell 0 on host node 0, 8 are free",
    ),
    "dedicated-thread-needs-more-threads": (
        "intel-2s-smt2", 40, 4 * GIB, None, {"pinning": "thread"}, PlacementError,
        "guest db01: pinning thread needs 20 free host threads for guest cell 0 on host node 0, 16 are free",
    ),
    "dedicated-core-offline-cpus": (
        "offline-cpus", 8, 8 * GIB, None, {"pinning": "core"}, PlacementError,
        "guest db01: pinning core needs 4 free host cores for guest cell 1 on host node 1, 3 are free",
    ),
    "dedicated-overlapping-another-guest": (
        "seed-4node-ring", 8, 4 * GIB, {0: "web01", 1: "web01", 2: "web02"}, {"pinning": "core"}, PlacementError,
        "guest db01: pinning core needs 2 free host cores for guest cell 0 on host node 0, 1 are free (others "
        "are dedicated to web01, web02)",
    ),
    # all 16 threads of node 0 wanted; CPUs 0-3 are another guest's, and their cores' siblings 16-19 are not
    # shared with it: 8 threads are free.
    "dedicated-thread-overlapping-another-guest": (
        "intel-2s-smt2", 16, 4 * GIB, dict.fromkeys(range(4), "web01"),
        {"pinning": "thread", "mode": "node", "nodeset": "0"}, PlacementError,
        "guest db01: pinning thread needs 16 free host threads for guest cell 0 on host node 0, 8 are free "
        "(others are dedicated to web01)",
    ),
    "floating-on-nodes-all-taken": (
        "seed-4node-ring", 4, 4 * GIB, dict.fromkeys(range(4), "web01"), {"mode": "node", "nodeset": "0"},
        PlacementError,
        "guest db01: every host CPU of host node 0 is dedicated to other guests (web01); guest cell 0 has "
        "nowhere to run",
    ),
    "emulator-with-no-cpu-left": (
        "single-node", 4, 8 * GIB, None, {"pinning": "core", "emulator_pin": "nodes"}, PlacementError,
        "guest db01: emulator_pin nodes: every host CPU of host node 0 is dedicated to vCPUs; leave a host CPU "
        "free or set emulator_pin none",
    ),
    "siblings-over-different-smt-widths": (
        None, 8, 4 * GIB, None, {"distribution": "siblings"}, PlacementError,  # host built below
        "guest db01: distribution siblings needs one SMT width on the selected host nodes; threads per core "
        "differ (node 0: 2, node 1: 1)",
    ),
    "max-memory-below-memory": (
        "seed-4node-ring", 8, 4 * GIB, None, {"max_memory": "2 GiB", "memory_slots": 4}, SpecError,
        "guest db01: max_memory 2 GiB is below the memory 4 GiB",
    ),
    "memory-split-vcpus-with-cpuless-cell": (
        "intel-snc2-cxl", 8, 4 * GIB, None, {"mode": "node", "nodeset": "0,4", "memory_split": "vcpus"}, SpecError,
        "guest db01: memory_split vcpus gives memory in proportion to vCPUs, but cell 1 has no vCPUs; use "
        "memory_split even",
    ),
}  # fmt: skip


def mixed_smt_host() -> HostTopology:
    return build_host(
        [
            {"id": 0, "cores": [(0, 1), (2, 3)], "socket": 0},
            {"id": 1, "cores": single_threads(4, 4), "socket": 1},
        ]
    )


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_every_check_names_the_guest_the_value_and_the_limit(case: tuple[Any, ...]) -> None:
    name, vcpus, memory, taken, spec, error, message = case
    current = 6 if "current" in message else None
    with pytest.raises(error) as caught:
        plan(name if name is not None else mixed_smt_host(), vcpus, memory, taken, current, **spec)
    assert isinstance(caught.value, VnumaError)
    assert caught.value.guest == GUEST
    assert str(caught.value) == message


def test_dedicated_cpus_of_other_guests_are_never_reused() -> None:
    taken = dict.fromkeys((0, 16, 1, 17), "web01")
    for pinning in ("core", "thread"):
        layout = plan("intel-2s-smt2", 8, 4 * GIB, taken=taken, pinning=pinning)
        assert not set(pins(layout)) & set(taken)


# Checks made on the spec itself, before any host is looked at.  They name the value and the limit; the spec
# does not know its guest, so the caller names it with ``naming`` (as compute_layout does for its own errors).
SPEC_ERRORS: dict[str, tuple[dict[str, Any], str]] = {
    "bad-nodeset-syntax": ({"nodeset": "1-"}, "nodeset '1-': '' is not a non-negative integer"),
    "bad-nodeset-range": ({"nodeset": "3-1"}, "nodeset '3-1': range 3-1 runs backwards"),
    "bad-nodeset-letter": ({"nodeset": "0,a"}, "nodeset '0,a': 'a' is not a non-negative integer"),
    "nodeset-selecting-nothing": ({"nodeset": "1,^1"}, "nodeset '1,^1' selects nothing"),
    "nodeset-empty-item": ({"nodeset": "0,,1"}, "nodeset '0,,1': empty item between commas"),
    "cells-zero": ({"cells": 0}, "cells 0 must be an integer from 1 to 128 (QEMU's MAX_NODES)"),
    "cells-negative": ({"cells": -2}, "cells -2 must be an integer from 1 to 128 (QEMU's MAX_NODES)"),
    "unknown-mode": ({"mode": "nodes"}, "mode 'nodes' is not one of host, node, auto"),
    "unknown-distribution": (
        {"distribution": "roundrobin"},
        "distribution 'roundrobin' is not one of contiguous, siblings, round-robin, interleave",
    ),
    "unknown-pinning": ({"pinning": "cpu"}, "pinning 'cpu' is not one of node, core, thread, none"),
    "unknown-memory-mode": (
        {"memory_mode": "bind"},
        "memory_mode 'bind' is not one of strict, preferred, interleave, restrictive",
    ),
    "memory-bad-unit": (
        {"memory": "4 GB2"},
        "memory: '4 GB2' is not a size such as '16 GiB' or 524288",
    ),
    "max-memory-without-slots": (
        {"max_memory": "8 GiB"},
        "max_memory and memory_slots go together: memory hotplug needs both",
    ),
    "too-many-slots": (
        {"max_memory": "8 GiB", "memory_slots": 300},
        "memory_slots 300 must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)",
    ),
    # host mode mirrors every host node with CPUs: a partition typed with it is refused, not dropped.
    "host-mode-nodeset": (
        {"mode": "host", "nodeset": "1-3,^2"},
        "nodeset '1-3,^2' applies to mode node only; mode host mirrors every host node with CPUs",
    ),
    "host-mode-cells": (
        {"cells": 2},
        "cells 2 applies to mode node only; mode host mirrors every host node with CPUs",
    ),
    "cells-above-limit": (
        {"mode": "node", "cells": 1000000000},
        "cells 1000000000 must be an integer from 1 to 128 (QEMU's MAX_NODES)",
    ),
    "nodeset-above-limit": (
        {"mode": "node", "nodeset": "0,1024"},
        "nodeset '0,1024': 1024 is above the limit of 1023 (Linux has at most 1024 NUMA nodes (MAX_NUMNODES))",
    ),
    "unknown-option": (
        {"mode": "host", "cell": 2, "numa": True},
        "unknown vnuma option(s) cell, numa; known: cells, cpuless_cells, device_cells, device_locality, distribution, "
        "emulator_pin, emulator_threads, hmat, "
        "hugepages, iothreads, max_memory, memory, memory_device, memory_mode, memory_slots, memory_split, mode, "
        "nodeset, "
        "pci_numa_affinity, pinning",
    ),
}


@pytest.mark.parametrize(("options", "message"), SPEC_ERRORS.values(), ids=SPEC_ERRORS.keys())
def test_spec_checks(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        VnumaSpec.from_mapping(options)
    assert str(caught.value) == message
    assert str(caught.value.naming(GUEST)) == f"guest db01: {message}"


def test_guest_shape_checks_name_the_guest() -> None:
    with pytest.raises(SpecError) as caught:
        GuestShape(vcpus=4, current_vcpus=6, memory_kib=GIB, name=GUEST)
    assert str(caught.value) == "guest db01: current vcpus 6 is above the maximum of 4 vCPUs"
    with pytest.raises(SpecError) as caught:
        GuestShape(vcpus=0, name=GUEST)
    assert str(caught.value) == "guest db01: vcpus 0 must be an integer from 1 to 4096 (KVM's maximum vCPUs per guest)"


def test_no_memory_anywhere() -> None:
    with pytest.raises(SpecError) as caught:
        compute_layout(host("seed-4node-ring"), VnumaSpec(), GuestShape(vcpus=4, name=GUEST))
    assert str(caught.value) == "guest db01: no memory size: set memory in the vnuma spec or <memory> in the domain"


def test_spec_accepts_exclusions_and_keeps_a_canonical_nodeset() -> None:
    spec = VnumaSpec.from_mapping({"mode": "node", "nodeset": "1-3,^2", "memory": "512 MiB", "hugepages": 2048})
    assert spec.nodeset == "1,3"
    assert spec.nodes == frozenset({1, 3})
    # Items apply left to right, as in libvirt: an exclusion before the range it would cut is undone by it.
    assert VnumaSpec(mode="node", nodeset="^2,1-3").nodeset == "1-3"
    assert spec.memory_kib == 512 * MIB
    assert spec.hugepages_kib == 2048
    assert VnumaSpec.from_mapping(spec.to_mapping()) == spec


# -- distribute_vcpus directly ---------------------------------------------------------------------------

DISTRIBUTIONS: dict[str, tuple[tuple[Any, ...], dict[str, Any], list[list[int]]]] = {
    "contiguous-even": ((8, 4, "contiguous"), {}, [[0, 1], [2, 3], [4, 5], [6, 7]]),
    "contiguous-remainder-first": ((8, 3, "contiguous"), {}, [[0, 1, 2], [3, 4, 5], [6, 7]]),
    "contiguous-more-cells-than-vcpus": ((2, 4, "contiguous"), {}, [[0], [1], [], []]),
    "contiguous-whole-cores": ((8, 3, "contiguous"), {"threads": 2}, [[0, 1, 2, 3], [4, 5], [6, 7]]),
    "siblings-smt4": ((12, 2, "siblings"), {"threads": 4}, [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11]]),
    "siblings-one-cell": ((4, 1, "siblings"), {"threads": 2}, [[0, 1, 2, 3]]),
    "interleave": ((7, 3, "interleave"), {}, [[0, 3, 6], [1, 4], [2, 5]]),
    "interleave-fewer-vcpus": ((2, 3, "interleave"), {}, [[0], [1], []]),
    "round-robin-blocks": ((4, 2, "round-robin"), {"host_cells": [0, 0, 1, 1]}, [[0, 1], [2, 3]]),
    "round-robin-scaled-up": ((8, 2, "round-robin"), {"host_cells": [0, 0, 1, 1]}, [[0, 1, 2, 3], [4, 5, 6, 7]]),
    "round-robin-scaled-down": ((2, 2, "round-robin"), {"host_cells": [0, 0, 1, 1]}, [[0], [1]]),
    "round-robin-alternating": ((4, 2, "round-robin"), {"host_cells": [0, 1, 0, 1]}, [[0, 2], [1, 3]]),
    # floor(k*6/4) = 0, 1, 3, 4 over host cells 0,0,1,1,2,2 -> cells 0, 0, 1, 2.
    "round-robin-uneven": ((4, 3, "round-robin"), {"host_cells": [0, 0, 1, 1, 2, 2]}, [[0, 1], [2], [3]]),
    # floor(k*4/3) = 0, 1, 2: host cells 0,0,0 -> cell 1 empty (the caller decides whether that is allowed).
    "round-robin-empty-cell": ((3, 2, "round-robin"), {"host_cells": [0, 0, 0, 1]}, [[0, 1, 2], []]),
}


@pytest.mark.parametrize(("args", "kwargs", "expected"), DISTRIBUTIONS.values(), ids=DISTRIBUTIONS.keys())
def test_distribute_vcpus(args: tuple[Any, ...], kwargs: dict[str, Any], expected: list[list[int]]) -> None:
    assert distribute_vcpus(*args, **kwargs) == expected


@pytest.mark.parametrize("vcpus", [1, 2, 3, 7, 8, 16, 33, 64])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8])
def test_distribute_vcpus_rules(vcpus: int, count: int) -> None:
    blocks = distribute_vcpus(vcpus, count, "contiguous")
    assert [v for block in blocks for v in block] == list(range(vcpus))
    assert [len(block) for block in blocks] == even_split(vcpus, count)
    blocks = distribute_vcpus(vcpus, count, "interleave")
    assert all(vcpu % count == cell for cell, block in enumerate(blocks) for vcpu in block)
    assert sorted(v for block in blocks for v in block) == list(range(vcpus))
    # round-robin over a host numbering its cells node by node, with 4 CPUs per cell: contiguous blocks.
    host_cells = [cell for cell in range(count) for _unused in range(4)]
    blocks = distribute_vcpus(vcpus, count, "round-robin", host_cells=host_cells)
    assert [v for block in blocks for v in block] == list(range(vcpus))
    for cell, block in enumerate(blocks):
        assert all(host_cells[vcpu * len(host_cells) // vcpus] == cell for vcpu in block)


DISTRIBUTE_ERRORS: dict[str, tuple[tuple[Any, ...], dict[str, Any], str]] = {
    "vcpus-zero": (
        (0, 2, "contiguous"),
        {},
        "vcpus 0 must be an integer from 1 to 4096 (KVM's maximum vCPUs per guest)",
    ),
    "vcpus-bool": (
        (True, 2, "contiguous"),
        {},
        "vcpus True must be an integer from 1 to 4096 (KVM's maximum vCPUs per guest)",
    ),
    "vcpus-string": (
        ("4", 2, "contiguous"),
        {},
        "vcpus '4' must be an integer from 1 to 4096 (KVM's maximum vCPUs per guest)",
    ),
    "cells-zero": ((4, 0, "contiguous"), {}, "cells 0 must be an integer from 1 to 128 (QEMU's MAX_NODES)"),
    "threads-zero": ((4, 2, "siblings"), {"threads": 0}, "4 vCPUs cannot be cut into guest cores of 0 threads"),
    "threads-not-dividing": ((6, 2, "siblings"), {"threads": 4}, "6 vCPUs cannot be cut into guest cores of 4 threads"),
    "round-robin-without-host": (
        (4, 2, "round-robin"),
        {},
        "distribution round-robin follows the host's CPU numbering and needs the host topology",
    ),
    "round-robin-host-cells-beyond": (
        (4, 2, "round-robin"),
        {"host_cells": [0, 1, 2, 3]},
        "host CPUs are mapped to guest cells 2-3, beyond the 2 cells",
    ),
    "unknown-distribution": (
        (4, 2, "random"),
        {},
        "distribution 'random' is not one of contiguous, siblings, round-robin, interleave",
    ),
}


@pytest.mark.parametrize(("args", "kwargs", "message"), DISTRIBUTE_ERRORS.values(), ids=DISTRIBUTE_ERRORS.keys())
def test_distribute_vcpus_refuses(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        distribute_vcpus(*args, **kwargs)
    assert str(caught.value) == message


def test_even_split() -> None:
    assert even_split(10, 4) == [3, 3, 2, 2]
    assert even_split(3, 5) == [1, 1, 1, 0, 0]
    assert even_split(0, 2) == [0, 0]


def test_a_sibling_listed_on_another_node_blocks_its_core_for_dedicated_pins() -> None:
    # No real core spans two nodes, but a capabilities file may say so: CPU 0 (node 0) lists 2 (node 1) as
    # its sibling, and 2 is web01's.  Sharing a core with it is what dedicated pinning never does.
    def cpu(cpu_id: int, siblings: tuple[int, ...]) -> HostCpu:
        return HostCpu(id=cpu_id, socket_id=0, die_id=0, core_id=cpu_id % 2, siblings=frozenset(siblings))

    split = HostTopology(
        nodes=(
            HostNode(id=0, memory_kib=4 * GIB, cpus=(cpu(0, (0, 2)), cpu(1, (1, 3)))),
            HostNode(id=1, memory_kib=4 * GIB, cpus=(cpu(2, (0, 2)), cpu(3, (1, 3)))),
        )
    )
    layout = plan(split, 1, GIB, taken={2: "web01"}, mode="node", nodeset="0", pinning="core")
    assert pins(layout) == [1]
    with pytest.raises(PlacementError) as refused:
        plan(split, 2, GIB, taken={2: "web01"}, mode="node", nodeset="0", pinning="core")
    assert str(refused.value) == (
        "guest db01: pinning core needs 2 free host cores for guest cell 0 on host node 0, 1 are free "
        "(others are dedicated to web01)"
    )


def test_a_guests_own_core_keeps_its_sibling_on_another_node_idle() -> None:
    # The same rule for the guest's own cores: CPU 0 (node 0) lists 2 (node 1) as its sibling. Under pinning core
    # the guest's cell 1 took CPU 2, so two of its vCPUs shared a physical core.
    def cpu(cpu_id: int, siblings: tuple[int, ...]) -> HostCpu:
        return HostCpu(id=cpu_id, socket_id=0, die_id=0, core_id=cpu_id, siblings=frozenset(siblings))

    split = HostTopology(
        nodes=(
            HostNode(id=0, memory_kib=4 * GIB, cpus=(cpu(0, (0, 2)), cpu(1, (1,)))),
            HostNode(id=1, memory_kib=4 * GIB, cpus=(cpu(2, (0, 2)), cpu(3, (3,)))),
        )
    )
    layout = plan(split, 2, 2 * GIB, mode="host", pinning="core")
    assert pins(layout) == [0, 3]
    # Held: its two cores and the idle sibling on node 1 (what other guests' plans and the capacity check avoid).
    assert held_cpus(layout.vcpu_pins or (), "core", split) == (0, 2, 3)
