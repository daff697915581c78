# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A shut-off guest with a managed save image (``virsh managedsave``), on the real libvirtd and QEMU.

libvirt keeps the running guest's XML in the image, and ``virsh start`` resumes it: the guest then runs the
layout it was saved with, whatever its definition says.  vnuma_domain used to plan such a guest as an ordinary
shut-off one (``restart_required: false``: "its next start brings the new layout"), and vnuma_info to call it
not pending; both now compare the saved image with the definition, and ``restart: if_needed`` leaves the guest
saved rather than lose its state.

The guests boot no kernel (SeaBIOS only, ``idle_guest``): they start, save and resume in about a second.  A
guest without an OS ignores the ACPI shutdown request, so "shut down" here is a power-off.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import libvirt
import pytest
from test_vnuma_domain_live_pins import idle_guest
from vnuma_domain_support import domain_root, live_xml

from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtGuest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_info
from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import URI, Guest, GuestFactory
from ansible_collections.vnuma.libvirt.tests.support.role_run import RoleRun


def virsh(*args: str) -> None:
    subprocess.run(["virsh", "-q", "-c", URI, *args], check=True, capture_output=True, text=True)


def cells(xml: str) -> int:
    return len(domain_root(xml).findall("cpu/numa/cell"))


def info(name: str) -> dict[str, Any]:
    (guest,) = run_module({"guests": [name]}, module=vnuma_info)["guests"]
    return dict(guest)


def saved_warning(name: str) -> str:
    return (
        f"guest {name}: has a managed save image (virsh managedsave): its next start resumes the saved state, "
        "which runs the layout saved with it, not this definition; the new layout takes effect when the guest boots "
        f"after a shutdown. virsh managedsave-remove {name} discards the saved state (what runs in it is lost)"
    )


def left_saved_warning(name: str) -> str:
    return (
        f"guest {name}: restart if_needed leaves a guest with a managed save image as it is: neither started nor "
        "its saved state discarded; restart_required stays true"
    )


def running_one_cell(make_guest: GuestFactory, prefix: str) -> tuple[Guest, dict[str, Any]]:
    """An idle guest given one cell and started with it; its options."""
    guest = idle_guest(make_guest, prefix)
    options = {"name": guest.name, "mode": "node", "cells": 1}
    assert run_module(options)["changed"] is True
    guest.start()
    return guest, options


def saved_one_cell(make_guest: GuestFactory, prefix: str) -> tuple[Guest, dict[str, Any]]:
    """An idle guest given one cell, started and saved with it (virsh managedsave); its options."""
    guest, options = running_one_cell(make_guest, prefix)
    guest.dom.managedSave(0)
    assert (guest.dom.isActive(), guest.dom.hasManagedSaveImage(0)) == (0, 1)
    return guest, options


def test_a_saved_guest_resumes_its_saved_layout_and_is_told_so(make_guest: GuestFactory) -> None:
    guest, options = saved_one_cell(make_guest, "vms-saved")
    name = guest.name
    two = {**options, "cells": 2}

    plan = run_module(two, check_mode=True)
    assert (plan["changed"], plan["guests"][0]["running"], plan["restart_required"]) == (True, False, True)
    assert plan["restart_required_guests"] == [name]
    assert saved_warning(name) in plan["warnings"]

    applied = run_module({**two, "restart": "if_needed"})
    (entry,) = applied["guests"]
    assert (entry["written"], entry["restarted"], entry["restart_required"]) == (["definition"], False, True)
    assert applied["restart_required_guests"] == [name]
    assert saved_warning(name) in applied["warnings"]
    assert left_saved_warning(name) in applied["warnings"]
    # Neither started nor discarded: the saved state is still there.
    assert (guest.dom.isActive(), guest.dom.hasManagedSaveImage(0)) == (0, 1)

    # A rerun writes nothing and still says so: the saved image, not the definition, is what differs.
    again = run_module({**two, "restart": "if_needed"})
    assert (again["changed"], again["restart_required"], again["restarted"]) == (False, True, False)
    assert guest.dom.hasManagedSaveImage(0) == 1

    # vnuma_info tells the truth before the start.
    before = info(name)
    assert (before["state"], before["running"], before["source"], before["pending"]) == (
        "shutoff",
        False,
        "inactive",
        True,
    )
    assert any(change.startswith("cpu/numa/cell[1]/") for change in before["pending_changes"]), before

    # The start resumes the saved state: one cell, as saved, and the definition still pending.
    guest.start()
    assert guest.dom.hasManagedSaveImage(0) == 0
    assert cells(live_xml(guest.conn, name)) == 1
    running = info(name)
    assert (running["source"], running["pending"]) == ("live", True)
    assert running["pending_changes"] == before["pending_changes"]

    # Shut down and started again: the guest boots its definition, and nothing is pending.
    guest.dom.destroy()
    guest.start()
    assert cells(live_xml(guest.conn, name)) == 2
    after = info(name)
    assert (after["source"], after["pending"], after["pending_changes"]) == ("live", False, [])
    assert run_module(two)["restart_required"] is False


def test_a_saved_guest_saved_with_its_layout_needs_no_restart(make_guest: GuestFactory) -> None:
    guest, options = saved_one_cell(make_guest, "vms-same")
    # The definition does not change, and the image holds the same layout: nothing waits for a boot.
    result = run_module({**options, "restart": "if_needed"})
    assert (result["changed"], result["restart_required"], result["restarted"]) == (False, False, False)
    assert "warnings" not in result or not any("managed save" in warning for warning in result["warnings"])
    assert info(guest.name)["pending"] is False
    assert guest.dom.hasManagedSaveImage(0) == 1


@pytest.mark.parametrize("running_at_plan", [True, False], ids=["running", "shut-off"])
def test_a_guest_saved_by_another_client_before_its_define_is_planned_as_saved(
    make_guest: GuestFactory, monkeypatch: pytest.MonkeyPatch, running_at_plan: bool
) -> None:
    if running_at_plan:
        guest, options = running_one_cell(make_guest, "vms-race-define")
    else:
        guest = idle_guest(make_guest, "vms-race-off")
        options = {"name": guest.name, "mode": "node", "cells": 1}
        assert run_module(options)["changed"] is True
    fresh = Converger.fresh

    def saved_first(self: Converger, item: Any) -> Any:
        # Another client, after the plan and before the define: virsh managedsave (after virsh start for a guest that
        # was shut off at the plan: shut off then and now, with its definition unchanged, only the image tells).
        if not running_at_plan:
            virsh("start", guest.name)
        virsh("managedsave", guest.name)
        return fresh(self, item)

    monkeypatch.setattr(Converger, "fresh", saved_first)
    result = run_module({**options, "cells": 2, "restart": "if_needed"})
    (entry,) = result["guests"]
    assert (entry["written"], entry["running"], entry["restarted"], entry["restart_required"]) == (
        ["definition"],
        False,
        False,
        True,
    )
    assert saved_warning(guest.name) in result["warnings"]
    assert (guest.dom.isActive(), guest.dom.hasManagedSaveImage(0)) == (0, 1), "the run started or discarded it"
    assert cells(guest.inactive_xml()) == 2


def test_a_guest_saved_by_another_client_before_its_restart_stays_saved(
    make_guest: GuestFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest, options = running_one_cell(make_guest, "vms-race-restart")
    ask = LibvirtGuest.ask_shutdown

    def saved_first(self: LibvirtGuest) -> str:
        virsh("managedsave", self.name)
        return ask(self)

    monkeypatch.setattr(LibvirtGuest, "ask_shutdown", saved_first)
    result = run_module({**options, "cells": 2, "restart": "if_needed", "force": True, "shutdown_timeout": 1})
    (entry,) = result["guests"]
    # "A restart starts only what it brought down", and a saved guest is not off: its start resumes the old layout.
    assert (entry["written"], entry["running"], entry["restarted"], entry["restart_required"]) == (
        ["definition"],
        False,
        False,
        True,
    )
    assert (guest.dom.isActive(), guest.dom.hasManagedSaveImage(0)) == (0, 1), "the run started or discarded it"
    assert any(
        warning.startswith(f"guest {guest.name}: was saved by another client before its restart")
        for warning in result["warnings"]
    ), result["warnings"]
    assert guest.dom.state()[:2] == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SAVED]


def test_the_role_lists_a_saved_guest_and_its_restart_step_leaves_it_saved(
    make_guest: GuestFactory, tmp_path: Path
) -> None:
    guest, _options = saved_one_cell(make_guest, "vms-role")
    role = RoleRun.start(
        tmp_path / "role",
        {
            "vnuma_fleet_uri": URI,
            "vnuma_fleet_guests": [guest.name],
            "vnuma_fleet_spec": {"mode": "node", "cells": 2},
            "vnuma_fleet_use_stored_spec": False,
            "vnuma_fleet_restart": "if_needed",
        },
    )
    try:
        returncode, result = role.finish()
    finally:
        role.kill()
    assert returncode == 0, role.output
    # vnuma_fleet_restart_required names it, before and after its restart batch, which restarted nothing.
    assert result["restart_required"] == [guest.name], role.output
    (batch,) = result["restart"]["batches"]
    assert (batch["guests"], batch["restarted"], batch["restart_required"]) == ([guest.name], [], [guest.name])
    (row,) = result["guests"]
    assert (row["changed"], row["restart_required"], row["after"]["pending"]) == (True, True, True)
    assert (guest.dom.isActive(), guest.dom.hasManagedSaveImage(0)) == (0, 1), "the role started or discarded it"
