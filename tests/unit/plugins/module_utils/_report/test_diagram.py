# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The host diagram of vnuma_info: golden text per host fixture, and the properties every drawing keeps.

``fixtures/diagrams/<host>.txt`` is the drawing of the same small fleet (an aligned guest, an unpinned
one, a misaligned one that is shut off, a long name with hugepages and a DIMM, a cell on each
memory-only node, a definition written for another host) on the host fixture ``<host>``;
``pytest --regenerate-output`` rewrites them from the current results.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    DimmBinding,
    GuestBinding,
    GuestPlacement,
    place_guests,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCpu, HostNode, HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.diagram import (
    MAX_WIDTH,
    NOT_RUNNING,
    _vcpu_amount,
    render_diagram,
    short_size,
)
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES, host

GIB = 1024 * 1024
DIAGRAMS = Path(__file__).resolve().parents[3] / "fixtures" / "diagrams"
GOLDEN = (
    "seed-4node-ring",
    "single-node",
    "intel-snc2-cxl",
    "large-16node-1024cpu",
    "sparse-ids",
    "offline-cpus",
    "no-distances",
    "testdriver-default",
)
ALL_HOSTS = sorted(path.stem for path in CAPABILITIES.glob("*.xml"))


def fleet(topology: HostTopology) -> list[GuestPlacement]:
    """The same kinds of guests on any host, placed on it."""
    cpu_nodes = [topology.node(node_id) for node_id in topology.cpu_node_ids]
    first, last = cpu_nodes[0], cpu_nodes[-1]
    cells, pins = [], {}
    for index, node in enumerate(cpu_nodes[:2]):
        vcpus = (2 * index, 2 * index + 1)
        cells.append(CellBinding(index, vcpus, 4 * GIB, "strict", (node.id,)))
        pins.update(dict.fromkeys(vcpus, node.usable_cpus))
    guests = [
        GuestBinding("db01", tuple(cells), vcpu_cpus=pins, running=True, autostart=True),
        GuestBinding("web01", (CellBinding(0, (0, 1), 2 * GIB),), running=True),
        GuestBinding(
            "batch01",
            (CellBinding(0, (0, 1, 2, 3), 8 * GIB, "strict", (last.id,)),),
            vcpu_cpus=dict.fromkeys(range(4), first.usable_cpus),
        ),
        GuestBinding(
            "analytics-warehouse-replica-0042",
            (CellBinding(0, (0,), GIB, "strict", (first.id,), hugepage_kib=2048),),
            vcpu_cpus={0: first.usable_cpus[:1]},
            dimms=(DimmBinding(0, 512 * 1024),),
            running=True,
        ),
        GuestBinding("moved01", (CellBinding(0, (0,), GIB, "strict", (99,)),), vcpu_cpus={0: first.usable_cpus}),
    ]
    memory_only = [node for node in topology.nodes if not node.has_cpus and node.memory_kib]
    if memory_only:
        cxl_cells = [CellBinding(0, (0, 1), 2 * GIB, "strict", (first.id,))]
        cxl_cells.extend(
            CellBinding(index, (), 16 * GIB, "preferred", (node.id,)) for index, node in enumerate(memory_only, 1)
        )
        guests.append(GuestBinding("cxl01", tuple(cxl_cells), vcpu_cpus=dict.fromkeys((0, 1), first.usable_cpus)))
    return place_guests(topology, guests)


def free_memory(topology: HostTopology) -> dict[int, int]:
    return {node.id: node.memory_kib // 2 for node in topology.nodes}


def draw(name: str) -> list[str]:
    topology = host(name)
    return render_diagram(topology, fleet(topology), free_kib=free_memory(topology))


@pytest.mark.parametrize("name", GOLDEN)
def test_golden(name: str, regenerate_output: bool) -> None:
    text = "\n".join(draw(name)) + "\n"
    path = DIAGRAMS / f"{name}.txt"
    if regenerate_output:
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"{path.name} is missing; run pytest with --regenerate-output and review it")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_every_line_fits_and_boxes_close(name: str) -> None:
    lines = draw(name)
    assert max(len(line) for line in lines) <= MAX_WIDTH
    assert all(line == line.rstrip() for line in lines)
    topology = host(name)
    tops = [line for line in lines if line.startswith("+- NODE ")]
    # Every node has its box, and each row of boxes holds 2 to 4 of them (a single node stands alone).
    assert sum(line.count("+- NODE ") for line in tops) == len(topology.nodes)
    per_row = [line.count("+- NODE ") for line in tops]
    assert max(per_row) <= 4
    if len(topology.nodes) > 1:
        assert max(per_row) >= 2
    assert all(per_row[0] >= count for count in per_row)


def row_sizes(lines: list[str]) -> list[int]:
    return [line.count("+- NODE ") for line in lines if line.startswith("+- NODE ")]


def test_sixteen_nodes_make_a_four_by_four_grid_when_the_lines_allow() -> None:
    topology = host("large-16node-1024cpu")
    short = [placement for placement in fleet(topology) if placement.name == "db01"]
    assert row_sizes(render_diagram(topology, short)) == [4, 4, 4, 4]
    # Longer guest lines (a DIMM, fractional vCPUs, three markers) take rows of 3 to stay within MAX_WIDTH.
    assert row_sizes(draw("large-16node-1024cpu")) == [3, 3, 3, 3, 3, 1]


@pytest.mark.parametrize("name", ["seed-4node-ring", "intel-snc2-cxl"])
def test_output_does_not_depend_on_the_order_of_guests(name: str) -> None:
    topology = host(name)
    guests = fleet(topology)
    shuffled = list(guests)
    random.Random(4).shuffle(shuffled)
    assert render_diagram(topology, shuffled) == render_diagram(topology, guests)


def box(lines: list[str], row_start: int, column: int) -> list[str]:
    """The inner text of the box in ``column`` of the row whose top border is ``lines[row_start]``."""
    outer = lines[row_start].index("+", 1) + 1
    left = column * (outer + len("  "))
    found = []
    for line in lines[row_start + 1 :]:
        if not line.startswith(("|", "+")):
            break
        found.append(line[left : left + outer][2:-2].rstrip())
    return found


def guest_lines(inner: list[str]) -> list[list[str]]:
    """The guest lines of a box (after its middle rule), split into words."""
    middle = next(index for index, text in enumerate(inner) if text.startswith("---"))
    return [text.split() for text in inner[middle + 1 : -1] if text]


def test_cells_sit_in_the_boxes_of_their_nodes() -> None:
    lines = draw("seed-4node-ring")
    node0, node1 = guest_lines(box(lines, 0, 0)), guest_lines(box(lines, 0, 1))
    node3 = guest_lines(box(lines, lines.index("", 1) + 1, 1))
    # db01's cell 0 runs and lives on node 0, cell 1 on node 1: aligned, not spread, no marker.
    assert ["db01", "c0", "2", "vCPU", "4", "GiB"] in node0
    assert ["db01", "c1", "2", "vCPU", "4", "GiB"] in node1
    # web01 floats over the four nodes: a quarter of its 2 vCPUs and of its 2 GiB on each, misaligned and spread.
    assert ["web01", "c0", "0.5", "vCPU", "512", "MiB", "!~"] in node0
    assert ["web01", "c0", "0.5", "vCPU", "512", "MiB", "!~"] in node3
    # batch01 runs on node 0 with its memory on node 3, and it is shut off.
    assert ["batch01", "c0", "4", "vCPU", "-", f"!~{NOT_RUNNING}"] in node0
    assert ["batch01", "c0", "-", "8", "GiB", f"!~{NOT_RUNNING}"] in node3
    # The long name is cut in the middle, its DIMM drawn on the node of its cell; the summary gives the name whole.
    assert ["analytics..lica-0042", "c0", "1", "vCPU", "1", "GiB"] in node0
    assert ["analytics..lica-0042", "dimm", "-", "512", "MiB"] in node0
    assert any(line.startswith("analytics-warehouse-replica-0042  running ") for line in lines)
    assert "moved01 c0: 1 GiB bound to host node 99, which this host does not have" in lines


def test_free_memory_and_pools_are_shown_when_known() -> None:
    topology = host("intel-2s-smt2")
    lines = render_diagram(topology, (), free_kib={0: 3 * GIB}, free_pages={0: {2048: 100}})
    # Without guests a box is its header alone.
    assert box(lines, 0, 0)[:-1] == [
        "CPUs 0-7,16-23",
        "16 CPUs, socket 0, SMT2",
        "memory 64 GiB, free 3 GiB",
        "2 MiB pages: 1024, 100 free",
    ]
    # Node 1's figures are unknown: its memory alone, its pool without a free count.
    assert box(lines, 0, 1)[2:4] == ["memory 64 GiB", "2 MiB pages: 1024"]
    assert "guests: none" in lines


def test_no_distances_reported_is_said_so() -> None:
    assert "distances: none reported by the host (libvirt assumes 10 to itself, 20 to any other node)" in draw(
        "no-distances"
    )


@pytest.mark.parametrize(
    ("kib", "text"),
    [(8 * GIB, "8 GiB"), (1536 * 1024, "1.5 GiB"), (512 * 1024, "512 MiB"), (4, "4 KiB"), (3 * GIB // 7, "438.9 MiB")],
)
def test_short_size(kib: int, text: str) -> None:
    assert short_size(kib) == text


def sixty_four_nodes() -> HostTopology:
    """A 64-node host (eight sockets of eight nodes, 4 CPUs and 16 GiB each): 10 to itself, 16 within a socket,
    32 across (an SGI UV-like machine; the capabilities fixtures stop at 16 nodes)."""
    nodes = []
    for node in range(64):
        cpus = tuple(HostCpu(node * 4 + cpu, node // 8, 0, cpu, frozenset({node * 4 + cpu})) for cpu in range(4))
        distances = tuple(
            (other, 10 if other == node else 16 if other // 8 == node // 8 else 32) for other in range(64)
        )
        nodes.append(HostNode(node, 16 * GIB, cpus, ((4, 4 * GIB),), distances))
    return HostTopology(tuple(nodes))


def distance_blocks(lines: list[str]) -> list[list[list[str]]]:
    """The distance table's blocks of columns, each as rows of words (its header first)."""
    blocks: list[list[list[str]]] = []
    for line in lines:
        if line.startswith("distances "):
            blocks.append([line.split()])
        elif blocks and line.startswith("node ") and len(blocks[-1]) <= 64:
            blocks[-1].append(line.split())
    return blocks


def test_a_64_node_host_keeps_every_line_within_the_width(regenerate_output: bool) -> None:
    topology = sixty_four_nodes()
    lines = render_diagram(topology, fleet(topology), free_kib=free_memory(topology))
    assert max(len(line) for line in lines) <= MAX_WIDTH
    # The distance table comes in blocks of columns, every row in each, every distance once.
    blocks = distance_blocks(lines)
    assert len(blocks) > 1
    columns = [int(node) for block in blocks for node in block[0][1:]]
    assert columns == list(range(64))
    for block in blocks:
        header = [int(node) for node in block[0][1:]]
        assert [row[:2] for row in block[1:]] == [["node", str(node)] for node in range(64)]
        for row in block[1:]:
            assert [int(value) for value in row[2:]] == [topology.distance(int(row[1]), column) for column in header]
    text = "\n".join(lines) + "\n"
    path = DIAGRAMS / "large-64node.txt"
    if regenerate_output:
        path.write_text(text, encoding="utf-8")
        return
    assert text == path.read_text(encoding="utf-8")


def test_a_small_table_stays_one_block() -> None:
    assert len(distance_blocks(draw("large-16node-1024cpu"))) == 1
    assert len(distance_blocks(draw("seed-4node-ring"))) == 1


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0.0, "-"),
        (2.0, "2 vCPU"),
        (0.9999, "1 vCPU"),
        (1.5, "1.5 vCPU"),
        # A quarter is a quarter, not 0.2 (round half to even of 0.25 to one decimal).
        (0.25, "0.25 vCPU"),
        (0.125, "0.13 vCPU"),
        (2 / 3, "0.67 vCPU"),
        (8 / 3, "2.7 vCPU"),
        # One vCPU over 64 nodes: not 0.
        (1 / 64, "0.016 vCPU"),
        (0.5, "0.5 vCPU"),
        (0.995, "1.0 vCPU"),
        (12.5, "12.5 vCPU"),
    ],
)
def test_vcpu_shares_are_shown_to_two_significant_digits(count: float, text: str) -> None:
    assert _vcpu_amount(count) == text


def test_a_flat_one_vcpu_guest_on_four_and_on_64_nodes() -> None:
    for topology, share in ((host("seed-4node-ring"), "0.25"), (sixty_four_nodes(), "0.016")):
        guest = place_guests(topology, [GuestBinding("tiny", (CellBinding(0, (0,), GIB),), running=True)])
        lines = [line for line in render_diagram(topology, guest) if "| tiny " in line]
        assert lines and all(f" {share} vCPU " in line for line in lines)
