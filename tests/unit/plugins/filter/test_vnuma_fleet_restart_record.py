# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""restart_record: the vnuma_fleet role's record of one restart batch, as its report lists it."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_restart_record import (
    FilterModule,
    vnuma_fleet_restart_record,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import restart_record

# What vnuma_domain returns for a batch of three: two restarted, one that did not stop in time.
BATCH_RESULT: dict[str, Any] = {
    "guests": [
        {"name": "db01", "restarted": True, "restart_required": False},
        {"name": "db02", "restarted": False, "restart_required": True},
        {"name": "web01", "restarted": True, "restart_required": False},
    ],
    "restart_required_guests": ["db02"],
}


def test_the_record_lists_what_was_restarted_and_what_still_needs_it() -> None:
    record = restart_record(2, ["db01", "db02", "web01"], BATCH_RESULT, "2026-12-02T08:00:00Z")
    assert record == {
        "batch": 2,
        "guests": ["db01", "db02", "web01"],
        "restarted": ["db01", "web01"],
        "restart_required": ["db02"],
        "finished": "2026-12-02T08:00:00Z",
    }
    # The batch number stays an integer (the report's JSON and the molecule scenario compare it as one).
    assert isinstance(record["batch"], int)


def test_a_batch_in_which_nothing_restarted() -> None:
    result = {"guests": [{"name": "db01", "restarted": False}], "restart_required_guests": []}
    record = restart_record(1, ["db01"], result, "t")
    assert (record["restarted"], record["restart_required"]) == ([], [])


@pytest.mark.parametrize(
    ("number", "guests", "result", "message"),
    [
        pytest.param(0, ["db01"], BATCH_RESULT, "the batch number must be an integer from 1, got 0", id="number-zero"),
        pytest.param(
            "1", ["db01"], BATCH_RESULT, "the batch number must be an integer from 1, got '1'", id="number-text"
        ),
        pytest.param(
            True, ["db01"], BATCH_RESULT, "the batch number must be an integer from 1, got True", id="number-bool"
        ),
        pytest.param(1, "db01", BATCH_RESULT, "the batch's guests must be a list of guest names", id="guests-text"),
        pytest.param(1, [1], BATCH_RESULT, "the batch's guests must be a list of guest names", id="guests-not-names"),
        pytest.param(
            1,
            ["db01"],
            {"guests": "x"},
            "the batch's result must be what vnuma_domain returned, with its guests",
            id="result-guests-text",
        ),
    ],
)
def test_bad_input_is_refused(number: Any, guests: Any, result: Any, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        restart_record(number, guests, result, "t")
    assert str(raised.value) == message
    with pytest.raises(AnsibleFilterError, match="vnuma_fleet_restart_record"):
        vnuma_fleet_restart_record(number, guests, result, "t")


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters() == {"vnuma_fleet_restart_record": vnuma_fleet_restart_record}
