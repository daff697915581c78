# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hotplug plans: which vCPUs a live hot-add enables, and how a memory hot-add is cut into DIMMs."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import (
    DimmPlan,
    balanced_enable_order,
    check_memory_slots,
    dimm_granule_kib,
    plan_dimms,
    plan_virtio_mem,
    vcpus_to_enable,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import DIMM_BLOCK_KIB
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

MIB = 1024
GIB = 1024 * 1024
BLOCK = DIMM_BLOCK_KIB  # 128 MiB
GUEST = "db01"


def plan(name: str, vcpus: int, memory_kib: int, **spec: Any) -> Layout:
    guest = GuestShape(vcpus=vcpus, memory_kib=memory_kib, name=GUEST)
    return compute_layout(host(name), VnumaSpec.from_mapping(spec), guest)


# -- vCPUs ----------------------------------------------------------------------------------------------


@pytest.fixture
def two_cells() -> Layout:
    """Ring nodes 1 and 3: cell 0 = vCPUs 0-3, cell 1 = vCPUs 4-7 (contiguous)."""
    return plan("seed-4node-ring", 8, 4 * GIB, mode="node", nodeset="1,3")


@pytest.fixture
def siblings() -> Layout:
    """SMT2 guest cores: cell 0 = cores (0,1) (2,3), cell 1 = cores (4,5) (6,7)."""
    return plan("intel-2s-smt2", 8, 4 * GIB, distribution="siblings")


def test_enable_balances_by_cell_share_not_lowest_id(two_cells: Layout) -> None:
    # libvirt would enable 1, 2, 3 (all in cell 0).  Balanced: 4 (cell 1 at 1/4 beats cell 0 at 2/4), then the
    # cells tie at 2/4 and the lower cell wins (1), then 5.
    assert vcpus_to_enable(two_cells, {0}, 2) == (4,)
    assert vcpus_to_enable(two_cells, {0}, 4) == (4, 1, 5)
    assert vcpus_to_enable(two_cells, {0}, 8) == (4, 1, 5, 2, 6, 3, 7)


def test_enable_continues_from_any_online_set(two_cells: Layout) -> None:
    # Cell 0 already has 0-2 online (3/4), cell 1 nothing: cell 1 catches up first.
    assert vcpus_to_enable(two_cells, {0, 1, 2}, 6) == (4, 5, 6)
    # Only cell 1 online (besides vCPU 0): cell 0 catches up.
    assert vcpus_to_enable(two_cells, {0, 4, 5, 6}, 7) == (1, 2, 3)


def test_enable_nothing_when_target_is_reached(two_cells: Layout) -> None:
    assert vcpus_to_enable(two_cells, {0, 4}, 2) == ()
    assert vcpus_to_enable(two_cells, {0, 4, 1}, 2) == ()
    assert vcpus_to_enable(two_cells, range(8), 8) == ()


def test_enable_whole_guest_cores(siblings: Layout) -> None:
    assert siblings.topology.threads == 2
    # Core (0,1) is online; the next core is cell 1's (4,5), enabled whole even for a target of 3.
    assert vcpus_to_enable(siblings, {0, 1}, 3) == (4, 5)
    assert vcpus_to_enable(siblings, {0, 1}, 4) == (4, 5)
    assert vcpus_to_enable(siblings, {0, 1}, 6) == (4, 5, 2, 3)
    assert vcpus_to_enable(siblings, {0, 1}, 8) == (4, 5, 2, 3, 6, 7)


def test_enable_follows_the_round_robin_cells() -> None:
    # unequal nodes, round-robin V=18: cells of 8, 4 and 6 vCPUs (0-3,9-12 | 4-5,13-14 | 6-8,15-17).
    layout = plan("unequal-nodes", 18, 12 * GIB, distribution="round-robin")
    # 0 is in cell 0 (1/8); cell 2 goes next (1/6 < 2/8 = 1/4); cells 0 and 1 then tie at 1/4 and 0 wins.
    assert vcpus_to_enable(layout, {0}, 3) == (6, 1)
    assert vcpus_to_enable(layout, {0}, 4) == (6, 1, 4)


@pytest.mark.parametrize(
    ("name", "spec", "vcpus"),
    [
        ("seed-4node-ring", {}, 8),
        ("seed-4node-ring", {"distribution": "interleave"}, 10),
        ("seed-4node-ring", {"mode": "node", "cells": 3}, 11),
        ("unequal-nodes", {"distribution": "round-robin"}, 18),
        ("smt4-power", {"distribution": "siblings"}, 24),
        ("intel-snc2-cxl", {"mode": "node", "nodeset": "0-1,4"}, 6),
    ],
    ids=["ring", "ring-interleave", "ring-3-cells", "unequal-round-robin", "smt4-siblings", "cxl-cpuless"],
)
def test_enable_agrees_with_the_layout_enable_order(name: str, spec: dict[str, Any], vcpus: int) -> None:
    """From any prefix of the layout's enable order (whole units), a hot-add continues that same order."""
    layout = plan(name, vcpus, 4 * GIB, **spec)
    order = list(layout.enable_order)
    threads = layout.topology.threads
    assert sorted(order) == list(range(vcpus))
    assert order[:threads] == list(range(threads))
    for online in range(threads, vcpus + 1, threads):
        for target in range(online + 1, vcpus + 1):
            wanted = -(-target // threads) * threads
            assert vcpus_to_enable(layout, order[:online], target) == tuple(order[online:wanted])


def test_enable_refuses_more_than_the_maximum(two_cells: Layout) -> None:
    with pytest.raises(PlacementError) as caught:
        vcpus_to_enable(two_cells, {0}, 9)
    assert str(caught.value) == "guest db01: cannot bring 9 vCPUs online: the guest's maximum is 8 vCPUs"


def test_enable_refuses_unknown_online_ids(two_cells: Layout) -> None:
    with pytest.raises(SpecError) as caught:
        vcpus_to_enable(two_cells, {0, 8, 9, 12}, 4)
    assert str(caught.value) == "guest db01: online vCPU ids 8-9,12 are not among the guest's 8 vCPUs (0-7)"
    with pytest.raises(SpecError) as caught:
        vcpus_to_enable(two_cells, {-1, 0}, 4)
    assert str(caught.value) == "guest db01: online vCPU ids -1 are not among the guest's 8 vCPUs (0-7)"


@pytest.mark.parametrize("target", [0, -3, True, "4", 2.0])
def test_enable_refuses_a_bad_target(two_cells: Layout, target: Any) -> None:
    with pytest.raises(SpecError) as caught:
        vcpus_to_enable(two_cells, {0}, target)
    assert str(caught.value) == f"guest db01: the number of online vCPUs {target!r} must be a positive integer"


def test_balanced_enable_order_directly() -> None:
    units = [[(0,), (1,), (2,), (3,)], [(4,), (5,)]]
    # Cell 1 is half the size of cell 0.  After 0: cell 0 would reach 2/4, cell 1 1/2, a tie the lower cell
    # wins; then cell 1 (1/2 < 3/4); then cell 0 (3/4 < 2/2); then 4/4 ties 2/2 and cell 0 wins again.
    assert balanced_enable_order(units, first=(0,)) == [(0,), (1,), (4,), (2,), (3,), (5,)]
    # Online units are skipped and counted: 0 and 4 online, so cell 0 (2/4) goes before cell 1 (2/2).
    assert balanced_enable_order(units, online={0, 4}) == [(1,), (2,), (3,), (5,)]
    # no units at all, and cells without units.
    assert balanced_enable_order([]) == []
    assert balanced_enable_order([[], [(0,)], []]) == [(0,)]


# -- DIMMs ---------------------------------------------------------------------------------------------


@pytest.fixture
def four_cells() -> Layout:
    """Ring host mode: 4 cells of 1 GiB on host nodes 0-3; up to 8 GiB in 8 slots."""
    return plan("seed-4node-ring", 8, 4 * GIB, max_memory="8 GiB", memory_slots=8)


def dimms(plans: tuple[DimmPlan, ...]) -> list[tuple[int, int, tuple[int, ...]]]:
    return [(p.cell, p.size_kib, p.host_nodes) for p in plans]


def test_one_dimm_per_cell(four_cells: Layout) -> None:
    assert dimms(plan_dimms(four_cells, 512 * MIB)) == [(c, BLOCK, (c,)) for c in range(4)]
    assert dimms(plan_dimms(four_cells, GIB)) == [(c, 2 * BLOCK, (c,)) for c in range(4)]
    # 5 blocks: one each, the fifth to cell 0 (least hot-added, then the lower id).
    assert dimms(plan_dimms(four_cells, 5 * BLOCK)) == [(0, 2 * BLOCK, (0,))] + [(c, BLOCK, (c,)) for c in (1, 2, 3)]


def test_small_hot_adds_walk_round_the_cells(four_cells: Layout) -> None:
    existing: list[tuple[int, int]] = []
    for expected_cell in (0, 1, 2, 3, 0, 1):
        (dimm,) = plan_dimms(four_cells, BLOCK, existing)
        assert (dimm.cell, dimm.size_kib, dimm.host_nodes) == (expected_cell, BLOCK, (expected_cell,))
        existing.append((dimm.cell, dimm.size_kib))
    # Cells 0 and 1 hold two blocks each, cells 2 and 3 one: two more blocks go to cells 2 and 3.
    assert [d.cell for d in plan_dimms(four_cells, 2 * BLOCK, existing)] == [2, 3]


def test_remainder_goes_to_the_cells_with_least_hot_added_memory(four_cells: Layout) -> None:
    existing = [(0, BLOCK), (1, BLOCK), (2, BLOCK)]
    assert dimms(plan_dimms(four_cells, 3 * BLOCK, existing)) == [(0, BLOCK, (0,)), (1, BLOCK, (1,)), (3, BLOCK, (3,))]
    # Sizes count, not DIMMs: cell 3 holds one large DIMM, so cells 0-2 come first.
    existing = [(0, BLOCK), (1, BLOCK), (2, BLOCK), (3, 4 * BLOCK)]
    assert [d.cell for d in plan_dimms(four_cells, 2 * BLOCK, existing)] == [0, 1]


def test_dimms_bind_the_memory_nodes_of_their_cell() -> None:
    # cells 2 on the ring: groups {0,1} and {2,3}; preferred binds the first node of each group only.
    layout = plan("seed-4node-ring", 8, 4 * GIB, mode="node", cells=2, max_memory="8 GiB", memory_slots=4)
    assert dimms(plan_dimms(layout, 2 * BLOCK)) == [(0, BLOCK, (0, 1)), (1, BLOCK, (2, 3))]
    layout = plan(
        "seed-4node-ring", 8, 4 * GIB, mode="node", cells=2, max_memory="8 GiB", memory_slots=4, memory_mode="preferred"
    )
    assert dimms(plan_dimms(layout, 2 * BLOCK)) == [(0, BLOCK, (0,)), (1, BLOCK, (2,))]


def test_cpuless_cells_get_dimms_too() -> None:
    layout = plan("intel-snc2-cxl", 4, 3 * GIB, mode="node", nodeset="0-1,4", max_memory="6 GiB", memory_slots=8)
    assert dimms(plan_dimms(layout, 3 * BLOCK)) == [(0, BLOCK, (0,)), (1, BLOCK, (1,)), (2, BLOCK, (4,))]


def test_dimm_granule_follows_the_hugepage_size() -> None:
    # 16 pages of 1 GiB per node on this host.
    layout = plan("smt2-far-siblings", 8, 2 * GIB, hugepages="1 GiB", max_memory="8 GiB", memory_slots=4)
    assert dimm_granule_kib(layout) == GIB
    assert dimms(plan_dimms(layout, 3 * GIB)) == [(0, 2 * GIB, (0,)), (1, GIB, (1,))]
    with pytest.raises(SpecError) as caught:
        plan_dimms(layout, 512 * MIB)
    assert str(caught.value) == (
        "guest db01: the memory to hot-add, 512 MiB, is not a multiple of 1 GiB "
        "(the guest onlines memory in blocks of that size)"
    )
    # 2 MiB pages divide the 128 MiB block: the block stays the granule.
    layout = plan("intel-2s-smt2", 8, 2 * GIB, hugepages="2 MiB", max_memory="8 GiB", memory_slots=4)
    assert dimm_granule_kib(layout) == BLOCK


def test_dimm_granule_error(four_cells: Layout) -> None:
    with pytest.raises(SpecError) as caught:
        plan_dimms(four_cells, 100 * MIB)
    assert str(caught.value) == (
        "guest db01: the memory to hot-add, 100 MiB, is not a multiple of 128 MiB "
        "(the guest onlines memory in blocks of that size)"
    )


def test_slot_limit(four_cells: Layout) -> None:
    # 7 slots used: 4 DIMMs do not fit in the one left.
    existing = [(cell % 4, BLOCK) for cell in range(7)]
    with pytest.raises(PlacementError) as caught:
        plan_dimms(four_cells, 4 * BLOCK, existing)
    assert str(caught.value) == "guest db01: hot-adding 512 MiB needs 4 memory slots, 1 of 8 are free"
    # ... but one DIMM does.
    assert len(plan_dimms(four_cells, BLOCK, existing)) == 1


def test_slot_limit_smaller_than_the_cells() -> None:
    layout = plan("seed-4node-ring", 8, 4 * GIB, max_memory="8 GiB", memory_slots=2)
    with pytest.raises(PlacementError) as caught:
        plan_dimms(layout, 512 * MIB)
    assert str(caught.value) == "guest db01: hot-adding 512 MiB needs 4 memory slots, 2 of 2 are free"
    assert [d.cell for d in plan_dimms(layout, 256 * MIB)] == [0, 1]


def test_memory_slots_below_the_devices_a_guest_keeps_are_refused(four_cells: Layout) -> None:
    """The one slot rule (plan_virtio_mem's): DIMMs kept from before need their slots too, added or not."""
    check_memory_slots(four_cells, 8)
    with pytest.raises(PlacementError) as caught:
        check_memory_slots(four_cells, 9)
    assert (
        str(caught.value) == "guest db01: keeping the guest's 9 memory devices needs 9 memory slots; memory_slots is 8"
    )
    # A hot-add into a guest that already holds more devices than slots says the same, not "-1 of 8 are free".
    with pytest.raises(PlacementError) as caught:
        plan_dimms(four_cells, BLOCK, [(cell % 4, BLOCK) for cell in range(9)])
    assert (
        str(caught.value) == "guest db01: keeping the guest's 9 memory devices needs 9 memory slots; memory_slots is 8"
    )
    # The devices other than DIMMs (held) take slots too.
    with pytest.raises(PlacementError) as caught:
        plan_dimms(four_cells, 4 * BLOCK, [(0, BLOCK)], held=5)
    assert str(caught.value) == "guest db01: hot-adding 512 MiB needs 4 memory slots, 3 of 8 are free"
    # virtio-mem's check is the same rule and message.
    with pytest.raises(PlacementError) as caught:
        plan_virtio_mem(four_cells, 0, 6)
    assert str(caught.value) == (
        "guest db01: memory_device virtio-mem needs one memory slot per cell, 4; memory_slots is 8 "
        "(6 held by other memory devices)"
    )


def test_no_memory_slots_no_slot_limit() -> None:
    layout = plan("seed-4node-ring", 8, 4 * GIB)
    check_memory_slots(layout, 300)


def test_max_memory_limit(four_cells: Layout) -> None:
    # Boot memory 4 GiB + 3 GiB hot-added already + 2 GiB = 9 GiB, above 8 GiB.
    existing = [(cell, 768 * MIB) for cell in range(4)]
    with pytest.raises(PlacementError) as caught:
        plan_dimms(four_cells, 2 * GIB, existing)
    assert str(caught.value) == "guest db01: hot-adding 2 GiB would bring the guest to 9 GiB, above max_memory 8 GiB"
    # Exactly up to max_memory is allowed.
    assert sum(d.size_kib for d in plan_dimms(four_cells, GIB, existing)) == GIB


def test_hotplug_needs_max_memory() -> None:
    layout = plan("seed-4node-ring", 8, 4 * GIB)
    with pytest.raises(SpecError) as caught:
        plan_dimms(layout, BLOCK)
    assert str(caught.value) == "guest db01: memory hotplug needs max_memory and memory_slots in the vnuma spec"


@pytest.mark.parametrize("size", [0, -BLOCK, True, "128 MiB"])
def test_hot_add_size_must_be_positive(four_cells: Layout, size: Any) -> None:
    with pytest.raises(SpecError) as caught:
        plan_dimms(four_cells, size)
    assert str(caught.value) == f"guest db01: the memory to hot-add {size!r} must be a positive size"


def test_existing_dimm_beyond_the_cells(four_cells: Layout) -> None:
    with pytest.raises(PlacementError) as caught:
        plan_dimms(four_cells, BLOCK, [(4, BLOCK)])
    assert str(caught.value) == "guest db01: an existing DIMM targets guest cell 4, the guest has 4 cells"


def test_hotplug_errors_are_vnuma_errors(four_cells: Layout) -> None:
    for call in (lambda: plan_dimms(four_cells, 1), lambda: vcpus_to_enable(four_cells, {0}, 99)):
        with pytest.raises(VnumaError) as caught:
            call()
        assert caught.value.guest == GUEST
