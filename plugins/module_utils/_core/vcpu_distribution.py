# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""vCPU ids per guest cell for one distribution (docs/partitioning.md, "Distributions").

The partitioner (``_core/partitioner.py``) cuts a guest's vCPUs this way, and so does the
``vnuma_distribute`` filter without a host.  Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

from collections.abc import Sequence

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import even_split
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import CELLS_REASON, MAX_CELLS
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import MAX_VCPUS, VCPUS_REASON
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import check_count, shown

__all__ = ["distribute_vcpus"]


def distribute_vcpus(
    vcpus: int,
    cells: int,
    distribution: str,
    threads: int = 1,
    host_cells: Sequence[int] | None = None,
) -> list[list[int]]:
    """vCPU ids per guest cell for one distribution (docs/partitioning.md, "Distributions").

    ``threads`` is the guest core width (``siblings``); ``host_cells`` is needed by
    ``round-robin`` only: the guest cell behind each selected host CPU, in host CPU id order.
    """
    # The limits first: a list per cell and an entry per vCPU are built below.
    check_count("vcpus", vcpus, MAX_VCPUS, VCPUS_REASON)
    check_count("cells", cells, MAX_CELLS, CELLS_REASON)
    if isinstance(threads, bool) or not isinstance(threads, int):
        check_count("threads", threads)
    if threads < 1 or vcpus % threads:
        raise SpecError(f"{vcpus} vCPUs cannot be cut into guest cores of {shown(threads)} threads")
    blocks: list[list[int]] = [[] for _cell in range(cells)]
    if distribution in ("contiguous", "siblings"):
        start = 0
        for cell, cores in enumerate(even_split(vcpus // threads, cells)):
            blocks[cell] = list(range(start, start + cores * threads))
            start += cores * threads
    elif distribution == "interleave":
        for vcpu in range(vcpus):
            blocks[vcpu % cells].append(vcpu)
    elif distribution == "round-robin":
        if not host_cells:
            raise SpecError("distribution round-robin follows the host's CPU numbering and needs the host topology")
        bad = sorted({cell for cell in host_cells if not 0 <= cell < cells})
        if bad:
            raise SpecError(f"host CPUs are mapped to guest cells {format_cpuset(bad)}, beyond the {cells} cells")
        for vcpu in range(vcpus):
            blocks[host_cells[vcpu * len(host_cells) // vcpus]].append(vcpu)
    else:
        raise SpecError(
            f"distribution {shown(distribution)} is not one of contiguous, siblings, round-robin, interleave"
        )
    return blocks
