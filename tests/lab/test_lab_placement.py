# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Real placement on a multi-node lab hypervisor: a guest laid out by vnuma_domain (strict binding) has its
memory on the planned host nodes (the lab's /proc/<qemu pid>/numa_maps) and its vCPU threads' affinity
is the planned set."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator

import pytest
from conftest import Lab, LabHost
from lab_checks import parse_cpuset
from touch_payload import payload

GUEST = "vnuma-lab-place"
MEMORY_MIB = 256
# At least this share of a cell's pages sits on its bound node(s).
MIN_ON_NODE = 0.99
# The payload writes every page from 2 MiB up: nearly all of the guest's memory is faulted in.
MIN_TOUCHED = 0.9
HOST = "lab4"


@pytest.fixture(scope="module")
def placed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabHost, dict[str, object]]]:
    host = lab.host(HOST)
    out = tmp_path_factory.mktemp("lab-place")
    (out / "touch.bin").write_bytes(payload())
    nodeset = ",".join(str(node.id) for node in host.topology.nodes)
    try:
        lab.playbook(
            "place.yml",
            "--limit",
            HOST,
            "--extra-vars",
            json.dumps(
                {
                    "lab_out": str(out),
                    "guest": GUEST,
                    "payload_src": str(out / "touch.bin"),
                    "guest_memory_mib": MEMORY_MIB,
                    "guest_vcpus": host.topology.cpus,
                    "guest_nodeset": nodeset,
                }
            ),
        )
        yield host, json.loads((out / "applied.json").read_text())
    finally:
        host.run(
            f"virsh -c qemu:///system destroy {GUEST} >/dev/null 2>&1;"
            f" virsh -c qemu:///system undefine {GUEST} >/dev/null 2>&1;"
            f" rm -f /var/lib/libvirt/images/{GUEST}.bin /var/log/libvirt/qemu/{GUEST}.serial.log; true"
        )


def live_cells(host: LabHost) -> tuple[dict[int, frozenset[int]], dict[int, frozenset[int]], dict[int, frozenset[int]]]:
    """From the running guest's XML: each cell's vCPUs and bound host nodes, and each vCPU's pin."""
    domain = ET.fromstring(host.run(f"virsh -c qemu:///system dumpxml {GUEST}"))
    vcpus = {int(cell.get("id", "")): parse_cpuset(cell.get("cpus", "")) for cell in domain.iter("cell")}
    nodes = {
        int(memnode.get("cellid", "")): parse_cpuset(memnode.get("nodeset", "")) for memnode in domain.iter("memnode")
    }
    pins = {int(pin.get("vcpu", "")): parse_cpuset(pin.get("cpuset", "")) for pin in domain.iter("vcpupin")}
    return vcpus, nodes, pins


def qemu_pid(host: LabHost) -> int:
    return int(host.run(f"cat /run/libvirt/qemu/{GUEST}.pid").strip())


def test_every_cell_is_bound_to_its_own_host_node_including_the_cpu_less_one(
    placed: tuple[LabHost, dict[str, object]],
) -> None:
    host, _applied = placed
    vcpus, nodes, _pins = live_cells(host)
    assert sorted(nodes) == sorted(vcpus) == [node.id for node in host.topology.nodes]
    assert all(len(bound) == 1 for bound in nodes.values())
    assert {next(iter(bound)) for bound in nodes.values()} == {node.id for node in host.topology.nodes}
    for cell, bound in nodes.items():
        node = host.topology.nodes[next(iter(bound))]
        assert bool(vcpus[cell]) == bool(node.cpus), f"cell {cell} on node {node.id}"


def test_each_cells_memory_is_on_its_bound_node(placed: tuple[LabHost, dict[str, object]]) -> None:
    host, _applied = placed
    _vcpus, nodes, _pins = live_cells(host)
    maps = host.run(f"cat /proc/{qemu_pid(host)}/numa_maps")
    per_policy: dict[str, Counter[int]] = {}
    for line in maps.splitlines():
        policy = re.search(r" bind:([0-9,-]+)", line)
        if not policy:
            continue
        counts = per_policy.setdefault(policy.group(1), Counter())
        for node, pages in re.findall(r" N(\d+)=(\d+)", line):
            counts[int(node)] += int(pages)
    wanted = {",".join(map(str, sorted(bound))) for bound in nodes.values()}
    assert set(per_policy) == wanted, maps
    touched = 0
    for policy, counts in per_policy.items():
        bound = parse_cpuset(policy)
        total = sum(counts.values())
        on_node = sum(pages for node, pages in counts.items() if node in bound)
        assert total and on_node / total >= MIN_ON_NODE, f"bind:{policy}: {dict(counts)}"
        touched += total
    assert touched * 4 >= MIN_TOUCHED * MEMORY_MIB * 1024, f"only {touched} pages touched: {maps}"


def test_each_vcpu_thread_runs_on_its_cells_host_cpus(placed: tuple[LabHost, dict[str, object]]) -> None:
    host, _applied = placed
    vcpus, nodes, pins = live_cells(host)
    node_cpus = {
        node.id: parse_cpuset(host.run(f"cat /sys/devices/system/node/node{node.id}/cpulist"))
        for node in host.topology.nodes
    }
    pid = qemu_pid(host)
    threads = host.run(
        f'for task in /proc/{pid}/task/*; do echo "$(cat $task/comm)|$(grep Cpus_allowed_list $task/status)"; done'
    )
    affinity = {}
    for line in threads.splitlines():
        name, _bar, status = line.partition("|")
        match = re.fullmatch(r"CPU (\d+)/TCG", name.strip())
        if match:
            affinity[int(match.group(1))] = parse_cpuset(status.split(":", 1)[1])
    assert sorted(affinity) == sorted(vcpu for cell in vcpus.values() for vcpu in cell)
    for cell, cell_vcpus in vcpus.items():
        planned = set().union(*(node_cpus[node] for node in nodes[cell]))
        for vcpu in cell_vcpus:
            assert pins[vcpu] == planned, f"vCPU {vcpu} of cell {cell}"
            assert affinity[vcpu] == planned, f"vCPU {vcpu} thread of cell {cell}"
