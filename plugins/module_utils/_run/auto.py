# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""``mode: auto`` in a run: what the host has left for the guest, and its nodes chosen or kept.

The choice itself is the pure core's (``_core/auto.py``); this puts in front of it the host as the
capacity check sees it without the guest: the other guests that count (running or autostart) at their
definitions, and the guests this call planned before it at their plans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.auto import (
    AutoChoice,
    AutoRequest,
    choose_nodes,
    keep_nodes,
    nodeset_refusal,
    rechosen,
    stored_nodes_usable,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import (
    CapacityReport,
    MemoryRoom,
    check_capacity,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import GuestDevice
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    GuestBinding,
    GuestPlacement,
    place_guests,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.capacity import planned_binding
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest, Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma, read_guest_shape
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import DomainPlan
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree

__all__ = ["is_auto", "placed_for_room", "resolve_auto", "room_for"]


def is_auto(spec: VnumaSpec | None) -> bool:
    return spec is not None and spec.mode == "auto"


def _counted_binding(topology: HostTopology, item: Planned, plan: DomainPlan, autostart: set[str]) -> GuestBinding:
    binding = planned_binding(topology, item, plan, item.request.name in autostart)
    # A call places its guests together: one planned before counts for the next choice even when it
    # is shut off now (it is about to be started, or the two would be chosen onto the same nodes).
    return replace(binding, running=True)


def placed_for_room(topology: HostTopology, item: Planned, autostart: set[str]) -> GuestPlacement:
    """A guest this call planned, placed as the next mode auto choice counts it (``room_for``)."""
    if item.plan is None:
        raise ValueError(f"guest {item.request.name} has no plan to count")
    (placement,) = place_guests(topology, [_counted_binding(topology, item, item.plan, autostart)])
    return placement


def room_for(
    topology: HostTopology,
    others: Sequence[GuestBinding],
    planned: Sequence[Planned],
    autostart: set[str],
    reserved_kib: int,
) -> CapacityReport:
    """The host's capacity with ``others`` (as counted) and ``planned`` (this call's plans so far) in place."""
    bindings = list(others)
    bindings.extend(_counted_binding(topology, item, item.plan, autostart) for item in planned if item.plan is not None)
    return check_capacity(topology, place_guests(topology, bindings), reserved_kib=reserved_kib)


def _made_for(root: etree._Element, stored: VnumaSpec) -> AutoRequest:
    """The request a stored choice was made for: the stored spec and the cells its layout wrote.

    The definition is the record: its cells hold the memory and the vCPUs the choice was laid out
    for.  A definition without cells (edited since) was made for nothing this run can tell: 0 and 0.
    """
    numa = DomainNuma.from_domain(root).numa
    cells = numa.cells if numa is not None else ()
    return AutoRequest(
        sum(cell.memory_kib for cell in cells),
        sum(len(cell.cpus) for cell in cells),
        stored.hugepages_kib,
        stored.pinning,
    )


def resolve_auto(
    topology: HostTopology,
    request: GuestRequest,
    root: etree._Element,
    spec: VnumaSpec,
    stored: VnumaSpec | VnumaError | None,
    report: CapacityReport | MemoryRoom,
    taken: Mapping[int, str],
    devices: Sequence[GuestDevice] = (),
) -> AutoChoice:
    """The nodes of the auto ``spec``: the stored choice, kept, or a new one (``replan``, or none usable).

    ``devices`` (its PCI passthrough devices, with their host nodes) steer a new choice; a kept one is
    judged by the affinity policy like any layout (``_run/plan.py``).
    """
    if request.options.get("nodeset") is not None:
        raise nodeset_refusal(request.options["nodeset"]).naming(request.name)
    guest = read_guest_shape(root)
    if request.current_vcpus is not None:
        guest = replace(guest, current_vcpus=request.current_vcpus)
    kept = stored if isinstance(stored, VnumaSpec) and is_auto(stored) and stored.nodeset is not None else None
    if kept is not None and not request.replan and stored_nodes_usable(topology, spec):
        now = AutoRequest(spec.memory_kib or guest.memory_kib or 0, guest.vcpus, spec.hugepages_kib, spec.pinning)
        changes = now.changes_since(_made_for(root, kept))
        if changes:
            fresh = choose_nodes(topology, replace(spec, nodeset=None), guest, report, taken, devices)
            return rechosen(fresh, sorted(spec.nodes or ()), changes)
        try:
            return keep_nodes(topology, spec, guest, report, taken)
        except PlacementError as error:
            raise PlacementError(
                f"{error.message} (on the host nodes mode auto chose earlier; replan chooses again)",
                guest=request.name,
            ) from None
    return choose_nodes(topology, replace(spec, nodeset=None), guest, report, taken, devices)
