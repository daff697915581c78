# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fleet_result and fleet_summary: what the report says was drawn, went on and written, in each way a run goes.

The demo's recorded run (tests/unit/fixtures/fleet/demo_hv01.json: five guests converted on the test driver) is
changed into the other outcomes: the plan does not fit (nothing applied), a gate held the hypervisor back, a guest
failed, check mode.  The HTML report (roles/vnuma_fleet/templates/report.html.j2) is rendered from each, as the
role's report action renders it: so this lives with the action's tests (ansible-test runs the tests under
module_utils without the controller's ansible).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.action.vnuma_fleet_report import render_template
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import fleet_result, fleet_summary

ROOT = Path(__file__).resolve().parents[4]
DEMO = ROOT / "tests" / "unit" / "fixtures" / "fleet" / "demo_hv01.json"
TEMPLATES = ROOT / "roles" / "vnuma_fleet" / "templates"
GUESTS = ["batch01", "cache01", "db01", "hpc01", "web01"]
CAPACITY = {
    "step": "capacity",
    "task": "Capacity | Fail when the plan does not fit the host",
    "msg": "the plan for 4 guests does not fit hv01 (test:///demo), nothing was changed: host node 0: ...",
    "guest": None,
    "capacity": None,
}
WEB01 = {"name": "web01", "step": "plan", "error": "guest web01: too small", "changed": False, "written": []}


def demo() -> dict[str, Any]:
    inputs: dict[str, Any] = json.loads(DEMO.read_text(encoding="utf-8"))["inputs"]
    return copy.deepcopy(inputs)


def nothing_applied(inputs: dict[str, Any], **more: Any) -> dict[str, Any]:
    """``inputs`` as the role passes them when the apply step did not run: nothing applied, read or verified."""
    inputs.update(applied={}, after={}, verify={}, restarts=[], restart_required=[], **more)
    return inputs


def page(result: dict[str, Any], inputs: dict[str, Any]) -> str:
    text = (TEMPLATES / "report.html.j2").read_text(encoding="utf-8")
    return render_template(
        text, [str(TEMPLATES)], {"vnuma_fleet_result": result, "__vnuma_fleet_before": inputs["before"]}
    )


def after_section(html: str) -> str:
    return html.split("<h2>Diagram after</h2>", 1)[1].split("<h2>", 1)[0]


def test_a_converted_hypervisor_is_drawn_as_applied() -> None:
    inputs = demo()
    result = fleet_result(inputs)
    assert result["drawing_after"]["guests"] == GUESTS
    assert result["drawing_after"]["title"] == "hv01 after: as applied"
    assert '<svg xml:space="preserve" class="vn-diagram"' in after_section(page(result, inputs))
    assert 'aria-label="hv01 after: as applied"' in after_section(page(result, inputs))


@pytest.mark.parametrize(
    ("more", "why"),
    [
        pytest.param({"failure": CAPACITY, "failed_guests": [WEB01]}, "step capacity failed", id="capacity"),
        pytest.param({"held_back": "apply held back: 1 of 2 hypervisors failed (hv02)"}, "held back", id="held-back"),
    ],
)
def test_nothing_applied_draws_no_diagram_after(more: dict[str, Any], why: str) -> None:
    inputs = nothing_applied(demo(), **more)
    result = fleet_result(inputs)
    # The JSON report says the same: nothing changed, nothing read after, nothing verified.
    assert result["counts"]["changed"] == 0 and result["diagram_after"] is None and result["verify"] is None
    note = f"Nothing was changed ({why}): the host is as in the diagram before."
    assert result["drawing_after"] == {"guests": [], "title": None, "note": note}
    section = after_section(page(result, inputs))
    assert "<svg" not in section
    assert note in section
    assert "as planned" not in section and "as applied" not in section


def test_every_guest_failed_draws_no_diagram_after() -> None:
    failed = [{**WEB01, "name": name, "error": f"guest {name}: too small"} for name in GUESTS]
    result = fleet_result(nothing_applied(demo(), failed_guests=failed))
    assert result["drawing_after"]["guests"] == []
    assert (
        result["drawing_after"]["note"]
        == "Nothing was changed (every guest failed): the host is as in the diagram before."
    )


def test_only_the_guests_written_are_drawn_as_applied() -> None:
    inputs = demo()
    # db01 failed at plan: the apply call had it not; web01 failed at apply after its definition was written.
    inputs["applied"]["guests"] = [guest for guest in inputs["applied"]["guests"] if guest["name"] != "db01"]
    inputs["failed_guests"] = [
        {"name": "db01", "step": "plan", "error": "guest db01: bad spec", "changed": False, "written": []},
        {"name": "web01", "step": "apply", "error": "guest web01: hot-add", "changed": True, "written": ["definition"]},
    ]
    result = fleet_result(inputs)
    assert result["drawing_after"]["guests"] == ["batch01", "cache01", "hpc01", "web01"]
    assert result["drawing_after"]["note"].startswith("The 4 of 5 guests whose definition was written or that were ")
    section = after_section(page(result, inputs))
    assert section.count("<svg") == 1
    assert result["others_went_on"] is True


def test_a_guest_restarted_into_an_earlier_definition_is_drawn_as_applied() -> None:
    inputs = demo()
    # A second run: every definition already converted; db01 still ran its old layout and was restarted.
    for guest in inputs["applied"]["guests"]:
        guest["changed"] = False
    inputs["restarts"] = [
        {"batch": 1, "guests": ["db01"], "restarted": ["db01"], "restart_required": [], "finished": "t"}
    ]
    result = fleet_result(inputs)
    assert result["counts"]["changed"] == 0
    assert result["drawing_after"]["guests"] == ["db01"]
    assert result["drawing_after"]["title"] == "hv01 after: as applied"
    inputs["restarts"] = []
    assert fleet_result(inputs)["drawing_after"] == {
        "guests": [],
        "title": None,
        "note": "Nothing was changed (no guest needed a change): the host is as in the diagram before.",
    }


def test_check_mode_draws_the_plan() -> None:
    inputs = nothing_applied(demo(), check=True, failed_guests=[WEB01])
    result = fleet_result(inputs)
    assert result["drawing_after"]["guests"] == ["batch01", "cache01", "db01", "hpc01"]
    assert result["drawing_after"]["title"] == "hv01 planned"
    assert "check mode: nothing was changed" in result["drawing_after"]["note"]
    assert 'aria-label="hv01 planned"' in after_section(page(result, inputs))


@pytest.mark.parametrize(
    ("more", "went_on", "box"),
    [
        pytest.param({"failed_guests": [WEB01]}, True, "failed</strong>; the other guests went on.", id="went-on"),
        pytest.param(
            {"failed_guests": [WEB01], "failure": CAPACITY}, False, "1 guest failed</strong>.", id="capacity-failed"
        ),
        pytest.param(
            {"failed_guests": [WEB01], "failure": {**CAPACITY, "step": "verify", "msg": "guest db01: not aligned"}},
            True,
            "failed</strong>; the other guests went on.",
            id="verify-failed-after",
        ),
        pytest.param(
            {"failed_guests": [WEB01], "held_back": "apply held back: 1 of 2 hypervisors failed (hv02)"},
            False,
            "1 guest failed</strong>.",
            id="held-back",
        ),
    ],
)
def test_the_others_went_on_only_when_they_did(more: dict[str, Any], went_on: bool, box: str) -> None:
    inputs = demo()
    inputs.update(more)
    result = fleet_result(inputs)
    assert result["others_went_on"] is went_on
    html = page(result, inputs)
    assert box in html
    assert ("the other guests went on" in html) is went_on


@pytest.mark.parametrize("host", ["fleet", "Fleet", "rack1/hv01", "../escaped", "..", "."])
def test_an_inventory_name_that_cannot_name_its_reports_has_none(host: str) -> None:
    inputs = nothing_applied(demo(), host=host, failure={**CAPACITY, "step": "preflight", "msg": "refused"})
    result = fleet_result(inputs)
    assert result["report"] is None
    summary = fleet_summary([{"host": host, "result": result, "uri": "test:///x"}], "now")
    assert summary["hosts"][0]["report"] is None
    assert summary["hosts"][0]["status"] == "failed"


def test_a_good_inventory_name_names_its_reports() -> None:
    inputs = demo()
    inputs["host"] = "fleet01.example.com"
    result = fleet_result(inputs)
    assert result["report"] == {
        "json": f"{inputs['report_dir']}/fleet01.example.com.json",
        "html": f"{inputs['report_dir']}/fleet01.example.com.html",
    }
    summary = fleet_summary([{"host": "fleet01.example.com", "result": result, "uri": "test:///x"}], "now")
    assert summary["hosts"][0]["report"] == {"json": "fleet01.example.com.json", "html": "fleet01.example.com.html"}
    assert re.search(r"<h1>fleet01\.example\.com ", page(result, inputs))


def host_section(html: str) -> str:
    return html.split("<h2>Host</h2>", 1)[1].split("<h2>", 1)[0]


def test_hugepage_pools_with_unknown_free_pages_leave_the_free_count_out() -> None:
    # On the test driver (host_capabilities given) the free pages are not known: free is null.
    inputs = demo()
    result = fleet_result(inputs)
    result["topology"]["nodes"][0]["hugepages"][0].update(total=1024, free=None)
    result["topology"]["nodes"][1]["hugepages"][0].update(total=1024, free=12)
    section = host_section(page(result, inputs))
    assert "1024 &times; 2 MiB</td>" in section
    assert "1024 &times; 2 MiB (12 free)</td>" in section
    assert " free)" not in section.replace("(12 free)", "")


def test_a_verification_that_checked_no_guest_says_nothing_was_verified() -> None:
    inputs = demo()
    # The only guest to change failed at apply: verify ran and found no guest to check.
    inputs["verify"] = {**inputs["verify"], "checked": [], "problems": [], "ok": True}
    html = page(fleet_result(inputs), inputs)
    assert "0 guests checked" not in html and "Verification <span" not in html
    assert "Nothing was verified: no guest with a planned layout was left to check" in html


def test_check_mode_held_back_predicts_what_the_real_run_does() -> None:
    held = "apply would be held back: 1 of 2 hypervisors failed (hv02)"
    inputs = nothing_applied(demo(), check=True, held_back=held)
    result = fleet_result(inputs)
    assert [row["name"] for row in result["guests"] if row["restart_required"]] == []
    html = page(result, inputs)
    section = after_section(html)
    assert "<svg" not in section
    assert "Nothing was changed (held back): the host is as in the diagram before." in section
    assert '<span class="badge warn">required</span>' not in html


def test_a_guest_written_before_it_failed_is_listed_as_waiting() -> None:
    inputs = demo()
    inputs["failed_guests"] = [
        {"name": "web01", "step": "apply", "error": "guest web01: hot-add", "changed": True, "written": ["definition"]},
    ]
    # What restart.yml lists (restart_waiting): web01 too, since its definition was written.
    assert inputs["restart_required"] == ["cache01", "db01", "web01"]
    result = fleet_result(inputs)
    assert result["counts"]["restart_required"] == 3
    html = page(result, inputs)
    assert html.count('<span class="badge warn">required</span>') == 3
    assert "Still running their old layout until their next boot: cache01, db01, web01" in html
