# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""restart_batches / vnuma_fleet_restart_batches: the vnuma_fleet role's restart batches.

They were built by the loop of roles/vnuma_fleet/tasks/restart.yml in Jinja (``FORMER_LOOP``); a grid of inputs is run
through both, the Jinja by ansible-core's own templar, and they must agree.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_restart_batches import (
    FilterModule,
    vnuma_fleet_restart_batches,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import restart_batches

# restart.yml's loop before the rule moved to Python.
FORMER_LOOP = (
    "{{ vnuma_fleet_restart_required | reject('in', __vnuma_fleet_failed_guests | map(attribute='name') | list)"
    "   | batch(vnuma_fleet_restart_batch | int) | list"
    "   if vnuma_fleet_restart == 'if_needed' and __vnuma_fleet_aborted is none else [] }}"
)
WAITING = ["app01", "cache01", "db01", "dimm01", "web01"]


def failed(name: str, *written: str) -> dict[str, Any]:
    return {
        "name": name,
        "step": "apply",
        "error": f"guest {name}: boom",
        "changed": bool(written),
        "written": list(written),
    }


def test_the_guests_are_restarted_in_their_order_size_at_a_time() -> None:
    assert restart_batches(WAITING, [], "if_needed", 2) == [["app01", "cache01"], ["db01", "dimm01"], ["web01"]]
    assert restart_batches(WAITING, [], "if_needed", 1) == [[name] for name in WAITING]
    assert restart_batches(WAITING, [], "if_needed", 5) == [WAITING]
    assert restart_batches(WAITING, [], "if_needed", 200) == [WAITING]
    assert restart_batches([], [], "if_needed", 2) == []


def test_a_failed_guest_is_never_restarted() -> None:
    # dimm01 failed after its definition was written: it waits for a boot (restart_waiting lists it), but is left out.
    failures = [failed("dimm01", "definition"), failed("cache01")]
    assert restart_batches(WAITING, failures, "if_needed", 2) == [["app01", "db01"], ["web01"]]
    assert restart_batches(["dimm01"], failures, "if_needed", 2) == []


def test_no_batch_with_policy_never_or_when_held_back() -> None:
    assert restart_batches(WAITING, [], "never", 2) == []
    assert restart_batches(WAITING, [], "if_needed", 2, held_back=True) == []
    assert restart_batches(WAITING, [], "never", 2, held_back=True) == []


def test_the_batch_size_is_read_as_preflight_reads_it() -> None:
    # -e passes text.
    assert restart_batches(WAITING, [], "if_needed", "2") == restart_batches(WAITING, [], "if_needed", 2)
    for bad in (0, -1, "0", "two", 1.5, True, None):
        with pytest.raises(SpecError, match="vnuma_fleet_restart_batch must be at least 1"):
            restart_batches(WAITING, [], "if_needed", bad)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("db01", [], "if_needed", 1), "must be a list of guest names"),
        (([1], [], "if_needed", 1), "must be a list of guest names"),
        ((WAITING, {"db01": 1}, "if_needed", 1), "failed_guests must be a list"),
        ((WAITING, [{"error": "x"}], "if_needed", 1), "each failed guest must be a dict with its name"),
        ((WAITING, [], "always", 1), "restart policy must be one of never, if_needed"),
        ((WAITING, [], "if_needed", 1, "yes"), "held_back must be true or false"),
    ],
)
def test_bad_inputs_are_refused(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        restart_batches(*args)


def test_the_filter() -> None:
    assert vnuma_fleet_restart_batches(WAITING, [failed("db01")], "if_needed", "3") == [
        ["app01", "cache01", "dimm01"],
        ["web01"],
    ]
    assert FilterModule().filters() == {"vnuma_fleet_restart_batches": vnuma_fleet_restart_batches}
    with pytest.raises(AnsibleFilterError, match=r"^vnuma\.libvirt\.vnuma_fleet_restart_batches: vnuma_fleet_restart_"):
        vnuma_fleet_restart_batches(WAITING, [], "if_needed", 0)


def test_the_batches_are_the_former_loops() -> None:
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    templar = Templar(loader=DataLoader(), variables={})
    cases = itertools.product(
        (WAITING, WAITING[:1], []),
        ([], [failed("db01", "definition")], [failed("app01"), failed("web01"), failed("other01")]),
        ("never", "if_needed"),
        (1, 2, "3", 7),
        (None, "apply held back: 1 of 2 hypervisors failed (hv02), more than vnuma_fleet_max_fail_percentage 0%"),
    )
    kinds = set()
    for waiting, failures, policy, size, aborted in cases:
        templar.available_variables = {
            "vnuma_fleet_restart_required": waiting,
            "__vnuma_fleet_failed_guests": failures,
            "vnuma_fleet_restart": policy,
            "vnuma_fleet_restart_batch": size,
            "__vnuma_fleet_aborted": aborted,
        }
        expected = templar.template(trust_as_template(FORMER_LOOP))
        batches = vnuma_fleet_restart_batches(waiting, failures, policy, size, held_back=aborted is not None)
        assert batches == expected, templar.available_variables
        kinds.add(len(batches))
    # Some inputs gave no batch, one, and several.
    assert {0, 1, 2} <= kinds
