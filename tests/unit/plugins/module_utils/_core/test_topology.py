# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The host topology model: cores, threads, sockets, distances, validation."""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import (
    DEFAULT_REMOTE_DISTANCE,
    LOCAL_DISTANCE,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import TopologyError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCpu, HostNode, HostTopology


def online(cpu_id: int, core: int | None = None, siblings: tuple[int, ...] = (), socket: int = 0) -> HostCpu:
    return HostCpu(id=cpu_id, socket_id=socket, die_id=0, core_id=core, siblings=frozenset(siblings))


def node(node_id: int, *cpus: HostCpu, memory_kib: int = 1024, **kwargs: object) -> HostNode:
    return HostNode(id=node_id, memory_kib=memory_kib, cpus=tuple(cpus), **kwargs)  # type: ignore[arg-type]


# -- CPUs ---------------------------------------------------------------------------------------------------


def test_cpu_without_socket_is_offline() -> None:
    assert not HostCpu(id=3).online
    assert online(3).online
    # Only the socket decides: libvirt prints all four ids of an online CPU, none of an offline one.
    assert HostCpu(id=3, core_id=1).online is False


# -- cores --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "cores"),
    [
        pytest.param(
            [online(0, 0, (0, 1)), online(1, 0, (0, 1)), online(2, 1, (2, 3)), online(3, 1, (2, 3))],
            ((0, 1), (2, 3)),
            id="siblings-adjacent",
        ),
        pytest.param(
            [online(0, 0, (0, 4)), online(1, 1, (1, 5)), online(4, 0, (0, 4)), online(5, 1, (1, 5))],
            ((0, 4), (1, 5)),
            id="siblings-far",
        ),
        pytest.param(
            [online(cpu, cpu // 4, tuple(range(cpu // 4 * 4, cpu // 4 * 4 + 4))) for cpu in range(8)],
            ((0, 1, 2, 3), (4, 5, 6, 7)),
            id="smt4",
        ),
        pytest.param(
            # The sibling lists decide, whatever the core ids say (they repeat across dies and sockets).
            [online(0, 7, (0, 1)), online(1, 7, (0, 1)), online(2, 7, (2,)), online(3, 7, (3,))],
            ((0, 1), (2,), (3,)),
            id="siblings-over-core-ids",
        ),
        pytest.param(
            [online(0, 0), online(1, 0), online(2, 1), online(3, 1, socket=1), online(4, 1, socket=1)],
            ((0, 1), (2,), (3, 4)),
            id="no-siblings-core-ids",
        ),
        pytest.param([online(5), online(2), online(9)], ((2,), (5,), (9,)), id="no-siblings-no-core-ids"),
        pytest.param(
            # Thread 1 is offline: core 0 is left with one thread, its sibling list still names 1.
            [online(0, 0, (0, 1)), HostCpu(id=1), online(2, 1, (2, 3)), online(3, 1, (2, 3))],
            ((0,), (2, 3)),
            id="offline-thread",
        ),
        pytest.param(
            # Linux lists only online threads in thread_siblings_list.
            [online(0, 0, (0,)), HostCpu(id=1), HostCpu(id=2), HostCpu(id=3)],
            ((0,),),
            id="smt-off",
        ),
        pytest.param([HostCpu(id=0), HostCpu(id=1)], (), id="all-offline"),
        pytest.param([], (), id="no-cpus"),
    ],
)
def test_cores(cpus: list[HostCpu], cores: tuple[tuple[int, ...], ...]) -> None:
    assert node(0, *cpus).cores == cores


@pytest.mark.parametrize(
    ("cpus", "threads"),
    [
        ([online(0, 0, (0,)), online(1, 1, (1,))], 1),
        ([online(0, 0, (0, 8)), online(8, 0, (0, 8))], 2),
        ([online(cpu, 0, tuple(range(8))) for cpu in range(8)], 8),
        # Mixed widths (a thread offline): the widest core.
        ([online(0, 0, (0, 1)), HostCpu(id=1), online(2, 1, (2, 3)), online(3, 1, (2, 3))], 2),
        ([], 0),
        ([HostCpu(id=0)], 0),
    ],
)
def test_threads_per_core(cpus: list[HostCpu], threads: int) -> None:
    assert node(0, *cpus).threads_per_core == threads


def test_usable_cpus_are_sorted_and_online() -> None:
    host_node = node(0, online(9), HostCpu(id=1), online(3), online(0))
    assert host_node.usable_cpus == (0, 3, 9)
    assert host_node.has_cpus
    assert not node(1, HostCpu(id=4)).has_cpus
    assert not node(2).has_cpus


def test_sockets() -> None:
    assert node(0, online(0, socket=1), online(1, socket=1)).sockets == frozenset({1})
    assert node(0, online(0, socket=0), online(1, socket=1)).sockets == frozenset({0, 1})
    assert node(0, HostCpu(id=0)).sockets == frozenset()


def test_page_pool_kib() -> None:
    host_node = node(0, pages=((4, 1000), (2048, 3), (1048576, 0)))
    assert host_node.page_pool_kib(4) == 4000
    assert host_node.page_pool_kib(2048) == 6144
    assert host_node.page_pool_kib(1048576) == 0
    assert host_node.page_pool_kib(64) == 0


# -- the host -----------------------------------------------------------------------------------------------


def two_sockets() -> HostTopology:
    return HostTopology(
        nodes=(
            node(8, online(2, socket=1), online(3, socket=1), distances=((0, 40), (8, 10), (9, 30))),
            node(0, online(0), online(1), distances=((0, 10), (8, 40), (9, 30))),
            node(9, memory_kib=4096),
        ),
        page_sizes_kib=(4, 2048),
    )


def test_nodes_are_ordered_by_id() -> None:
    topology = two_sockets()
    assert topology.node_ids == (0, 8, 9)
    assert [host_node.id for host_node in topology.nodes] == [0, 8, 9]
    assert topology.node(8).usable_cpus == (2, 3)


def test_cpu_node_ids_leave_out_memory_only_nodes() -> None:
    topology = two_sockets()
    assert topology.cpu_node_ids == (0, 8)
    assert topology.cpu_node == {0: 0, 1: 0, 2: 8, 3: 8}


def test_node_lookup() -> None:
    topology = two_sockets()
    assert topology.has_node(9)
    assert not topology.has_node(1)
    with pytest.raises(TopologyError, match=r"^host node 1 does not exist \(the host has nodes 0, 8, 9\)$"):
        topology.node(1)


def test_socket_of() -> None:
    topology = two_sockets()
    assert topology.socket_of(0) == 0
    assert topology.socket_of(8) == 1
    assert topology.socket_of(9) is None
    straddling = HostTopology(nodes=(node(0, online(0, socket=0), online(1, socket=1)),))
    assert straddling.socket_of(0) is None


def test_distances_as_reported() -> None:
    topology = two_sockets()
    assert topology.distance(0, 8) == 40
    assert topology.distance(8, 9) == 30
    assert topology.distance(8, 8) == 10


def test_distances_default_to_10_and_20() -> None:
    topology = two_sockets()
    # Node 9 reports none: libvirt's default to itself.
    assert topology.distance(9, 9) == LOCAL_DISTANCE == 10
    bare = HostTopology(nodes=(node(0, online(0)), node(1, online(1))))
    assert [[bare.distance(a, b) for b in (0, 1)] for a in (0, 1)] == [[10, 20], [20, 10]]
    assert DEFAULT_REMOTE_DISTANCE == 20


def test_a_direction_reported_one_way_is_used_both_ways() -> None:
    topology = two_sockets()
    # Node 9 reports none, nodes 0 and 8 report theirs to it: a default of 20 would hide their 30.
    assert (topology.distance(9, 0), topology.distance(9, 8)) == (30, 30)
    one_way = HostTopology(nodes=(node(0, online(0), distances=((0, 10), (1, 31))), node(1, online(1))))
    assert [[one_way.distance(a, b) for b in (0, 1)] for a in (0, 1)] == [[10, 31], [31, 10]]


def test_asymmetric_distances_are_kept() -> None:
    topology = HostTopology(
        nodes=(node(0, online(0), distances=((0, 10), (1, 20))), node(1, online(1), distances=((0, 30), (1, 10))))
    )
    assert (topology.distance(0, 1), topology.distance(1, 0)) == (20, 30)


def test_equality_and_hash_ignore_the_index() -> None:
    assert two_sockets() == two_sockets()
    assert hash(two_sockets()) == hash(two_sockets())
    # Built in any order, the same host.
    first = HostTopology(nodes=(node(0, online(0)), node(1, online(1))))
    second = HostTopology(nodes=(node(1, online(1)), node(0, online(0))))
    assert first == second


def test_default_page_sizes() -> None:
    assert HostTopology(nodes=(node(0, online(0)),)).page_sizes_kib == (4,)


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        pytest.param((), "the host reports no NUMA nodes", id="no-nodes"),
        pytest.param((node(0, online(0)), node(0, online(1))), "host node 0 is reported twice", id="duplicate-node"),
        pytest.param(
            (node(0, online(0)), node(1, online(0))), "host CPU 0 is reported in host nodes 0 and 1", id="cpu-twice"
        ),
        pytest.param(
            (node(0, online(0)), node(1, HostCpu(id=0))),
            "host CPU 0 is reported in host nodes 0 and 1",
            id="cpu-twice-offline",
        ),
        pytest.param(
            (node(0, online(3), online(3)),), "host CPU 3 is reported in host nodes 0 and 0", id="cpu-twice-in-node"
        ),
        pytest.param((node(0, memory_kib=-1),), "host node 0 reports negative memory -1 KiB", id="negative-memory"),
    ],
)
def test_validation(nodes: tuple[HostNode, ...], message: str) -> None:
    with pytest.raises(TopologyError) as error:
        HostTopology(nodes=nodes)
    assert str(error.value) == message
