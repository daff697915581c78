# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The host's capacity with a call's plans in place: where each guest would be, and whether it all fits.

The rules are the pure core's (``_core/placement.py``, ``_core/capacity.py``); this puts the planned
definitions and the guests counted outside the call in front of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityReport, check_capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import plan_dimms
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    DimmBinding,
    GuestBinding,
    held_cpus,
    place_guests,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.live import present_dimms
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import binding_from_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import DomainPlan

__all__ = ["check_fit", "layout_held", "place", "planned_binding"]


def layout_held(topology: HostTopology, layout: Layout) -> tuple[int, ...]:
    """Host CPUs a planned layout holds for itself (the rule is ``_core/placement.py:held_cpus``)."""
    emulator = layout.emulator_pins if layout.spec.isolates_emulator else None
    return held_cpus(layout.vcpu_pins or (), layout.spec.pinning, topology, emulator)


def bindings(topology: HostTopology, item: Planned, autostart: set[str]) -> tuple[GuestBinding, GuestBinding]:
    """What the capacity check counts of a planned guest: its planned definition's binding, and its current one's."""
    name = item.request.name
    starts = name in autostart
    # state: absent: the flat definition it is given.
    planned = (
        binding_from_domain(item.target, name, item.running, starts)
        if item.plan is None
        else planned_binding(topology, item, item.plan, starts)
    )
    current = binding_from_domain(item.current or item.target, name, item.running, starts, plugged=item.plugged)
    return planned, current


def place(topology: HostTopology, items: Sequence[Planned], autostart: set[str]) -> None:
    """Where each guest would be (its planned definition) and is (its current one) on the host."""
    pairs = [bindings(topology, item, autostart) for item in items]
    planned = [pair[0] for pair in pairs]
    current = [pair[1] for pair in pairs]
    for item, after, before in zip(
        items, place_guests(topology, planned), place_guests(topology, current), strict=True
    ):
        item.placement, item.before = after, before


def planned_binding(topology: HostTopology, item: Planned, plan: DomainPlan, autostart: bool) -> GuestBinding:
    """The binding of the planned definition, with the DIMMs it keeps and those this call hot-adds."""
    layout = plan.layout
    # Read from the definition to be written, not the layout alone: the user's own <hugepages>
    # and <emulatorpin> stay when the spec does not set them, and they decide where memory lives.
    written = binding_from_domain(
        plan.target, item.request.name, item.running, autostart, layout_held(topology, layout), item.plugged
    )
    dimms = list(written.dimms)
    wanted = item.request.hotplug_memory_kib
    present = present_dimms(plan.current.memory_devices)
    missing = 0 if wanted is None else wanted - sum(size for _cell, size in present)
    if missing > 0:
        dimms.extend(
            DimmBinding(cell=dimm.cell, size_kib=dimm.size_kib, host_nodes=tuple(dimm.host_nodes))
            for dimm in plan_dimms(layout, missing, present)
        )
    return replace(written, dimms=tuple(dimms), source="planned")


def check_fit(
    topology: HostTopology,
    items: Sequence[Planned],
    others: Sequence[GuestBinding],
    unread: Sequence[str],
    reserved_kib: int,
) -> CapacityReport:
    """The host's capacity with ``items`` placed (``place``) beside ``others``; ``unread`` become warnings."""
    placements = [item.placement for item in items if item.placement is not None]
    report = check_capacity(topology, [*placements, *place_guests(topology, others)], reserved_kib=reserved_kib)
    if unread:
        report = replace(report, warnings=(*report.warnings, *unread))
    return report
