# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain on guests that run: QEMU starts them, the guest kernel sees the layout, hotplug and restarts.

The guests are those of the harness (tests/support/realguest.py): diskless TCG guests booting a real
Linux kernel whose /init reports the NUMA topology it sees.  The module configures each one (it is
defined flat first); every guest boots with its online vCPUs a prefix 0..p-1 of the vCPU ids, the one
shape that boots in seconds under TCG.  Boots run one after the other: the machine has two cores.
"""

from __future__ import annotations

import re

import libvirt
import libvirt_qemu
import pytest
from test_harness import BOOT_TIMEOUT, HOTPLUG_TIMEOUT, check_node_memory
from vnuma_domain_support import (
    MIB,
    cpuset,
    domain_root,
    enabled_vcpus,
    inactive_xml,
    live_xml,
    numa_cells,
)

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import GuestTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import (
    Guest,
    GuestFactory,
    GuestReport,
    describe,
    vcpu_position,
)

# Dedicates host CPUs: runs after the other integration tests, alone (make integration).
pytestmark = pytest.mark.host_cpus

# Seconds until the guest reports a hot-added vCPU online (two online).  Under TCG the guest kernel
# brings a new one up slowly: 10-45 s measured here, and on some runs over a minute (RCU stalls
# and soft lockups reported by the guest kernel on the new CPU).  HOTPLUG_TIMEOUT is for one vCPU.  A clean
# clone's run with other work on both CPUs waited over 180 s for one hot-added vCPU, and another over 300 s
# (the guest printed nothing at all after its first report, its /init blocked onlining the new CPU): the
# wait is the time allowed, not the time expected.
VCPU_HOTPLUG_TIMEOUT = 600.0


def host_node(host_caps: str) -> int:
    return parse_capabilities(host_caps).cpu_node_ids[0]


def hmp(guest: Guest, command: str) -> str:
    return libvirt_qemu.qemuMonitorCommand(guest.dom, command, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)


def info_numa(guest: Guest) -> dict[int, tuple[frozenset[int], int, int]]:
    """QEMU's own view (HMP ``info numa``): node -> (CPU indexes, memory MiB, of which hot-plugged MiB).

    QEMU's CPU index of a vCPU is its libvirt vCPU id, hot-plugged ones included.
    """
    text = hmp(guest, "info numa")
    nodes: dict[int, dict[str, object]] = {}
    for node, key, value in re.findall(r"^node (\d+) (cpus|size|plugged):(.*)$", text, re.M):
        entry = nodes.setdefault(int(node), {})
        if key == "cpus":
            entry[key] = frozenset(int(cpu) for cpu in value.split())
        else:
            entry[key] = int(value.split()[0])
        assert key == "cpus" or value.strip().endswith("MB"), text
    return {node: (entry["cpus"], entry["size"], entry.get("plugged", 0)) for node, entry in nodes.items()}


def layout_cells(layout: dict) -> dict[int, tuple[frozenset[int], int]]:
    return {cell["id"]: (cpuset(cell["vcpus"]), cell["memory_kib"]) for cell in layout["cells"]}


def check_report(report: GuestReport, layout: dict, online: set[int] | None = None) -> None:
    """The guest kernel's nodes, CPUs per node, and distances are the plan's.

    Guest CPU numbers are not vCPU ids (they follow the order CPUs came online): each vCPU is found
    by its socket and core id, which QEMU derives from the vCPU id and the layout's topology.
    """
    topology = GuestTopology(**layout["topology"])
    online = set(range(layout["vcpus"])) if online is None else online
    text = describe([report])
    assert sorted(report.nodes) == [cell["id"] for cell in layout["cells"]], text
    assert len(report.online) == len(online), text
    cell_of = {vcpu: cell["id"] for cell in layout["cells"] for vcpu in cpuset(cell["vcpus"])}
    guest_cpu: dict[int, int | None] = {}
    for vcpu in range(layout["vcpus"]):
        socket, _die, core, _thread = vcpu_position(topology, vcpu)
        guest_cpu[vcpu] = report.cpu_at(socket, core)
        where = report.node_of_vcpu(topology, vcpu)
        expected = cell_of[vcpu] if vcpu in online else None
        assert where == expected, f"vCPU {vcpu}: guest node {where}, expected {expected}\n{text}\n{report.cpus}"
    for cell in layout["cells"]:
        node = report.nodes[cell["id"]]
        assert node.cpus == {guest_cpu[vcpu] for vcpu in cpuset(cell["vcpus"]) & online}, text
        assert list(node.distances) == cell["distances"], text


# -- 3. layouts planned for this host start under QEMU -------------------------------------------------


@pytest.mark.parametrize(
    ("what", "args"),
    [
        ("host mode", {"mode": "host"}),
        ("2 cells on one node", {"mode": "node", "cells": 2}),
        ("4 cells on one node", {"mode": "node", "cells": 4}),
    ],
)
def test_layouts_for_this_host_start(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str, what: str, args: dict
) -> None:
    node = host_node(host_caps)
    guest = make_guest("vit-start", vcpus=4, memory_mib=512, start=False)
    options = {"name": guest.name, **args}
    if args["mode"] == "node":
        options["nodeset"] = str(node)
    layout = run_module(options)["layout"]
    if args["mode"] == "host":
        nodes = [str(node) for node in parse_capabilities(host_caps).cpu_node_ids]
        assert [cell["memory_nodes"] for cell in layout["cells"]] == nodes, what
    else:
        assert [cell["memory_nodes"] for cell in layout["cells"]] == [str(node)] * args["cells"], what
    count = len(layout["cells"])
    if count > 1:
        # Cells on the same host node are 11 apart.
        assert [cell["distances"] for cell in layout["cells"]] == [
            [10 if other == cell else 11 for other in range(count)] for cell in range(count)
        ]
    guest.start()
    try:
        assert guest.is_active()
        live = live_xml(qemu_conn, guest.name)
        assert numa_cells(live) == layout_cells(layout)
        # QEMU's own view: the cells, their CPUs and sizes.
        assert info_numa(guest) == {
            cell["id"]: (cpuset(cell["vcpus"]), cell["memory_kib"] // MIB, 0) for cell in layout["cells"]
        }
        if count > 1:
            siblings = {
                (int(cell.get("id")), int(sibling.get("id"))): int(sibling.get("value"))
                for cell in domain_root(live).iterfind("cpu/numa/cell")
                for sibling in cell.iterfind("distances/sibling")
            }
            assert siblings == {(i, j): 10 if i == j else 11 for i in range(count) for j in range(count)}
    finally:
        # Not left booting: the next tests need the host's two cores.
        if guest.is_active():
            guest.dom.destroy()


# -- 4. what the guest sees, for each distribution -----------------------------------------------------


@pytest.mark.parametrize(
    ("distribution", "vcpus", "cells", "memory_mib", "planned"),
    [
        ("contiguous", 6, 3, 768, ["0-1", "2-3", "4-5"]),
        # One thread per core on this host: whole cores of one vCPU, in blocks like contiguous.
        ("siblings", 4, 2, 512, ["0-1", "2-3"]),
        # Node 0's 2 CPUs in two slices of one: vCPU k samples host CPU 2k/3 -> 0, 0, 1.
        ("round-robin", 3, 2, 512, ["0-1", "2"]),
        ("interleave", 5, 3, 768, ["0,3", "1,4", "2"]),
    ],
)
def test_the_guest_kernel_sees_the_layout(
    make_guest: GuestFactory,
    qemu_conn: libvirt.virConnect,
    host_caps: str,
    distribution: str,
    vcpus: int,
    cells: int,
    memory_mib: int,
    planned: list[str],
) -> None:
    node = host_node(host_caps)
    guest = make_guest(f"vit-sees-{distribution}", vcpus=vcpus, memory_mib=memory_mib, start=False)
    result = run_module(
        {"name": guest.name, "mode": "node", "nodeset": str(node), "cells": cells, "distribution": distribution}
    )
    layout = result["layout"]
    assert [cell["vcpus"] for cell in layout["cells"]] == planned
    guest.start()
    report = guest.report(BOOT_TIMEOUT)
    check_report(report, layout)
    for cell in layout["cells"]:
        check_node_memory(
            report.nodes[cell["id"]], cell["memory_kib"], first_cell=cell["id"] == 0, what=f"node {cell['id']}"
        )
    assert report.distance_matrix == [cell["distances"] for cell in layout["cells"]]


# -- 5. NUMA-aware hotplug through the module ----------------------------------------------------------


def dimms(xml: str) -> list[tuple[int, int, str]]:
    """The DIMMs of a definition: (guest cell, size KiB, host nodemask)."""
    found = []
    for device in domain_root(xml).iterfind("devices/memory[@model='dimm']"):
        size = device.find("target/size")
        assert size.get("unit", "KiB") == "KiB"
        mask = device.find("source/nodemask")
        found.append((int(device.find("target/node").text), int(size.text), None if mask is None else mask.text))
    return sorted(found)


def test_numa_aware_hotplug(make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str) -> None:
    node = host_node(host_caps)
    # The guest stays up (reporting every change) for up to 1200 s: the waits below add up to more than 700.
    guest = make_guest("vit-hotplug", vcpus=6, memory_mib=768, wait=True, guest_timeout=1200, start=False)
    name = guest.name
    defined = run_module(
        {
            "name": name,
            "mode": "node",
            "nodeset": str(node),
            "cells": 3,
            "distribution": "contiguous",
            "max_memory": "1536 MiB",
            "memory_slots": 4,
            "current_vcpus": 1,
        }
    )
    layout = defined["layout"]
    assert [cell["vcpus"] for cell in layout["cells"]] == ["0-1", "2-3", "4-5"]
    # One vCPU per cell before any cell gets a second: 0, then 2 and 4.
    assert layout["enable_order"] == [0, 2, 4, 1, 3, 5]
    assert enabled_vcpus(inactive_xml(qemu_conn, name)) == {0}

    guest.start()
    first = guest.report(BOOT_TIMEOUT)
    check_report(first, layout, online={0})
    for cell in layout["cells"]:
        check_node_memory(
            first.nodes[cell["id"]], cell["memory_kib"], first_cell=cell["id"] == 0, what=f"node {cell['id']}"
        )

    def unchanged_by(args: dict, message: str) -> None:
        """A refusal: the exact message, and neither definition changed."""
        live_before, inactive_before = live_xml(qemu_conn, name), inactive_xml(qemu_conn, name)
        failed = fail_module({"name": name, **args})
        assert failed["msg"] == f"guest {name}: {message}"
        assert failed["guest"] == name
        assert live_xml(qemu_conn, name) == live_before
        assert inactive_xml(qemu_conn, name) == inactive_before

    # Beyond max_memory: 768 MiB + 1 GiB > 1536 MiB.
    unchanged_by(
        {"hotplug_memory": "1 GiB"}, "hot-adding 1 GiB would bring the guest to 1792 MiB, above max_memory 1536 MiB"
    )
    # Beyond the maximum vCPUs.
    unchanged_by({"current_vcpus": 7}, "current vcpus 7 is above the maximum of 6 vCPUs")

    # -- vCPUs: 2 online, the second in the emptiest cell: vCPU 2 (cell 1), not the lowest id 1 (cell 0).
    # One hot-added vCPU only: under TCG a guest kernel sometimes stalls for minutes onlining several.
    plan = run_module({"name": name, "current_vcpus": 2}, check_mode=True)
    assert plan["changed"] is True and plan["live"] == ["enabled vCPUs 2"]
    assert enabled_vcpus(live_xml(qemu_conn, name)) == {0}, "check mode enabled vCPUs"
    added = run_module({"name": name, "current_vcpus": 2})
    assert added["changed"] is True
    assert added["live"] == ["enabled vCPUs 2"]
    assert added["restart_required"] is False and added["restarted"] is False
    assert enabled_vcpus(live_xml(qemu_conn, name)) == {0, 2}
    # The next boot has the same vCPUs online.
    assert enabled_vcpus(inactive_xml(qemu_conn, name)) == {0, 2}
    assert domain_root(inactive_xml(qemu_conn, name)).find("vcpu").get("current") == "2"
    # The new vCPUs are pinned by the layout.
    live_pins = {
        int(pin.get("vcpu")): cpuset(pin.get("cpuset"))
        for pin in domain_root(live_xml(qemu_conn, name)).iterfind("cputune/vcpupin")
    }
    assert live_pins[2] == cpuset(layout["vcpupin"]["2"])

    def two_online(report: GuestReport) -> bool:
        return len(report.online) == 2

    # QEMU put it in its cell at once.
    assert info_numa(guest)[1] == ({2}, 256, 0)
    after_vcpus = guest.report(VCPU_HOTPLUG_TIMEOUT, after=first.seq, until=two_online)
    check_report(after_vcpus, layout, online={0, 2})
    assert after_vcpus.nodes[1].cpus and not after_vcpus.nodes[2].cpus
    again = run_module({"name": name, "current_vcpus": 2})
    assert again["changed"] is False and again["live"] == []

    # -- memory: 384 MiB as one 128 MiB DIMM per cell.
    plan = run_module({"name": name, "hotplug_memory": "384 MiB"}, check_mode=True)
    assert plan["changed"] is True and len(plan["live"]) == 3
    assert dimms(live_xml(qemu_conn, name)) == []
    added = run_module({"name": name, "hotplug_memory": "384 MiB"})
    assert added["changed"] is True
    assert added["live"] == [f"DIMM of 128 MiB on guest cell {cell} (host nodes {node})" for cell in range(3)]
    assert [change.split(":")[0] for change in added["changes"]] == [f"devices/memory[{i}]" for i in range(3)]
    expected_dimms = [(cell, 128 * MIB, str(node)) for cell in range(3)]
    assert dimms(live_xml(qemu_conn, name)) == expected_dimms
    assert dimms(inactive_xml(qemu_conn, name)) == expected_dimms

    assert info_numa(guest) == {0: ({0}, 384, 128), 1: ({2}, 384, 128), 2: (set(), 384, 128)}

    def memory_added(report: GuestReport) -> bool:
        return all(report.nodes[cell].present_kib > after_vcpus.nodes[cell].present_kib for cell in range(3))

    after_memory = guest.report(HOTPLUG_TIMEOUT, after=after_vcpus.seq, until=memory_added)
    for cell in range(3):
        before, now = after_vcpus.nodes[cell], after_memory.nodes[cell]
        assert now.present_kib - before.present_kib == 128 * MIB, describe([after_vcpus, after_memory])
        # MemTotal grows by the block, less at most its page structs (1/64).
        assert 128 * MIB - 128 * MIB // 64 <= now.mem_kib - before.mem_kib <= 128 * MIB, (cell, before, now)
        assert now.cpus == before.cpus
    # Total, not increment: the same call adds nothing.
    again = run_module({"name": name, "hotplug_memory": "384 MiB"})
    assert again["changed"] is False and again["live"] == []
    assert dimms(live_xml(qemu_conn, name)) == expected_dimms

    # Memory is never unplugged; and 256 MiB more needs 2 slots where 1 of 4 is free.
    unchanged_by(
        {"hotplug_memory": "128 MiB"},
        "hotplug_memory 128 MiB is below the 384 MiB already hot-plugged; memory is never unplugged by this module",
    )
    unchanged_by({"hotplug_memory": "640 MiB"}, "hot-adding 256 MiB needs 2 memory slots, 1 of 4 are free")
    # DIMMs need NUMA cells: the layout cannot be removed.
    unchanged_by(
        {"state": "absent"},
        "has 3 hot-plugged memory device(s), which need NUMA cells; detach them before removing the layout",
    )


# -- 6. running guests: live pins, restart_required, restarts ----------------------------------------


def test_running_guest_live_pins_and_restarts(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    node = host_node(host_caps)
    guest = make_guest("vit-restart", vcpus=2, memory_mib=256, wait=True, start=False)
    name = guest.name
    base = {
        "name": name,
        "mode": "node",
        "nodeset": str(node),
        "cells": 2,
        "pinning": "node",
        "max_memory": "1 GiB",
        "memory_slots": 2,
    }
    first = run_module(base)["layout"]
    guest.start()
    # The guest kernel is up (ACPI included) before anything asks it to shut down.
    check_report(guest.report(BOOT_TIMEOUT), first)
    live_at_start = live_xml(qemu_conn, name)

    # A pin-only change is applied live: no restart.
    repinned = run_module({**base, "pinning": "thread"})
    assert repinned["changed"] is True
    assert repinned["restart_required"] is False and repinned["restart_required_guests"] == []
    assert all(change.startswith(("cputune/vcpupin", "metadata/vnuma")) for change in repinned["changes"])
    pins = {int(vcpu): cpuset(cpus) for vcpu, cpus in repinned["layout"]["vcpupin"].items()}
    assert all(len(cpus) == 1 for cpus in pins.values()) and len(set(map(min, pins.values()))) == 2
    assert repinned["live"] == [f"vCPU {vcpu} pinned to host CPUs {min(cpus)}" for vcpu, cpus in sorted(pins.items())]
    for flags in (libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG):
        info = guest.dom.vcpuPinInfo(flags)
        assert {vcpu: {cpu for cpu, on in enumerate(info[vcpu]) if on} for vcpu in pins} == pins
    pinned_live = live_xml(qemu_conn, name)
    assert numa_cells(pinned_live) == numa_cells(live_at_start)
    assert run_module({**base, "pinning": "thread"})["changed"] is False

    # pinning: none lifts the pins live too: back to every host CPU.
    host_cpus = set(parse_capabilities(host_caps).cpu_node)
    unpinned = run_module({**base, "pinning": "none"})
    assert unpinned["changed"] is True and unpinned["restart_required"] is False
    assert unpinned["layout"]["vcpupin"] is None
    everywhere = format_cpuset(sorted(host_cpus))
    assert unpinned["live"] == [f"vCPU {vcpu} pinned to host CPUs {everywhere}" for vcpu in (0, 1)]
    for flags in (libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG):
        info = guest.dom.vcpuPinInfo(flags)
        assert [{cpu for cpu, on in enumerate(info[vcpu]) if on} for vcpu in (0, 1)] == [host_cpus, host_cpus]
    assert run_module({**base, "pinning": "none"})["changed"] is False
    base["pinning"] = "none"
    pinned_live = live_xml(qemu_conn, name)

    # A layout change: the persistent definition changes, the running guest does not.
    relaid = run_module({**base, "cells": 1})
    assert relaid["changed"] is True
    assert relaid["restart_required"] is True and relaid["restart_required_guests"] == [name]
    assert relaid["restarted"] is False
    assert live_xml(qemu_conn, name) == pinned_live
    assert numa_cells(inactive_xml(qemu_conn, name)) == layout_cells(relaid["layout"])
    assert len(numa_cells(inactive_xml(qemu_conn, name))) == 1

    # The harness's guest ignores ACPI shutdown: without force, the restart times out and leaves it running.
    stuck_args = {**base, "cells": 1, "memory": "192 MiB", "restart": "if_needed", "shutdown_timeout": 2}
    failed = fail_module(stuck_args)
    assert failed["msg"] == (
        f"guest {name}: did not shut down within 2 seconds; set force to power it off (written before the "
        f"failure: guest {name}: definition, shutdown requested)"
    )
    assert failed["guest"] == name
    # The definition was written and a shutdown sent before the timeout: the failed run says so.
    assert failed["changed"] is True
    assert failed["guests"][0]["written"] == ["definition", "shutdown requested"]
    assert failed["restart_required_guests"] == [name]
    assert guest.is_active()
    assert numa_cells(live_xml(qemu_conn, name)) == numa_cells(live_at_start)
    assert numa_cells(inactive_xml(qemu_conn, name)) == {0: (frozenset({0, 1}), 192 * MIB)}

    # With force it is powered off after the timeout and started with the new layout; memory hot-added in the
    # same run goes into the restarted guest too.
    final = {**base, "cells": 1, "memory": "256 MiB", "hotplug_memory": "128 MiB", "restart": "if_needed"}
    forced = run_module({**final, "force": True, "shutdown_timeout": 1})
    assert forced["changed"] is True and forced["restarted"] is True
    assert forced["restart_required"] is False and forced["restart_required_guests"] == []
    assert forced["live"] == [f"DIMM of 128 MiB on guest cell 0 (host nodes {node})"]
    assert guest.is_active()
    live = live_xml(qemu_conn, name)
    assert numa_cells(live) == layout_cells(forced["layout"]) == {0: (frozenset({0, 1}), 256 * MIB)}
    assert numa_cells(live) == numa_cells(inactive_xml(qemu_conn, name))
    assert dimms(live) == dimms(inactive_xml(qemu_conn, name)) == [(0, 128 * MIB, str(node))]
    assert info_numa(guest) == {0: ({0, 1}, 384, 128)}
    settled = run_module({**final, "force": True})
    assert settled["changed"] is False and settled["restarted"] is False


def test_a_restart_left_pending_is_done_by_a_later_run(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    guest = make_guest("vit-pending", vcpus=2, memory_mib=256, start=False)
    guest.start()
    args = {"name": guest.name, "mode": "node", "nodeset": str(host_node(host_caps)), "cells": 2}
    assert run_module(args)["restart_required"] is True
    assert numa_cells(live_xml(qemu_conn, guest.name)) == {}
    later = run_module({**args, "restart": "if_needed", "force": True, "shutdown_timeout": 1})
    assert later["restarted"] is True
    assert len(numa_cells(live_xml(qemu_conn, guest.name))) == 2
