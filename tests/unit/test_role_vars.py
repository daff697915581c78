# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vnuma_fleet role's vars/main.yml says what its tasks' conditions read of the registered results: which call
applied (``__vnuma_fleet_apply_call``), its result or the plan (``__vnuma_fleet_applied_result``), and whether the
guests were read after the writes (``__vnuma_fleet_after_known``).  The role's Python says the same for its
verification and report (``_report/fleet.py:registered_parts``).  Both are rendered here, Jinja by ansible-core's
own templar, for every way a run goes, and must agree.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import compact_fleet_result
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import registered_parts

VARS = Path(__file__).resolve().parents[2] / "roles" / "vnuma_fleet" / "vars" / "main.yml"
PLAN = {"changed": True, "capacity": {"blocking": []}, "restart_required_guests": [], "guests": [{"name": "db01"}]}
AFTER = {"guests": [{"name": "db01", "state": "shutoff"}]}
SKIPPED = {"changed": False, "skipped": True}
APPLIED = {"changed": True, "guests": [{"name": "db01", "changed": True}], "restart_required_guests": ["db01"]}


def fleet_call(**more: Any) -> dict[str, Any]:
    full = {
        "changed": False,
        "host_info": {"host": {"nodes": ["0"]}},
        "before": {"guests": [{"name": "db01"}]},
        "requests": [{"name": "db01"}],
        "sources": {},
        "plan": copy.deepcopy(PLAN),
        "plan_failures": [],
        "after": None,
        "after_is_before": False,
        "failure": None,
        **more,
    }
    return compact_fleet_result(full)


# (the fleet call's result, the apply task's, verify's re-read) as the role registers them.
CASES = {
    "together-applied": (fleet_call(applied={**APPLIED, "after": AFTER}, together=True), SKIPPED, SKIPPED),
    "together-applied-test-driver": (fleet_call(applied=dict(APPLIED), together=True), SKIPPED, SKIPPED),
    "nothing-to-apply": (fleet_call(applied=dict(SKIPPED), after_is_before=True), SKIPPED, SKIPPED),
    "nothing-to-apply-read-after": (fleet_call(applied=dict(SKIPPED), after=AFTER), SKIPPED, SKIPPED),
    "capacity-refused": (fleet_call(applied=None), {}, {}),
    "apart-applied": (fleet_call(), {**APPLIED, "after": AFTER}, SKIPPED),
    "apart-test-driver": (fleet_call(), dict(APPLIED), SKIPPED),
    "apart-not-reached": (fleet_call(), {}, {}),
    "restarted-and-re-read": (fleet_call(applied={**APPLIED, "after": AFTER}), SKIPPED, {"guests": []}),
    "check-mode": (fleet_call(), {}, {}),
}


def render(names: list[str], registered: tuple[Any, Any, Any]) -> list[Any]:
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    loader = DataLoader()
    # As Ansible reads a role's vars: trusted as templates.
    role_vars = loader.load_from_file(str(VARS), trusted_as_template=True)
    read, applied, reread = registered
    variables = {
        **role_vars,
        "__vnuma_fleet_read": read,
        "__vnuma_fleet_applied": applied,
        "__vnuma_fleet_reread": reread,
        "__vnuma_fleet_failed_guests": [],
        "vnuma_fleet_uri": "qemu:///system",
    }
    templar = Templar(loader=loader, variables=variables)
    return [templar.template(trust_as_template("{{ " + name + " }}")) for name in names]


@pytest.mark.parametrize("case", CASES)
def test_the_roles_conditions_read_what_its_python_reads(case: str) -> None:
    registered = CASES[case]
    parts = registered_parts(dict(zip(("read", "applied", "reread"), copy.deepcopy(registered), strict=True)))
    apply_call, applied, after_known = render(
        ["__vnuma_fleet_apply_call", "__vnuma_fleet_applied_result", "__vnuma_fleet_after_known"], registered
    )
    # The tasks see the compact parts: the guests are in guests_json, which only the Python reads.
    compact_keys = ("guests", "after")
    assert _without(apply_call, compact_keys) == _without(parts["apply_call"], compact_keys)
    assert _without(applied, compact_keys) == _without(parts["applied"], compact_keys)
    assert bool(applied) == bool(parts["applied"])
    assert after_known is (parts["known_after"] is not None)


def _without(value: Any, keys: tuple[str, ...]) -> Any:
    return {key: item for key, item in value.items() if key not in keys} if isinstance(value, dict) else value
