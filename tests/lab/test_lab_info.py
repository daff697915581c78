# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_info, run by ansible-playbook over SSH inside each lab hypervisor, reports its topology file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Lab, LabHost

# The kernel keeps part of every node for itself: a node reports less than the topology gives it.
MIN_MEMORY_SHARE = 0.8


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
