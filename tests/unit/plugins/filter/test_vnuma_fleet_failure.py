# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fleet_failure: the one line with which the vnuma_fleet role fails a hypervisor at its end."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_failure import FilterModule, vnuma_fleet_failure
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import fleet_failure


def result(**more: Any) -> dict[str, Any]:
    """A vnuma_fleet_result with the keys the message reads; nothing failed unless ``more`` says so."""
    base: dict[str, Any] = {
        "host": "hv01",
        "failure": None,
        "held_back": None,
        "failed_guests": [],
        "guests": [{"name": "db01"}, {"name": "db02"}, {"name": "web01"}],
        "report": {"json": "/srv/r/hv01.json", "html": "/srv/r/hv01.html"},
    }
    return {**base, **more}


FAILURE = {"step": "preflight", "msg": "cannot connect to libvirt", "task": "", "guest": None, "capacity": None}
DB02 = {"name": "db02", "step": "plan", "error": "guest db02: bad spec", "changed": False, "written": []}
WEB01 = {"name": "web01", "step": "apply", "error": "guest web01: refused", "changed": False, "written": []}


@pytest.mark.parametrize(
    ("given", "written", "message"),
    [
        (result(), True, None),
        (result(), False, None),
        (
            result(failure=FAILURE),
            True,
            "hv01: step preflight failed: cannot connect to libvirt (report: /srv/r/hv01.html)",
        ),
        (result(failure=FAILURE), False, "hv01: step preflight failed: cannot connect to libvirt (no report written)"),
        (
            result(
                held_back="apply held back: 1 of 2 hypervisors failed (hv02), "
                "more than vnuma_fleet_max_fail_percentage 25%"
            ),
            True,
            "hv01: apply held back: 1 of 2 hypervisors failed (hv02), more than vnuma_fleet_max_fail_percentage 25% "
            "(report: /srv/r/hv01.html)",
        ),
        (
            result(failed_guests=[DB02, WEB01]),
            True,
            "hv01: 2 of 3 guests failed (db02, web01), the others went on: guest db02: bad spec; guest web01: refused "
            "(report: /srv/r/hv01.html)",
        ),
        (
            # A step that failed after guests failed: both, the step first.
            result(failure={**FAILURE, "step": "verify", "msg": "guest db01: not aligned"}, failed_guests=[DB02]),
            True,
            "hv01: step verify failed: guest db01: not aligned; 1 of 3 guests failed (db02), the others went on: "
            "guest db02: bad spec (report: /srv/r/hv01.html)",
        ),
        (
            # A step before the restarts failed: the others did not go on (nothing was changed).
            result(
                failure={
                    **FAILURE,
                    "step": "capacity",
                    "msg": "the plan for 1 guest does not fit hv01, nothing was changed: host node 0: ...",
                },
                failed_guests=[DB02, WEB01],
            ),
            True,
            "hv01: step capacity failed: the plan for 1 guest does not fit hv01, nothing was changed: host node 0: "
            "...; 2 of 3 guests failed (db02, web01): guest db02: bad spec; guest web01: refused "
            "(report: /srv/r/hv01.html)",
        ),
        (
            # A gate held the others back.
            result(held_back="apply held back: 1 of 2 hypervisors failed (hv02)", failed_guests=[DB02]),
            True,
            "hv01: apply held back: 1 of 2 hypervisors failed (hv02); 1 of 3 guests failed (db02): guest db02: bad "
            "spec (report: /srv/r/hv01.html)",
        ),
        (
            # Every guest failed: there are no others.
            result(guests=[{"name": "db02"}], failed_guests=[DB02]),
            True,
            "hv01: 1 of 1 guests failed (db02): guest db02: bad spec (report: /srv/r/hv01.html)",
        ),
        (
            # An inventory name that cannot name its reports has none (preflight refused it).
            result(host="fleet", failure=FAILURE, report=None),
            True,
            "fleet: step preflight failed: cannot connect to libvirt (no report written)",
        ),
        (
            # The step's failure wins over a gate in the message, as in the Jinja expression it replaces.
            result(failure=FAILURE, held_back="restart held back"),
            True,
            "hv01: step preflight failed: cannot connect to libvirt (report: /srv/r/hv01.html)",
        ),
    ],
)
def test_the_message(given: dict[str, Any], written: bool, message: str | None) -> None:
    assert fleet_failure(given, written) == message
    assert vnuma_fleet_failure(given, written) == message


def test_filter_module_exposes_the_filter() -> None:
    assert FilterModule().filters() == {"vnuma_fleet_failure": vnuma_fleet_failure}


@pytest.mark.parametrize(("given", "written"), [({}, True), ([], True), (result(), "yes")])
def test_bad_inputs_are_refused(given: Any, written: Any) -> None:
    with pytest.raises(SpecError, match="must be a vnuma_fleet_result and report_written true or false"):
        fleet_failure(given, written)
    with pytest.raises(AnsibleFilterError, match=r"^vnuma\.libvirt\.vnuma_fleet_failure: the input must be"):
        vnuma_fleet_failure(given, written)
