# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain's main() against libvirt's in-process test driver (test:///default).

The test driver keeps XML as given and validates structure only, so these tests cover the
module's logic: check mode, diff, idempotence, errors that change nothing, many guests, absent,
backup.  What QEMU itself accepts is covered by tests/integration on a real libvirtd.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._run import restart as restart_phase
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module

FIXTURES = Path(__file__).parents[2] / "fixtures" / "capabilities"
RING = str(FIXTURES / "seed-4node-ring.xml")
GIB = 1024 * 1024  # in KiB


def run(args: dict[str, Any], check_mode: bool = False, diff: bool = False) -> dict[str, Any]:
    return run_module({"uri": "test:///default", **args}, check_mode=check_mode, diff=diff)


def fail(args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return fail_module({"uri": "test:///default", **args}, **kwargs)


@pytest.fixture
def conn() -> Iterator[Any]:
    connection = libvirt.open("test:///default")
    yield connection
    connection.close()


def domain_xml(name: str, vcpus: int = 8, memory_mib: int = 4096, extra: str = "") -> str:
    return (
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>{memory_mib}</memory>"
        f"<vcpu>{vcpus}</vcpu><os><type>hvm</type></os>{extra}"
        "<devices><interface type='network'><source network='default'/></interface></devices></domain>"
    )


@pytest.fixture
def guest(conn: Any) -> Iterator[str]:
    name = f"unit-{uuid.uuid4().hex[:8]}"
    conn.defineXML(domain_xml(name))
    yield name
    for domain in conn.listAllDomains():
        if domain.name().startswith(name):
            domain.undefine()


def inactive(conn: Any, name: str) -> str:
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


@pytest.mark.parametrize("distribution", ["contiguous", "siblings", "round-robin", "interleave"])
def test_four_step_rhythm(conn: Any, guest: str, distribution: str) -> None:
    args = {"name": guest, "host_capabilities": RING, "distribution": distribution}
    before = inactive(conn, guest)
    first = run(args, check_mode=True, diff=True)
    assert first["changed"]
    assert inactive(conn, guest) == before, "check mode must write nothing"
    assert first["diff"]["after"]["cpu/numa/cell[3]/memory"] == 1048576
    assert first["diff"]["before"]["cpu/numa/cell[3]/memory"] is None
    applied = run(args)
    assert applied["changed"]
    assert applied["changes"] == first["changes"]
    assert run(args, check_mode=True)["changed"] is False
    again = run(args)
    assert again["changed"] is False
    assert again["changes"] == []
    assert [cell["host_nodes"] for cell in again["layout"]["cells"]] == ["0", "1", "2", "3"]


def test_options_left_unset_keep_the_stored_spec(conn: Any, guest: str) -> None:
    run({"name": guest, "host_capabilities": RING, "mode": "node", "cells": 2, "pinning": "core"})
    kept = run({"name": guest, "host_capabilities": RING})
    assert kept["changed"] is False
    assert kept["layout"]["pinning"] == "core"
    assert len(kept["layout"]["cells"]) == 2


def test_nothing_outside_the_owned_parts_changes(conn: Any, guest: str) -> None:
    from lxml import etree

    run({"name": guest, "host_capabilities": RING})
    after = etree.fromstring(inactive(conn, guest).encode())
    assert after.find("devices/interface/source").get("network") == "default"
    assert after.find("os/type").text == "hvm"
    assert after.find("cpu/numa") is not None


def test_a_refused_guest_changes_nothing_and_names_guest_value_limit(conn: Any, guest: str) -> None:
    before = inactive(conn, guest)
    result = fail({"name": guest, "host_capabilities": RING, "memory": "64 GiB"})
    assert result["msg"] == f"guest {guest}: guest cell 0 needs 16 GiB, host node 0 has 8 GiB"
    assert result["guest"] == guest
    assert inactive(conn, guest) == before


def test_unknown_guest_and_unreachable_libvirt() -> None:
    assert fail({"name": "no-such-guest"})["msg"] == (
        "guest no-such-guest: no guest named no-such-guest is defined at test:///default"
    )
    result = fail({"name": "x", "uri": "qemu+unix:///system?socket=/nonexistent/sock", "connect_timeout": 0})
    assert result["msg"].startswith("cannot connect to libvirt at qemu+unix:///system?socket=/nonexistent/sock: ")


def test_a_refused_guest_affects_only_itself(conn: Any, guest: str) -> None:
    other = f"{guest}-b"
    conn.defineXML(domain_xml(other, memory_mib=65536))
    before = {name: inactive(conn, name) for name in (guest, other)}
    result = fail({"guests": [f"{guest}*"], "host_capabilities": RING})
    assert result["msg"] == (
        f"guest {other}: guest cell 0 needs 16 GiB, host node 0 has 8 GiB (written before the failure: "
        f"guest {guest}: definition)"
    )
    assert result["guest"] == other
    # The refused guest is unchanged; the other one was planned and applied, and the result says so.
    assert inactive(conn, other) == before[other]
    assert inactive(conn, guest) != before[guest]
    assert result["changed"] is True
    by_name = {item["name"]: item for item in result["guests"]}
    assert by_name[guest]["written"] == ["definition"]
    assert by_name[guest]["error"] is None
    assert by_name[other]["written"] == []
    assert by_name[other]["changed"] is False
    assert by_name[other]["error"] == f"guest {other}: guest cell 0 needs 16 GiB, host node 0 has 8 GiB"

    done = run({"guests": [guest, {"name": other, "memory": "8 GiB"}], "host_capabilities": RING})
    assert [item["name"] for item in done["guests"]] == [guest, other]
    assert [item["changed"] for item in done["guests"]] == [False, True]
    assert done["guests"][1]["layout"]["memory_kib"] == 8 * 1024 * 1024
    excluded = run({"guests": [f"{guest}*"], "exclude": [other], "host_capabilities": RING})
    assert [item["name"] for item in excluded["guests"]] == [guest]


def test_dedicated_pinning_avoids_other_guests_cpus(conn: Any, guest: str) -> None:
    other = f"{guest}-b"
    conn.defineXML(domain_xml(other, vcpus=2, memory_mib=2048))
    run({"name": other, "host_capabilities": RING, "pinning": "thread", "mode": "node", "nodeset": "0"})
    node = {"host_capabilities": RING, "pinning": "thread", "mode": "node", "memory": "4 GiB"}
    placed = run({"name": guest, **node, "nodeset": "0-3"})
    assert placed["layout"]["cells"][0]["pinning"] == "2-3", "host CPUs 0-1 are held by the other guest"
    refused = fail({"name": guest, **node, "nodeset": "0"})
    assert refused["msg"] == (
        f"guest {guest}: pinning thread needs 8 free host threads for guest cell 0 on host node 0, "
        f"2 are free (others are dedicated to {other})"
    )


def test_absent_leaves_a_flat_guest(conn: Any, guest: str) -> None:
    run({"name": guest, "host_capabilities": RING})
    flat = run({"name": guest, "state": "absent"}, diff=True)
    assert flat["changed"]
    xml = inactive(conn, guest)
    assert "<numa>" not in xml and "<numatune>" not in xml and "vnuma" not in xml and "vcpupin" not in xml
    assert run({"name": guest, "state": "absent"})["changed"] is False


def test_backup_saves_the_previous_definition(conn: Any, guest: str, tmp_path: Path) -> None:
    before = inactive(conn, guest)
    result = run({"name": guest, "host_capabilities": RING, "backup": True, "backup_dir": str(tmp_path)})
    assert Path(result["backup_file"]).read_text() == before
    assert (
        run({"name": guest, "host_capabilities": RING, "backup": True, "backup_dir": str(tmp_path)})["backup_file"]
        is None
    )


def test_the_backup_file_is_in_backup_dir_with_dot_dot_resolved(conn: Any, guest: str, tmp_path: Path) -> None:
    # The directory used to be made from the path as given, "stray" included, and backup_file kept "stray/../".
    before = inactive(conn, guest)
    given = f"{tmp_path}/stray/../backups"
    result = run({"name": guest, "host_capabilities": RING, "backup": True, "backup_dir": given})
    assert Path(result["backup_file"]).parent == tmp_path / "backups"
    assert Path(result["backup_file"]).read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["backups"]


def test_running_guest_reports_restart_required(conn: Any, guest: str) -> None:
    conn.lookupByName(guest).create()
    try:
        result = run({"name": guest, "host_capabilities": RING})
        assert result["restart_required"] and result["restart_required_guests"] == [guest]
        # The definition is converged, but the running guest still waits for its new boot.
        pending = run({"name": guest, "host_capabilities": RING})
        assert pending["changed"] is False and pending["restart_required"] is True
        domain = conn.lookupByName(guest)
        domain.destroy()
        domain.create()
        assert run({"name": guest, "host_capabilities": RING})["restart_required"] is False
    finally:
        conn.lookupByName(guest).destroy()


def test_vcpus_beyond_the_maximum_are_refused(conn: Any, guest: str) -> None:
    result = fail({"name": guest, "host_capabilities": RING, "current_vcpus": 9})
    assert result["msg"] == f"guest {guest}: current vcpus 9 is above the maximum of 8 vCPUs"


def test_current_vcpus_sets_a_balanced_boot_set(conn: Any, guest: str) -> None:
    result = run({"name": guest, "host_capabilities": RING, "current_vcpus": 4})
    assert result["layout"]["enable_order"][:4] == [0, 2, 4, 6]
    xml = inactive(conn, guest)
    assert "current='4'" in xml or 'current="4"' in xml


def test_hotplug_memory_needs_max_memory(conn: Any, guest: str) -> None:
    result = fail({"name": guest, "host_capabilities": RING, "hotplug_memory": "1 GiB"})
    assert result["msg"] == f"guest {guest}: memory hotplug needs max_memory and memory_slots in the vnuma spec"


def test_spec_options_agree_everywhere() -> None:
    """The module's argspec, its documentation and the spec name the same options with the same choices."""
    import yaml

    from ansible_collections.vnuma.libvirt.plugins.doc_fragments.spec import ModuleDocFragment
    from ansible_collections.vnuma.libvirt.plugins.module_utils._run.domain import SPEC_OPTION_NAMES

    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(vnuma_domain.SPEC_ARGS) == set(SPEC_OPTION_NAMES) == set(documented)
    for name, argument in vnuma_domain.SPEC_ARGS.items():
        assert argument.get("choices") == documented[name].get("choices"), name
        assert argument["type"] == documented[name]["type"], name


# -- capacity, alignment, restarts together ---------------------------------------------------------


@pytest.fixture
def pair(conn: Any) -> Iterator[tuple[str, str]]:
    """Two guests of 6 GiB that start with the host (so they count), removed (and stopped) afterwards."""
    prefix = f"unit-cap-{uuid.uuid4().hex[:8]}"
    names = (f"{prefix}-a", f"{prefix}-b")
    for name in names:
        conn.defineXML(domain_xml(name, vcpus=2, memory_mib=6144)).setAutostart(1)
    yield names
    for domain in conn.listAllDomains():
        if domain.name().startswith(prefix):
            if domain.isActive():
                domain.destroy()
            domain.undefine()


def test_capacity_refuses_a_plan_that_does_not_fit(conn: Any, pair: tuple[str, str]) -> None:
    first, second = pair
    args = {"guests": list(pair), "host_capabilities": RING, "mode": "node", "nodeset": "1"}
    before = {name: inactive(conn, name) for name in pair}
    problem = (
        f"host node 1: 12 GiB bound, 8 GiB available (8 GiB - 0 reserved): {first} 6 GiB (planned), "
        f"{second} 6 GiB (planned)"
    )
    for check_mode in (True, False):
        result = fail(args, check_mode=check_mode)
        assert result["msg"] == f"the guests do not fit the host (1 problem): {problem}"
        assert result["capacity"]["fits"] is False
        assert result["capacity"]["blocking"] == [problem]
        node = result["capacity"]["nodes"][1]
        assert (node["available_kib"], node["demand_kib"], node["free_after_kib"]) == (8 * GIB, 12 * GIB, -4 * GIB)
        assert [guest["name"] for guest in node["guests"]] == [first, second]
        assert {name: inactive(conn, name) for name in pair} == before, "a refused plan must change nothing"

    # Each alone fits; so does the pair on two nodes.
    assert run({**args, "guests": [first]})["capacity"]["fits"] is True
    spread = run({"guests": [{"name": first, "nodeset": "1"}, {"name": second, "nodeset": "2"}], **_ring_node()})
    assert spread["capacity"]["fits"] is True and spread["capacity"]["problems"] == []


def _ring_node() -> dict[str, Any]:
    return {"host_capabilities": RING, "mode": "node"}


def test_capacity_report_and_ignore_go_ahead(conn: Any, pair: tuple[str, str]) -> None:
    args = {"guests": list(pair), "host_capabilities": RING, "mode": "node", "nodeset": "1"}
    ignored = run({**args, "capacity": "ignore"}, check_mode=True)
    assert ignored["changed"] is True and "capacity" not in ignored and "warnings" not in ignored
    reported = run({**args, "capacity": "report"})
    assert reported["changed"] is True
    assert reported["capacity"]["fits"] is False
    assert reported["warnings"] == [f"capacity: {reported['capacity']['problems'][0]}"]
    # Now defined that way, the pair is what the host runs at boot: a later call on anything fails.
    assert fail({"name": pair[0], "host_capabilities": RING})["msg"].startswith("the guests do not fit the host")


def test_reserved_memory(conn: Any, pair: tuple[str, str]) -> None:
    args = {"name": pair[0], "host_capabilities": RING, "mode": "node", "nodeset": "1"}
    result = fail({**args, "reserved_memory": "3 GiB"})
    assert result["msg"] == (
        "the guests do not fit the host (1 problem): host node 1: 6 GiB bound, 5 GiB available "
        f"(8 GiB - 3 GiB reserved): {pair[0]} 6 GiB (planned)"
    )
    assert result["capacity"]["nodes"][1]["reserved_kib"] == 3 * GIB
    assert run({**args, "reserved_memory": 2 * GIB}, check_mode=True)["capacity"]["fits"] is True
    assert fail({**args, "reserved_memory": "lots"})["msg"] == (
        "reserved_memory: 'lots' is not a size such as '16 GiB' or 524288"
    )


def test_problems_among_other_guests_alone_do_not_block(conn: Any, guest: str) -> None:
    # The test driver's own host has 6 GiB; its running sample guest 'test' is given 8 GiB, unbound.
    result = run({"name": guest, "memory": "1 GiB", "mode": "node", "nodeset": "0"})
    assert result["changed"] is True
    problem = (
        "memory bound to no host node: 8 GiB, 6 GiB the nodes have left after the bound memory: test 8 GiB (running)"
    )
    assert result["capacity"]["problems"] == [problem]
    assert result["capacity"]["blocking"] == []
    assert result["warnings"] == [f"capacity: {problem}"]


def test_alignment_and_locality_before(conn: Any, guest: str) -> None:
    result = run({"name": guest, "host_capabilities": RING})
    # A flat, unpinned guest on the 4-node ring: a quarter of its accesses are local.
    assert result["locality_before"] == 0.25
    alignment = result["alignment"]
    assert alignment["aligned"] is True and alignment["locality"] == 1.0
    assert [cell["memory_nodes"] for cell in alignment["cells"]] == ["0", "1", "2", "3"]
    assert alignment["cells"][0]["cpu_share"] == {"0": 1.0}
    assert result["guests"][0]["alignment"] == alignment
    again = run({"name": guest, "host_capabilities": RING})
    assert again["locality_before"] == 1.0 and again["alignment"] == alignment
    # Each cell's memory on its node while its vCPUs float over the host: neither aligned nor local.
    loose = run({"name": guest, "host_capabilities": RING, "pinning": "none"})
    assert loose["locality_before"] == 1.0
    assert loose["alignment"]["aligned"] is False and loose["alignment"]["locality"] == 0.25
    assert loose["alignment"]["cells"][0]["cpu_share"] == {"0": 0.25, "1": 0.25, "2": 0.25, "3": 0.25}


def test_dedicated_guests_are_planned_first_and_results_keep_the_order(conn: Any, guest: str) -> None:
    other = f"{guest}-b"
    conn.defineXML(domain_xml(other, vcpus=2, memory_mib=2048))
    result = run(
        {
            "guests": [
                {"name": guest, "pinning": "node", "memory": "2 GiB"},
                {"name": other, "pinning": "thread"},
            ],
            "host_capabilities": RING,
            "mode": "node",
            "nodeset": "0",
        }
    )
    assert [item["name"] for item in result["guests"]] == [guest, other]
    assert result["guests"][1]["layout"]["cells"][0]["pinning"] == "0-1"
    assert result["guests"][0]["layout"]["cells"][0]["pinning"] == "2-3", "the node-pinned guest avoids them"
    assert result["capacity"]["dedicated"] == {}, "neither guest counts: both are shut off"


@pytest.fixture
def running_pair(conn: Any, guest: str) -> Iterator[tuple[str, str]]:
    other = f"{guest}-b"
    conn.defineXML(domain_xml(other))
    names = (guest, other)
    for name in names:
        conn.lookupByName(name).create()
    yield names
    for name in names:
        domain = conn.lookupByName(name)
        if domain.isActive():
            domain.destroy()


class _FakeClock:
    """Stands in for the ``time`` module of the restart phase: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def _record(monkeypatch: pytest.MonkeyPatch, *stuck: str) -> list[tuple[str, str]]:
    """Record the restart calls; the ``stuck`` guests ignore the request to shut down, as hung guests would."""
    from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import SHUTDOWN_ASKED, LibvirtGuest

    events: list[tuple[str, str]] = []
    for method in ("ask_shutdown", "destroy", "start"):
        original = getattr(LibvirtGuest, method)

        def recorded(self: LibvirtGuest, _original: Any = original, _method: str = method) -> Any:
            events.append((_method, self.name))
            if _method == "ask_shutdown" and self.name in stuck:
                return SHUTDOWN_ASKED
            return _original(self)

        monkeypatch.setattr(LibvirtGuest, method, recorded)
    return events


def test_guests_restart_together(conn: Any, running_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = running_pair
    events = _record(monkeypatch)
    result = run({"guests": list(running_pair), "host_capabilities": RING, "restart": "if_needed"})
    assert [(item["restarted"], item["restart_required"]) for item in result["guests"]] == [(True, False)] * 2
    assert result["restart_required_guests"] == []
    # Both asked to stop before either starts again: one batch, one deadline.
    assert events == [("ask_shutdown", first), ("ask_shutdown", second), ("start", first), ("start", second)]
    assert all(conn.lookupByName(name).isActive() for name in running_pair)
    assert run({"guests": list(running_pair), "host_capabilities": RING})["restart_required"] is False


def test_a_guest_that_does_not_stop(conn: Any, running_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = running_pair
    args = {"guests": list(running_pair), "host_capabilities": RING, "restart": "if_needed", "shutdown_timeout": 1}
    events = _record(monkeypatch, second)
    result = fail(args)
    assert result["msg"] == (
        f"guest {second}: did not shut down within 1 seconds; set force to power it off (written before the "
        f"failure: guest {first}: definition, shutdown requested, started; guest {second}: definition, shutdown "
        "requested)"
    )
    assert result["changed"] is True
    assert [(item["restarted"], item["restart_required"]) for item in result["guests"]] == [
        (True, False),
        (False, True),
    ]
    # The other one was down already: it is started again, with its new definition.
    assert events == [("ask_shutdown", first), ("ask_shutdown", second), ("start", first)]
    assert conn.lookupByName(first).isActive() and conn.lookupByName(second).isActive()
    events.clear()
    forced = run({**args, "force": True})
    assert [item["restarted"] for item in forced["guests"]] == [False, True]
    assert events == [("ask_shutdown", second), ("destroy", second), ("start", second)]
    assert conn.lookupByName(second).isActive()


def test_one_deadline_for_the_whole_batch(
    conn: Any, running_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = running_pair
    _record(monkeypatch, first, second)
    args = {"guests": list(running_pair), "host_capabilities": RING, "restart": "if_needed", "shutdown_timeout": 1}
    clock = _FakeClock()
    monkeypatch.setattr(restart_phase, "time", clock)
    result = fail(args)
    # The batch's clock, not the wall clock: one deadline for both guests is 1 s of waiting; waiting for
    # one guest after the other would be 2 s.
    assert clock.slept == pytest.approx(1.0), "two guests waited for one after the other"
    assert result["msg"] == (
        f"2 of 2 guests failed: guest {first}: did not shut down within 1 seconds; set force to power it off; "
        f"guest {second}: did not shut down within 1 seconds; set force to power it off (written before the "
        f"failure: guest {first}: definition, shutdown requested; guest {second}: definition, shutdown requested)"
    )
    assert conn.lookupByName(first).isActive() and conn.lookupByName(second).isActive()


def test_a_guests_own_hugepages_count_against_the_pool(conn: Any) -> None:
    # The spec leaves hugepages alone, so the guest's own <hugepages> stay in the definition and its
    # memory comes from the 2 MiB pools (2 GiB per node on this host), not from normal memory.
    name = f"unit-{uuid.uuid4().hex[:8]}"
    backing = "<memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>"
    conn.defineXML(domain_xml(name, vcpus=4, memory_mib=6144, extra=backing)).setAutostart(1)
    try:
        args = {"name": name, "host_capabilities": str(FIXTURES / "intel-2s-smt2.xml"), "mode": "node"}
        result = fail({**args, "nodeset": "0"})
        node = result["capacity"]["nodes"][0]
        assert node["demand_kib"] == 0, "hugepage-backed memory is not taken from normal memory"
        (pool,) = [pool for pool in node["hugepages"] if pool["size_kib"] == 2048]
        assert (pool["pool_kib"], pool["demand_kib"]) == (2 * GIB, 6 * GIB)
        assert result["msg"] == (
            "the guests do not fit the host (1 problem): host node 0: 6 GiB bound in 2 MiB hugepages, "
            f"the pool holds 2 GiB: {name} 6 GiB (planned)"
        )
        spread = run({**args, "nodeset": "0-1", "memory": "4 GiB"}, check_mode=True)
        assert spread["capacity"]["fits"] is True
    finally:
        conn.lookupByName(name).undefine()
