# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Memory granules by host architecture: 1 MiB cells and 128 MiB DIMMs on x86_64, 256 MiB both on POWER."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import dimm_granule_kib, plan_dimms
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.hosts import host
from ansible_collections.vnuma.libvirt.tests.support.render_capabilities import render_capabilities

MIB = 1024
GIB = 1024 * MIB


def plan(fixture: str, vcpus: int, memory_kib: int, **spec: Any) -> Layout:
    guest = GuestShape(vcpus=vcpus, memory_kib=memory_kib, name="lpar01")
    return compute_layout(host(fixture), VnumaSpec.from_mapping(spec), guest)


@pytest.mark.parametrize(
    ("fixture", "arch", "cell", "dimm"),
    [
        ("intel-2s-smt2", "x86_64", 1 * MIB, 128 * MIB),
        ("testdriver-default", "i686", 1 * MIB, 128 * MIB),
        ("smt4-power", "ppc64le", 256 * MIB, 256 * MIB),
        ("smt8-power", "ppc64le", 256 * MIB, 256 * MIB),
    ],
)
def test_granules_follow_the_host_architecture(fixture: str, arch: str, cell: int, dimm: int) -> None:
    topology = host(fixture)
    assert (topology.arch, topology.cell_granule_kib, topology.dimm_block_kib) == (arch, cell, dimm)
    assert parse_capabilities(render_capabilities(topology)).arch == arch


def test_power_cells_come_in_256_mib_blocks() -> None:
    # 768 MiB over 2 cells: 384 MiB each would do on x86, pseries wants 512 + 256.
    layout = plan("smt4-power", 8, 768 * MIB)
    assert [cell.memory_kib for cell in layout.cells] == [512 * MIB, 256 * MIB]
    assert [cell.memory_kib for cell in plan("intel-2s-smt2", 8, 768 * MIB).cells] == [384 * MIB, 384 * MIB]


def test_power_refuses_memory_that_is_not_whole_blocks() -> None:
    with pytest.raises(SpecError) as refused:
        plan("smt4-power", 8, 1000 * MIB)
    assert str(refused.value) == (
        "guest lpar01: memory 1000 MiB is not a multiple of 256 MiB "
        "(QEMU's pseries machine takes each NUMA node's memory in 256 MiB blocks)"
    )
    with pytest.raises(SpecError, match="too small for 2 cells of at least 256 MiB each"):
        plan("smt4-power", 8, 256 * MIB)


def test_power_dimms_come_in_256_mib_blocks() -> None:
    layout = plan("smt4-power", 8, 2 * GIB, max_memory="8 GiB", memory_slots=4)
    assert dimm_granule_kib(layout) == 256 * MIB
    assert [(dimm.cell, dimm.size_kib) for dimm in plan_dimms(layout, 768 * MIB)] == [(0, 512 * MIB), (1, 256 * MIB)]
    with pytest.raises(SpecError, match="not a multiple of 256 MiB"):
        plan_dimms(layout, 128 * MIB)


def test_a_host_without_an_architecture_gets_the_x86_granules() -> None:
    bare = render_capabilities(host("smt4-power")).replace("      <arch>ppc64le</arch>\n", "")
    topology = parse_capabilities(bare)
    assert (topology.arch, topology.cell_granule_kib, topology.dimm_block_kib) == (None, 1 * MIB, 128 * MIB)
