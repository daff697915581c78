# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_info's ``host`` dict from a topology: the values each host fixture must give."""

from __future__ import annotations

import json

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._report.host import host_report
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES, host

GIB = 1024 * 1024
ALL_HOSTS = sorted(path.stem for path in CAPABILITIES.glob("*.xml"))


def test_the_cover_letters_ring() -> None:
    report = host_report(host("seed-4node-ring"))
    assert [node["cpus"] for node in report["nodes"]] == ["0-3", "4-7", "8-11", "12-15"]
    assert report["nodes"][0] == {
        "id": 0,
        "cpus": "0-3",
        "cpu_count": 4,
        "offline_cpus": "",
        "cores": 4,
        "threads_per_core": 1,
        "socket": 0,
        "memory_kib": 8 * GIB,
        "free_kib": None,
        # The 4 KiB pages are the node's normal memory; the others are its (empty) hugepage pools.
        "hugepages": [{"size_kib": 2048, "total": 0, "free": None}, {"size_kib": 1048576, "total": 0, "free": None}],
        "distances": {"0": 10, "1": 21, "2": 31, "3": 21},
    }
    assert (report["sockets"], report["cores"], report["threads_per_core"], report["cpu_count"]) == (4, 16, 1, 16)
    assert report["memory_kib"] == 32 * GIB
    assert report["free_kib"] is None
    assert report["distances_reported"] is True
    assert report["cpus"][5] == {
        "id": 5,
        "node": 1,
        "socket": 1,
        "die": 0,
        "core": 1,
        "siblings": "5",
        "online": True,
    }


def test_smt_siblings_and_hugepage_pools() -> None:
    report = host_report(host("intel-2s-smt2"), free_pages={0: {2048: 1000}})
    assert report["threads_per_core"] == 2
    assert (report["sockets"], report["cores"], report["cpu_count"]) == (2, 16, 32)
    assert report["cpus"][0]["siblings"] == "0,16"
    assert report["nodes"][0]["cores"] == 8
    assert report["nodes"][0]["hugepages"][0] == {"size_kib": 2048, "total": 1024, "free": 1000}
    # Node 1's pools are not known to the caller: null, not zero.
    assert report["nodes"][1]["hugepages"][0] == {"size_kib": 2048, "total": 1024, "free": None}


def test_free_memory_per_node_and_in_total() -> None:
    topology = host("seed-4node-ring")
    report = host_report(topology, free_kib={0: 1, 1: 2, 2: 3, 3: 4})
    assert [node["free_kib"] for node in report["nodes"]] == [1, 2, 3, 4]
    assert report["free_kib"] == 10
    # A total of some nodes only would be a wrong figure: null.
    partial = host_report(topology, free_kib={0: 1})
    assert [node["free_kib"] for node in partial["nodes"]] == [1, None, None, None]
    assert partial["free_kib"] is None


def test_offline_cpus_are_listed_apart_and_not_counted() -> None:
    report = host_report(host("offline-cpus"))
    node0 = report["nodes"][0]
    assert (node0["cpus"], node0["cpu_count"]) == ("0,8,16,24", 4)
    assert node0["offline_cpus"] == "1-7,9-15,17-23,25-31"
    assert report["cpu_count"] == 7
    assert len(report["cpus"]) == 64
    offline = report["cpus"][1]
    assert offline == {"id": 1, "node": 0, "socket": None, "die": None, "core": None, "siblings": "", "online": False}
    # POWER's 64 KiB pages are its normal memory: no hugepage pool listed for them.
    assert [pool["size_kib"] for pool in node0["hugepages"]] == [16384, 16777216]


def test_memory_only_nodes_and_sparse_ids() -> None:
    cxl = host_report(host("intel-snc2-cxl"))
    node4 = cxl["nodes"][4]
    assert (node4["cpus"], node4["cpu_count"], node4["cores"], node4["threads_per_core"], node4["socket"]) == (
        "",
        0,
        0,
        0,
        None,
    )
    assert node4["memory_kib"] == 64 * GIB
    sparse = host_report(host("sparse-ids"))
    assert [node["id"] for node in sparse["nodes"]] == [0, 8]
    assert sparse["nodes"][1]["distances"] == {"0": 40, "8": 10}


def test_no_distances_reported_gives_libvirts_defaults() -> None:
    report = host_report(host("no-distances"))
    assert report["distances_reported"] is False
    assert report["nodes"][0]["distances"] == {"0": 10, "1": 20}


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_every_fixture_reports_consistent_json(name: str) -> None:
    topology = host(name)
    report = host_report(topology)
    assert json.loads(json.dumps(report)) == report, "the report must be plain JSON"
    assert sum(node["cpu_count"] for node in report["nodes"]) == report["cpu_count"]
    assert sum(node["memory_kib"] for node in report["nodes"]) == report["memory_kib"]
    assert sum(1 for cpu in report["cpus"] if cpu["online"]) == report["cpu_count"]
    assert [cpu["id"] for cpu in report["cpus"]] == sorted(cpu["id"] for cpu in report["cpus"])
    for node in report["nodes"]:
        assert sorted(node["distances"]) == sorted(str(other) for other in topology.node_ids)
        assert [pool["size_kib"] for pool in node["hugepages"]] == list(topology.node(node["id"]).hugepage_sizes)
