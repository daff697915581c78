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
    choose_nodes,
    keep_nodes,
    stored_nodes_usable,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityReport, check_capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import GuestDevice
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import GuestBinding, place_guests
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.capacity import planned_binding
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest, Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import read_guest_shape
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree

__all__ = ["is_auto", "resolve_auto", "room_for"]


def is_auto(spec: VnumaSpec | None) -> bool:
    return spec is not None and spec.mode == "auto"


def room_for(
    topology: HostTopology,
    others: Sequence[GuestBinding],
    planned: Sequence[Planned],
    autostart: set[str],
    reserved_kib: int,
) -> CapacityReport:
    """The host's capacity with ``others`` (as counted) and ``planned`` (this call's plans so far) in place."""
    bindings = list(others)
    for item in planned:
        if item.plan is None:
            continue
        binding = planned_binding(topology, item, item.plan, item.request.name in autostart)
        # A call places its guests together: one planned before counts for the next choice even when it
        # is shut off now (it is about to be started, or the two would be chosen onto the same nodes).
        bindings.append(replace(binding, running=True))
    return check_capacity(topology, place_guests(topology, bindings), reserved_kib=reserved_kib)


def resolve_auto(
    topology: HostTopology,
    request: GuestRequest,
    root: etree._Element,
    spec: VnumaSpec,
    stored: VnumaSpec | VnumaError | None,
    report: CapacityReport,
    taken: Mapping[int, str],
    devices: Sequence[GuestDevice] = (),
) -> AutoChoice:
    """The nodes of the auto ``spec``: the stored choice, kept, or a new one (``replan``, or none usable).

    ``devices`` (its PCI passthrough devices, with their host nodes) steer a new choice; a kept one is
    judged by the affinity policy like any layout (``_run/plan.py``).
    """
    if request.options.get("nodeset") is not None:
        raise SpecError(
            f"nodeset {request.options['nodeset']!r} is what mode auto chooses; use mode node to name the host "
            "nodes, or replan to have them chosen again",
            guest=request.name,
        )
    guest = read_guest_shape(root)
    if request.current_vcpus is not None:
        guest = replace(guest, current_vcpus=request.current_vcpus)
    kept = isinstance(stored, VnumaSpec) and is_auto(stored) and stored.nodeset is not None
    if kept and not request.replan and stored_nodes_usable(topology, spec):
        try:
            return keep_nodes(topology, spec, guest, report, taken)
        except PlacementError as error:
            raise PlacementError(
                f"{error.message} (on the host nodes mode auto chose earlier; replan chooses again)",
                guest=request.name,
            ) from None
    return choose_nodes(topology, replace(spec, nodeset=None), guest, report, taken, devices)
