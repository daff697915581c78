# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The PCI NUMA affinity policy (spec option ``pci_numa_affinity``): Nova's four, with Nova's meanings.

A guest's passthrough devices each sit on a host node, or on none the host reports.  The guest's
nodes are the host nodes its cells mirror.  Per device:

- ``required``: its node is one of the guest's nodes; a device without a node is refused too (Nova
  cannot consume it under this policy);
- ``preferred``: the same, but a device elsewhere is only a warning;
- ``socket``: its node shares a host socket with one of the guest's nodes (its own node is enough);
  a device without a node, or on a node without a socket (memory only), is refused;
- ``legacy`` (the default): ``required`` for a device that reports its node, anything otherwise.

``check_affinity`` judges a computed layout (modes host and node: a refusal or warnings);
``admits`` and ``misses`` let ``mode: auto`` (``_core/auto.py``) keep only the node sets the policy
admits and try the sets local to every device first.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import GuestDevice
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology

__all__ = ["admits", "affinity_text", "check_affinity", "layout_nodes", "misses", "unmet"]


def layout_nodes(layout: Layout) -> tuple[int, ...]:
    """The host nodes a layout's cells mirror: where its vCPUs run and its memory lives."""
    return tuple(sorted({node for cell in layout.cells for node in cell.host_nodes}))


def _socket(topology: HostTopology, node: int | None) -> int | None:
    if node is None or not topology.has_node(node):
        return None
    return topology.socket_of(node)


def _local(device: GuestDevice, nodes: frozenset[int]) -> bool:
    return device.host_node is not None and device.host_node in nodes


def _same_socket(topology: HostTopology, device: GuestDevice, nodes: frozenset[int]) -> bool:
    socket = _socket(topology, device.host_node)
    return socket is not None and any(_socket(topology, node) == socket for node in nodes)


def unmet(topology: HostTopology, policy: str, devices: Sequence[GuestDevice], nodes: Iterable[int]) -> list[str]:
    """Why each device the policy does not accept on ``nodes`` is not accepted (one line each)."""
    chosen = frozenset(nodes)
    lines = []
    for device in devices:
        node = device.host_node
        if _local(device, chosen):
            continue
        if policy in ("legacy", "preferred") and node is None:
            continue
        if policy == "socket" and _same_socket(topology, device, chosen):
            continue
        if node is None:
            where = "reports no host node" if device.known else "is not a PCI device of the host"
            lines.append(f"{device.name} {where}")
        elif policy == "socket":
            socket = _socket(topology, node)
            on = f"socket {socket}" if socket is not None else "no socket"
            lines.append(f"{device.name} is on host node {node} ({on})")
        else:
            lines.append(f"{device.name} is on host node {node}")
    return lines


def admits(topology: HostTopology, policy: str, devices: Sequence[GuestDevice], nodes: Iterable[int]) -> bool:
    """Whether a guest on ``nodes`` meets the policy (``preferred`` admits every set)."""
    return policy == "preferred" or not unmet(topology, policy, devices, nodes)


def misses(devices: Sequence[GuestDevice], nodes: Iterable[int]) -> int:
    """How many devices are not on one of ``nodes``: fewer is better under every policy."""
    chosen = frozenset(nodes)
    return sum(1 for device in devices if not _local(device, chosen))


def affinity_text(topology: HostTopology, policy: str, nodes: Iterable[int]) -> str:
    """What the policy asks of the guest on ``nodes``, for messages."""
    chosen = sorted(set(nodes))
    where = f"node {chosen[0]}" if len(chosen) == 1 else f"nodes {format_cpuset(chosen)}"
    if policy == "socket":
        sockets = sorted({socket for socket in (_socket(topology, node) for node in chosen) if socket is not None})
        socket_text = ", ".join(map(str, sockets)) or "none"
        return (
            f"pci_numa_affinity socket needs each device on a host node that shares a socket with the cells' "
            f"{where} (socket {socket_text})"
        )
    reported = " that reports its node" if policy == "legacy" else ""
    return f"pci_numa_affinity {policy} needs each device{reported} on a host node the cells use ({where})"


def check_affinity(
    topology: HostTopology, layout: Layout, devices: Sequence[GuestDevice], guest: str | None = None
) -> list[str]:
    """The warnings of ``layout`` under its spec's ``pci_numa_affinity``; a PlacementError when it refuses.

    The message names the guest, each device (address), its node, the cells' nodes and the policy.
    """
    policy = layout.spec.pci_numa_affinity
    nodes = layout_nodes(layout)
    prefix = f"guest {guest}: " if guest else ""
    warnings = [
        f"{prefix}{device.name} is not a PCI device of the host: its host node is unknown"
        for device in devices
        if not device.known and policy in ("legacy", "preferred")
    ]
    lines = unmet(topology, policy, devices, nodes)
    if not lines:
        return warnings
    cells = "; ".join(f"cell {cell.id} on host node(s) {format_cpuset(cell.host_nodes)}" for cell in layout.cells)
    text = f"{'; '.join(lines)}; {affinity_text(topology, policy, nodes)} ({cells})"
    if policy == "preferred":
        return [*warnings, f"{prefix}{text}"]
    device_nodes = sorted({device.host_node for device in devices if device.host_node is not None})
    hint = (
        f"; use host nodes that include node(s) {format_cpuset(device_nodes)} (mode node with nodeset, or mode auto), "
        "or pci_numa_affinity preferred to allow it with a warning"
        if device_nodes
        else "; pci_numa_affinity legacy or preferred allows devices without a host node"
    )
    raise PlacementError(text + hint, guest=guest)
