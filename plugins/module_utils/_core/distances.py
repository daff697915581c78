# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""NUMA distances: the one set of limits and the one validator, for host and guest alike.

The ACPI SLIT and libvirt (https://libvirt.org/formatdomain.html#cpu-model-and-topology) give a node
10 to itself and any other node 11..255; 255 means unreachable.  libvirt 9.0 writes past a heap array
when it rejects a ``<distances>`` value and the daemon crashes later, on an unrelated call: nothing
invalid may reach it, so the XML layer checks every guest matrix with ``validate_distances`` before
any XML leaves it.  A host's distances are checked with ``is_valid_distance`` once, where every host
topology is built (``_core/topology.py:HostTopology``, from capabilities XML or a host report alike).
"""

from __future__ import annotations

from collections.abc import Sequence

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError

__all__ = [
    "LOCAL_DISTANCE",
    "MIN_REMOTE_DISTANCE",
    "DEFAULT_REMOTE_DISTANCE",
    "MAX_DISTANCE",
    "default_distance",
    "is_valid_distance",
    "validate_distances",
]

# A node to itself.
LOCAL_DISTANCE = 10
# The nearest two distinct nodes can be (libvirt refuses 10 off the diagonal).
MIN_REMOTE_DISTANCE = 11
# What libvirt reports between two distinct nodes when the firmware gives no table.
DEFAULT_REMOTE_DISTANCE = 20
# The largest value a SLIT entry holds: unreachable.
MAX_DISTANCE = 255


def default_distance(same_node: bool) -> int:
    """The distance no table gives: 10 to itself, 20 to another node, as libvirt and a guest kernel read it."""
    return LOCAL_DISTANCE if same_node else DEFAULT_REMOTE_DISTANCE


def is_valid_distance(value: object, same_node: bool) -> bool:
    """Whether ``value`` is a valid distance from a node to itself (``same_node``) or to another node."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    if same_node:
        return value == LOCAL_DISTANCE
    return MIN_REMOTE_DISTANCE <= value <= MAX_DISTANCE


def validate_distances(matrix: Sequence[Sequence[int]], what: str = "guest NUMA distances") -> None:
    """Refuse any distance matrix libvirt would refuse, before libvirt ever sees it.

    A square matrix, 10 on the diagonal, 11..255 elsewhere, symmetric.
    """
    size = len(matrix)
    for row_id, row in enumerate(matrix):
        if len(row) != size:
            raise SpecError(f"{what}: cell {row_id} has {len(row)} distances for {size} cells")
        for column_id, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(f"{what}: distance {row_id}->{column_id} {value!r} is not an integer")
            if is_valid_distance(value, row_id == column_id):
                if value != matrix[column_id][row_id]:
                    raise SpecError(
                        f"{what}: distance {row_id}->{column_id} is {value} but {column_id}->{row_id} is "
                        f"{matrix[column_id][row_id]}; distances must be symmetric"
                    )
            elif row_id == column_id:
                raise SpecError(f"{what}: distance of cell {row_id} to itself is {value}, it must be {LOCAL_DISTANCE}")
            else:
                raise SpecError(
                    f"{what}: distance {row_id}->{column_id} is {value}, it must be "
                    f"{MIN_REMOTE_DISTANCE}..{MAX_DISTANCE} between distinct cells"
                )
