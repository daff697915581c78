# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Build libvirt host capabilities XML for hosts of any shape, for tests and benchmarks.

Pure Python on purpose: it must not share code with the parser it feeds.  The output follows what
libvirt prints (https://libvirt.org/formatcaps.html), quirks included: no ``<memory>`` for a node
without memory, offline CPUs as bare ``<cpu id='N'/>``, a ``siblings`` list that names online
threads only, 4 KiB (base page) pools holding whatever memory the huge page pools do not.

Run ``python tests/support/hostgen.py`` from the collection root to regenerate the generated fixtures
in ``tests/unit/fixtures/capabilities/`` (the hand-written ones are left alone).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

__all__ = ["GIB", "FIXTURES", "HostShape", "build_capabilities", "cpu_layout", "write_fixtures"]

GIB = 1024 * 1024  # in KiB


@dataclass(frozen=True)
class HostShape:
    """A host's NUMA layout, from which its capabilities XML is built.

    CPU-bearing nodes come first, socket by socket; CPU-less memory nodes (CXL, HBM) follow, attached
    to sockets round robin.  Per-node values (``cores_per_node``, ``memory_kib``) are one value for
    every CPU node or a sequence with one value per CPU node.
    """

    sockets: int = 1
    nodes_per_socket: int = 1
    cores_per_node: int | Sequence[int] = 4
    threads: int = 1
    # 'adjacent': a core's threads get consecutive ids (POWER, some BIOSes: 0-3 is one SMT4 core);
    # 'far': every core's first thread is numbered before any second thread (Linux on x86: 0 and 64).
    sibling_numbering: str = "far"
    memory_kib: int | Sequence[int] = 16 * GIB
    # Host page sizes in KiB, the base page first; every node reports a pool for each.
    page_sizes_kib: Sequence[int] = (4, 2048, 1048576)
    # Huge pages reserved in every node that has memory: page size in KiB -> count.
    hugepages: dict[int, int] = field(default_factory=dict)
    # (local, same socket, other socket); None: no <distances> at all.
    distances: tuple[int, int, int] | None = (10, 12, 21)
    # The node ids in node order (sparse ids such as 0 and 8); default 0, 1, 2, ...
    node_ids: Sequence[int] | None = None
    # CPU-less memory nodes: the memory of each, in KiB.
    memory_nodes: Sequence[int] = ()
    # Distances from a memory node to the nodes of its own socket and to the others.
    memory_node_distances: tuple[int, int] = (22, 31)
    # Threads left online in every core (what ppc64_cpu sets with its smt option); None: all of them.
    online_threads: int | None = None
    # Further CPU ids taken offline.
    offline_cpus: frozenset[int] = frozenset()
    arch: str = "x86_64"
    model: str = "Icelake-Server"
    vendor: str = "Intel"
    comment: str = ""


@dataclass(frozen=True)
class _Cpu:
    id: int
    socket: int
    core: int
    core_index: int  # global, for grouping threads


def _per_node(value: int | Sequence[int], count: int, what: str) -> list[int]:
    if isinstance(value, int):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(f"{what}: {len(values)} values for {count} CPU nodes")
    return values


def _format_ids(ids: Iterable[int]) -> str:
    ordered = sorted(set(ids))
    parts: list[str] = []
    start = previous = None
    for value in [*ordered, None]:
        if value is not None and previous is not None and value == previous + 1:
            previous = value
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = value
    return ",".join(parts)


def cpu_layout(shape: HostShape) -> list[list[_Cpu]]:
    """The CPUs of every CPU node, in id order, numbered as ``shape.sibling_numbering`` says."""
    cpu_nodes = shape.sockets * shape.nodes_per_socket
    cores = _per_node(shape.cores_per_node, cpu_nodes, "cores_per_node")
    total_cores = sum(cores)
    layout: list[list[_Cpu]] = []
    core_index = 0
    core_in_socket = [0] * shape.sockets
    for node in range(cpu_nodes):
        socket = node // shape.nodes_per_socket
        cpus: list[_Cpu] = []
        for _unused in range(cores[node]):
            for thread in range(shape.threads):
                if shape.sibling_numbering == "adjacent":
                    cpu_id = core_index * shape.threads + thread
                elif shape.sibling_numbering == "far":
                    cpu_id = thread * total_cores + core_index
                else:
                    raise ValueError(f"sibling_numbering {shape.sibling_numbering!r}: use 'adjacent' or 'far'")
                cpus.append(_Cpu(cpu_id, socket, core_in_socket[socket], core_index))
            core_index += 1
            core_in_socket[socket] += 1
        layout.append(sorted(cpus, key=lambda cpu: cpu.id))
    return layout


def _offline(shape: HostShape, cpu: _Cpu, layout: list[list[_Cpu]]) -> bool:
    if cpu.id in shape.offline_cpus:
        return True
    if shape.online_threads is None:
        return False
    # The thread's rank within its core, whatever the numbering.
    threads = sorted(other.id for node in layout for other in node if other.core_index == cpu.core_index)
    return threads.index(cpu.id) >= shape.online_threads


def _pages(shape: HostShape, memory_kib: int) -> list[tuple[int, int]]:
    base, *huge = shape.page_sizes_kib
    counts = {size: (shape.hugepages.get(size, 0) if memory_kib else 0) for size in huge}
    reserved = sum(size * count for size, count in counts.items())
    if reserved > memory_kib:
        raise ValueError(f"huge pages ({reserved} KiB) exceed the node's memory ({memory_kib} KiB)")
    return [(base, (memory_kib - reserved) // base), *counts.items()]


def build_capabilities(shape: HostShape) -> str:
    """The capabilities XML of ``shape``, as ``virsh capabilities`` would print it."""
    layout = cpu_layout(shape)
    cpu_nodes = len(layout)
    memory = _per_node(shape.memory_kib, cpu_nodes, "memory_kib") + list(shape.memory_nodes)
    total_nodes = len(memory)
    node_ids = list(shape.node_ids) if shape.node_ids is not None else list(range(total_nodes))
    if len(node_ids) != total_nodes or len(set(node_ids)) != total_nodes:
        raise ValueError(f"node_ids {node_ids}: need {total_nodes} distinct ids")
    socket_of = [index // shape.nodes_per_socket for index in range(cpu_nodes)]
    socket_of += [index % shape.sockets for index in range(len(shape.memory_nodes))]

    def distance(a: int, b: int) -> int:
        local, same, remote = shape.distances or (10, 20, 20)
        if a == b:
            return local
        if a >= cpu_nodes or b >= cpu_nodes:
            near, far = shape.memory_node_distances
            return near if socket_of[a] == socket_of[b] else far
        return same if socket_of[a] == socket_of[b] else remote

    first = layout[0] if layout else []
    lines: list[str] = []
    if shape.comment:
        if "--" in shape.comment:
            raise ValueError(f"comment {shape.comment!r}: XML comments cannot hold '--'")
        lines.append(f"<!-- {shape.comment} -->")
    lines += [
        "<capabilities>",
        "",
        "  <host>",
        "    <uuid>4c4c4544-0042-3510-8052-b4c04f4e3432</uuid>",
        "    <cpu>",
        f"      <arch>{shape.arch}</arch>",
        f"      <model>{shape.model}</model>",
        f"      <vendor>{shape.vendor}</vendor>",
        # libvirt's host <topology> counts sockets per NUMA node, not per host
        # (https://libvirt.org/formatcaps.html#host-capabilities).
        f"      <topology sockets='1' dies='1' cores='{len(first) // shape.threads}' threads='{shape.threads}'/>",
    ]
    lines += [f"      <pages unit='KiB' size='{size}'/>" for size in shape.page_sizes_kib]
    lines += [
        "    </cpu>",
        "    <power_management>",
        "      <suspend_mem/>",
        "    </power_management>",
        "    <iommu support='yes'/>",
        "    <migration_features>",
        "      <live/>",
        "      <uri_transports>",
        "        <uri_transport>tcp</uri_transport>",
        "        <uri_transport>rdma</uri_transport>",
        "      </uri_transports>",
        "    </migration_features>",
        "    <topology>",
        f"      <cells num='{total_nodes}'>",
    ]
    for index, node_id in enumerate(node_ids):
        lines.append(f"        <cell id='{node_id}'>")
        if memory[index]:
            lines.append(f"          <memory unit='KiB'>{memory[index]}</memory>")
        lines += [
            f"          <pages unit='KiB' size='{size}'>{count}</pages>" for size, count in _pages(shape, memory[index])
        ]
        if shape.distances is not None:
            lines.append("          <distances>")
            lines += [
                f"            <sibling id='{other_id}' value='{distance(index, other)}'/>"
                for other, other_id in enumerate(node_ids)
            ]
            lines.append("          </distances>")
        cpus = layout[index] if index < cpu_nodes else []
        if not cpus:
            lines.append("          <cpus num='0'/>")
        else:
            lines.append(f"          <cpus num='{len(cpus)}'>")
            for cpu in cpus:
                if _offline(shape, cpu, layout):
                    lines.append(f"            <cpu id='{cpu.id}'/>")
                    continue
                siblings = _format_ids(
                    other.id
                    for other in cpus
                    if other.core_index == cpu.core_index and not _offline(shape, other, layout)
                )
                lines.append(
                    f"            <cpu id='{cpu.id}' socket_id='{cpu.socket}' die_id='0' core_id='{cpu.core}'"
                    f" siblings='{siblings}'/>"
                )
            lines.append("          </cpus>")
        lines.append("        </cell>")
    lines += [
        "      </cells>",
        "    </topology>",
        "    <secmodel>",
        "      <model>none</model>",
        "      <doi>0</doi>",
        "    </secmodel>",
        "  </host>",
        "",
        "  <guest>",
        "    <os_type>hvm</os_type>",
        f"    <arch name='{shape.arch}'>",
        "      <wordsize>64</wordsize>",
        f"      <emulator>/usr/bin/qemu-system-{'ppc64' if shape.arch.startswith('ppc') else shape.arch}</emulator>",
        "      <domain type='qemu'/>",
        "      <domain type='kvm'/>",
        "    </arch>",
        "  </guest>",
        "",
        "</capabilities>",
        "",
    ]
    return "\n".join(lines)


class _Processor(TypedDict):
    """The HostShape fields that one processor family sets."""

    arch: str
    model: str
    vendor: str
    page_sizes_kib: Sequence[int]


_POWER9: _Processor = {"arch": "ppc64le", "model": "POWER9", "vendor": "IBM", "page_sizes_kib": (64, 2048, 1048576)}
# POWER8 runs the hash MMU: 16 MiB and 16 GiB huge pages.
_POWER8: _Processor = {"arch": "ppc64le", "model": "POWER8", "vendor": "IBM", "page_sizes_kib": (64, 16384, 16777216)}

FIXTURES: dict[str, HostShape] = {
    "sparse-ids": HostShape(
        sockets=2,
        cores_per_node=4,
        threads=4,
        sibling_numbering="adjacent",
        memory_kib=64 * GIB,
        distances=(10, 20, 40),
        node_ids=(0, 8),
        comment="2-socket POWER9: node ids 0 and 8 (one per chip), SMT4, distances 10/40",
        **_POWER9,
    ),
    "unequal-nodes": HostShape(
        sockets=1,
        nodes_per_socket=3,
        cores_per_node=(8, 4, 6),
        threads=2,
        memory_kib=(64 * GIB, 16 * GIB, 32 * GIB),
        hugepages={2048: 512},
        distances=(10, 11, 11),
        comment="1 socket, 3 nodes of 8, 4 and 6 SMT2 cores with 64, 16 and 32 GiB",
    ),
    "memoryless-node": HostShape(
        sockets=1,
        nodes_per_socket=4,
        cores_per_node=8,
        threads=2,
        memory_kib=(64 * GIB, 0, 64 * GIB, 0),
        hugepages={2048: 1024},
        distances=(10, 16, 16),
        model="EPYC-IBPB",
        vendor="AMD",
        comment="Threadripper 2990WX-like: 4 nodes of 8 SMT2 cores, nodes 1 and 3 have CPUs but no memory",
    ),
    "smt4-power": HostShape(
        sockets=2,
        cores_per_node=6,
        threads=4,
        sibling_numbering="adjacent",
        memory_kib=128 * GIB,
        hugepages={2048: 2048, 1048576: 8},
        distances=(10, 20, 40),
        comment="2-node POWER9, 6 SMT4 cores per node, threads adjacent (0-3 is one core)",
        **_POWER9,
    ),
    "smt8-power": HostShape(
        sockets=2,
        cores_per_node=4,
        threads=8,
        sibling_numbering="adjacent",
        memory_kib=128 * GIB,
        hugepages={16384: 256},
        distances=(10, 20, 40),
        comment="2-node POWER8, 4 SMT8 cores per node, threads adjacent (0-7 is one core)",
        **_POWER8,
    ),
    "smt2-far-siblings": HostShape(
        sockets=2,
        cores_per_node=32,
        threads=2,
        memory_kib=128 * GIB,
        hugepages={2048: 2048, 1048576: 16},
        distances=(10, 20, 21),
        comment="2-socket x86, 32 SMT2 cores per socket, sibling threads numbered far apart (0 and 64)",
    ),
    "offline-cpus": HostShape(
        sockets=2,
        cores_per_node=4,
        threads=8,
        sibling_numbering="adjacent",
        memory_kib=64 * GIB,
        distances=(10, 20, 40),
        online_threads=1,
        offline_cpus=frozenset({56}),
        comment="POWER8 KVM host with SMT switched off (ppc64_cpu), and CPU 56 (a core's only online thread) offline",
        **_POWER8,
    ),
    "no-distances": HostShape(
        sockets=2,
        cores_per_node=4,
        threads=2,
        sibling_numbering="adjacent",
        memory_kib=32 * GIB,
        distances=None,
        comment="2 nodes, no <distances> (libvirt built without numactl, or the test driver); threads adjacent",
    ),
    "large-16node-1024cpu": HostShape(
        sockets=2,
        nodes_per_socket=8,
        cores_per_node=32,
        threads=2,
        memory_kib=64 * GIB,
        hugepages={2048: 4096, 1048576: 16},
        distances=(10, 12, 32),
        model="EPYC-Genoa",
        vendor="AMD",
        comment="16 nodes: 2 sockets x 8 nodes x 32 SMT2 cores, siblings c and c+512, 64 GiB per node",
    ),
}


def write_fixtures(directory: Path) -> list[Path]:
    """Write every generated fixture to ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, shape in FIXTURES.items():
        path = directory / f"{name}.xml"
        path.write_text(build_capabilities(shape), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "capabilities"
    for written_path in write_fixtures(target):
        sys.stdout.write(f"{written_path}\n")
