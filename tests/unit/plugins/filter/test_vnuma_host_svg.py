# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_host_svg: the demo's hypervisor drawn from vnuma_info's result, then with the role's planned layouts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_host_svg import FilterModule, vnuma_host_svg

DEMO = Path(__file__).parents[2] / "fixtures" / "fleet" / "demo_hv01.json"
NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    return dict(json.loads(DEMO.read_text(encoding="utf-8")))


def guest_lines(svg: str) -> list[list[str]]:
    """The guest lines of the drawing, as words (the lines that follow a colour swatch)."""
    root = ET.fromstring(svg)
    # A guest line is a group of its own: a tooltip, the swatch, the text.
    return sorted(
        "".join(text.itertext()).split()
        for group in root.iter(f"{NS}g")
        if group.find(f"{NS}title") is not None
        for text in group.findall(f"{NS}text")
    )


def text_diagram_lines(diagram: str) -> list[list[str]]:
    """The guest lines of the text diagram's boxes, as words."""
    lines = []
    for line in diagram.splitlines():
        for part in line.split("|")[1::2]:
            words = part.split()
            if len(words) > 2 and words[1][:1] == "c" and words[1][1:].isdigit():
                lines.append(words)
    return sorted(lines)


def test_the_before_drawing_has_the_text_diagrams_lines(demo: dict[str, Any]) -> None:
    before = demo["inputs"]["before"]
    svg = vnuma_host_svg({"host": demo["result"]["topology"], "guests": before["guests"]}, title="hv01 before")
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" ')
    assert guest_lines(svg) == text_diagram_lines(before["diagram"])


def test_planned_layouts_are_drawn_in_place_of_their_guests(demo: dict[str, Any]) -> None:
    info = {"host": demo["result"]["topology"], "guests": demo["inputs"]["before"]["guests"]}
    layouts = [guest["planned"]["layout"] for guest in demo["result"]["guests"]]
    lines = guest_lines(vnuma_host_svg(info, layouts=layouts))
    # Every guest aligned as planned: no "!" marker; batch01's four cells, one per node.
    assert not [line for line in lines if "!" in line[-1]]
    assert sorted(line[1] for line in lines if line[0] == "batch01") == ["c0", "c1", "c2", "c3"]
    # A guest that is not running keeps its marker.
    assert all(line[-1] == "o" for line in lines if line[0] in ("batch01", "hpc01"))


def bar_texts(svg: str) -> list[str]:
    """The texts under the memory bars, box by box."""
    lines = ["".join(text.itertext()) for text in ET.fromstring(svg).iter(f"{NS}text")]
    return [line for line in lines if line.startswith(("guests ", "+")) and ("of" in line or "shut off" in line)]


def test_shut_off_guests_are_not_counted_in_the_bar(demo: dict[str, Any]) -> None:
    info = {"host": demo["result"]["topology"], "guests": demo["inputs"]["before"]["guests"]}
    svg = vnuma_host_svg(info)
    # Node 2 binds cache01's 4 GiB; db01 (8 GiB) and web01 (2 GiB) spread a quarter on each node: 6.5 GiB run there.
    # batch01 (1 GiB there) and hpc01 (2 GiB) are shut off: the capacity check does not count them, nor does the bar.
    assert bar_texts(svg) == [
        "guests 2.5 GiB of 8 GiB",
        "+3 GiB shut off, not counted",
        "guests 2.5 GiB of 8 GiB",
        "+3 GiB shut off, not counted",
        "guests 6.5 GiB of 8 GiB",
        "+3 GiB shut off, not counted",
        "guests 2.5 GiB of 8 GiB",
        "+3 GiB shut off, not counted",
    ]
    assert 'class="vn-over"' not in svg and "over" not in " ".join(bar_texts(svg))


def test_a_planned_layout_keeps_its_guests_autostart(demo: dict[str, Any]) -> None:
    guests = json.loads(json.dumps(demo["inputs"]["before"]["guests"]))
    # hpc01 is shut off; with autostart it counts, planned as before.
    for guest in guests:
        if guest["name"] == "hpc01":
            guest["autostart"] = True
    layouts = [guest["planned"]["layout"] for guest in demo["result"]["guests"] if guest["name"] == "hpc01"]
    texts = bar_texts(vnuma_host_svg({"host": demo["result"]["topology"], "guests": guests}, layouts=layouts))
    # Its plan puts 4 GiB on each of nodes 2 and 3: counted there (node 2 is over-committed), batch01's 1 GiB shut off.
    assert texts[4].startswith("guests 10.5 GiB of 8 GiB, 2.5 GiB ov")
    assert texts[5:] == ["+1 GiB shut off, not counted", "guests 6.5 GiB of 8 GiB", "+1 GiB shut off, not counted"]


def test_the_host_alone_is_drawn_and_the_filter_is_registered(demo: dict[str, Any]) -> None:
    svg = vnuma_host_svg({"host": demo["result"]["topology"]})
    assert guest_lines(svg) == []
    assert FilterModule().filters() == {"vnuma_host_svg": vnuma_host_svg}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([],), "the input must be a vnuma_info result (a dict with its host), got list"),
        (({"guests": []},), "the input must be a vnuma_info result (a dict with its host), got dict"),
        (({"host": {}},), "the host report has no 'nodes'"),
        (({"host": None, "guests": "x"},), "the input's guests must be a list, got str"),
        (({"host": None}, "x"), "layouts must be a list of layouts, got str"),
        (({"host": None}, None, 3), "title must be a string, got int"),
        (({"host": None}, None, "", "yes"), "standalone must be a boolean, got str"),
    ],
)
def test_bad_input_fails_naming_the_filter(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(AnsibleFilterError) as error:
        vnuma_host_svg(*args)
    assert str(error.value) == f"vnuma.libvirt.vnuma_host_svg: {message}"


def test_a_bad_layout_names_its_guest(demo: dict[str, Any]) -> None:
    info = {"host": demo["result"]["topology"], "guests": []}
    with pytest.raises(AnsibleFilterError, match="vnuma_host_svg: guest db01: cell 0 has no 'memory_kib'"):
        vnuma_host_svg(info, layouts=[{"guest": "db01", "cells": [{"id": 0}]}])


def test_hot_plugged_dimms_are_drawn_as_the_text_diagram_shows_them() -> None:
    # The SVG left them out: a guest with 2 GiB in cells on nodes 0 and 1 and a 2 GiB DIMM on node 1 was drawn
    # with 2 GiB on the bars, beside a text diagram with a "dimm" line for it.
    import uuid

    import libvirt

    from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_info
    from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES
    from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module

    name = f"svg-dimm-{uuid.uuid4().hex[:8]}"
    conn = libvirt.open("test:///default")
    conn.defineXML(
        f"<domain type='test'><name>{name}</name><maxMemory slots='4' unit='GiB'>16</maxMemory>"
        "<memory unit='GiB'>4</memory><vcpu>2</vcpu><os><type>hvm</type></os>"
        "<cpu><numa><cell id='0' cpus='0' memory='1' unit='GiB'/><cell id='1' cpus='1' memory='1' unit='GiB'/>"
        "</numa></cpu><numatune><memnode cellid='0' mode='strict' nodeset='0'/>"
        "<memnode cellid='1' mode='strict' nodeset='1'/></numatune><devices>"
        "<memory model='dimm'><source><nodemask>1</nodemask></source><target><size unit='GiB'>2</size><node>1</node>"
        "</target></memory></devices></domain>"
    )
    try:
        info = run_module(
            {
                "uri": "test:///default",
                "host_capabilities": str(CAPABILITIES / "seed-4node-ring.xml"),
                "guests": [name],
            },
            module=vnuma_info,
        )
    finally:
        conn.lookupByName(name).undefine()
        conn.close()
    (guest,) = info["guests"]
    assert guest["layout"]["dimm_share_kib"] == {"1": 2 * 1024 * 1024}
    svg = vnuma_host_svg({"host": info["host"], "guests": info["guests"]}, title="dimm")
    assert [line[1:5] for line in guest_lines(svg) if "dimm" in line] == [["dimm", "-", "2", "GiB"]]
    texts = ["".join(text.itertext()) for text in ET.fromstring(svg).iter(f"{NS}text")]
    # Shut off (a test-driver guest defined, not started): drawn on the bar, not counted; the DIMM with its cell.
    assert "+3 GiB shut off, not counted" in texts, [text for text in texts if "shut off" in text]
