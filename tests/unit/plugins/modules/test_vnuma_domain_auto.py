# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain with mode auto against libvirt's test driver and the 4-node ring host (8 GiB a node).

The choice in check mode and diff, the guests of one call placed one after the other, the choice
stored with the spec and kept by a rerun whatever the load, replan, and refusals that change nothing.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import VNUMA_NS
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module

RING = str(Path(__file__).parents[2] / "fixtures" / "capabilities" / "seed-4node-ring.xml")
GIB = 1024 * 1024  # in KiB


def run(args: dict[str, Any], check_mode: bool = False, diff: bool = False) -> dict[str, Any]:
    return run_module({"uri": "test:///default", "host_capabilities": RING, **args}, check_mode=check_mode, diff=diff)


def fail(args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    return fail_module({"uri": "test:///default", "host_capabilities": RING, **args}, check_mode=check_mode)


@pytest.fixture
def conn() -> Iterator[Any]:
    connection = libvirt.open("test:///default")
    yield connection
    connection.close()


@pytest.fixture
def guests(conn: Any) -> Iterator[list[str]]:
    """Five shut-off guests of 4 vCPUs and 6 GiB."""
    prefix = f"auto-{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{index}" for index in range(5)]
    for name in names:
        conn.defineXML(
            f"<domain type='test'><name>{name}</name><memory unit='GiB'>6</memory><vcpu>4</vcpu>"
            "<os><type>hvm</type></os></domain>"
        )
    yield names
    for domain in conn.listAllDomains():
        if domain.name().startswith(prefix):
            domain.undefine()


def inactive(conn: Any, name: str) -> str:
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def nodes_of(result: dict[str, Any]) -> list[str]:
    return [guest["auto"]["nodes"] for guest in result["guests"]]


def test_a_call_places_its_guests_one_after_the_other_and_a_rerun_keeps_them(conn: Any, guests: list[str]) -> None:
    four = guests[:4]
    args = {"guests": four, "mode": "auto"}
    before = {name: inactive(conn, name) for name in four}
    planned = run(args, check_mode=True, diff=True)
    assert {name: inactive(conn, name) for name in four} == before, "check mode must write nothing"
    # Each guest sees the ones planned before it in the call: one node each, the least loaded first.
    assert nodes_of(planned) == ["0", "1", "2", "3"]
    assert [guest["auto"]["how"] for guest in planned["guests"]] == ["chosen"] * 4
    first = planned["guests"][0]
    assert first["auto"]["why"].startswith("host node 0 holds the guest (6 GiB) alone")
    assert first["layout"]["cells"][0]["memory_nodes"] == "0"
    # The diff shows the choice, stored with the spec.
    assert "mode=auto" in planned["diff"]["after"][four[1]]["metadata/vnuma"]
    assert "nodeset=1 " in planned["diff"]["after"][four[1]]["metadata/vnuma"]
    assert planned["capacity"]["fits"] is True

    applied = run(args)
    assert applied["changed"] is True and nodes_of(applied) == nodes_of(planned)
    stored = ET.fromstring(inactive(conn, four[2])).find(f"metadata/{{{VNUMA_NS}}}vnuma")
    assert stored is not None and stored.get("mode") == "auto"
    assert stored.find(f"{{{VNUMA_NS}}}partition").get("nodeset") == "2"

    # The four now start with the host: they count.  A rerun keeps every choice and changes nothing.
    for name in four:
        conn.lookupByName(name).setAutostart(1)
    again = run(args)
    assert again["changed"] is False
    assert nodes_of(again) == ["0", "1", "2", "3"]
    assert [guest["auto"]["how"] for guest in again["guests"]] == ["kept"] * 4
    kept = {room["id"]: room for room in again["guests"][0]["auto"]["nodes_left"]}
    # Node 0 holds the guest itself: the others commit nothing there.
    assert (kept[0]["committed_kib"], kept[0]["planned_kib"]) == (0, 6 * GIB)
    assert kept[1]["committed_kib"] == 6 * GIB


def test_the_stored_choice_stays_when_the_load_changes_and_replan_chooses_again(conn: Any, guests: list[str]) -> None:
    first, crowd = guests[0], guests[1]
    assert run({"name": first, "mode": "auto"})["auto"]["nodes"] == "0"
    # Another guest is put on node 0 by hand, and starts with the host: node 0 is full now.
    run({"name": crowd, "mode": "node", "nodeset": "0", "memory": "2 GiB"})
    conn.lookupByName(crowd).setAutostart(1)
    kept = run({"name": first, "mode": "auto", "capacity": "report"})
    assert kept["changed"] is False
    assert kept["auto"]["nodes"] == "0" and kept["auto"]["how"] == "kept"
    assert kept["auto"]["why"] == "host node 0 stored with the spec by an earlier run: kept (replan chooses again)"
    # replan chooses from the load now, in check mode first.
    before = inactive(conn, first)
    moved = run({"name": first, "mode": "auto", "replan": True}, check_mode=True, diff=True)
    assert inactive(conn, first) == before
    assert moved["changed"] is True and moved["auto"]["nodes"] == "1" and moved["auto"]["how"] == "chosen"
    assert moved["diff"]["before"]["numatune/memnode[0]/nodeset"] == "0"
    assert moved["diff"]["after"]["numatune/memnode[0]/nodeset"] == "1"
    assert run({"name": first, "mode": "auto", "replan": True})["auto"]["nodes"] == "1"
    assert run({"name": first, "mode": "auto"})["changed"] is False


def test_a_guest_that_fits_nowhere_is_refused_and_nothing_changes(conn: Any, guests: list[str]) -> None:
    run({"guests": guests[:4], "mode": "auto"})
    for name in guests[:4]:
        conn.lookupByName(name).setAutostart(1)
    last = guests[4]
    before = inactive(conn, last)
    for check_mode in (True, False):
        result = fail({"name": last, "mode": "auto", "memory": "10 GiB"}, check_mode=check_mode)
        assert result["msg"] == (
            f"guest {last}: mode auto finds no host nodes that hold the guest: it needs 10 GiB; the most any set of "
            "host nodes with CPUs offers (split evenly) is 8 GiB, on host nodes 0-3; free: node 0: 2 GiB, "
            "node 1: 2 GiB, node 2: 2 GiB, node 3: 2 GiB; guests bound to no host node use 8 GiB of that, leaving 0"
        )
        assert result["changed"] is False
        assert inactive(conn, last) == before
    # The test driver's own running guest "test" holds 8 GiB bound to no node: the 8 GiB the four leave
    # over three nodes are taken, so the guest's own 6 GiB do not fit either (the capacity check would
    # refuse them after the choice).
    result = fail({"name": last, "mode": "auto"}, check_mode=True)
    assert result["msg"].endswith("guests bound to no host node use 8 GiB of that, leaving 0")
    assert inactive(conn, last) == before


def test_a_nodeset_with_mode_auto_is_refused(conn: Any, guests: list[str]) -> None:
    before = inactive(conn, guests[0])
    result = fail({"name": guests[0], "mode": "auto", "nodeset": "1"})
    # The one message of _core/auto.py:nodeset_refusal, as the vnuma_auto_nodes filter words it too.
    assert result["msg"] == (
        f"guest {guests[0]}: nodeset '1' is what mode auto chooses; leave it out, or use mode node to name the host "
        "nodes"
    )
    assert inactive(conn, guests[0]) == before


def test_other_modes_report_no_choice(conn: Any, guests: list[str]) -> None:
    result = run({"name": guests[0], "mode": "node", "nodeset": "2"}, check_mode=True)
    assert result["auto"] is None and result["guests"][0]["auto"] is None


def test_a_changed_request_is_chosen_again_and_the_result_says_why(conn: Any, guests: list[str]) -> None:
    name = guests[0]
    assert run({"name": name, "mode": "auto"})["auto"]["nodes"] == "0"
    assert run({"name": name, "mode": "auto"})["auto"]["how"] == "kept"
    # 10 GiB: the stored node 0 was chosen for 6 GiB and holds 8; kept, the capacity check would refuse it.
    before = inactive(conn, name)
    grown = run({"name": name, "mode": "auto", "memory": "10 GiB"}, check_mode=True)
    assert inactive(conn, name) == before
    assert grown["auto"]["how"] == "chosen" and grown["auto"]["nodes"] == "0-1", grown["auto"]
    assert grown["auto"]["why"].startswith(
        "the request changed since host node 0 was chosen (memory 6 GiB -> 10 GiB): chosen again; no single host "
        "node holds it"
    ), grown["auto"]["why"]
    assert run({"name": name, "mode": "auto", "memory": "10 GiB"})["auto"]["nodes"] == "0-1"
    # Stored with the new request: the next run keeps it.
    again = run({"name": name, "mode": "auto", "memory": "10 GiB"})
    assert again["changed"] is False and again["auto"]["how"] == "kept"
    # Pinning and hugepages are part of the request too.
    pinned = run({"name": name, "mode": "auto", "memory": "10 GiB", "pinning": "core"}, check_mode=True)
    assert pinned["auto"]["how"] == "chosen"
    assert pinned["auto"]["why"].startswith(
        "the request changed since host nodes 0-1 were chosen (pinning node -> core): chosen again; "
    ), pinned["auto"]["why"]


def test_a_call_of_many_auto_guests_checks_the_host_once(
    conn: Any, guests: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's capacity is checked once for the call's mode auto guests, then updated as each is placed."""
    from ansible_collections.vnuma.libvirt.plugins.module_utils._run import auto as run_auto

    prefix = guests[0].rsplit("-", 1)[0]
    many = [f"{prefix}-small{index}" for index in range(12)]
    for guest in many:
        conn.defineXML(
            f"<domain type='test'><name>{guest}</name><memory unit='MiB'>1024</memory><vcpu>2</vcpu>"
            "<os><type>hvm</type></os></domain>"
        )
    checks: list[int] = []
    real = run_auto.check_capacity

    def counted(*args: Any, **kwargs: Any) -> Any:
        checks.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(run_auto, "check_capacity", counted)
    result = run({"guests": many, "mode": "auto"}, check_mode=True)
    assert len(checks) == 1, f"the host was checked {len(checks)} times for {len(many)} guests"
    # Each guest still saw the ones placed before it: the least loaded node each time, round the ring.
    assert nodes_of(result) == ["0", "1", "2", "3"] * 3
    left = {room["id"]: room for room in result["guests"][-1]["auto"]["nodes_left"]}
    assert [left[node]["committed_kib"] for node in range(4)] == [3 * GIB, 3 * GIB, 3 * GIB, 2 * GIB]
