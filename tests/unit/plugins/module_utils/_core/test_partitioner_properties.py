# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Property tests of the partitioner over random hosts, specs and guests.

For every generated case, ``compute_layout`` either returns a layout for which every rule of
docs/partitioning.md holds, or refuses with a ``SpecError``, ``PlacementError`` or ``TopologyError`` naming the
guest.  Any other exception (IndexError, KeyError, ZeroDivisionError, StopIteration...) is a bug.

The number of examples scales with ``HYPOTHESIS_PROFILE``: ``quick`` (a quarter), unset or ``default``,
``long`` (12.5 times: 7500 examples for the main property), or a number to multiply by.  The run's
seed is random unless ``HYPOTHESIS_SEED`` is set; it is printed with every falsifying example.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass
from math import gcd, lcm
from typing import Any

from hypothesis import HealthCheck, assume, event, given, note, seed, settings, target
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    PlacementError,
    SpecError,
    TopologyError,
    VnumaError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import even_split, vcpus_to_enable
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import (
    DISTRIBUTIONS,
    EMULATOR_PINS,
    MEMORY_MODES,
    MEMORY_SPLITS,
    MODES,
    PINNINGS,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCpu, HostNode, HostTopology
from ansible_collections.vnuma.libvirt.tests.support.layouts import cell_of_vcpu, online_at_boot

MIB = 1024
GIB = 1024 * 1024
GUEST = "db01"
# Auto mode is node mode on the nodes it chose (tests/unit/plugins/module_utils/_core/test_auto.py); laid out
# without a choice it is refused.
LAID_OUT_MODES = tuple(mode for mode in MODES if mode != "auto")

_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
_SCALE = {"quick": 0.25, "default": 1.0, "ci": 1.0, "long": 12.5}.get(_PROFILE)
if _SCALE is None:
    try:
        _SCALE = float(_PROFILE)
    except ValueError:
        _SCALE = 1.0
SEED = int(os.environ.get("HYPOTHESIS_SEED") or random.SystemRandom().randrange(2**32))


def scaled(examples: int) -> Any:
    """Settings for a property test: ``examples`` scaled by the profile, no deadline, the run's seed."""

    def decorate(test: Any) -> Any:
        configured = settings(
            max_examples=max(1, round(examples * _SCALE)),
            deadline=None,
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )(test)
        return seed(SEED)(configured)

    return decorate


def note_seed() -> None:
    note(f"HYPOTHESIS_SEED={SEED} (profile {_PROFILE}, scale {_SCALE})")


# -- hosts -----------------------------------------------------------------------------------------------

# Page sizes of real hosts, the base page first: x86_64, POWER9 (radix), POWER8 (hash), no huge pages.
PAGE_SETS = ((4, 2048, 1048576), (64, 2048, 1048576), (64, 16384, 16777216), (4,))
NICE_MEMORY = (256 * MIB, GIB, 4 * GIB, 8 * GIB, 16 * GIB, 64 * GIB)


def sometimes(times: int) -> st.SearchStrategy[bool]:
    """True once in ``times`` draws (``integers(0, n) == 0`` would be True far more often: hypothesis
    favours boundary values)."""
    return st.sampled_from([False] * (times - 1) + [True])


def uniform_in(low: int, high: int) -> st.SearchStrategy[int]:
    """An integer of low..high, drawn evenly (``integers`` favours the bounds)."""
    return st.sampled_from(range(low, high + 1))


@st.composite
def hosts(draw: st.DrawFn, memoryless: bool = False) -> HostTopology:
    """A host of a real shape; see the module docstring of _core.topology for the shapes covered.

    ``memoryless`` asks for at least two nodes, some of them with CPUs and no memory.
    """
    count = draw(st.integers(2 if memoryless else 1, 8))
    id_kind = draw(st.sampled_from(["dense", "stride", "random"]))
    if id_kind == "dense":
        ids = list(range(count))
    elif id_kind == "stride":
        step = draw(st.sampled_from([2, 4, 8]))
        ids = [index * step for index in range(count)]
    else:
        ids = sorted(draw(st.sets(st.integers(0, 40), min_size=count, max_size=count)))

    sockets = draw(st.integers(1, count))
    socket_of = [index * sockets // count for index in range(count)]
    if draw(st.booleans()):
        socket_of = draw(st.permutations(socket_of))

    # Most hosts have CPUs and memory in every node; some have CPU-less (CXL, HBM) or memory-less nodes.
    odd_kinds = draw(st.sampled_from([["cpu"], ["cpu", "memory-only"], ["cpu", "memoryless"], ["cpu"] * 2]))
    if memoryless:
        odd_kinds = ["cpu", "memoryless"]
    kinds = [draw(st.sampled_from(odd_kinds)) for _unused in range(count)]
    if memoryless:
        # the last node often: groups start from the lowest ids, so it tends to be left in a group of its own
        kinds[draw(st.sampled_from([count - 1, count - 1, draw(uniform_in(1, count - 1))]))] = "memoryless"
    if draw(st.booleans()):
        kinds[0] = "cpu"  # most real hosts: node 0 has CPUs and memory
    uniform = not draw(sometimes(4))
    width = draw(st.sampled_from([1, 2, 4, 8]))
    threads = [width if uniform else draw(st.sampled_from([1, 2, 4, 8])) for _unused in range(count)]
    cores = [draw(st.integers(1, 6)) if kind != "memory-only" else 0 for kind in kinds]

    # The host's core order: node by node, or alternating over the nodes (core k of every node in turn).
    if draw(st.booleans()):
        order = [(node, core) for node in range(count) for core in range(cores[node])]
    else:
        order = [(node, core) for core in range(max(cores)) for node in range(count) if core < cores[node]]
    adjacent = draw(st.booleans())
    total_cores = len(order)
    thread_ids: dict[tuple[int, int], list[int]] = {}
    next_id = 0
    for position, (node, core) in enumerate(order):
        if adjacent:  # a core's threads numbered next to each other: 8,9
            thread_ids[(node, core)] = list(range(next_id, next_id + threads[node]))
            next_id += threads[node]
        else:  # every core's first thread before any second thread: 8, 8 + total cores
            thread_ids[(node, core)] = [position + thread * total_cores for thread in range(threads[node])]
    every_cpu = sorted(cpu for ids_ in thread_ids.values() for cpu in ids_)
    offline: set[int] = set()
    if every_cpu and draw(sometimes(4)):
        offline = draw(st.sets(st.sampled_from(every_cpu), max_size=max(1, len(every_cpu) // 3)))

    page_sizes = draw(st.sampled_from(PAGE_SETS))
    # huge page pools: none, the same share of every node, or a random share per node
    pool_kind = draw(st.sampled_from(["none", "same", "random"]))
    pool_share = draw(st.integers(1, 4))
    distance_kind = draw(st.sampled_from(["absent", "socket", "symmetric", "asymmetric", "partial"]))
    near, far = draw(st.integers(11, 20)), draw(st.integers(21, 40))
    table: dict[tuple[int, int], int] = {}
    for a in range(count):
        for b in range(count):
            if a == b:
                table[(a, b)] = 10
            elif distance_kind == "socket":
                table[(a, b)] = near if socket_of[a] == socket_of[b] else far
            elif distance_kind in ("symmetric", "partial"):
                table[(a, b)] = table[(b, a)] if (b, a) in table else draw(st.integers(11, 255))
            else:
                table[(a, b)] = draw(st.integers(11, 255))
    if distance_kind == "partial":
        dropped = draw(st.sets(st.sampled_from(sorted(table)), max_size=len(table)))
        table = {pair: value for pair, value in table.items() if pair not in dropped}

    nodes = []
    for index in range(count):
        cpus = []
        for core in range(cores[index]):
            online = frozenset(cpu for cpu in thread_ids[(index, core)] if cpu not in offline)
            for cpu in thread_ids[(index, core)]:
                if cpu in offline:
                    cpus.append(HostCpu(id=cpu))
                else:
                    cpus.append(HostCpu(id=cpu, socket_id=socket_of[index], die_id=0, core_id=core, siblings=online))
        if kinds[index] == "memoryless":
            memory = 0
        else:
            memory = draw(st.one_of(st.sampled_from(NICE_MEMORY), uniform_in(1, 65536).map(lambda m: m * MIB)))
        share = {"none": 0, "same": pool_share, "random": draw(st.integers(0, 4))}[pool_kind]
        pools = []
        left = memory
        for size in page_sizes[1:]:
            # a quarter, half, three quarters or all of what is left, in pages of this size
            pages = (left // size) * share // 4
            left -= pages * size
            pools.append((size, pages))
        pages_ = ((page_sizes[0], left // page_sizes[0]), *pools)
        distances = (
            ()
            if distance_kind == "absent"
            else tuple((ids[b], table[(index, b)]) for b in range(count) if (index, b) in table)
        )
        nodes.append(
            HostNode(
                id=ids[index],
                memory_kib=memory,
                cpus=tuple(sorted(cpus, key=lambda cpu: cpu.id)),
                pages=pages_,
                distances=distances,
            )
        )
    if draw(st.booleans()):
        nodes.reverse()  # HostTopology sorts its nodes
    return HostTopology(nodes=tuple(nodes), page_sizes_kib=page_sizes)


@st.composite
def nodesets(draw: st.DrawFn, topology: HostTopology) -> str:
    """libvirt nodeset syntax over the host's ids: lists, ranges, ``^`` exclusions, sometimes a missing id."""
    ids = list(topology.node_ids)
    chosen = sorted(draw(st.sets(st.sampled_from(ids), min_size=1)))
    if draw(sometimes(10)):
        chosen = sorted({*chosen, draw(st.integers(0, 64))})  # maybe a node the host does not have
    style = draw(st.sampled_from(["list", "canonical", "exclusions", "exclusions-first"]))
    if style == "list":
        return ",".join(map(str, chosen))
    if style == "canonical":
        return format_cpuset(chosen)
    low, high = chosen[0], chosen[-1]
    excluded = [f"^{node}" for node in range(low, high + 1) if node not in chosen]
    span = f"{low}-{high}" if high > low else str(low)
    # libvirt applies the items left to right: exclusions written before the range are undone by it
    items = [span, *excluded] if style == "exclusions" else [*excluded, span]
    return ",".join(items)


@dataclass(frozen=True)
class Case:
    topology: HostTopology
    options: dict[str, Any]
    guest: GuestShape
    taken: dict[int, str]

    @property
    def spec(self) -> VnumaSpec:
        return VnumaSpec.from_mapping(self.options)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    topology = draw(hosts())
    nodes = len(topology.node_ids)
    options: dict[str, Any] = {
        "mode": draw(st.sampled_from(LAID_OUT_MODES)),
        "distribution": draw(st.sampled_from(DISTRIBUTIONS)),
        "pinning": draw(st.sampled_from(PINNINGS)),
        "memory_mode": draw(st.sampled_from(MEMORY_MODES)),
        "memory_split": draw(st.sampled_from(MEMORY_SPLITS)),
        "emulator_pin": draw(st.sampled_from(EMULATOR_PINS)),
        "cpuless_cells": draw(st.booleans()),
    }
    # The partition belongs to node mode: host mode refuses it (test_host_mode_refuses_a_partition).
    if options["mode"] == "node" and draw(st.booleans()):
        options["nodeset"] = draw(nodesets(topology))
    if options["mode"] == "node" and draw(sometimes(3)):
        options["cells"] = draw(st.integers(1, 2 * nodes))
    page = None
    if draw(sometimes(4)):
        offered = topology.page_sizes_kib[1:]
        if offered and not draw(sometimes(10)):
            page = draw(st.sampled_from(offered))
        else:  # the base page, or a size the host may lack
            page = draw(st.sampled_from([topology.page_sizes_kib[0], 16384, 1048576]))
        options["hugepages"] = page

    multiple_of_8 = uniform_in(1, 16).map(lambda k: 8 * k)
    if options["distribution"] == "siblings" and not draw(sometimes(5)):
        vcpus = draw(multiple_of_8)  # a multiple of every SMT width
    else:
        vcpus = draw(st.one_of(uniform_in(1, 16), multiple_of_8, uniform_in(1, 128)))
    host_memory = sum(node.memory_kib for node in topology.nodes)
    if page and not draw(sometimes(10)):
        memory = draw(st.integers(1, 16)) * lcm(MIB, page)
    elif host_memory >= 8 * MIB and draw(sometimes(4)):
        # near the host's capacity, where the capacity checks matter: 1/8 to 10/8 of all its memory
        memory = host_memory * draw(uniform_in(1, 10)) // 8 // MIB * MIB
    else:
        memory = draw(st.one_of(uniform_in(1, 1024), uniform_in(1, 4096), uniform_in(1, 64).map(lambda g: g * 1024)))
        memory *= MIB
        if draw(sometimes(20)):
            memory += 4  # not a whole MiB
    in_spec = draw(st.booleans())
    if in_spec:
        options["memory"] = memory
    if draw(sometimes(4)):
        options["max_memory"] = max(MIB, memory + draw(st.integers(-4, 64)) * 128 * MIB)
        options["memory_slots"] = draw(st.integers(1, 256))
    current = draw(st.one_of(st.none(), st.integers(1, vcpus)))
    if current and options["distribution"] == "siblings" and vcpus % 8 == 0 and not draw(sometimes(5)):
        current = max(8, current // 8 * 8)  # whole guest cores of any SMT width
    guest = GuestShape(
        vcpus=vcpus,
        memory_kib=None if in_spec and draw(st.booleans()) else memory,
        current_vcpus=current,
        name=GUEST,
    )
    taken: dict[int, str] = {}
    online = sorted(topology.cpu_node)
    if online and draw(sometimes(3)):
        if draw(st.booleans()):
            chosen = draw(st.sets(st.sampled_from(online), max_size=max(1, len(online) // 2)))
        else:  # the lowest CPUs, as another guest placed first would hold: often part of a core only
            chosen = set(online[: draw(uniform_in(1, max(1, len(online) // 2)))])
        for cpu in sorted(chosen):
            taken[cpu] = draw(st.sampled_from(["web01", "web02"]))
    return Case(topology, options, guest, taken)


# -- the invariants ----------------------------------------------------------------------------------------


def symmetric(topology: HostTopology, a: int, b: int) -> int:
    return min(topology.distance(a, b), topology.distance(b, a))


def selected_nodes(topology: HostTopology, spec: VnumaSpec) -> tuple[int, ...]:
    if spec.mode == "host" or spec.nodes is None:
        return topology.cpu_node_ids
    return tuple(sorted(spec.nodes))


def reference_groups(topology: HostTopology, nodes: tuple[int, ...], count: int) -> list[tuple[int, ...]]:
    """docs/partitioning.md §2, "C smaller": seed = lowest unassigned node; then, one at a time,
    the node on the seed's socket, then with the smallest summed distance to the group, then the lowest id."""
    remaining = list(nodes)
    groups = []
    for size in even_split(len(nodes), count):
        seed_node = remaining.pop(0)
        socket = topology.socket_of(seed_node)
        group = [seed_node]
        while len(group) < size:
            best = min(
                remaining,
                key=lambda node: (
                    not (socket is not None and topology.socket_of(node) == socket),
                    sum(symmetric(topology, member, node) for member in group),
                    node,
                ),
            )
            remaining.remove(best)
            group.append(best)
        groups.append(tuple(sorted(group)))
    return groups


def host_core_of(topology: HostTopology) -> dict[int, tuple[int, ...]]:
    """Online CPU -> its core's online threads, from the CPUs' sibling lists (not from HostNode.cores)."""
    online = set(topology.cpu_node)
    return {
        cpu.id: tuple(sorted((cpu.siblings & online) or {cpu.id}))
        for node in topology.nodes
        for cpu in node.cpus
        if cpu.online
    }


def smt_width(topology: HostTopology, node: int) -> int:
    """The widest core of a node (0 without online CPUs), from the CPUs' sibling lists."""
    core_of = host_core_of(topology)
    return max((len(core_of[cpu]) for cpu in topology.node(node).usable_cpus), default=0)


def check_places(topology: HostTopology, spec: VnumaSpec, layout: Layout) -> None:
    selected = selected_nodes(topology, spec)
    places = [cell.host_nodes for cell in layout.cells]
    for nodes in places:
        assert nodes and list(nodes) == sorted(set(nodes)) and set(nodes) <= set(selected)
    if spec.mode == "host":
        # one cell per CPU-bearing node, in id order; the partition is ignored
        assert places == [(node,) for node in topology.cpu_node_ids]
        return
    count = spec.cells or len(selected)
    assert len(places) == count
    if count == len(selected):
        assert places == [(node,) for node in selected]
    elif count > len(selected):
        # spread: consecutive cells per node, counts differ by at most one, the first nodes get the extra
        assert all(len(nodes) == 1 for nodes in places)
        sequence = [nodes[0] for nodes in places]
        assert sequence == sorted(sequence)
        assert [sequence.count(node) for node in selected] == even_split(count, len(selected))
    else:
        # grouped: disjoint, covering N, sizes differ by at most one, nearest first
        assert sorted(node for nodes in places for node in nodes) == list(selected)
        sizes = [len(nodes) for nodes in places]
        assert max(sizes) - min(sizes) <= 1
        assert places == reference_groups(topology, selected, count)


def check_vcpus(topology: HostTopology, spec: VnumaSpec, layout: Layout) -> list[int]:
    """Cells cover 0..V-1 once; each distribution's rule; returns the CPU-bearing cells."""
    vcpus = layout.vcpus
    flat = [vcpu for cell in layout.cells for vcpu in cell.vcpus]
    assert sorted(flat) == list(range(vcpus)), "each vCPU in exactly one cell"
    for cell in layout.cells:
        assert list(cell.vcpus) == sorted(cell.vcpus)
    cpu_cells = [c.id for c in layout.cells if any(topology.node(n).has_cpus for n in c.host_nodes)]
    for cell in layout.cells:
        if cell.id not in cpu_cells:
            assert not cell.vcpus, "CPU-less cells get no vCPUs"
        elif not spec.cpuless_cells:
            assert cell.vcpus, "a cell with host CPUs is left without vCPUs only under cpuless_cells"
    threads = layout.topology.threads
    if spec.distribution == "siblings":
        widths = {smt_width(topology, n) for c in cpu_cells for n in layout.cells[c].host_nodes}
        widths.discard(0)
        assert widths == {threads}, "guest threads = the host's SMT width"
    else:
        assert threads == 1
    cell_of = cell_of_vcpu(layout)
    blocks = [list(layout.cells[c].vcpus) for c in cpu_cells]
    if spec.distribution in ("contiguous", "siblings"):
        assert [vcpu for block in blocks for vcpu in block] == list(range(vcpus)), "blocks in id order"
        assert [len(block) for block in blocks] == [threads * n for n in even_split(vcpus // threads, len(blocks))]
    elif spec.distribution == "interleave":
        assert all(cell_of[vcpu] == cpu_cells[vcpu % len(cpu_cells)] for vcpu in range(vcpus))
    else:
        # round-robin: vCPU k -> the cell behind the host CPU at position floor(k*H/V), CPUs in id order;
        # a node shared by several cells is cut in consecutive slices.
        sharing = Counter(layout.cells[c].host_nodes for c in cpu_cells)
        seen: Counter[tuple[int, ...]] = Counter()
        owner: dict[int, int] = {}
        for c in cpu_cells:
            nodes = layout.cells[c].host_nodes
            for node in nodes:
                cpus = topology.node(node).usable_cpus
                sizes = even_split(len(cpus), sharing[nodes])
                start = sum(sizes[: seen[nodes]])
                owner.update(dict.fromkeys(cpus[start : start + sizes[seen[nodes]]], c))
            seen[nodes] += 1
        host_cpus = sorted(owner)
        assert all(cell_of[k] == owner[host_cpus[k * len(host_cpus) // vcpus]] for k in range(vcpus))
    return cpu_cells


def check_topology(layout: Layout) -> None:
    t = layout.topology
    vcpus = layout.vcpus
    assert t.sockets * t.dies * t.cores * t.threads == vcpus
    assert t.dies == 1
    size = t.cores * t.threads
    cell_of = cell_of_vcpu(layout)
    for socket in range(t.sockets):
        assert len({cell_of[v] for v in range(socket * size, (socket + 1) * size)}) == 1, "a socket spans cells"
    changes = [p for p in range(1, vcpus) if cell_of[p] != cell_of[p - 1]]
    assert size == gcd(vcpus, *changes), "the fewest sockets that keep each socket in one cell"


def check_memory(topology: HostTopology, spec: VnumaSpec, guest: GuestShape, layout: Layout) -> None:
    page = spec.hugepages_kib
    granule = lcm(MIB, page) if page else MIB
    total = spec.memory_kib or guest.memory_kib
    memory = [cell.memory_kib for cell in layout.cells]
    assert sum(memory) == total == layout.memory_kib
    assert all(m > 0 and m % granule == 0 for m in memory)
    units = total // granule
    if spec.memory_split == "even":
        assert [m // granule for m in memory] == even_split(units, len(memory))
    else:
        for cell, m in zip(layout.cells, memory, strict=True):
            share = units * len(cell.vcpus) // layout.vcpus
            assert share <= m // granule <= share + 1

    def capacity(node: int) -> int:
        return topology.node(node).page_pool_kib(page) if page else topology.node(node).memory_kib

    for cell in layout.cells:
        bearing = tuple(node for node in cell.host_nodes if capacity(node) > 0)
        if not bearing:
            # CPU nodes without any memory: the nearest host node with memory (or the pool), then the lowest id,
            # wherever it is (docs/partitioning.md §5).  Nodes with memory but no pool are refused.
            assert all(topology.node(node).memory_kib == 0 for node in cell.host_nodes)
            candidates = [node for node in topology.node_ids if capacity(node) > 0]
            nearest = min(
                candidates, key=lambda other: (min(symmetric(topology, n, other) for n in cell.host_nodes), other)
            )
            bearing = (nearest,)
        assert all(capacity(node) > 0 for node in cell.memory_nodes), "every memory node has memory (or a pool)"
        if spec.memory_mode == "preferred":
            assert cell.memory_nodes == bearing[:1]
        else:
            assert cell.memory_nodes == bearing
    if spec.memory_mode != "preferred":
        need: Counter[tuple[int, ...]] = Counter()
        for cell in layout.cells:
            need[cell.memory_nodes] += cell.memory_kib
        # Hall's condition: every set of bindings fits in the union of their nodes (sets may overlap when a
        # memory-less cell binds to the nearest node of another cell's group).
        bindings = list(need)
        subsets = range(1, 2 ** len(bindings)) if len(bindings) <= 10 else [1 << i for i in range(len(bindings))]
        for mask in subsets:
            chosen = [nodes for index, nodes in enumerate(bindings) if mask >> index & 1]
            union = set().union(*chosen)
            assert sum(need[nodes] for nodes in chosen) <= sum(capacity(n) for n in union), "strict binding fails"
    assert layout.numatune_mode == spec.memory_mode
    if spec.memory_mode == "preferred":
        assert layout.numatune_nodes == layout.cells[0].memory_nodes
    else:
        assert layout.numatune_nodes == tuple(sorted({n for cell in layout.cells for n in cell.memory_nodes}))
    # within the selected nodes, but for the nearest node serving memory-less CPU nodes
    outside = set(layout.numatune_nodes) - set(selected_nodes(topology, spec))
    assert all(
        all(topology.node(node).memory_kib == 0 for node in cell.host_nodes)
        for cell in layout.cells
        if set(cell.memory_nodes) & outside
    )


def check_distances(topology: HostTopology, layout: Layout) -> None:
    cells = layout.cells
    for a in cells:
        assert len(a.distances) == len(cells)
        for b in cells:
            value = a.distances[b.id]
            if a.id == b.id:
                assert value == 10
                continue
            assert 11 <= value <= 255
            assert value == b.distances[a.id], "distances are symmetric"
            if a.host_nodes == b.host_nodes:
                assert value == 11, "two cells on one host node"
            else:
                nearest = min(symmetric(topology, x, y) for x in a.host_nodes for y in b.host_nodes)
                assert value == max(11, nearest)


def check_pins(topology: HostTopology, spec: VnumaSpec, taken: dict[int, str], layout: Layout) -> None:
    pins = layout.vcpu_pins
    threads = layout.topology.threads
    if spec.pinning == "none":
        assert pins is None
    else:
        assert pins is not None and len(pins) == layout.vcpus
    held: set[int] = set()
    if spec.pinning == "node":
        for cell in layout.cells:
            usable = tuple(sorted(c for n in cell.host_nodes for c in topology.node(n).usable_cpus if c not in taken))
            for vcpu in cell.vcpus:
                assert pins[vcpu] == usable and usable
    elif spec.pinning in ("core", "thread"):
        core_of = host_core_of(topology)
        whole_cores = spec.pinning == "core" or threads > 1
        assert all(len(pin) == 1 for pin in pins)
        cpus = [pin[0] for pin in pins]
        assert len(set(cpus)) == len(cpus), "dedicated pins are pairwise distinct"
        assert not set(cpus) & set(taken), "dedicated pins avoid other guests' CPUs"
        owner_core: dict[tuple[int, ...], tuple[int, ...]] = {}
        for cell in layout.cells:
            usable = {c for n in cell.host_nodes for c in topology.node(n).usable_cpus}
            for index in range(0, len(cell.vcpus), threads):
                guest_core = cell.vcpus[index : index + threads]
                host_cores = {core_of[cpus[vcpu]] for vcpu in guest_core}
                assert all(cpus[vcpu] in usable for vcpu in guest_core), "pins inside the cell's host nodes"
                # under siblings a guest core lands on the sibling threads of one host core
                assert len(host_cores) == 1
                host_core = next(iter(host_cores))
                assert not set(host_core) & set(taken), "a host core shared with another guest"
                if whole_cores:
                    assert owner_core.setdefault(host_core, guest_core) == guest_core, "a host core shared"
                    held.update(host_core)
        held.update(cpus)
    if spec.emulator_pin == "none":
        assert layout.emulator_pins is None
    else:
        selected = selected_nodes(topology, spec)
        free = sorted(c for n in selected for c in topology.node(n).usable_cpus if c not in taken and c not in held)
        assert layout.emulator_pins == tuple(free) and free


def check_enable_order(layout: Layout, guest: GuestShape, cpu_cells: list[int], unit_check: int) -> None:
    order = list(layout.enable_order)
    threads = layout.topology.threads
    vcpus = layout.vcpus
    assert sorted(order) == list(range(vcpus))
    assert order[:threads] == list(range(threads)), "vCPU 0's core comes first"
    cell_of = cell_of_vcpu(layout)
    for index in range(0, vcpus, threads):
        unit = order[index : index + threads]
        assert unit == list(range(unit[0], unit[0] + threads)) and unit[0] % threads == 0, "whole guest cores"
    for cell in layout.cells:
        assert [v for v in order if cell_of[v] == cell.id] == list(cell.vcpus), "each cell in ascending order"
    # Balance, at every prefix of whole guest cores: a cell's online share never exceeds the share another
    # cell that still has offline vCPUs would reach with one more guest core:
    #     online_i / size_i <= (online_j + T) / size_j
    # except for the cell of vCPU 0 while it holds only that first core (it is placed before any choice).
    sizes = {c: len(layout.cells[c].vcpus) for c in cpu_cells if layout.cells[c].vcpus}
    online = dict.fromkeys(sizes, 0)
    first = cell_of[0]
    for index in range(0, vcpus, threads):
        online[cell_of[order[index]]] += threads
        for i in sizes:
            if i == first and online[i] == threads:
                continue
            for j in sizes:
                if online[j] < sizes[j]:
                    assert online[i] * sizes[j] <= (online[j] + threads) * sizes[i], (index, i, j, online)
    assert layout.current_vcpus == (guest.current_vcpus or vcpus)
    assert layout.current_vcpus % threads == 0, "whole guest cores online at boot"
    assert online_at_boot(layout) == tuple(sorted(order[: layout.current_vcpus]))
    # a live hot-add from a prefix of the order continues the same order
    prefix = threads * (1 + unit_check % (vcpus // threads))
    assert vcpus_to_enable(layout, order[:prefix], vcpus) == tuple(order[prefix:])


def check_layout(case: Case, layout: Layout, unit_check: int = 0) -> None:
    topology, spec, guest, taken = case.topology, case.spec, case.guest, case.taken
    assert layout.guest == GUEST
    assert layout.vcpus == guest.vcpus
    assert [cell.id for cell in layout.cells] == list(range(len(layout.cells)))
    assert (layout.hugepages_kib, layout.max_memory_kib, layout.memory_slots) == (
        spec.hugepages_kib,
        spec.max_memory_kib,
        spec.memory_slots,
    )
    check_places(topology, spec, layout)
    cpu_cells = check_vcpus(topology, spec, layout)
    check_topology(layout)
    check_memory(topology, spec, guest, layout)
    check_distances(topology, layout)
    check_pins(topology, spec, taken, layout)
    check_enable_order(layout, guest, cpu_cells, unit_check)
    layout.to_dict()  # the documented dict form renders for every layout


def describe(case: Case) -> None:
    note_seed()
    for node in case.topology.nodes:
        note(
            f"node {node.id}: memory {node.memory_kib} KiB, cores {node.cores}, pages {node.pages}, "
            f"sockets {sorted(node.sockets)}, distances {node.distances}"
        )
    note(f"spec {case.options}; guest {case.guest}; taken {case.taken}")


def reason(error: VnumaError) -> str:
    """The kind of a refusal, for the statistics (``--hypothesis-show-statistics``): its first words."""
    words = [word for word in error.message.split() if not any(ch.isdigit() for ch in word)]
    return " ".join(words[:5])


# -- the properties ----------------------------------------------------------------------------------------


@scaled(600)
@given(case=cases(), unit_check=st.integers(0, 1000))
def test_layout_is_valid_or_refused(case: Case, unit_check: int) -> None:
    describe(case)
    try:
        layout = compute_layout(case.topology, case.spec, case.guest, case.taken)
    except VnumaError as error:
        assert isinstance(error, (SpecError, PlacementError, TopologyError)), type(error)
        assert error.guest == GUEST
        assert str(error).startswith(f"guest {GUEST}: ")
        event(f"refused: {type(error).__name__}: {reason(error)}")
        return
    event(f"layout: {case.spec.mode} {case.spec.distribution} {case.spec.pinning}")
    check_layout(case, layout, unit_check)


@st.composite
def feasible_cases(draw: st.DrawFn) -> Case:
    """Requests every host can hold: every CPU node has memory, enough vCPUs, small aligned memory, no
    dedicated CPUs, no round-robin (which may leave a cell empty) nor siblings (which needs one SMT width)."""
    topology = draw(hosts())
    assume(topology.cpu_node_ids)
    assume(all(node.memory_kib >= 256 * MIB for node in topology.nodes if node.has_cpus))
    mode = draw(st.sampled_from(LAID_OUT_MODES))
    selected = topology.cpu_node_ids
    options: dict[str, Any] = {
        "mode": mode,
        "distribution": draw(st.sampled_from(["contiguous", "interleave"])),
        "pinning": draw(st.sampled_from(["node", "none"])),
        "memory_mode": draw(st.sampled_from(MEMORY_MODES)),
    }
    cells = len(selected)
    if mode == "node" and draw(st.booleans()):
        cells = draw(st.integers(1, 2 * len(selected)))
        options["cells"] = cells
    vcpus = draw(st.integers(cells, max(cells, 128)))
    memory = cells * draw(st.integers(1, 64)) * MIB
    return Case(topology, options, GuestShape(vcpus=vcpus, memory_kib=memory, name=GUEST), {})


@scaled(150)
@given(case=feasible_cases())
def test_feasible_requests_are_never_refused(case: Case) -> None:
    describe(case)
    layout = compute_layout(case.topology, case.spec, case.guest, case.taken)
    check_layout(case, layout)


@st.composite
def grouped_memoryless_cases(draw: st.DrawFn) -> Case:
    """Node mode grouping a host with memory-less CPU nodes into fewer cells, memory near the host's capacity:
    a cell whose group has no memory binds to the nearest node with memory, maybe in another cell's group."""
    topology = draw(hosts(memoryless=True))
    nodes = topology.cpu_node_ids
    assume(len(nodes) >= 2)
    cells = draw(uniform_in(1, len(nodes) - 1))
    vcpus = draw(uniform_in(cells, 4 * cells))
    host_memory = sum(node.memory_kib for node in topology.nodes)
    memory = max(cells, host_memory * draw(uniform_in(1, 8)) // 8 // MIB) * MIB
    options = {
        "mode": "node",
        "cells": cells,
        "memory_mode": draw(st.sampled_from(["strict", "restrictive", "interleave"])),
        "memory_split": draw(st.sampled_from(MEMORY_SPLITS)),
        "distribution": draw(st.sampled_from(["contiguous", "interleave"])),
    }
    return Case(topology, options, GuestShape(vcpus=vcpus, memory_kib=memory, name=GUEST), {})


def tightest_fit(topology: HostTopology, layout: Layout) -> float:
    """The largest need / capacity over the unions of overlapping memory bindings (at most 1 when they fit)."""
    unions: list[tuple[set[int], int]] = []
    for cell in layout.cells:
        merged = (set(cell.memory_nodes), cell.memory_kib)
        for other in [union for union in unions if union[0] & merged[0]]:
            unions.remove(other)
            merged = (merged[0] | other[0], merged[1] + other[1])
        unions.append(merged)
    return max(kib / max(1, sum(topology.node(n).memory_kib for n in nodes)) for nodes, kib in unions)


@scaled(400)
@given(case=grouped_memoryless_cases())
def test_memoryless_groups_fit_their_memory(case: Case) -> None:
    describe(case)
    try:
        layout = compute_layout(case.topology, case.spec, case.guest, case.taken)
    except (SpecError, PlacementError) as error:
        assert str(error).startswith(f"guest {GUEST}: ")
        event(f"refused: {reason(error)}")
        return
    event("layout")
    # steer the search to layouts that fill their nodes, where a missed capacity check shows
    target(tightest_fit(case.topology, layout), label="memory need / capacity")
    check_layout(case, layout)


@scaled(150)
@given(case=cases())
def test_layout_is_deterministic(case: Case) -> None:
    """The same request gives the same layout: a later run must find nothing to change."""
    describe(case)
    try:
        first = compute_layout(case.topology, case.spec, case.guest, case.taken)
    except VnumaError as error:
        again = None
        try:
            compute_layout(case.topology, case.spec, case.guest, case.taken)
        except VnumaError as second:
            again = second
        assert again is not None and str(again) == str(error)
        return
    assert compute_layout(case.topology, case.spec, case.guest, case.taken) == first


@scaled(100)
@given(topology=hosts())
def test_host_mode_mirrors_the_cpu_nodes(topology: HostTopology) -> None:
    note_seed()
    assume(topology.cpu_node_ids)
    assume(all(topology.node(n).memory_kib > 0 for n in topology.cpu_node_ids))
    cells = len(topology.cpu_node_ids)
    guest = GuestShape(vcpus=cells * 2, memory_kib=cells * MIB, name=GUEST)
    layout = compute_layout(topology, VnumaSpec(mode="host", memory_mode="preferred"), guest)
    assert [cell.host_nodes for cell in layout.cells] == [(n,) for n in topology.cpu_node_ids]
    assert [len(cell.vcpus) for cell in layout.cells] == [2] * cells
