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
from ansible_collections.vnuma.libvirt.tests.support.fleet_inputs import good_inputs

GOOD = good_inputs()


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


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"connect_timeout": -5}, "vnuma_fleet_connect_timeout -5 is outside 0 to 3600 seconds"),
        ({"call_timeout": "0"}, "vnuma_fleet_call_timeout 0 is outside 1 to 3600 seconds"),
        ({"call_timeout": "soon"}, "vnuma_fleet_call_timeout 'soon' is not a number of seconds from 1 to 3600"),
        ({"reserved_memory": "lots"}, "vnuma_fleet_reserved_memory: 'lots' is not a size such as '16 GiB' or 524288"),
        ({"guests": ["db*", ""]}, "vnuma_fleet_guests[1] is empty: give a guest name or a shell pattern"),
        ({"exclude": [5]}, "vnuma_fleet_exclude[0] 5 is not a guest name or a shell pattern"),
        ({"exclude": "db*"}, "vnuma_fleet_exclude must be a list of guest names or shell patterns, got str"),
        (
            {"spec": {"mode": "node", "cells": 0}},
            "vnuma_fleet_spec: cells 0 must be an integer from 1 to 128 (QEMU's MAX_NODES)",
        ),
        ({"spec": {"mode": "nodes"}}, "vnuma_fleet_spec: mode 'nodes' is not one of host, node, auto"),
        ({"spec": ["mode"]}, "vnuma_fleet_spec must be a dict of vnuma_domain spec options, got list"),
        # Above libvirt's cpuset limit and the memory limit too: each option's own limit and reason are named.
        (
            {"spec": {"mode": "node", "nodeset": "0-20000"}},
            "vnuma_fleet_spec: nodeset '0-20000': 20000 is above the limit of 1023 (Linux has at most 1024 NUMA "
            "nodes (MAX_NUMNODES))",
        ),
        (
            {"spec": {"hugepages": "10 PB"}},
            "vnuma_fleet_spec: hugepages '10 PB' is above the limit of 16 GiB (the largest page size Linux has)",
        ),
    ],
)
def test_settings_the_fleet_call_would_refuse_are_named_as_the_roles(bad: dict[str, Any], message: str) -> None:
    assert fleet_input_problem({**GOOD, **bad}, ["mode"]) == message


def test_templated_settings_read_as_the_module_reads_them() -> None:
    templated = {"connect_timeout": "60", "reserved_memory": "2 GiB", "spec": {"mode": "node", "cells": "2"}}
    assert fleet_input_problem({**GOOD, **templated}, ["mode"]) is None
    assert fleet_input_problem({**GOOD, "spec": None}, ["mode"]) is None


@pytest.mark.parametrize("word", ["y", "Y", "t", "n", "f", "yes", "off"])
def test_the_spec_takes_every_boolean_ansible_takes(word: str) -> None:
    # Templated values come as text: read as Ansible's bool reads them (convert_bool), y and n included.
    assert fleet_input_problem({**GOOD, "spec": {"cpuless_cells": word}}, ["mode"]) is None
