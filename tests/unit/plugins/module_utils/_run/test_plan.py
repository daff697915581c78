# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Planning a batch of guests against an in-memory hypervisor: what is read, what is refused, what is written."""

from __future__ import annotations

from collections import Counter

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import BatchError
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import FakeHost, domain_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

# libvirt's test driver host: 2 nodes of 8 CPUs, 2 and 4 GiB.
TOPOLOGY = host("testdriver-default")
HOST = {"mode": "host"}


def fake(*names: str, running: tuple[str, ...] = ()) -> FakeHost:
    return FakeHost({name: domain_xml(name) for name in names}, running=running)


def converged(*names: str) -> FakeHost:
    """Guests already given their layout by an earlier run."""
    hypervisor = fake(*names)
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest(name, HOST) for name in names])
    hypervisor.calls.clear()
    return hypervisor


def test_the_fake_is_a_host_connection() -> None:
    # mypy checks FakeHost.connection against the Protocol the real adapter satisfies too.
    assert FakeHost().connection().uri == "fake:///vnuma"


def test_check_mode_reads_and_writes_nothing() -> None:
    hypervisor = fake("a", "b", running=("b",))
    before = {name: guest.xml for name, guest in hypervisor.guests.items()}
    results = Converger(hypervisor, TOPOLOGY, check_mode=True, restart="if_needed").converge(
        [GuestRequest("a", HOST), GuestRequest("b", HOST)]
    )
    assert [(result.changed, result.written) for result in results] == [(True, []), (True, [])]
    assert results[1].restarted  # would be restarted
    assert hypervisor.writes() == []
    # Planned from the one listing of the definitions: nothing is read again, nothing defined.
    assert hypervisor.called("xml_if_defined") == []
    assert {name: guest.xml for name, guest in hypervisor.guests.items()} == before


def test_only_the_guests_that_differ_are_defined() -> None:
    hypervisor = converged("a", "b")
    hypervisor.guests["c"] = fake("c").guests["c"]
    hypervisor.guests["c"].host = hypervisor
    results = Converger(hypervisor, TOPOLOGY).converge([GuestRequest(name, HOST) for name in ("a", "b", "c")])
    assert [(result.name, result.changed, result.written) for result in results] == [
        ("a", False, []),
        ("b", False, []),
        ("c", True, ["definition"]),
    ]
    assert [call.guest for call in hypervisor.called("define")] == ["c"]
    # The unchanged guests are not even read again.
    assert [call.guest for call in hypervisor.called("xml_if_defined")] == ["c"]


def test_a_second_run_changes_nothing() -> None:
    hypervisor = converged("a")
    results = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a")])
    assert (results[0].changed, results[0].changes) == (False, [])
    assert hypervisor.writes() == []


def test_a_guest_that_cannot_be_planned_fails_alone() -> None:
    hypervisor = fake("a", "b")
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY).converge(
            [GuestRequest("a", {"mode": "node", "cells": 9}), GuestRequest("b", HOST)]
        )
    a, b = raised.value.results
    assert a.error is not None and a.error.guest == "a" and a.written == []
    assert (b.error, b.written) == (None, ["definition"])
    assert [call.guest for call in hypervisor.called("define")] == ["b"]
    assert "written before the failure: guest b: definition" in str(raised.value)


def test_a_missing_guest_is_reported_by_name() -> None:
    hypervisor = fake("a")
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest("ghost", HOST)])
    assert str(raised.value) == "guest ghost: no guest named ghost is defined at fake:///vnuma"
    assert hypervisor.writes() == []


def test_a_guest_requested_twice_is_refused_before_anything_is_read() -> None:
    hypervisor = fake("a")
    with pytest.raises(SpecError, match="guests a are requested more than once"):
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a"), GuestRequest("a")])
    assert hypervisor.calls == []


def test_a_capacity_refusal_changes_nothing() -> None:
    # Each guest fits alone; together (both start with the host) they bind 3 GiB to node 0, which has 2 GiB:
    # the whole call is refused.
    hypervisor = FakeHost(
        {"a": domain_xml("a", memory_mib=3072), "b": domain_xml("b", memory_mib=3072)}, autostart=("a", "b")
    )
    before = {name: guest.xml for name, guest in hypervisor.guests.items()}
    converger = Converger(hypervisor, TOPOLOGY)
    with pytest.raises(CapacityError):
        converger.converge([GuestRequest("b", HOST), GuestRequest("a", HOST)])
    assert hypervisor.writes() == []
    assert {name: guest.xml for name, guest in hypervisor.guests.items()} == before
    assert converger.capacity_report is not None and converger.capacity_report.blocking


def test_capacity_report_mode_writes_and_reports() -> None:
    hypervisor = FakeHost(
        {"a": domain_xml("a", memory_mib=3072), "b": domain_xml("b", memory_mib=3072)}, autostart=("a", "b")
    )
    converger = Converger(hypervisor, TOPOLOGY, capacity="report")
    results = converger.converge([GuestRequest("a", HOST), GuestRequest("b", HOST)])
    assert [result.written for result in results] == [["definition"], ["definition"]]
    assert converger.capacity_report is not None and converger.capacity_report.blocking


def test_the_stored_spec_is_read_once_per_guest_per_run(spec_reads: Counter[str]) -> None:
    hypervisor = converged("a", "b", "c")
    spec_reads.clear()
    # a unchanged, b changed (pinning), c another guest on the host, counted for capacity.
    hypervisor.guests["c"].start()
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a"), GuestRequest("b", {"pinning": "none"})])
    assert spec_reads == {"a": 1, "b": 1, "c": 1}


def test_the_stored_spec_is_read_once_in_check_mode(spec_reads: Counter[str]) -> None:
    hypervisor = converged("a")
    spec_reads.clear()
    Converger(hypervisor, TOPOLOGY, check_mode=True).converge([GuestRequest("a", {"pinning": "none"})])
    assert spec_reads == {"a": 1}


def test_a_definition_changed_before_the_define_has_its_own_spec_read_once_more(spec_reads: Counter[str]) -> None:
    hypervisor = converged("a")
    spec_reads.clear()
    hypervisor.guests["a"].concurrent_edits.append(lambda xml: xml.replace("<vcpu>4</vcpu>", "<vcpu>6</vcpu>"))
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", {"pinning": "none"})])
    # Once from the listing, once from the definition the other client left: once per definition read.
    assert spec_reads == {"a": 2}


def test_a_stored_spec_that_cannot_be_read_is_replaced_by_the_options_given() -> None:
    hypervisor = converged("a")
    guest = hypervisor.guests["a"]
    guest.xml = guest.xml.replace("mode='host'", "mode='sideways'")
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a")])
    assert "its stored vnuma spec cannot be read" in str(raised.value)
    assert "give the spec's options (at least mode)" in str(raised.value)
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    assert result.written == ["definition"]
    assert any("replaced by the options given" in warning for warning in result.warnings)


def test_state_absent_gives_the_guest_its_definition_back() -> None:
    hypervisor = fake("a")
    original = hypervisor.guests["a"].xml
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", state="absent")])
    assert result.written == ["definition"] and result.layout is None
    assert "vnuma" not in hypervisor.guests["a"].xml
    assert "<numatune>" not in hypervisor.guests["a"].xml and "<vcpu>4</vcpu>" in original


def test_guests_asking_for_dedicated_cpus_are_planned_first() -> None:
    # b floats over its cells' CPUs; a, later in the call, holds whole cores: b must avoid them.
    hypervisor = fake("b", "a")
    results = Converger(hypervisor, TOPOLOGY).converge(
        [GuestRequest("b", HOST), GuestRequest("a", {"mode": "host", "pinning": "core"})]
    )
    b, a = (result.layout for result in results)
    assert a is not None and b is not None and a.vcpu_pins is not None and b.vcpu_pins is not None
    held = {cpu for pin in a.vcpu_pins for cpu in pin}
    assert held and not held & {cpu for pin in b.vcpu_pins for cpu in pin}


def test_fewer_vcpus_than_run_waits_for_the_boot_until_the_guest_restarts() -> None:
    # vCPUs are added live but never taken offline: a lower current count is the next boot's.
    hypervisor = fake("a", running=("a",))
    guest = hypervisor.guests["a"]
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST, current_vcpus=4)])
    guest.destroy()
    guest.start()
    request = GuestRequest("a", HOST, current_vcpus=2)
    (first,) = Converger(hypervisor, TOPOLOGY).converge([request])
    assert first.written == ["definition"] and first.restart_required is True
    # The definition already says 2; the guest still runs 4: the rerun does not forget it.
    (again,) = Converger(hypervisor, TOPOLOGY).converge([request])
    assert (again.changed, again.written, again.restart_required) == (False, [], True)
    (plain,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    assert plain.restart_required is True
    # Once it has booted the definition, nothing waits.
    guest.destroy()
    guest.start()
    (booted,) = Converger(hypervisor, TOPOLOGY).converge([request])
    assert (booted.changed, booted.restart_required) == (False, False)


# -- a shut-off guest with a managed save image (virsh managedsave) --------------------------------------------

ONE_CELL = {"mode": "node", "nodeset": "0", "cells": 1}


def saved_with_one_cell(*others: str) -> FakeHost:
    """Guest ``a`` given one cell, booted with it and saved (virsh managedsave); ``others`` shut off, as defined."""
    hypervisor = fake("a", *others, running=("a",))
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", ONE_CELL)])
    guest = hypervisor.guests["a"]
    guest.destroy()
    guest.start()
    hypervisor.managed_save("a")
    hypervisor.calls.clear()
    return hypervisor


def saved_warning(name: str) -> str:
    return (
        f"guest {name}: has a managed save image (virsh managedsave): its next start resumes the saved state, "
        "which runs the layout saved with it, not this definition; the new layout takes effect when the guest boots "
        f"after a shutdown. virsh managedsave-remove {name} discards the saved state (what runs in it is lost)"
    )


def test_a_saved_guest_is_compared_with_its_managed_save_image() -> None:
    # Its next start resumes the image's one cell, whatever the definition says: a boot is needed.  It used to be
    # planned as an ordinary shut-off guest ("restart_required: false": the next start brings the new layout).
    hypervisor = saved_with_one_cell()
    image = hypervisor.guests["a"].saved
    (plan,) = Converger(hypervisor, TOPOLOGY, check_mode=True).converge([GuestRequest("a", HOST)])
    assert (plan.changed, plan.running, plan.restart_required, plan.restarted) == (True, False, True, False)
    assert plan.warnings == [saved_warning("a")]
    assert hypervisor.writes() == []
    (applied,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    assert (applied.written, applied.restart_required) == (["definition"], True)
    assert applied.warnings == [saved_warning("a")]
    # The definition is as planned, the image still what it was: a rerun writes nothing and still says so.
    (again,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    assert (again.changed, again.written, again.restart_required, again.warnings) == (
        False,
        [],
        True,
        [saved_warning("a")],
    )
    assert hypervisor.guests["a"].saved == image
    # Started, it resumes the image (still pending); booted after a shutdown, it runs the definition.
    guest = hypervisor.guests["a"]
    guest.start()
    assert guest.live == image
    (resumed,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    assert (resumed.running, resumed.restart_required, resumed.warnings) == (True, True, [])
    guest.destroy()
    guest.start()
    (booted,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    assert (booted.changed, booted.restart_required) == (False, False)


def test_a_saved_guest_whose_image_holds_its_layout_needs_no_restart() -> None:
    hypervisor = saved_with_one_cell()
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", ONE_CELL)])
    assert (result.changed, result.restart_required, result.warnings) == (False, False, [])


def test_the_image_is_read_only_for_a_saved_guest_and_listed_once() -> None:
    # One listing of the guests with an image per run; an image is read for a guest that has one, nothing more.
    hypervisor = saved_with_one_cell("b", "c")
    Converger(hypervisor, TOPOLOGY, check_mode=True).converge([GuestRequest(name, HOST) for name in ("a", "b", "c")])
    assert [call.guest for call in hypervisor.called("managed_save_names")] == [""]
    assert [call.guest for call in hypervisor.called("managed_save_xml")] == ["a"]
    assert hypervisor.called("has_managed_save") == []
    # A call whose guests all run lists nothing: none of them can have an image.
    running = fake("r", running=("r",))
    Converger(running, TOPOLOGY, check_mode=True).converge([GuestRequest("r", HOST)])
    assert running.called("managed_save_names") == []


def test_a_saved_guest_whose_image_cannot_be_read_is_judged_by_its_changes() -> None:
    # A driver with managed save but without virDomainManagedSaveGetXMLDesc (libvirt's test driver): what this
    # run changes in the definition is all there is to go by.
    hypervisor = saved_with_one_cell()
    hypervisor.guests["a"].saved_unreadable = True
    (plan,) = Converger(hypervisor, TOPOLOGY, check_mode=True).converge([GuestRequest("a", HOST)])
    assert (plan.restart_required, plan.warnings) == (True, [saved_warning("a")])
    (same,) = Converger(hypervisor, TOPOLOGY, check_mode=True).converge([GuestRequest("a", ONE_CELL)])
    assert (same.changed, same.restart_required, same.warnings) == (False, False, [])


def test_a_guest_saved_by_another_client_before_its_define_is_planned_as_saved() -> None:
    # Planned running; saved (virsh managedsave) before the re-read ahead of its define: planned again as saved.
    hypervisor = fake("a", running=("a",))
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", ONE_CELL)])
    hypervisor.guests["a"].destroy()
    hypervisor.guests["a"].start()
    hypervisor.meanwhile("a", "xml_if_defined", lambda: hypervisor.managed_save("a"))
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    assert (result.written, result.running, result.restart_required) == (["definition"], False, True)
    assert result.warnings == [saved_warning("a")]
    assert len(hypervisor.called("has_managed_save", "a")) == 1


def test_a_guest_whose_plan_failed_is_reported_running_as_it_runs() -> None:
    # Its result said running: false, while the same call's capacity report counted it as running.
    hypervisor = fake("a", "b", running=("a", "b"))
    with pytest.raises(BatchError) as failed:
        Converger(hypervisor, TOPOLOGY, check_mode=True).converge(
            [GuestRequest("a", {"mode": "node", "nodeset": "7"}), GuestRequest("b", HOST)]
        )
    a, b = failed.value.results
    assert a.error is not None and "7" in str(a.error)
    assert (a.running, b.running) == (True, True)
