# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Guest HMAT (_core/hmat.py): the host's figures mapped onto the cells, the aggregate, the synthesis, initiators."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, TopologyError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hmat import (
    CellAccess,
    NodeAccess,
    guest_hmat,
    host_access,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import (
    HostCache,
    HostInterconnect,
    HostTopology,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities

CAPABILITIES = Path(__file__).resolve().parents[3] / "fixtures" / "capabilities"
GIB = 1024 * 1024


def host(name: str) -> HostTopology:
    return parse_capabilities((CAPABILITIES / f"{name}.xml").read_text(encoding="utf-8"))


def plan(name: str, vcpus: int, memory_kib: int, **spec: object) -> tuple[CellAccess, ...]:
    layout = compute_layout(host(name), VnumaSpec(**spec), GuestShape(vcpus=vcpus, memory_kib=memory_kib))  # type: ignore[arg-type]
    assert layout.hmat is not None
    return layout.hmat.accesses


def test_the_host_reports_each_node_from_its_nearest_initiator() -> None:
    lab = host("lab4-hmat")
    assert host_access(lab, 3) == NodeAccess(2, 210, 210, 9986048, 9986048)
    assert host_access(lab, 0) == NodeAccess(0, 100, 100, 20971520, 20971520)
    cxl = host("cxl-hmat-cache")
    assert host_access(cxl, 2) == NodeAccess(0, 248, 270, 33554432, 26214400)
    assert cxl.node(2).caches == (HostCache(1, 262144, 64, "direct", "writeback"),)
    assert host_access(host("seed-4node-ring"), 0) is None


def test_access_counts_for_reads_and_writes_and_the_best_initiator_wins() -> None:
    base = host("seed-4node-ring")
    figures = (
        HostInterconnect("latency", 1, 0, "access", 120),
        HostInterconnect("latency", 0, 0, "access", 80),
        HostInterconnect("latency", 0, 0, "write", 90),
        HostInterconnect("bandwidth", 0, 0, "access", 4096),
    )
    topology = replace(base, interconnects=figures)
    assert host_access(topology, 0) == NodeAccess(0, 80, 90, 4096, 4096)


def test_host_mode_mirrors_the_lab_and_gives_the_cpuless_cell_the_host_initiator() -> None:
    accesses = plan("lab4-hmat", 6, GIB, mode="node", nodeset="0-3", cpuless_cells=True, hmat="host")
    assert [(a.cell, a.initiator, a.read_latency_ns, a.read_bandwidth_kib) for a in accesses] == [
        (0, 0, 100, 20971520),
        (1, 1, 100, 20971520),
        (2, 2, 100, 20971520),
        # The CXL-like node 3: the host's initiator (node 2) is guest cell 2, its figures the host's.
        (3, 2, 210, 9986048),
    ]


def test_reads_and_writes_stay_apart() -> None:
    accesses = plan("cxl-hmat-cache", 4, 4 * GIB, mode="node", nodeset="0-3", cpuless_cells=True, hmat="host")
    assert accesses[2] == CellAccess(2, 0, 248, 270, 33554432, 26214400)
    assert accesses[3] == CellAccess(3, 1, 248, 270, 33554432, 26214400)


def test_a_cell_over_several_nodes_takes_the_worst_of_them() -> None:
    # Two cells over four nodes: nearest first groups 0 with 2 (CXL, distance 14) and 1 with 3.
    accesses = plan("cxl-hmat-cache", 4, 4 * GIB, mode="node", nodeset="0-3", cells=2, hmat="host")
    assert accesses[0] == CellAccess(0, 0, 248, 270, 33554432, 26214400)


def test_synthesize_derives_the_figures_from_the_distances() -> None:
    accesses = plan("seed-4node-ring", 4, 4 * GIB, mode="node", nodeset="0-3", cells=4, hmat="synthesize")
    assert {(a.read_latency_ns, a.write_bandwidth_kib) for a in accesses} == {(100, 20 * GIB)}
    # A CPU-less cell: the nearest cell with vCPUs, then d x 10 ns and 20 GiB/s x 10 / d (in whole MiB/s).
    accesses = plan("lab4-hmat", 4, GIB, mode="node", nodeset="1-3", cpuless_cells=True, hmat="synthesize")
    assert accesses[2] == CellAccess(2, 1, 210, 210, 20480 * 10 // 21 * 1024, 20480 * 10 // 21 * 1024)


def test_host_figures_from_a_node_outside_the_guest_are_refused() -> None:
    # Nodes 0 and 3 only: node 3's host initiator (node 2) is not in the guest.  Cell 0 (node 0) would be
    # its initiator, and the host reports nothing from node 0 to node 3: node 2's 210 ns would make the
    # guest see memory faster than it is from cell 0.
    with pytest.raises(
        SpecError,
        match=r"no figures from host node 0 \(guest cell 0, the initiator of guest cell 1\) for host node 3 .*figures "
        r"are from host node 2: add that node to the guest, or use hmat synthesize",
    ):
        plan("lab4-hmat", 2, GIB // 2, mode="node", nodeset="0,3", cpuless_cells=True, hmat="host")
    # synthesize still serves it from the nearest cell with vCPUs, by the guest's distance.
    accesses = plan("lab4-hmat", 2, GIB // 2, mode="node", nodeset="0,3", cpuless_cells=True, hmat="synthesize")
    assert accesses[1].initiator == 0


def test_none_gives_no_hmat_and_host_without_figures_is_refused() -> None:
    layout = compute_layout(host("lab4-hmat"), VnumaSpec(), GuestShape(vcpus=3, memory_kib=GIB))
    assert layout.hmat is None
    with pytest.raises(SpecError, match=r"no HMAT latency or bandwidth for host node 0 .*synthesize or none"):
        compute_layout(host("seed-4node-ring"), VnumaSpec(hmat="host"), GuestShape(vcpus=4, memory_kib=4 * GIB))


def test_caches_follow_their_node() -> None:
    layout = compute_layout(
        host("cxl-hmat-cache"),
        VnumaSpec(mode="node", nodeset="0-3", cpuless_cells=True, hmat="host"),
        GuestShape(vcpus=4, memory_kib=4 * GIB),
    )
    assert layout.hmat is not None
    assert layout.hmat.caches[0] == ()
    assert layout.hmat.caches[2] == (HostCache(1, 262144, 64, "direct", "writeback"),)
    assert layout.to_dict()["hmat"]["cells"][2]["initiator"] == 0


def test_synthesize_takes_no_caches_from_the_host() -> None:
    """synthesize derives the figures from the distances and nothing else: the host's caches stay out too."""
    layout = compute_layout(
        host("cxl-hmat-cache"),
        VnumaSpec(mode="node", nodeset="0-3", cpuless_cells=True, hmat="synthesize"),
        GuestShape(vcpus=4, memory_kib=4 * GIB),
    )
    assert layout.hmat is not None
    assert layout.hmat.caches == ((), (), (), ())
    assert all(cell["caches"] == [] for cell in layout.to_dict()["hmat"]["cells"])


def test_figures_fit_qemus_16_bit_entries() -> None:
    lab = host("lab4-hmat")
    huge = (
        HostInterconnect("latency", 0, 0, "access", 70000),
        HostInterconnect("latency", 1, 1, "access", 123),
        HostInterconnect("bandwidth", 0, 0, "access", 2**40 + 5),
        HostInterconnect("bandwidth", 1, 1, "access", 1000),
    )
    topology = replace(lab, interconnects=huge)
    layout = compute_layout(
        topology,
        VnumaSpec(mode="node", nodeset="0-1", hmat="host"),
        GuestShape(vcpus=2, memory_kib=GIB),
    )
    assert layout.hmat is not None
    first, second = layout.hmat.accesses
    # Latencies over a power of ten (70000 needs 10 ns steps), bandwidths in whole MiB/s over a power of
    # two (2^30 MiB/s needs 2^15 MiB/s steps, which the small one is rounded up to): 16 bits each.
    assert (first.read_latency_ns, second.read_latency_ns) == (70000, 130)
    assert (first.read_bandwidth_kib, second.read_bandwidth_kib) == (2**30 * 1024, 2**15 * 1024)


def test_impossible_host_figures_are_refused() -> None:
    lab = host("lab4-hmat")
    with pytest.raises(TopologyError, match="the target is not a host node"):
        replace(lab, interconnects=(HostInterconnect("latency", 0, 9, "access", 5),))
    with pytest.raises(TopologyError, match="no memory-side cache of level 2"):
        replace(lab, interconnects=(HostInterconnect("latency", 0, 0, "access", 5, cache=2),))
    with pytest.raises(TopologyError, match="HMAT has levels 1-3"):
        replace(lab, nodes=(replace(lab.nodes[0], caches=(HostCache(4, 1024),)), *lab.nodes[1:]))


def test_guest_hmat_of_no_cells_with_vcpus_is_refused() -> None:
    layout = compute_layout(
        host("lab4-hmat"), VnumaSpec(mode="node", nodeset="0"), GuestShape(vcpus=1, memory_kib=GIB // 2)
    )
    lonely = replace(layout.cells[0], id=0, vcpus=())
    with pytest.raises(SpecError, match="no cell with vCPUs"):
        guest_hmat(host("lab4-hmat"), [lonely], "synthesize")


def without_write_bandwidth(topology: HostTopology, node: int) -> HostTopology:
    """``topology`` with the write bandwidth to ``node``'s memory dropped from its HMAT."""
    return replace(
        topology,
        interconnects=tuple(
            entry
            for entry in topology.interconnects
            if not (entry.kind == "bandwidth" and entry.target == node and entry.access == "write")
        ),
    )


def test_a_figure_the_host_gives_for_some_nodes_only_is_refused() -> None:
    # Node 3's write bandwidth dropped: its cell would show 0 in the guest (Linux reads a missing entry so).
    partial = without_write_bandwidth(host("lab4-hmat"), 3)
    spec = VnumaSpec(mode="node", nodeset="1-3", cpuless_cells=True, hmat="host")
    with pytest.raises(
        SpecError, match=r"write bandwidth for some of the guest's memory but not for host node 3 \(guest cell 2\)"
    ):
        compute_layout(partial, spec, GuestShape(vcpus=4, memory_kib=GIB))


def test_bandwidths_fit_below_qemus_16_bit_entry_limit() -> None:
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hmat import _fit_bandwidths

    # 65535 MiB/s is one over what QEMU keeps in an entry of base 1 MiB/s: the base doubles.
    assert _fit_bandwidths([65535 * 1024, 1024]) == [65534 * 1024, 2 * 1024]
    assert _fit_bandwidths([65534 * 1024]) == [65534 * 1024]


def test_an_initiator_node_under_a_cell_without_vcpus_asks_for_vcpus_not_the_node() -> None:
    # One vCPU over host nodes 0-1 with cpuless_cells: guest cell 1 mirrors node 1 but has no vCPUs, so cell 0
    # serves it, and the host reports node 1's figures from node 1 only.  Node 1 is in the guest already: the
    # refusal used to say to add it.
    with pytest.raises(SpecError) as caught:
        plan("cxl-hmat-cache", 1, 2 * GIB, mode="node", nodeset="0-1", cpuless_cells=True, hmat="host")
    assert str(caught.value) == (
        "hmat host: the host reports no figures from host node 0 (guest cell 0, the initiator of guest cell 1) for "
        "host node 1 (guest cell 1's memory); its figures are from host node 1, which guest cell 1 holds without "
        "vCPUs: give that cell vCPUs (at least 2 vCPUs, one per guest cell on host nodes with CPUs; the guest has 1), "
        "or use hmat synthesize"
    )
    assert "add that node" not in str(caught.value)
    # The lab host mirrored whole with 2 vCPUs: guest cell 2 (node 2, node 3's initiator) gets none.
    with pytest.raises(
        SpecError, match=r"at least 3 vCPUs, one per guest cell on host nodes with CPUs; the guest has 2"
    ):
        plan("lab4-hmat", 2, GIB, mode="host", cpuless_cells=True, hmat="host")
    # Enough vCPUs, but the cell still has none (here taken from it by hand): another distribution, or more.
    layout = compute_layout(
        host("lab4-hmat"),
        VnumaSpec(mode="host", cpuless_cells=True, hmat="synthesize"),
        GuestShape(vcpus=4, memory_kib=GIB),
    )
    cells = list(layout.cells)
    cells[1] = replace(cells[1], vcpus=cells[1].vcpus + cells[2].vcpus)
    cells[2] = replace(cells[2], vcpus=())
    with pytest.raises(
        SpecError,
        match=r"which guest cell 2 holds without vCPUs: give that cell vCPUs \(more vCPUs, "
        r"or another distribution\), or use hmat synthesize",
    ):
        guest_hmat(host("lab4-hmat"), cells, "host")


def test_an_initiator_node_under_another_cell_with_vcpus_asks_for_a_cell_of_its_own() -> None:
    # An odd host: the CXL node 2 is nearest node 0 (14) but its HMAT initiator is node 1.  Two cells over nodes
    # 0-2 put node 2 with node 0, whose own figures for it the host does not report; node 1 is in the guest,
    # under guest cell 1, which would serve node 2 from a cell of its own.
    cxl = host("cxl-hmat-cache")
    odd = replace(
        cxl,
        interconnects=tuple(entry._replace(initiator=1) if entry.target == 2 else entry for entry in cxl.interconnects),
    )
    spec = VnumaSpec(mode="node", nodeset="0-2", cells=2, hmat="host")
    with pytest.raises(SpecError) as caught:
        compute_layout(odd, spec, GuestShape(vcpus=2, memory_kib=3 * GIB))
    assert str(caught.value) == (
        "hmat host: the host reports no figures from host nodes 0,2 (guest cell 0, its own initiator) for host node 2 "
        "(guest cell 0's memory); its figures are from host node 1, in guest cell 1: give host node 2 a guest cell of "
        "its own (more cells), which guest cell 1 then serves, or use hmat synthesize"
    )
    # A cell per node: guest cell 1 serves node 2.
    layout = compute_layout(odd, replace(spec, cells=None), GuestShape(vcpus=2, memory_kib=3 * GIB))
    assert layout.hmat is not None and layout.hmat.accesses[2].initiator == 1


def test_a_figure_missing_for_one_node_of_a_cell_names_that_node_only() -> None:
    # Node 1's write bandwidth dropped; guest cell 0 is over nodes 0-1: only node 1 lacks it (the message used to
    # name node 0 too, and so advised leaving it out).
    partial = without_write_bandwidth(host("lab4-hmat"), 1)
    spec = VnumaSpec(mode="node", nodeset="0-3", cells=2, hmat="host")
    with pytest.raises(SpecError) as caught:
        compute_layout(partial, spec, GuestShape(vcpus=4, memory_kib=GIB))
    assert str(caught.value) == (
        "hmat host: the host reports a write bandwidth for some of the guest's memory but not for host node 1 (guest "
        "cell 0); the guest would read 0 there: use hmat synthesize, or leave that node out"
    )
