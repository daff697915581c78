# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_fleet_input_problem: the role's inputs that its argument spec cannot check, one kind of problem at a time.

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
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import shown
from ansible_collections.vnuma.libvirt.tests.support.fleet_inputs import good_inputs

OPTIONS = ["mode", "pinning", "state"]
# Each number out of its range is named alone, with its value and its limit.
BATCH = "vnuma_fleet_restart_batch must be at least 1 (got {0})"
TIMEOUT = "vnuma_fleet_shutdown_timeout must be from 0 to 86400 (got {0})"
PERCENT = "vnuma_fleet_max_fail_percentage must be from 0 to 100 (got {0})"
TOGETHER = (
    "vnuma_fleet_max_fail_percentage must be 100 with vnuma_fleet_plan_and_apply together on several hypervisors "
    "(got {0}; the play has {1} hypervisors)"
)
NAME = (
    "inventory_hostname {0} cannot name this hypervisor's reports (<name>.json, <name>.html in "
    "vnuma_fleet_report_dir): it {1}; give the host another name in the inventory"
)
SLASH = "contains '/', which would put the reports in another directory or outside vnuma_fleet_report_dir"
SUMMARY = (
    "would be the fleet summary's name (fleet.json, fleet.html; compared without case, as macOS's file system "
    "compares names)"
)


def inputs(**more: Any) -> dict[str, Any]:
    return good_inputs(**{"hypervisors": 3, **more})


@pytest.mark.parametrize(
    ("more", "message"),
    [
        pytest.param({}, None, id="good"),
        pytest.param({"restart_batch": 0}, BATCH.format(0), id="batch-zero"),
        pytest.param({"shutdown_timeout": -1}, TIMEOUT.format(-1), id="timeout-negative"),
        pytest.param({"shutdown_timeout": 86400}, None, id="timeout-a-day"),
        pytest.param({"shutdown_timeout": 86401}, TIMEOUT.format(86401), id="timeout-above-a-day"),
        pytest.param({"max_fail_percentage": 101}, PERCENT.format(101), id="percentage-above"),
        pytest.param({"max_fail_percentage": 0}, None, id="percentage-zero"),
        # The argument spec lets no word through; if one came, it would not pass as 0 (Jinja's int did).
        pytest.param({"shutdown_timeout": "soon"}, TIMEOUT.format("'soon'"), id="timeout-a-word"),
        pytest.param({"restart_batch": True}, BATCH.format(True), id="batch-a-bool"),
        pytest.param({"restart_batch": "2", "shutdown_timeout": "0"}, None, id="digit-strings"),
        # Several numbers out of range: each of them, with its own limit; the good ones are not named.
        pytest.param(
            {"restart_batch": 0, "max_fail_percentage": 101},
            f"{BATCH.format(0)}; {PERCENT.format(101)}",
            id="two-numbers",
        ),
        pytest.param(
            {"restart_batch": 0, "shutdown_timeout": -1, "max_fail_percentage": -1},
            f"{BATCH.format(0)}; {TIMEOUT.format(-1)}; {PERCENT.format(-1)}",
            id="three-numbers",
        ),
        pytest.param(
            {"plan_and_apply": "together", "max_fail_percentage": 50}, TOGETHER.format(50, 3), id="together-with-a-gate"
        ),
        # Out of its range, the percentage is named for its range only.
        pytest.param(
            {"plan_and_apply": "together", "max_fail_percentage": 101}, PERCENT.format(101), id="together-out-of-range"
        ),
        pytest.param(
            {"plan_and_apply": "together", "max_fail_percentage": 50, "hypervisors": 1}, None, id="together-one"
        ),
        pytest.param({"plan_and_apply": "together"}, None, id="together-without-a-gate"),
        # The inventory name first (it names the reports, written after the guests changed), then the numbers, then
        # the overrides.
        pytest.param({"host": "fleet", "restart_batch": 0}, NAME.format("'fleet'", SUMMARY), id="name-first"),
        pytest.param({"restart_batch": 0, "overrides": {"db01": 5}}, BATCH.format(0), id="numbers-first"),
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
    ("host", "why"),
    [
        pytest.param("rack1/hv01", SLASH, id="slash"),
        pytest.param("../escaped", SLASH, id="parent"),
        pytest.param("..", "is '..', which names a directory in a path", id="dot-dot"),
        pytest.param(".", "is '.', which names a directory in a path", id="dot"),
        pytest.param("", "is empty", id="empty"),
        pytest.param("hv\x0001", "contains a NUL character, which no file name can hold", id="nul"),
        pytest.param("fleet", SUMMARY, id="summary"),
        pytest.param("Fleet", SUMMARY, id="summary-any-case"),
        pytest.param("h" * 241, "is 241 bytes long, more than 240 (a file name has at most 255 bytes)", id="long"),
        pytest.param("é" * 121, "is 242 bytes long, more than 240 (a file name has at most 255 bytes)", id="long-utf8"),
    ],
)
def test_an_inventory_name_that_cannot_name_the_reports(host: str, why: str) -> None:
    # The name as messages quote a value (a long one cut short).
    assert vnuma_fleet_input_problem(inputs(host=host), OPTIONS) == NAME.format(shown(host), why)


@pytest.mark.parametrize("host", ["hv01", "hv01.example.com", "fleet01", "my-fleet", ".hv", "h" * 240, "é" * 120])
def test_an_inventory_name_that_names_the_reports(host: str) -> None:
    assert vnuma_fleet_input_problem(inputs(host=host), OPTIONS) is None


@pytest.mark.parametrize(
    ("given", "options", "message"),
    [
        (["restart_batch"], OPTIONS, "the input must be a dict with the keys host, restart_batch, shutdown_timeout"),
        ({"restart_batch": 1}, OPTIONS, "the input must be a dict with the keys"),
        (inputs(), "mode", "entry_options must be a list of option names, got str"),
    ],
)
def test_a_wrong_call_is_refused(given: Any, options: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        vnuma_fleet_input_problem(given, options)


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters() == {"vnuma_fleet_input_problem": vnuma_fleet_input_problem}
