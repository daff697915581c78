# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_info against the real libvirtd's QEMU driver (qemu:///system).

Guests ``vnuma-info-<token>-*`` of different shapes, defined as libvirt's QEMU driver keeps them: a
hand-written layout aligned to this host's node, a guest with neither NUMA nor pins, one bound to
a node this host does not have, one converted by vnuma_domain (all defined, never started); and,
running (128 MiB, for seconds), a guest whose persistent definition is converted while it runs and
one started with its converted layout.  The module must report each one's layout and alignment,
whether a running guest's definition waits for a restart, the host's free memory, and change
nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_info
from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import Guest, GuestFactory

MIB = 1024
CPU_XML = "<cpu mode='maximum' check='none'>{numa}</cpu>"


def info(args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    return run_module(args, check_mode=check_mode, module=vnuma_info)


def convert(name: str) -> dict[str, Any]:
    """vnuma_domain mode host on this host.  Capacity is another test's subject: other tests' guests
    may load the shared host while this one runs, so it is not checked here."""
    return run_module({"name": name, "mode": "host", "capacity": "ignore"})


@pytest.fixture
def token() -> str:
    return f"vnuma-info-{secrets.token_hex(3)}"


@pytest.fixture
def fleet(make_guest: GuestFactory, token: str, host_caps: str) -> Iterator[dict[str, Guest]]:
    """The defined guests, none of them started."""
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    cpus = ",".join(str(cpu) for cpu in parse_capabilities(host_caps).node(node).usable_cpus)
    # Two cells on the host's first node, each vCPU pinned to that node's CPUs, memory bound there.
    aligned = make_guest(
        f"{token}-aligned",
        vcpus=2,
        memory_mib=128,
        start=False,
        extra_xml=(
            f"<cputune><vcpupin vcpu='0' cpuset='{cpus}'/><vcpupin vcpu='1' cpuset='{cpus}'/></cputune>"
            f"<numatune><memory mode='strict' nodeset='{node}'/>"
            f"<memnode cellid='0' mode='strict' nodeset='{node}'/><memnode cellid='1' mode='strict' nodeset='{node}'/>"
            "</numatune>"
        ),
        cpu_xml=CPU_XML.format(
            numa="<numa><cell id='0' cpus='0' memory='64' unit='MiB'/><cell id='1' cpus='1' memory='64' unit='MiB'/>"
            "</numa>"
        ),
    )
    loose = make_guest(f"{token}-loose", vcpus=2, memory_mib=128, start=False)
    # Written for another host: its memory bound to a node this host does not have (QEMU refuses it only
    # at start, so it can be defined).
    foreign = make_guest(
        f"{token}-foreign",
        vcpus=1,
        memory_mib=64,
        start=False,
        extra_xml="<numatune><memory mode='strict' nodeset='7'/></numatune>",
    )
    converted = make_guest(f"{token}-converted", vcpus=2, memory_mib=128, start=False)
    assert convert(converted.name)["changed"] is True
    yield {"aligned": aligned, "loose": loose, "foreign": foreign, "converted": converted}


def definitions(conn: libvirt.virConnect, token: str) -> dict[str, tuple[str, str]]:
    """Every guest of this test: its persistent and its live definition, as text."""
    return {
        dom.name(): (dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), dom.XMLDesc(0))
        for dom in conn.listAllDomains()
        if dom.name().startswith(token)
    }


def test_host_topology_and_free_memory(qemu_conn: libvirt.virConnect, host_caps: str) -> None:
    result = info({"guests": ["vnuma-info-none-*"]})
    topology = parse_capabilities(host_caps)
    host = result["host"]
    assert [node["id"] for node in host["nodes"]] == list(topology.node_ids)
    assert host["cpu_count"] == len(topology.cpu_node)
    assert [cpu["id"] for cpu in host["cpus"]] == sorted(cpu.id for node in topology.nodes for cpu in node.cpus)
    for node in host["nodes"]:
        assert node["free_kib"] is not None, "the QEMU driver knows each node's free memory"
        assert 0 < node["free_kib"] <= node["memory_kib"]
        for pool in node["hugepages"]:
            assert pool["free"] is not None and 0 <= pool["free"] <= pool["total"]
    assert host["free_kib"] == sum(node["free_kib"] for node in host["nodes"])
    assert host["distances_reported"] is True
    assert (result["guests"], result["guest_count"]) == ([], 0)
    assert "free " in result["diagram_lines"][3]


def test_layouts_alignment_and_nothing_changes(
    qemu_conn: libvirt.virConnect, fleet: dict[str, Guest], token: str, host_caps: str
) -> None:
    before = definitions(qemu_conn, token)
    result = info({"guests": [f"{token}-*"]})
    assert info({"guests": [f"{token}-*"]}, check_mode=True)["guests"] == result["guests"]
    assert definitions(qemu_conn, token) == before, "vnuma_info changed a definition"
    assert result["changed"] is False

    found = {guest["name"]: guest for guest in result["guests"]}
    assert list(found) == sorted(guest.name for guest in fleet.values())
    assert (result["guest_count"], result["aligned_count"]) == (4, 2)
    node = str(parse_capabilities(host_caps).cpu_node_ids[0])

    aligned = found[fleet["aligned"].name]
    assert (aligned["state"], aligned["running"], aligned["source"], aligned["pending"]) == (
        "shutoff",
        False,
        "inactive",
        False,
    )
    assert (aligned["spec"], aligned["layout"]["numa"], aligned["layout"]["pinning"]) == (None, True, True)
    assert [(cell["vcpus"], cell["memory_kib"]) for cell in aligned["layout"]["cells"]] == [
        ("0", 64 * MIB),
        ("1", 64 * MIB),
    ]
    assert aligned["alignment"] == {
        "aligned": True,
        "locality": 1.0,
        "cells": [
            {"id": 0, "aligned": True, "locality": 1.0, "cpu_nodes": node, "memory_nodes": node},
            {"id": 1, "aligned": True, "locality": 1.0, "cpu_nodes": node, "memory_nodes": node},
        ],
    }
    assert aligned["dedicated_cpus"] == "", "pins to the whole node hold no CPU for the guest alone"

    # No <numa>, no pins: one cell.  On a one-node host everything is local, but nothing is bound.
    loose = found[fleet["loose"].name]
    assert (loose["layout"]["numa"], loose["layout"]["pinning"]) == (False, False)
    assert (loose["vcpus"], loose["memory_kib"]) == (2, 128 * MIB)
    assert loose["alignment"]["aligned"] is False
    assert loose["alignment"]["cells"][0]["memory_nodes"] is None
    if len(parse_capabilities(host_caps).nodes) == 1:
        assert loose["alignment"]["locality"] == 1.0

    foreign = found[fleet["foreign"].name]
    assert foreign["alignment"]["cells"][0]["memory_nodes"] == "7"
    assert (foreign["alignment"]["aligned"], foreign["alignment"]["locality"]) == (False, 0.0)
    assert f"{foreign['name']} c0: 64 MiB bound to host node 7, which this host does not have" in result["diagram"]

    converted = found[fleet["converted"].name]
    assert converted["spec"]["mode"] == "host"
    assert converted["spec"]["memory"] is None, "no memory was asked for: the guest's own is used"
    assert converted["layout"]["numa"] is True
    assert (converted["alignment"]["aligned"], converted["alignment"]["locality"]) == (True, 1.0)

    # Each guest is drawn in its node's box and summed up below.
    for guest in fleet.values():
        assert any(line.split()[:2] == [guest.name, "shutoff"] for line in result["diagram_lines"])


def test_a_running_guest_reports_what_runs_and_its_pending_definition(
    qemu_conn: libvirt.virConnect, make_guest: GuestFactory, token: str
) -> None:
    guest = make_guest(f"{token}-running", vcpus=1, memory_mib=128, wait=True, guest_timeout=60)
    # As started: what runs is what is defined, whatever libvirt adds to the live definition.
    steady = info({"guests": [guest.name]})["guests"][0]
    assert (steady["source"], steady["pending"], steady["pending_changes"]) == ("live", False, [])
    assert steady["defined_alignment"] == steady["alignment"]
    changed = convert(guest.name)
    assert changed["restart_required"] is True
    before = definitions(qemu_conn, token)

    found = info({"guests": [f"{token}-*"], "guest_state": "running"})["guests"]

    assert definitions(qemu_conn, token) == before, "vnuma_info changed a definition"
    assert [item["name"] for item in found] == [guest.name]
    running = found[0]
    assert (running["state"], running["running"], running["source"]) == ("running", True, "live")
    # What runs has no NUMA and no binding; the next boot brings the converted, aligned layout.
    assert running["layout"]["numa"] is False
    assert running["alignment"]["aligned"] is False
    assert (running["defined_alignment"]["aligned"], running["defined_alignment"]["locality"]) == (True, 1.0)
    assert running["pending"] is True
    assert any(change.startswith("cpu/numa/cell[0]/cpus: None -> ") for change in running["pending_changes"])
    assert running["spec"]["mode"] == "host", "the stored spec is the persistent definition's"
    assert info({"guests": [f"{token}-*"], "guest_state": "shutoff"})["guests"] == []


def test_a_running_converted_guest_is_aligned_and_not_pending(
    qemu_conn: libvirt.virConnect, make_guest: GuestFactory, token: str
) -> None:
    guest = make_guest(
        f"{token}-live", vcpus=2, memory_mib=128, vnuma="<vnuma mode='host'/>", wait=True, guest_timeout=60
    )
    found = info({"guests": [guest.name]})["guests"][0]
    # libvirt's QEMU driver writes the running guest its own way (units, placement, cpu model): as models,
    # nothing differs from the definition.
    assert (found["source"], found["pending"], found["pending_changes"]) == ("live", False, [])
    assert found["layout"]["numa"] is True
    assert (found["alignment"]["aligned"], found["alignment"]["locality"]) == (True, 1.0)
    assert found["spec"]["mode"] == "host"
