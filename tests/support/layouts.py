# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Views of a layout and of a placement that only the tests ask for, computed from their public fields."""

from __future__ import annotations

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import GuestPlacement

__all__ = ["cell_of_vcpu", "memory_by_node", "online_at_boot"]


def cell_of_vcpu(layout: Layout) -> dict[int, int]:
    """The guest cell of each vCPU id."""
    return {vcpu: cell.id for cell in layout.cells for vcpu in cell.vcpus}


def online_at_boot(layout: Layout) -> tuple[int, ...]:
    """The vCPUs online at boot, in id order: the first ``current_vcpus`` of the enable order."""
    return tuple(sorted(layout.enable_order[: layout.current_vcpus]))


def memory_by_node(placement: GuestPlacement, hugepage_kib: int | None = None) -> dict[int, int]:
    """KiB the guest takes from each host node, from the pool of ``hugepage_kib`` pages (None: normal).

    The cells' shares and the hot-plugged DIMMs' (``dimm_pages``) of that page size.
    """
    total: dict[int, int] = {}
    for cell in placement.cells:
        if cell.hugepage_kib != hugepage_kib:
            continue
        for node, kib in cell.memory_share.items():
            total[node] = total.get(node, 0) + kib
    for (node, page), kib in placement.dimm_pages.items():
        if page == hugepage_kib:
            total[node] = total.get(node, 0) + kib
    return total
