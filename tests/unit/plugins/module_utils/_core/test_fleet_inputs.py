# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fleet_input_problem's numbers: each input out of its range alone, with its value and its limit.

tests/unit/plugins/filter/test_vnuma_fleet_input_problem.py has every rule through the filter; here the pure
function, with the inputs the role passes.
"""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core import fleet
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import fleet_input_problem

GOOD = {
    "host": "hv01",
    "restart_batch": 1,
    "shutdown_timeout": 120,
    "max_fail_percentage": 100,
    "plan_and_apply": "auto",
    "hypervisors": 2,
    "overrides": {},
}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"restart_batch": 0}, "vnuma_fleet_restart_batch must be at least 1 (got 0)"),
        ({"shutdown_timeout": 86401}, "vnuma_fleet_shutdown_timeout must be from 0 to 86400 (got 86401)"),
        ({"max_fail_percentage": 101}, "vnuma_fleet_max_fail_percentage must be from 0 to 100 (got 101)"),
        (
            {"restart_batch": 0, "max_fail_percentage": -3},
            "vnuma_fleet_restart_batch must be at least 1 (got 0); "
            "vnuma_fleet_max_fail_percentage must be from 0 to 100 (got -3)",
        ),
    ],
)
def test_only_the_numbers_out_of_range_are_named(bad: dict[str, Any], message: str) -> None:
    assert fleet_input_problem({**GOOD, **bad}, ["mode"]) == message


def test_the_report_names() -> None:
    longest = fleet.REPORT_NAME_MAX_BYTES
    assert fleet.SUMMARY_REPORT_NAME == "fleet"
    assert fleet.report_name_problem("hv01") is None
    assert fleet.report_name_problem("x" * longest) is None
    for bad in ("fleet", "FLEET", "a/b", "../x", ".", "..", "", "a\0b", "x" * (longest + 1), None):
        assert str(fleet.report_name_problem(bad)).startswith("inventory_hostname "), bad
