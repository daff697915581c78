# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The drawings' models rebuilt from the modules' return values draw what the modules drew.

Every recorded role run (``fixtures/fleet/*.json``) holds vnuma_info's result before the run (its
``host``, ``guests`` and text ``diagram``) and the planned layouts: the rebuilt models give the same
text diagram, and a planned layout placed again has the alignment and locality the plan reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.diagram import render_diagram
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.from_report import (
    free_figures,
    placement_from_layout,
    placement_from_report,
    topology_from_report,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.host import host_report
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES, host

FIXTURES = [
    path
    for path in sorted((Path(__file__).parents[3] / "fixtures" / "fleet").glob("*.json"))
    if json.loads(path.read_text(encoding="utf-8"))["inputs"]["before"].get("diagram")
]


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_rebuilt_models_draw_the_recorded_text_diagram(path: Path) -> None:
    inputs = load(path)["inputs"]
    before = inputs["before"]
    topology = topology_from_report(before["host"])
    free_kib, free_pages = free_figures(before["host"])
    lines = render_diagram(
        topology,
        [placement_from_report(guest) for guest in before["guests"]],
        free_kib=free_kib,
        free_pages=free_pages,
        states={guest["name"]: guest["state"] for guest in before["guests"]},
    )
    assert "\n".join(lines) == before["diagram"]


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_planned_layouts_place_as_the_plan_reported(path: Path) -> None:
    fixture = load(path)
    topology = topology_from_report(fixture["inputs"]["before"]["host"])
    planned = [guest for guest in fixture["result"]["guests"] if guest["planned"]]
    assert planned
    for guest in planned:
        placement = placement_from_layout(topology, guest["planned"]["layout"])
        assert placement.aligned == guest["planned"]["aligned"], guest["name"]
        assert round(placement.locality, 4) == guest["planned"]["locality"], guest["name"]


@pytest.mark.parametrize("name", sorted(path.stem for path in CAPABILITIES.glob("*.xml")))
def test_host_report_round_trip(name: str) -> None:
    topology = host(name)
    report = host_report(topology)
    rebuilt = topology_from_report(report)
    assert host_report(rebuilt) == report
    assert [node.cores for node in rebuilt.nodes] == [node.cores for node in topology.nodes]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "the host report must be a dict, got list"),
        ({}, "the host report has no 'nodes'"),
        ({"nodes": [{"id": 0}]}, "host node 0 has no 'memory_kib'"),
        ({"nodes": [{"id": "0", "memory_kib": 1}]}, "a host node's id must be an integer, got str"),
        ({"nodes": []}, "the host report does not describe a host: the host reports no NUMA nodes"),
        ({"nodes": [{"id": 0, "memory_kib": 1, "hugepages": 5}]}, "host node 0: hugepages must be a list, got int"),
        (
            {"nodes": [{"id": 0, "memory_kib": 1, "distances": {"x": 10}}]},
            "host node 0: a distance's node must be an integer, got str",
        ),
    ],
)
def test_bad_host_reports_are_refused(value: Any, message: str) -> None:
    with pytest.raises(SpecError) as error:
        topology_from_report(value)
    assert str(error.value).startswith(message)


def test_bad_guests_and_layouts_are_refused() -> None:
    topology = host("seed-4node-ring")
    with pytest.raises(SpecError, match=r"^a guest report has no 'name'"):
        placement_from_report({})
    with pytest.raises(SpecError, match=r"^guest db01: layout must be a dict, got str"):
        placement_from_report({"name": "db01", "layout": "x"})
    with pytest.raises(SpecError, match=r"^guest db01: cell 0 has no 'memory_kib'"):
        placement_from_layout(topology, {"guest": "db01", "cells": [{"id": 0}]})
    with pytest.raises(SpecError, match=r"^guest db01: cell 0: vcpus"):
        placement_from_layout(topology, {"guest": "db01", "cells": [{"id": 0, "vcpus": "x", "memory_kib": 1}]})
    with pytest.raises(SpecError, match=r"^guest db01: cell 0: locality must be a number, got str"):
        placement_from_report({"name": "db01", "layout": {"cells": [{"id": 0, "memory_kib": 1, "locality": "high"}]}})
    for locality in (None, [], {}):
        with pytest.raises(SpecError, match=r"^guest db01: alignment's locality must be a number, got "):
            placement_from_report({"name": "db01", "layout": {"cells": []}, "alignment": {"locality": locality}})
    with pytest.raises(SpecError, match=r"^guest db01: a vcpupin's vCPU must be an integer, got str"):
        placement_from_layout(topology, {"guest": "db01", "cells": [], "vcpupin": {"one": "0"}})


def test_distances_and_shares_keyed_by_digits_as_json_leaves_them() -> None:
    rebuilt = topology_from_report(
        {"nodes": [{"id": 0, "memory_kib": 1, "distances": {"0": 10, "1": 21}}, {"id": 1, "memory_kib": 1}]}
    )
    assert rebuilt.distance(0, 1) == 21
    cell = {"id": 0, "memory_kib": 1, "cpu_share": {"1": 1.0}, "locality": 1}
    placed = placement_from_report({"name": "db01", "layout": {"cells": [cell]}})
    assert placed.cells[0].cpu_share == {1: 1.0}
    assert placed.cells[0].locality == 1.0
