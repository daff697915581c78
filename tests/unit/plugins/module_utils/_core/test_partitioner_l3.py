# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""L3-aware cells (docs/cache-locality.md): cell boundaries on the host's L3 bank boundaries.

The hosts are the fixtures with ``<host><cache>`` banks: an EPYC 7502P in NPS1 (eight CCXs of four
cores in one node) and NPS4 (two CCXs per node), the same NPS1 host without ``<cache>``, and a Xeon
in SNC2 (one L3 per socket across two nodes).
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import even_split
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCacheBank, HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES, host

GIB = 1024 * 1024
NPS1 = "amd-epyc-nps1-ccx"


def plan(topology: str | HostTopology, vcpus: int, **spec: Any) -> Layout:
    hosts = host(topology) if isinstance(topology, str) else topology
    guest = GuestShape(vcpus=vcpus, memory_kib=8 * GIB, name="db01")
    return compute_layout(hosts, VnumaSpec.from_mapping(spec), guest)


def cell_cpus(layout: Layout) -> list[str]:
    """The host CPUs each cell's vCPUs are pinned to, together."""
    assert layout.vcpu_pins is not None
    return [format_cpuset(set().union(*(layout.vcpu_pins[vcpu] for vcpu in cell.vcpus))) for cell in layout.cells]


def banks_of(topology: HostTopology, cpus: str) -> set[int]:
    return {topology.l3_bank_of[cpu] for cpu in parse_cpuset(cpus)}


def ccx(*indexes: int) -> str:
    """The CPUs of NPS1's CCXs: four cores each, threads 0-31 and their siblings 32-63."""
    return format_cpuset({cpu for k in indexes for core in range(4 * k, 4 * k + 4) for cpu in (core, core + 32)})


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (2, [ccx(0, 1, 2, 3), ccx(4, 5, 6, 7)]),
        (3, [ccx(0, 1, 2), ccx(3, 4, 5), ccx(6, 7)]),
        (4, [ccx(0, 1), ccx(2, 3), ccx(4, 5), ccx(6, 7)]),
        (8, [ccx(k) for k in range(8)]),
    ],
)
def test_cells_sharing_a_node_float_over_their_own_banks(cells: int, expected: list[str]) -> None:
    layout = plan(NPS1, 16, mode="node", cells=cells)
    assert cell_cpus(layout) == expected
    # Each bank serves one cell only.
    topology = host(NPS1)
    seen = [banks_of(topology, cpus) for cpus in cell_cpus(layout)]
    assert sum(len(banks) for banks in seen) == len(set().union(*seen)) == 8


def test_without_banks_every_cell_floats_over_the_whole_node() -> None:
    assert cell_cpus(plan("amd-epyc-nps1-nocache", 16, mode="node", cells=4)) == ["0-63"] * 4


def test_more_cells_than_banks_share_a_bank_and_never_span_two() -> None:
    layout = plan(NPS1, 32, mode="node", cells=16)
    assert cell_cpus(layout) == [ccx(k // 2) for k in range(16)]


def test_more_cells_than_cores_in_a_bank_float_over_the_bank() -> None:
    # Five cells per CCX of four cores: the fifth has no core of its own to slice, it floats all the same.
    layout = plan(NPS1, 40, mode="node", cells=40)
    assert cell_cpus(layout) == [ccx(k // 5) for k in range(40)]


def test_round_robin_cuts_a_shared_bank_by_whole_cores() -> None:
    # Two cells per CCX: the first takes its first two cores (both threads), the second the others.
    layout = plan(NPS1, 64, mode="node", cells=16, distribution="round-robin", pinning="none")
    assert [format_cpuset(cell.vcpus) for cell in layout.cells[:2]] == ["0-1,32-33", "2-3,34-35"]
    assert all(len(cell.vcpus) == 4 for cell in layout.cells)


@pytest.mark.parametrize("pinning", ["core", "thread"])
def test_dedicated_cells_take_the_cores_of_their_own_banks(pinning: str) -> None:
    layout = plan(NPS1, 16, mode="node", cells=4, pinning=pinning, distribution="siblings")
    assert cell_cpus(layout) == ["0-1,32-33", "8-9,40-41", "16-17,48-49", "24-25,56-57"]
    topology = host(NPS1)
    assert [banks_of(topology, cpus) for cpus in cell_cpus(layout)] == [{0}, {2}, {4}, {6}]


def test_dedicated_cores_fill_one_bank_before_the_next() -> None:
    # A host numbering its cores across the banks (core 0 in bank 0, core 1 in bank 1, ...): a cell of
    # four cores takes them from one bank, not the first four ids.
    topology = host("amd-epyc-nps1-nocache")
    alternating = tuple(
        HostCacheBank(
            id=bank,
            level=3,
            kind="both",
            size_kib=16384,
            cpus=frozenset(cpu for core in range(bank, 32, 8) for cpu in (core, core + 32)),
        )
        for bank in range(8)
    )
    layout = plan(replace(topology, cache_banks=alternating), 8, pinning="core", distribution="siblings")
    assert cell_cpus(layout) == ["0,8,16,24,32,40,48,56"]
    assert cell_cpus(plan(topology, 8, pinning="core", distribution="siblings")) == ["0-3,32-35"]


def test_nps4_cells_on_their_nodes_are_unchanged() -> None:
    # One cell per node: each floats over its node (both its CCXs), as without banks.
    layout = plan("amd-epyc-nps4-ccx", 8, mode="host")
    assert cell_cpus(layout) == ["0-7,32-39", "8-15,40-47", "16-23,48-55", "24-31,56-63"]


def test_nps4_two_cells_on_one_node_split_its_ccxs() -> None:
    layout = plan("amd-epyc-nps4-ccx", 8, mode="node", nodeset="1", cells=2)
    assert cell_cpus(layout) == ["8-11,40-43", "12-15,44-47"]


def test_grouping_keeps_nodes_sharing_an_l3_together() -> None:
    # SNC2 with the sub-NUMA nodes of a socket numbered 0 and 2, no SLIT, and every CPU reported on
    # socket 0: only the L3 banks tell which nodes belong together.
    text = (CAPABILITIES / "intel-snc2-l3.xml").read_text(encoding="utf-8")
    text = text.replace("socket_id='1'", "socket_id='0'")
    text = text.replace("cpus='0-7,16-23'", "cpus='0-3,8-11,16-19,24-27'")
    text = text.replace("cpus='8-15,24-31'", "cpus='4-7,12-15,20-23,28-31'")
    for value in ("11", "21"):
        text = text.replace(f"value='{value}'", "value='20'")
    layout = plan(parse_capabilities(text), 8, mode="node", cells=2)
    assert [format_cpuset(cell.host_nodes) for cell in layout.cells] == ["0,2", "1,3"]
    without = text.split("<cache>")[0] + "</host>\n</capabilities>\n"
    assert [
        format_cpuset(cell.host_nodes) for cell in plan(parse_capabilities(without), 8, mode="node", cells=2).cells
    ] == [
        "0-1",
        "2-3",
    ]


@pytest.mark.parametrize("name", [NPS1, "amd-epyc-nps4-ccx", "intel-snc2-l3", "amd-epyc-nps1-nocache"])
@pytest.mark.parametrize("distribution", ["contiguous", "siblings", "interleave", "round-robin"])
@pytest.mark.parametrize("cells", [2, 3, 4, 8])
def test_no_guest_socket_spans_two_cells(name: str, distribution: str, cells: int) -> None:
    """QEMU derives a guest CPU's L3 sharing from its die, and a die lies in its socket: a socket
    within one cell keeps the guest's L3 within the cell, on every host."""
    layout = plan(name, 16, mode="node", cells=cells, distribution=distribution)
    per_socket = layout.topology.dies * layout.topology.cores * layout.topology.threads
    cell_of = {vcpu: cell.id for cell in layout.cells for vcpu in cell.vcpus}
    for socket in range(layout.topology.sockets):
        assert len({cell_of[vcpu] for vcpu in range(socket * per_socket, (socket + 1) * per_socket)}) == 1


@st.composite
def banked_hosts(draw: st.DrawFn) -> tuple[HostTopology, int]:
    """NPS1's node of 32 cores cut into 2 to 8 banks of any sizes, in core order; and the bank count."""
    count = draw(st.integers(2, 8))
    cuts = sorted(draw(st.sets(st.integers(1, 31), min_size=count - 1, max_size=count - 1)))
    edges = [0, *cuts, 32]
    banks = tuple(
        HostCacheBank(
            id=index,
            level=3,
            kind="both",
            size_kib=16384,
            cpus=frozenset(cpu for core in range(start, end) for cpu in (core, core + 32)),
        )
        for index, (start, end) in enumerate(pairwise(edges))
    )
    return replace(host("amd-epyc-nps1-nocache"), cache_banks=banks), count


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=banked_hosts(),
    cells=st.integers(2, 12),
    pinning=st.sampled_from(["node", "core", "thread"]),
    per_cell=st.integers(1, 3),
)
def test_cells_never_share_a_bank_they_can_avoid(
    shape: tuple[HostTopology, int], cells: int, pinning: str, per_cell: int
) -> None:
    """With banks to spare every cell has banks of its own; with fewer, a cell's vCPUs stay in one bank.
    Dedicated cells stay in their own banks whenever those have the cores."""
    topology, banks = shape
    # Dedicated cells need their cores (the node has 32): more is refused, as without banks.
    assume(pinning == "node" or per_cell * cells <= 32)
    vcpus = 2 * per_cell * cells
    layout = plan(topology, vcpus, mode="node", cells=cells, pinning=pinning, distribution="siblings")
    used = [banks_of(topology, cpus) for cpus in cell_cpus(layout)]
    if pinning == "node":
        if cells <= banks:
            assert sum(len(found) for found in used) == len(set().union(*used)), used
        else:
            assert all(len(found) == 1 for found in used), used
        return
    # Dedicated, banks to spare: cell i's own banks are the i-th of even groups in bank order; when every
    # group has the cores its cell needs, no cell takes a core outside its own banks.
    if cells > banks:
        return
    groups, start = [], 0
    for size in even_split(banks, cells):
        groups.append(set(range(start, start + size)))
        start += size
    if all(sum(len(topology.l3_banks[bank]) // 2 for bank in group) >= per_cell for group in groups):
        assert all(found <= group for found, group in zip(used, groups, strict=True)), (used, groups)
