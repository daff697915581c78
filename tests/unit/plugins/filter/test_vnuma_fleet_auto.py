# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet report carries a mode auto guest's choice (planned.auto); other guests' rows keep their shape."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import fleet_result

FIXTURE = sorted((Path(__file__).parents[2] / "fixtures" / "fleet").glob("*.json"))[0]
CHOICE = {
    "nodes": "1",
    "how": "chosen",
    "why": "host node 1 holds the guest (4 GiB) alone",
    "memory_kib": 4194304,
    "hugepages_kib": None,
    "considered": 1,
    "nodes_left": [],
}


def test_the_choice_of_a_mode_auto_guest_is_in_its_planned_row() -> None:
    inputs: dict[str, Any] = copy.deepcopy(json.loads(FIXTURE.read_text(encoding="utf-8"))["inputs"])
    planned = [guest for guest in inputs["plan"]["guests"] if guest.get("layout")]
    assert len(planned) >= 2, "the fixture needs two planned guests"
    planned[0]["auto"] = CHOICE
    rows = {row["name"]: row for row in fleet_result(inputs)["guests"]}
    assert rows[planned[0]["name"]]["planned"]["auto"] == CHOICE
    assert "auto" not in rows[planned[1]["name"]]["planned"]
