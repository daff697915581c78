# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every mode, distribution, pinning and memory mode on a real 4-node SMT2 lab hypervisor.

vnuma_domain lays out two waves of guests (lab_checks.FLOATING, then lab_checks.DEDICATED), which boot
the touch payload.  What the module returned as its plan is compared with what the lab's kernel
reports while they run: where each cell's pages are (numa_maps), where each vCPU thread, each
emulator thread and each I/O thread may run (their affinity, and libvirt's iothreadinfo).
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import pytest
from lab_checks import (
    DEDICATED,
    FLOATING,
    MIN_ON_NODE,
    MIN_TOUCHED,
    POLICY_OF_MODE,
    VCPU_THREAD,
    ModesRun,
    PlannedGuest,
    memory_by_policy,
    parse_cpuset,
    share_on,
)

ALL = [guest["name"] for guest in FLOATING + DEDICATED]
WITH_IOTHREADS = [guest["name"] for guest in FLOATING + DEDICATED if "iothreads" in guest["spec"]]
# Pages below 2 MiB are the payload's own and the firmware's: it writes every page from there up.
UNTOUCHED_KIB = 2048


def planned_memory(guest: PlannedGuest) -> dict[tuple[str, frozenset[int]], int]:
    """KiB per (numa_maps policy, policy nodes), from the cells vnuma_domain planned."""
    policy = POLICY_OF_MODE[guest.layout["memory_mode"]]
    planned: Counter[tuple[str, frozenset[int]]] = Counter()
    for cell in guest.layout["cells"]:
        planned[policy, parse_cpuset(cell["memory_nodes"])] += cell["memory_kib"]
    return dict(planned)


def host_cpus_of_nodes(run: ModesRun, nodes: frozenset[int]) -> frozenset[int]:
    return frozenset().union(*(run.node_cpus[node] for node in nodes))


def test_every_mode_meets_every_distribution_and_pinning(modes_run: ModesRun) -> None:
    layouts = [guest.layout for guest in modes_run.guests.values()]
    combos = {(layout["mode"], layout["distribution"]) for layout in layouts}
    assert combos >= {
        (mode, distribution)
        for mode in ("host", "node")
        for distribution in ("contiguous", "siblings", "round-robin", "interleave")
    }
    assert {layout["pinning"] for layout in layouts} == {"node", "core", "thread", "none"}
    assert {layout["memory_mode"] for layout in layouts} == set(POLICY_OF_MODE)


def test_host_mode_mirrors_the_nodes_with_cpus(modes_run: ModesRun) -> None:
    with_cpus = [node.id for node in modes_run.host.topology.nodes if node.cpus]
    for guest in modes_run.guests.values():
        if guest.layout["mode"] == "host":
            assert [cell["host_nodes"] for cell in guest.layout["cells"]] == [str(node) for node in with_cpus]


def test_a_cell_per_host_node_includes_a_memory_only_cell_on_the_cpu_less_node(modes_run: ModesRun) -> None:
    # node-contiguous asks for every lab node, the CPU-less one included: one cell each, and the cell on
    # the CPU-less node has memory and no vCPUs (its memory's placement is checked below like any cell's).
    cells = modes_run.guests["lab-mode-node-contiguous"].layout["cells"]
    assert sorted(parse_cpuset(cell["memory_nodes"]) for cell in cells) == [
        frozenset({node}) for node in sorted(modes_run.node_cpus)
    ]
    for cell in cells:
        (node,) = parse_cpuset(cell["memory_nodes"])
        assert bool(parse_cpuset(cell["vcpus"])) == bool(modes_run.node_cpus[node]), cell
        assert cell["memory_kib"] > 0, cell


@pytest.mark.parametrize("name", ALL)
def test_each_cells_memory_is_on_its_planned_nodes(modes_run: ModesRun, name: str) -> None:
    guest = modes_run.guests[name]
    huge = guest.layout["hugepages_kib"] is not None
    planned = planned_memory(guest)
    found = memory_by_policy(guest.kernel.regions, huge=huge)
    everywhere = parse_cpuset(guest.layout["numatune"]["nodeset"])
    if guest.layout["memory_mode"] == "restrictive":
        # No memory policy: cgroups' cpuset.mems confine each vCPU thread to its cell's nodes and the
        # rest of QEMU to all of the guest's.  A page lands where the thread that first touches it may
        # allocate, so libvirt 9.0 does not keep each cell's memory on its node under 'restrictive'.
        assert found == {}, f"{name}: restrictive set a memory policy: {found}"
        cells = {vcpu: cell for cell in guest.layout["cells"] for vcpu in parse_cpuset(cell["vcpus"])}
        for thread in guest.kernel.threads:
            match = VCPU_THREAD.fullmatch(thread.name)
            allowed = parse_cpuset(cells[int(match.group(1))]["memory_nodes"]) if match else everywhere
            assert thread.mems == allowed, f"{name}: thread {thread.name} may allocate on {sorted(thread.mems)}"
        return
    # Under preferred and interleave libvirt also gives the whole QEMU process the guest-wide <numatune>
    # policy: QEMU's own memory carries it, next to the cells' mappings.
    mode = guest.layout["memory_mode"]
    process_wide = ("prefer (many)" if mode == "preferred" else POLICY_OF_MODE[mode], everywhere)
    if mode != "strict" and process_wide not in planned:
        found.pop(process_wide, None)
    assert set(found) == set(planned), f"{name}: numa_maps policies {sorted(found)}, planned {sorted(planned)}"
    for (policy, nodes), planned_kib in planned.items():
        counts = found[policy, nodes]
        resident = sum(counts.values())
        where = f"{name}: {policy}:{sorted(nodes)} {dict(counts)} KiB"
        assert MIN_TOUCHED * planned_kib - UNTOUCHED_KIB <= resident <= planned_kib, where
        assert share_on(counts, nodes) >= MIN_ON_NODE, where
        if policy == "interleave":
            # Interleaving deals pages round-robin: every node of the set holds its share.
            for node in nodes:
                assert counts[node] >= 0.8 * resident / len(nodes), where


@pytest.mark.parametrize("name", ALL)
def test_each_vcpu_thread_runs_on_its_planned_cpus(modes_run: ModesRun, name: str) -> None:
    guest = modes_run.guests[name]
    affinity = guest.kernel.vcpu_affinity()
    assert sorted(affinity) == list(range(guest.layout["vcpus"]))
    pins = guest.layout["vcpupin"]
    if pins is None:
        # No <vcpupin>: nothing narrows the threads, they may run on every host CPU.
        everywhere = frozenset().union(*modes_run.node_cpus.values())
        assert all(cpus == everywhere for cpus in affinity.values()), f"{name}: {affinity}"
        return
    for cell in guest.layout["cells"]:
        cell_cpus = host_cpus_of_nodes(modes_run, parse_cpuset(cell["host_nodes"]))
        for vcpu in parse_cpuset(cell["vcpus"]):
            planned = parse_cpuset(pins[str(vcpu)])
            assert affinity[vcpu] == planned, f"{name}: vCPU {vcpu} of cell {cell['id']}"
            # The plan itself keeps a vCPU on its own cell's host nodes.
            assert planned <= cell_cpus, f"{name}: vCPU {vcpu} planned off its cell's nodes"


@pytest.mark.parametrize("name", ALL)
def test_emulator_threads_run_where_planned(modes_run: ModesRun, name: str) -> None:
    guest = modes_run.guests[name]
    # Each cell's memory is preallocated by a thread on the host nodes its memory is bound to.
    for cell, cpus in guest.kernel.memory_contexts().items():
        memory_nodes = parse_cpuset(guest.layout["cells"][cell]["memory_nodes"])
        assert cpus == host_cpus_of_nodes(modes_run, memory_nodes), f"{name}: cell {cell}'s memory context"
    if guest.layout["emulatorpin"] is None:
        return
    planned = parse_cpuset(guest.layout["emulatorpin"])
    threads = guest.kernel.emulator_threads()
    assert threads
    for thread in threads:
        assert thread.cpus == planned, f"{name}: emulator thread {thread.tid} ({thread.name})"


def test_dedicated_guests_never_share_a_host_cpu(modes_run: ModesRun) -> None:
    held: dict[str, frozenset[int]] = {}
    for spec in DEDICATED:
        guest = modes_run.guests[spec["name"]]
        affinity = guest.kernel.vcpu_affinity()
        assert all(len(cpus) == 1 for cpus in affinity.values()), f"{guest.name}: {affinity}"
        vcpu_cpus = frozenset().union(*affinity.values())
        assert len(vcpu_cpus) == guest.layout["vcpus"], f"{guest.name}: two vCPUs on one host CPU"
        # An isolated emulator holds its host CPU as a vCPU does.
        isolated = spec["spec"].get("emulator_threads") == "isolate"
        emulator = parse_cpuset(guest.layout["emulatorpin"]) if isolated else frozenset()
        assert not emulator & vcpu_cpus, f"{guest.name}: the emulator shares a vCPU's host CPU"
        held[guest.name] = vcpu_cpus | emulator
    for first, second in combinations(held, 2):
        assert not held[first] & held[second], f"{first} and {second} share host CPUs"
    # Together they use every host CPU: the idle sibling of the single-vCPU core is the only one unused.
    host_cpus = frozenset().union(*modes_run.node_cpus.values())
    [single] = held["lab-mode-core-single"]
    assert host_cpus - frozenset().union(*held.values()) == modes_run.siblings_of(single) - {single}


def test_pinning_core_gives_each_guest_core_a_whole_host_core(modes_run: ModesRun) -> None:
    pair = modes_run.guests["lab-mode-core-siblings"]
    affinity = pair.kernel.vcpu_affinity()
    assert pair.layout["topology"]["threads"] == 2
    cpus = frozenset().union(*affinity.values())
    # Guest core 0 (vCPUs 0 and 1) is one host core's two sibling threads, one each.
    assert cpus == modes_run.siblings_of(next(iter(cpus)))
    single = modes_run.guests["lab-mode-core-single"]
    [cpu] = single.kernel.vcpu_affinity()[0]
    idle = modes_run.siblings_of(cpu) - {cpu}
    assert idle
    for guest in modes_run.guests.values():
        if guest.wave == "dedicated":
            assert not any(idle & cpus for cpus in guest.kernel.vcpu_affinity().values()), guest.name


def test_pinning_thread_holds_one_thread_and_isolate_gives_the_emulator_the_other(modes_run: ModesRun) -> None:
    guest = modes_run.guests["lab-mode-thread-isolate"]
    affinity = guest.kernel.vcpu_affinity()
    assert sorted(affinity) == [0]
    [cpu] = affinity[0]
    emulator = parse_cpuset(guest.layout["emulatorpin"])
    # Pinning thread holds the vCPU's thread only (core would hold its sibling idle): the sibling is free,
    # and emulator_threads isolate takes it, on the node of cell 0.
    assert emulator == modes_run.siblings_of(cpu) - {cpu}, f"emulator on {sorted(emulator)}, vCPU on {cpu}"
    threads = guest.kernel.emulator_threads()
    assert threads and all(thread.cpus == emulator for thread in threads), threads


@pytest.mark.parametrize("name", WITH_IOTHREADS)
def test_io_threads_run_on_their_cells_host_cpus(modes_run: ModesRun, name: str) -> None:
    guest = modes_run.guests[name]
    pins = guest.layout["vcpupin"]
    cells = [cell for cell in guest.layout["cells"] if parse_cpuset(cell["vcpus"])]
    cell_cpus = [
        frozenset().union(*(parse_cpuset(pins[str(vcpu)]) for vcpu in parse_cpuset(cell["vcpus"]))) for cell in cells
    ]
    for cell, cpus in zip(cells, cell_cpus, strict=True):
        assert cpus <= host_cpus_of_nodes(modes_run, parse_cpuset(cell["host_nodes"])), f"{name}: cell {cell['id']}"
    if guest.spec["iothreads"] == "per_cell":
        # One thread per cell with vCPUs, each on its own node's CPUs.
        planned = {number + 1: cpus for number, cpus in enumerate(cell_cpus)}
        assert len(set(planned.values())) == len(cells) > 1, planned
    else:
        # per_disk: the one disk, on the root bus, goes with cell 0.
        planned = {1: cell_cpus[0]}
    assert guest.kernel.iothreadinfo == planned, f"{name}: virsh iothreadinfo"
    assert guest.kernel.iothread_affinity() == planned, f"{name}: QEMU's I/O threads"
