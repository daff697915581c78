# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""restart_waiting / vnuma_fleet_restart_required: the guests whose new layout waits for a boot after apply."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_restart_required import (
    FilterModule,
    vnuma_fleet_restart_required,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import restart_waiting

APPLIED = {"restart_required_guests": ["cache01", "db01", "dimm01", "refused01", "web01"]}


def failed(name: str, step: str, *written: str) -> dict[str, Any]:
    return {
        "name": name,
        "step": step,
        "error": f"guest {name}: boom",
        "changed": bool(written),
        "written": list(written),
    }


def test_a_guest_whose_definition_was_written_before_it_failed_waits_for_its_boot() -> None:
    failures = [
        # Its definition was written, then a live hot-add failed: it runs its old layout.
        failed("dimm01", "apply", "definition"),
        # libvirt refused its definition (a backup was written first): it runs what is still defined.
        failed("refused01", "apply", "backup /srv/backups/refused01.xml"),
    ]
    assert restart_waiting(APPLIED, failures) == ["cache01", "db01", "dimm01", "web01"]
    assert vnuma_fleet_restart_required(APPLIED, failures) == ["cache01", "db01", "dimm01", "web01"]


def test_an_unconfirmed_define_counts_as_written() -> None:
    failures = [failed("dimm01", "apply", "definition (unconfirmed: no answer within call_timeout)")]
    assert "dimm01" in restart_waiting(APPLIED, failures)


def test_nothing_failed_or_nothing_waits() -> None:
    assert restart_waiting(APPLIED, []) == APPLIED["restart_required_guests"]
    assert restart_waiting({}, [failed("x", "plan")]) == []
    # A registered result of a skipped task.
    assert restart_waiting({"skipped": True}, []) == []


def test_check_mode_held_back_leaves_none_waiting() -> None:
    # A step failed, or the apply's gate would hold the hypervisor back: the real run writes nothing.  The rule lived
    # in report.yml's Jinja.
    assert restart_waiting(APPLIED, [], held_back=True) == []
    assert vnuma_fleet_restart_required(APPLIED, [], held_back=True) == []
    assert vnuma_fleet_restart_required(APPLIED, [], held_back=False) == APPLIED["restart_required_guests"]
    with pytest.raises(AnsibleFilterError, match="held_back must be true or false"):
        vnuma_fleet_restart_required(APPLIED, [], held_back="yes")


@pytest.mark.parametrize(
    ("result", "failures", "message"),
    [
        ({"restart_required_guests": "db01"}, [], "restart_required_guests must be a list of guest names"),
        (APPLIED, "db01", "failed_guests must be a list"),
        (APPLIED, [{"written": []}], "each failed guest must be a dict with its name"),
    ],
)
def test_bad_input_is_named(result: Any, failures: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=rf"^vnuma\.libvirt\.vnuma_fleet_restart_required: .*{message}"):
        vnuma_fleet_restart_required(result, failures)


def test_filter_glue() -> None:
    assert FilterModule().filters() == {"vnuma_fleet_restart_required": vnuma_fleet_restart_required}
