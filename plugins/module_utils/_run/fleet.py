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

With the ``apply`` key the same call then applies the plan, as the role's apply call would (restart
never, capacity fail, the guests whose plan failed left out), from the plans it just made: the guests
are not read and planned a second time, and the role starts one module instead of two.  The role asks
for it when its gate across hypervisors cannot hold anything back (``vnuma_fleet_plan_and_apply``).
The hypervisor's lock is held from the plan's read to the last write, so the plan and its capacity
check stand for the apply as the apply call's own would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, cast

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import (
    compact_fleet_result,
    fleet_requests,
    guest_failures,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import read_digits
from ansible_collections.vnuma.libvirt.plugins.module_utils._hypervisor import GuestHandle, HostConnection
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import CONNECTION_ARGS, LibvirtHost
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.domain import converging, domain_result
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest, Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.info import run_info
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import (
    DEFAULT_LOCK_TIMEOUT,
    check_lock_timeout,
    host_lock,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import BatchError, GuestResult, error_result

__all__ = [
    "FLEET_KEYS",
    "PLAN_AND_APPLY",
    "after_read",
    "applied_result",
    "apply_needed",
    "plans_and_applies",
    "run_fleet_plan",
]

# The keys of vnuma_domain's fleet option: the role's selection and spec inputs, and whether to apply the plan.
FLEET_KEYS = ("guests", "exclude", "guest_state", "spec", "overrides", "use_stored_spec", "apply", "compact")
# vnuma_fleet_plan_and_apply's choices (apply's plan_and_apply); apply true and false are together and apart.
PLAN_AND_APPLY = ("auto", "together", "apart")
# What ``applied`` is when the plan wrote nothing because it changes nothing: as a skipped apply task registers.
NOTHING_TO_APPLY = {"changed": False, "skipped": True}


def _connection(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: params.get(key) for key in CONNECTION_ARGS}


def after_read(
    params: Mapping[str, Any], results: Sequence[Mapping[str, Any]], known: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """vnuma_info's result for the guests of ``results`` that have a layout and no error.

    Those are the guests the role verifies: it read them with vnuma_info after the apply call.  ``known``:
    definitions this call read last (the read-back of each define), which are not read again.
    """
    return run_info({**_connection(params), "guests": [item["name"] for item in _verified(results)]}, known)


def applied_result(
    params: Mapping[str, Any], result: dict[str, Any], check_mode: bool, known: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A vnuma_domain run's ``result`` with what the module adds: the failed guests, and the read after when asked.

    ``failed_guests`` are ``_core.fleet.guest_failures``' entries; ``after`` (``report_after``, not in check
    mode) is ``after_read`` of the guests that got a layout (``known`` as there).
    """
    if "guests" in result:
        result["failed_guests"] = guest_failures(result)
        if params.get("report_after") and not check_mode:
            result["after"] = after_read(params, result["guests"], known)
    return result


def _verified(results: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The guests of a vnuma_domain result that the role verifies: those with a layout and no error."""
    return [item for item in results if item.get("layout") and item.get("error") is None]


class _ReadOnce:
    """A connection whose guests' definitions were read earlier in the call: ``definitions`` does not read them again.

    The fleet call reads every definition of the host once, for its discover step (``before``), and plans
    from the same read.  A guest defined since that read (one the listing has and the read has not) makes
    ``definitions`` read every guest afresh, as the connection's own does; a guest undefined since is left
    out, as the connection's own leaves it out.  Everything else is the connection's.
    """

    def __init__(self, host: HostConnection, known: Mapping[str, str]) -> None:
        self._host = host
        self._known = known

    def definitions(self) -> Sequence[tuple[GuestHandle, str]]:
        if not isinstance(self._host, LibvirtHost):
            return self._host.definitions()
        listed = self._host.guests()
        if any(guest.name not in self._known for guest in listed):
            return self._host.definitions()
        return [(guest, self._known[guest.name]) for guest in listed]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)


def _read_definitions(params: Mapping[str, Any]) -> dict[str, str]:
    """Every inactive definition of the host by guest name: the one read of the guests before the plan."""
    with LibvirtHost.from_params(_connection(params)) as host:
        return {guest.name: xml for guest, xml in host.definitions()}


def run_fleet_plan(params: Mapping[str, Any], want_diff: bool, check_mode: bool = True) -> dict[str, Any]:
    """The host, the selected guests, their requests and their plan (check mode); ``failure`` names the step.

    Keys: ``host_info`` (vnuma_info with every guest excluded), ``before`` (vnuma_info of the
    selection), ``requests`` and ``sources`` (``_core.fleet.fleet_requests``), ``plan`` (vnuma_domain's
    result in check mode with ``capacity: report``, or its failure as ``fail_json`` would give it),
    ``plan_failures`` (the guests whose plan failed, as ``_core.fleet.guest_failures`` gives them
    with step ``plan``), ``after`` (with ``report_after``, when the plan changes nothing: the guests
    as the role's verify reads them; ``after_is_before`` instead when that read would be ``before``
    itself, the same guests read in this call) and ``failure`` (``step``, ``msg``, ``guest``,
    ``capacity``; null when none failed).  With the ``apply`` key, not in ``check_mode``, also ``applied``
    (``_apply``), and ``changed`` is whether it wrote anything.  With ``compact``, the guests' parts in one JSON
    text (``_core.fleet.compact_fleet_result``).
    A host that cannot be read raises, as vnuma_info did at preflight.

    Every definition is read once: ``before`` and the plan come from the same read, and the read after an
    apply is each define's read-back.  With ``apply`` the hypervisor's lock is taken before that read and
    held to the last write, so the plan stands for the apply as an apply call's own would.
    """
    fleet = params["fleet"]
    # The option is a plain dict for Ansible: a misspelt key must not just disappear.
    unknown = sorted(set(fleet) - set(FLEET_KEYS))
    if unknown:
        raise SpecError(f"fleet: unknown key {', '.join(unknown)}; the keys are {', '.join(FLEET_KEYS)}")
    compact = fleet.get("compact", False)
    if not isinstance(compact, bool):
        raise SpecError(f"fleet: compact {compact!r} must be true or false")
    apply = plans_and_applies(fleet, check_mode)
    with contextlib.ExitStack() as held:
        # Another run holds the hypervisor: the plan is made without writing all the same, and the apply
        # fails on the lock, as the role's apply call would (or is not needed, when the plan writes nothing).
        locked: dict[str, Any] | None = None
        if apply and _valid_lock_timeout(params.get("lock_timeout", DEFAULT_LOCK_TIMEOUT)):
            try:
                held.enter_context(host_lock(params["uri"], float(params.get("lock_timeout", DEFAULT_LOCK_TIMEOUT))))
            except VnumaError as error:
                locked = error_result(error)
        # The role's call outside check mode: its apply step comes after this call when the call does not apply.
        apply_step = "apply" in fleet and not check_mode
        result = _fleet(params, want_diff, apply, locked, apply_step)
    result["together"] = apply
    result["apply_needed"] = result["failure"] is None and bool(result["plan"]) and apply_needed(result, result["plan"])
    return compact_fleet_result(result) if compact else result


def plans_and_applies(fleet: Mapping[str, Any], check_mode: bool) -> bool:
    """Whether the fleet call applies its plan too (vnuma_fleet_plan_and_apply), decided once for the role.

    ``apply`` is true, false, or the role's ``{plan_and_apply, hypervisors}`` (its choice and the number of
    hypervisors in the play).  Never in check mode.  ``together`` (or true) always; ``auto`` with one
    hypervisor in the play, where the role's gate across hypervisors cannot hold anything back; ``apart``
    (or false, or no ``apply``) never: every hypervisor then plans before any applies.
    """
    given = fleet.get("apply", False)
    choice = given.get("plan_and_apply") if isinstance(given, Mapping) else given
    if isinstance(choice, bool):
        choice = "together" if choice else "apart"
    if choice not in PLAN_AND_APPLY:
        raise SpecError(f"fleet: apply {given!r} is not true, false or a plan_and_apply of {', '.join(PLAN_AND_APPLY)}")
    if choice == "auto":
        count = given.get("hypervisors") if isinstance(given, Mapping) else None
        number = read_digits(count.strip()) if isinstance(count, str) else count
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise SpecError(f"fleet: hypervisors {count!r} must be a positive integer with apply auto")
        return not check_mode and number == 1
    return not check_mode and choice == "together"


def apply_needed(result: Mapping[str, Any], plan: Mapping[str, Any]) -> bool:
    """Whether the role's apply step has work after ``plan``: it changes something or guests failed at it, it leaves
    a guest to apply, and it fits.

    A plan that changes nothing and fails no guest would write nothing; one where every guest failed leaves nothing
    to apply, restart or verify; one that does not fit fails the capacity step (capacity.yml) before any write.
    """
    blocking = bool((plan.get("capacity") or {}).get("blocking"))
    return not blocking and _left_to_apply(result, plan) and bool(plan.get("changed") or result["plan_failures"])


def _left_to_apply(result: Mapping[str, Any], plan: Mapping[str, Any]) -> bool:
    """Whether ``plan`` has a guest whose plan did not fail: one the apply step would take."""
    failed = {entry["name"] for entry in result["plan_failures"]}
    return any(entry.get("name") not in failed for entry in plan.get("guests") or [])


def _valid_lock_timeout(value: Any) -> bool:
    # A bad one fails the plan, with the other options, before anything is read (_run/domain.py:converging).
    try:
        check_lock_timeout(value)
    except SpecError:
        return False
    return True


def _fleet(
    params: Mapping[str, Any], want_diff: bool, apply: bool, locked: dict[str, Any] | None, apply_step: bool
) -> dict[str, Any]:
    """``run_fleet_plan`` once the lock is held (with ``apply``), or ``locked`` says why it is not.

    ``apply_step``: the role applies after this call when it does not apply itself; when that step would have
    nothing to do, ``applied`` says so as in the call that applies (``_nothing_to_apply``).
    """
    fleet = params["fleet"]
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
        known = _read_definitions(params)
        before = run_info(
            {
                **connection,
                "guests": fleet.get("guests", ["*"]),
                "exclude": fleet.get("exclude") or [],
                "guest_state": fleet.get("guest_state") or "all",
            },
            known,
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
    apply = apply and bool(host_info["host"]["nodes"])
    try:
        with converging(plan_params, True) as (converger, requests, selection_warnings):
            converger.host = cast(HostConnection, _ReadOnce(converger.host, known))
            outcome = converger.plan_all(requests)
            plan = _outcome(plan_params, want_diff, converger, selection_warnings, requests, outcome)[0]
            if _plan_failed(result, plan):
                return result
            if not apply:
                if not (apply_step and _nothing_to_apply(params, result, plan, known)):
                    _read_after_plan(params, result, before, known)
                return result
            if _nothing_to_apply(params, result, plan, known):
                return result
            written: dict[str, str] = {}
            if locked is not None:
                applied = locked
            else:
                applied, written = _apply(params, plan_params, want_diff, result, converger, requests, outcome)
    except VnumaError as error:
        # The options, the connection, the host's topology: the plan failed, as run_domain's would.
        _plan_failed(result, error_result(error))
        return result
    apply_params = {**plan_params, "capacity": "fail", "report_after": params.get("report_after", False)}
    result["changed"] = bool(applied.get("changed"))
    result["applied"] = applied_result(apply_params, applied, False, written)
    if applied.get("failed") and not result["applied"].get("failed_guests"):
        result["failure"] = {
            "step": "apply",
            "msg": applied["msg"],
            "guest": applied.get("guest"),
            "capacity": applied.get("capacity"),
        }
    return result


def _plan_failed(result: dict[str, Any], plan: dict[str, Any]) -> bool:
    """Put ``plan`` and its failed guests into ``result``; whether the plan failed as a whole (``failure``)."""
    result["plan"] = plan
    result["plan_failures"] = guest_failures(plan, "plan")
    if plan.get("failed") and not result["plan_failures"]:
        failure = {"step": "plan", "msg": plan["msg"], "guest": plan["guest"], "capacity": plan.get("capacity")}
        result["failure"] = failure
        return True
    return False


def _read_after_plan(
    params: Mapping[str, Any], result: dict[str, Any], before: Mapping[str, Any], known: Mapping[str, str]
) -> None:
    """With ``report_after``, when the plan changes nothing: the guests as the role's verify reads them."""
    plan = result["plan"]
    if params.get("report_after") and not plan["changed"]:
        # Nothing was written since ``before`` was read: when the same guests would be read, ``before`` is that
        # read, and the role is spared a second copy of a few hundred guests' reports.
        if [item["name"] for item in _verified(plan["guests"])] == [guest["name"] for guest in before["guests"]]:
            result["after_is_before"] = True
        else:
            result["after"] = after_read(params, plan["guests"], known)


def _nothing_to_apply(
    params: Mapping[str, Any], result: dict[str, Any], plan: Mapping[str, Any], known: Mapping[str, str]
) -> bool:
    """Whether the role's apply step would not run after ``plan``; if so, ``applied`` says so in ``result``.

    capacity.yml fails on a plan that does not fit, and a plan where every guest failed leaves no guest to apply,
    restart or verify (``applied`` null either way: the role's restart and verify steps do not run); a plan that
    changes nothing and fails no guest writes nothing (``applied`` as Ansible registers a skipped task: the plan
    stands for the apply, and its guests are verified).
    """
    if apply_needed(result, plan):
        return False
    nothing_left = (plan.get("capacity") or {}).get("blocking") or not _left_to_apply(result, plan)
    result["applied"] = None if nothing_left else dict(NOTHING_TO_APPLY)
    _read_after_plan(params, result, result["before"], known)
    return True


def _apply(
    params: Mapping[str, Any],
    plan_params: Mapping[str, Any],
    want_diff: bool,
    result: Mapping[str, Any],
    converger: Converger,
    requests: Sequence[GuestRequest],
    outcome: Sequence[Planned | VnumaError],
) -> tuple[dict[str, Any], dict[str, str]]:
    """What the role's apply call returns for the plans of ``outcome``, written; and the definitions read back.

    Only the guests whose plan went well are written, with ``capacity: fail`` for a guest planned again.  A
    failure of the apply as a whole (the connection) is returned as ``fail_json`` would give it.  The read-backs
    of guests that do not run stand for the read after (``after_read``): a running guest's live changes may
    touch its definition after the read-back, so it is read again.
    """
    apply_params = {**plan_params, "capacity": "fail", "report_after": params.get("report_after", False)}
    failed = {entry["name"] for entry in result["plan_failures"]}
    todo = [
        (request, item)
        for request, item in zip(requests, outcome, strict=True)
        if isinstance(item, Planned) and request.name not in failed
    ]
    # The plans as the apply call would make them, written: capacity fail for a guest planned again.
    converger.check_mode, converger.capacity = False, "fail"
    try:
        return _outcome(apply_params, want_diff, converger, (), [pair[0] for pair in todo], [pair[1] for pair in todo])
    except VnumaError as error:
        return error_result(error), {}


def _outcome(
    params: Mapping[str, Any],
    want_diff: bool,
    converger: Converger,
    selection_warnings: Sequence[str],
    requests: Sequence[GuestRequest],
    outcome: Sequence[Planned | VnumaError],
) -> tuple[dict[str, Any], dict[str, str]]:
    """vnuma_domain's result for ``converger.apply_plans(requests, outcome)``: as ``run_domain`` returns it, or as
    the module hands a run where guests failed to ``fail_json``; and the definitions of the guests that do not run
    as the run last read them (by name)."""
    try:
        results = converger.apply_plans(requests, outcome)
    except BatchError as error:
        error.details = domain_result(params, error.results, want_diff, converger.capacity_report, selection_warnings)
        return error_result(error), _last_read(error.results)
    return domain_result(params, results, want_diff, converger.capacity_report, selection_warnings), _last_read(results)


def _last_read(results: Sequence[GuestResult]) -> dict[str, str]:
    return {item.name: item.definition for item in results if item.definition is not None and not item.running}
