# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The capacity check: memory per host node, hugepage pools, the reserve, unbound memory, dedicated CPUs.

Each case is a host fixture and a few guests written as bindings (what a definition or a plan says),
and the exact problems, warnings and blocking problems the check finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import (
    CapacityError,
    CapacityReport,
    CapacityTally,
    MemoryRoom,
    check_capacity,
    counts,
    format_size,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    DimmBinding,
    GuestBinding,
    place_guests,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.tests.support.bindings import binding_from_layout
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

MIB = 1024
GIB = 1024 * 1024


@dataclass(frozen=True)
class Cell:
    """One guest cell: its vCPUs, memory, the host nodes its memory is bound to (None: unbound), page size."""

    vcpus: tuple[int, ...]
    kib: int
    nodes: tuple[int, ...] | None = None
    page: int | None = None


@dataclass(frozen=True)
class Guest:
    name: str
    cells: tuple[Cell, ...]
    source: str = "defined"
    running: bool = True
    autostart: bool = False
    pins: dict[int, tuple[int, ...]] = field(default_factory=dict)
    default_cpus: tuple[int, ...] | None = None
    dedicated: tuple[int, ...] = ()
    dimms: tuple[DimmBinding, ...] = ()

    def binding(self) -> GuestBinding:
        return GuestBinding(
            name=self.name,
            cells=tuple(
                CellBinding(
                    id=index,
                    vcpus=cell.vcpus,
                    memory_kib=cell.kib,
                    memory_mode=None if cell.nodes is None else "strict",
                    memory_nodes=cell.nodes or (),
                    hugepage_kib=cell.page,
                )
                for index, cell in enumerate(self.cells)
            ),
            vcpu_cpus=self.pins,
            default_cpus=self.default_cpus,
            dimms=self.dimms,
            dedicated_cpus=self.dedicated,
            running=self.running,
            autostart=self.autostart,
            source=self.source,
        )


def on(name: str, node: int | None, kib: int, vcpus: int = 2, **options: Any) -> Guest:
    """A one-cell guest with its memory on ``node`` (None: unbound)."""
    nodes = None if node is None else (node,)
    return Guest(name, (Cell(tuple(range(vcpus)), kib, nodes, options.pop("page", None)),), **options)


def planned(name: str, node: int | None, kib: int, **options: Any) -> Guest:
    return on(name, node, kib, source="planned", **options)


def check(fixture: str, guests: Sequence[Guest], reserved: int | dict[int, int] = 0) -> CapacityReport:
    topology = host(fixture)
    return check_capacity(topology, place_guests(topology, [guest.binding() for guest in guests]), reserved)


@dataclass(frozen=True)
class Case:
    id: str
    host: str
    guests: tuple[Guest, ...]
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # Indexes into problems: those a planned guest takes part in (None: every problem).
    blocking: tuple[int, ...] | None = None
    reserved: int | dict[int, int] = 0


CASES = [
    Case(
        "fits: guests on separate nodes of the ring",
        "seed-4node-ring",
        (planned("db01", 0, 6 * GIB), on("web01", 1, 8 * GIB), on("cold", 0, 8 * GIB, running=False)),
    ),
    Case(
        "per node: a planned guest and a running one over-commit ring node 1, largest first",
        "seed-4node-ring",
        (on("web01", 1, 4 * GIB), planned("db01", 1, 6 * GIB), on("spare", 2, 1 * GIB, running=False, autostart=True)),
        problems=(
            "host node 1: 10 GiB bound, 8 GiB available (8 GiB - 0 reserved): db01 6 GiB (planned), "
            "web01 4 GiB (running)",
        ),
    ),
    Case(
        "per node: autostart guests count though they are not running",
        "seed-4node-ring",
        (on("a", 3, 5 * GIB, running=False, autostart=True), on("b", 3, 5 * GIB, running=False, autostart=True)),
        problems=(
            "host node 3: 10 GiB bound, 8 GiB available (8 GiB - 0 reserved): a 5 GiB (autostart), b 5 GiB (autostart)",
        ),
        blocking=(),
    ),
    Case(
        "reserve: 3 GiB kept on every node leaves 5 GiB",
        "seed-4node-ring",
        (planned("db01", 2, 6 * GIB),),
        problems=("host node 2: 6 GiB bound, 5 GiB available (8 GiB - 3 GiB reserved): db01 6 GiB (planned)",),
        reserved=3 * GIB,
    ),
    Case(
        "reserve per node: only node 0 keeps 4 GiB",
        "seed-4node-ring",
        (planned("db01", 0, 6 * GIB), planned("db02", 1, 6 * GIB)),
        problems=("host node 0: 6 GiB bound, 4 GiB available (8 GiB - 4 GiB reserved): db01 6 GiB (planned)",),
        reserved={0: 4 * GIB},
    ),
    Case(
        "hugepage pools are not normal memory: 32 GiB node less its 2 GiB pool of 2 MiB pages",
        "amd-2s-nps4",
        (planned("db01", 0, 31 * GIB),),
        problems=(
            "host node 0: 31 GiB bound, 30 GiB available (32 GiB - 2 GiB hugepages - 0 reserved): "
            "db01 31 GiB (planned)",
        ),
    ),
    Case(
        "hugepages: per node and page size against the pool",
        "amd-2s-nps4",
        (planned("db01", 0, 1 * GIB, page=2048), on("db02", 0, 2 * GIB, page=2048), on("db03", 1, 2 * GIB, page=2048)),
        problems=(
            "host node 0: 3 GiB bound in 2 MiB hugepages, the pool holds 2 GiB: db02 2 GiB (running), "
            "db01 1 GiB (planned)",
        ),
    ),
    Case(
        "hugepages: a page size the node has no pool of",
        "amd-2s-nps4",
        (planned("db01", 3, 1 * GIB, page=1048576),),
        problems=("host node 3: 1 GiB bound in 1 GiB hugepages, the pool holds 0: db01 1 GiB (planned)",),
    ),
    Case(
        "hugepages bound to no node take from every pool of their size",
        "amd-2s-nps4",
        (on("a", 0, 1 * GIB, page=2048), planned("b", None, 17 * GIB, page=2048)),
        problems=(
            "2 MiB hugepages bound to no host node: 17 GiB, 15 GiB the host's pools have left after the bound ones: "
            "b 17 GiB (planned)",
        ),
    ),
    Case(
        "unbound memory: what the nodes have left after the bound memory (a planned guest bound it away)",
        "seed-4node-ring",
        (
            planned("db01", 0, 8 * GIB),
            planned("db02", 1, 8 * GIB),
            on("web01", None, 10 * GIB),
            on("web02", None, 7 * GIB, running=False, autostart=True),
        ),
        problems=(
            "memory bound to no host node: 17 GiB, 16 GiB the nodes have left after the bound memory: "
            "web01 10 GiB (running), web02 7 GiB (autostart)",
        ),
    ),
    Case(
        "unbound memory among the other guests alone does not block",
        "testdriver-default",
        (on("test", None, 8 * GIB), planned("unit", 0, 1 * GIB, running=False)),
        problems=(
            "memory bound to no host node: 8 GiB, 6 GiB the nodes have left after the bound memory: "
            "test 8 GiB (running)",
        ),
        blocking=(),
    ),
    Case(
        "an over-committed node leaves nothing for unbound memory, never less",
        "seed-4node-ring",
        (on("a", 0, 12 * GIB), on("b", None, 24 * GIB)),
        # Nodes 1-3 have 24 GiB left: b fits exactly; node 0's shortfall is not taken off them.
        problems=("host node 0: 12 GiB bound, 8 GiB available (8 GiB - 0 reserved): a 12 GiB (running)",),
        blocking=(),
    ),
    Case(
        "the test driver's node 1 lists 8 KiB pages first: its normal pages, not a pool",
        "testdriver-default",
        (planned("a", 1, 4 * GIB),),
    ),
    Case(
        "unknown nodes: a definition written for another host",
        "seed-4node-ring",
        (on("moved", 7, 2 * GIB), planned("db01", 9, 1 * GIB)),
        problems=(
            "guest moved (running) binds 2 GiB to host node 7, which this host does not have (nodes 0, 1, 2, 3)",
            "guest db01 (planned) binds 1 GiB to host node 9, which this host does not have (nodes 0, 1, 2, 3)",
        ),
        blocking=(1,),
    ),
    Case(
        "sparse node ids: node 8 is named as such",
        "sparse-ids",
        (planned("db01", 8, 40 * GIB), on("db02", 8, 30 * GIB)),
        problems=(
            "host node 8: 70 GiB bound, 64 GiB available (64 GiB - 0 reserved): db01 40 GiB (planned), "
            "db02 30 GiB (running)",
        ),
    ),
    Case(
        "memory-only CXL nodes hold bound memory like any node",
        "intel-snc2-cxl",
        (planned("big", 4, 60 * GIB), on("other", 4, 5 * GIB)),
        problems=(
            "host node 4: 65 GiB bound, 62 GiB available (64 GiB - 2 GiB hugepages - 0 reserved): big 60 GiB "
            "(planned), other 5 GiB (running)",
        ),
    ),
    Case(
        "dedicated CPUs held by two guests",
        "seed-4node-ring",
        (
            planned("db01", 0, 1 * GIB, pins={0: (2,), 1: (3,)}, dedicated=(2, 3)),
            on("db02", 0, 1 * GIB, pins={0: (3,), 1: (2,)}, dedicated=(2, 3)),
        ),
        problems=("host CPUs 2-3 are dedicated to both db01 (planned) and db02 (running)",),
    ),
    Case(
        "a dedicated CPU named in another guest's pins; an unpinned guest is a warning",
        "seed-4node-ring",
        (
            planned("db01", 0, 1 * GIB, pins={0: (0,), 1: (1,)}, dedicated=(0, 1)),
            on("web01", 0, 1 * GIB, pins={0: (0, 1, 2, 3), 1: (0, 1, 2, 3)}),
            on("web02", 1, 1 * GIB, default_cpus=(4, 5, 6, 7)),
            on("floating", None, 1 * GIB, running=False, autostart=True),
        ),
        problems=("host CPUs 0-1 are dedicated to db01 (planned) and named in the pins of web01 (running)",),
        warnings=(
            "guest floating (autostart) has unpinned vCPUs that may run on host CPUs dedicated to other guests: "
            "0-1 (db01)",
        ),
    ),
    Case(
        "a guest that is not counted holds nothing",
        "seed-4node-ring",
        (
            planned("db01", 0, 1 * GIB, pins={0: (0,), 1: (1,)}, dedicated=(0, 1)),
            on("off", 0, 1 * GIB, pins={0: (0,), 1: (1,)}, dedicated=(0, 1), running=False),
        ),
    ),
    Case(
        "a planned guest that is shut off and not autostart: not counted, a warning when it would not fit",
        "seed-4node-ring",
        (
            on("web01", 1, 6 * GIB),
            planned("cold", 1, 4 * GIB, running=False),
            planned("small", 1, 1 * GIB, running=False),
        ),
        warnings=(
            "guest cold is shut off and not autostart, so it is not counted; started now it would over-commit "
            "host node 1 (4 GiB bound, 2 GiB free)",
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_capacity(case: Case) -> None:
    report = check(case.host, case.guests, case.reserved)
    assert report.problems == case.problems
    assert report.warnings == case.warnings
    blocking = case.problems if case.blocking is None else tuple(case.problems[index] for index in case.blocking)
    assert report.blocking == blocking
    assert report.fits is (not case.problems)


def test_node_figures_and_the_contract_dict() -> None:
    report = check(
        "amd-2s-nps4",
        [
            planned("db01", 0, 20 * GIB, autostart=True),
            on("db02", 0, 1 * GIB, page=2048),
            on("web01", None, 3 * GIB),
            planned("db03", 1, 1 * GIB, pins={0: (6,), 1: (7,)}, dedicated=(6, 7)),
        ],
        reserved=1 * GIB,
    )
    result = report.to_dict()
    assert set(result) == {
        "fits",
        "problems",
        "blocking",
        "warnings",
        "nodes",
        "unbound_kib",
        "unbound_available_kib",
        "unbound_guests",
        "dedicated",
    }
    node = result["nodes"][0]
    assert node == {
        "id": 0,
        "memory_kib": 32 * GIB,
        "hugepages_kib": 2 * GIB,
        "reserved_kib": 1 * GIB,
        "available_kib": 29 * GIB,
        "demand_kib": 20 * GIB,
        "free_after_kib": 9 * GIB,
        "guests": [{"name": "db01", "kib": 20 * GIB, "source": "planned", "running": True, "autostart": True}],
        "hugepages": [
            {
                "size_kib": 2048,
                "pool_kib": 2 * GIB,
                "demand_kib": 1 * GIB,
                "guests": [{"name": "db02", "kib": 1 * GIB, "source": "defined", "running": True, "autostart": False}],
            }
        ],
    }
    assert [entry["id"] for entry in result["nodes"]] == list(range(8))
    assert result["unbound_kib"] == 3 * GIB
    # 8 nodes x 29 GiB available, less the 20 + 1 GiB bound as normal memory.
    assert result["unbound_available_kib"] == 8 * 29 * GIB - 20 * GIB - 1 * GIB
    assert result["unbound_guests"] == [
        {"name": "web01", "kib": 3 * GIB, "source": "defined", "running": True, "autostart": False}
    ]
    assert result["dedicated"] == {"6": "db03", "7": "db03"}
    assert result["fits"] is True
    assert result["warnings"] == [
        "guest db01 (planned) has unpinned vCPUs that may run on host CPUs dedicated to other guests: 6-7 (db03)",
        "guest db02 (running) has unpinned vCPUs that may run on host CPUs dedicated to other guests: 6-7 (db03)",
        "guest web01 (running) has unpinned vCPUs that may run on host CPUs dedicated to other guests: 6-7 (db03)",
    ]


def test_dimms_count_where_they_are_bound() -> None:
    guest = Guest(
        "app01",
        (Cell((0, 1), 2 * GIB, (0,)), Cell((2, 3), 2 * GIB, None)),
        dimms=(
            DimmBinding(cell=0, size_kib=1 * GIB),  # follows its cell: node 0
            DimmBinding(cell=1, size_kib=512 * MIB, host_nodes=(2, 3)),  # its own nodemask: 256 MiB each
            DimmBinding(cell=1, size_kib=256 * MIB),  # its cell is unbound
        ),
    )
    report = check("seed-4node-ring", [guest])
    demand = {node.id: node.demand_kib for node in report.nodes}
    assert demand == {0: 3 * GIB, 1: 0, 2: 256 * MIB, 3: 256 * MIB}
    assert report.unbound_kib == 2 * GIB + 256 * MIB


def test_dimms_take_from_the_pool_that_backs_them() -> None:
    """A DIMM is backed like its cell (hugepages there) unless its <source><pagesize> says otherwise."""
    guest = Guest(
        "db03",
        (Cell((0, 1), 1 * GIB, (0,), page=2048),),
        dimms=(
            DimmBinding(cell=0, size_kib=1 * GIB),  # its cell's 2 MiB pages on node 0
            DimmBinding(cell=0, size_kib=512 * MIB, hugepage_kib=4),  # normal pages by its own pagesize
        ),
    )
    report = check("intel-2s-smt2", [guest])
    (node,) = [node for node in report.nodes if node.id == 0]
    assert node.demand_kib == 512 * MIB
    assert report.problems == (), "2 GiB of 2 MiB pages fill the node's pool exactly"
    (pool,) = [pool for pool in report.to_dict()["nodes"][0]["hugepages"] if pool["size_kib"] == 2048]
    assert pool["demand_kib"] == 2 * GIB
    bigger = Guest("db04", guest.cells, dimms=(DimmBinding(cell=0, size_kib=1 * GIB + 2 * MIB),))
    assert check("intel-2s-smt2", [bigger]).problems == (
        "host node 0: 2050 MiB bound in 2 MiB hugepages, the pool holds 2 GiB: db04 2050 MiB (running)",
    )


def test_unbound_normal_and_hugepage_memory_together() -> None:
    """Unbound memory of both kinds at once: normal memory and each pool are checked, none crashes the sort."""
    normal = Guest("web01", (Cell((0, 1), 1 * GIB),))
    report = check("intel-2s-smt2", [Guest("db01", (Cell((0, 1), 1 * GIB, page=2048),)), normal])
    assert report.problems == ()
    assert report.unbound_kib == 1 * GIB
    too_big = Guest("db02", (Cell((0, 1), 5000 * GIB, page=2048),))
    assert check("intel-2s-smt2", [too_big, normal]).problems == (
        "2 MiB hugepages bound to no host node: 5000 GiB, 4 GiB the host's pools have left after the bound ones: "
        "db02 5000 GiB (running)",
    )


def test_a_planned_layout_counts_as_planned() -> None:
    """A planned layout's binding through the check."""
    topology = host("seed-4node-ring")
    layout = compute_layout(
        topology,
        VnumaSpec.from_mapping({"mode": "node", "nodeset": "1", "pinning": "thread"}),
        GuestShape(vcpus=2, memory_kib=6 * GIB, name="db01"),
    )
    binding = binding_from_layout(layout, "db01", running=True, dedicated_cpus=(4, 5))
    other = on("web01", 1, 4 * GIB, pins={0: (4, 5, 6, 7), 1: (4, 5, 6, 7)})
    report = check_capacity(topology, place_guests(topology, [binding, other.binding()]))
    assert report.problems == (
        "host node 1: 10 GiB bound, 8 GiB available (8 GiB - 0 reserved): db01 6 GiB (planned), web01 4 GiB (running)",
        "host CPUs 4-5 are dedicated to db01 (planned) and named in the pins of web01 (running)",
    )
    assert report.blocking == report.problems
    assert report.dedicated == {4: "db01", 5: "db01"}


def test_capacity_error_carries_the_report() -> None:
    report = check("seed-4node-ring", [planned("db01", 0, 9 * GIB), planned("db02", 0, 1 * GIB)])
    error = CapacityError(report)
    assert isinstance(error, PlacementError)
    assert error.report is report
    assert str(error) == (
        "the guests do not fit the host (1 problem): host node 0: 10 GiB bound, 8 GiB available (8 GiB - 0 "
        "reserved): db01 9 GiB (planned), db02 1 GiB (planned)"
    )


def test_which_guests_count() -> None:
    assert counts(on("a", 0, GIB).binding())
    assert counts(on("a", 0, GIB, running=False, autostart=True).binding())
    assert not counts(on("a", 0, GIB, running=False).binding())


@pytest.mark.parametrize(
    ("kib", "text"),
    [
        (0, "0"),
        (512, "512 KiB"),
        (1536 * MIB, "1536 MiB"),
        (16 * GIB, "16 GiB"),
        (4548812, "4.34 GiB"),
        (1500, "1.46 MiB"),
    ],
)
def test_sizes_in_messages(kib: int, text: str) -> None:
    assert format_size(kib) == text


def test_a_running_virtio_mem_device_holds_what_it_still_has_plugged() -> None:
    """Requested 256 MiB, 512 MiB still plugged (a shrink the guest has not finished): 512 MiB while running."""
    topology = host("seed-4node-ring")
    device = DimmBinding(cell=0, size_kib=256 * MIB, host_nodes=(1,), plugged_kib=512 * MIB)
    guest = GuestBinding("vm", (CellBinding(0, (0,), 1 * GIB, "strict", (1,)),), dimms=(device,), running=True)
    node = check_capacity(topology, place_guests(topology, [guest])).nodes[1]
    assert node.demand_kib == 1 * GIB + 512 * MIB
    # Shut off but starting with the host: it boots with the requested size.
    autostart = replace(guest, running=False, autostart=True)
    assert check_capacity(topology, place_guests(topology, [autostart])).nodes[1].demand_kib == 1 * GIB + 256 * MIB
    # Plugged below the request (a grow still under way): the request.
    growing = replace(guest, dimms=(replace(device, plugged_kib=128 * MIB),))
    assert check_capacity(topology, place_guests(topology, [growing])).nodes[1].demand_kib == 1 * GIB + 256 * MIB


def test_a_report_updated_guest_by_guest_equals_the_report_checked_again() -> None:
    """CapacityTally: the figures mode auto reads, as a whole check would give them."""
    topology = host("seed-4node-ring")
    old = GuestBinding("a", (CellBinding(0, (0,), 2 * GIB, "strict", (0,)),), running=True)
    new = GuestBinding(
        "a", (CellBinding(0, (0,), 1 * GIB, "strict", (1,)), CellBinding(1, (1,), 1 * GIB)), running=True
    )
    other = GuestBinding(
        "b", (CellBinding(0, (0,), 3 * GIB, "strict", (1,)), CellBinding(1, (1,), 1 * GIB)), running=True
    )
    base = check_capacity(topology, place_guests(topology, [old, other]))
    moved = CapacityTally(base)
    moved.add(topology, place_guests(topology, [new])[0])
    again = check_capacity(topology, place_guests(topology, [other, new]))
    assert moved.room() == MemoryRoom.of(again)
    alone = check_capacity(topology, place_guests(topology, [other]))
    assert CapacityTally(base).room(without="a") == MemoryRoom.of(alone)
