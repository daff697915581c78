# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Render the vnuma_fleet role's HTML templates from recorded role data: ``python render_reports.py OUT_DIR``.

Writes OUT_DIR/hv01.html (the demo's hypervisor: ``tests/unit/fixtures/fleet/demo_hv01.json`` holds
what the role registered in ``make demo``), OUT_DIR/big16.html (a 16-node host with the text diagram
tests' guests), OUT_DIR/mixed.html and OUT_DIR/failed.html (recorded playbook test runs: a hypervisor
with failed guests, one that could not be reached), OUT_DIR/longname.html (the one with failed guests, its guest
that failed at apply renamed to one word of 126 characters) and OUT_DIR/fleet.html (the fleet summary over
hv01, big16 and two hosts that failed, with long names and URIs).

Ansible's own templar renders them as the role does (trim_blocks, the style sheet included from next
to the template), in this process: a play with the template module costs seconds of CPU per page.
Ansible's collection loader must be set up before anything of the collection is imported, hence a
process of its own.

``VNUMA_REPORT_TEMPLATES=DIR`` renders the templates of DIR instead of ``roles/vnuma_fleet/templates``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "tests" / "unit" / "fixtures" / "fleet"
DEMO = FLEET / "demo_hv01.json"
# Recorded runs of the playbook tests on qemu:///system: a hypervisor with failed guests, one that failed.
RECORDED = {"mixed": "playbook_hv-mixed_apply_guests_failed.json", "failed": "playbook_hv-bad_apply_failed.json"}
LONG_NAME = "hypervisor-with-a-rather-long-name-042.rack12.west.example.com"
# A guest name of one long word (libvirt allows it): the mixed run's guest that failed at apply, renamed.
LONG_GUEST = "Z" * 60 + "_" + "Y" * 60 + "_fail"


def info_guest(placement: Any) -> dict[str, Any]:
    """A guest as vnuma_info reports it: the parts the diagram is drawn from."""
    return {
        "name": placement.name,
        "running": placement.binding.running,
        "state": "running" if placement.binding.running else "shutoff",
        "dedicated_cpus": "",
        "layout": {"cells": [cell.to_dict() for cell in placement.cells]},
        "alignment": {"aligned": placement.aligned, "locality": round(placement.locality, 4)},
    }


def report_vars() -> dict[str, dict[str, Any]]:
    """Each page's template variables."""
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import fleet_summary
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.host import host_report
    from ansible_collections.vnuma.libvirt.tests.support.hosts import host
    from ansible_collections.vnuma.libvirt.tests.unit.plugins.module_utils._report.test_diagram import (
        fleet,
        free_memory,
    )

    demo = json.loads(DEMO.read_text(encoding="utf-8"))
    topology = host("large-16node-1024cpu")
    big = copy.deepcopy(demo["result"])
    big.update(
        host="big16",
        topology=host_report(topology, free_memory(topology)),
        guests=[],
        diagram_before=None,
        diagram_after=None,
    )
    summary = fleet_summary(
        [
            {"host": "hv01", "result": demo["result"], "uri": demo["result"]["uri"]},
            {"host": "big16", "result": big, "uri": big["uri"]},
            {"host": LONG_NAME, "result": {}, "uri": f"qemu+ssh://root@{LONG_NAME}/system?keyfile=/root/.ssh/fleet"},
            {"host": "hv-unreachable", "result": {}, "uri": "qemu+tls://hv-unreachable.example.com/system"},
        ],
        "2026-12-02T00:00:00Z",
    )
    pages = {
        "hv01": {"vnuma_fleet_result": demo["result"], "__vnuma_fleet_before": demo["inputs"]["before"]},
        "big16": {
            "vnuma_fleet_result": big,
            "__vnuma_fleet_before": {"guests": [info_guest(guest) for guest in fleet(topology)]},
        },
        "fleet": {"__vnuma_fleet_summary": summary},
    }
    for page, name in RECORDED.items():
        recorded = json.loads((FLEET / name).read_text(encoding="utf-8"))
        pages[page] = {"vnuma_fleet_result": recorded["result"], "__vnuma_fleet_before": recorded["inputs"]["before"]}
    # Everywhere the name is: its row, the failed guests' box, the changes, the restart list, the drawings.
    renamed = json.loads((FLEET / RECORDED["mixed"]).read_text(encoding="utf-8").replace("fleet-dimm01", LONG_GUEST))
    pages["longname"] = {"vnuma_fleet_result": renamed["result"], "__vnuma_fleet_before": renamed["inputs"]["before"]}
    return pages


def render(out: Path) -> None:
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar, trust_as_template

    init_plugin_loader([str(ROOT / ".build" / "collections")])
    templates = Path(os.environ.get("VNUMA_REPORT_TEMPLATES", ROOT / "roles" / "vnuma_fleet" / "templates"))
    out.mkdir(parents=True, exist_ok=True)
    for page, variables in report_vars().items():
        name = "fleet.html.j2" if page == "fleet" else "report.html.j2"
        text = (templates / name).read_text(encoding="utf-8")
        templar = Templar(loader=DataLoader(), variables=variables).copy_with_new_env(searchpath=[str(templates)])
        overrides = {"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"}
        rendered = templar.template(trust_as_template(text), escape_backslashes=False, overrides=overrides)
        (out / f"{page}.html").write_text(str(rendered), encoding="utf-8")


if __name__ == "__main__":
    render(Path(sys.argv[1]))
