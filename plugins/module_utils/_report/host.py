# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The host's topology as vnuma_info reports it (its ``host`` return value): plain dicts and lists.

Counts of CPUs are of online CPUs, the ones a guest can be placed on; offline CPUs are listed
apart.  A node's smallest page size is its normal memory: only the larger pools are hugepages.
Free memory and free hugepages come from the connection, not from the capabilities, and are
None wherever the caller could not learn them.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostNode, HostTopology

__all__ = ["host_report"]


def _node(
    topology: HostTopology,
    node: HostNode,
    free_kib: int | None,
    free_pages: Mapping[int, int] | None,
) -> dict[str, Any]:
    pools = dict(node.pages)
    offline = sorted(cpu.id for cpu in node.cpus if not cpu.online)
    return {
        "id": node.id,
        "cpus": format_cpuset(node.usable_cpus),
        "cpu_count": len(node.usable_cpus),
        "offline_cpus": format_cpuset(offline),
        "cores": len(node.cores),
        "threads_per_core": node.threads_per_core,
        "socket": topology.socket_of(node.id) if node.has_cpus else None,
        "memory_kib": node.memory_kib,
        "free_kib": free_kib,
        "hugepages": [
            {
                "size_kib": size,
                "total": pools[size],
                "free": None if free_pages is None else free_pages.get(size),
            }
            for size in node.hugepage_sizes
        ],
        # libvirt's defaults (10 local, 20 remote) when the host reports none: see distances_reported.
        "distances": {str(other): topology.distance(node.id, other) for other in topology.node_ids},
    }


def host_report(
    topology: HostTopology,
    free_kib: Mapping[int, int] | None = None,
    free_pages: Mapping[int, Mapping[int, int]] | None = None,
) -> dict[str, Any]:
    """The documented ``host`` dict of vnuma_info.

    ``free_kib``: host node -> free memory in KiB; ``free_pages``: host node -> page size in KiB ->
    free pages.  Nodes missing from either (or either None) report null.
    """
    free_kib = free_kib or {}
    free_pages = free_pages or {}
    cpus = [
        {
            "id": cpu.id,
            "node": node.id,
            "socket": cpu.socket_id,
            "die": cpu.die_id,
            "core": cpu.core_id,
            "siblings": format_cpuset(cpu.siblings),
            "online": cpu.online,
        }
        for node, cpu in sorted(
            ((node, cpu) for node in topology.nodes for cpu in node.cpus), key=lambda pair: pair[1].id
        )
    ]
    online = [cpu for node in topology.nodes for cpu in node.cpus if cpu.online]
    return {
        "nodes": [_node(topology, node, free_kib.get(node.id), free_pages.get(node.id)) for node in topology.nodes],
        "cpus": cpus,
        "sockets": len({cpu.socket_id for cpu in online}),
        "cores": sum(len(node.cores) for node in topology.nodes),
        "threads_per_core": max((node.threads_per_core for node in topology.nodes), default=0),
        "cpu_count": len(online),
        "memory_kib": sum(node.memory_kib for node in topology.nodes),
        "free_kib": sum(free_kib.values()) if free_kib and all(n in free_kib for n in topology.node_ids) else None,
        "page_sizes_kib": list(topology.page_sizes_kib),
        "distances_reported": any(node.distances for node in topology.nodes),
    }
