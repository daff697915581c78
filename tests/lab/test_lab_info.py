# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_info, run by ansible-playbook over SSH inside each lab hypervisor, reports its topology file; on lab4,
with guests running, its free memory, free hugepages and the guests' alignment and locality match what the
lab's kernel says (/sys/devices/system/node, /proc/<qemu pid>/numa_maps, the vCPU threads' affinity)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Lab, LabHost
from lab_capacity import CPULESS, SPREAD, CapacityRun, capacity_run_once
from lab_checks import MIN_ON_NODE, MIN_TOUCHED, POLICY_OF_MODE, memory_by_policy, parse_cpuset, share_on

# The kernel keeps part of every node for itself: a node reports less than the topology gives it.
MIN_MEMORY_SHARE = 0.8
# Free memory moves between two reads of it (the page cache, the hypervisor's own processes): vnuma_info's
# figure must lie between the kernel's readings right before and after it, give or take this.
FREE_SLACK_KIB = 16 * 1024
# vnuma_info works out locality from the definition (memory bound to several nodes spread evenly, a vCPU
# running evenly over its CPUs); numa_maps gives the pages the kernel really placed.  They agree to this.
LOCALITY_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def reports(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("lab-info")
    lab.playbook("info.yml", "--extra-vars", f"lab_out={out}")
    return {name: json.loads((out / f"{name}.json").read_text()) for name in lab.hosts}


def hosts(lab: Lab) -> list[LabHost]:
    return sorted(lab.hosts.values(), key=lambda host: host.topology.name)


def test_every_lab_hypervisor_reports_its_nodes_cpus_and_smt(lab: Lab, reports: dict[str, dict[str, Any]]) -> None:
    for host in hosts(lab):
        topology = host.topology
        report = reports[topology.name]["host"]
        assert [node["id"] for node in report["nodes"]] == [node.id for node in topology.nodes]
        assert [node["cpu_count"] for node in report["nodes"]] == [node.cpus for node in topology.nodes]
        assert report["cpu_count"] == topology.cpus
        assert report["sockets"] == topology.sockets
        assert report["threads_per_core"] == topology.threads_per_core
        for node, wanted in zip(report["nodes"], topology.nodes, strict=True):
            assert node["threads_per_core"] == (topology.threads_per_core if wanted.cpus else 0)
            assert node["cores"] == wanted.cpus // topology.threads_per_core


def test_the_cpu_less_node_is_reported_without_cpus(lab: Lab, reports: dict[str, dict[str, Any]]) -> None:
    cpu_less = [(host, node) for host in hosts(lab) for node in host.topology.nodes if not node.cpus]
    assert cpu_less, "the lab tests' topologies have a CPU-less node"
    for host, node in cpu_less:
        reported = reports[host.topology.name]["host"]["nodes"][node.id]
        assert (reported["cpus"], reported["cpu_count"], reported["socket"]) == ("", 0, None)
        assert reported["memory_kib"] > 0


def test_memory_distances_and_hugepages_per_node(lab: Lab, reports: dict[str, dict[str, Any]]) -> None:
    for host in hosts(lab):
        topology = host.topology
        report = reports[topology.name]["host"]
        assert report["distances_reported"] is True
        for node, wanted in zip(report["nodes"], topology.nodes, strict=True):
            assert MIN_MEMORY_SHARE * wanted.memory_mib * 1024 <= node["memory_kib"] <= wanted.memory_mib * 1024
            assert node["distances"] == {str(other): d for other, d in enumerate(topology.distances[wanted.id])}
            pools = {pool["size_kib"]: pool for pool in node["hugepages"]}
            assert pools[2048]["total"] == wanted.hugepages_2m
            assert pools[2048]["free"] == wanted.hugepages_2m


def test_the_lab_runs_the_collection_with_debians_libvirt_python(lab: Lab) -> None:
    for host in hosts(lab):
        versions = host.run("dpkg-query -W -f '${Package} ${Version}\\n' python3-libvirt python3-lxml libvirt-daemon")
        assert {line.split()[0] for line in versions.splitlines()} == {
            "python3-libvirt",
            "python3-lxml",
            "libvirt-daemon",
        }
        # The lab never uses this machine's libvirtd: its own answers inside it.
        assert "<capabilities>" in host.run("virsh -c qemu:///system capabilities")


def test_the_inventory_reaches_each_hypervisor_on_loopback(lab: Lab) -> None:
    text = Path(lab.lab_dir.inventory).read_text()
    inventory = json.loads(text[text.index("{") :])
    listed = inventory["all"]["children"]["vnuma_lab"]["hosts"]
    assert set(listed) == set(lab.hosts)
    for name, variables in listed.items():
        assert variables["ansible_host"] == "127.0.0.1"
        assert variables["ansible_port"] == lab.hosts[name].running.port
        assert variables["ansible_user"] == "root"


@pytest.fixture(scope="module")
def capacity_run(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> CapacityRun:
    return capacity_run_once(lab, tmp_path_factory)


def test_free_memory_and_free_hugepages_are_the_kernels(capacity_run: CapacityRun) -> None:
    before, after = capacity_run.nodes_before, capacity_run.nodes_after
    report = capacity_run["info"]["host"]
    assert [node["id"] for node in report["nodes"]] == sorted(before.free_kib)
    for node in report["nodes"]:
        node_id = node["id"]
        low, high = sorted((before.free_kib[node_id], after.free_kib[node_id]))
        assert low - FREE_SLACK_KIB <= node["free_kib"] <= high + FREE_SLACK_KIB, (node_id, node["free_kib"], low, high)
        pool = next(pool for pool in node["hugepages"] if pool["size_kib"] == 2048)
        low_pages, high_pages = sorted((before.free_2m[node_id], after.free_2m[node_id]))
        assert low_pages <= pool["free"] <= high_pages, (node_id, pool, low_pages, high_pages)
    assert report["free_kib"] == sum(node["free_kib"] for node in report["nodes"])


def _nodes(value: object) -> frozenset[int]:
    """A node list as the report gives it: a list of ids or libvirt's text ("1-2")."""
    if isinstance(value, list):
        return frozenset(int(node) for node in value)
    return parse_cpuset(str(value))


def test_each_running_guests_alignment_and_locality_match_numa_maps(capacity_run: CapacityRun) -> None:
    """What vnuma_info works out from the live definition against where the kernel put the pages.

    libvirt gives each cell its configured size; numa_maps counts the pages faulted in, a little less
    (the payload starts at 2 MiB, and QEMU's own ROMs have other policies).  So shares are compared,
    not sizes, and the touched share is checked apart.
    """
    node_of = {cpu: node for node, cpus in capacity_run.node_cpus.items() for cpu in cpus}
    reported = {guest["name"]: guest for guest in capacity_run["info"]["guests"]}
    assert set(reported) == {CPULESS, SPREAD}
    for name, guest in reported.items():
        kernel = capacity_run.guests[name]
        assert guest["running"] is True and guest["source"] == "live"
        by_policy = memory_by_policy(kernel.regions)
        affinity = kernel.vcpu_affinity()
        weighted = 0.0
        vcpus = 0
        for cell, aligned in zip(guest["layout"]["cells"], guest["alignment"]["cells"], strict=True):
            where = (POLICY_OF_MODE[cell["memory_mode"]], _nodes(cell["memory_nodes"]))
            pages = by_policy[where]
            bound = where[1]
            assert sum(pages.values()) >= MIN_TOUCHED * cell["memory_kib"], (name, cell["id"], dict(pages))
            assert share_on(pages, bound) >= MIN_ON_NODE, (name, cell["id"], dict(pages))
            touched = sum(pages.values())
            memory_share = {node: kib / touched for node, kib in pages.items()}
            reported_memory = {int(node): kib / cell["memory_kib"] for node, kib in cell["memory_share_kib"].items()}
            for node in set(memory_share) | set(reported_memory):
                assert abs(memory_share.get(node, 0.0) - reported_memory.get(node, 0.0)) <= LOCALITY_TOLERANCE, (
                    name,
                    cell["id"],
                    memory_share,
                    reported_memory,
                )
            if not cell["vcpus"]:
                # A memory-only cell: aligned when its memory is bound at all.
                assert aligned["aligned"] is True
                continue
            cell_vcpus = sorted(parse_cpuset(cell["vcpus"]) if isinstance(cell["vcpus"], str) else cell["vcpus"])
            cpu_share: dict[int, float] = {}
            for vcpu in cell_vcpus:
                allowed = affinity[vcpu]
                for cpu in allowed:
                    cpu_share[node_of[cpu]] = cpu_share.get(node_of[cpu], 0.0) + 1 / len(allowed) / len(cell_vcpus)
            reported_cpu = {int(node): share for node, share in cell["cpu_share"].items()}
            assert {node: round(share, 3) for node, share in cpu_share.items()} == {
                node: round(share, 3) for node, share in reported_cpu.items() if share
            }
            measured = sum(share * memory_share.get(node, 0.0) for node, share in cpu_share.items())
            assert abs(aligned["locality"] - measured) <= LOCALITY_TOLERANCE, (name, cell["id"], measured, aligned)
            assert aligned["aligned"] is (set(cpu_share) == set(memory_share))
            weighted += measured * len(cell_vcpus)
            vcpus += len(cell_vcpus)
        assert abs(guest["alignment"]["locality"] - weighted / vcpus) <= LOCALITY_TOLERANCE, (name, guest["alignment"])
    # What the two guests are about: one aligned guest, its memory-only cell included; one whose single cell
    # spreads over two nodes, each vCPU on either, so half of its accesses are remote.
    assert reported[CPULESS]["alignment"]["aligned"] is True
    assert reported[CPULESS]["alignment"]["locality"] == 1.0
    assert abs(reported[SPREAD]["alignment"]["locality"] - 0.5) <= LOCALITY_TOLERANCE
