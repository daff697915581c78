# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Restarting the guests a new layout waits for: one batch, all shut down before any is started.

Every test gives the guests no time to shut down (``shutdown_timeout=0``): the fake's guests stop at
once when asked, or never, so nothing here waits or depends on timing.
"""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import BatchError
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import FakeHost, domain_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

TOPOLOGY = host("testdriver-default")
HOST = {"mode": "host"}
NAMES = ("a", "b", "c")


def running(*names: str) -> FakeHost:
    return FakeHost({name: domain_xml(name) for name in names}, running=names)


def restart(hypervisor: FakeHost, force: bool = False) -> Converger:
    return Converger(hypervisor, TOPOLOGY, restart="if_needed", force=force, shutdown_timeout=0)


def lifecycle(hypervisor: FakeHost) -> list[tuple[str, str]]:
    return [(call.method, call.guest) for call in hypervisor.writes() if call.method != "define"]


def test_every_guest_is_shut_down_before_any_is_started() -> None:
    hypervisor = running(*NAMES)
    results = restart(hypervisor).converge([GuestRequest(name, HOST) for name in NAMES])
    assert lifecycle(hypervisor) == [
        ("ask_shutdown", "a"),
        ("ask_shutdown", "b"),
        ("ask_shutdown", "c"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]
    # Every define comes before the batch.
    methods = [call.method for call in hypervisor.writes()]
    assert methods.index("ask_shutdown") > max(i for i, method in enumerate(methods) if method == "define")
    for result in results:
        assert result.written == ["definition", "shutdown requested", "started"]
        assert (result.restarted, result.restart_required) == (True, False)
    assert all(guest.live == guest.xml for guest in hypervisor.guests.values())


def test_without_restart_the_guests_are_left_running_and_told_to_restart() -> None:
    hypervisor = running("a")
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    assert (result.restart_required, result.restarted, result.written) == (True, False, ["definition"])
    assert lifecycle(hypervisor) == []


def test_a_shut_off_guest_is_not_restarted() -> None:
    hypervisor = FakeHost({"a": domain_xml("a")})
    (result,) = restart(hypervisor).converge([GuestRequest("a", HOST)])
    assert (result.restart_required, result.restarted) == (False, False)
    assert lifecycle(hypervisor) == []


def test_a_guest_that_will_not_stop_is_left_running_and_the_others_restart() -> None:
    hypervisor = running(*NAMES)
    hypervisor.guests["b"].ignores_shutdown = True
    with pytest.raises(BatchError) as raised:
        restart(hypervisor).converge([GuestRequest(name, HOST) for name in NAMES])
    a, b, c = raised.value.results
    assert str(b.error) == "guest b: did not shut down within 0 seconds; set force to power it off"
    assert (b.restarted, b.restart_required, b.written) == (False, True, ["definition", "shutdown requested"])
    assert (a.restarted, c.restarted) == (True, True)
    assert ("start", "b") not in lifecycle(hypervisor) and ("destroy", "b") not in lifecycle(hypervisor)
    assert hypervisor.guests["b"].live is not None


def test_with_force_a_guest_that_will_not_stop_is_powered_off() -> None:
    hypervisor = running(*NAMES)
    hypervisor.guests["b"].ignores_shutdown = True
    results = restart(hypervisor, force=True).converge([GuestRequest(name, HOST) for name in NAMES])
    assert results[1].written == ["definition", "shutdown requested", "powered off", "started"]
    calls = lifecycle(hypervisor)
    assert calls.index(("destroy", "b")) < calls.index(("start", "a"))


def test_a_guest_that_cannot_be_powered_off_fails_alone() -> None:
    hypervisor = running("a", "b")
    hypervisor.guests["b"].ignores_shutdown = True
    hypervisor.fail("b", "destroy", "powering the guest off: injected failure")
    with pytest.raises(BatchError) as raised:
        restart(hypervisor, force=True).converge([GuestRequest(name, HOST) for name in ("a", "b")])
    a, b = raised.value.results
    assert str(b.error) == "guest b: powering the guest off: injected failure"
    assert (a.restarted, a.written) == (True, ["definition", "shutdown requested", "started"])


def test_a_guest_that_does_not_start_again_is_reported() -> None:
    hypervisor = running("a", "b")
    hypervisor.fail("a", "start", "starting the guest: injected failure")
    with pytest.raises(BatchError) as raised:
        restart(hypervisor).converge([GuestRequest(name, HOST) for name in ("a", "b")])
    a, b = raised.value.results
    assert str(a.error) == "guest a: starting the guest: injected failure"
    assert (a.restarted, a.restart_required, a.written) == (False, True, ["definition", "shutdown requested"])
    assert b.written == ["definition", "shutdown requested", "started"]
    assert "written before the failure: guest a: definition, shutdown requested; guest b:" in str(raised.value)


def test_a_guest_whose_define_failed_is_not_restarted() -> None:
    hypervisor = running("a", "b")
    hypervisor.fail("a", "define")
    with pytest.raises(BatchError):
        restart(hypervisor).converge([GuestRequest(name, HOST) for name in ("a", "b")])
    assert lifecycle(hypervisor) == [("ask_shutdown", "b"), ("start", "b")]


@pytest.mark.parametrize("force", [False, True], ids=["without-force", "with-force"])
def test_a_guest_shut_off_by_another_client_before_the_restart_stays_off(force: bool) -> None:
    hypervisor = running("a", "b")
    # Another client powers it off after its define, right before the batch asks it to shut down.
    hypervisor.meanwhile("a", "ask_shutdown", lambda: hypervisor.shut_off("a"))
    a, b = restart(hypervisor, force=force).converge([GuestRequest(name, HOST) for name in ("a", "b")])
    # It needs no restart: its next boot takes the new definition.
    assert (a.written, a.restarted, a.restart_required, a.running, a.error) == (
        ["definition"],
        False,
        False,
        False,
        None,
    )
    assert a.warnings == [
        "guest a: was shut off by another client before its restart; left shut off, its next boot takes the new "
        "definition"
    ]
    assert hypervisor.guests["a"].live is None
    assert ("start", "a") not in lifecycle(hypervisor) and ("destroy", "a") not in lifecycle(hypervisor)
    assert (b.written, b.restarted) == (["definition", "shutdown requested", "started"], True)


def test_with_force_a_paused_guest_is_powered_off_and_started() -> None:
    hypervisor = running("a", "b")
    hypervisor.suspend("a")
    a, b = restart(hypervisor, force=True).converge([GuestRequest(name, HOST) for name in ("a", "b")])
    assert (a.written, a.restarted, a.restart_required, a.running) == (
        ["definition", "powered off", "started"],
        True,
        False,
        True,
    )
    assert b.written == ["definition", "shutdown requested", "started"]
    guest = hypervisor.guests["a"]
    assert (guest.live, guest.paused) == (guest.xml, False)
    calls = lifecycle(hypervisor)
    assert calls.index(("destroy", "a")) < calls.index(("start", "a"))


def test_without_force_a_paused_guest_fails_alone_and_stays_paused() -> None:
    hypervisor = running("a", "b")
    hypervisor.suspend("a")
    with pytest.raises(BatchError) as raised:
        restart(hypervisor).converge([GuestRequest(name, HOST) for name in ("a", "b")])
    a, b = raised.value.results
    assert str(a.error) == "guest a: is paused and cannot shut down; set force to power it off, or resume it first"
    assert (a.written, a.restarted, a.restart_required, a.running) == (["definition"], False, True, True)
    assert str(raised.value) == (
        "guest a: is paused and cannot shut down; set force to power it off, or resume it first (written before the "
        "failure: guest a: definition; guest b: definition, shutdown requested, started)"
    )
    assert b.restarted
    assert hypervisor.guests["a"].paused and hypervisor.guests["a"].live is not None
    assert [call for call in lifecycle(hypervisor) if call[1] == "a"] == [("ask_shutdown", "a")]


# -- guests with a managed save image (virsh managedsave): a start resumes it, never started nor discarded -------

ONE_CELL = {"mode": "node", "nodeset": "0", "cells": 1}
LEFT_SAVED = (
    "restart if_needed leaves a guest with a managed save image as it is: neither started nor its saved state "
    "discarded; restart_required stays true"
)


def saved(hypervisor: FakeHost, name: str) -> None:
    """``name`` given one cell, booted with it, and saved (virsh managedsave)."""
    restart(hypervisor).converge([GuestRequest(name, ONE_CELL)])
    hypervisor.managed_save(name)
    hypervisor.calls.clear()


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check-mode"])
def test_a_saved_guest_is_left_saved_and_still_needs_its_restart(check_mode: bool) -> None:
    hypervisor = running("a", "b")
    saved(hypervisor, "a")
    image = hypervisor.guests["a"].saved
    converger = Converger(
        hypervisor, TOPOLOGY, check_mode=check_mode, restart="if_needed", force=True, shutdown_timeout=0
    )
    a, b = converger.converge([GuestRequest(name, HOST) for name in ("a", "b")])
    assert (a.restarted, a.restart_required, a.running, a.error) == (False, True, False, None)
    assert a.written == ([] if check_mode else ["definition"])
    assert a.warnings[-1] == f"guest a: {LEFT_SAVED}"
    assert any(warning.startswith("guest a: has a managed save image") for warning in a.warnings)
    assert (b.restarted, b.restart_required) == (True, False)
    # Neither started (a start resumes the image) nor discarded.
    assert [call for call in lifecycle(hypervisor) if call[1] == "a"] == []
    assert (hypervisor.guests["a"].saved, hypervisor.guests["a"].live) == (image, None)


@pytest.mark.parametrize("force", [False, True], ids=["without-force", "with-force"])
def test_a_guest_saved_by_another_client_before_its_restart_stays_saved(force: bool) -> None:
    # "Shut off" as ask_shutdown finds it, but its next start resumes the old layout: not the plain shut-off case.
    hypervisor = running("a", "b")
    hypervisor.meanwhile("a", "ask_shutdown", lambda: hypervisor.managed_save("a"))
    a, b = restart(hypervisor, force=force).converge([GuestRequest(name, HOST) for name in ("a", "b")])
    assert (a.written, a.restarted, a.restart_required, a.running, a.error) == (
        ["definition"],
        False,
        True,
        False,
        None,
    )
    assert a.warnings == [
        "guest a: was saved by another client before its restart (virsh managedsave); left saved, neither started "
        "nor its saved state discarded: its next start resumes the saved state, which runs the layout saved with it; "
        "the new layout takes effect when the guest boots after a shutdown. virsh managedsave-remove a discards the "
        "saved state (what runs in it is lost)"
    ]
    assert hypervisor.guests["a"].saved is not None and hypervisor.guests["a"].live is None
    assert ("start", "a") not in lifecycle(hypervisor) and ("destroy", "a") not in lifecycle(hypervisor)
    assert (b.written, b.restarted) == (["definition", "shutdown requested", "started"], True)


def test_a_guest_saved_by_another_client_while_it_shuts_down_is_not_started() -> None:
    hypervisor = running("a")
    # Asked to shut down, it is still going when another client saves it: the batch finds it down.
    hypervisor.guests["a"].ignores_shutdown = True
    hypervisor.meanwhile("a", "is_running", lambda: hypervisor.managed_save("a"))
    (a,) = restart(hypervisor).converge([GuestRequest("a", HOST)])
    assert (a.written, a.restarted, a.restart_required, a.running, a.error) == (
        ["definition", "shutdown requested"],
        False,
        True,
        False,
        None,
    )
    assert a.warnings[0].startswith(
        "guest a: was saved by another client while it shut down for its restart (virsh managedsave); left saved"
    )
    assert lifecycle(hypervisor) == [("ask_shutdown", "a")]
    assert hypervisor.guests["a"].saved is not None


def test_a_restart_asks_once_per_guest_it_brought_down_whether_it_was_saved() -> None:
    # The one read a restart adds: right before each start.  Nothing else in a restart asks about images.
    hypervisor = running(*NAMES)
    restart(hypervisor).converge([GuestRequest(name, HOST) for name in NAMES])
    assert [call.guest for call in hypervisor.called("has_managed_save")] == list(NAMES)
    assert hypervisor.called("managed_save_xml") == []
