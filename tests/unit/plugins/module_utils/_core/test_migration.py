# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The destination planner over pairs of fixture hosts: a guest laid out on one host, planned onto another.

Each guest is laid out by the partitioner on its source host, as vnuma_domain lays it out, and taken as
it is (cells, distances, pins, bindings); the plan on the destination is checked against the
destination's own topology: memory on nodes that hold it, pins on the CPUs of the planned nodes, whole
host cores for a guest's cores, other guests' dedicated CPUs and memory left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core import move_planner
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityError, check_capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_capacity import check_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_models import (
    DestinationPlan,
    MovingCell,
    MovingGuest,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_planner import (
    EXHAUSTIVE_CHOICES,
    plan_destination,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    DimmBinding,
    GuestBinding,
    place_guest,
    place_guests,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.hostgen import HostShape, build_capabilities
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

MIB = 1024
GIB = 1024 * 1024


def laid_out(source: str, vcpus: int, memory_kib: int, **options: object) -> Layout:
    return compute_layout(
        host(source), VnumaSpec.from_mapping({"memory": memory_kib, **options}), GuestShape(vcpus=vcpus, name="db01")
    )


def moving(layout: Layout, source: HostTopology | None = None) -> MovingGuest:
    """The guest as it runs: what the XML reader gets from its live definition."""
    return MovingGuest(
        name="db01",
        vcpus=layout.vcpus,
        cells=tuple(
            MovingCell(cell.id, cell.vcpus, cell.memory_kib, layout.hugepages_kib, cell.memory_nodes)
            for cell in layout.cells
        ),
        distances=tuple(cell.distances for cell in layout.cells),
        pinning=layout.spec.pinning,
        threads=layout.topology.threads,
        memory_mode=layout.spec.memory_mode,
        emulator_pin=layout.spec.emulator_pin,
        source=source,
    )


def check_plan(plan: DestinationPlan, guest: MovingGuest, destination: HostTopology) -> None:
    """What holds for every plan: cells whole, memory and vCPUs on the planned nodes of the destination."""
    assert [cell.id for cell in plan.cells] == [cell.id for cell in guest.cells]
    for cell, moved in zip(plan.cells, guest.cells, strict=True):
        assert cell.vcpus == moved.vcpus and cell.memory_kib == moved.memory_kib
        assert set(cell.memory_nodes) <= set(cell.host_nodes)
        node_cpus = {cpu for node in cell.host_nodes for cpu in destination.node(node).usable_cpus}
        for vcpu in cell.vcpus:
            if guest.pinning != "none":
                assert set(plan.vcpu_pins[vcpu]) <= node_cpus, (vcpu, plan.vcpu_pins[vcpu], cell.host_nodes)
    assert set(plan.numatune_nodes) == {node for cell in plan.cells for node in cell.memory_nodes}
    if guest.dedicated:
        pinned = [plan.vcpu_pins[vcpu] for vcpu in range(guest.vcpus)]
        assert all(len(cpus) == 1 for cpus in pinned)
        assert len({cpus[0] for cpus in pinned}) == guest.vcpus


def test_the_same_host_keeps_every_binding() -> None:
    """A restore on the host the guest was laid out on: the plan is the layout's own host side."""
    layout = laid_out("seed-4node-ring", 8, 8 * GIB, mode="host", pinning="core", emulator_pin="nodes")
    ring = host("seed-4node-ring")
    plan = plan_destination(moving(layout, ring), ring)
    assert [cell.host_nodes for cell in plan.cells] == [cell.host_nodes for cell in layout.cells]
    assert [cell.memory_nodes for cell in plan.cells] == [cell.memory_nodes for cell in layout.cells]
    assert layout.vcpu_pins is not None
    assert [plan.vcpu_pins[vcpu] for vcpu in range(8)] == list(layout.vcpu_pins)
    assert plan.emulator_pins == layout.emulator_pins
    assert plan.distance_error == 0
    assert "kept exactly" in plan.why


def test_other_node_ids_and_cpu_numbering() -> None:
    """POWER nodes 0 and 1 (SMT4) to a host numbering its nodes 0 and 8: cells follow, pins on node 8's CPUs."""
    layout = laid_out("smt4-power", 16, 8 * GIB, mode="host", distribution="siblings", pinning="thread")
    destination = host("sparse-ids")
    guest = moving(layout, host("smt4-power"))
    plan = plan_destination(guest, destination)
    check_plan(plan, guest, destination)
    assert [cell.host_nodes for cell in plan.cells] == [(0,), (8,)]
    assert [cell.source_nodes for cell in plan.cells] == [(0,), (1,)]
    # The move names nodes as every other message does (_core/wording.py).
    assert plan.why.startswith("cell 0 host node 0 -> host node 0; cell 1 host node 1 -> host node 8; ")
    assert plan.numatune_nodes == (0, 8)
    node8 = set(destination.node(8).usable_cpus)
    assert all(plan.vcpu_pins[vcpu][0] in node8 for vcpu in plan.cells[1].vcpus)
    # Each guest core of four threads stays on one host core of four.
    cores = {cpu: core for node in destination.nodes for core in node.cores for cpu in core}
    for first in range(0, 16, 4):
        assert len({cores[plan.vcpu_pins[vcpu][0]] for vcpu in range(first, first + 4)}) == 1


def test_far_siblings_keep_guest_cores_on_host_cores() -> None:
    """SMT2 numbered 8,9 to SMT2 numbered 0,64: a guest core's two vCPUs land on one host core's two threads."""
    layout = laid_out("intel-2s-smt2", 8, 8 * GIB, mode="host", distribution="siblings", pinning="thread")
    destination = host("smt2-far-siblings")
    guest = moving(layout)
    plan = plan_destination(guest, destination)
    check_plan(plan, guest, destination)
    for first in range(0, 8, 2):
        a, b = plan.vcpu_pins[first][0], plan.vcpu_pins[first + 1][0]
        assert abs(a - b) == 64, (first, a, b)


def test_narrower_cores_pin_thread_by_thread_and_say_so() -> None:
    """A guest of two-thread cores on a host without SMT: one host CPU per vCPU, and the plan says why."""
    layout = laid_out("intel-2s-smt2", 8, 8 * GIB, mode="host", distribution="siblings", pinning="thread")
    destination = host("seed-4node-ring")
    guest = moving(layout)
    plan = plan_destination(guest, destination)
    check_plan(plan, guest, destination)
    assert "fewer than 2 threads" in plan.why
    # Two cells on a ring of four nodes: two neighbours (21), never the diagonal (31), nearest the guest's 21.
    first, second = plan.cells[0].host_nodes[0], plan.cells[1].host_nodes[0]
    assert destination.distance(first, second) == 21
    assert plan.distance_error == 0


def test_cells_keep_nodes_of_their_own_before_distances() -> None:
    """Four cells of one NPS4 socket (12 apart) onto the ring: four nodes, not one node at 11, though 11 is nearer."""
    layout = laid_out("amd-2s-nps4", 8, 8 * GIB, mode="node", nodeset="0-3")
    destination = host("seed-4node-ring")
    guest = moving(layout)
    plan = plan_destination(guest, destination)
    check_plan(plan, guest, destination)
    assert sorted(cell.host_nodes for cell in plan.cells) == [(0,), (1,), (2,), (3,)]
    # |12 - 21| for four neighbour pairs, |12 - 31| for the two diagonals.
    assert plan.distance_error == 4 * 9 + 2 * 19


def test_distances_choose_the_socket() -> None:
    """Two cells of one NPS4 socket (12 apart) with nodes 0 and 1 full: the other two of that socket, not across."""
    layout = laid_out("amd-2s-nps4", 4, 4 * GIB, mode="node", nodeset="0-1")
    destination = host("amd-2s-nps4")
    others = [
        GuestBinding(
            name=f"big{node}",
            cells=(CellBinding(0, (0,), 29 * GIB, "strict", (node,)),),
            running=True,
        )
        for node in (0, 1)
    ]
    report = check_capacity(destination, place_guests(destination, others))
    guest = moving(layout)
    plan = plan_destination(guest, destination, report)
    check_plan(plan, guest, destination)
    nodes = sorted(node for cell in plan.cells for node in cell.host_nodes)
    assert nodes == [2, 3]
    assert plan.distance_error == 0
    # The planned guest fits the destination with the others.
    after = check_capacity(destination, [*place_guests(destination, others), place_guest(destination, plan.binding())])
    assert after.fits, after.problems


def test_dedicated_cpus_of_other_guests_are_left_alone() -> None:
    layout = laid_out("seed-4node-ring", 4, 4 * GIB, mode="node", nodeset="0", pinning="core")
    destination = host("seed-4node-ring")
    taken: Mapping[int, str] = dict.fromkeys((0, 1, 2, 3, 4, 5), "web01")
    guest = moving(layout)
    plan = plan_destination(guest, destination, taken_cpus=taken)
    check_plan(plan, guest, destination)
    assert not set(plan.held_cpus) & set(taken)
    # Node 0 is all web01's, node 1 half: the cell takes a node whose four CPUs are free.
    assert plan.cells[0].host_nodes in ((2,), (3,))


def test_cells_that_shared_a_node_share_one_again() -> None:
    """Two cells on one source node (distance 11) share a destination node, in two slices."""
    layout = laid_out("intel-2s-smt2", 8, 4 * GIB, mode="node", nodeset="1", cells=2, pinning="thread")
    destination = host("unequal-nodes")
    guest = moving(layout)
    plan = plan_destination(guest, destination)
    check_plan(plan, guest, destination)
    assert plan.cells[0].host_nodes == plan.cells[1].host_nodes
    assert plan.distance_error == 0


def test_a_smaller_host_refuses_naming_guest_cell_and_limit() -> None:
    layout = laid_out("intel-2s-smt2", 8, 40 * GIB, mode="host")
    with pytest.raises(PlacementError) as caught:
        plan_destination(moving(layout), host("single-node"))
    message = str(caught.value)
    assert message.startswith("guest db01: guest cell 0 (20 GiB, 4 vCPUs) must live on one destination node")
    assert "destination node 0 has 16 GiB free" in message


def test_cells_that_fit_alone_but_not_together_are_refused() -> None:
    """Four 512 MiB cells with vCPUs, three CPU nodes of under 1 GiB each: no node takes two."""
    layout = laid_out("intel-snc2-cxl", 4, 2 * GIB, mode="host")
    with pytest.raises(PlacementError) as caught:
        plan_destination(moving(layout), host("lab4-hmat"))
    message = str(caught.value)
    assert "fits the destination alone, but not all at once" in message
    assert "on destination host nodes 0-2, which have" in message


def test_dedicated_cpus_refusal_names_the_unit() -> None:
    layout = laid_out("amd-2s-nps4", 12, 8 * GIB, mode="node", nodeset="0", pinning="thread")
    with pytest.raises(PlacementError) as caught:
        plan_destination(moving(layout), host("seed-4node-ring"))
    message = str(caught.value)
    assert message.startswith("guest db01: guest cell 0 (8 GiB, 12 vCPUs) must live on one destination node")
    assert "4 free host threads for pinning thread" in message


def test_many_cells_are_placed_one_at_a_time_and_stay_whole() -> None:
    """Sixteen cells on a sixteen-node host: too many choices to try all, placed one group at a time."""
    layout = laid_out("large-16node-1024cpu", 64, 64 * GIB, mode="host", pinning="core")
    destination = host("large-16node-1024cpu")
    guest = moving(layout)
    plan = plan_destination(guest, destination)
    check_plan(plan, guest, destination)
    assert "most constrained cells first, backtracking" in plan.why
    assert plan.distance_error == 0


@pytest.mark.parametrize(
    ("source", "destination", "options"),
    [
        ("seed-4node-ring", "amd-2s-nps4", {"mode": "host"}),
        ("amd-2s-nps4", "intel-2s-smt2", {"mode": "node", "nodeset": "0,4"}),
        ("intel-2s-smt2", "sparse-ids", {"mode": "host", "pinning": "core"}),
        ("unequal-nodes", "smt2-far-siblings", {"mode": "host", "emulator_pin": "nodes"}),
        ("intel-snc2-cxl", "seed-4node-ring", {"mode": "node", "nodeset": "0-1,4", "cpuless_cells": True}),
    ],
)
def test_fixture_pairs(source: str, destination: str, options: Mapping[str, object]) -> None:
    layout = laid_out(source, 4, 3 * GIB, **options)
    target = host(destination)
    guest = moving(layout, host(source))
    plan = plan_destination(guest, target)
    check_plan(plan, guest, target)
    if plan.emulator_pins is not None:
        assert set(plan.emulator_pins) <= {cpu for node in plan.host_nodes for cpu in target.node(node).usable_cpus}
    assert plan.to_dict()["guest"] == "db01"


def test_guest_without_distances_is_read_as_twenty() -> None:
    cells: Sequence[MovingCell] = (MovingCell(0, (0, 1), 1 * GIB, None, ()), MovingCell(1, (2, 3), 1 * GIB, None, ()))
    guest = MovingGuest(name="db01", vcpus=4, cells=tuple(cells))
    plan = plan_destination(guest, host("intel-2s-smt2"))
    # intel-2s-smt2 reports 21 between its sockets: one off the guest's 20, on the one pair of cells.
    assert [cell.host_nodes for cell in plan.cells] == [(0,), (1,)]
    assert plan.distance_error == 1


def test_hugepage_cells_count_against_the_destinations_pools() -> None:
    """2 MiB pages: the plan's binding counts in the destination's 2 MiB pools (2 GiB a node on intel-snc2-cxl)."""
    cells = (MovingCell(0, (0, 1), 3 * GIB, 2048, (0,)),)
    guest = MovingGuest(name="db01", vcpus=2, cells=cells)
    destination = host("intel-snc2-cxl")
    with pytest.raises(PlacementError) as caught:
        plan_destination(guest, destination)
    assert str(caught.value).endswith("; the roomiest destination node 0 has 2 GiB free in 2 MiB pages")
    small = MovingGuest(name="db01", vcpus=2, cells=(MovingCell(0, (0, 1), 1 * GIB, 2048, (0,)),))
    plan = plan_destination(small, destination)
    report = check_capacity(destination, [place_guest(destination, plan.binding())])
    pools = {node.id: node.hugepages for node in report.nodes}
    used = [pool for pool in pools[plan.cells[0].memory_nodes[0]] if pool.size_kib == 2048]
    assert used and used[0].demand_kib == 1 * GIB


def two_nodes(node0_kib: int, node1_kib: int) -> HostTopology:
    """Two nodes of two CPUs each, with the memory given (no hugepages)."""
    shape = HostShape(sockets=2, cores_per_node=2, memory_kib=(node0_kib, node1_kib), page_sizes_kib=(4, 2048))
    return parse_capabilities(build_capabilities(shape))


def with_dimms(*dimms: DimmBinding, memory_kib: int = 512 * MIB) -> MovingGuest:
    """A guest of one 512 MiB cell on source node 0 with the memory devices given."""
    return MovingGuest(name="db01", vcpus=2, cells=(MovingCell(0, (0, 1), memory_kib, None, (0,)),), dimms=dimms)


def test_memory_devices_choose_the_node_with_room_for_them() -> None:
    """512 MiB cell and 2 GiB of DIMMs: node 0 (1400 MiB) holds the cell alone but not with its DIMMs; node 1 does."""
    destination = two_nodes(1400 * MIB, 32 * GIB)
    guest = with_dimms(DimmBinding(0, 1 * GIB, (0,)), DimmBinding(0, 1 * GIB, (0,)))
    plan = plan_destination(guest, destination)
    assert [cell.host_nodes for cell in plan.cells] == [(1,)]
    # The capacity check after the plan agrees: the DIMMs go with their cell.
    report = check_destination(destination, [], plan)
    node1 = next(node for node in report.nodes if node.id == 1)
    assert node1.demand_kib == 512 * MIB + 2 * GIB


def test_memory_devices_that_fit_nowhere_are_refused_with_the_cell() -> None:
    """A 512 MiB cell with a 1 GiB DIMM on a host of one 1 GiB node: refused, the devices named."""
    destination = parse_capabilities(build_capabilities(HostShape(cores_per_node=2, memory_kib=1 * GIB)))
    with pytest.raises(PlacementError) as caught:
        plan_destination(with_dimms(DimmBinding(0, 1 * GIB, (0,))), destination)
    assert str(caught.value).startswith(
        "guest db01: guest cell 0 (512 MiB and 1 GiB of memory devices, 2 vCPUs) must live on one destination node"
    )
    # Without the DIMM it fits.
    assert plan_destination(with_dimms(), destination).cells[0].host_nodes == (0,)


def test_a_virtio_mem_device_counts_what_the_capacity_check_counts() -> None:
    """A running guest's virtio-mem device holds its requested size, or more while a shrink is pending."""
    destination = two_nodes(1400 * MIB, 32 * GIB)
    # Requested 512 MiB of a 4 GiB device: the cell and its device fit node 0 (1 GiB of 1400 MiB).
    requested = with_dimms(DimmBinding(0, 512 * MIB, (0,), plugged_kib=512 * MIB))
    assert plan_destination(requested, destination).cells[0].host_nodes == (0,)
    # Still 1 GiB plugged of 512 MiB requested: it holds 1 GiB until the guest gives memory back.
    shrinking = with_dimms(DimmBinding(0, 512 * MIB, (0,), plugged_kib=1 * GIB))
    plan = plan_destination(shrinking, destination)
    assert plan.cells[0].host_nodes == (1,)
    check_destination(destination, [], plan)


def test_memory_devices_of_their_own_page_size_count_in_that_pool() -> None:
    """A DIMM backed by 2 MiB pages needs the pool of the node its cell goes to, the cell normal pages."""
    shape = HostShape(sockets=2, cores_per_node=2, memory_kib=4 * GIB, page_sizes_kib=(4, 2048), hugepages={2048: 256})
    destination = parse_capabilities(build_capabilities(shape))
    fits = with_dimms(DimmBinding(0, 256 * MIB, (0,), hugepage_kib=2048))
    plan = plan_destination(fits, destination)
    check_destination(destination, [], plan)
    too_big = with_dimms(DimmBinding(0, 1 * GIB, (0,), hugepage_kib=2048))
    with pytest.raises(PlacementError) as caught:
        plan_destination(too_big, destination)
    assert str(caught.value).startswith("guest db01: guest cell 0 (512 MiB and 1 GiB of memory devices, 2 vCPUs)")
    assert str(caught.value).endswith("; the roomiest destination node 0 has 512 MiB free in 2 MiB pages")


def test_the_check_after_the_plan_refuses_what_other_guests_leave_no_room_for() -> None:
    """``check_destination`` names the guest and the node, with the capacity report in the details."""
    destination = two_nodes(2 * GIB, 2 * GIB)
    plan = plan_destination(with_dimms(DimmBinding(0, 1 * GIB, (0,))), destination)
    node = plan.cells[0].host_nodes[0]
    resident = GuestBinding(name="web01", cells=(CellBinding(0, (0,), 1 * GIB, "strict", (node,)),), running=True)
    with pytest.raises(CapacityError) as caught:
        check_destination(destination, [resident], plan)
    assert str(caught.value).startswith("guest db01: the guests do not fit the host (1 problem): ")
    assert "capacity" in caught.value.details


def packed_16() -> tuple[MovingGuest, HostTopology]:
    """Nine cells on sixteen nodes (more than EXHAUSTIVE_CHOICES choices): three big cells pack one way only.

    Node 0 has 10 GiB, node 1 6 GiB, the others 1 GiB: the 6 GiB cell must take node 1, and both 5 GiB cells
    node 0.  Largest first without backtracking put the 6 GiB cell on node 0 and had nowhere for cell 2.
    """
    memory = [10 * GIB, 6 * GIB] + [1 * GIB] * 14
    destination = parse_capabilities(
        build_capabilities(HostShape(sockets=2, nodes_per_socket=8, cores_per_node=2, memory_kib=memory))
    )
    sizes = [6 * GIB, 5 * GIB, 5 * GIB] + [64 * MIB] * 6
    cells = tuple(MovingCell(id=i, vcpus=(i,), memory_kib=size, source_nodes=(i,)) for i, size in enumerate(sizes))
    return MovingGuest(name="db01", vcpus=len(cells), cells=cells, pinning="node"), destination


def test_the_search_above_the_limit_backtracks_to_a_fit() -> None:
    guest, destination = packed_16()
    plan = plan_destination(guest, destination)
    check_plan(plan, guest, destination)
    assert [cell.host_nodes for cell in plan.cells[:3]] == [(1,), (0,), (0,)]
    assert "most constrained cells first, backtracking" in plan.why
    assert plan.considered <= EXHAUSTIVE_CHOICES


def test_the_search_that_runs_out_of_tries_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """No "none of the nodes can hold it" for a cell that fits alone: the search says it stopped."""
    monkeypatch.setattr(move_planner, "EXHAUSTIVE_CHOICES", 8)
    guest, destination = packed_16()
    with pytest.raises(PlacementError) as caught:
        plan_destination(guest, destination)
    message = str(caught.value)
    assert message.startswith("guest db01: found no place for guest cell ")
    assert "within 8 tries" in message
    assert "none of" not in message


def test_dedicated_pins_leave_the_cpus_other_guests_pins_name() -> None:
    """A running guest pinned (shared) to node 0's CPUs: a thread-pinned guest from node 0 goes elsewhere."""
    ring = host("seed-4node-ring")
    node0 = ring.node(0).usable_cpus
    resident = GuestBinding(
        name="web01",
        cells=(CellBinding(0, (0, 1), 512 * MIB, "strict", (0,)),),
        vcpu_cpus={0: node0, 1: node0},
        running=True,
    )
    guest = MovingGuest(name="db01", vcpus=2, cells=(MovingCell(0, (0, 1), 512 * MIB, None, (0,)),), pinning="thread")
    report = check_capacity(ring, place_guests(ring, [resident]))
    plan = plan_destination(guest, ring, report, others=[resident])
    check_plan(plan, guest, ring)
    assert plan.cells[0].host_nodes != (0,)
    assert not set(plan.held_cpus) & set(node0)
    check_destination(ring, [resident], plan)
    # Shared pinning may share those CPUs: it stays on its node.
    shared = plan_destination(replace(guest, pinning="node"), ring, report, others=[resident])
    assert shared.cells[0].host_nodes == (0,)


def test_an_isolated_emulator_keeps_a_dedicated_cpu_of_its_own() -> None:
    """emulator_threads isolate: one more dedicated CPU on cell 0's node, held, and counted in the fit."""
    ring = host("seed-4node-ring")
    cells = (MovingCell(0, (0, 1), 512 * MIB, None, (0,)), MovingCell(1, (2, 3), 512 * MIB, None, (1,)))
    guest = MovingGuest(name="db01", vcpus=4, cells=cells, pinning="thread", emulator_threads="isolate")
    plan = plan_destination(guest, ring)
    check_plan(plan, guest, ring)
    assert plan.emulator_pins is not None and len(plan.emulator_pins) == 1
    emulator = plan.emulator_pins[0]
    assert emulator in plan.held_cpus
    assert emulator not in {cpu for cpus in plan.vcpu_pins.values() for cpu in cpus}
    assert emulator in ring.node(plan.cells[0].host_nodes[0]).usable_cpus
    assert emulator not in plan.shared_cpus
    assert "emulator threads isolated" in plan.why
    check_destination(ring, [], plan)
    # A cell with as many vCPUs as a node has CPUs leaves none for the emulator beside it.
    width = len(ring.node(0).usable_cpus)
    full = MovingGuest(
        name="db01",
        vcpus=width,
        cells=(MovingCell(0, tuple(range(width)), 512 * MIB, None, (0,)),),
        pinning="thread",
        emulator_threads="isolate",
    )
    with pytest.raises(PlacementError) as caught:
        plan_destination(full, ring)
    assert f"({format_kib(512 * MIB)}, {width} vCPUs and the isolated emulator's CPU)" in str(caught.value)
    assert f"{width} free host threads for pinning thread" in str(caught.value)
