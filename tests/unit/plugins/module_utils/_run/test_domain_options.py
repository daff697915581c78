# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain's options checked before anything is read: the option table's kinds, lock_timeout."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import SPEC_OPTIONS as SPEC_ROWS
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.domain import (
    GUEST_OPTIONS,
    SPEC_OPTIONS,
    build_requests,
    validate_run_options,
)


def test_the_entry_options_are_the_table_and_the_guest_options() -> None:
    assert tuple(item.name for item in SPEC_ROWS) == SPEC_OPTIONS
    assert GUEST_OPTIONS == ("state", "current_vcpus", "hotplug_memory", "total_memory", "replan")


def entry_options(**options: Any) -> dict[str, Any]:
    """The options of one ``guests`` entry as the request for its guest gets them."""
    [request] = build_requests({"guests": [{"name": "g", **options}]}, ["g"])
    return {**request.options, "state": request.state, "current_vcpus": request.current_vcpus}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param({"cpuless_cells": "on"}, {"cpuless_cells": True}, id="boolean-word"),
        pytest.param({"cpuless_cells": 0}, {"cpuless_cells": False}, id="boolean-number"),
        pytest.param({"cells": " 4 ", "mode": "node"}, {"cells": 4, "mode": "node"}, id="count-text"),
        pytest.param({"nodeset": 1, "mode": "node"}, {"nodeset": "1", "mode": "node"}, id="nodeset-number"),
        pytest.param({"memory": "1 GiB"}, {"memory": "1 GiB"}, id="size-kept-as-given"),
        pytest.param({"state": "absent"}, {"state": "absent"}, id="guest-choice"),
        pytest.param({"current_vcpus": "2"}, {"current_vcpus": 2}, id="guest-count"),
    ],
)
def test_entry_values_are_read_by_their_kind(given: dict[str, Any], expected: dict[str, Any]) -> None:
    options = entry_options(**given)
    assert {key: options[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param({"cpuless_cells": "maybe"}, "guest g: cpuless_cells 'maybe' is not a boolean", id="boolean"),
        pytest.param(
            {"pinning": "socket"}, "guest g: pinning 'socket' is not one of node, core, thread, none", id="choice"
        ),
        pytest.param({"memory_slots": "many"}, "guest g: memory_slots 'many' must be a positive integer", id="count"),
        pytest.param({"nodeset": "4-1"}, "guest g: nodeset", id="nodeset"),
        pytest.param({"hugepages": "huge"}, "guest g: hugepages: 'huge' is not a size such as", id="size"),
        pytest.param({"state": "gone"}, "guest g: state 'gone' is not one of present, absent", id="guest-choice"),
    ],
)
def test_entry_values_of_the_wrong_kind_are_refused(given: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_run_options({"guests": [{"name": "g", **given}]})
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        (-1, "lock_timeout -1 is outside 0 to 86400 seconds"),
        (86401.5, "lock_timeout 86401.5 is outside 0 to 86400 seconds"),
        ("soon", "lock_timeout 'soon' is not a number of seconds"),
        (float("nan"), "lock_timeout nan is not a number of seconds"),
    ],
)
def test_lock_timeout_is_checked_with_the_other_options(timeout: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_run_options({"name": "g", "lock_timeout": timeout})
    assert str(caught.value) == message


def test_lock_timeout_comes_after_the_other_checks() -> None:
    with pytest.raises(SpecError) as caught:
        validate_run_options({"name": "g", "shutdown_timeout": -1, "lock_timeout": -1})
    assert str(caught.value) == "shutdown_timeout -1 must be from 0 to 86400 seconds"


def test_a_valid_lock_timeout_passes() -> None:
    validate_run_options({"name": "g", "lock_timeout": 0})
    validate_run_options({"name": "g"})
