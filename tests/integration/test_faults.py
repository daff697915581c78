# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fault injection: libvirtd killed (SIGKILL) or stopped (SIGSTOP) at chosen points of a run.

Everything runs against a private libvirtd (tests/support/private_libvirtd.py), never the shared one.
The point is chosen by wrapping the real ``LibvirtHost``/``LibvirtGuest`` method that the run calls
there, so the daemon dies at exactly that call; everything else is real.  After each fault the daemon
is started again and the tests check that the failed run told what it wrote, that a rerun converges
(changed, then a third run changed: false), and that nothing a user had in the definitions is lost.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtGuest, LibvirtHost
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module

# The reference for "everything outside the owned parts is unchanged" of the XML layer's tests.
from ansible_collections.vnuma.libvirt.tests.support.preservation import without_owned_parts
from ansible_collections.vnuma.libvirt.tests.support.private_libvirtd import PrivateLibvirtd, user_domain_xml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests" / "integration" / "playbooks" / "faults" / "fleet.yml"
SPEC = {"mode": "node", "nodeset": "0", "cells": 2}
# The collection's own <metadata> children (the spec, the record of the parts as they were).
COLLECTION_NS = "urn:vnuma:libvirt"
# A stopped daemon: keepalive closes the connection after 2 s (call_timeout 3 s, see _libvirt._keepalive).
CALL_TIMEOUT = 3


def users_parts(xml: str) -> str:
    """A definition less what the collection owns: what a user had must come out of every run as it was."""
    root = copy.deepcopy(parse_xml(xml, "domain XML", root_tag="domain"))
    metadata = root.find("metadata")
    if metadata is not None:
        for child in list(metadata):
            if isinstance(child.tag, str) and child.tag.startswith("{" + COLLECTION_NS):
                metadata.remove(child)
    return without_owned_parts(root)


def cells(xml: str) -> int:
    return len(parse_xml(xml, "domain XML", root_tag="domain").findall("cpu/numa/cell"))


def definitions(uri: str, names: list[str]) -> dict[str, str]:
    conn = libvirt.open(uri)
    try:
        return {name: conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for name in names}
    finally:
        conn.close()


def make_guests(daemon: PrivateLibvirtd, count: int, start: bool) -> list[str]:
    names = [f"{daemon.guest_prefix()}-{index}" for index in range(count)]
    conn = libvirt.open(daemon.uri)
    try:
        for name in names:
            domain = conn.defineXML(user_domain_xml(name))
            if start:
                domain.create()
    finally:
        conn.close()
    return names


def inject(
    monkeypatch: pytest.MonkeyPatch, cls: type, method: str, nth: int, after: bool, fault: Callable[[], None]
) -> list[str]:
    """Run ``fault`` right before (or after) the ``nth`` call of ``cls.method``; the calls, by guest."""
    real = getattr(cls, method)
    calls: list[str] = []

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(self, "name", kwargs.get("guest", "")))
        if len(calls) == nth and not after:
            fault()
        result = real(self, *args, **kwargs)
        if len(calls) == nth and after:
            fault()
        return result

    monkeypatch.setattr(cls, method, wrapper)
    return calls


UNCONFIRMED = "definition (unconfirmed: no answer within call_timeout)"

# point -> (class, method, nth call, fault after the call rather than before, guests running)
POINTS = {
    "before-the-first-define": (LibvirtHost, "define", 1, False, False),
    "between-two-defines": (LibvirtHost, "define", 2, False, False),
    "right-after-a-define": (LibvirtHost, "define", 1, True, False),
    "during-the-restarts": (LibvirtGuest, "ask_shutdown", 1, False, True),
}


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGSTOP"])
@pytest.mark.parametrize("point", list(POINTS))
def test_a_batch_survives_libvirtd_dying(
    private_libvirtd: PrivateLibvirtd, monkeypatch: pytest.MonkeyPatch, point: str, signal_name: str
) -> None:
    cls, method, nth, after, running = POINTS[point]
    daemon = private_libvirtd
    names = make_guests(daemon, 2, start=running)
    before = {name: users_parts(xml) for name, xml in definitions(daemon.uri, names).items()}
    args: dict[str, Any] = {"uri": daemon.uri, "guests": names, "connect_timeout": 0, **SPEC}
    if running:
        args.update(restart="if_needed", force=True, shutdown_timeout=1)

    calls = inject(monkeypatch, cls, method, nth, after, daemon.kill if signal_name == "SIGKILL" else daemon.stop)
    # A short deadline for the stopped daemon; the reruns keep the default (a guest start on a busy
    # machine can take seconds).
    failed = fail_module({**args, "call_timeout": CALL_TIMEOUT})
    monkeypatch.undo()
    assert len(calls) >= nth, f"the run never reached call {nth} of {method}: {calls}"

    # What the failed run says it wrote.
    written = {guest["name"]: guest["written"] for guest in failed["guests"]}
    errors = {guest["name"]: guest["error"] for guest in failed["guests"]}
    assert set(written) == set(names), failed
    assert all(errors.values()) or point == "between-two-defines", failed
    first, second = names
    # A define sent to a stopped daemon got no answer: libvirtd may still carry it out when it wakes up,
    # so it is reported as written, unconfirmed; a killed daemon refused it outright.
    sent = [UNCONFIRMED] if signal_name == "SIGSTOP" else []
    if point == "before-the-first-define":
        assert failed["changed"] is bool(sent), failed
        assert written == {first: sent, second: []}
    elif point == "between-two-defines":
        assert failed["changed"] is True, failed
        assert written == {first: ["definition"], second: sent}
        assert errors[first] is None and errors[second], failed
    elif point == "right-after-a-define":
        assert failed["changed"] is True, failed
        assert written[first] == ["definition"] and written[second] == []
    else:
        assert failed["changed"] is True, failed
        assert written == {first: ["definition"], second: ["definition"]}
    # Every connection error names the URI; a stopped daemon's, the call and the deadline.
    assert daemon.uri in failed["msg"], failed["msg"]
    if signal_name == "SIGSTOP":
        assert f"no answer within {CALL_TIMEOUT} s (call_timeout)" in failed["msg"], failed["msg"]

    daemon.restart()
    after_fault = definitions(daemon.uri, names)
    assert {name: users_parts(xml) for name, xml in after_fault.items()} == before, "a user's part was lost"

    rerun = run_module(args)
    assert rerun["changed"] is True, rerun
    third = run_module(args)
    assert third["changed"] is False, third
    final = definitions(daemon.uri, names)
    assert {name: users_parts(xml) for name, xml in final.items()} == before, "a user's part was lost"
    assert {name: cells(xml) for name, xml in final.items()} == dict.fromkeys(names, 2)
    if running:
        assert third["restart_required_guests"] == []
        assert sorted(daemon.qemu_pids()) and len(daemon.qemu_pids()) == 2


# -- the role ----------------------------------------------------------------------------------------


def run_fleet(daemon: PrivateLibvirtd, report_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The role on the daemon's guests (tests/integration/playbooks/faults/fleet.yml); its report is read back."""
    extra = {"fault_uri": daemon.uri, "fault_prefix": daemon.guest_prefix(), "fault_report_dir": str(report_dir)}
    return subprocess.run(
        [str(ROOT / "scripts" / "playbook.sh"), str(PLAYBOOK), "--extra-vars", json.dumps(extra)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def report(report_dir: Path) -> dict[str, Any]:
    return json.loads((report_dir / "localhost.json").read_text())


def test_a_role_run_survives_libvirtd_killed_between_apply_and_restart(
    private_libvirtd: PrivateLibvirtd, tmp_path: Path
) -> None:
    daemon = private_libvirtd
    names = make_guests(daemon, 2, start=True)
    before = {name: users_parts(xml) for name, xml in definitions(daemon.uri, names).items()}
    marker = tmp_path / "killed"
    fault = {
        "ANSIBLE_CALLBACKS_ENABLED": "vnuma_fault",
        "VNUMA_FAULT_AFTER_TASK": "Apply | Apply every layout in one call",
        "VNUMA_FAULT_PID": str(daemon.pid),
        "VNUMA_FAULT_MARKER": str(marker),
    }
    faulty = run_fleet(daemon, tmp_path / "fault", fault)
    assert faulty.returncode != 0, faulty.stdout
    assert marker.read_text().endswith("Apply | Apply every layout in one call"), faulty.stdout
    failed = report(tmp_path / "fault")
    assert failed["status"] == "failed"
    assert failed["failure"]["step"] == "restart"
    assert failed["failure"]["msg"].startswith(f"cannot connect to libvirt at {daemon.uri}: "), failed["failure"]
    # The apply went through before the kill: the report says which guests changed.
    assert sorted(row["name"] for row in failed["guests"] if row["changed"]) == names

    daemon.start_daemon()
    assert {name: users_parts(xml) for name, xml in definitions(daemon.uri, names).items()} == before

    rerun = run_fleet(daemon, tmp_path / "rerun", {})
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    converged = report(tmp_path / "rerun")
    # The definitions were written by the failed run: the rerun has the restarts left to do.
    assert converged["status"] != "failed" and converged["verify"]["ok"], converged
    assert (converged["counts"]["restarted"], converged["restart_required"]) == (2, []), converged["counts"]
    # Converged: what the role asks for changes nothing any more (the module, with the role's requests:
    # a third role run would take as long as the other two for the same answer).
    third = run_module({"uri": daemon.uri, "guests": names, **SPEC, "restart": "if_needed"})
    assert (third["changed"], third["restart_required_guests"]) == (False, [])
    final = definitions(daemon.uri, names)
    assert {name: users_parts(xml) for name, xml in final.items()} == before, "a user's part was lost"
    assert {name: cells(xml) for name, xml in final.items()} == dict.fromkeys(names, 2)
