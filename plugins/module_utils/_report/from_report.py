# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The drawings' models, rebuilt from the dicts the modules return.

The host diagrams (text and SVG) draw a ``HostTopology`` and ``GuestPlacement``\\ s.  Templates
only have the documented return values: vnuma_info's ``host`` and ``guests`` and vnuma_domain's
``layout``.  These functions turn them back into the models, so that a drawing made in a template
is the drawing the module would make:

- ``topology_from_report``: vnuma_info's ``host`` (``_report/host.py:host_report``);
- ``placement_from_report``: one of vnuma_info's ``guests`` (its ``layout.cells`` are
  ``CellPlacement.to_dict``; hot-plugged DIMMs are not in that report and are not drawn);
- ``placement_from_layout``: a planned layout (``Layout.to_dict``), placed on the host by the same
  rule vnuma_info uses (``_core/placement.py:place_guest``).

Malformed input raises ``SpecError`` naming what is wrong.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    CellPlacement,
    GuestBinding,
    GuestPlacement,
    held_cpus,
    place_guest,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCpu, HostNode, HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import read_digits

__all__ = ["free_figures", "placement_from_layout", "placement_from_report", "topology_from_report"]


def _ids(text: Any, what: str) -> tuple[int, ...]:
    if text is None or text == "":
        return ()
    if not isinstance(text, str):
        raise SpecError(f"{what} must be a cpuset string, got {type(text).__name__}")
    return tuple(sorted(parse_cpuset(text, what, allow_empty=True)))


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{what} must be an integer, got {type(value).__name__}")
    return value


def _optional_int(value: Any, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _key(value: Any, what: str) -> int:
    """An id that is a dict key: an integer, or its digits once the result went through JSON (``"0"``)."""
    number = read_digits(value) if isinstance(value, str) else value
    return _int(value if number is None else number, what)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{what} must be a number, got {type(value).__name__}")
    return float(value)


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{what} must be a dict, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"{what} must be a list, got {type(value).__name__}")
    return value


def _field(entry: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in entry:
        raise SpecError(f"{what} has no {key!r}")
    return entry[key]


def topology_from_report(host: Any) -> HostTopology:
    """vnuma_info's ``host`` dict -> the host's topology."""
    host = _mapping(host, "the host report")
    nodes_in = _list(_field(host, "nodes", "the host report"), "the host report's nodes")
    cpus_by_node: dict[int, list[HostCpu]] = {}
    for cpu in _list(host.get("cpus", []), "the host report's cpus"):
        cpu = _mapping(cpu, "a host CPU")
        what = f"host CPU {cpu.get('id')}"
        online = cpu.get("online", True)
        cpus_by_node.setdefault(_int(_field(cpu, "node", what), f"{what}: node"), []).append(
            HostCpu(
                id=_int(_field(cpu, "id", "a host CPU"), "a host CPU's id"),
                # Offline CPUs have no socket (HostCpu.online).
                socket_id=_optional_int(cpu.get("socket"), f"{what}: socket") if online else None,
                die_id=_optional_int(cpu.get("die"), f"{what}: die") if online else None,
                core_id=_optional_int(cpu.get("core"), f"{what}: core") if online else None,
                siblings=frozenset(_ids(cpu.get("siblings"), f"{what}: siblings")),
            )
        )
    page_sizes = tuple(_int(size, "a page size") for size in _list(host.get("page_sizes_kib", [4]), "page_sizes_kib"))
    # The report lists hugepage pools only; the smallest size (normal memory) comes first in a node's pages.
    base = (min(page_sizes),) if page_sizes else ()
    nodes = []
    for node in nodes_in:
        node = _mapping(node, "a host node")
        node_id = _int(_field(node, "id", "a host node"), "a host node's id")
        what = f"host node {node_id}"
        pools = [
            (_int(_field(pool, "size_kib", what), f"{what}: size_kib"), _int(pool.get("total", 0), f"{what}: total"))
            for pool in (
                _mapping(pool, f"{what}: a hugepage pool")
                for pool in _list(node.get("hugepages") or [], f"{what}: hugepages")
            )
        ]
        distances = _mapping(node.get("distances", {}), f"{what}: distances")
        nodes.append(
            HostNode(
                id=node_id,
                memory_kib=_int(_field(node, "memory_kib", what), f"{what}: memory_kib"),
                cpus=tuple(sorted(cpus_by_node.get(node_id, ()), key=lambda cpu: cpu.id)),
                pages=tuple(sorted({(size, 0) for size in base} | set(pools))),
                distances=tuple(
                    sorted(
                        (_key(other, f"{what}: a distance's node"), _int(value, f"{what}: distance"))
                        for other, value in distances.items()
                    )
                )
                if host.get("distances_reported", True)
                else (),
            )
        )
    try:
        return HostTopology(tuple(nodes), page_sizes_kib=page_sizes or (4,))
    except VnumaError as error:
        raise SpecError(f"the host report does not describe a host: {error.message}") from error


def free_figures(host: Any) -> tuple[dict[int, int], dict[int, dict[int, int]]]:
    """Free memory (host node -> KiB) and free hugepages (host node -> page KiB -> pages) where reported."""
    free_kib: dict[int, int] = {}
    free_pages: dict[int, dict[int, int]] = {}
    for node in _list(_field(_mapping(host, "the host report"), "nodes", "the host report"), "nodes"):
        node = _mapping(node, "a host node")
        if isinstance(node.get("free_kib"), int):
            free_kib[_int(_field(node, "id", "a host node"), "a host node's id")] = node["free_kib"]
        for pool in _list(node.get("hugepages") or [], "a host node's hugepages"):
            if isinstance(pool, Mapping) and isinstance(pool.get("free"), int):
                free_pages.setdefault(node["id"], {})[pool["size_kib"]] = pool["free"]
    return free_kib, free_pages


def _by_node(value: Any, what: str) -> dict[int, int | float]:
    """A share per host node (``{"0": 0.5}``): node ids as integers, shares as numbers."""
    shares = {}
    for node, share in _mapping(value if value is not None else {}, what).items():
        if isinstance(share, bool) or not isinstance(share, (int, float)):
            raise SpecError(f"{what}: the share of host node {node} must be a number, got {type(share).__name__}")
        shares[_key(node, f"{what}: a node id")] = share
    return shares


def placement_from_report(guest: Any) -> GuestPlacement:
    """One guest of vnuma_info's ``guests`` -> its placement, as vnuma_info drew it."""
    guest = _mapping(guest, "a guest report")
    name = str(_field(guest, "name", "a guest report"))
    layout = _mapping(_field(guest, "layout", f"guest {name}"), f"guest {name}: layout")
    cells = []
    for cell in _list(_field(layout, "cells", f"guest {name}: layout"), f"guest {name}: cells"):
        cell = _mapping(cell, f"guest {name}: a cell")
        what = f"guest {name}: cell {cell.get('id')}"
        mode = cell.get("memory_mode")
        cells.append(
            CellPlacement(
                id=_int(_field(cell, "id", what), f"{what}: id"),
                vcpus=_ids(cell.get("vcpus"), f"{what}: vcpus"),
                memory_kib=_int(_field(cell, "memory_kib", what), f"{what}: memory_kib"),
                memory_mode=None if mode is None else str(mode),
                memory_nodes=_ids(cell.get("memory_nodes"), f"{what}: memory_nodes"),
                hugepage_kib=_optional_int(cell.get("hugepages_kib"), f"{what}: hugepages_kib"),
                cpu_share={node: float(share) for node, share in _by_node(cell.get("cpu_share"), what).items()},
                memory_share={node: int(kib) for node, kib in _by_node(cell.get("memory_share_kib"), what).items()},
                aligned=bool(cell.get("aligned", False)),
                locality=_number(cell.get("locality", 0.0), f"{what}: locality"),
            )
        )
    binding = GuestBinding(
        name=name,
        cells=(),
        dedicated_cpus=_ids(guest.get("dedicated_cpus"), f"guest {name}: dedicated_cpus"),
        running=bool(guest.get("running", False)),
        autostart=bool(guest.get("autostart", False)),
    )
    alignment = guest.get("alignment")
    locality = alignment.get("locality", 0.0) if isinstance(alignment, Mapping) else 0.0
    return GuestPlacement(
        binding=binding,
        cells=tuple(cells),
        dimm_share={node: int(kib) for node, kib in _by_node(layout.get("dimm_share_kib"), f"guest {name}").items()},
        locality=_number(locality, f"guest {name}: alignment's locality"),
    )


def placement_from_layout(
    topology: HostTopology, layout: Any, running: bool = False, autostart: bool = False
) -> GuestPlacement:
    """A planned layout (vnuma_domain's ``layout``) placed on ``topology``: where the guest runs once it is applied.

    ``running`` and ``autostart``: the guest's, as read (the capacity rule counts a guest that runs or starts with the
    host, and the drawings follow it).
    """
    layout = _mapping(layout, "a layout")
    name = str(_field(layout, "guest", "a layout"))
    mode = layout.get("memory_mode")
    hugepages = _optional_int(layout.get("hugepages_kib"), f"guest {name}: hugepages_kib")
    cells = []
    for cell in _list(_field(layout, "cells", f"guest {name}: layout"), f"guest {name}: cells"):
        cell = _mapping(cell, f"guest {name}: a cell")
        what = f"guest {name}: cell {cell.get('id')}"
        cells.append(
            CellBinding(
                id=_int(_field(cell, "id", what), f"{what}: id"),
                vcpus=_ids(cell.get("vcpus"), f"{what}: vcpus"),
                memory_kib=_int(_field(cell, "memory_kib", what), f"{what}: memory_kib"),
                memory_mode=None if mode is None else str(mode),
                memory_nodes=_ids(cell.get("memory_nodes"), f"{what}: memory_nodes"),
                hugepage_kib=hugepages,
            )
        )
    pins = _mapping(layout.get("vcpupin") or {}, f"guest {name}: vcpupin")
    vcpu_cpus = {
        _key(vcpu, f"guest {name}: a vcpupin's vCPU"): _ids(cpus, f"guest {name}: vcpupin {vcpu}")
        for vcpu, cpus in pins.items()
    }
    emulator = layout.get("emulatorpin")
    pinning = layout.get("pinning")
    binding = GuestBinding(
        name=name,
        cells=tuple(cells),
        vcpu_cpus=vcpu_cpus,
        emulator_cpus=_ids(emulator, f"guest {name}: emulatorpin") if emulator else None,
        dedicated_cpus=held_cpus(vcpu_cpus.values(), None if pinning is None else str(pinning), topology),
        running=running,
        autostart=autostart,
        source="planned",
    )
    try:
        return place_guest(topology, binding)
    except VnumaError as error:
        raise error.naming(name) from None
