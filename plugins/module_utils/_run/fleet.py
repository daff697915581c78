# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The vnuma_fleet role's first steps in one vnuma_domain call: read the host, discover, plan.

Each step used to be a module task of its own (vnuma_info twice, vnuma_domain in check mode), and
starting a module costs more than a step's work on a few hundred guests.  ``run_fleet_plan`` does
what those tasks did, with the same functions (``run_info``, ``fleet_requests``, ``run_domain``), and
says which step failed (``failure.step``) so that the role still attributes a failure to preflight,
discover or plan.  A failure to read the host is raised, as vnuma_info's was: the role's preflight.

``report_after`` (``after_read``) reads the guests as vnuma_info reports them, for the role's verify step
when nothing was restarted since: it saves the role a module start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import fleet_requests, guest_failures
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import CONNECTION_ARGS
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.domain import run_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.info import run_info

__all__ = ["FLEET_KEYS", "after_read", "error_result", "run_fleet_plan"]

# The keys of vnuma_domain's fleet option: the role's selection and spec inputs.
FLEET_KEYS = ("guests", "exclude", "guest_state", "spec", "overrides", "use_stored_spec")


def error_result(error: VnumaError) -> dict[str, Any]:
    """What vnuma_domain hands to ``fail_json`` for ``error`` (its ``msg`` and ``failed`` included).

    A capacity refusal also carries the report (which nodes, which guests, how much); a run where
    guests failed, every guest's result with what was written.  ``warnings`` stay in the dict.
    """
    extra: dict[str, Any] = {"capacity": error.report.to_dict()} if isinstance(error, CapacityError) else {}
    extra.update(error.details)
    extra.setdefault("changed", False)
    return {"failed": True, "msg": str(error), "guest": error.guest, **extra}


def _connection(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: params.get(key) for key in CONNECTION_ARGS}


def after_read(params: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """vnuma_info's result for the guests of ``results`` that have a layout and no error.

    Those are the guests the role verifies: it read them with vnuma_info after the apply call.
    """
    return run_info({**_connection(params), "guests": [item["name"] for item in _verified(results)]})


def _verified(results: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The guests of a vnuma_domain result that the role verifies: those with a layout and no error."""
    return [item for item in results if item.get("layout") and item.get("error") is None]


def run_fleet_plan(params: Mapping[str, Any], want_diff: bool) -> dict[str, Any]:
    """The host, the selected guests, their requests and their plan (check mode); ``failure`` names the step.

    Keys: ``host_info`` (vnuma_info with every guest excluded), ``before`` (vnuma_info of the
    selection), ``requests`` and ``sources`` (``_core.fleet.fleet_requests``), ``plan`` (vnuma_domain's
    result in check mode with ``capacity: report``, or its failure as ``fail_json`` would give it),
    ``plan_failures`` (the guests whose plan failed, as ``_core.fleet.guest_failures`` gives them
    with step ``plan``), ``after`` (with ``report_after``, when the plan changes nothing: the guests
    as the role's verify reads them; ``after_is_before`` instead when that read would be ``before``
    itself, the same guests read in this call) and ``failure`` (``step``, ``msg``, ``guest``,
    ``capacity``; null when none failed).
    A host that cannot be read raises, as vnuma_info did at preflight.
    """
    fleet = params["fleet"]
    # The option is a plain dict for Ansible: a misspelt key must not just disappear.
    unknown = sorted(set(fleet) - set(FLEET_KEYS))
    if unknown:
        raise SpecError(f"fleet: unknown key {', '.join(unknown)}; the keys are {', '.join(FLEET_KEYS)}")
    connection = _connection(params)
    host_info = run_info({**connection, "guests": ["*"], "exclude": ["*"]})
    result: dict[str, Any] = {
        "changed": False,
        "host_info": host_info,
        "before": {},
        "requests": [],
        "sources": {},
        "plan": {},
        "plan_failures": [],
        "after": None,
        "after_is_before": False,
        "failure": None,
    }
    try:
        before = run_info(
            {
                **connection,
                "guests": fleet.get("guests", ["*"]),
                "exclude": fleet.get("exclude") or [],
                "guest_state": fleet.get("guest_state") or "all",
            }
        )
        built = fleet_requests(
            before["guests"], fleet.get("spec") or {}, fleet.get("overrides") or {}, fleet.get("use_stored_spec", True)
        )
    except VnumaError as error:
        result["failure"] = {"step": "discover", "msg": str(error), "guest": error.guest, "capacity": None}
        return result
    result.update(before=before, requests=built["requests"], sources=built["sources"])
    if not built["requests"]:
        # As a task skipped for want of guests registers.
        result["plan"] = {"changed": False, "skipped": True}
        return result
    plan_params = {
        **params,
        "fleet": None,
        "name": None,
        "guests": built["requests"],
        "exclude": [],
        "capacity": "report",
        "restart": "never",
    }
    try:
        plan = run_domain(plan_params, True, want_diff)
    except VnumaError as error:
        plan = error_result(error)
    result["plan"] = plan
    result["plan_failures"] = guest_failures(plan, "plan")
    if plan.get("failed") and not result["plan_failures"]:
        failure = {"step": "plan", "msg": plan["msg"], "guest": plan["guest"], "capacity": plan.get("capacity")}
        result["failure"] = failure
        return result
    if params.get("report_after") and not plan["changed"]:
        # Nothing was written since ``before`` was read: when the same guests would be read, ``before`` is that
        # read, and the role is spared a second copy of a few hundred guests' reports.
        if [item["name"] for item in _verified(plan["guests"])] == [guest["name"] for guest in before["guests"]]:
            result["after_is_before"] = True
        else:
            result["after"] = after_read(params, plan["guests"])
    return result
