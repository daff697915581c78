# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The host report (roles/vnuma_fleet/templates/report.html.j2) shows every size as the one rounded size formatter
gives it (plugins/module_utils/_report/diagram.py:short_size, through the vnuma_fleet_size filter), as the host
diagram on the same page does.  The template had a formatter of its own, in Jinja: 1049088 KiB was "1.0 GiB" and
2 TiB "2048 GiB".  Rendered as the role's report action renders it (test_fleet_report_pages.py says why here).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.action.vnuma_fleet_report import render_template
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.diagram import short_size
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import fleet_result

ROOT = Path(__file__).resolve().parents[4]
DEMO = ROOT / "tests" / "unit" / "fixtures" / "fleet" / "demo_hv01.json"
TEMPLATES = ROOT / "roles" / "vnuma_fleet" / "templates"
GIB = 1024**2
# Sizes the Jinja formatter showed otherwise: a GiB and a KiB, 2 TiB, a size below a MiB, a MiB and a half.
ODD = (GIB + 512, 2 * 1024 * GIB, 700, 1536, 3 * GIB // 2)


def page(result: dict[str, Any], inputs: dict[str, Any]) -> str:
    text = (TEMPLATES / "report.html.j2").read_text(encoding="utf-8")
    return render_template(
        text, [str(TEMPLATES)], {"vnuma_fleet_result": result, "__vnuma_fleet_before": inputs["before"]}
    )


def section(html: str, title: str) -> str:
    return html.split(f"<h2>{title}", 1)[1].split("<h2>", 1)[0]


def cells(html: str) -> list[str]:
    return re.findall(r'<td class="num">([^<]*(?:<span class="badge bad">[^<]*</span>)?)</td>', html)


def demo() -> tuple[dict[str, Any], dict[str, Any]]:
    inputs: dict[str, Any] = copy.deepcopy(json.loads(DEMO.read_text(encoding="utf-8"))["inputs"])
    return fleet_result(copy.deepcopy(inputs)), inputs


def test_the_hosts_nodes_show_the_formatters_sizes() -> None:
    result, inputs = demo()
    nodes = result["topology"]["nodes"]
    for node, kib in zip(nodes, ODD, strict=False):
        node.update(memory_kib=kib, free_kib=kib)
    host = section(page(result, inputs), "Host")
    shown = cells(host)
    for node, kib in zip(nodes, ODD, strict=False):
        # Each node's row: its id, then memory and free.
        assert shown[shown.index(str(node["id"])) + 1 : shown.index(str(node["id"])) + 3] == [short_size(kib)] * 2
    assert "1.0 GiB" not in host and "2048 GiB" not in host
    assert ">1 GiB<" in host and ">2 TiB<" in host


def test_the_capacity_table_and_a_node_short_of_memory() -> None:
    result, inputs = demo()
    node = result["capacity"]["nodes"][0]
    node.update(memory_kib=GIB + 512, hugepages_kib=0, reserved_kib=1536, available_kib=2 * 1024 * GIB)
    node.update(demand_kib=3 * GIB // 2, free_after_kib=-(GIB + 512))
    capacity = section(page(result, inputs), "Capacity")
    row = cells(capacity)[:7]
    assert row == [
        str(node["id"]),
        short_size(GIB + 512),
        short_size(0),
        short_size(1536),
        short_size(2 * 1024 * GIB),
        short_size(3 * GIB // 2),
        f'<span class="badge bad">-{short_size(GIB + 512)}</span>',
    ]


def test_the_guests_memory_before_and_planned() -> None:
    result, inputs = demo()
    guest = result["guests"][0]
    guest["before"]["memory_kib"] = GIB + 512
    guest["planned"]["memory_kib"] = 2 * 1024 * GIB
    guests = section(page(result, inputs), "Guests")
    arrow = '<span class="arrow">&rarr;</span>'
    assert f"{short_size(GIB + 512)}{arrow}{short_size(2 * 1024 * GIB)}" in guests
