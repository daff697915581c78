# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""No lost updates on a real libvirtd: the hypervisor's lock, and planning again what changed under a run.

Two vnuma_domain runs with partial specs on one guest used to lose one of the changes while both
reported ``changed``; a ``virsh desc --config`` made while a run was between its read and its define
was overwritten.  Runs now take the hypervisor's lock (``_run.lock``) and read every definition
again right before they define it.  The other client's change is made at exactly that point by
wrapping the real ``Converger.fresh``; everything else is real.

The vnuma_fleet role and a vnuma_domain run on one of its guests: the play is held between two of
its tasks (tests/support/role_run.py) while the module runs, so the interleaving is chosen, not timed.

Another client's lifecycle calls during a run (``virsh start``, ``destroy``, ``undefine``, ``suspend``): a run
selects its guests once it holds the lock, plans a guest as it runs right before its define, never defines
again a guest undefined under it, and restarts only what it brought down (a paused guest only with force).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt
import pytest
from vnuma_domain_support import inactive_xml

from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtGuest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import host_lock, lock_path
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import read_stored_spec
from ansible_collections.vnuma.libvirt.tests.support.module_run import (
    fail_module,
    module_process_result,
    run_module,
    start_module_process,
)
from ansible_collections.vnuma.libvirt.tests.support.realguest import URI, GuestFactory, domain_xml
from ansible_collections.vnuma.libvirt.tests.support.role_run import RoleRun


def stored(xml: str) -> dict[str, Any]:
    spec = read_stored_spec(parse_xml(xml, "a test definition", root_tag="domain"))
    assert spec is not None
    return spec.to_mapping()


def virsh(*args: str) -> None:
    subprocess.run(["virsh", "-q", "-c", URI, *args], check=True, capture_output=True, text=True)


def description(xml: str) -> str | None:
    element = parse_xml(xml, "a test definition", root_tag="domain").find("description")
    return None if element is None else element.text


def test_runs_wait_for_the_lock_and_both_changes_are_kept(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect
) -> None:
    guest = make_guest("vit-lock", vcpus=4, memory_mib=256, start=False)
    run_module({"name": guest.name})
    converged = inactive_xml(qemu_conn, guest.name)
    with host_lock(URI, 0):
        runs = [
            start_module_process({"name": guest.name, "pinning": "none"}),
            start_module_process({"name": guest.name, "memory_mode": "preferred"}),
        ]
        # While another run holds the lock, neither reads nor writes: the definition stays as it is for as
        # long as the lock is held, several times as long as a whole run takes here.
        until = time.monotonic() + 4
        while time.monotonic() < until:
            assert [run.poll() for run in runs] == [None, None], "a run went ahead while the lock was held"
            assert inactive_xml(qemu_conn, guest.name) == converged
            time.sleep(0.2)
    results = [module_process_result(run) for run in runs]
    assert [(result.get("failed", False), result["changed"]) for result in results] == [(False, True)] * 2
    spec = stored(inactive_xml(qemu_conn, guest.name))
    assert (spec["pinning"], spec["memory_mode"]) == ("none", "preferred")


def test_a_run_that_cannot_have_the_lock_fails_at_once_and_changes_nothing(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect
) -> None:
    guest = make_guest("vit-lock", vcpus=2, memory_mib=256, start=False)
    before = inactive_xml(qemu_conn, guest.name)
    with host_lock(URI, 0):
        failed = fail_module({"name": guest.name, "lock_timeout": 0})
        # Check mode writes nothing and takes no lock.
        assert run_module({"name": guest.name}, check_mode=True)["changed"] is True
    assert failed["msg"] == (
        f"another vnuma.libvirt run is changing the guests of {URI} (lock {lock_path(URI)}, held by pid "
        f"{os.getpid()}); waited 0 seconds (lock_timeout)"
    )
    assert failed["changed"] is False
    assert inactive_xml(qemu_conn, guest.name) == before
    for bad in (-1, float("nan"), float("inf"), 86401):
        assert fail_module({"name": guest.name, "lock_timeout": bad})["msg"].startswith(f"lock_timeout {bad:g} ")
    assert inactive_xml(qemu_conn, guest.name) == before


def edit_before_define(monkeypatch: pytest.MonkeyPatch, edit: Callable[[], None]) -> None:
    """Make ``edit()`` (another client's change) happen once, right before the re-read ahead of a define."""
    original = Converger.fresh

    def fresh(self: Converger, item: Any) -> Any:
        edit()
        return original(self, item)

    monkeypatch.setattr(Converger, "fresh", fresh)


def test_a_change_by_another_tool_before_the_define_is_kept(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest = make_guest("vit-edit", vcpus=4, memory_mib=256, start=False)
    run_module({"name": guest.name})
    edit_before_define(monkeypatch, lambda: virsh("desc", "--config", guest.name, "kept by the other tool"))
    result = run_module({"name": guest.name, "pinning": "none"})
    assert result["changed"] is True
    assert result["guests"][0]["written"] == ["definition"]
    xml = inactive_xml(qemu_conn, guest.name)
    assert description(xml) == "kept by the other tool"
    assert stored(xml)["pinning"] == "none"


def test_an_owned_part_changed_before_the_define_is_planned_again(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest = make_guest("vit-edit", vcpus=4, memory_mib=256, start=False)
    # Another tool raises the guest's vCPUs to 6 between this run's plan (for 4) and its define: the layout
    # written is planned from the 6, never the stale 4.
    edit_before_define(monkeypatch, lambda: virsh("setvcpus", guest.name, "6", "--config", "--maximum"))
    result = run_module({"name": guest.name, "mode": "node", "cells": 2})
    assert result["layout"]["vcpus"] == 6
    root = parse_xml(inactive_xml(qemu_conn, guest.name), "a test definition", root_tag="domain")
    assert root.find("vcpu").text == "6"
    assert sorted(cell.get("cpus") for cell in root.iterfind("cpu/numa/cell")) == ["0-2", "3-5"]


def test_a_definition_that_keeps_changing_is_left_to_the_other_tool(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest = make_guest("vit-edit", vcpus=4, memory_mib=256, start=False)
    run_module({"name": guest.name})
    converged_spec = stored(inactive_xml(qemu_conn, guest.name))
    edits: list[int] = []

    def keep_editing() -> None:
        edits.append(1)
        virsh("desc", "--config", guest.name, f"edit {len(edits)}")

    # An edit before every read of the definition, as a tool in a loop would.
    original = Converger.fresh

    def fresh(self: Converger, item: Any) -> Any:
        read = item.guest.xml_if_defined

        def edited(live: bool = False) -> str | None:
            keep_editing()
            return read(live)

        monkeypatch.setattr(item.guest, "xml_if_defined", edited)
        return original(self, item)

    monkeypatch.setattr(Converger, "fresh", fresh)
    failed = fail_module({"name": guest.name, "pinning": "none"})
    assert failed["msg"] == (
        f"guest {guest.name}: its definition changed 3 times while this run planned it (another client is "
        "editing it); nothing was written for it"
    )
    assert failed["changed"] is False
    assert failed["guests"][0]["written"] == []
    xml = inactive_xml(qemu_conn, guest.name)
    assert description(xml) == f"edit {len(edits)}"
    assert stored(xml) == converged_spec


# -- another client's lifecycle calls during a run -----------------------------------------------------

# A flat guest planned into 2 cells: a change that waits for a boot when the guest runs.
TWO_CELLS = {"mode": "node", "cells": 2}


def holds_lock_file(process: subprocess.Popen[str], path: str) -> bool:
    """Whether ``process`` has the lock file open: it is in ``host_lock``, taking or holding the lock."""
    fds = Path(f"/proc/{process.pid}/fd")
    try:
        return any(os.readlink(fd) == path for fd in fds.iterdir())
    except OSError:
        return False


def test_guests_are_selected_once_the_lock_is_held(make_guest: GuestFactory, qemu_conn: libvirt.virConnect) -> None:
    prefix = f"vit-sel{os.getpid()}"
    names = [make_guest(prefix, vcpus=2, memory_mib=256, start=False).name for _index in range(3)]
    gone = names[1]
    with host_lock(URI, 0):
        run = start_module_process({"guests": [f"{prefix}-*"], **TWO_CELLS})
        until = time.monotonic() + 60
        while not holds_lock_file(run, lock_path(URI)):
            assert run.poll() is None, module_process_result(run)
            assert time.monotonic() < until, "the run never came to the lock"
            time.sleep(0.05)
        # The run waits for the lock and has read nothing yet: another client undefines a guest it would match.
        virsh("undefine", gone)
    result = module_process_result(run)
    assert result.get("failed", False) is False, result
    assert sorted(guest["name"] for guest in result["guests"]) == sorted(name for name in names if name != gone)
    assert all(guest["written"] == ["definition"] for guest in result["guests"])


def test_a_running_guest_undefined_before_its_define_is_left_transient(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest = make_guest("vit-undef", vcpus=2, memory_mib=256)
    edit_before_define(monkeypatch, lambda: virsh("undefine", guest.name))
    failed = fail_module({"name": guest.name, **TWO_CELLS, "restart": "if_needed", "force": True})
    assert failed["msg"] == (
        f"guest {guest.name}: was undefined by another client after this run read it; nothing was written for it"
    )
    assert (failed["changed"], failed["guests"][0]["written"]) == (False, [])
    dom = qemu_conn.lookupByName(guest.name)
    assert (dom.isActive(), dom.isPersistent()) == (1, 0), "the run defined the guest again, or stopped it"


def test_a_guest_started_before_its_define_is_planned_as_running(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest = make_guest("vit-start", vcpus=2, memory_mib=256, start=False)
    edit_before_define(monkeypatch, lambda: virsh("start", guest.name))
    result = run_module({"name": guest.name, **TWO_CELLS})
    (entry,) = result["guests"]
    # It runs the old layout: the new one waits for its next boot.
    assert (entry["written"], entry["running"], entry["restart_required"]) == (["definition"], True, True)
    assert result["restart_required_guests"] == [guest.name]


def test_a_guest_shut_off_before_its_restart_stays_off(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest = make_guest("vit-stop", vcpus=2, memory_mib=256)
    ask = LibvirtGuest.ask_shutdown

    def destroyed_first(self: LibvirtGuest) -> str:
        virsh("destroy", self.name)
        return ask(self)

    monkeypatch.setattr(LibvirtGuest, "ask_shutdown", destroyed_first)
    result = run_module({"name": guest.name, **TWO_CELLS, "restart": "if_needed", "force": True, "shutdown_timeout": 1})
    (entry,) = result["guests"]
    assert (entry["written"], entry["restarted"], entry["restart_required"], entry["running"]) == (
        ["definition"],
        False,
        False,
        False,
    )
    assert not qemu_conn.lookupByName(guest.name).isActive(), "the run started a guest another client stopped"
    assert (
        f"guest {guest.name}: was shut off by another client before its restart; left shut off, its next boot "
        "takes the new definition"
    ) in result.get("warnings", [])


def test_a_paused_guest_is_restarted_only_with_force(make_guest: GuestFactory, qemu_conn: libvirt.virConnect) -> None:
    guest = make_guest("vit-pause", vcpus=2, memory_mib=256)
    virsh("suspend", guest.name)
    args = {"name": guest.name, **TWO_CELLS, "restart": "if_needed", "shutdown_timeout": 1}
    failed = fail_module(args)
    assert failed["msg"] == (
        f"guest {guest.name}: is paused and cannot shut down; set force to power it off, or resume it first "
        f"(written before the failure: guest {guest.name}: definition)"
    )
    assert qemu_conn.lookupByName(guest.name).state()[0] == libvirt.VIR_DOMAIN_PAUSED
    forced = run_module({**args, "force": True})
    (entry,) = forced["guests"]
    assert (entry["written"], entry["restarted"], entry["restart_required"]) == (
        ["powered off", "started"],
        True,
        False,
    )
    dom = qemu_conn.lookupByName(guest.name)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    # Started with its new definition.
    assert len(parse_xml(dom.XMLDesc(0), "the running guest", root_tag="domain").findall("cpu/numa/cell")) == 2


# -- the vnuma_fleet role and a vnuma_domain run on the same guests ------------------------------------

# What the role asks of every guest; the module run asks what the role leaves out (memory_mode).
ROLE_SPEC = {"mode": "node", "cells": 2, "distribution": "interleave"}


@pytest.mark.parametrize(
    "pause_after",
    [
        # The role has read and planned the guests; the module's write comes before the role's apply.
        "Plan | Plan every selected guest in check mode",
        # The role has written; the module's write comes before the role's verify re-reads the guests.
        "Apply | Apply every layout in one call",
    ],
    ids=["module-between-role-plan-and-apply", "module-between-role-apply-and-verify"],
)
def test_the_role_and_a_module_run_keep_both_changes(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path, pause_after: str
) -> None:
    names = [make_guest(f"vit-role{index}", vcpus=2, memory_mib=256, start=False).name for index in range(3)]
    target = names[1]
    role = RoleRun.start(
        tmp_path / "role",
        {
            "vnuma_fleet_uri": URI,
            "vnuma_fleet_guests": names,
            "vnuma_fleet_spec": ROLE_SPEC,
            "vnuma_fleet_use_stored_spec": False,
            # A plan call and an apply call, so that the module can run between them.
            "vnuma_fleet_plan_and_apply": "apart",
        },
        pause_after=pause_after,
    )
    try:
        role.wait_paused()
        # The module runs in a process of its own while the play is held between two of its tasks.
        module = module_process_result(start_module_process({"name": target, "memory_mode": "preferred"}))
        returncode, result = role.finish()
    finally:
        role.kill()
    assert (module.get("failed", False), module["changed"]) == (False, True), module
    assert returncode == 0, role.output
    assert result["status"] == "converted", role.output
    assert result["verify"]["ok"], result["verify"]
    assert sorted(result["verify"]["checked"]) == sorted(names)
    for name in names:
        xml = inactive_xml(qemu_conn, name)
        spec = stored(xml)
        # The role's layout on every guest, and the module's option on its guest only.
        assert {key: spec[key] for key in ROLE_SPEC} == ROLE_SPEC, name
        assert spec["memory_mode"] == ("preferred" if name == target else "strict"), name
        root = parse_xml(xml, "a test definition", root_tag="domain")
        assert len(root.findall("cpu/numa/cell")) == 2, name
        assert {node.get("mode") for node in root.iterfind("numatune/memnode")} == {spec["memory_mode"]}, name


def test_a_guest_undefined_between_the_roles_plan_and_apply_never_makes_its_name_select_others(
    qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    # Reproduced: a guest named <base>-w[12] undefined while the role was between its plan and its apply call; the
    # apply call read the plan's name as a pattern and converted <base>-w2, which the role excluded, unreported.
    base = f"vit-exact{os.getpid()}"
    literal, selected, excluded = f"{base}-w[12]", f"{base}-w1", f"{base}-w2"
    try:
        for name in (literal, selected, excluded):
            qemu_conn.defineXMLFlags(
                domain_xml(name, 2, 256, tmp_path / f"{name}.log"), libvirt.VIR_DOMAIN_DEFINE_VALIDATE
            )
        untouched = inactive_xml(qemu_conn, excluded)
        role = RoleRun.start(
            tmp_path / "role",
            {
                "vnuma_fleet_uri": URI,
                "vnuma_fleet_guests": [f"{base}-w*"],
                "vnuma_fleet_exclude": [excluded],
                "vnuma_fleet_spec": ROLE_SPEC,
                "vnuma_fleet_use_stored_spec": False,
                "vnuma_fleet_plan_and_apply": "apart",
            },
            pause_after="Plan | Plan every selected guest in check mode",
        )
        try:
            role.wait_paused()
            virsh("undefine", literal)
            returncode, result = role.finish()
        finally:
            role.kill()
        assert inactive_xml(qemu_conn, excluded) == untouched, "the role wrote a guest it excluded"
        assert returncode != 0, role.output
        assert result["status"] == "guests failed", role.output
        assert [(guest["name"], guest["step"]) for guest in result["failed_guests"]] == [(literal, "apply")]
        assert "no guest named" in result["failed_guests"][0]["error"], result["failed_guests"]
        assert sorted(guest["name"] for guest in result["guests"]) == sorted([literal, selected])
        converted = parse_xml(inactive_xml(qemu_conn, selected), "a test definition", root_tag="domain")
        assert len(converted.findall("cpu/numa/cell")) == 2
    finally:
        for name in (literal, selected, excluded):
            with contextlib.suppress(libvirt.libvirtError):
                qemu_conn.lookupByName(name).undefine()
