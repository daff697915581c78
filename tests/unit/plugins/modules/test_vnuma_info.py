# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_info's main() against libvirt's in-process test driver (test:///default).

The test driver keeps guest XML as given, so hand-written layouts reach the module exactly as
written.  Its own host (2 nodes, no distances) is replaced by a fixture with ``host_capabilities``
where the test needs the cover letter's 4-node ring.  What libvirt's QEMU driver makes of such
guests, and the figures of a real host, are covered by tests/integration/test_vnuma_info.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain, vnuma_info
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module

RING = str(CAPABILITIES / "seed-4node-ring.xml")
TEST_DRIVER_HOST = str(CAPABILITIES / "testdriver-default.xml")
GIB = 1024 * 1024


def info(args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    return run_module({"uri": "test:///default", **args}, check_mode=check_mode, module=vnuma_info)


def info_fails(args: dict[str, Any]) -> dict[str, Any]:
    return fail_module({"uri": "test:///default", **args}, module=vnuma_info)


def domain_xml(
    name: str, vcpus: int = 4, memory_mib: int = 4096, extra: str = "", domain_uuid: str = "", cpuset: str = ""
) -> str:
    uuid_xml = f"<uuid>{domain_uuid}</uuid>" if domain_uuid else ""
    cpuset_xml = f" cpuset='{cpuset}'" if cpuset else ""
    return (
        f"<domain type='test'><name>{name}</name>{uuid_xml}<memory unit='MiB'>{memory_mib}</memory>"
        f"<vcpu{cpuset_xml}>{vcpus}</vcpu><os><type>hvm</type></os>{extra}</domain>"
    )


# Two cells of the ring's nodes 0 and 1, each pinned to its node's CPUs and bound to its memory.
ALIGNED = (
    "<cputune>"
    "<vcpupin vcpu='0' cpuset='0-3'/><vcpupin vcpu='1' cpuset='0-3'/>"
    "<vcpupin vcpu='2' cpuset='4-7'/><vcpupin vcpu='3' cpuset='4-7'/>"
    "</cputune>"
    "<numatune><memory mode='strict' nodeset='0-1'/>"
    "<memnode cellid='0' mode='strict' nodeset='0'/><memnode cellid='1' mode='strict' nodeset='1'/></numatune>"
    "<cpu><numa><cell id='0' cpus='0-1' memory='2' unit='GiB'/><cell id='1' cpus='2-3' memory='2' unit='GiB'/>"
    "</numa></cpu>"
)
# vCPUs on node 0 (with <vcpu cpuset='0-3'>), memory on node 2: nothing local.
MISALIGNED = (
    "<numatune><memory mode='strict' nodeset='2'/></numatune>"
    "<cpu><numa><cell id='0' cpus='0-3' memory='4' unit='GiB'/></numa></cpu>"
)


class Guests:
    """Defines guests named ``<prefix>-<suffix>`` on the test driver and undefines them all at the end."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.prefix = f"info-{uuid.uuid4().hex[:8]}"

    def define(self, suffix: str, extra: str = "", vcpus: int = 4, memory_mib: int = 4096, cpuset: str = "") -> str:
        name = f"{self.prefix}-{suffix}"
        self.conn.defineXML(domain_xml(name, vcpus, memory_mib, extra, cpuset=cpuset))
        return name

    def inactive(self) -> dict[str, str]:
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE
        return {
            dom.name(): dom.XMLDesc(flags) for dom in self.conn.listAllDomains() if dom.name().startswith(self.prefix)
        }

    def cleanup(self) -> None:
        for dom in self.conn.listAllDomains():
            if dom.name().startswith(self.prefix):
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefine()


@pytest.fixture
def conn() -> Iterator[Any]:
    connection = libvirt.open("test:///default")
    yield connection
    connection.close()


@pytest.fixture
def guests(conn: Any) -> Iterator[Guests]:
    made = Guests(conn)
    try:
        yield made
    finally:
        made.cleanup()


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {guest["name"]: guest for guest in result["guests"]}


def test_the_connections_own_host_with_free_memory() -> None:
    result = info({"guests": ["no-such-guest-*"]})
    assert result["changed"] is False
    host = result["host"]
    assert [node["cpus"] for node in host["nodes"]] == ["0-7", "8-15"]
    # The test driver reports each cell's size as its free memory (in KiB, where the API says bytes).
    assert [node["free_kib"] for node in host["nodes"]] == [2 * GIB, 4 * GIB]
    assert host["free_kib"] == 6 * GIB
    # It has no hugepage counters at all: null, never a made-up zero.
    assert all(pool["free"] is None for node in host["nodes"] for pool in node["hugepages"])
    assert host["distances_reported"] is False
    assert (result["guests"], result["guest_count"], result["aligned_count"]) == ([], 0, 0)
    assert result["diagram"] == "\n".join(result["diagram_lines"])
    assert "memory 2 GiB, free 2 GiB" in result["diagram"]


def test_free_memory_only_when_the_given_host_has_the_connections_nodes() -> None:
    same = info({"host_capabilities": TEST_DRIVER_HOST, "guests": ["no-such-guest-*"]})
    assert [node["free_kib"] for node in same["host"]["nodes"]] == [2 * GIB, 4 * GIB]
    other = info({"host_capabilities": RING, "guests": ["no-such-guest-*"]})
    assert [node["cpus"] for node in other["host"]["nodes"]] == ["0-3", "4-7", "8-11", "12-15"]
    assert [node["free_kib"] for node in other["host"]["nodes"]] == [None] * 4
    assert other["host"]["free_kib"] is None


def test_layouts_and_alignment_of_hand_written_and_converted_guests(guests: Guests) -> None:
    aligned = guests.define("aligned", ALIGNED)
    misaligned = guests.define("misaligned", MISALIGNED, cpuset="0-3")
    plain = guests.define("plain", vcpus=2, memory_mib=2048)
    converted = guests.define("converted", vcpus=8, memory_mib=8192)
    run_module({"uri": "test:///default", "name": converted, "host_capabilities": RING}, module=vnuma_domain)
    before = guests.inactive()

    result = info({"host_capabilities": RING, "guests": [f"{guests.prefix}-*"]})

    assert guests.inactive() == before, "vnuma_info must change nothing"
    assert [guest["name"] for guest in result["guests"]] == sorted([aligned, misaligned, plain, converted])
    assert (result["guest_count"], result["aligned_count"]) == (4, 2)
    found = by_name(result)

    hand = found[aligned]
    assert (hand["state"], hand["running"], hand["autostart"], hand["source"]) == ("shutoff", False, False, "inactive")
    assert (hand["vcpus"], hand["current_vcpus"], hand["memory_kib"]) == (4, 4, 4 * GIB)
    assert hand["spec"] is None, "hand-written NUMA has no stored spec"
    assert hand["layout"]["numa"] is True and hand["layout"]["pinning"] is True
    assert [(cell["vcpus"], cell["memory_nodes"], cell["cpu_nodes"]) for cell in hand["layout"]["cells"]] == [
        ("0-1", "0", "0"),
        ("2-3", "1", "1"),
    ]
    assert hand["alignment"] == {
        "aligned": True,
        "locality": 1.0,
        "cells": [
            {"id": 0, "aligned": True, "locality": 1.0, "cpu_nodes": "0", "memory_nodes": "0"},
            {"id": 1, "aligned": True, "locality": 1.0, "cpu_nodes": "1", "memory_nodes": "1"},
        ],
    }
    assert hand["defined_alignment"] == hand["alignment"]
    assert (hand["pending"], hand["pending_changes"]) == (False, [])

    wrong = found[misaligned]
    assert wrong["alignment"]["aligned"] is False
    assert wrong["alignment"]["locality"] == 0.0
    assert wrong["alignment"]["cells"][0] == {
        "id": 0,
        "aligned": False,
        "locality": 0.0,
        "cpu_nodes": "0",
        "memory_nodes": "2",
    }
    assert wrong["layout"]["pinning"] is True, "<vcpu cpuset> confines the vCPUs"

    # Neither NUMA nor pins: one cell, its vCPUs and memory spread over the ring's four nodes.
    loose = found[plain]
    assert loose["layout"]["numa"] is False and loose["layout"]["pinning"] is False
    assert loose["layout"]["cells"][0]["memory_share_kib"] == {
        "0": GIB // 2,
        "1": GIB // 2,
        "2": GIB // 2,
        "3": GIB // 2,
    }
    assert loose["alignment"]["cells"][0]["memory_nodes"] is None
    assert (loose["alignment"]["aligned"], loose["alignment"]["locality"]) == (False, 0.25)

    # Converted by vnuma_domain: its stored spec under the option names, one aligned cell per ring node.
    done = found[converted]
    assert done["spec"]["mode"] == "host" and done["spec"]["pinning"] == "node"
    assert set(done["spec"]) >= {"mode", "distribution", "memory", "nodeset", "cells", "hugepages"}
    assert [cell["cpu_nodes"] for cell in done["alignment"]["cells"]] == ["0", "1", "2", "3"]
    assert (done["alignment"]["aligned"], done["alignment"]["locality"]) == (True, 1.0)
    assert done["dedicated_cpus"] == "", "pinning: node holds no CPU for itself"

    lines = result["diagram_lines"]
    assert any(line.split()[:2] == [aligned, "shutoff"] for line in lines)


def test_single_cpu_pins_are_dedicated_cpus(guests: Guests) -> None:
    name = guests.define("pinned", "<cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='3'/></cputune>", 2)
    converted = guests.define("core", vcpus=2, memory_mib=2048)
    args = {"name": converted, "host_capabilities": RING, "mode": "node", "nodeset": "1", "pinning": "thread"}
    run_module({"uri": "test:///default", **args}, module=vnuma_domain)
    found = by_name(info({"host_capabilities": RING, "guests": [f"{guests.prefix}-*"]}))
    assert found[name]["dedicated_cpus"] == "2-3"
    assert found[converted]["dedicated_cpus"] == "4-5"


def test_a_broken_stored_spec_is_reported_not_fatal(guests: Guests) -> None:
    metadata = "<metadata><vnuma:vnuma xmlns:vnuma='urn:vnuma:libvirt:1.0' mode='sideways'/></metadata>"
    broken = guests.define("broken", metadata)
    fine = guests.define("fine", ALIGNED)
    found = by_name(info({"host_capabilities": RING, "guests": [f"{guests.prefix}-*"]}))
    assert found[broken]["spec"] is None
    assert found[broken]["spec_error"].startswith(f"guest {broken}: ")
    assert "sideways" in found[broken]["spec_error"]
    assert found[broken]["dedicated_cpus"] is None
    assert found[fine]["spec_error"] is None


def test_selection_by_pattern_exclude_and_state(conn: Any, guests: Guests) -> None:
    names = [guests.define(suffix, vcpus=1, memory_mib=256) for suffix in ("web1", "web2", "db1")]
    conn.lookupByName(names[1]).create()
    conn.lookupByName(names[2]).setAutostart(1)

    def selected(**args: Any) -> list[str]:
        return [guest["name"] for guest in info(args)["guests"]]

    assert selected(guests=[f"{guests.prefix}-*"]) == sorted(names)
    assert selected(guests=[f"{guests.prefix}-web*"]) == names[:2]
    assert selected(guests=[f"{guests.prefix}-*"], exclude=["*-web2"]) == [names[2], names[0]]
    assert selected(guests=[f"{guests.prefix}-*"], guest_state="running") == [names[1]]
    assert selected(guests=[f"{guests.prefix}-*"], guest_state="shutoff") == [names[2], names[0]]
    states = {guest["name"]: guest for guest in info({"guests": [f"{guests.prefix}-*"]})["guests"]}
    assert (states[names[1]]["state"], states[names[1]]["running"]) == ("running", True)
    assert (states[names[2]]["state"], states[names[2]]["autostart"]) == ("shutoff", True)
    assert states[names[0]]["autostart"] is False


def test_an_entry_that_names_no_guest_is_a_warning(guests: Guests) -> None:
    name = guests.define("web1", vcpus=1, memory_mib=256)
    result = info({"guests": [name, f"{guests.prefix}-nosuch", f"{guests.prefix}-db*"]})
    assert [guest["name"] for guest in result["guests"]] == [name]
    assert result["warnings"] == [
        f"guests[1] '{guests.prefix}-nosuch' matches no defined guest",
        f"guests[2] '{guests.prefix}-db*' matches no defined guest",
    ]
    # Every entry found a guest (or is the default *): no warning.
    assert "warnings" not in info({"guests": [name]})
    assert "warnings" not in info({"guests": ["*"], "exclude": ["*"]})


def test_a_running_guest_is_judged_by_what_runs_and_reports_a_pending_definition(conn: Any, guests: Guests) -> None:
    name = guests.define("running", vcpus=4, memory_mib=4096)
    dom = conn.lookupByName(name)
    dom.create()
    # A new definition while it runs: aligned cells the next boot would bring.
    conn.defineXML(domain_xml(name, 4, 4096, ALIGNED, domain_uuid=dom.UUIDString()))

    guest = info({"host_capabilities": RING, "guests": [name]}, check_mode=True)["guests"][0]

    assert (guest["state"], guest["running"], guest["source"]) == ("running", True, "live")
    assert guest["layout"]["numa"] is False
    assert guest["alignment"]["aligned"] is False
    assert guest["alignment"]["locality"] == 0.25
    assert guest["defined_alignment"]["aligned"] is True
    assert guest["defined_alignment"]["locality"] == 1.0
    assert guest["pending"] is True
    assert "numatune/memnode[0]/nodeset: None -> '0'" in guest["pending_changes"]


def test_a_running_guest_without_a_new_definition_is_not_pending(conn: Any, guests: Guests) -> None:
    name = guests.define("steady", ALIGNED)
    conn.lookupByName(name).create()
    guest = info({"host_capabilities": RING, "guests": [name]})["guests"][0]
    assert (guest["source"], guest["pending"], guest["pending_changes"]) == ("live", False, [])
    assert guest["alignment"]["locality"] == 1.0


def test_pins_a_running_guest_had_lifted_live_are_not_pending(conn: Any, guests: Guests) -> None:
    """What libvirt lists once vnuma_domain's pinning: none lifted the pins live: every vCPU pinned to every CPU
    of the host it runs on (the test driver's 16), the I/O thread too; the definition has no pin."""
    pins = "".join(f"<vcpupin vcpu='{vcpu}' cpuset='0-15'/>" for vcpu in range(4))
    live = f"<iothreads>1</iothreads><cputune>{pins}<iothreadpin iothread='1' cpuset='0-15'/></cputune>"
    name = guests.define("lifted", live)
    dom = conn.lookupByName(name)
    dom.create()
    conn.defineXML(domain_xml(name, 4, 4096, "<iothreads>1</iothreads>", domain_uuid=dom.UUIDString()))
    guest = info({"guests": [name]})["guests"][0]
    assert (guest["source"], guest["pending"], guest["pending_changes"]) == ("live", False, [])
    # Judged on another host's topology (8 CPUs), the guest still runs on the connection's host.
    other = str(CAPABILITIES / "single-node.xml")
    guest = info({"host_capabilities": other, "guests": [name]})["guests"][0]
    assert (guest["pending"], guest["pending_changes"]) == (False, [])


def test_a_pin_that_confines_a_running_guest_is_pending(conn: Any, guests: Guests) -> None:
    """With <vcpu cpuset='0-7'> the default affinity is that cpuset: a live pin to every host CPU is a pin."""
    pinned = "<cputune><vcpupin vcpu='0' cpuset='0-15'/><vcpupin vcpu='1' cpuset='0-7'/></cputune>"
    name = guests.define("cpuset", pinned, cpuset="0-7")
    dom = conn.lookupByName(name)
    dom.create()
    conn.defineXML(domain_xml(name, 4, 4096, domain_uuid=dom.UUIDString(), cpuset="0-7"))
    guest = info({"guests": [name]})["guests"][0]
    assert (guest["pending"], guest["pending_changes"]) == (True, ["cputune/vcpupin[0]: '0-15' -> None"])


def test_fewer_vcpus_defined_than_run_are_pending(conn: Any, guests: Guests) -> None:
    # vnuma_domain adds vCPUs live but never takes them offline: a lower count waits for the boot.
    name = guests.define("lowered", ALIGNED)
    dom = conn.lookupByName(name)
    dom.create()
    dom.setVcpusFlags(2, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    guest = info({"host_capabilities": RING, "guests": [name]})["guests"][0]
    assert (guest["source"], guest["pending"]) == ("live", True)
    assert guest["pending_changes"] == ["vcpu/current: None -> 2"]


def test_errors_name_the_value() -> None:
    result = info_fails({"host_capabilities": "/nonexistent/caps.xml"})
    assert result["msg"] == "host_capabilities: cannot read '/nonexistent/caps.xml': No such file or directory"
    result = info_fails({"uri": "qemu+unix:///system?socket=/nonexistent/sock", "connect_timeout": 0})
    assert result["msg"].startswith("cannot connect to libvirt at qemu+unix:///system?socket=/nonexistent/sock: ")
    assert "value of guest_state must be one of" in info_fails({"guest_state": "asleep"})["msg"]
