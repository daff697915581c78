# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virtio-mem per guest cell: the devices' sizes and the requested sizes of a resize (``_core/hotplug.py``).

Both follow the balance rule of the cells' own memory (``balanced_shares``), so the expected values
here are worked out by hand from that rule, not read back from the code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core import partitioner
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import (
    balanced_shares,
    check_memory_options,
    even_split,
    keep_requested,
    plan_requested,
    plan_virtio_mem,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities

CAPABILITIES = Path(__file__).resolve().parents[3] / "fixtures" / "capabilities"
MIB = 1024
GIB = 1024 * MIB


def layout(host: str = "seed-4node-ring", vcpus: int = 8, **options: object) -> Layout:
    topology = parse_capabilities((CAPABILITIES / f"{host}.xml").read_text())
    spec = VnumaSpec.from_mapping({"memory_device": "virtio-mem", **options})
    return compute_layout(topology, spec, GuestShape(vcpus=vcpus, name="vm1"))


def test_balanced_shares_is_the_cells_rule() -> None:
    assert balanced_shares(10, 4) == [3, 3, 2, 2]
    assert balanced_shares(10, 3, [1, 1, 2]) == [3, 2, 5]
    # The rounding goes to the first cells, as the cells' memory always did.
    assert balanced_shares(7, 3, [2, 2, 2]) == [3, 2, 2]


def test_one_device_per_cell_sized_for_its_share_and_bound_like_it() -> None:
    ring = layout(memory="4 GiB", max_memory="12 GiB", memory_slots=8)
    plans = plan_virtio_mem(ring)
    assert [plan.cell for plan in plans] == [0, 1, 2, 3]
    assert [plan.size_kib for plan in plans] == [2 * GIB] * 4
    assert [plan.host_nodes for plan in plans] == [cell.memory_nodes for cell in ring.cells]
    assert {plan.block_kib for plan in plans} == {2 * MIB}
    assert {plan.requested_kib for plan in plans} == {0}
    assert {plan.page_kib for plan in plans} == {None}


def test_uneven_ranges_split_in_whole_blocks_the_larger_first() -> None:
    # 8 GiB + 6 MiB above 4 GiB of boot memory: 4099 blocks, 1025 to the first three cells.
    plans = plan_virtio_mem(layout(memory="4 GiB", max_memory=f"{12 * 1024 + 6} MiB", memory_slots=8))
    assert [plan.size_kib for plan in plans] == [1025 * 2 * MIB] * 3 + [1024 * 2 * MIB]


def test_vcpus_split_weights_the_devices_like_the_cells() -> None:
    # Node mode, 3 cells over 8 vCPUs: 3, 3 and 2 vCPUs.
    ring = layout(
        vcpus=8, mode="node", cells=3, memory="3 GiB", max_memory="11 GiB", memory_slots=4, memory_split="vcpus"
    )
    weights = [len(cell.vcpus) for cell in ring.cells]
    assert weights == [3, 3, 2]
    plans = plan_virtio_mem(ring)
    blocks = [plan.size_kib // (2 * MIB) for plan in plans]
    assert blocks == balanced_shares(4096, 3, weights) == [1536, 1536, 1024]


def test_other_memory_devices_keep_their_memory_and_slots() -> None:
    ring = layout(memory="4 GiB", max_memory="12 GiB", memory_slots=6)
    plans = plan_virtio_mem(ring, other_kib=512 * MIB, other_devices=2)
    assert sum(plan.size_kib for plan in plans) == 8 * GIB - 512 * MIB
    with pytest.raises(PlacementError) as refused:
        plan_virtio_mem(ring, other_kib=512 * MIB, other_devices=3)
    assert str(refused.value) == (
        "guest vm1: memory_device virtio-mem needs one memory slot per cell, 4; memory_slots is 6 "
        "(3 held by other memory devices)"
    )


def test_hugepages_make_the_block_and_back_the_device() -> None:
    far = layout("smt2-far-siblings", vcpus=8, memory="2 GiB", hugepages="1 GiB", max_memory="8 GiB", memory_slots=4)
    plans = plan_virtio_mem(far)
    assert [(plan.size_kib, plan.block_kib, plan.page_kib) for plan in plans] == [(3 * GIB, GIB, GIB)] * 2


def test_a_range_without_a_block_per_cell_is_refused() -> None:
    with pytest.raises(PlacementError) as refused:
        plan_virtio_mem(layout(memory="4 GiB", max_memory=f"{4 * 1024 + 6} MiB", memory_slots=8))
    assert str(refused.value) == (
        "guest vm1: max_memory 4102 MiB leaves 6 MiB above the boot memory 4 GiB: too little for a virtio-mem "
        "block of 2 MiB in each of 4 cells"
    )


def test_a_new_total_is_spread_like_the_cells() -> None:
    ring = layout(memory="4 GiB", max_memory="12 GiB", memory_slots=8)
    plans = plan_virtio_mem(ring)
    grown = plan_requested(ring, plans, 4 * GIB + 1030 * MIB)
    # 515 blocks: 129 to the first three cells, 128 to the last.
    assert [plan.requested_kib for plan in grown] == [258 * MIB] * 3 + [256 * MIB]
    # Shrinking is the same rule with a smaller total; the sizes never move.
    shrunk = plan_requested(ring, grown, 4 * GIB + 8 * MIB)
    assert [plan.requested_kib for plan in shrunk] == [2 * MIB] * 4
    assert [plan.size_kib for plan in shrunk] == [plan.size_kib for plan in plans]
    assert [plan.requested_kib for plan in plan_requested(ring, grown, 4 * GIB)] == [0] * 4
    assert [plan.requested_kib for plan in plan_requested(ring, plans, 12 * GIB)] == [2 * GIB] * 4


def test_a_full_device_passes_the_rest_to_the_next_cells() -> None:
    ring = layout(memory="4 GiB", max_memory="12 GiB", memory_slots=8)
    small, *rest = plan_virtio_mem(ring)
    devices = [small.__class__(small.cell, 4 * MIB, small.block_kib, small.host_nodes), *rest]
    # 16 MiB: 4 MiB each, but cell 0 holds 4 MiB only: nothing spills; 24 MiB: 6 each, 2 spill to cell 1.
    assert [plan.requested_kib for plan in plan_requested(ring, devices, 4 * GIB + 16 * MIB)] == [4 * MIB] * 4
    assert [plan.requested_kib for plan in plan_requested(ring, devices, 4 * GIB + 24 * MIB)] == [
        4 * MIB,
        8 * MIB,
        6 * MIB,
        6 * MIB,
    ]


@pytest.mark.parametrize(
    ("total", "error", "message"),
    [
        (
            13 * GIB,
            PlacementError,
            "guest vm1: total_memory 13 GiB is above the 12 GiB the guest can hold (max_memory 12 GiB: boot memory "
            "4 GiB and its virtio-mem devices)",
        ),
        (
            4 * GIB - 2 * MIB,
            PlacementError,
            "guest vm1: total_memory 4094 MiB is below the boot memory 4 GiB: virtio-mem can only take back what it "
            "plugged",
        ),
        (
            4 * GIB + 3 * MIB,
            SpecError,
            "guest vm1: total_memory 4099 MiB leaves 3 MiB to plug, not a multiple of the virtio-mem block 2 MiB",
        ),
        (0, SpecError, "guest vm1: total_memory 0 must be a positive size"),
    ],
    ids=["above-max", "below-boot", "not-whole-blocks", "zero"],
)
def test_bad_totals_are_refused_naming_guest_value_and_limit(total: int, error: type, message: str) -> None:
    ring = layout(memory="4 GiB", max_memory="12 GiB", memory_slots=8)
    with pytest.raises(error) as refused:
        plan_requested(ring, plan_virtio_mem(ring), total)
    assert str(refused.value) == message


def test_virtio_mem_needs_max_memory() -> None:
    with pytest.raises(SpecError) as refused:
        VnumaSpec.from_mapping({"memory_device": "virtio-mem"})
    assert str(refused.value) == (
        "memory_device virtio-mem needs max_memory and memory_slots: its devices share the memory between the "
        "boot memory and max_memory"
    )


def test_the_even_rule_is_written_once() -> None:
    """balanced_shares without weights is even_split, the partitioner's rule for vCPUs, nodes and memory."""
    assert partitioner.even_split is even_split
    for units, cells in ((10, 4), (3, 5), (0, 2), (7, 7)):
        assert balanced_shares(units, cells) == even_split(units, cells)


def test_an_earlier_resize_is_kept_in_whole_blocks_up_to_the_device_size() -> None:
    (plan, *_rest) = plan_virtio_mem(layout(max_memory="12 GiB", memory_slots=4, memory="4 GiB"))
    assert plan.size_kib == 2 * GIB and plan.block_kib == 2 * MIB
    assert keep_requested(plan, 513 * MIB).requested_kib == 512 * MIB
    assert keep_requested(plan, 3 * GIB).requested_kib == 2 * GIB
    assert keep_requested(plan, 0).requested_kib == 0


def test_memory_options_are_checked_against_the_memory_device() -> None:
    dimm = VnumaSpec.from_mapping({"max_memory": "8 GiB", "memory_slots": 4})
    virtio = VnumaSpec.from_mapping({"max_memory": "8 GiB", "memory_slots": 4, "memory_device": "virtio-mem"})
    check_memory_options(dimm, None, 512 * MIB)
    check_memory_options(virtio, 6 * GIB, None)
    with pytest.raises(SpecError, match="total_memory 6 GiB sets the requested sizes of virtio-mem cells"):
        check_memory_options(dimm, 6 * GIB, None)
    with pytest.raises(SpecError, match="hotplug_memory 512 MiB hot-adds DIMMs"):
        check_memory_options(virtio, None, 512 * MIB)
