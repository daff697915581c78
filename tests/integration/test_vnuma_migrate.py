# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_migrate against the real libvirtd: a saved guest restored with its pins planned again.

This machine has one NUMA node and two CPUs, so what a restore can prove here is the CPU side: a guest
laid out with a dedicated CPU is saved, another guest takes that CPU while it is away (as on another
host, where its CPU belongs to someone else), and the restore brings it up on the CPU that is free, its
QEMU vCPU thread's affinity included, with everything the guest sees as it was.  The move between hosts
of other shapes is proven in the lab (docs/migration.md); a live migration needs two hosts, so here
it runs between this machine's libvirtd and a private one (another host as libvirt sees it), and is
planned in check mode against fixture topologies, and refused when the destination is too small.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from test_harness import BOOT_TIMEOUT
from vnuma_domain_support import memnode_nodesets, numa_cells

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain, vnuma_migrate
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES
from ansible_collections.vnuma.libvirt.tests.support.module_run import ModuleExit, fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.private_libvirtd import PrivateLibvirtd
from ansible_collections.vnuma.libvirt.tests.support.realguest import Guest, GuestFactory

# Dedicates host CPUs: runs after the other integration tests, alone (make integration).
pytestmark = pytest.mark.host_cpus

PINNED = "<vnuma mode='host' pinning='thread'/>"


def pins(xml: str) -> dict[int, str]:
    root = parse_xml(xml, "domain")
    return {int(pin.get("vcpu", "-1")): pin.get("cpuset", "") for pin in root.iterfind("cputune/vcpupin")}


def guest_view(xml: str) -> tuple[object, ...]:
    """What the guest sees of its NUMA shape: cells with their vCPUs and memory, distances, CPU topology."""
    root = parse_xml(xml, "domain")
    topology = root.find("cpu/topology")
    distances = sorted(
        (cell.get("id"), sibling.get("id"), sibling.get("value"))
        for cell in root.iterfind("cpu/numa/cell")
        for sibling in cell.iterfind("distances/sibling")
    )
    shape: dict[str, str] | None = (
        {str(key): str(value) for key, value in topology.attrib.items()} if topology is not None else None
    )
    return (numa_cells(xml), shape, distances)


def thread_affinity(dom: libvirt.virDomain) -> dict[int, set[int]]:
    """vCPU -> the host CPUs its QEMU thread may run on now (libvirt reads the thread's real affinity)."""
    info, maps = dom.vcpus()
    return {
        entry[0]: {cpu for cpu, allowed in enumerate(cpumap) if allowed}
        for entry, cpumap in zip(info, maps, strict=True)
    }


@pytest.fixture
def save_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "save"
    directory.mkdir()
    yield directory


def hand_pinned(make_guest: GuestFactory, cpu: int) -> Guest:
    """A defined (not running) guest pinned by hand to one CPU: the collection counts the CPU as held."""
    return make_guest(
        "mig1-holder",
        vcpus=1,
        memory_mib=128,
        extra_xml=f"<cputune><vcpupin vcpu='0' cpuset='{cpu}'/></cputune>",
        start=False,
    )


def test_restore_moves_a_dedicated_vcpu_to_the_free_cpu(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, save_dir: Path
) -> None:
    guest = make_guest("mig1-restore", vcpus=1, memory_mib=256, vnuma=PINNED, wait=True)
    first = guest.layout.vcpu_pins[0][0] if guest.layout.vcpu_pins else None
    assert first is not None
    other = 1 - first
    view = guest_view(guest.live_xml())
    image = save_dir / f"{guest.name}.save"
    guest.dom.save(str(image))
    assert not guest.is_active()
    # While it is away its CPU goes to another guest.
    hand_pinned(make_guest, first)
    definition = guest.inactive_xml()
    args = {"operation": "restore", "restore_from": str(image)}

    planned = run_module(args, check_mode=True, module=vnuma_migrate)
    assert planned["moved"] is False and planned["changed"] is True
    assert planned["plan"]["vcpu_pins"] == {"0": str(other)}
    assert {"path": "cputune/vcpupin[0]/cpuset", "before": str(first), "after": str(other)} in planned["host_changes"]
    assert not guest.is_active() and guest.inactive_xml() == definition, "check mode must change nothing"

    restored = run_module(args, module=vnuma_migrate)
    assert restored["moved"] is True and restored["name"] == guest.name
    assert guest.is_active()
    live = guest.live_xml()
    assert pins(live) == {0: str(other)}
    assert thread_affinity(guest.dom) == {0: {other}}, "QEMU's vCPU thread must run on the planned CPU"
    assert guest_view(live) == view, "what the guest sees must not change"
    # Its definition moves with it: the next boot uses the CPU it runs on.
    assert pins(guest.inactive_xml()) == {0: str(other)}
    assert guest_view(guest.inactive_xml()) == guest_view(definition)
    # vnuma_domain keeps the moved guest as it is until asked to render its spec again.
    kept = run_module({"name": guest.name}, check_mode=True)
    assert kept["changed"] is False
    assert any(f"came here by restore from {image}" in warning for warning in kept["warnings"])


def test_a_restore_without_a_free_cpu_is_refused_and_changes_nothing(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, save_dir: Path
) -> None:
    guest = make_guest("mig1-full", vcpus=1, memory_mib=256, vnuma=PINNED)
    image = save_dir / f"{guest.name}.save"
    guest.dom.save(str(image))
    for cpu in (0, 1):
        hand_pinned(make_guest, cpu)
    definition = guest.inactive_xml()
    saved = image.read_bytes()
    for check_mode in (True, False):
        failed = fail_module(
            {"operation": "restore", "restore_from": str(image)}, check_mode=check_mode, module=vnuma_migrate
        )
        assert failed["msg"].startswith(
            f"guest {guest.name}: guest cell 0 (256 MiB, 1 vCPUs) must live on one destination node"
        ), failed["msg"]
        assert "0 free host threads for pinning thread" in failed["msg"]
        assert failed["guest"] == guest.name
        assert not guest.is_active() and guest.inactive_xml() == definition
        assert image.read_bytes() == saved


def test_a_definition_waiting_for_a_boot_with_other_cells_moves_with_bindings_of_its_own(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, save_dir: Path
) -> None:
    """The guest runs one cell; its definition, rendered again for its next boot, has two.

    A migration (planned in check mode) and a restore plan the definition from its own cells: the guest comes
    back running its one cell, its definition keeps its two, each bound on this host.
    """
    guest = make_guest("mig1-pending", vcpus=2, memory_mib=512, vnuma="<vnuma mode='node'/>", wait=True)
    assert sorted(numa_cells(guest.live_xml())) == [0]
    pending = run_module({"name": guest.name, "mode": "node", "cells": 2}, module=vnuma_domain)
    assert pending["changed"] is True and pending["restart_required"] is True
    assert sorted(numa_cells(guest.inactive_xml())) == [0, 1]

    args = {
        "name": guest.name,
        "destination_uri": "test:///default",
        "host_capabilities": str(CAPABILITIES / "amd-2s-nps4.xml"),
    }
    planned = run_module(args, check_mode=True, module=vnuma_migrate)
    assert [cell["id"] for cell in planned["plan"]["cells"]] == [0]
    assert [cell["id"] for cell in planned["definition_plan"]["cells"]] == [0, 1]

    image = save_dir / f"{guest.name}.save"
    guest.dom.save(str(image))
    definition = guest.inactive_xml()
    restore = {"operation": "restore", "restore_from": str(image)}
    checked = run_module(restore, check_mode=True, module=vnuma_migrate)
    assert [cell["id"] for cell in checked["definition_plan"]["cells"]] == [0, 1]
    assert not guest.is_active() and guest.inactive_xml() == definition, "check mode must change nothing"

    restored = run_module(restore, module=vnuma_migrate)
    assert restored["moved"] is True
    assert guest.is_active()
    assert sorted(numa_cells(guest.live_xml())) == [0]
    after = guest.inactive_xml()
    assert numa_cells(after) == numa_cells(definition), "the layout waiting for the next boot stays"
    node = {int(cell["host_nodes"]) for cell in restored["definition_plan"]["cells"]}
    assert memnode_nodesets(after) == {0: frozenset(node), 1: frozenset(node)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_live_migration_to_another_libvirtd_moves_the_dedicated_vcpu(
    make_guest: GuestFactory, private_libvirtd: PrivateLibvirtd
) -> None:
    """A real live migration between two daemons of this machine: the destination plans the free CPU.

    The private libvirtd is another host as libvirt sees it (its own host UUID, state and guests); the
    migration data goes over loopback.  A guest there holds the CPU the moving guest is pinned to.
    """
    # Two clean-clone runs saw the moved guest stop within two seconds of arriving (libvirt: reason shutdown,
    # which a guest reset gives too with on_reboot destroy), both times moved a few seconds after its start,
    # half-way through its kernel's boot.  The guest now moves once it has booted (its first report), as a
    # guest users move would have.  The console file is appended to on the destination (libvirt truncates it
    # at a start otherwise), so that a failure shows what the guest printed after the move, and the image's
    # power-off after vnuma.timeout seconds of uptime is out of reach.
    guest = make_guest(
        "mig1-move", vcpus=1, memory_mib=256, vnuma=PINNED, wait=True, guest_timeout=86400, console_append=True
    )
    guest.report(BOOT_TIMEOUT)
    first = guest.layout.vcpu_pins[0][0] if guest.layout.vcpu_pins else None
    assert first is not None
    other = 1 - first
    view = guest_view(guest.live_xml())
    destination = libvirt.open(private_libvirtd.uri)
    try:
        destination.defineXML(
            f"<domain type='qemu'><name>mig1-holder</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
            f"<cputune><vcpupin vcpu='0' cpuset='{first}'/></cputune><os><type arch='x86_64'>hvm</type></os></domain>"
        )
        args = {
            "name": guest.name,
            "destination_uri": private_libvirtd.uri,
            "migration_uri": f"tcp://127.0.0.1:{free_port()}",
        }
        try:
            moved = run_module(args, module=vnuma_migrate)
        except ModuleExit as failed:
            # Why the guest is not running there, from the destination QEMU's log and the guest's console.
            logs = {
                path: path.read_text(errors="replace")[-3000:] if path.exists() else "(none)"
                for path in (private_libvirtd.root / "log" / "qemu" / f"{guest.name}.log", Path(guest.console_log))
            }
            pytest.fail(f"{failed.result}\n" + "\n".join(f"--- {path}:\n{text}" for path, text in logs.items()))
        assert moved["moved"] is True and moved["plan"]["vcpu_pins"] == {"0": str(other)}
        assert guest.name not in [dom.name() for dom in guest.conn.listAllDomains()], "undefine-source"
        there = destination.lookupByName(guest.name)
        assert there.isActive() and there.isPersistent()
        live = there.XMLDesc(0)
        assert pins(live) == {0: str(other)}
        assert thread_affinity(there) == {0: {other}}, "QEMU's vCPU thread must run on the planned CPU"
        assert guest_view(live) == view, "what the guest sees must not change"
        assert pins(there.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) == {0: str(other)}
        # A second run finds no guest to move: nothing happens.
        again = fail_module(args, module=vnuma_migrate)
        assert again["msg"] == f"guest {guest.name}: no guest named {guest.name} is defined at qemu:///system"
    finally:
        # Stopped by its libvirtd, which removes its cgroups; killed with the namespace, they would stay.
        with contextlib.suppress(libvirt.libvirtError):
            destination.lookupByName(guest.name).destroy()
        destination.close()


def test_a_live_migration_is_planned_in_check_mode_and_refused_when_too_small(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect
) -> None:
    """The destination is the in-process test driver with a fixture topology: planning only, nothing moves."""
    guest = make_guest(
        "mig1-live", vcpus=2, memory_mib=1024, vnuma="<vnuma mode='node'><partition cells='2'/></vnuma>", wait=True
    )
    guest.report()
    definition, live = guest.inactive_xml(), guest.live_xml()
    args = {
        "name": guest.name,
        "destination_uri": "test:///default",
        "host_capabilities": str(CAPABILITIES / "amd-2s-nps4.xml"),
    }
    planned = run_module(args, check_mode=True, module=vnuma_migrate)
    assert planned["moved"] is False
    # Two cells that shared this host's one node share one destination node, in two slices of its CPUs.
    cells = planned["plan"]["cells"]
    assert cells[0]["host_nodes"] == cells[1]["host_nodes"]
    assert planned["plan"]["distance_error"] == 0
    assert planned["capacity"]["fits"] is True
    assert {change["path"] for change in planned["host_changes"]} >= {
        "cputune/vcpupin[0]/cpuset",
        "cputune/vcpupin[1]/cpuset",
    }
    assert guest.is_active() and guest.inactive_xml() == definition and guest.live_xml() == live

    small = {**args, "host_capabilities": str(CAPABILITIES / "lab4-hmat.xml")}
    for check_mode in (True, False):
        failed = fail_module(small, check_mode=check_mode, module=vnuma_migrate)
        assert "guest cells 0-1 (1 GiB, 2 vCPUs) must live on one destination node together" in failed["msg"], failed[
            "msg"
        ]
        # Node 2 of the lab fixture: 1007 MiB less its 2 MiB page pool.
        assert "the roomiest destination node 2 has 965992 KiB free" in failed["msg"]
        assert guest.is_active() and guest.inactive_xml() == definition


def test_option_errors_name_the_option() -> None:
    name = f"mig1-none-{secrets.token_hex(3)}"
    failed = fail_module({"name": name, "destination_uri": "qemu:///system"}, module=vnuma_migrate)
    assert (
        failed["msg"]
        == "guest " + name + ": destination_uri qemu:///system is the source's uri: a guest moves to another host"
    )
    failed = fail_module({"name": name, "destination_uri": "test:///default"}, module=vnuma_migrate)
    assert failed["msg"] == f"guest {name}: no guest named {name} is defined at qemu:///system"
    failed = fail_module({"operation": "restore", "restore_from": "/nonexistent/x.save"}, module=vnuma_migrate)
    assert "/nonexistent/x.save" in failed["msg"]
