# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The host diagram as SVG: a golden drawing, well-formed XML on every host, escaping, caps, the grid.

``fixtures/svg/<host>.svg`` is the drawing of the text diagram tests' fleet on the host fixture
``<host>``; ``pytest --regenerate-output`` rewrites them from the current results.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    GuestBinding,
    place_guests,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCpu, HostNode, HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.diagram import LEGEND
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.svg import (
    BOX_WIDTH,
    MAX_CELLS,
    MAX_CPUS,
    MAX_CPUSET_LINES,
    MAX_NODES,
    render_svg,
)
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES, host
from ansible_collections.vnuma.libvirt.tests.unit.plugins.module_utils._report.test_diagram import (
    fleet,
    free_memory,
)

GIB = 1024 * 1024
NS = "{http://www.w3.org/2000/svg}"
GOLDEN = Path(__file__).resolve().parents[3] / "fixtures" / "svg"
ALL_HOSTS = sorted(path.stem for path in CAPABILITIES.glob("*.xml"))


def draw(name: str, **options: object) -> str:
    topology = host(name)
    return render_svg(topology, fleet(topology), free_kib=free_memory(topology), **options)  # type: ignore[arg-type]


def texts(root: ET.Element) -> list[str]:
    """Every text line of the drawing, tspans joined to their line."""
    return ["".join(element.itertext()) for element in root.iter(f"{NS}text")]


def node_boxes(root: ET.Element) -> list[ET.Element]:
    return [rect for rect in root.iter(f"{NS}rect") if rect.get("class") in ("vn-node", "vn-memonly")]


@pytest.mark.parametrize("name", ["seed-4node-ring", "intel-snc2-cxl"])
def test_golden(name: str, regenerate_output: bool) -> None:
    text = draw(name, title=f"{name}: before") + "\n"
    path = GOLDEN / f"{name}.svg"
    if regenerate_output:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"{path.name} is missing; run pytest with --regenerate-output and review it")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_every_host_gives_well_formed_svg_with_a_box_per_node(name: str) -> None:
    root = ET.fromstring(draw(name))
    assert root.tag == f"{NS}svg"
    width, height = int(root.get("width", "0")), int(root.get("height", "0"))
    assert root.get("viewBox") == f"0 0 {width} {height}"
    boxes = node_boxes(root)
    assert len(boxes) == len(host(name).nodes)
    # Every box lies inside the picture.
    for box in boxes:
        assert int(box.get("x", "-1")) >= 0 and int(box.get("x", "0")) + BOX_WIDTH <= width
        assert int(box.get("y", "-1")) >= 0 and int(box.get("y", "0")) + int(box.get("height", "0")) <= height


def test_cells_are_listed_in_the_boxes_of_their_nodes() -> None:
    root = ET.fromstring(draw("seed-4node-ring"))
    lines = texts(root)
    # The text diagram's lines, columns included: db01's cells on nodes 0 and 1, web01 floating over all four.
    assert sum(1 for line in lines if line.startswith("db01 ") and " c0 " in line and "4 GiB" in line) == 1
    assert sum(1 for line in lines if line.startswith("web01 ") and line.endswith("!~")) == 4
    assert sum(1 for line in lines if line.startswith("NODE ")) == 4
    assert "CPUs 0-3" in lines
    assert "moved01 c0: 1 GiB bound to host node 99, which this host does not have" in lines
    # The legend is the text diagram's.
    assert LEGEND[0].split()[0] + " " + LEGEND[0].split()[1] in " ".join(lines)


def test_cpu_less_nodes_are_drawn_as_memory_only() -> None:
    topology = host("intel-snc2-cxl")
    root = ET.fromstring(draw("intel-snc2-cxl"))
    memory_only = [node.id for node in topology.nodes if not node.has_cpus]
    assert memory_only
    dashed = [box for box in node_boxes(root) if box.get("class") == "vn-memonly"]
    assert len(dashed) == len(memory_only)
    lines = texts(root)
    assert lines.count("memory only") == len(memory_only)
    assert lines.count("no CPUs (memory only)") == len(memory_only)
    # No CPU square in a memory-only box: squares are the CPUs of the host, one each.
    squares = [rect for rect in root.iter(f"{NS}rect") if rect.get("class") in ("vn-cpu", "vn-offline")]
    assert len(squares) == sum(len(node.cpus) for node in topology.nodes)


def test_sixteen_nodes_make_a_four_by_four_grid() -> None:
    root = ET.fromstring(draw("large-16node-1024cpu"))
    boxes = node_boxes(root)
    assert len(boxes) == 16
    assert len({box.get("x") for box in boxes}) == 4
    assert len({box.get("y") for box in boxes}) == 4
    # 64 CPUs per node: every one drawn, a core's two threads side by side.
    assert sum(1 for rect in root.iter(f"{NS}rect") if rect.get("class") == "vn-cpu") == 1024
    assert int(root.get("width", "0")) <= 4 * BOX_WIDTH + 3 * 16 + 2 * 12


def test_hostile_guest_names_are_escaped() -> None:
    topology = host("seed-4node-ring")
    hostile = "<script>alert('x')</script>&amp;\"\x01\ud800"
    guest = GuestBinding(hostile, (CellBinding(0, (0, 1), 2 * GIB, "strict", (0,)),), running=True)
    svg = render_svg(topology, place_guests(topology, [guest]), title=f"{hostile} title")
    assert "<script" not in svg
    assert "\x01" not in svg and "\ud800" not in svg
    root = ET.fromstring(svg)
    assert root.find(f"{NS}script") is None
    # The name is drawn (cut in the middle to fit), its whole spelling in the tooltip, control characters replaced.
    tips = ["".join(element.itertext()) for element in root.iter(f"{NS}title")]
    assert any(tip.startswith("<script>alert('x')</script>&amp;\"\ufffd\ufffd c0:") for tip in tips)
    assert any(line.startswith("<script") for line in texts(root))
    assert root.get("aria-label", "").startswith("<script>alert")


def big_host(nodes: int, cpus: int) -> HostTopology:
    return HostTopology(
        tuple(
            HostNode(
                node,
                64 * GIB,
                tuple(HostCpu(node * cpus + cpu, 0, 0, cpu, frozenset({node * cpus + cpu})) for cpu in range(cpus)),
            )
            for node in range(nodes)
        )
    )


def test_what_is_drawn_is_capped_and_says_how_much_more() -> None:
    topology = big_host(MAX_NODES + 3, MAX_CPUS + 5)
    guests = [
        GuestBinding(f"g{index:02}", (CellBinding(0, (0,), GIB, "strict", (0,)),), vcpu_cpus={0: (0,)})
        for index in range(MAX_CELLS + 4)
    ]
    root = ET.fromstring(render_svg(topology, place_guests(topology, guests)))
    lines = texts(root)
    assert len(node_boxes(root)) == MAX_NODES
    assert "+3 more host nodes not drawn (nodes 32 and up)" in lines
    assert lines.count("+5 more CPUs") == MAX_NODES
    # Node 0 holds every guest: MAX_CELLS - 1 lines and the count of the rest.
    assert "+5 more cells" in lines
    assert sum(1 for line in lines if line[:1] == "g" and line[1:3].isdigit()) == MAX_CELLS - 1


def test_a_long_cpu_list_is_cut_after_a_few_lines() -> None:
    # Every other CPU of a node: a list too long for MAX_CPUSET_LINES lines of a box.
    cpus = tuple(HostCpu(cpu, 0, 0, cpu, frozenset({cpu})) for cpu in range(0, 400, 2))
    offline = tuple(HostCpu(cpu) for cpu in range(1, 400, 2))
    lines = texts(ET.fromstring(render_svg(HostTopology((HostNode(0, 64 * GIB, cpus + offline),)))))
    start, offline_start = lines.index("NODE 0") + 2, lines.index("200 CPUs, socket 0") + 1
    online_list, offline_list = lines[start : start + 3], lines[offline_start : offline_start + 3]
    assert online_list[0].startswith("CPUs 0,2,4,") and online_list[-1].endswith("\u2026")
    assert lines[start + MAX_CPUSET_LINES] == "200 CPUs, socket 0"
    assert offline_list[0].startswith("offline CPUs 1,3,5,") and offline_list[-1].endswith("\u2026")
    assert lines[offline_start + MAX_CPUSET_LINES].startswith("memory 64 GiB")


def test_cpus_held_by_a_guest_take_its_colour() -> None:
    topology = host("seed-4node-ring")
    held = GuestBinding(
        "pinned", (CellBinding(0, (0, 1), GIB, "strict", (0,)),), vcpu_cpus={0: (2,), 1: (3,)}, dedicated_cpus=(2, 3)
    )
    root = ET.fromstring(render_svg(topology, place_guests(topology, [held])))
    coloured = [
        "".join(rect.itertext())
        for rect in root.iter(f"{NS}rect")
        if rect.get("class") == "vn-cpu" and rect.get("style")
    ]
    assert coloured == ["CPU 2, held by pinned", "CPU 3, held by pinned"]


def test_memory_over_a_node_is_shown() -> None:
    topology = host("seed-4node-ring")
    # Running: it counts (a shut-off guest does not, below).
    greedy = GuestBinding(
        "greedy", (CellBinding(0, (0,), 10 * GIB, "strict", (0,)),), vcpu_cpus={0: (0,)}, running=True
    )
    lines = texts(ET.fromstring(render_svg(topology, place_guests(topology, [greedy]))))
    assert "guests 10 GiB of 8 GiB, 2 GiB over" in lines


def bar_figures(svg: str) -> tuple[list[str], int, list[str]]:
    """The bars' texts, how many bars are outlined red, and the tooltips of the pale (not counted) segments."""
    root = ET.fromstring(svg)
    lines = [line for line in texts(root) if line.startswith(("guests ", "+"))]
    over = sum(1 for rect in root.iter(f"{NS}rect") if rect.get("class") == "vn-over")
    idle = ["".join(rect.itertext()) for rect in root.iter(f"{NS}rect") if rect.get("class") == "vn-idle"]
    return lines, over, idle


def test_the_bar_counts_what_the_capacity_check_counts() -> None:
    topology = host("seed-4node-ring")
    cell = (CellBinding(0, (0,), 6 * GIB, "strict", (0,)),)
    small = GuestBinding("small", (CellBinding(0, (0,), 2 * GIB, "strict", (0,)),), vcpu_cpus={0: (0,)}, running=True)
    # Shut off and not autostart: it takes nothing until it starts (the capacity check warns about that).
    idle = GuestBinding("idle", cell, vcpu_cpus={0: (1,)})
    lines, over, pale = bar_figures(render_svg(topology, place_guests(topology, [small, idle])))
    assert lines[:2] == ["guests 2 GiB of 8 GiB", "+6 GiB shut off, not counted"]
    assert over == 0
    assert pale == ["idle: 6 GiB (shut off, not counted)"]
    # Shut off but autostart: it counts, and the node is over-committed.
    starts = GuestBinding("idle", cell, vcpu_cpus={0: (1,)}, autostart=True)
    lines, over, pale = bar_figures(render_svg(topology, place_guests(topology, [small, starts])))
    assert lines[0] == "guests 8 GiB of 8 GiB" and over == 0 and pale == []
    bigger = GuestBinding("idle", (CellBinding(0, (0,), 7 * GIB, "strict", (0,)),), autostart=True)
    lines, over, pale = bar_figures(render_svg(topology, place_guests(topology, [small, bigger])))
    assert lines[0] == "guests 9 GiB of 8 GiB, 1 GiB over" and over == 1


def test_inline_form_has_no_namespace_and_the_output_does_not_depend_on_guest_order() -> None:
    topology = host("intel-snc2-cxl")
    guests = fleet(topology)
    shuffled = list(guests)
    random.Random(7).shuffle(shuffled)
    assert render_svg(topology, shuffled) == render_svg(topology, guests)
    inline = render_svg(topology, guests, standalone=False)
    assert inline.startswith('<svg xml:space="preserve" ') and "http" not in inline
    assert inline == render_svg(topology, guests).replace(' xmlns="http://www.w3.org/2000/svg"', "")
