# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Host capabilities XML -> HostTopology, on every host shape in the fixtures, and back."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, TopologyError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCpu, HostNode, HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import (
    parse_capabilities,
    read_host_capabilities,
)
from ansible_collections.vnuma.libvirt.tests.support.hostgen import FIXTURES as GENERATED
from ansible_collections.vnuma.libvirt.tests.support.hostgen import GIB, HostShape, build_capabilities
from ansible_collections.vnuma.libvirt.tests.support.hosts import parsed_hosts_clear
from ansible_collections.vnuma.libvirt.tests.support.render_capabilities import render_capabilities

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "capabilities"

T = TypeVar("T")


def read(name: str) -> str:
    return (FIXTURES / f"{name}.xml").read_text(encoding="utf-8")


def each(ids: Iterable[int], value: T) -> dict[int, T]:
    return dict.fromkeys(ids, value)


@dataclass(frozen=True)
class Host:
    """What a fixture host is known to be, written out independently of the generator."""

    nodes: tuple[int, ...]
    cpus: dict[int, str]  # node -> online CPUs, cpuset syntax
    cores: dict[int, int]  # node -> physical cores with an online thread
    threads: dict[int, int]  # node -> threads per core
    memory_kib: dict[int, int]
    pages: dict[int, tuple[tuple[int, int], ...]]  # node -> (page KiB, count), for the nodes listed
    distances: dict[tuple[int, int], int]  # (from, to) -> distance, reported or default
    sockets: dict[int, int | None]
    first_core: dict[int, tuple[int, ...]]
    page_sizes: tuple[int, ...] = (4, 2048, 1048576)
    offline: frozenset[int] = frozenset()
    reports_distances: bool = True
    cpu_nodes: tuple[int, ...] | None = None  # default: every node
    l3_banks: tuple[str, ...] = ()  # the L3 banks' online CPUs, cpuset syntax, in bank order

    @property
    def expected_cpu_nodes(self) -> tuple[int, ...]:
        return self.nodes if self.cpu_nodes is None else self.cpu_nodes


R4 = range(4)
R16 = range(16)
STD_PAGES_32G = ((4, 7340032), (2048, 1024), (1048576, 0))

# EPYC 7502P (Zen 2) in NPS1: one node of 32 cores, eight CCXs of four cores, 16 MiB of L3 each.
EPYC_NPS1 = Host(
    nodes=(0,),
    cpus={0: "0-63"},
    cores={0: 32},
    threads={0: 2},
    memory_kib={0: 128 * GIB},
    pages={0: ((4, 32 * GIB - 524288), (2048, 1024), (1048576, 0))},
    distances={(0, 0): 10},
    sockets={0: 0},
    first_core={0: (0, 32)},
    l3_banks=tuple(f"{4 * k}-{4 * k + 3},{32 + 4 * k}-{35 + 4 * k}" for k in range(8)),
)

HOSTS: dict[str, Host] = {
    "seed-4node-ring": Host(
        nodes=(0, 1, 2, 3),
        cpus={0: "0-3", 1: "4-7", 2: "8-11", 3: "12-15"},
        cores=each(R4, 4),
        threads=each(R4, 1),
        memory_kib=each(R4, 8 * GIB),
        pages={0: ((4, 2097152), (2048, 0), (1048576, 0))},
        distances={(0, 0): 10, (0, 1): 21, (0, 2): 31, (0, 3): 21, (1, 3): 31, (3, 2): 21},
        sockets={0: 0, 1: 1, 2: 2, 3: 3},
        first_core={0: (0,), 3: (12,)},
    ),
    "intel-2s-smt2": Host(
        nodes=(0, 1),
        cpus={0: "0-7,16-23", 1: "8-15,24-31"},
        cores={0: 8, 1: 8},
        threads={0: 2, 1: 2},
        memory_kib={0: 64 * GIB, 1: 64 * GIB},
        pages={0: ((4, 15728640), (2048, 1024), (1048576, 0))},
        distances={(0, 1): 21, (1, 0): 21, (1, 1): 10},
        sockets={0: 0, 1: 1},
        first_core={0: (0, 16), 1: (8, 24)},
    ),
    "intel-snc2-cxl": Host(
        nodes=(0, 1, 2, 3, 4, 5),
        cpus={0: "0-3,16-19", 1: "4-7,20-23", 2: "8-11,24-27", 3: "12-15,28-31", 4: "", 5: ""},
        cores={0: 4, 1: 4, 2: 4, 3: 4, 4: 0, 5: 0},
        threads={0: 2, 1: 2, 2: 2, 3: 2, 4: 0, 5: 0},
        memory_kib={0: 32 * GIB, 1: 32 * GIB, 2: 32 * GIB, 3: 32 * GIB, 4: 64 * GIB, 5: 64 * GIB},
        pages={0: STD_PAGES_32G, 4: ((4, 15728640), (2048, 1024), (1048576, 0))},
        distances={(0, 1): 12, (0, 2): 21, (0, 4): 22, (0, 5): 31, (3, 5): 22, (4, 5): 31, (5, 4): 31},
        sockets={0: 0, 1: 0, 2: 1, 3: 1, 4: None, 5: None},
        first_core={0: (0, 16), 3: (12, 28)},
        cpu_nodes=(0, 1, 2, 3),
    ),
    "amd-2s-nps4": Host(
        nodes=tuple(range(8)),
        cpus={node: f"{6 * node}-{6 * node + 5},{48 + 6 * node}-{48 + 6 * node + 5}" for node in range(8)},
        cores=each(range(8), 6),
        threads=each(range(8), 2),
        memory_kib=each(range(8), 32 * GIB),
        pages={0: STD_PAGES_32G, 7: STD_PAGES_32G},
        distances={(0, 1): 12, (0, 3): 12, (0, 4): 32, (5, 6): 12, (7, 0): 32},
        sockets={0: 0, 3: 0, 4: 1, 7: 1},
        first_core={0: (0, 48), 7: (42, 90)},
    ),
    "single-node": Host(
        nodes=(0,),
        cpus={0: "0-7"},
        cores={0: 4},
        threads={0: 2},
        memory_kib={0: 16 * GIB},
        pages={0: ((4, 3145728), (2048, 1024), (1048576, 0))},
        distances={(0, 0): 10},
        sockets={0: 0},
        first_core={0: (0, 4)},
    ),
    "sparse-ids": Host(
        nodes=(0, 8),
        cpus={0: "0-15", 8: "16-31"},
        cores={0: 4, 8: 4},
        threads={0: 4, 8: 4},
        memory_kib={0: 64 * GIB, 8: 64 * GIB},
        pages={0: ((64, 1048576), (2048, 0), (1048576, 0))},
        distances={(0, 0): 10, (0, 8): 40, (8, 0): 40, (8, 8): 10},
        sockets={0: 0, 8: 1},
        first_core={0: (0, 1, 2, 3), 8: (16, 17, 18, 19)},
        page_sizes=(64, 2048, 1048576),
    ),
    "unequal-nodes": Host(
        nodes=(0, 1, 2),
        cpus={0: "0-7,18-25", 1: "8-11,26-29", 2: "12-17,30-35"},
        cores={0: 8, 1: 4, 2: 6},
        threads={0: 2, 1: 2, 2: 2},
        memory_kib={0: 64 * GIB, 1: 16 * GIB, 2: 32 * GIB},
        pages={
            0: ((4, 63 * GIB // 4), (2048, 512), (1048576, 0)),
            1: ((4, 15 * GIB // 4), (2048, 512), (1048576, 0)),
            2: ((4, 31 * GIB // 4), (2048, 512), (1048576, 0)),
        },
        distances={(0, 1): 11, (1, 2): 11, (2, 0): 11},
        sockets={0: 0, 1: 0, 2: 0},
        first_core={0: (0, 18), 1: (8, 26), 2: (12, 30)},
    ),
    "memoryless-node": Host(
        nodes=(0, 1, 2, 3),
        cpus={0: "0-7,32-39", 1: "8-15,40-47", 2: "16-23,48-55", 3: "24-31,56-63"},
        cores=each(R4, 8),
        threads=each(R4, 2),
        memory_kib={0: 64 * GIB, 1: 0, 2: 64 * GIB, 3: 0},
        pages={0: ((4, 62 * GIB // 4), (2048, 1024), (1048576, 0)), 1: ((4, 0), (2048, 0), (1048576, 0))},
        distances={(0, 1): 16, (1, 3): 16, (3, 3): 10},
        sockets=each(R4, 0),
        first_core={1: (8, 40), 3: (24, 56)},
    ),
    "smt4-power": Host(
        nodes=(0, 1),
        cpus={0: "0-23", 1: "24-47"},
        cores={0: 6, 1: 6},
        threads={0: 4, 1: 4},
        memory_kib={0: 128 * GIB, 1: 128 * GIB},
        pages={0: ((64, 116 * GIB // 64), (2048, 2048), (1048576, 8))},
        distances={(0, 1): 40, (1, 0): 40},
        sockets={0: 0, 1: 1},
        first_core={0: (0, 1, 2, 3), 1: (24, 25, 26, 27)},
        page_sizes=(64, 2048, 1048576),
    ),
    "smt8-power": Host(
        nodes=(0, 1),
        cpus={0: "0-31", 1: "32-63"},
        cores={0: 4, 1: 4},
        threads={0: 8, 1: 8},
        memory_kib={0: 128 * GIB, 1: 128 * GIB},
        pages={1: ((64, 124 * GIB // 64), (16384, 256), (16777216, 0))},
        distances={(0, 1): 40},
        sockets={0: 0, 1: 1},
        first_core={0: tuple(range(8)), 1: tuple(range(32, 40))},
        page_sizes=(64, 16384, 16777216),
    ),
    "smt2-far-siblings": Host(
        nodes=(0, 1),
        cpus={0: "0-31,64-95", 1: "32-63,96-127"},
        cores={0: 32, 1: 32},
        threads={0: 2, 1: 2},
        memory_kib={0: 128 * GIB, 1: 128 * GIB},
        pages={0: ((4, 108 * GIB // 4), (2048, 2048), (1048576, 16))},
        distances={(0, 1): 21},
        sockets={0: 0, 1: 1},
        first_core={0: (0, 64), 1: (32, 96)},
    ),
    "offline-cpus": Host(
        nodes=(0, 1),
        cpus={0: "0,8,16,24", 1: "32,40,48"},
        cores={0: 4, 1: 3},
        threads={0: 1, 1: 1},
        memory_kib={0: 64 * GIB, 1: 64 * GIB},
        pages={0: ((64, 64 * GIB // 64), (16384, 0), (16777216, 0))},
        distances={(0, 1): 40},
        sockets={0: 0, 1: 1},
        first_core={0: (0,), 1: (32,)},
        page_sizes=(64, 16384, 16777216),
        offline=frozenset(parse_cpuset("1-7,9-15,17-23,25-31,33-39,41-47,49-63")),
    ),
    "no-distances": Host(
        nodes=(0, 1),
        cpus={0: "0-7", 1: "8-15"},
        cores={0: 4, 1: 4},
        threads={0: 2, 1: 2},
        memory_kib={0: 32 * GIB, 1: 32 * GIB},
        pages={0: ((4, 8 * GIB), (2048, 0), (1048576, 0))},
        distances={(0, 0): 10, (0, 1): 20, (1, 0): 20, (1, 1): 10},
        sockets={0: 0, 1: 1},
        first_core={0: (0, 1), 1: (8, 9)},
        reports_distances=False,
    ),
    "testdriver-default": Host(
        nodes=(0, 1),
        cpus={0: "0-7", 1: "8-15"},
        cores={0: 8, 1: 8},
        threads={0: 1, 1: 1},
        memory_kib={0: 2 * GIB, 1: 4 * GIB},
        # The test driver's quirk: cell 1's base pool is of 8 KiB pages.
        pages={0: ((4, 524288), (2048, 0), (1048576, 0)), 1: ((8, 524288), (2048, 0), (1048576, 0))},
        distances={(0, 0): 10, (0, 1): 20, (1, 0): 20},
        sockets={0: 0, 1: 1},
        first_core={0: (0,), 1: (8,)},
        page_sizes=(4, 8, 2048, 1048576),
        reports_distances=False,
    ),
    "large-16node-1024cpu": Host(
        nodes=tuple(R16),
        cpus={node: f"{32 * node}-{32 * node + 31},{512 + 32 * node}-{512 + 32 * node + 31}" for node in R16},
        cores=each(R16, 32),
        threads=each(R16, 2),
        memory_kib=each(R16, 64 * GIB),
        pages=each(R16, ((4, 40 * GIB // 4), (2048, 4096), (1048576, 16))),
        distances={(0, 0): 10, (0, 7): 12, (0, 8): 32, (8, 15): 12, (15, 0): 32, (9, 9): 10},
        sockets={node: node // 8 for node in R16},
        first_core={0: (0, 512), 15: (480, 992)},
    ),
    "lab4-hmat": Host(
        nodes=(0, 1, 2, 3),
        cpus={0: "0-1", 1: "2-3", 2: "4-5", 3: ""},
        cores={0: 1, 1: 1, 2: 1, 3: 0},
        threads={0: 2, 1: 2, 2: 2, 3: 0},
        memory_kib={0: 998076, 1: 965828, 2: 1031528, 3: 514100},
        pages={0: ((4, 233135), (2048, 32), (1048576, 0)), 3: ((4, 120333), (2048, 16), (1048576, 0))},
        distances={(0, 1): 21, (0, 3): 41, (2, 3): 21, (3, 0): 41},
        sockets={0: 0, 1: 1, 2: 2, 3: None},
        first_core={0: (0, 1), 2: (4, 5)},
        cpu_nodes=(0, 1, 2),
        l3_banks=("0-1", "2-3", "4-5"),
    ),
    "lab2-snc-l3": Host(
        nodes=(0, 1),
        cpus={0: "0-1", 1: "2-3"},
        cores={0: 2, 1: 2},
        threads={0: 1, 1: 1},
        memory_kib={0: 998076, 1: 1030320},
        pages={0: ((4, 241327), (2048, 16), (1048576, 0)), 1: ((4, 249388), (2048, 16), (1048576, 0))},
        distances={(0, 1): 12, (1, 0): 12},
        sockets={0: 0, 1: 0},
        first_core={0: (0,), 1: (2,)},
        l3_banks=("0-3",),
    ),
    "cxl-hmat-cache": Host(
        nodes=(0, 1, 2, 3),
        cpus={0: "0-1,4-5", 1: "2-3,6-7", 2: "", 3: ""},
        cores={0: 2, 1: 2, 2: 0, 3: 0},
        threads={0: 2, 1: 2, 2: 0, 3: 0},
        memory_kib={0: 16 * GIB, 1: 16 * GIB, 2: 64 * GIB, 3: 64 * GIB},
        pages={0: ((4, 4194304), (2048, 0), (1048576, 0)), 2: ((4, 16777216), (2048, 0), (1048576, 0))},
        distances={(0, 1): 21, (0, 2): 14, (1, 3): 14, (2, 3): 26, (3, 2): 26},
        sockets={0: 0, 1: 1, 2: None, 3: None},
        first_core={0: (0, 4), 1: (2, 6)},
        cpu_nodes=(0, 1),
    ),
    "amd-epyc-nps1-ccx": EPYC_NPS1,
    # The same host as a libvirt that reports no <cache>.
    "amd-epyc-nps1-nocache": replace(EPYC_NPS1, l3_banks=()),
    # The same chip in NPS4: each quadrant (one CCD, two CCXs) a node.
    "amd-epyc-nps4-ccx": Host(
        nodes=(0, 1, 2, 3),
        cpus={node: f"{8 * node}-{8 * node + 7},{32 + 8 * node}-{39 + 8 * node}" for node in R4},
        cores=each(R4, 8),
        threads=each(R4, 2),
        memory_kib=each(R4, 32 * GIB),
        pages={0: ((4, 8 * GIB - 524288), (2048, 1024), (1048576, 0))},
        distances={(0, 1): 12, (3, 0): 12, (2, 2): 10},
        sockets=each(R4, 0),
        first_core={1: (8, 40)},
        l3_banks=tuple(f"{4 * k}-{4 * k + 3},{32 + 4 * k}-{35 + 4 * k}" for k in range(8)),
    ),
    # Two Xeon sockets of 8 cores in SNC2: one 48 MiB L3 per socket spans its two sub-NUMA nodes.
    "intel-snc2-l3": Host(
        nodes=(0, 1, 2, 3),
        cpus={node: f"{4 * node}-{4 * node + 3},{16 + 4 * node}-{19 + 4 * node}" for node in R4},
        cores=each(R4, 4),
        threads=each(R4, 2),
        memory_kib=each(R4, 16 * GIB),
        pages={0: ((4, 4 * GIB - 524288), (2048, 1024), (1048576, 0))},
        distances={(0, 1): 11, (0, 2): 21, (2, 3): 11, (3, 1): 21},
        sockets={0: 0, 1: 0, 2: 1, 3: 1},
        first_core={2: (8, 24)},
        l3_banks=("0-7,16-23", "8-15,24-31"),
    ),
}

NAMES = sorted(HOSTS)


@pytest.fixture(scope="module")
def parsed() -> dict[str, HostTopology]:
    return {name: parse_capabilities(read(name)) for name in NAMES}


def test_every_fixture_file_has_expectations() -> None:
    assert sorted(path.stem for path in FIXTURES.glob("*.xml")) == NAMES


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_fixtures_are_up_to_date(name: str) -> None:
    # Regenerate with: python tests/support/hostgen.py
    assert read(name) == build_capabilities(GENERATED[name])


@pytest.mark.parametrize("name", NAMES)
def test_nodes_and_cpus(name: str, parsed: dict[str, HostTopology]) -> None:
    host, topology = HOSTS[name], parsed[name]
    assert topology.node_ids == host.nodes
    assert topology.cpu_node_ids == host.expected_cpu_nodes
    assert {node.id: format_cpuset(node.usable_cpus) for node in topology.nodes} == host.cpus
    assert topology.cpu_node == {
        cpu: node for node, cpus in host.cpus.items() for cpu in parse_cpuset(cpus, allow_empty=True)
    }


@pytest.mark.parametrize("name", NAMES)
def test_cores_and_threads(name: str, parsed: dict[str, HostTopology]) -> None:
    host, topology = HOSTS[name], parsed[name]
    assert {node.id: len(node.cores) for node in topology.nodes} == host.cores
    assert {node.id: node.threads_per_core for node in topology.nodes} == host.threads
    for node_id, core in host.first_core.items():
        assert topology.node(node_id).cores[0] == core
    for node in topology.nodes:
        # Every online CPU is in exactly one core of its node.
        assert sorted(cpu for core in node.cores for cpu in core) == list(node.usable_cpus)


@pytest.mark.parametrize("name", NAMES)
def test_memory_and_pages(name: str, parsed: dict[str, HostTopology]) -> None:
    host, topology = HOSTS[name], parsed[name]
    assert {node.id: node.memory_kib for node in topology.nodes} == host.memory_kib
    assert topology.page_sizes_kib == host.page_sizes
    for node_id, pages in host.pages.items():
        assert topology.node(node_id).pages == pages
        for size, count in pages:
            assert topology.node(node_id).page_pool_kib(size) == size * count


@pytest.mark.parametrize("name", NAMES)
def test_distances(name: str, parsed: dict[str, HostTopology]) -> None:
    host, topology = HOSTS[name], parsed[name]
    for (source, target), value in host.distances.items():
        assert topology.distance(source, target) == value, (source, target)
    reported = [node.distances for node in topology.nodes]
    if host.reports_distances:
        assert all(distances for distances in reported)
        assert all(dict(node.distances)[node.id] == 10 for node in topology.nodes)
    else:
        assert not any(reported)


@pytest.mark.parametrize("name", NAMES)
def test_sockets(name: str, parsed: dict[str, HostTopology]) -> None:
    host, topology = HOSTS[name], parsed[name]
    assert {node_id: topology.socket_of(node_id) for node_id in host.sockets} == host.sockets


@pytest.mark.parametrize("name", NAMES)
def test_offline_cpus_are_kept_but_not_usable(name: str, parsed: dict[str, HostTopology]) -> None:
    host, topology = HOSTS[name], parsed[name]
    offline = {cpu.id for node in topology.nodes for cpu in node.cpus if not cpu.online}
    assert offline == host.offline
    assert offline.isdisjoint(topology.cpu_node)
    for node in topology.nodes:
        assert offline.isdisjoint(node.usable_cpus)
        assert all(cpu.socket_id is None and cpu.core_id is None for cpu in node.cpus if cpu.id in offline)


@pytest.mark.parametrize("name", NAMES)
def test_l3_banks(name: str, parsed: dict[str, HostTopology]) -> None:
    host, topology = HOSTS[name], parsed[name]
    assert tuple(format_cpuset(bank) for bank in topology.l3_banks) == host.l3_banks
    # Every online CPU of a host that reports banks is in exactly one.
    if host.l3_banks:
        assert sorted(topology.l3_bank_of) == sorted(topology.cpu_node)


def test_l3_banks_per_node() -> None:
    assert [parse_capabilities(read("amd-epyc-nps4-ccx")).node_l3_banks(node) for node in R4] == [
        (0, 1),
        (2, 3),
        (4, 5),
        (6, 7),
    ]
    # SNC: one bank behind both nodes of a socket.
    assert [parse_capabilities(read("intel-snc2-l3")).node_l3_banks(node) for node in R4] == [(0,), (0,), (1,), (1,)]
    nps1 = parse_capabilities(read("amd-epyc-nps1-ccx"))
    assert nps1.node_l3_banks(0) == tuple(range(8))
    assert {bank.size_kib for bank in nps1.cache_banks} == {16 * 1024}
    assert parse_capabilities(read("amd-epyc-nps1-nocache")).node_l3_banks(0) == ()


def test_l3_banks_leave_offline_cpus_and_other_levels_out() -> None:
    text = read("offline-cpus").replace(
        "</topology>",
        "</topology><cache><bank id='0' level='3' type='both' size='8' unit='MiB' cpus='0-3'/>"
        "<bank id='0' level='2' type='both' size='1' unit='MiB' cpus='0'/></cache>",
    )
    topology = parse_capabilities(text)
    assert len(topology.cache_banks) == 2
    # CPUs 1-3 are offline.
    assert topology.l3_banks == (frozenset({0}),)


@pytest.mark.parametrize(
    ("bank", "message"),
    [
        ("<bank id='0' level='3' type='both' size='8' unit='MiB' cpus='0-99'/>", "names CPU 16, which no host node"),
        (
            "<bank id='0' level='3' type='both' size='8' unit='MiB' cpus='0-3'/>"
            "<bank id='1' level='3' type='both' size='8' unit='MiB' cpus='3-7'/>",
            "CPU 3 is in bank 0 of the same level too",
        ),
        ("<bank id='0' level='3' type='unified' size='8' unit='MiB' cpus='0-3'/>", "type 'unified' is not one of"),
        ("<bank id='0' level='3' type='both' size='8' unit='MiB'/>", "has no cpus"),
        ("<bank id='0' level='3' type='both' size='8' unit='MiB' cpus='x'/>", "<bank id='0'"),
        ("<bank id='0' level='9' type='both' size='8' unit='MiB' cpus='0'/>", "level"),
    ],
)
def test_bad_cache_banks_are_refused(bank: str, message: str) -> None:
    text = read("seed-4node-ring").replace("</topology>", f"</topology><cache>{bank}</cache>")
    with pytest.raises((XmlError, TopologyError), match=message):
        parse_capabilities(text)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name: str, parsed: dict[str, HostTopology]) -> None:
    topology = parsed[name]
    rendered = render_capabilities(topology)
    assert parse_capabilities(rendered) == topology
    # The rendering is a fixed point: rendering what was read back gives the same text.
    assert render_capabilities(parse_capabilities(rendered)) == rendered


def test_str_and_bytes_give_the_same_topology() -> None:
    text = read("intel-2s-smt2")
    declared = "<?xml version='1.0' encoding='UTF-8'?>\n" + text
    assert parse_capabilities(text) == parse_capabilities(text.encode()) == parse_capabilities(declared.encode())


def test_render_looks_like_libvirt() -> None:
    topology = parse_capabilities(read("intel-snc2-cxl"))
    rendered = render_capabilities(topology)
    assert "<cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0,16'/>" in rendered
    assert "<sibling id='5' value='31'/>" in rendered
    assert "<cpus num='0'/>" in rendered
    assert "<pages unit='KiB' size='2048'/>" in rendered


def test_render_offline_and_memoryless() -> None:
    rendered = render_capabilities(parse_capabilities(read("offline-cpus")))
    assert "            <cpu id='1'/>\n" in rendered
    memoryless = render_capabilities(parse_capabilities(read("memoryless-node")))
    # libvirt prints no <memory> for a node without memory.
    assert memoryless.count("<memory unit='KiB'>") == 2


def test_parse_work_grows_with_the_cpus() -> None:
    """The 1024-CPU host costs a few function calls per CPU: a blow-up (work per CPU that grows with the
    host) trips this, whatever the machine's speed.  The time itself is measured by `make bench`."""
    data = read("large-16node-1024cpu").encode()
    calls = 0

    def count(_frame: object, event: str, _arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    parsed_hosts_clear()
    sys.setprofile(count)
    try:
        topology = parse_capabilities(data)
    finally:
        sys.setprofile(None)
    cpus = sum(len(node.cpus) for node in topology.nodes)
    assert cpus == 1024
    assert calls < 10 * cpus, f"{calls} calls to parse {cpus} CPUs"


# -- documents libvirt produces in the wild ----------------------------------------------------------------


def caps(cells: str, host_cpu: str = "<cpu><pages unit='KiB' size='4'/></cpu>") -> str:
    return f"<capabilities><host>{host_cpu}<topology><cells num='9'>{cells}</cells></topology></host></capabilities>"


def cell(
    node_id: object, cpus: str = "", memory: str | None = "<memory unit='KiB'>1048576</memory>", extra: str = ""
) -> str:
    return f"<cell id='{node_id}'>{memory or ''}{extra}<cpus num='0'>{cpus}</cpus></cell>"


def cpu(cpu_id: object, core: object = None, siblings: object = None, socket: object = 0) -> str:
    attrs = f"id='{cpu_id}' socket_id='{socket}' die_id='0' core_id='{cpu_id if core is None else core}'"
    return f"<cpu {attrs} siblings='{cpu_id if siblings is None else siblings}'/>"


def test_cells_num_is_ignored() -> None:
    topology = parse_capabilities(caps(cell(0, cpu(0)) + cell(1, cpu(1))))
    assert topology.node_ids == (0, 1)


def test_missing_memory_is_a_memoryless_node() -> None:
    topology = parse_capabilities(caps(cell(0, cpu(0)) + cell(1, cpu(1), memory=None)))
    assert topology.node(1).memory_kib == 0
    assert topology.cpu_node_ids == (0, 1)


def test_memory_units_are_converted() -> None:
    topology = parse_capabilities(
        caps(
            cell(0, cpu(0), memory="<memory unit='GiB'>2</memory>")
            + cell(1, cpu(1), memory="<memory>512</memory>")
            + cell(2, cpu(2), memory="<memory unit='MB'>1</memory>", extra="<pages unit='MiB' size='2'>3</pages>")
            + cell(3, cpu(3), memory="<memory unit=''>7</memory>")
        )
    )
    assert [node.memory_kib for node in topology.nodes] == [2 * GIB, 512, 977, 7]
    assert topology.node(2).pages == ((2048, 3),)


def test_offline_cpu_is_bare() -> None:
    topology = parse_capabilities(caps(cell(0, cpu(0, siblings="0") + "<cpu id='1'/>")))
    node = topology.node(0)
    assert node.cpus[1] == HostCpu(id=1)
    assert node.usable_cpus == (0,)
    assert topology.cpu_node == {0: 0}


def test_unknown_elements_and_attributes_are_ignored() -> None:
    # Newer libvirt adds cluster_id, per-cell caches (HMAT) and interconnects.
    cache = "<cache level='3' associativity='direct' policy='writeback'><size value='10' unit='MiB'/></cache>"
    doc = caps(
        cell(0, "<cpu id='0' socket_id='0' die_id='0' cluster_id='0' core_id='0' siblings='0'/><!-- c -->", extra=cache)
    ).replace(
        "</cells>", "</cells><interconnects><latency initiator='0' target='0' type='access' value='5'/></interconnects>"
    )
    node = parse_capabilities(doc).node(0)
    assert node.cpus == (HostCpu(id=0, socket_id=0, die_id=0, core_id=0, siblings=frozenset({0})),)


def test_padded_and_large_ids_still_parse() -> None:
    topology = parse_capabilities(
        caps(cell(" 3 ", cpu(" 5000 ", core="007", siblings="5000,5001") + cpu(5001, core=7, siblings="5000-5001")))
    )
    node = topology.node(3)
    assert node.usable_cpus == (5000, 5001)
    assert node.cores == ((5000, 5001),)
    assert node.cpus[0].core_id == 7


def test_page_sizes_fall_back_to_the_pools_then_to_4k() -> None:
    pools = "<pages unit='KiB' size='2048'>0</pages><pages unit='KiB' size='4'>10</pages>"
    with_pools = parse_capabilities(caps(cell(0, cpu(0), extra=pools), host_cpu=""))
    assert with_pools.page_sizes_kib == (4, 2048)
    assert with_pools.node(0).pages == ((4, 10), (2048, 0))
    assert parse_capabilities(caps(cell(0, cpu(0)), host_cpu="")).page_sizes_kib == (4,)


def test_hostgen_cpu_less_memory_nodes() -> None:
    shape = HostShape(sockets=2, cores_per_node=2, threads=2, memory_nodes=(128 * GIB, 128 * GIB))
    topology = parse_capabilities(build_capabilities(shape))
    assert topology.node_ids == (0, 1, 2, 3)
    assert topology.cpu_node_ids == (0, 1)
    assert [topology.socket_of(node) for node in topology.node_ids] == [0, 1, None, None]
    assert topology.distance(0, 2) == 22
    assert topology.distance(0, 3) == 31
    assert topology.distance(2, 3) == 31
    assert topology.node(2).memory_kib == 128 * GIB


def test_hostgen_formats_runs() -> None:
    shape = HostShape(cores_per_node=3, threads=2, sibling_numbering="adjacent", offline_cpus=frozenset({1}))
    text = build_capabilities(shape)
    assert "<cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0'/>" in text
    assert "<cpu id='1'/>" in text
    assert "siblings='2-3'" in text


# -- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("<capabilities><host>", "not well-formed", id="malformed"),
        pytest.param("", "not well-formed", id="empty"),
        pytest.param("<domain/>", "must have a <capabilities> root element, found <domain>", id="wrong-root"),
        pytest.param(
            '<!DOCTYPE capabilities [<!ENTITY x "y">]><capabilities>&x;</capabilities>', "DTD or entity", id="entity"
        ),
        pytest.param(
            '<!DOCTYPE capabilities SYSTEM "file:///etc/passwd"><capabilities/>', "DTD or entity", id="external-dtd"
        ),
        pytest.param(caps(cell("x", cpu(0))), "<cell id='x'>: id 'x' is not a non-negative integer", id="cell-id"),
        pytest.param(caps(cell("-1", cpu(0))), "<cell id='-1'>: id '-1' is not a non-negative integer", id="negative"),
        pytest.param(caps("<cell><cpus/></cell>"), "<cell> has no id", id="cell-without-id"),
        pytest.param(caps(cell(0, "<cpu socket_id='0'/>")), "<cpu socket_id='0'> has no id", id="cpu-without-id"),
        pytest.param(caps(cell(0, cpu("1.5"))), "<cpu id='1.5' socket_id='0'", id="cpu-id"),
        pytest.param(caps(cell(0, cpu("\u0663"))), "is not a non-negative integer", id="non-ascii-digit"),
        pytest.param(caps(cell(0, cpu(0, core="c0"))), "core_id 'c0' is not a non-negative integer", id="core-id"),
        pytest.param(caps(cell(0, cpu(0, socket="+1"))), "socket_id '+1' is not", id="socket-id"),
        pytest.param(caps(cell(0, cpu(0, siblings="0-"))), "in host node 0: siblings '0-'", id="siblings-syntax"),
        pytest.param(caps(cell(0, cpu(0, siblings="3-1"))), "range 3-1 runs backwards", id="siblings-backwards"),
        pytest.param(
            caps(cell(0, memory="<memory unit='KiB'>lots</memory>")), "<memory unit='KiB'> content: 'lots'", id="mem"
        ),
        pytest.param(
            caps(cell(0, memory="<memory unit='KiB'/>")), "<memory unit='KiB'> has no content", id="mem-empty"
        ),
        pytest.param(caps(cell(0, memory="<memory unit='parsec'>1</memory>")), "unknown unit 'parsec'", id="mem-unit"),
        pytest.param(caps(cell(0, extra="<pages unit='KiB'>1</pages>")), "<pages unit='KiB'> has no size", id="pages"),
        pytest.param(
            caps(cell(0, extra="<distances><sibling id='0' value='ten'/></distances>")),
            "<sibling id='0' value='ten'>: value 'ten' is not a non-negative integer",
            id="distance-value",
        ),
        pytest.param(
            caps(cell(0, extra="<distances><sibling value='10'/></distances>")),
            "<sibling value='10'> has no id",
            id="d-id",
        ),
        pytest.param(
            caps(cell(0), host_cpu="<cpu><pages unit='KiB' size='huge'/></cpu>"), "size: 'huge' is not", id="host-pages"
        ),
    ],
)
def test_xml_errors(text: str, message: str) -> None:
    with pytest.raises(XmlError) as error:
        parse_capabilities(text)
    assert message in str(error.value)
    assert str(error.value).startswith("host capabilities")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("<capabilities/>", "no <host><topology><cells>", id="no-host"),
        pytest.param(
            "<capabilities><host><cpu/></host></capabilities>", "no <host><topology><cells>", id="no-topology"
        ),
        pytest.param(
            "<capabilities><host><topology><cells num='0'></cells></topology></host></capabilities>",
            "<cells> lists no <cell>",
            id="no-cells",
        ),
        pytest.param(caps(cell(0, cpu(0)) + cell(0, cpu(1))), "host node 0 is reported twice", id="duplicate-node"),
        pytest.param(
            caps(cell(0, cpu(0)) + cell(1, cpu(0))), "host CPU 0 is reported in host nodes 0 and 1", id="cpu-twice"
        ),
        pytest.param(
            caps(cell(0, extra="<distances><sibling id='0' value='12'/></distances>")),
            "host node 0 reports distance 12 to itself; it must be 10",
            id="local-distance",
        ),
        pytest.param(
            caps(
                cell(0, extra="<distances><sibling id='0' value='10'/><sibling id='1' value='10'/></distances>")
                + cell(1)
            ),
            "host node 0 reports distance 10 to node 1; distances between two nodes must be 11-255",
            id="remote-distance-10",
        ),
        pytest.param(
            caps(cell(0, extra="<distances><sibling id='1' value='256'/></distances>") + cell(1)),
            "distance 256 to node 1",
            id="remote-distance-256",
        ),
        pytest.param(
            caps(cell(0, extra="<distances><sibling id='7' value='20'/></distances>")),
            "host node 0 reports a distance to node 7, which is not a host node",
            id="unknown-sibling",
        ),
    ],
)
def test_topology_errors(text: str, message: str) -> None:
    with pytest.raises(TopologyError) as error:
        parse_capabilities(text)
    assert message in str(error.value)
    assert str(error.value).startswith("host capabilities: ")


def test_errors_name_the_document() -> None:
    with pytest.raises(XmlError, match=r"^/tmp/host\.xml: <cell id='x'>"):
        parse_capabilities(caps(cell("x")), what="/tmp/host.xml")


# -- any topology survives the round trip ------------------------------------------------------------------


@st.composite
def topologies(draw: st.DrawFn) -> HostTopology:
    node_ids = draw(st.lists(st.integers(0, 63), min_size=1, max_size=6, unique=True))
    cpu_ids = iter(draw(st.permutations(range(64))))
    page_sizes = tuple(sorted(draw(st.sets(st.sampled_from([4, 64, 2048, 16384, 1048576]), min_size=1))))
    with_distances = draw(st.booleans())
    nodes = []
    for node_id in node_ids:
        cpus = []
        for _unused in range(draw(st.integers(0, 6))):
            cpu_id = next(cpu_ids)
            if draw(st.booleans()):
                cpus.append(HostCpu(id=cpu_id))
            else:
                cpus.append(
                    HostCpu(
                        id=cpu_id,
                        socket_id=draw(st.integers(0, 3)),
                        die_id=draw(st.none() | st.integers(0, 3)),
                        core_id=draw(st.none() | st.integers(0, 100)),
                        siblings=frozenset(draw(st.sets(st.integers(0, 5000), max_size=4))) | {cpu_id},
                    )
                )
        distances = ()
        if with_distances:
            distances = tuple((other, 10 if other == node_id else draw(st.integers(11, 255))) for other in node_ids)
        sizes = draw(st.sets(st.sampled_from(page_sizes)))
        nodes.append(
            HostNode(
                id=node_id,
                memory_kib=draw(st.integers(0, 2**42)),
                cpus=tuple(cpus),
                # A pool holds at most the memory limit (4 PiB = 2**42 KiB).
                pages=tuple((size, draw(st.integers(0, min(2**30, 2**42 // size)))) for size in sorted(sizes)),
                distances=distances,
            )
        )
    return HostTopology(nodes=tuple(nodes), page_sizes_kib=page_sizes)


@settings(max_examples=50)
@given(topologies())
def test_any_topology_round_trips(topology: HostTopology) -> None:
    assert parse_capabilities(render_capabilities(topology)) == topology


# -- host_capabilities as a file: any declared encoding, regular files only (issue 8, point 6) ---------------------

RING_TEXT = (FIXTURES / "seed-4node-ring.xml").read_text(encoding="utf-8")
# A comment with a character outside ASCII: the document's bytes then depend on its encoding.
ACCENTED = RING_TEXT.replace("<capabilities>", "<capabilities><!-- h\u00f4te \u00e0 quatre n\u0153uds -->", 1)


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        pytest.param(
            ("<?xml version='1.0' encoding='ISO-8859-1'?>\n" + ACCENTED.replace("\u0153", "oe")).encode("latin-1"),
            "ISO-8859-1",
            id="latin-1-declared",
        ),
        pytest.param(
            ("<?xml version='1.0' encoding='UTF-16'?>\n" + ACCENTED).encode("utf-16"),
            "UTF-16",
            id="utf-16-declared-with-bom",
        ),
        pytest.param(ACCENTED.encode("utf-16"), "UTF-16", id="utf-16-bom-only"),
        pytest.param(
            ("<?xml version='1.0' encoding='UTF-32'?>\n" + ACCENTED).encode("utf-32"),
            "UTF-32",
            id="utf-32-declared-with-bom",
        ),
        pytest.param(b"\xef\xbb\xbf" + ACCENTED.encode(), "UTF-8", id="utf-8-bom"),
        pytest.param(ACCENTED.encode(), "UTF-8", id="utf-8-undeclared"),
        pytest.param(
            ("<?xml version='1.0' encoding='windows-1252'?>\n" + ACCENTED.replace("\u0153", "\u20ac")).encode("cp1252"),
            "windows-1252",
            id="windows-1252-declared",
        ),
    ],
)
def test_a_file_is_decoded_as_it_declares(tmp_path: Path, data: bytes, encoding: str) -> None:
    """Used to fail with a raw UnicodeDecodeError: the file was read as UTF-8 text whatever it declared."""
    path = tmp_path / f"caps-{encoding}.xml"
    path.write_bytes(data)
    read = read_host_capabilities(str(path))
    assert read == data  # the bytes, for the XML parser to decode
    assert parse_capabilities(read) == parse_capabilities(RING_TEXT)


def test_a_file_refusal_names_the_option_and_the_path(tmp_path: Path) -> None:
    path = tmp_path / "caps.xml"
    path.write_bytes(caps(cell(0, cpu(0)) + cell(0, cpu(1))).encode())
    with pytest.raises(TopologyError) as caught:
        read_host_capabilities(str(path))
    assert str(caught.value) == f"host_capabilities {str(path)!r}: host node 0 is reported twice"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
@pytest.mark.parametrize("subset", ["parameter-entity", "external-fifo"])
def test_a_file_with_a_dtd_is_refused_in_any_encoding(tmp_path: Path, encoding: str, subset: str) -> None:
    """Used to open /etc/passwd (a parameter entity) or hang (an external subset naming a FIFO): the DTD check
    looked for ASCII bytes, and libxml2 read the DTD of a UTF-16 or UTF-32 file."""
    fifo = tmp_path / "dtd.fifo"
    os.mkfifo(fifo)
    if subset == "parameter-entity":
        doctype = '<!DOCTYPE capabilities [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>\n'
    else:
        doctype = f'<!DOCTYPE capabilities SYSTEM "{fifo}">\n'
    declaration = "<?xml version='1.0' encoding='UTF-16'?>\n" if encoding == "utf-16-le" else ""
    path = tmp_path / "caps.xml"
    path.write_bytes((declaration + doctype + RING_TEXT).encode(encoding))

    def expired(_signum: int, _frame: object) -> None:
        raise AssertionError("the parse did not return: it opened the FIFO")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(5)
    try:
        with pytest.raises(XmlError) as caught:
            read_host_capabilities(str(path))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert str(caught.value) == f"host_capabilities {str(path)!r} declares a DTD or entity, which is refused"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Used to hang: opening a FIFO for reading blocks until something writes to it.  Nothing writes here."""
    path = tmp_path / "caps.fifo"
    os.mkfifo(path)
    with pytest.raises(SpecError) as caught:
        read_host_capabilities(str(path))
    assert str(caught.value) == f"host_capabilities {str(path)!r} is a FIFO, not a regular file of capabilities XML"


def test_dev_zero_is_refused_before_it_is_read() -> None:
    """Used to end in a bare "Module failed.": /dev/zero never ends."""
    with pytest.raises(SpecError) as caught:
        read_host_capabilities("/dev/zero")
    assert str(caught.value) == (
        "host_capabilities '/dev/zero' is a character device, not a regular file of capabilities XML"
    )


def test_inline_text_is_returned_as_it_is_and_its_declaration_does_not_matter() -> None:
    text = "<?xml version='1.0' encoding='UTF-16'?>\n" + ACCENTED
    assert read_host_capabilities(text) is text
    assert read_host_capabilities("\ufeff" + RING_TEXT) == "\ufeff" + RING_TEXT
    assert parse_capabilities(text) == parse_capabilities(RING_TEXT)


def test_a_file_at_the_size_limit_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import capabilities

    data = RING_TEXT.encode()
    monkeypatch.setattr(capabilities, "MAX_CAPABILITIES_BYTES", len(data))
    path = tmp_path / "caps.xml"
    path.write_bytes(data)
    assert read_host_capabilities(str(path)) == data
    path.write_bytes(data + b" ")
    with pytest.raises(SpecError) as caught:
        read_host_capabilities(str(path))
    assert (
        str(caught.value) == f"host_capabilities {str(path)!r} is {len(data) + 1} bytes, above the limit of {len(data)}"
    )


def test_a_parse_is_kept_by_the_text_alone() -> None:
    """read_host_capabilities parses the file under its path's name; the caller's parse of the same bytes is kept."""
    data = RING_TEXT.encode() + b"\n<!-- kept -->"
    first = parse_capabilities(data, "host_capabilities '/some/path'")
    assert parse_capabilities(data) is first


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        pytest.param(
            (HostNode(id=1024, memory_kib=0),),
            "host node id 1024 is outside 0-1023 (Linux has at most 1024 NUMA nodes (MAX_NUMNODES))",
            id="node-id",
        ),
        pytest.param(
            (HostNode(id=0, memory_kib=5 * 1024**4),),
            "host node 0 reports 5 PiB of memory, above the limit of 4 PiB",
            id="memory",
        ),
        pytest.param(
            (HostNode(id=0, memory_kib=0, cpus=(HostCpu(id=8192),)),),
            "host CPU id 8192 is outside 0-8191 (Linux has at most 8192 CPUs (NR_CPUS))",
            id="cpu-id",
        ),
    ],
)
def test_a_topology_is_held_to_the_limits_too(nodes: tuple[HostNode, ...], message: str) -> None:
    with pytest.raises(TopologyError) as caught:
        HostTopology(nodes=nodes)
    assert str(caught.value) == message


def test_the_limits_themselves_are_accepted() -> None:
    text = caps(
        cell(1023, cpu(8191), memory=f"<memory unit='KiB'>{4 * 1024**4}</memory>")
        + cell(0, cpu(0), extra="<pages unit='GiB' size='16'>262144</pages>")
    )
    topology = parse_capabilities(text)
    assert topology.node_ids == (0, 1023)
    assert topology.node(1023).memory_kib == 4 * 1024**4
    assert topology.node(0).pages == ((16 * GIB, 262144),)
