# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one set of distance limits and the one validator (issue 9), and who uses them."""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core import distances, partitioner, topology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import (
    LOCAL_DISTANCE,
    MAX_DISTANCE,
    MIN_REMOTE_DISTANCE,
    is_valid_distance,
    validate_distances,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import capabilities, cpu_numa


def test_limits() -> None:
    assert (LOCAL_DISTANCE, MIN_REMOTE_DISTANCE, MAX_DISTANCE) == (10, 11, 255)


def test_every_layer_uses_the_one_set_of_limits() -> None:
    assert cpu_numa.LOCAL_DISTANCE is distances.LOCAL_DISTANCE
    assert cpu_numa.MIN_REMOTE_DISTANCE is distances.MIN_REMOTE_DISTANCE
    assert cpu_numa.MAX_DISTANCE is distances.MAX_DISTANCE
    assert cpu_numa.validate_distances is validate_distances
    assert topology.LOCAL_DISTANCE is distances.LOCAL_DISTANCE
    assert topology.REMOTE_DISTANCE == distances.DEFAULT_REMOTE_DISTANCE == 20
    assert partitioner.SAME_NODE_DISTANCE == MIN_REMOTE_DISTANCE
    assert partitioner.MAX_DISTANCE is distances.MAX_DISTANCE
    assert capabilities.is_valid_distance is is_valid_distance


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
