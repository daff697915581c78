# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A host that reports 10 between two distinct nodes, as capabilities and as a host report, and its refusal.

libvirt refuses 10 off the diagonal (and would crash on a guest matrix that carried it): every path that reads
a host's distances must refuse it with the same message (tests/unit/plugins/module_utils/_core/test_distances.py
for the pure paths, tests/unit/plugins/filter/test_distance_refusals.py for the filters).
"""

from __future__ import annotations

from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._report.host import host_report
from ansible_collections.vnuma.libvirt.tests.support.hostgen import HostShape
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

REFUSAL = "host node 0 reports distance 10 to node 1; distances between two nodes must be 11-255"
# Two nodes of one socket, 10 apart (hostgen's "same socket" distance).
TEN_APART = HostShape(sockets=1, nodes_per_socket=2, cores_per_node=2, distances=(10, 10, 21))


def report_ten_apart() -> dict[str, Any]:
    """vnuma_info's ``host`` of the ring host, with its nodes 0 and 1 said to be 10 apart."""
    report = host_report(host("seed-4node-ring"))
    for node, other in ((0, 1), (1, 0)):
        report["nodes"][node]["distances"][str(other)] = 10
    return report
