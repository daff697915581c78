# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fleet_result / vnuma_fleet_result: one hypervisor's vnuma_fleet result from the role's registered results.

The fixtures were captured from real runs of the role (the demo on the test driver, the playbook tests
on qemu:///system): each holds the inputs the role's report step passed and the result the role's former
Jinja expression built from them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_result import FilterModule, vnuma_fleet_result
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_summary import vnuma_fleet_summary
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_verify import vnuma_fleet_verify
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import (
    FLEET_RESULT_INPUTS,
    fleet_result,
    fleet_summary,
    fleet_verify,
)

FIXTURES = sorted((Path(__file__).parents[2] / "fixtures" / "fleet").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_captured_runs(path: Path) -> None:
    captured = load(path)
    assert fleet_result(captured["inputs"]) == captured["result"]
    assert vnuma_fleet_result(captured["inputs"]) == captured["result"]


def test_fixtures_exist() -> None:
    assert FIXTURES


def demo() -> dict[str, Any]:
    return copy.deepcopy(load(FIXTURES[0])["inputs"])


def test_status_order() -> None:
    inputs = demo()
    assert fleet_result(inputs)["status"] in ("converted", "unchanged", "planned")
    inputs["check"] = True
    assert fleet_result(inputs)["status"] == "planned"
    inputs["failed_guests"] = [{"name": "x", "step": "plan", "error": "boom", "changed": False, "written": []}]
    assert fleet_result(inputs)["status"] == "guests failed"
    inputs["held_back"] = {"step": "apply"}
    assert fleet_result(inputs)["status"] == "held back"
    inputs["failure"] = {"step": "plan", "capacity": {"ok": False}}
    assert fleet_result(inputs)["status"] == "failed"
    inputs["before"] = {}
    inputs["plan"] = {}
    result = fleet_result(inputs)
    assert result["guests"] == [] and result["capacity"] == {"ok": False}


def test_no_guests() -> None:
    inputs = demo()
    inputs.update(before={}, plan={}, applied={}, after={}, verify={}, restarts=[], restart_required=[])
    result = fleet_result(inputs)
    assert result["status"] == "no guests"
    assert result["verify"] is None and result["capacity"] is None and result["diagram_after"] is None
    assert result["counts"]["selected"] == 0


def test_not_a_dict() -> None:
    with pytest.raises(SpecError, match=r"^the input must be a dict of the role's results, got list$"):
        fleet_result([])


def test_missing_keys_named() -> None:
    inputs = demo()
    del inputs["plan"]
    with pytest.raises(SpecError, match=r"^the input lacks plan \(it needs host, "):
        fleet_result(inputs)


def test_filter_glue() -> None:
    assert FilterModule().filters() == {"vnuma_fleet_result": vnuma_fleet_result}
    with pytest.raises(AnsibleFilterError, match=r"^vnuma\.libvirt\.vnuma_fleet_result: the input lacks "):
        vnuma_fleet_result({})
    assert len(FLEET_RESULT_INPUTS) == len(set(FLEET_RESULT_INPUTS))


# Verification: the captured runs' ``verify`` was built by the role's former Jinja loop from the same results.
VERIFIED = [path for path in FIXTURES if load(path)["inputs"]["verify"]]


def verify_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The verification's inputs as verify.yml passes them (todo: the requests whose plan and apply did not fail)."""
    failed = [guest["name"] for guest in inputs["failed_guests"]]
    return {
        "test_driver": inputs["test_driver"],
        "plan": inputs["plan"],
        "todo": [request for request in inputs["requests"] if request["name"] not in failed],
        "applied": inputs["applied"],
        "after": inputs["after"],
        "restarts": inputs["restarts"],
        "locality_tolerance": 0.0005,
    }


@pytest.mark.parametrize("path", VERIFIED, ids=[path.stem for path in VERIFIED])
def test_verify_captured_runs(path: Path) -> None:
    inputs = load(path)["inputs"]
    assert fleet_verify(verify_inputs(inputs)) == inputs["verify"]
    assert vnuma_fleet_verify(verify_inputs(inputs)) == inputs["verify"]


def test_verify_finds_differences() -> None:
    inputs = verify_inputs(demo())
    planned = next(guest for guest in inputs["plan"]["guests"] if guest["layout"])
    name = planned["name"]
    applied = next(guest for guest in inputs["applied"]["guests"] if guest["name"] == name)
    applied["alignment"] = {"aligned": not planned["alignment"]["aligned"], "locality": -1.0}
    result = fleet_verify(inputs)
    assert result["ok"] is False and name in result["checked"]
    assert result["problems"] == [
        f"guest {name}: the definition is {'not ' if planned['alignment']['aligned'] else ''}aligned, the plan "
        f"{'is' if planned['alignment']['aligned'] else 'is not'}",
        f"guest {name}: the definition has locality -1.0, the plan {planned['alignment']['locality']}",
    ]
    inputs["applied"]["guests"] = [guest for guest in inputs["applied"]["guests"] if guest["name"] != name]
    assert f"guest {name}: not found when re-read" in fleet_verify(inputs)["problems"]


def test_verify_restarted_guest_must_run_its_definition() -> None:
    alignment = {"aligned": True, "locality": 1.0}
    inputs = {
        "test_driver": False,
        "plan": {"guests": [{"name": "g1", "layout": {"cells": []}, "alignment": alignment}]},
        "todo": [{"name": "g1"}],
        "applied": {},
        "after": {
            "guests": [
                {
                    "name": "g1",
                    "defined_alignment": alignment,
                    "alignment": alignment,
                    "running": False,
                    "state": "shut off",
                    "pending": False,
                    "pending_changes": [],
                }
            ]
        },
        "restarts": [{"restarted": ["g1"]}],
        "locality_tolerance": 0.0005,
    }
    assert fleet_verify(inputs)["problems"] == ["guest g1: restarted, but it is shut off"]
    inputs["after"]["guests"][0].update(running=True, pending=True, pending_changes=["cpu/numa", "vcpu"])
    assert fleet_verify(inputs)["problems"] == [
        "guest g1: restarted, but it does not run its definition: cpu/numa, vcpu"
    ]
    inputs["after"]["guests"][0].update(pending=False)
    assert fleet_verify(inputs) == {
        "by": "vnuma_info",
        "note": "re-read with vnuma_info: every definition, and what runs for the restarted guests",
        "checked": ["g1"],
        "problems": [],
        "ok": True,
    }
    with pytest.raises(AnsibleFilterError, match=r"^vnuma\.libvirt\.vnuma_fleet_verify: the input lacks test_driver"):
        vnuma_fleet_verify({})


# The fleet summary: captured from the demo's fleet.json, built by the role's former Jinja loop.
SUMMARIES = sorted((Path(__file__).parents[2] / "fixtures" / "fleet" / "summary").glob("*.json"))


@pytest.mark.parametrize("path", SUMMARIES, ids=[path.stem for path in SUMMARIES])
def test_summary_captured_runs(path: Path) -> None:
    captured = load(path)
    assert fleet_summary(captured["hosts"], captured["generated"]) == captured["result"]
    hostvars = {
        entry["host"]: {"vnuma_fleet_result": entry["result"], "vnuma_fleet_uri": entry["uri"]}
        for entry in captured["hosts"]
    }
    names = [entry["host"] for entry in captured["hosts"]]
    assert vnuma_fleet_summary(names, hostvars, captured["generated"]) == captured["result"]


def test_summary_refuses_a_host_whose_variables_are_not_a_dict() -> None:
    # It was a Python traceback (AttributeError on str.get).
    with pytest.raises(AnsibleFilterError, match=r"^vnuma\.libvirt\.vnuma_fleet_summary: hostvars\['hv1'\] must be"):
        vnuma_fleet_summary(["hv1"], {"hv1": "x"}, "t")


def test_summary_host_without_result_failed() -> None:
    captured = load(SUMMARIES[0])
    hostvars = {"gone": {"vnuma_fleet_uri": "qemu+ssh://gone/system"}, "early": {}}
    summary = vnuma_fleet_summary(["gone", "early"], hostvars, "t")
    assert [row["status"] for row in summary["hosts"]] == ["failed", "failed"]
    assert [row["uri"] for row in summary["hosts"]] == ["qemu+ssh://gone/system", None]
    assert summary["hosts"][0]["failure"]["msg"] == "unreachable, or failed before vnuma_fleet recorded a result"
    assert summary["totals"] == {
        "hosts": 2,
        "failed": 2,
        "held_back": 0,
        "selected": 0,
        "to_change": 0,
        "changed": 0,
        "restart_required": 0,
        "restarted": 0,
        "failed_guests": 0,
    }
    assert captured["hosts"]
    with pytest.raises(AnsibleFilterError, match=r"^vnuma\.libvirt\.vnuma_fleet_summary: hostvars must be the play's"):
        vnuma_fleet_summary(["a"], [], "t")


def fixture_inputs(stem: str) -> dict[str, Any]:
    return copy.deepcopy(load(next(path for path in FIXTURES if path.stem == stem))["inputs"])


def restart_rows(result: dict[str, Any]) -> list[str]:
    return [row["name"] for row in result["guests"] if row["restart_required"]]


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_restart_rows_count_and_list_agree(path: Path) -> None:
    # The role's list (vnuma_fleet_restart_required) is the one rule: the rows and the count follow it.
    result = fleet_result(load(path)["inputs"])
    assert restart_rows(result) == sorted(result["restart_required"])
    assert result["counts"]["restart_required"] == len(result["restart_required"])


def test_a_guest_failed_at_apply_is_marked_only_when_the_role_lists_it() -> None:
    # fleet-dimm01 failed at apply after its definition was written; the role lists it (restart_waiting).
    inputs = fixture_inputs("playbook_hv-mixed_apply_guests_failed")
    assert inputs["restart_required"] == ["fleet-dimm01"]
    result = fleet_result(inputs)
    assert restart_rows(result) == ["fleet-dimm01"] and result["counts"]["restart_required"] == 1
    # A list without it (a role that left it out) gives a row that says so too: never "required" in the row alone.
    inputs["restart_required"] = []
    result = fleet_result(inputs)
    assert restart_rows(result) == [] and result["counts"]["restart_required"] == 0


def test_check_mode_held_back_predicts_no_restart_and_no_change() -> None:
    inputs = fixture_inputs("playbook_hv-good_check_planned")
    # What the role passes when the apply's gate would hold the hypervisor back: nothing waits for a restart.
    inputs.update(held_back="apply would be held back: 1 of 2 hypervisors failed (hv-bad)", restart_required=[])
    result = fleet_result(inputs)
    assert result["status"] == "held back"
    assert restart_rows(result) == [] and result["counts"]["restart_required"] == 0
    assert result["drawing_after"] == {
        "guests": [],
        "title": None,
        "note": "Nothing was changed (held back): the host is as in the diagram before.",
    }
    # The plan is still reported: what the real run would have changed without the hold-back.
    assert result["counts"]["to_change"] == 3 and result["counts"]["changed"] == 0


def test_check_mode_with_a_failed_step_draws_no_plan() -> None:
    inputs = fixture_inputs("playbook_hv-good_check_planned")
    inputs.update(failure={"step": "capacity", "msg": "does not fit", "capacity": None}, restart_required=[])
    result = fleet_result(inputs)
    assert result["drawing_after"]["guests"] == []
    assert result["drawing_after"]["note"].startswith("Nothing was changed (step capacity failed)")
    # Without either, check mode draws every guest with its plan, as before.
    planned = fleet_result(fixture_inputs("playbook_hv-good_check_planned"))["drawing_after"]
    assert planned["guests"] == ["fleet-app01", "fleet-db01", "fleet-web01"]


def test_a_verification_that_checked_no_guest_is_no_verification() -> None:
    inputs = fixture_inputs("demo_hv01")
    inputs["verify"] = {"by": "apply", "note": "n", "checked": [], "problems": [], "ok": True}
    result = fleet_result(inputs)
    assert result["verify"] is None
    summary = fleet_summary([{"host": result["host"], "result": result, "uri": result["uri"]}], "t")
    assert summary["hosts"][0]["verified"] is None
    # A problem without a guest checked (one not found when re-read) is a failed verification, not none.
    inputs["verify"] = {"by": "apply", "note": "n", "checked": [], "problems": ["guest x: not found"], "ok": False}
    assert fleet_result(inputs)["verify"]["ok"] is False


def test_flat_guests_before_name_the_nodes_their_definition_binds_or_pins_them_to() -> None:
    rows = {row["name"]: row for row in fleet_result(fixture_inputs("demo_hv01"))["guests"]}
    # cache01: vCPUs pinned to node 0, memory bound strictly to node 2.
    assert rows["cache01"]["before"]["host_nodes"] == ["0,2"]
    # db01 floats over every node with unbound memory: no node is named ("any" in the page).
    assert rows["db01"]["before"]["host_nodes"] == []


@pytest.mark.parametrize(
    ("pinning", "memory_nodes", "expected"),
    [(False, "2", ["2"]), (True, None, ["0"]), (True, "1-2", ["0-2"]), (False, None, [])],
    ids=["memory-bound", "pinned", "both", "neither"],
)
def test_flat_guest_before_nodes(pinning: bool, memory_nodes: str | None, expected: list[str]) -> None:
    inputs = fixture_inputs("demo_hv01")
    guest = next(guest for guest in inputs["before"]["guests"] if guest["name"] == "cache01")
    guest["layout"]["pinning"] = pinning
    guest["layout"]["cells"][0]["memory_nodes"] = memory_nodes
    rows = {row["name"]: row for row in fleet_result(inputs)["guests"]}
    assert rows["cache01"]["before"]["host_nodes"] == expected
