# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_guest_failures: the failed guests of a vnuma_domain result (the vnuma_fleet role's split of plan and apply)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_guest_failures import FilterModule, vnuma_guest_failures
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import guest_failures

CORRUPT = (
    "guest bad01: its stored vnuma spec cannot be read (<vnuma>: mode 'bogus' is not one of host, node, auto); "
    "give the spec's options (at least mode) to replace it, or state: absent to remove the layout"
)


def guest(name: str, error: str | None = None, written: list[str] | None = None, **more: Any) -> dict[str, Any]:
    """One guests entry as vnuma_domain returns it (the keys that matter here, plus some it always has)."""
    written = written or []
    return {"name": name, "changed": bool(written), "written": written, "error": error, "layout": None, **more}


# A plan (check mode) where one guest's stored spec is corrupt: the call failed, every guest is there.
PLAN = {
    "failed": True,
    "changed": False,
    "msg": CORRUPT,
    "guest": "bad01",
    "guests": [guest("web01"), guest("bad01", CORRUPT), guest("db01")],
    "restart_required_guests": [],
}
# An apply where web01 was written, then db01's define was refused.
APPLY = {
    "failed": True,
    "changed": True,
    "msg": "guest db01: libvirt refused the definition: ... (written before the failure: guest web01: definition)",
    "guests": [
        guest("web01", written=["definition"]),
        guest("db01", "guest db01: libvirt refused the definition: ..."),
        guest("app01", "guest app01: did not shut down within 5 seconds", written=["definition", "shutdown requested"]),
    ],
}


def test_filter_module_exposes_the_filter() -> None:
    assert FilterModule().filters() == {"vnuma_guest_failures": vnuma_guest_failures}


def test_a_failed_plan_gives_the_failed_guest_alone() -> None:
    assert vnuma_guest_failures(PLAN, step="plan") == [
        {"name": "bad01", "step": "plan", "error": CORRUPT, "changed": False, "written": []}
    ]


def test_an_apply_gives_what_was_written_for_each_failed_guest() -> None:
    assert vnuma_guest_failures(APPLY) == [
        {"name": "db01", "error": "guest db01: libvirt refused the definition: ...", "changed": False, "written": []},
        {
            "name": "app01",
            "error": "guest app01: did not shut down within 5 seconds",
            "changed": True,
            "written": ["definition", "shutdown requested"],
        },
    ]


@pytest.mark.parametrize(
    "result",
    [
        # Failed before any guest: the connection, an option, a capacity refusal.
        {"failed": True, "changed": False, "msg": "cannot connect to libvirt at bogus://", "guest": None},
        {"failed": True, "changed": False, "msg": "capacity ...", "capacity": {"fits": False}},
        # Skipped (no guest to plan), or went well.
        {"skipped": True, "changed": False, "skip_reason": "Conditional result was False"},
        {"changed": True, "guests": [guest("web01", written=["definition"])]},
        {"changed": False, "guests": []},
        {"changed": False, "guests": None},
    ],
    ids=["connection", "capacity", "skipped", "success", "no-guest", "guests-null"],
)
def test_no_per_guest_failure_gives_an_empty_list(result: dict[str, Any]) -> None:
    assert vnuma_guest_failures(result) == []


def test_the_step_is_left_out_when_omitted() -> None:
    from ansible._internal._templating._utils import Omit

    # What ansible-core 2.19 passes for ``omit``.
    assert "step" not in vnuma_guest_failures(PLAN, step=Omit)[0]
    assert "step" not in vnuma_guest_failures(PLAN)[0]


def test_entries_without_written_or_changed_count_as_nothing_written() -> None:
    result = {"guests": [{"name": "a", "error": "guest a: boom"}]}
    assert guest_failures(result) == [{"name": "a", "error": "guest a: boom", "changed": False, "written": []}]


def test_the_input_is_not_changed() -> None:
    before = copy.deepcopy(APPLY)
    vnuma_guest_failures(APPLY, step="apply")
    assert before == APPLY


# Bad inputs: (result, step, the exact message).  Each is refused with the filter's name, the part of the
# result that is wrong, and what it got; nothing is returned and the input is left as it was.
GOOD = guest("web01")
CASES = [
    pytest.param(
        None, None, "the input must be the registered result of a vnuma_domain task (a dict), got None", id="input-none"
    ),
    pytest.param(
        [GOOD],
        None,
        "the input must be the registered result of a vnuma_domain task (a dict), got list",
        id="input-list",
    ),
    pytest.param(
        "failed",
        None,
        "the input must be the registered result of a vnuma_domain task (a dict), got str",
        id="input-str",
    ),
    pytest.param(
        3, None, "the input must be the registered result of a vnuma_domain task (a dict), got int", id="input-int"
    ),
    pytest.param({"guests": "web01"}, None, "guests must be the list of per-guest results, got str", id="guests-str"),
    pytest.param(
        {"guests": {"web01": GOOD}}, None, "guests must be the list of per-guest results, got dict", id="guests-dict"
    ),
    pytest.param({"guests": 1}, None, "guests must be the list of per-guest results, got int", id="guests-int"),
    pytest.param({"guests": ["web01"]}, None, "guests[0] must be a dict (one guest's result), got str", id="entry-str"),
    pytest.param(
        {"guests": [GOOD, None]}, None, "guests[1] must be a dict (one guest's result), got None", id="entry-none"
    ),
    pytest.param(
        {"guests": [{"error": "x"}]},
        None,
        "guests[0].name must be a guest name (a non-empty string), got None None",
        id="name-missing",
    ),
    pytest.param(
        {"guests": [{"name": ""}]},
        None,
        "guests[0].name must be a guest name (a non-empty string), got str ''",
        id="name-empty",
    ),
    pytest.param(
        {"guests": [{"name": 7}]},
        None,
        "guests[0].name must be a guest name (a non-empty string), got int 7",
        id="name-int",
    ),
    pytest.param(
        {"guests": [{"name": ["a"]}]},
        None,
        "guests[0].name must be a guest name (a non-empty string), got list ['a']",
        id="name-list",
    ),
    pytest.param(
        {"guests": [{"name": "a", "error": True}]},
        None,
        "guests[0] (a).error must be a message (a string) or null, got bool",
        id="error-bool",
    ),
    pytest.param(
        {"guests": [{"name": "a", "error": {"msg": "x"}}]},
        None,
        "guests[0] (a).error must be a message (a string) or null, got dict",
        id="error-dict",
    ),
    pytest.param(
        {"guests": [{"name": "a", "error": "x", "written": "definition"}]},
        None,
        "guests[0] (a).written must be a list of strings (what was written), got str",
        id="written-str",
    ),
    pytest.param(
        {"guests": [{"name": "a", "written": [1]}]},
        None,
        "guests[0] (a).written must be a list of strings (what was written), got list",
        id="written-ints",
    ),
    pytest.param(
        {"guests": [{"name": "a", "written": None}]},
        None,
        "guests[0] (a).written must be a list of strings (what was written), got None",
        id="written-none",
    ),
    pytest.param(
        {"guests": [{"name": "a", "changed": "yes"}]},
        None,
        "guests[0] (a).changed must be true or false, got str 'yes'",
        id="changed-str",
    ),
    pytest.param(
        {"guests": [{"name": "a", "changed": 1}]},
        None,
        "guests[0] (a).changed must be true or false, got int 1",
        id="changed-int",
    ),
    pytest.param(PLAN, "", "step must name the step (a non-empty string), got str ''", id="step-empty"),
    pytest.param(PLAN, "  ", "step must name the step (a non-empty string), got str '  '", id="step-blank"),
    pytest.param(PLAN, 2, "step must name the step (a non-empty string), got int 2", id="step-int"),
    pytest.param(PLAN, ["plan"], "step must name the step (a non-empty string), got list ['plan']", id="step-list"),
]


@pytest.mark.parametrize(("result", "step", "message"), CASES)
def test_bad_input_is_refused_with_a_message_and_nothing_changes(result: Any, step: Any, message: str) -> None:
    before = copy.deepcopy(result)
    with pytest.raises(AnsibleFilterError) as caught:
        vnuma_guest_failures(result, step=step)
    assert str(caught.value) == f"vnuma.libvirt.vnuma_guest_failures: {message}"
    assert result == before
    # The pure layer raises the collection's own error; the filter only names itself.
    with pytest.raises(SpecError):
        guest_failures(result, step)
