# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain's fleet and report_after options against libvirt's in-process test driver.

The fleet option does in one call what the vnuma_fleet role did in three module tasks (vnuma_info of the
host, vnuma_info of the selected guests with the vnuma_fleet_requests filter, vnuma_domain in check mode):
each part of its result must equal what those calls return, and a failure must name the step.  With its
apply key it also does what the role's apply call does, from the same plans: that part must equal the
apply call's result and write the same definitions.
"""

from __future__ import annotations

import fcntl
import uuid
from collections.abc import Iterator
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import expand_fleet_result, fleet_requests
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import guest_failures as fleet_failures
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import fleet_result
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import lock_path
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain, vnuma_info
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module

RING = str(CAPABILITIES / "seed-4node-ring.xml")
URI = "test:///default"


def domain(args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    return run_module({"uri": URI, "host_capabilities": RING, **args}, check_mode=check_mode)


def info(args: dict[str, Any]) -> dict[str, Any]:
    return run_module({"uri": URI, "host_capabilities": RING, **args}, module=vnuma_info)


def domain_xml(name: str, vcpus: int = 4, memory_mib: int = 2048) -> str:
    return (
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>{memory_mib}</memory>"
        f"<vcpu>{vcpus}</vcpu><os><type>hvm</type></os></domain>"
    )


@pytest.fixture
def fleet_names() -> Iterator[list[str]]:
    conn = libvirt.open(URI)
    prefix = f"unit-fleet-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{index}" for index in range(3)]
    for name in names:
        conn.defineXML(domain_xml(name))
    yield names
    for item in conn.listAllDomains():
        if item.name().startswith(prefix):
            item.undefine()
    conn.close()


def fleet(names: list[str], **extra: Any) -> dict[str, Any]:
    prefix = names[0].rsplit("-", 1)[0]
    return {
        "guests": [f"{prefix}-*"],
        "exclude": [names[2]],
        "guest_state": "all",
        "spec": {"mode": "host"},
        "overrides": {names[1]: {"mode": "node", "nodeset": "0-1"}},
        "use_stored_spec": True,
        **extra,
    }


def test_fleet_equals_the_three_calls_it_replaces(fleet_names: list[str]) -> None:
    options = fleet(fleet_names)
    result = domain({"fleet": options, "report_after": True}, check_mode=True)
    host = info({"exclude": ["*"]})
    before = info({key: options[key] for key in ("guests", "exclude", "guest_state")})
    built = fleet_requests(before["guests"], options["spec"], options["overrides"], True)
    plan = domain({"guests": built["requests"], "capacity": "report", "restart": "never"}, check_mode=True)
    assert result["failure"] is None
    assert result["changed"] is False
    assert result["host_info"] == host
    assert result["before"] == before
    assert [guest["name"] for guest in before["guests"]] == fleet_names[:2]
    assert (result["requests"], result["sources"]) == (built["requests"], built["sources"])
    # The module call's own list of failed guests is plan_failures in the fleet result.
    assert result["plan"] == {key: value for key, value in plan.items() if key != "failed_guests"}
    assert result["plan_failures"] == plan.pop("failed_guests") == []
    assert result["plan"]["changed"] is True
    # The plan changes something: the role's apply call reads the guests back, not this one.
    assert result["after"] is None


def test_fleet_writes_nothing_and_reads_after_when_nothing_changes(fleet_names: list[str]) -> None:
    conn = libvirt.open(URI)
    try:
        original = {name: conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for name in fleet_names}
        options = fleet(fleet_names)
        domain({"fleet": options}, check_mode=False)
        now = {name: conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for name in fleet_names}
        assert now == original, "the fleet option plans only, also outside check mode"
        requests = domain({"fleet": options}, check_mode=True)["requests"]
        applied = domain({"guests": requests, "report_after": True})
        assert applied["changed"] is True
        # The apply call's own read at its end is vnuma_info's reading of the guests with a layout.
        assert applied["after"] == info({"guests": fleet_names[:2]})
        again = domain({"fleet": options, "report_after": True}, check_mode=True)
    finally:
        conn.close()
    assert again["plan"]["changed"] is False
    # Nothing was written since the guests were read, and the same guests are verified: the read is ``before``.
    assert again["after_is_before"] is True
    assert again["after"] is None
    assert again["before"] == info({"guests": fleet_names[:2]})
    assert again["before"]["aligned_count"] == 2


def test_after_is_read_when_it_differs_from_before(fleet_names: list[str]) -> None:
    options = fleet(fleet_names)
    domain({"guests": [fleet_names[0]], "mode": "host"})
    # The second guest's plan fails: it is not verified, so the read after holds the first guest alone.
    options["overrides"] = {fleet_names[1]: {"mode": "node", "nodeset": "7"}}
    result = domain({"fleet": options, "report_after": True}, check_mode=True)
    assert result["plan"]["changed"] is False
    assert [item["name"] for item in result["plan_failures"]] == [fleet_names[1]]
    assert result["plan_failures"][0]["step"] == "plan"
    assert result["after_is_before"] is False
    assert result["after"] == info({"guests": [fleet_names[0]]})


def test_failed_guests_lists_what_the_filter_finds(fleet_names: list[str]) -> None:
    guests = [{"name": fleet_names[0], "nodeset": "7", "mode": "node"}, fleet_names[1]]
    result = fail_module({"uri": URI, "host_capabilities": RING, "guests": guests}, module=vnuma_domain)
    assert [item["name"] for item in result["failed_guests"]] == [fleet_names[0]]
    assert result["failed_guests"] == fleet_failures(result)
    assert domain({"guests": fleet_names[1:]})["failed_guests"] == []


def test_report_after_is_not_read_in_check_mode(fleet_names: list[str]) -> None:
    assert "after" not in domain({"guests": fleet_names, "report_after": True}, check_mode=True)


@pytest.mark.parametrize(
    ("change", "step", "msg", "guest"),
    [
        ({"guests": ["unit-*", ""]}, "discover", "guests[1] is empty: give a guest name or a shell pattern", None),
        ({"exclude": [""]}, "discover", "exclude[0] is empty: give a guest name or a shell pattern", None),
        # A number was a TypeError traceback; a string was read letter by letter (exclude "db01": d, b, 0, 1).
        ({"guests": 5}, "discover", "guests must be a list of guest names or shell patterns, got int", None),
        ({"exclude": "{0}"}, "discover", "exclude must be a list of guest names or shell patterns, got str", None),
        (
            {"overrides": {"{0}": {"state": "bogus"}}},
            "plan",
            "guest {0}: state 'bogus' is not one of present, absent",
            "{0}",
        ),
    ],
    ids=["guests-empty-entry", "exclude-empty-entry", "guests-int", "exclude-str", "override-state-bogus"],
)
def test_a_failed_step_is_named(
    fleet_names: list[str], change: dict[str, Any], step: str, msg: str, guest: str | None
) -> None:
    first = fleet_names[0]
    options = fleet(fleet_names)
    for key, value in change.items():
        options[key] = (
            {k.format(first): v for k, v in value.items()}
            if isinstance(value, dict)
            else value.format(first)
            if isinstance(value, str)
            else value
        )
    result = domain({"fleet": options}, check_mode=True)
    assert result["failure"] == {
        "step": step,
        "msg": msg.format(first),
        "guest": None if guest is None else guest.format(first),
        "capacity": None,
    }
    assert result["changed"] is False


def test_a_bad_reserved_memory_fails_the_plan_step(fleet_names: list[str]) -> None:
    result = domain({"fleet": fleet(fleet_names), "reserved_memory": "lots"}, check_mode=True)
    assert result["failure"]["step"] == "plan"
    assert result["failure"]["msg"] == "reserved_memory: 'lots' is not a size such as '16 GiB' or 524288"
    assert result["plan"]["failed"] is True


def test_a_guest_that_fails_its_plan_is_in_the_plan_not_a_step_failure(fleet_names: list[str]) -> None:
    options = fleet(fleet_names)
    options["overrides"] = {fleet_names[1]: {"mode": "node", "nodeset": "7"}}
    result = domain({"fleet": options}, check_mode=True)
    assert result["failure"] is None
    failed = [guest["name"] for guest in result["plan"]["guests"] if guest["error"]]
    assert failed == [fleet_names[1]]
    assert result["plan"]["failed"] is True


def test_a_host_that_cannot_be_read_fails_the_call() -> None:
    result = fail_module(
        {"fleet": {}, "uri": "qemu+unix:///system?socket=/nonexistent/sock", "connect_timeout": 0},
        module=vnuma_domain,
    )
    assert result["msg"].startswith("cannot connect to libvirt at qemu+unix:///system?socket=/nonexistent/sock: ")


def test_a_skipped_apply_changes_no_report_row(fleet_names: list[str]) -> None:
    """report.yml hands the result filter no apply result when the call was skipped: the rows must not change.

    The call is skipped when the plan changes nothing and no guest failed; the plan then stands for it.
    """
    options = fleet(fleet_names)
    domain({"guests": domain({"fleet": options}, check_mode=True)["requests"]})
    read = domain({"fleet": options, "report_after": True}, check_mode=True)
    assert read["plan"]["changed"] is False and read["plan_failures"] == []
    inputs = {
        "host": "hv", "uri": URI, "check": False, "test_driver": False, "host_info": read["host_info"],
        "before": read["before"], "requests": read["requests"], "sources": read["sources"], "plan": read["plan"],
        "applied": read["plan"], "restarts": [], "after": read["before"], "verify": {"ok": True},
        "failed_guests": [], "failure": None, "held_back": None, "restart_required": [], "selection": {},
        "spec": options["spec"], "use_stored_spec": True, "restart_policy": "never", "restart_batch": 1,
        "report_dir": "/r", "generated": "now",
    }  # fmt: skip
    with_plan = fleet_result(inputs)
    assert fleet_result({**inputs, "applied": {}}) == with_plan
    assert with_plan["status"] == "unchanged"
    assert [row["after"]["aligned"] for row in with_plan["guests"]] == [True, True]


# -- fleet with apply: the plan, then the role's apply call, in one call ----------------------------------


def _definitions(names: list[str]) -> dict[str, str]:
    conn = libvirt.open(URI)
    try:
        return {name: conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for name in names}
    finally:
        conn.close()


def _restore(definitions: dict[str, str]) -> None:
    conn = libvirt.open(URI)
    try:
        for xml in definitions.values():
            conn.defineXML(xml)
    finally:
        conn.close()


def test_fleet_apply_equals_the_plan_then_the_apply_call(fleet_names: list[str]) -> None:
    options = fleet(fleet_names)
    # The second guest's plan fails: the apply leaves it out, as the role's apply call does.
    options["overrides"] = {fleet_names[1]: {"mode": "node", "nodeset": "7"}}
    original = _definitions(fleet_names)
    together = domain({"fleet": {**options, "apply": True}, "report_after": True})
    written = _definitions(fleet_names)
    _restore(original)
    plan = domain({"fleet": options, "report_after": True}, check_mode=True)
    failed = {item["name"] for item in plan["plan_failures"]}
    todo = [entry for entry in plan["requests"] if entry["name"] not in failed]
    apart = domain({"guests": todo, "capacity": "fail", "restart": "never", "report_after": True})
    assert _definitions(fleet_names) == written
    assert written[fleet_names[0]] != original[fleet_names[0]]
    assert written[fleet_names[1]] == original[fleet_names[1]]
    # The host's free memory aside (host_info), the plan part is the plan call's.
    for key in ("before", "requests", "sources", "plan", "plan_failures", "failure"):
        assert together[key] == plan[key], key
    assert together["changed"] is True
    assert [item["name"] for item in together["plan_failures"]] == [fleet_names[1]]
    applied = together["applied"]
    for key in ("changed", "guests", "restart_required_guests", "failed_guests"):
        assert applied[key] == apart[key], key
    assert [guest["name"] for guest in applied["guests"]] == [fleet_names[0]]
    # vnuma_info's read at the end, as the apply call's (the free memory of the host aside).
    assert applied["after"]["guests"] == apart["after"]["guests"]


def test_fleet_apply_writes_nothing_when_the_plan_changes_nothing(fleet_names: list[str]) -> None:
    options = {**fleet(fleet_names), "apply": True}
    assert domain({"fleet": options})["changed"] is True
    again = domain({"fleet": options, "report_after": True})
    # As the role's apply task registers when it is skipped; the read after is the discover read.
    assert again["applied"] == {"changed": False, "skipped": True}
    assert (again["changed"], again["failure"], again["after_is_before"]) == (False, None, True)


def test_fleet_apply_only_plans_in_check_mode(fleet_names: list[str]) -> None:
    original = _definitions(fleet_names)
    result = domain({"fleet": {**fleet(fleet_names), "apply": True}}, check_mode=True)
    assert "applied" not in result
    assert result["plan"]["changed"] is True
    assert _definitions(fleet_names) == original


def test_fleet_apply_writes_nothing_when_the_plan_does_not_fit(fleet_names: list[str]) -> None:
    conn = libvirt.open(URI)
    try:
        # Capacity counts the guests that run or start with the host.
        for name in fleet_names:
            conn.lookupByName(name).setAutostart(1)
    finally:
        conn.close()
    original = _definitions(fleet_names)
    # Every host node of the ring keeps more memory back than it has: the plan cannot fit (capacity.yml fails).
    result = domain({"fleet": {**fleet(fleet_names), "apply": True}, "reserved_memory": "1 TiB"})
    assert result["plan"]["capacity"]["blocking"]
    assert (result["applied"], result["changed"], result["failure"]) == (None, False, None)
    assert _definitions(fleet_names) == original


def test_fleet_apply_failure_as_a_whole_is_the_apply_step(fleet_names: list[str]) -> None:
    # Another run holds the hypervisor's lock: the plan is made as in check mode, the apply fails on the lock.
    original = _definitions(fleet_names)
    with open(lock_path(URI), "a+", encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = domain({"fleet": {**fleet(fleet_names), "apply": True}, "lock_timeout": 0})
    assert result["failure"]["step"] == "apply", result["failure"]
    assert result["failure"]["msg"] == result["applied"]["msg"]
    assert result["plan"]["changed"] is True and result["changed"] is False
    assert _definitions(fleet_names) == original


def test_fleet_apply_with_nothing_to_write_does_not_wait_for_the_lock(fleet_names: list[str]) -> None:
    # Converged guests, and another run holds the hypervisor: nothing to write, so no lock needed and no
    # failure, as the role's apply call is skipped when its plan changes nothing.
    options = {**fleet(fleet_names), "apply": True}
    assert domain({"fleet": options})["changed"] is True
    with open(lock_path(URI), "a+", encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        again = domain({"fleet": options, "lock_timeout": 0})
    assert (again["changed"], again["failure"], again["applied"]) == (False, None, {"changed": False, "skipped": True})


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts each guest's reads of its inactive definition from here on (libvirt's own call, which still runs)."""
    reads: dict[str, int] = {}
    original = libvirt.virDomain.XMLDesc

    def counted(self: libvirt.virDomain, flags: int = 0) -> str:
        if flags & libvirt.VIR_DOMAIN_XML_INACTIVE:
            reads[self.name()] = reads.get(self.name(), 0) + 1
        return original(self, flags)

    monkeypatch.setattr(libvirt.virDomain, "XMLDesc", counted)
    return reads


def test_fleet_apply_reads_each_definition_once_and_reads_back_what_it_writes(
    fleet_names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One read for the discover step and the plan; a written guest is read again right before its define
    (another client may have changed it) and once after it, and that read-back is the read after."""
    options = {**fleet(fleet_names), "apply": True}
    reads = _count_reads(monkeypatch)
    result = domain({"fleet": options, "report_after": True})
    assert result["changed"] is True and result["failure"] is None
    assert {name: reads.get(name) for name in fleet_names} == dict.fromkeys(fleet_names[:2], 3) | {fleet_names[2]: 1}
    monkeypatch.undo()
    # The read after is what vnuma_info reads now.
    assert result["applied"]["after"]["guests"] == info({"guests": fleet_names[:2]})["guests"]
    reads = _count_reads(monkeypatch)
    again = domain({"fleet": options, "report_after": True})
    assert (again["changed"], again["after_is_before"]) == (False, True)
    assert {name: reads.get(name) for name in fleet_names} == dict.fromkeys(fleet_names, 1)


@pytest.mark.parametrize(
    ("apply", "hypervisors", "check_mode", "together"),
    [
        ("auto", 1, False, True),
        ("auto", "1", False, True),
        ("auto", 3, False, False),
        ("auto", 1, True, False),
        ("together", 3, False, True),
        (True, None, False, True),
        ("apart", 1, False, False),
        (False, 1, False, False),
    ],
)
def test_the_call_decides_whether_it_applies(
    fleet_names: list[str], apply: Any, hypervisors: Any, check_mode: bool, together: bool
) -> None:
    original = _definitions(fleet_names)
    choice = apply if isinstance(apply, bool) else {"plan_and_apply": apply, "hypervisors": hypervisors}
    options = {**fleet(fleet_names), "apply": choice}
    result = domain({"fleet": options, "report_after": True}, check_mode=check_mode)
    # The new guests' plan changes them either way: the apply step has work, done in this call or after it.
    assert (result["together"], result["apply_needed"], result["changed"]) == (together, True, together)
    assert ("applied" in result) is together
    assert (_definitions(fleet_names) != original) is together


def test_the_apply_step_has_nothing_to_do_when_the_plan_changes_nothing(fleet_names: list[str]) -> None:
    options = {**fleet(fleet_names), "apply": {"plan_and_apply": "apart", "hypervisors": 2}}
    first = domain({"fleet": options})
    assert (first["apply_needed"], "applied" in first) == (True, False)
    domain({"guests": first["requests"]})
    again = domain({"fleet": options, "report_after": True})
    # As the call that applies says it: the role's apply step is skipped and the plan stands for it.
    assert (again["apply_needed"], again["applied"], again["after_is_before"]) == (
        False,
        {"changed": False, "skipped": True},
        True,
    )
    assert "applied" not in domain({"fleet": options}, check_mode=True)


@pytest.mark.parametrize(
    ("apply", "hypervisors", "msg"),
    [
        (
            "sometimes",
            1,
            "fleet: apply {'plan_and_apply': 'sometimes', 'hypervisors': 1} is not true, false or a plan_and_apply "
            "of auto, together, apart",
        ),
        ("auto", 0, "fleet: hypervisors 0 must be a positive integer with apply auto"),
        ("auto", None, "fleet: hypervisors None must be a positive integer with apply auto"),
    ],
)
def test_a_bad_apply_choice_is_refused(fleet_names: list[str], apply: Any, hypervisors: Any, msg: str) -> None:
    options = {**fleet(fleet_names), "apply": {"plan_and_apply": apply, "hypervisors": hypervisors}}
    result = fail_module({"uri": URI, "host_capabilities": RING, "fleet": options}, module=vnuma_domain)
    assert result["msg"] == msg


@pytest.mark.parametrize(
    ("apply", "check_mode"),
    [
        pytest.param(None, True, id="plan-only"),
        pytest.param(True, False, id="plan-and-apply"),
    ],
)
def test_a_compact_result_is_the_full_one_in_one_text(fleet_names: list[str], apply: Any, check_mode: bool) -> None:
    options = fleet(fleet_names)
    # The second guest's plan fails: a compact result keeps the failed guests where the role's tasks read them.
    options["overrides"] = {fleet_names[1]: {"mode": "node", "nodeset": "7"}}
    if apply is not None:
        options["apply"] = apply
    original = _definitions(fleet_names)
    full = domain({"fleet": options, "report_after": True}, check_mode=check_mode)
    written = _definitions(fleet_names)
    _restore(original)
    compact = domain({"fleet": {**options, "compact": True}, "report_after": True}, check_mode=check_mode)
    assert _definitions(fleet_names) == written
    assert isinstance(compact["guests_json"], str)
    assert "before" not in compact and "guests" not in compact["plan"]
    # What the role's tasks read is there as it is without compact.
    for key in ("failure", "plan_failures", "requests", "together", "apply_needed"):
        assert compact[key] == full[key], key
    assert compact["plan"]["capacity"] == full["plan"]["capacity"]
    assert compact["laid_out"] == [item["name"] for item in full["plan"]["guests"] if item.get("layout")]
    assert compact["laid_out"] == [fleet_names[0]]
    assert compact["after_read"] is (not check_mode)
    expanded = expand_fleet_result(compact)
    # The host's free memory aside (host_info), every part is the full result's.
    assert {key: value for key, value in expanded.items() if key != "host_info"} == {
        key: value for key, value in full.items() if key != "host_info"
    }


def test_a_compact_result_that_found_nothing_to_apply(fleet_names: list[str]) -> None:
    options = {**fleet(fleet_names), "apply": True, "compact": True}
    assert domain({"fleet": options})["changed"] is True
    again = domain({"fleet": options, "report_after": True})
    assert again["applied"] == {"changed": False, "skipped": True}
    assert again["after_read"] is True and again["after_is_before"] is True
    assert expand_fleet_result(again)["after"] is None


def test_a_bad_compact_choice_is_refused(fleet_names: list[str]) -> None:
    failed = fail_module(
        {"uri": URI, "host_capabilities": RING, "fleet": {**fleet(fleet_names), "compact": "yes"}}, module=vnuma_domain
    )
    assert failed["msg"] == "fleet: compact 'yes' must be true or false"


@pytest.mark.parametrize("apply", ["together", "apart"])
def test_nothing_is_applied_or_verified_when_every_guest_fails_its_plan(fleet_names: list[str], apply: str) -> None:
    """Every selected guest fails at plan: nothing is left to apply, restart or verify, together or apart.

    ``applied`` null (as when the plan does not fit) keeps the role's restart and verify steps from running, so that
    its report says ``verify: null`` either way; the apply step has nothing to do.
    """
    options = fleet(fleet_names)
    options["overrides"] = {name: {"mode": "node", "nodeset": "7"} for name in fleet_names[:2]}
    original = _definitions(fleet_names)
    choice = {"plan_and_apply": apply, "hypervisors": 1}
    result = domain({"fleet": {**options, "apply": choice, "compact": True}, "report_after": True})
    assert [item["name"] for item in result["plan_failures"]] == fleet_names[:2]
    assert result["together"] is (apply == "together")
    assert (result["apply_needed"], result["applied"], result["changed"], result["failure"]) == (
        False,
        None,
        False,
        None,
    )
    assert _definitions(fleet_names) == original
