# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vnuma_fleet role's inputs as preflight hands them to fleet_input_problem, every one good."""

from __future__ import annotations

from typing import Any


def good_inputs(**more: Any) -> dict[str, Any]:
    """The role's defaults on hypervisor hv01 of a play of two, with ``more`` in place of any of them."""
    return {
        "host": "hv01",
        "restart_batch": 1,
        "shutdown_timeout": 120,
        "max_fail_percentage": 100,
        "plan_and_apply": "auto",
        "hypervisors": 2,
        "overrides": {},
        "connect_timeout": 60,
        "call_timeout": 120,
        "reserved_memory": 0,
        "guests": ["*"],
        "exclude": [],
        "spec": {"mode": "host"},
        **more,
    }
