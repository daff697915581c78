# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where a guest's cells live on the host: locality and alignment as the docstring of _core.placement defines them.

The expected values are worked out from the host fixtures by hand (or, for the formula over every
fixture, from the topology's CPU and memory counts), never from the code under test.  The property
tests run the partitioner's layouts over random hosts (the strategies of _core/test_partitioner_properties)
and random hand-written bindings through ``place_guest``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, event, given, note
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    DimmBinding,
    GuestBinding,
    GuestPlacement,
    place_guest,
    place_guests,
    split_evenly,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.tests.support.bindings import binding_from_layout
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES, host
from ansible_collections.vnuma.libvirt.tests.support.layouts import memory_by_node
from ansible_collections.vnuma.libvirt.tests.unit.plugins.module_utils._core.test_partitioner_properties import (
    Case,
    cases,
    describe,
    hosts,
    note_seed,
    scaled,
    sometimes,
    uniform_in,
)

MIB = 1024
GIB = 1024 * 1024
GUEST = "db01"
ALL_HOSTS = sorted(path.stem for path in CAPABILITIES.glob("*.xml"))


def one_cell(
    vcpus: int, kib: int, mode: str | None = None, nodes: tuple[int, ...] = (), **options: Any
) -> GuestBinding:
    """A guest of one cell holding vCPUs 0..vcpus-1."""
    cell = CellBinding(0, tuple(range(vcpus)), kib, mode, nodes, options.pop("page", None))
    return GuestBinding(GUEST, (cell,), **options)


def cpu_fractions(topology: HostTopology) -> dict[int, float]:
    """Host node -> its share of the host's online CPUs (where an unpinned vCPU runs)."""
    online = {node.id: len(node.usable_cpus) for node in topology.nodes if node.usable_cpus}
    total = sum(online.values())
    return {node: count / total for node, count in online.items()}


def memory_fractions(topology: HostTopology) -> dict[int, float]:
    """Host node -> its share of the host's memory (where unbound memory lives)."""
    total = sum(node.memory_kib for node in topology.nodes)
    return {node.id: node.memory_kib / total for node in topology.nodes if node.memory_kib}


def unclamped_locality(placement: GuestPlacement, cell_index: int) -> float:
    """Σ over host nodes of (vCPU time there) x (memory there), from the cell's own shares."""
    cell = placement.cells[cell_index]
    return sum(share * cell.memory_share.get(node, 0) / cell.memory_kib for node, share in cell.cpu_share.items())


# -- split_evenly ----------------------------------------------------------------------------------------


def test_split_evenly_gives_the_remainder_to_the_first_nodes_as_given() -> None:
    assert split_evenly(10, [3, 1, 2]) == {3: 4, 1: 3, 2: 3}
    assert split_evenly(2, [8, 0, 4]) == {8: 1, 0: 1, 4: 0}
    assert split_evenly(5, []) == {}


# -- locality and alignment on the fixture hosts ---------------------------------------------------------


@pytest.mark.parametrize("fixture", ALL_HOSTS)
def test_unpinned_unbound_guest_scores_cpu_fraction_times_memory_fraction(fixture: str) -> None:
    """No NUMA, no pins: the vCPUs run over every online CPU, the memory spreads over the nodes by size."""
    topology = host(fixture)
    memory = 12 * GIB
    placement = place_guest(topology, one_cell(8, memory))
    cpus, kib = cpu_fractions(topology), memory_fractions(topology)
    expected = sum(share * kib.get(node, 0.0) for node, share in cpus.items())
    (cell,) = placement.cells
    assert placement.locality == pytest.approx(expected, abs=1e-6)
    assert cell.cpu_share == pytest.approx(cpus)
    assert sum(cell.memory_share.values()) == memory
    assert {node: value / memory for node, value in cell.memory_share.items()} == pytest.approx(kib, abs=1e-6)
    assert not cell.aligned and not placement.aligned, "unbound memory is never aligned"
    assert cell.to_dict()["memory_nodes"] is None


def test_unpinned_unbound_guest_on_the_ring_scores_a_quarter() -> None:
    """The docstring's example: 4 equal nodes, 1/4 of the vCPU time x 1/4 of the memory, four times."""
    placement = place_guest(host("seed-4node-ring"), one_cell(4, 4 * GIB))
    assert placement.locality == 0.25
    assert placement.cells[0].memory_share == dict.fromkeys(range(4), GIB)
    assert memory_by_node(placement) == dict.fromkeys(range(4), GIB)


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        # 4 CPUs online on node 0, 3 on node 1 (SMT off, CPU 56 offline); memory half and half.
        ("offline-cpus", 0.5),
        # memory-only nodes 4 and 5 (CXL) hold 64 of the 256 GiB each: 1/8 of the memory under each CPU node.
        ("intel-snc2-cxl", 4 * 0.25 * 0.125),
        # nodes 1 and 3 have CPUs and no memory: half of the vCPU time is remote whatever happens.
        ("memoryless-node", 2 * 0.25 * 0.5),
        # 16, 8 and 12 cores' worth of CPUs over 64, 16 and 32 GiB.
        ("unequal-nodes", (16 * 64 + 8 * 16 + 12 * 32) / (36 * 112)),
    ],
)
def test_unpinned_unbound_guest_on_odd_hosts(fixture: str, expected: float) -> None:
    placement = place_guest(host(fixture), one_cell(8, 8 * GIB))
    assert placement.locality == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("fixture", ALL_HOSTS)
def test_a_cell_pinned_and_bound_to_one_node_scores_one_on_every_node(fixture: str) -> None:
    topology = host(fixture)
    for node in topology.nodes:
        if not node.usable_cpus or not node.memory_kib:
            continue
        binding = one_cell(4, GIB, "strict", (node.id,), vcpu_cpus=dict.fromkeys(range(4), node.usable_cpus))
        placement = place_guest(topology, binding)
        (cell,) = placement.cells
        assert (cell.aligned, cell.locality, placement.locality) == (True, 1.0, 1.0), node.id
        assert cell.cpu_nodes == (node.id,)
        assert cell.memory_share == {node.id: GIB}


def test_memoryless_node_cell_bound_to_its_nearest_memory_is_remote() -> None:
    """Node 1 has CPUs and no memory; the partitioner binds such a cell to node 0: honest 0.0, not aligned."""
    topology = host("memoryless-node")
    binding = one_cell(2, GIB, "strict", (0,), vcpu_cpus=dict.fromkeys(range(2), topology.node(1).usable_cpus))
    placement = place_guest(topology, binding)
    assert (placement.aligned, placement.locality) == (False, 0.0)


@pytest.mark.parametrize(
    ("pins", "mode", "nodes", "aligned", "locality"),
    [
        pytest.param((0, 1, 2, 3), "strict", (2,), False, 0.0, id="pinned to node 0, memory on node 2"),
        pytest.param(tuple(range(8)), "interleave", (0, 1), True, 0.5, id="interleave over the two nodes it runs on"),
        pytest.param(tuple(range(8)), "strict", (0,), False, 0.5, id="runs on nodes 0-1, memory on 0"),
        pytest.param((0, 1, 2, 3), "preferred", (0,), True, 1.0, id="preferred counts as bound"),
        pytest.param((0, 1, 2, 3), "restrictive", (0,), True, 1.0, id="restrictive counts as bound"),
        pytest.param((0, 1, 2, 3), "strict", (0, 7), False, 0.5, id="half of the memory on a node the host lacks"),
        pytest.param((0, 1, 2, 3), None, (0,), False, 0.25, id="no mode: the nodeset means nothing"),
    ],
)
def test_cell_binding_on_the_ring(
    pins: tuple[int, ...], mode: str | None, nodes: tuple[int, ...], aligned: bool, locality: float
) -> None:
    placement = place_guest(host("seed-4node-ring"), one_cell(4, 4 * GIB, mode, nodes, default_cpus=pins))
    (cell,) = placement.cells
    assert (cell.aligned, cell.locality) == (aligned, locality)
    assert sum(cell.memory_share.values()) == 4 * GIB


def test_memory_bound_to_a_node_the_host_lacks_is_kept_by_its_id() -> None:
    """A definition written for another host: capacity checks must be able to name node 7."""
    placement = place_guest(host("seed-4node-ring"), one_cell(2, 2 * GIB, "strict", (7, 0)))
    assert placement.cells[0].memory_share == {0: GIB, 7: GIB}
    assert memory_by_node(placement) == {0: GIB, 7: GIB}


def test_vcpus_pinned_to_cpus_the_host_lacks() -> None:
    """CPU 64 is not on the ring: a pin naming it and CPU 2 runs on CPU 2; a pin naming only it runs nowhere."""
    topology = host("seed-4node-ring")
    pins = {0: (0, 1, 2, 3), 1: (0, 1, 2, 3), 2: (2, 64), 3: (64,)}
    placement = place_guest(topology, one_cell(4, GIB, "strict", (0,), vcpu_cpus=pins))
    (cell,) = placement.cells
    assert cell.cpu_share == {0: 0.75}, "the vCPU that cannot run here counts on no node"
    assert cell.locality == 0.75
    assert not cell.aligned, "vCPU 3 does not run where the memory is"
    # The same guest with vCPU 3 on node 0 as well is aligned.
    fixed = place_guest(topology, one_cell(4, GIB, "strict", (0,), vcpu_cpus={**pins, 3: (1,)}))
    assert (fixed.aligned, fixed.locality) == (True, 1.0)


def test_pins_override_the_default_cpuset_per_vcpu() -> None:
    binding = one_cell(4, 4 * GIB, "strict", (0,), default_cpus=(0, 1, 2, 3), vcpu_cpus={3: (4,)})
    (cell,) = place_guest(host("seed-4node-ring"), binding).cells
    assert cell.cpu_share == {0: 0.75, 1: 0.25}
    assert (cell.aligned, cell.locality) == (False, 0.75)


def test_sparse_node_ids() -> None:
    """Nodes 0 and 8 (POWER9 chips): CPUs 0-15 and 16-31."""
    topology = host("sparse-ids")
    cells = (
        CellBinding(0, (0, 1), 2 * GIB, "strict", (0,)),
        CellBinding(1, (2, 3), 2 * GIB, "strict", (8,)),
    )
    pins = {0: tuple(range(16)), 1: tuple(range(16)), 2: tuple(range(16, 32)), 3: tuple(range(16, 32))}
    placement = place_guest(topology, GuestBinding(GUEST, cells, vcpu_cpus=pins))
    assert [(cell.cpu_nodes, cell.aligned, cell.locality) for cell in placement.cells] == [
        ((0,), True, 1.0),
        ((8,), True, 1.0),
    ]
    assert memory_by_node(placement) == {0: 2 * GIB, 8: 2 * GIB}
    # Unbound: half the vCPU time and half the memory on each chip.
    assert place_guest(topology, one_cell(4, 4 * GIB)).cells[0].memory_share == {0: 2 * GIB, 8: 2 * GIB}


def test_cpuless_cells_count_for_alignment_not_for_locality() -> None:
    """A guest cell on a CXL node: no vCPUs, so the guest's locality is that of its vCPU-bearing cells."""
    topology = host("intel-snc2-cxl")
    cells = (
        CellBinding(0, (0, 1), 2 * GIB, "strict", (0,)),
        CellBinding(1, (), 4 * GIB, "strict", (4,)),
        CellBinding(2, (), 4 * GIB),
    )
    placement = place_guest(topology, GuestBinding(GUEST, cells, default_cpus=topology.node(0).usable_cpus))
    assert [(cell.aligned, cell.locality, dict(cell.cpu_share)) for cell in placement.cells] == [
        (True, 1.0, {0: 1.0}),
        (True, 0.0, {}),
        (False, 0.0, {}),
    ]
    assert placement.locality == 1.0
    assert not placement.aligned, "cell 2's memory is bound nowhere"
    assert memory_by_node(placement)[4] == 4 * GIB + GIB  # cell 1, and 1/4 of the unbound cell 2


def test_a_guest_without_vcpu_bearing_cells_scores_one() -> None:
    placement = place_guest(host("intel-snc2-cxl"), GuestBinding(GUEST, (CellBinding(0, (), GIB, "strict", (4,)),)))
    assert (placement.aligned, placement.locality) == (True, 1.0)


def test_guest_locality_is_the_mean_over_vcpus() -> None:
    """One vCPU in a cell at 1.0 and three in a cell at 0.0 make 0.25, not the mean of the cells (0.5)."""
    cells = (CellBinding(0, (0,), GIB, "strict", (0,)), CellBinding(1, (1, 2, 3), GIB, "strict", (1,)))
    pins = {0: (0,), 1: (0,), 2: (0,), 3: (0,)}
    placement = place_guest(host("seed-4node-ring"), GuestBinding(GUEST, cells, vcpu_cpus=pins))
    assert [cell.locality for cell in placement.cells] == [1.0, 0.0]
    assert placement.locality == 0.25


def test_memory_by_node_keeps_page_sizes_apart_and_backs_dimms_like_their_cell() -> None:
    topology = host("intel-2s-smt2")
    cells = (
        CellBinding(0, (0, 1), 2 * GIB, "strict", (0,), hugepage_kib=2048),
        CellBinding(1, (2, 3), 2 * GIB, "strict", (1,), hugepage_kib=1048576),
        CellBinding(2, (4, 5), 2 * GIB, "strict", (1,)),
    )
    dimms = (
        DimmBinding(2, GIB),  # follows cell 2: node 1, normal pages
        DimmBinding(0, GIB, (0, 1)),  # its own nodemask: half each, in cell 0's 2 MiB pages
        DimmBinding(2, GIB, hugepage_kib=1048576),  # its own <source><pagesize>: cell 2's node, 1 GiB pages
        DimmBinding(None, 2 * GIB),  # no cell: unbound, by node size (equal here)
        DimmBinding(5, 2 * GIB),  # a cell the guest lacks: unbound too
    )
    placement = place_guest(topology, GuestBinding(GUEST, cells, dimms=dimms))
    assert placement.page_sizes == (2048, 1048576)
    assert memory_by_node(placement, 2048) == {0: 2 * GIB + GIB // 2, 1: GIB // 2}
    assert memory_by_node(placement, 1048576) == {1: 3 * GIB}
    assert placement.dimm_share == {0: GIB // 2 + 2 * GIB, 1: GIB + GIB // 2 + GIB + 2 * GIB}
    assert memory_by_node(placement) == {0: 2 * GIB, 1: 2 * GIB + GIB + 2 * GIB}
    assert memory_by_node(placement, 16384) == {}


def test_a_dimm_follows_its_cells_binding_mode() -> None:
    """Under interleave the cell, and so its DIMM, spreads evenly over the nodeset."""
    cells = (CellBinding(0, (0, 1), 2 * GIB, "interleave", (1, 2)),)
    placement = place_guest(host("seed-4node-ring"), GuestBinding(GUEST, cells, dimms=(DimmBinding(0, 3 * MIB),)))
    assert placement.dimm_share == {1: 1536, 2: 1536}


def test_to_dict_rounds_and_formats() -> None:
    topology = host("seed-4node-ring")
    cells = (
        CellBinding(0, (0, 1, 2), 3 * GIB, "strict", (0, 1)),
        CellBinding(1, (3,), GIB),
    )
    placement = place_guest(topology, GuestBinding(GUEST, cells, vcpu_cpus={0: (0,), 1: (4,), 2: (4,), 3: (0,)}))
    assert placement.to_dict() == {
        "name": GUEST,
        "aligned": False,
        "locality": round((3 * 0.5 + 0.25) / 4, 4),
        "cells": [
            {
                "id": 0,
                "vcpus": "0-2",
                "vcpu_count": 3,
                "memory_kib": 3 * GIB,
                "memory_mode": "strict",
                "memory_nodes": "0-1",
                "hugepages_kib": None,
                "cpu_nodes": "0-1",
                "cpu_share": {"0": 0.3333, "1": 0.6667},
                "memory_share_kib": {"0": 3 * GIB // 2, "1": 3 * GIB // 2},
                "aligned": True,
                "locality": 0.5,
            },
            {
                "id": 1,
                "vcpus": "3",
                "vcpu_count": 1,
                "memory_kib": GIB,
                "memory_mode": None,
                "memory_nodes": None,
                "hugepages_kib": None,
                "cpu_nodes": "0",
                "cpu_share": {"0": 1.0},
                "memory_share_kib": {str(node): GIB // 4 for node in range(4)},
                "aligned": False,
                "locality": 0.25,
            },
        ],
    }


def test_pinned_and_explicit_cpus() -> None:
    cell = (CellBinding(0, (0, 1), GIB),)
    assert not GuestBinding(GUEST, cell).pinned
    assert GuestBinding(GUEST, cell).explicit_cpus() == frozenset()
    assert GuestBinding(GUEST, cell, emulator_cpus=(9,)).pinned, "an emulator pin confines the guest too"
    both = GuestBinding(GUEST, cell, vcpu_cpus={0: (1, 2)}, default_cpus=(3,), emulator_cpus=(4, 5))
    assert both.pinned and both.explicit_cpus() == frozenset({1, 2, 3, 4, 5})
    assert both.vcpu_affinity(0, (0, 1)) == (1, 2)
    assert both.vcpu_affinity(1, (0, 1)) == (3,)
    assert GuestBinding(GUEST, cell).vcpu_affinity(1, (0, 1)) == (0, 1)


def test_place_guests_places_each_guest_as_place_guest_does() -> None:
    """One placer for many guests: what it caches for one guest must not leak into the next."""
    topology = host("unequal-nodes")
    guests = [
        one_cell(4, GIB, "strict", (0,), default_cpus=(0, 1)),
        one_cell(4, GIB, "strict", (2,), vcpu_cpus={0: (0, 1), 1: (12,)}),
        one_cell(4, GIB),
    ]
    assert place_guests(topology, guests) == [place_guest(topology, guest) for guest in guests]


def test_binding_from_layout_takes_the_layouts_cells_pins_and_pages() -> None:
    topology = host("intel-2s-smt2")
    spec = VnumaSpec(mode="host", pinning="core", memory_mode="interleave", hugepages_kib=2048, emulator_pin="nodes")
    layout = compute_layout(topology, spec, GuestShape(vcpus=4, memory_kib=4 * GIB, name=GUEST))
    binding = binding_from_layout(layout, GUEST, running=True, autostart=True, dedicated_cpus=(8, 0, 8))
    assert [(cell.id, cell.vcpus, cell.memory_kib, cell.memory_mode, cell.memory_nodes) for cell in binding.cells] == [
        (0, (0, 1), 2 * GIB, "interleave", (0,)),
        (1, (2, 3), 2 * GIB, "interleave", (1,)),
    ]
    assert {cell.hugepage_kib for cell in binding.cells} == {2048}
    assert binding.vcpu_cpus == dict(enumerate(layout.vcpu_pins))
    assert binding.emulator_cpus == layout.emulator_pins
    assert (binding.dedicated_cpus, binding.dimms, binding.default_cpus) == ((0, 8), (), None)
    assert (binding.running, binding.autostart, binding.source) == (True, True, "planned")
    placement = place_guest(topology, binding)
    assert (placement.aligned, placement.locality) == (True, 1.0)
    assert memory_by_node(placement, 2048) == {0: 2 * GIB, 1: 2 * GIB}
    assert memory_by_node(placement) == {}
    # Without pinning the guest floats over the whole host: half its vCPU time is remote.
    loose = compute_layout(topology, VnumaSpec(mode="host", pinning="none"), GuestShape(4, 4 * GIB, name=GUEST))
    assert binding_from_layout(loose, GUEST).vcpu_cpus == {}
    assert place_guest(topology, binding_from_layout(loose, GUEST)).locality == 0.5


# -- properties over the partitioner's layouts ------------------------------------------------------------


def place_layout(case: Case) -> tuple[Layout, GuestPlacement] | None:
    """The layout of ``case`` and its placement, shares checked; None when the partitioner refuses it."""
    describe(case)
    try:
        layout = compute_layout(case.topology, case.spec, case.guest, case.taken)
    except VnumaError as error:
        event(f"refused: {type(error).__name__}")
        return None
    placement = place_guest(case.topology, binding_from_layout(layout, GUEST))
    check_shares(placement)
    return layout, placement


def check_shares(placement: GuestPlacement) -> None:
    """Locality in [0, 1] and what it is made of; the shares' sums."""
    assert 0.0 <= placement.locality <= 1.0
    for index, cell in enumerate(placement.cells):
        assert sum(cell.memory_share.values()) == cell.memory_kib, "memory shares sum to the cell's memory"
        assert all(kib >= 0 for kib in cell.memory_share.values())
        if cell.vcpus:
            assert sum(cell.cpu_share.values()) == pytest.approx(1.0), "the vCPU time of a cell sums to 1"
        else:
            assert cell.cpu_share == {} and cell.locality == 0.0
        # The clamp to 1.0 in the code must never be what keeps locality in range.
        assert unclamped_locality(placement, index) <= 1.0 + 1e-9
        assert cell.locality == pytest.approx(unclamped_locality(placement, index), abs=1e-12)
        assert 0.0 <= cell.locality <= 1.0
        if cell.bound:
            assert set(cell.memory_share) == set(cell.memory_nodes)
    vcpus = sum(len(cell.vcpus) for cell in placement.cells)
    if vcpus:
        mean = sum(len(cell.vcpus) * cell.locality for cell in placement.cells) / vcpus
        assert placement.locality == pytest.approx(mean, abs=1e-12)


def pin_nodes(topology: HostTopology, pins: tuple[tuple[int, ...], ...], vcpus: tuple[int, ...]) -> set[int]:
    return {topology.cpu_node[cpu] for vcpu in vcpus for cpu in pins[vcpu]}


@scaled(300)
@given(case=cases())
def test_every_layout_places_with_consistent_shares(case: Case) -> None:
    placed = place_layout(case)
    if placed is None:
        return
    layout, placement = placed
    event(f"pinning {case.spec.pinning}, memory {case.spec.memory_mode}")
    assert [cell.vcpus for cell in placement.cells] == [cell.vcpus for cell in layout.cells]
    pins = layout.vcpu_pins
    for cell, placed in zip(layout.cells, placement.cells, strict=True):
        assert placed.bound, "a planned cell's memory is always bound"
        assert placed.memory_nodes == cell.memory_nodes
        if pins is not None and placed.vcpus:
            # Pinned: the vCPUs run exactly on the nodes of their pins.
            assert set(placed.cpu_nodes) == pin_nodes(case.topology, pins, cell.vcpus)
            if case.spec.memory_mode == "strict" and placed.memory_kib >= len(cell.memory_nodes):
                # Aligned exactly when the memory is bound to the nodes the pins are on.
                assert placed.aligned == (set(cell.memory_nodes) == set(placed.cpu_nodes))
        elif placed.vcpus:
            # Unpinned: every vCPU floats over the whole host; locality is at most the largest CPU share.
            assert placed.cpu_share == pytest.approx(cpu_fractions(case.topology))
            assert placed.locality <= max(cpu_fractions(case.topology).values()) + 1e-9


@st.composite
def pinned_strict_cases(draw: st.DrawFn) -> Case:
    """Pinned (node, core or thread), strict memory, on hosts whose CPU nodes all have memory (and the
    asked hugepage pool), with no more vCPUs than the host has cores: requests the partitioner mostly
    accepts, so that dedicated pinning is well covered."""
    topology = draw(hosts())
    page = None
    if draw(sometimes(4)) and topology.page_sizes_kib[1:]:
        page = draw(st.sampled_from(topology.page_sizes_kib[1:]))
    for node in topology.nodes:
        assume(node.memory_kib > 0 or not node.has_cpus)
        assume(page is None or not node.memory_kib or node.page_pool_kib(page) > 0)
    assume(topology.cpu_node_ids)
    options: dict[str, Any] = {
        "mode": draw(st.sampled_from(["host", "node"])),
        "distribution": draw(st.sampled_from(["contiguous", "interleave", "round-robin"])),
        "pinning": draw(st.sampled_from(["node", "core", "thread"])),
        "memory_mode": "strict",
        "cpuless_cells": draw(st.booleans()),
    }
    selected = len(topology.cpu_node_ids)
    cells = selected
    if options["mode"] == "node":
        if draw(st.booleans()):  # memory-only nodes too, as CPU-less cells or inside groups
            options["nodeset"] = ",".join(map(str, topology.node_ids))
            selected = cells = len(topology.node_ids)
        if draw(st.booleans()):  # grouped cells (fewer than nodes) as often as spread ones
            cells = options["cells"] = draw(st.one_of(uniform_in(1, selected), uniform_in(selected, 2 * selected)))
    cores = sum(len(node.cores) for node in topology.nodes)
    vcpus = draw(uniform_in(1, max(1, cores)))
    granule = MIB if page is None else max(MIB, page)
    if page is not None:
        options["hugepages"] = page
    memory = cells * granule * draw(uniform_in(1, 4))
    return Case(topology, options, GuestShape(vcpus=vcpus, memory_kib=memory, name=GUEST), {})


@scaled(300)
@given(case=pinned_strict_cases())
def test_pinned_strict_layouts_are_aligned(case: Case) -> None:
    """Every cell is aligned with node pinning, or on one host node; one host node per cell scores 1.0."""
    placed = place_layout(case)
    if placed is None:
        return
    layout, placement = placed
    single = all(len(cell.host_nodes) == 1 for cell in layout.cells)
    event(f"pinning {case.spec.pinning}, {'one node per cell' if single else 'grouped cells'}")
    for cell, placed in zip(layout.cells, placement.cells, strict=True):
        note(f"cell {cell.id}: host nodes {cell.host_nodes}, memory {cell.memory_nodes}, cpu {placed.cpu_share}")
        assert set(cell.memory_nodes) == set(cell.host_nodes), "memory bound to the nodes behind the cell"
        # A group holding a memory-only node binds memory where no vCPU runs; dedicated pins may fill
        # one node of a group before the next: both honestly misaligned.
        cpu_backed = all(case.topology.node(node).has_cpus for node in cell.host_nodes)
        if not placed.vcpus or (cpu_backed and (case.spec.pinning == "node" or len(cell.host_nodes) == 1)):
            assert placed.aligned
    if single:
        assert placement.aligned
        assert placement.locality == 1.0
        assert all(cell.locality == 1.0 for cell in placement.cells if cell.vcpus)


# -- properties over hand-written bindings ----------------------------------------------------------------


@st.composite
def bindings(draw: st.DrawFn, topology: HostTopology) -> GuestBinding:
    """What a hand-written definition may say: any nodesets and pins, nodes and CPUs the host lacks included."""
    node_ids = [*topology.node_ids, 63]
    cpu_ids = [*sorted(topology.cpu_node), 4095]
    vcpus = draw(st.integers(0, 12))
    count = draw(st.integers(1, 4))
    owner = [draw(st.integers(0, count - 1)) for _unused in range(vcpus)]
    cells = []
    modes = st.sampled_from(["strict", "preferred", "interleave", "restrictive"])
    for cell_id in range(count):
        bound = draw(st.booleans())
        cells.append(
            CellBinding(
                id=cell_id,
                vcpus=tuple(vcpu for vcpu in range(vcpus) if owner[vcpu] == cell_id),
                memory_kib=draw(st.integers(1, 64)) * draw(st.sampled_from([1, 4, MIB, GIB])),
                memory_mode=draw(modes) if bound else None,
                memory_nodes=tuple(draw(st.sets(st.sampled_from(node_ids), min_size=1, max_size=3))) if bound else (),
                hugepage_kib=draw(st.sampled_from([None, None, 2048])),
            )
        )
    cpusets = st.sets(st.sampled_from(cpu_ids), min_size=1, max_size=6).map(lambda cpus: tuple(sorted(cpus)))
    pins = draw(st.dictionaries(st.integers(0, max(vcpus - 1, 0)), cpusets, max_size=vcpus))
    dimms = draw(
        st.lists(
            st.builds(
                DimmBinding,
                st.one_of(st.none(), st.integers(0, count)),
                st.integers(1, 8).map(lambda n: n * 128 * MIB),
                st.one_of(st.none(), st.sets(st.sampled_from(node_ids), min_size=1).map(tuple)),
            ),
            max_size=3,
        )
    )
    return GuestBinding(
        GUEST,
        tuple(cells),
        vcpu_cpus=pins,
        default_cpus=draw(st.one_of(st.none(), cpusets)),
        dimms=tuple(dimms),
    )


@st.composite
def hand_written(draw: st.DrawFn) -> tuple[HostTopology, GuestBinding]:
    topology = draw(hosts())
    assume(topology.cpu_node and any(node.memory_kib for node in topology.nodes))
    return topology, draw(bindings(topology))


@scaled(300)
@given(guest=hand_written())
def test_hand_written_bindings_keep_the_invariants(guest: tuple[HostTopology, GuestBinding]) -> None:
    topology, binding = guest
    note_seed()
    note(f"host nodes {[(node.id, node.memory_kib, node.usable_cpus) for node in topology.nodes]}")
    placement = place_guest(topology, binding)
    assert 0.0 <= placement.locality <= 1.0
    for index, (cell, placed) in enumerate(zip(binding.cells, placement.cells, strict=True)):
        assert sum(placed.memory_share.values()) == cell.memory_kib
        assert 0.0 <= placed.locality <= 1.0
        assert unclamped_locality(placement, index) <= 1.0 + 1e-9
        assert sum(placed.cpu_share.values()) <= 1.0 + 1e-9
        runnable = all(
            set(binding.vcpu_affinity(vcpu, tuple(topology.cpu_node))) & set(topology.cpu_node) for vcpu in cell.vcpus
        )
        if cell.vcpus and runnable:
            assert sum(placed.cpu_share.values()) == pytest.approx(1.0)
        if placed.aligned and cell.vcpus:
            assert cell.memory_mode is not None and runnable
            memory_nodes = {node for node, kib in placed.memory_share.items() if kib}
            assert memory_nodes == set(placed.cpu_nodes)
            if len(memory_nodes) == 1:
                assert placed.locality == pytest.approx(1.0)
        if cell.memory_mode is None:
            assert not placed.aligned
        if placed.locality == 1.0 and cell.vcpus:
            # All of its vCPU time and all of its memory on one node.
            assert len(placed.cpu_nodes) == 1 and placed.memory_share[placed.cpu_nodes[0]] == cell.memory_kib
    total = sum(cell.memory_kib for cell in binding.cells) + sum(dimm.size_kib for dimm in binding.dimms)
    by_page = [memory_by_node(placement, page) for page in (None, *placement.page_sizes)]
    assert sum(kib for memory in by_page for kib in memory.values()) == total, "every KiB on some node"
