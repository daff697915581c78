# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The destination's capacity check with a moving guest's plan in place (docs/migration.md).

The plan comes from ``_core/move_planner.py:plan_destination``; this is the one check after it, for
``vnuma_migrate`` and the migration hook alike.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import (
    CapacityError,
    CapacityReport,
    check_capacity,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_models import DestinationPlan
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    GuestBinding,
    place_guest,
    place_guests,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology

__all__ = ["check_destination"]


def check_destination(
    topology: HostTopology,
    others: Iterable[GuestBinding],
    plan: DestinationPlan,
    warnings: Sequence[str] = (),
) -> CapacityReport:
    """The destination's capacity check with ``plan``'s guest in place beside ``others`` (the guests it runs).

    The one check after the plan, for ``vnuma_migrate`` and the migration hook alike: memory per node with
    the guest's cells and memory devices, hugepage pools, dedicated CPUs.  ``warnings`` (guests that could
    not be read) go into the report.  Raises ``CapacityError`` with the problems the guest takes part in.
    """
    placements = [*place_guests(topology, others), place_guest(topology, plan.binding())]
    report = check_capacity(topology, placements)
    if warnings:
        report = replace(report, warnings=(*report.warnings, *warnings))
    if report.blocking:
        error = CapacityError(replace(report, problems=report.blocking))
        error.details["capacity"] = report.to_dict()
        raise error.naming(plan.guest)
    return report
