# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one set of distance limits and the one validator (issue 9), and who uses them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core import distances, move_models, partitioner, topology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import (
    DEFAULT_REMOTE_DISTANCE,
    LOCAL_DISTANCE,
    MAX_DISTANCE,
    MIN_REMOTE_DISTANCE,
    default_distance,
    is_valid_distance,
    validate_distances,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, TopologyError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCpu, HostNode, HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.from_report import topology_from_report
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import cpu_numa
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import moving_guest_from_xml
from ansible_collections.vnuma.libvirt.tests.support.distance_cases import REFUSAL, TEN_APART, report_ten_apart
from ansible_collections.vnuma.libvirt.tests.support.hostgen import build_capabilities


def test_limits() -> None:
    assert (LOCAL_DISTANCE, MIN_REMOTE_DISTANCE, MAX_DISTANCE) == (10, 11, 255)


def test_every_layer_uses_the_one_set_of_limits() -> None:
    # The guest cells' distances are checked with the core's validator; the limits live in distances.py alone.
    assert cpu_numa.validate_distances is validate_distances
    assert not {"LOCAL_DISTANCE", "MIN_REMOTE_DISTANCE", "MAX_DISTANCE"} & set(vars(cpu_numa))
    assert topology.LOCAL_DISTANCE is distances.LOCAL_DISTANCE
    assert partitioner.SAME_NODE_DISTANCE == MIN_REMOTE_DISTANCE
    assert partitioner.LOCAL_DISTANCE is distances.LOCAL_DISTANCE
    # The host's check and the defaults where no table gives a distance: one of each, in distances.py.
    assert topology.is_valid_distance is is_valid_distance
    assert topology.default_distance is move_models.default_distance is default_distance
    assert not hasattr(topology, "REMOTE_DISTANCE")


@pytest.mark.parametrize(
    ("value", "same_node", "valid"),
    [
        (10, True, True),
        (11, True, False),
        (9, True, False),
        (10, False, False),
        (11, False, True),
        (20, False, True),
        (255, False, True),
        (256, False, False),
        (0, False, False),
        (-1, False, False),
        (True, False, False),
        ("20", False, False),
        (20.0, False, False),
    ],
)
def test_is_valid_distance(value: object, same_node: bool, valid: bool) -> None:
    assert is_valid_distance(value, same_node) is valid


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[10, 20]], "guest NUMA distances: cell 0 has 2 distances for 1 cells"),
        ([[11]], "guest NUMA distances: distance of cell 0 to itself is 11, it must be 10"),
        ([[10, 10], [10, 10]], "guest NUMA distances: distance 0->1 is 10, it must be 11..255 between distinct cells"),
        (
            [[10, 256], [256, 10]],
            "guest NUMA distances: distance 0->1 is 256, it must be 11..255 between distinct cells",
        ),
        ([[10, 20], [21, 10]], "guest NUMA distances: distance 0->1 is 20 but 1->0 is 21; distances must be symmetric"),
        ([[10, "20"], ["20", 10]], "guest NUMA distances: distance 0->1 '20' is not an integer"),
    ],
)
def test_validate_distances_refuses(matrix: list[list[object]], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_distances(matrix)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_validate_distances_accepts() -> None:
    validate_distances([[10]])
    validate_distances([[10, 11, 255], [11, 10, 20], [255, 20, 10]])


def test_default_distance() -> None:
    assert (default_distance(True), default_distance(False)) == (LOCAL_DISTANCE, DEFAULT_REMOTE_DISTANCE) == (10, 20)


def test_every_reader_of_a_table_with_gaps_fills_them_alike() -> None:
    """The host's table and a moving guest's cells: what neither lists is libvirt's default."""
    bare = HostTopology(nodes=(HostNode(0, 1024), HostNode(1, 1024)))
    assert [[bare.distance(a, b) for b in (0, 1)] for a in (0, 1)] == [[10, 20], [20, 10]]
    # Cell 0 lists its distance to cell 1 only: cell 1 to 2 is the default, as libvirt reads it.
    guest = moving_guest_from_xml(
        """<domain type='kvm'><name>gaps</name><memory unit='MiB'>3072</memory><vcpu>3</vcpu><cpu><numa>
        <cell id='0' cpus='0' memory='1024' unit='MiB'><distances><sibling id='1' value='15'/></distances></cell>
        <cell id='1' cpus='1' memory='1024' unit='MiB'/><cell id='2' cpus='2' memory='1024' unit='MiB'/>
        </numa></cpu></domain>"""
    )
    assert guest.distances == ((10, 15, 20), (20, 10, 20), (20, 20, 10))
    assert [guest.distance(1, 1), guest.distance(1, 2)] == [10, 20]


# -- a host's distances: checked once, where a HostTopology is built -----------------------------------


def _through_capabilities() -> None:
    parse_capabilities(build_capabilities(TEN_APART))


def _through_a_report() -> None:
    topology_from_report(report_ten_apart())


def _through_the_partitioner() -> None:
    def cpu(number: int) -> HostCpu:
        return HostCpu(id=number, socket_id=0, die_id=0, core_id=number, siblings=frozenset({number}))

    nodes = tuple(
        HostNode(node, 8 * 1024 * 1024, cpus=(cpu(node),), distances=((node, 10), (1 - node, 10))) for node in (0, 1)
    )
    compute_layout(HostTopology(nodes=nodes), VnumaSpec(mode="host"), GuestShape(vcpus=2, name="db01"))


@pytest.mark.parametrize(
    ("path", "refusal", "prefix"),
    [
        (_through_capabilities, TopologyError, "host capabilities: "),
        (_through_a_report, SpecError, "the host report does not describe a host: "),
        (_through_the_partitioner, TopologyError, ""),
    ],
    ids=["capabilities", "host-report", "partitioner"],
)
def test_ten_between_distinct_nodes_is_refused_alike_on_every_path(
    path: Callable[[], None], refusal: type[Exception], prefix: str
) -> None:
    with pytest.raises(refusal) as caught:
        path()
    assert str(caught.value) == prefix + REFUSAL


def test_every_refusal_names_the_nodes_the_value_and_the_limit() -> None:
    def built(distances: dict[int, tuple[tuple[int, int], ...]]) -> HostTopology:
        return HostTopology(nodes=tuple(HostNode(node, 1024, distances=distances.get(node, ())) for node in (0, 1)))

    for table, message in [
        ({0: ((0, 12),)}, "host node 0 reports distance 12 to itself; it must be 10"),
        ({1: ((0, 256),)}, "host node 1 reports distance 256 to node 0; distances between two nodes must be 11-255"),
        (
            {0: ((0, 10), (1, 0))},
            "host node 0 reports distance 0 to node 1; distances between two nodes must be 11-255",
        ),
        ({0: ((7, 20),)}, "host node 0 reports a distance to node 7, which is not a host node"),
    ]:
        with pytest.raises(TopologyError) as caught:
            built(table)
        assert str(caught.value) == message
    assert built({0: ((0, 10), (1, 11)), 1: ((0, 255), (1, 10))}).distance(1, 0) == 255
