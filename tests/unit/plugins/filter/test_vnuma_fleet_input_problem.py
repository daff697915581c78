# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_fleet_input_problem: the role's inputs that its argument spec cannot check, one problem at a time.

tests/unit/bad_input/test_role_inputs.py holds the same messages through the role itself; here each rule and
the order in which they are checked.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_input_problem import (
    FilterModule,
    vnuma_fleet_input_problem,
)

OPTIONS = ["mode", "pinning", "state"]
RANGES = (
    "vnuma_fleet_restart_batch must be at least 1 (got {0}), vnuma_fleet_shutdown_timeout from 0 to 86400 "
    "(got {1}) and vnuma_fleet_max_fail_percentage from 0 to 100 (got {2})"
)
TOGETHER = ", and 100 with vnuma_fleet_plan_and_apply together on several hypervisors"


def inputs(**more: Any) -> dict[str, Any]:
    return {
        "restart_batch": 1,
        "shutdown_timeout": 120,
        "max_fail_percentage": 100,
        "plan_and_apply": "auto",
        "hypervisors": 3,
        "overrides": {},
        **more,
    }


@pytest.mark.parametrize(
    ("more", "message"),
    [
        pytest.param({}, None, id="good"),
        pytest.param({"restart_batch": 0}, RANGES.format(0, 120, 100), id="batch-zero"),
        pytest.param({"shutdown_timeout": -1}, RANGES.format(1, -1, 100), id="timeout-negative"),
        pytest.param({"shutdown_timeout": 86400}, None, id="timeout-a-day"),
        pytest.param({"shutdown_timeout": 86401}, RANGES.format(1, 86401, 100), id="timeout-above-a-day"),
        pytest.param({"max_fail_percentage": 101}, RANGES.format(1, 120, 101), id="percentage-above"),
        pytest.param({"max_fail_percentage": 0}, None, id="percentage-zero"),
        # The argument spec lets no word through; if one came, it would not pass as 0 (Jinja's int did).
        pytest.param({"shutdown_timeout": "soon"}, RANGES.format(1, "soon", 100), id="timeout-a-word"),
        pytest.param({"restart_batch": True}, RANGES.format(True, 120, 100), id="batch-a-bool"),
        pytest.param({"restart_batch": "2", "shutdown_timeout": "0"}, None, id="digit-strings"),
        pytest.param(
            {"plan_and_apply": "together", "max_fail_percentage": 50},
            RANGES.format(1, 120, 50) + TOGETHER,
            id="together-with-a-gate",
        ),
        pytest.param(
            {"plan_and_apply": "together", "max_fail_percentage": 50, "hypervisors": 1}, None, id="together-one"
        ),
        pytest.param({"plan_and_apply": "together"}, None, id="together-without-a-gate"),
        # The numbers first, then the overrides.
        pytest.param({"restart_batch": 0, "overrides": {"db01": 5}}, RANGES.format(0, 120, 100), id="numbers-first"),
        pytest.param(
            {"overrides": {"db01": 5, "db02": {}, "web01": "x"}},
            "vnuma_fleet_overrides maps guest names to mappings of vnuma_domain options; not a mapping: db01, web01",
            id="not-mappings",
        ),
        pytest.param(
            {
                "overrides": {
                    "db01": {"pinning": "core", "vcpus": 2, "bogus": 1},
                    "db02": {"mode": "host"},
                    "web01": {"x": 1},
                }
            },
            "vnuma_fleet_overrides of db01, web01: unknown option(s) bogus, vcpus, x; known: mode, pinning, state",
            id="unknown-options",
        ),
    ],
)
def test_the_first_problem(more: dict[str, Any], message: str | None) -> None:
    assert vnuma_fleet_input_problem(inputs(**more), OPTIONS) == message


@pytest.mark.parametrize(
    ("given", "options", "message"),
    [
        (["restart_batch"], OPTIONS, "the input must be a dict with the keys restart_batch, shutdown_timeout"),
        ({"restart_batch": 1}, OPTIONS, "the input must be a dict with the keys"),
        (inputs(), "mode", "entry_options must be a list of option names, got str"),
    ],
)
def test_a_wrong_call_is_refused(given: Any, options: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        vnuma_fleet_input_problem(given, options)


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters() == {"vnuma_fleet_input_problem": vnuma_fleet_input_problem}
