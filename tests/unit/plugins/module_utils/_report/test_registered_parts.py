# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""registered_parts: what the vnuma_fleet role's steps read from the module results they registered.

The role registers the fleet call's compact result, the apply call's (plan and apply apart) and verify's
re-read; its verification and its report read the plan, the apply and the guests after from them by the rules
tested here, one case per way a run goes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import compact_fleet_result
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import (
    fleet_result,
    fleet_verify,
    registered_parts,
)

BEFORE = {"host": {"nodes": []}, "guests": [{"name": "db01", "state": "shutoff"}]}
PLAN = {"changed": True, "capacity": {"blocking": []}, "guests": [{"name": "db01", "layout": {"cells": []}}]}
AFTER = {"guests": [{"name": "db01", "defined_alignment": {"aligned": True, "locality": 1.0}}]}
SKIPPED = {"changed": False, "skipped": True}


def read(**more: Any) -> dict[str, Any]:
    """A fleet call's full result, compacted as the role asks for it."""
    full = {
        "changed": False,
        "host_info": {"host": {"nodes": ["0"]}},
        "before": copy.deepcopy(BEFORE),
        "requests": [{"name": "db01", "mode": "host"}],
        "sources": {"db01": {"spec": "vnuma_fleet_spec", "override": False}},
        "plan": copy.deepcopy(PLAN),
        "plan_failures": [],
        "after": None,
        "after_is_before": False,
        "failure": None,
        **more,
    }
    return compact_fleet_result(full)


def parts(fleet_call: dict[str, Any], applied: Any = None, reread: Any = None) -> dict[str, Any]:
    return registered_parts({"read": fleet_call, "applied": applied or {}, "reread": reread or {}})


def test_the_fleet_call_that_applied_gives_the_apply_and_its_read_after() -> None:
    applied = {"changed": True, "guests": [{"name": "db01", "changed": True}], "after": AFTER}
    got = parts(read(applied=applied, together=True), reread=SKIPPED)
    assert got["apply_call"] == applied and got["applied"] == applied
    assert got["after"] == AFTER
    assert (got["before"], got["plan"]) == (BEFORE, PLAN)
    assert got["host_info"] == {"host": {"nodes": ["0"]}}


def test_nothing_to_apply_stands_for_the_plan_and_before_for_the_read_after() -> None:
    got = parts(read(applied=dict(SKIPPED), after_is_before=True), reread=SKIPPED)
    assert got["applied"] == PLAN
    assert got["after"] == BEFORE


def test_plan_and_apply_apart_read_the_apply_task() -> None:
    apart = {"changed": True, "guests": [{"name": "db01"}], "after": AFTER}
    got = parts(read(), applied=apart, reread=SKIPPED)
    assert got["apply_call"] == apart and got["after"] == AFTER


def test_a_re_read_after_restarts_is_the_read_after() -> None:
    again = {"changed": False, "guests": [{"name": "db01", "running": True}]}
    got = parts(read(applied={"changed": True, "guests": [], "after": AFTER}), reread=again)
    assert got["after"] == again


def test_verify_not_reached_has_no_read_after() -> None:
    # As the role's clean slate registers: verify's re-read is {}.
    got = parts(read(applied={"changed": True, "guests": [], "after": AFTER}))
    assert got["after"] == {}


def test_the_test_driver_has_no_read_after_but_the_skipped_re_read() -> None:
    got = parts(read(applied={"changed": True, "guests": []}), reread=SKIPPED)
    assert got["after"] == SKIPPED


@pytest.mark.parametrize("registered", [None, {"read": {}}, {"read": {}, "applied": {}, "reread": {}, "more": 1}])
def test_registered_needs_its_three_results(registered: Any) -> None:
    with pytest.raises(SpecError, match="registered must be a dict with the keys read, applied, reread"):
        registered_parts(registered)


FIXTURES = sorted((Path(__file__).parents[3] / "fixtures" / "fleet").glob("playbook_*.json"))


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_registered_results_give_the_captured_report(path: Path) -> None:
    """A recorded run's report, from its results registered as the role now registers them (plan and apply apart)."""
    inputs = json.loads(path.read_text(encoding="utf-8"))["inputs"]
    moved = ("host_info", "before", "requests", "sources", "plan", "applied", "after")
    fleet_call = read(**{key: inputs[key] for key in moved[:5]})
    registered = {"read": fleet_call, "applied": inputs["applied"], "reread": inputs["after"]}
    given = {key: value for key, value in inputs.items() if key not in moved}
    assert fleet_result({**given, "registered": registered}) == fleet_result(inputs)


def test_verify_reads_the_same_parts() -> None:
    applied = {"changed": True, "guests": [{"name": "db01", "alignment": {"aligned": True, "locality": 1.0}}]}
    plan = {"guests": [{"name": "db01", "layout": {"cells": []}, "alignment": {"aligned": True, "locality": 1.0}}]}
    base = {"todo": [{"name": "db01"}], "restarts": [], "locality_tolerance": 0.0005}
    fleet_call = read(plan=plan, applied={**applied, "after": AFTER})
    for test_driver in (True, False):
        old = fleet_verify(
            {**base, "test_driver": test_driver, "plan": plan, "applied": {**applied, "after": AFTER}, "after": AFTER}
        )
        registered = {"read": fleet_call, "applied": {}, "reread": SKIPPED}
        assert fleet_verify({**base, "test_driver": test_driver, "registered": registered}) == old
        assert old["ok"] and old["checked"] == ["db01"]
