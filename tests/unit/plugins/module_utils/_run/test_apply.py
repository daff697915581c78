# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Defining planned guests: refusals, another client's changes, the read-back, and backups."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtDeadlineError
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import BatchError
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import FakeHost, domain_xml
from ansible_collections.vnuma.libvirt.tests.support.full_disk import fill_after
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

TOPOLOGY = host("testdriver-default")
HOST = {"mode": "host"}


def fake(*names: str) -> FakeHost:
    return FakeHost({name: domain_xml(name) for name in names})


def described(text: str) -> Callable[[str], str]:
    """Another client's edit: a new ``<description>``, outside what the collection owns."""

    def edit(xml: str) -> str:
        return re.sub(
            r"(<description>.*</description>\n  )?<memory", f"<description>{text}</description>\n  <memory", xml
        )

    return edit


def test_a_refused_define_leaves_the_others_applied() -> None:
    hypervisor = fake("a", "b", "c")
    hypervisor.fail("b", "define", "defining the guest: unsupported configuration")
    before = hypervisor.guests["b"].xml
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest(name, HOST) for name in ("a", "b", "c")])
    a, b, c = raised.value.results
    assert (a.written, c.written) == (["definition"], ["definition"])
    assert (b.written, b.changed, str(b.error)) == ([], False, "guest b: defining the guest: unsupported configuration")
    assert hypervisor.guests["b"].xml == before
    assert [call.guest for call in hypervisor.called("define")] == ["a", "b", "c"]


def test_a_definition_libvirt_refuses_to_validate_is_reported() -> None:
    # A planned definition whose cells and pins name vCPUs it does not have.
    hypervisor = fake("a")
    converger = Converger(hypervisor, TOPOLOGY)
    planned = converger.plan_all([GuestRequest("a", HOST)])
    item = planned[0]
    assert not isinstance(item, Exception) and item.new_xml is not None
    item.new_xml = item.new_xml.replace("<vcpu>4</vcpu>", "<vcpu>2</vcpu>")
    result = converger.define_one(item)
    assert result.error is not None and "exceed the <vcpu> count 2" in str(result.error)
    assert result.written == [] and not result.changed


def test_a_define_without_an_answer_counts_as_written() -> None:
    hypervisor = fake("a")
    hypervisor.faults[("a", "define")] = LibvirtDeadlineError("defining the guest: no answer within 1 s", guest="a")
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    (a,) = raised.value.results
    assert a.written == ["definition (unconfirmed: no answer within call_timeout)"] and a.changed


def test_a_change_by_another_client_before_the_define_is_kept() -> None:
    hypervisor = fake("a")
    hypervisor.guests["a"].concurrent_edits.append(described("kept"))
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    assert result.written == ["definition"]
    assert "<description>kept</description>" in hypervisor.guests["a"].xml
    assert "<vnuma:vnuma" in hypervisor.guests["a"].xml
    # Read with its state before the define (changed: planned anew), read again (unchanged), asked for a managed
    # save image (shut off: it may have run and been saved meanwhile), defined, read back.
    assert [call.method for call in hypervisor.calls if call.guest == "a"] == [
        "xml_if_defined",
        "running_if_defined",
        "xml_if_defined",
        "running_if_defined",
        "has_managed_save",
        "define",
        "inactive_xml",
    ]


def test_an_owned_part_changed_before_the_define_is_planned_again() -> None:
    hypervisor = fake("a")
    hypervisor.guests["a"].concurrent_edits.append(lambda xml: xml.replace("<vcpu>4</vcpu>", "<vcpu>6</vcpu>"))
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", {"mode": "node", "cells": 2})])
    assert result.layout is not None and result.layout.vcpus == 6
    assert "<cell id='0' cpus='0-2'" in hypervisor.guests["a"].xml


def test_a_definition_that_keeps_changing_is_left_to_the_other_client() -> None:
    hypervisor = fake("a", "b")
    hypervisor.guests["a"].concurrent_edits.extend(described(f"edit {n}") for n in range(1, 10))
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST), GuestRequest("b", HOST)])
    a, b = raised.value.results
    assert str(a.error) == (
        "guest a: its definition changed 3 times while this run planned it (another client is editing it); "
        "nothing was written for it"
    )
    assert a.written == [] and not a.changed
    assert len(hypervisor.called("xml_if_defined", "a")) == 3
    assert hypervisor.called("define", "a") == []
    assert "<description>edit 3</description>" in hypervisor.guests["a"].xml
    assert b.written == ["definition"]


def test_a_guest_undefined_before_its_define_is_reported() -> None:
    hypervisor = fake("a")
    converger = Converger(hypervisor, TOPOLOGY)
    planned = converger.plan_all([GuestRequest("a", HOST)])
    hypervisor.undefine("a")
    item = planned[0]
    assert not isinstance(item, Exception)
    result = converger.define_one(item)
    assert str(result.error) == (
        "guest a: was undefined by another client after this run read it; nothing was written for it"
    )
    assert hypervisor.called("define") == []


def test_a_running_guest_undefined_before_its_define_is_left_transient() -> None:
    # Undefined while it runs, the guest goes on as a transient one whose XML libvirt still gives.
    hypervisor = FakeHost({"a": domain_xml("a"), "b": domain_xml("b")}, running=("a", "b"))
    hypervisor.meanwhile("a", "xml_if_defined", lambda: hypervisor.undefine("a"))
    converger = Converger(hypervisor, TOPOLOGY, restart="if_needed", force=True, shutdown_timeout=0)
    with pytest.raises(BatchError) as raised:
        converger.converge([GuestRequest("a", HOST), GuestRequest("b", HOST)])
    a, b = raised.value.results
    assert str(a.error) == (
        "guest a: was undefined by another client after this run read it; nothing was written for it"
    )
    assert (a.written, a.changed, a.restarted) == ([], False, False)
    guest = hypervisor.guests["a"]
    assert (guest.persistent, guest.live is not None) == (False, True)
    assert [call.method for call in hypervisor.writes() if call.guest == "a"] == []
    assert b.written == ["definition", "shutdown requested", "started"]


@pytest.mark.parametrize("restart", ["never", "if_needed"])
def test_a_guest_started_by_another_client_before_its_define_is_planned_as_running(restart: str) -> None:
    hypervisor = fake("a")
    hypervisor.meanwhile("a", "xml_if_defined", lambda: hypervisor.boot("a"))
    converger = Converger(hypervisor, TOPOLOGY, restart=restart, shutdown_timeout=0)
    (result,) = converger.converge([GuestRequest("a", HOST)])
    assert result.running is True
    if restart == "never":
        # It runs the old layout: its next boot takes the new one.
        assert (result.restart_required, result.restarted, result.written) == (True, False, ["definition"])
    else:
        assert (result.restart_required, result.restarted) == (False, True)
        assert result.written == ["definition", "shutdown requested", "started"]
        assert hypervisor.guests["a"].live == hypervisor.guests["a"].xml


def test_a_guest_shut_off_by_another_client_before_its_define_is_planned_as_shut_off() -> None:
    hypervisor = FakeHost({"a": domain_xml("a")}, running=("a",))
    hypervisor.meanwhile("a", "xml_if_defined", lambda: hypervisor.shut_off("a"))
    converger = Converger(hypervisor, TOPOLOGY, restart="if_needed", shutdown_timeout=0)
    (result,) = converger.converge([GuestRequest("a", HOST)])
    assert (result.running, result.restart_required, result.restarted, result.written) == (
        False,
        False,
        False,
        ["definition"],
    )
    assert [call.method for call in hypervisor.writes()] == ["define"]
    assert hypervisor.guests["a"].live is None


def test_a_guest_started_and_saved_by_another_client_before_its_define_is_planned_as_saved() -> None:
    # Shut off at the plan and at the define, its definition unchanged: only the image says that its next start
    # resumes the old layout.  It used to be reported as needing no restart.
    hypervisor = fake("a")

    def started_and_saved() -> None:
        hypervisor.boot("a")
        hypervisor.managed_save("a")

    hypervisor.meanwhile("a", "xml_if_defined", started_and_saved)
    converger = Converger(hypervisor, TOPOLOGY, restart="if_needed", shutdown_timeout=0)
    (result,) = converger.converge([GuestRequest("a", HOST)])
    assert (result.running, result.restart_required, result.restarted, result.written) == (
        False,
        True,
        False,
        ["definition"],
    )
    assert any(warning.startswith("guest a: has a managed save image") for warning in result.warnings)
    assert [call.method for call in hypervisor.writes()] == ["define"]
    assert hypervisor.guests["a"].saved is not None


def test_the_state_is_read_once_per_define_when_nothing_changed() -> None:
    # The cost of the re-read per defined guest: its definition and its state, one call each (the state is
    # one libvirt call for a shut-off guest, two for a running one: _libvirt.py:LibvirtGuest.running_if_defined),
    # and for a shut-off guest whether it has a managed save image (another client may have started and saved it).
    hypervisor = fake("a")
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    assert [call.method for call in hypervisor.calls if call.guest == "a"] == [
        "xml_if_defined",
        "running_if_defined",
        "has_managed_save",
        "define",
        "inactive_xml",
    ]


def test_a_layout_libvirt_did_not_keep_is_reported_after_the_write() -> None:
    hypervisor = fake("a")
    # libvirt drops what it does not keep: here the <numatune> it was given.
    hypervisor.rewrites["a"] = lambda xml: re.sub(r"<numatune>.*?</numatune>\n\s*", "", xml, flags=re.S)
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    (a,) = raised.value.results
    assert a.written == ["definition"] and a.changed
    assert str(a.error).startswith("guest a: libvirt did not keep the layout as defined (numatune/")
    assert str(a.error).endswith("the definition was saved as libvirt rewrote it")


def test_a_backup_of_the_definition_is_written_before_the_define(tmp_path: Path) -> None:
    hypervisor = fake("a")
    original = hypervisor.guests["a"].xml
    (result,) = Converger(hypervisor, TOPOLOGY, backup_dir=str(tmp_path / "backups")).converge(
        [GuestRequest("a", HOST)]
    )
    assert result.backup_file is not None
    backup = Path(result.backup_file)
    assert backup.parent == tmp_path / "backups" and backup.name.startswith("a.") and backup.suffix == ".xml"
    assert backup.read_text(encoding="utf-8") == original
    assert result.written == [f"backup {backup}", "definition"]
    # The definition was read with its secrets (a VNC password): for its owner only.
    assert (backup.stat().st_mode & 0o777, backup.parent.stat().st_mode & 0o777) == (0o600, 0o700)


def test_no_backup_when_nothing_changes(tmp_path: Path) -> None:
    hypervisor = fake("a")
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOST)])
    (result,) = Converger(hypervisor, TOPOLOGY, backup_dir=str(tmp_path)).converge([GuestRequest("a")])
    assert result.backup_file is None and list(tmp_path.iterdir()) == []


def test_a_backup_that_cannot_be_written_stops_the_define(tmp_path: Path) -> None:
    hypervisor = fake("a")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY, backup_dir=str(blocker)).converge([GuestRequest("a", HOST)])
    (a,) = raised.value.results
    assert str(a.error).startswith(f"guest a: cannot save the backup of its definition as {blocker}/a.")
    assert f": {blocker} is not a directory;" in str(a.error)
    assert a.written == [] and hypervisor.called("define") == []


def test_a_full_backup_directory_stops_the_define_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_after(monkeypatch)
    hypervisor = fake("a", "b")
    hypervisor.guests["a"].xml = described("d" * 20000)(hypervisor.guests["a"].xml)
    before = hypervisor.guests["a"].xml
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY, backup_dir=str(tmp_path)).converge(
            [GuestRequest("a", HOST), GuestRequest("b", HOST)]
        )
    a, b = raised.value.results
    stamp = r"\d{8}T\d{6}\.\d{9}Z"
    assert re.fullmatch(
        rf"guest a: cannot save the backup of its definition as {re.escape(str(tmp_path))}/a\.{stamp}\.xml: "
        r"\[Errno 28\] No space left on device; its definition was left as it was",
        str(a.error),
    )
    # Nothing was written for a, and the run says so; b's backup was small enough and b was defined.
    assert (a.written, a.changed, a.backup_file) == ([], False, None)
    assert hypervisor.guests["a"].xml == before
    assert [call.guest for call in hypervisor.called("define")] == ["b"]
    assert b.written == [f"backup {b.backup_file}", "definition"]
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(str(b.backup_file))]


def test_a_change_outside_what_binds_a_guest_is_not_checked_against_the_whole_host_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each guest planned again (here: another client's description; on libvirt's test driver a guest without a
    # <uuid> gets a new one on each connection) ran the capacity check over the whole host: N checks of N guests.
    from ansible_collections.vnuma.libvirt.plugins.module_utils._run.plan import Planner

    hypervisor = fake("a", "b", "c")
    for name in ("a", "b", "c"):
        hypervisor.guests[name].concurrent_edits.append(described(f"edited {name}"))
    checks = 0
    check = Planner.check_capacity

    def counted(self: Planner, items: Any) -> Any:
        nonlocal checks
        checks += 1
        return check(self, items)

    monkeypatch.setattr(Planner, "check_capacity", counted)
    results = Converger(hypervisor, TOPOLOGY).converge([GuestRequest(name, HOST) for name in ("a", "b", "c")])
    assert [result.written for result in results] == [["definition"]] * 3
    assert all(f"<description>edited {name}</description>" in hypervisor.guests[name].xml for name in "abc")
    assert checks == 1
