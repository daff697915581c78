# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""mode auto on a real multi-node hypervisor (lab4, tests/lab/four-node.yml), one playbook run.

A series of guests placed by mode auto on the nodes with CPUs: no node is given more than the capacity
check says it has, each guest starts and its memory is on the nodes chosen (numa_maps), a rerun with the
guests running keeps every choice, and a guest larger than what is left is refused with nothing changed.
The reserve is sized from what the collection finds left on the roomiest node, and the series' first
guest asks for 2 MiB more than that: no single node holds it, so mode auto must take two, the nearest
that do, and its memory must be on both.  Other lab tests' guests running at the same time only shift
the choices, which are checked against the figures each choice reports.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Lab, LabHost
from lab_capacity import parse_kernel
from lab_checks import MIN_ON_NODE, MIN_TOUCHED, GuestReport, memory_by_policy, parse_cpuset, share_on
from touch_payload import payload

HOST = "lab4"
PREFIX = "lab-auto-"
# Room on the node with CPUs that has the most left (MiB; the others have less by what the host gives them
# less).  The first guest of the series, PAIR, asks for 2 MiB more: it takes two nodes, half on each, which
# need half the room; the rest of the series follows in what is left.  Small guests: the nested TCG
# touches every page.
ROOM_MIB = 384
PAIR = "lab-auto-pair"
PAIR_MIB = ROOM_MIB + 2
SERIES = [("a", 96), ("b", 96), ("c", 96), ("d", 128), ("e", 64)]
REFUSED = PREFIX + "z"
VCPUS = 2
MIB = 1024


@dataclass(frozen=True)
class AutoRun:
    result: dict[str, Any]
    cpu_nodes: frozenset[int]
    guests: dict[str, GuestReport]
    # The lab host's node distances, (from, to) -> distance.
    distances: dict[tuple[int, int], int]

    def __getitem__(self, key: str) -> Any:
        return self.result[key]

    def placed(self) -> dict[str, dict[str, Any]]:
        """The guests of the series that were placed (others' guests may have left no room for the last)."""
        return {entry["name"]: entry for entry in self.result["placed"]["guests"] if entry["error"] is None}

    def series_sizes(self) -> list[tuple[str, int]]:
        """The placed guests of the call with their memory (MiB), PAIR first."""
        placed = self.placed()
        sizes = [(PAIR, PAIR_MIB)] + [(PREFIX + name, memory) for name, memory in SERIES]
        return [(name, memory) for name, memory in sizes if name in placed]


def remove_guests(host: LabHost) -> None:
    """Destroy and undefine this run's guests, whatever a failed run left (other lab tests' guests stay)."""
    names = " ".join([PAIR] + [PREFIX + name for name, _memory in SERIES] + [REFUSED])
    host.run(
        f"for guest in {names}; do"
        " virsh -c qemu:///system destroy $guest >/dev/null 2>&1;"
        " virsh -c qemu:///system undefine $guest >/dev/null 2>&1;"
        " rm -f /var/log/libvirt/qemu/$guest.serial.log /tmp/$guest.xml /tmp/$guest.err; done;"
        f" rm -f /var/lib/libvirt/images/{PREFIX}touch.bin; true"
    )


@pytest.fixture(scope="module")
def auto_run(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AutoRun]:
    host = lab.host(HOST)
    out = tmp_path_factory.mktemp("lab-auto")
    cpu_nodes = frozenset(node.id for node in host.topology.nodes if node.cpus)
    variables = {
        "lab_out": str(out),
        "payload_base64": base64.b64encode(payload()).decode(),
        "series": [{"name": PREFIX + name, "memory_mib": memory} for name, memory in SERIES],
        "refused": {"name": REFUSED, "memory_mib": 64},
        "pair_name": PAIR,
        "vcpus": VCPUS,
        "room_mib": ROOM_MIB,
        "cpu_node_ids": sorted(cpu_nodes),
    }
    remove_guests(host)
    try:
        lab.playbook("auto.yml", "--limit", HOST, "--extra-vars", json.dumps(variables))
    finally:
        remove_guests(host)
    result = json.loads((out / "auto.json").read_text())
    _node_cpus, guests = parse_kernel(result["kernel"].replace("\r", ""))
    matrix = host.topology.distances
    distances = {(a, b): matrix[a][b] for a in range(len(matrix)) for b in range(len(matrix))}
    yield AutoRun(result, cpu_nodes, guests, distances)


def test_the_series_fills_the_nodes_with_cpus_and_no_node_is_given_more_than_it_has(auto_run: AutoRun) -> None:
    entries = auto_run["placed"]["guests"]
    assert [entry["name"] for entry in entries] == [PAIR] + [PREFIX + name for name, _memory in SERIES]
    placed = auto_run.placed()
    # The first two always find the room the reserve left them; a later one may find other lab tests' guests.
    assert PAIR in placed and PREFIX + SERIES[0][0] in placed, (entries[0]["error"], entries[1]["error"])
    for entry in entries:
        if entry["error"] is not None:
            # Refused for room, and only for room, naming what was left.
            assert entry["error"].startswith(f"guest {entry['name']}: mode auto finds no host nodes that hold"), entry
            assert entry["written"] == []
    planned: dict[int, int] = {}
    for guest, memory in auto_run.series_sizes():
        entry = placed[guest]
        choice = entry["auto"]
        nodes = parse_cpuset(choice["nodes"])
        assert choice["how"] == "chosen"
        # Only nodes with CPUs: the memory-only node 3 is never chosen.
        assert nodes <= auto_run.cpu_nodes, choice
        rooms = {room["id"]: room for room in choice["nodes_left"]}
        # The fewest nodes: with two, no single node had the guest's memory left when it was chosen.
        if len(nodes) > 1:
            assert all(rooms[node]["free_kib"] < memory * MIB for node in auto_run.cpu_nodes), choice
        # What each node was given is what it had left at most.
        for node in nodes:
            assert 0 < rooms[node]["planned_kib"] <= rooms[node]["free_kib"], choice
            planned[node] = planned.get(node, 0) + rooms[node]["planned_kib"]
        cells = entry["layout"]["cells"]
        assert {cell["memory_nodes"] for cell in cells} == {str(node) for node in nodes}
        assert sum(cell["memory_kib"] for cell in cells) == memory * MIB
    # Summed over the series: no node is given more than the capacity check of the placing call says it has
    # left (its memory less its pools, the reserve and what the other counted guests bind there).  The series
    # was shut off then, so that call counted the other guests only.
    for node in auto_run["placed"]["capacity"]["nodes"]:
        assert node["reserved_kib"] == auto_run["reserved_kib"]
        assert planned.get(node["id"], 0) <= node["available_kib"] - node["demand_kib"], node
    assert sum(planned.values()) == sum(memory for _guest, memory in auto_run.series_sizes()) * MIB


def test_every_guest_runs_with_its_memory_on_the_nodes_chosen(auto_run: AutoRun) -> None:
    assert set(auto_run.guests) == set(auto_run.placed())
    for guest, memory in auto_run.series_sizes():
        entry = auto_run.placed()[guest]
        kernel = auto_run.guests[guest]
        by_policy = memory_by_policy(kernel.regions)
        for cell in entry["layout"]["cells"]:
            node = frozenset({int(cell["memory_nodes"])})
            on_node = by_policy[("bind", node)]
            # Strict binding: the cell's pages are on its node, and the payload touched them.
            assert share_on(on_node, node) >= MIN_ON_NODE, (guest, cell, dict(on_node))
            assert sum(on_node.values()) >= MIN_TOUCHED * cell["memory_kib"], (guest, cell, dict(on_node))
        # Every bound mapping of the guest's QEMU is on the nodes chosen (the guest-wide <memory> and the cells).
        chosen = parse_cpuset(entry["auto"]["nodes"])
        assert all(nodes <= chosen for policy, nodes in by_policy if policy == "bind"), (guest, list(by_policy))
        assert memory * MIB == sum(cell["memory_kib"] for cell in entry["layout"]["cells"])


def test_a_rerun_with_the_guests_running_keeps_every_choice_and_writes_nothing(auto_run: AutoRun) -> None:
    again = {entry["name"]: entry for entry in auto_run["again"]["guests"]}
    assert auto_run["again"]["changed"] is False
    for name, entry in auto_run.placed().items():
        assert again[name]["auto"]["how"] == "kept"
        assert again[name]["auto"]["nodes"] == entry["auto"]["nodes"]
        assert again[name]["changes"] == [] and again[name]["written"] == []
    # Now the guests run, and the capacity check counts each on the nodes it was placed on.
    for node in auto_run["again"]["capacity"]["nodes"]:
        counted = {share["name"]: share for share in node["guests"] if share["name"].startswith(PREFIX)}
        for name, share in counted.items():
            assert share["running"] is True
            assert node["id"] in parse_cpuset(auto_run.placed()[name]["auto"]["nodes"]), (name, node["id"])
    placed_on = {share["name"] for node in auto_run["again"]["capacity"]["nodes"] for share in node["guests"]}
    assert set(auto_run.placed()) <= placed_on


def test_the_next_guest_that_does_not_fit_is_refused_and_nothing_changes(auto_run: AutoRun) -> None:
    refused = auto_run["too_big"]
    assert refused["changed"] is False
    message = refused["msg"]
    assert message.startswith(f"guest {REFUSED}: mode auto finds no host nodes that hold the guest: it needs "), message
    assert "free: node 0: " in message and "node 3" not in message
    assert auto_run["refused_after"] == auto_run["refused_before"]
    assert "<numatune>" not in auto_run["refused_after"]


def test_a_guest_no_single_node_holds_takes_the_nearest_two_and_runs_on_both(auto_run: AutoRun) -> None:
    entry = auto_run.placed()[PAIR]
    choice = entry["auto"]
    nodes = parse_cpuset(choice["nodes"])
    rooms = {room["id"]: room for room in choice["nodes_left"]}
    assert choice["how"] == "chosen" and len(nodes) == 2, choice
    assert choice["why"].startswith("no single host node holds it"), choice["why"]
    # Forced: no node with CPUs had the guest's memory left, and the two give half each.
    assert all(rooms[node]["free_kib"] < PAIR_MIB * MIB for node in auto_run.cpu_nodes), choice
    half = PAIR_MIB // 2 * MIB
    assert [rooms[node]["planned_kib"] for node in sorted(nodes)] == [half, half], choice
    # The nearest pair of those that had room for half each.
    holding = [
        (a, b)
        for a in sorted(auto_run.cpu_nodes)
        for b in sorted(auto_run.cpu_nodes)
        if a < b and min(rooms[a]["free_kib"], rooms[b]["free_kib"]) >= half
    ]
    assert auto_run.distances[min(nodes), max(nodes)] == min(auto_run.distances[pair] for pair in holding), holding
    # Its memory is on both nodes, each cell's on its own (numa_maps of its running QEMU).
    by_policy = memory_by_policy(auto_run.guests[PAIR].regions)
    cells = entry["layout"]["cells"]
    assert sorted(int(cell["memory_nodes"]) for cell in cells) == sorted(nodes)
    for cell in cells:
        node = frozenset({int(cell["memory_nodes"])})
        on_node = by_policy[("bind", node)]
        assert share_on(on_node, node) >= MIN_ON_NODE, (cell, dict(on_node))
        assert sum(on_node.values()) >= MIN_TOUCHED * cell["memory_kib"], (cell, dict(on_node))
