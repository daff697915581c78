# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The vNUMA spec options: the same names as the <vnuma> element's attributes and as the
    # keys of the vnuma_layout filter's spec (plugins/module_utils/_core/spec.py is the source of truth).
    DOCUMENTATION = r"""
options:
  mode:
    description:
      - V(host) mirrors every host node that has CPUs, one guest cell per node.
      - V(node) uses the nodes in O(nodeset) (default every node with CPUs), split into O(cells) guest cells.
      - Options left unset keep the value stored in the guest's metadata by an earlier run, or the default.
    type: str
    choices: [host, node]
  distribution:
    description:
      - Which vCPU ids go to which guest cell. V(contiguous) gives blocks in order; V(siblings) gives blocks of
        whole cores of the host's SMT width; V(round-robin) follows the host's own CPU numbering; V(interleave)
        deals vCPUs one at a time. The default is V(contiguous).
    type: str
    choices: [contiguous, siblings, round-robin, interleave]
  memory:
    description:
      - Guest memory to split over the cells, in KiB or with a unit (V(16 GiB)). Defaults to the guest's
        C(<memory>), which becomes this value when it is set.
    type: raw
  nodeset:
    description:
      - Host nodes to use in V(node) mode, in libvirt cpuset syntax (V(0-3,^2)).
    type: str
  cells:
    description:
      - Number of guest cells in V(node) mode; fewer than the nodes groups the nearest nodes, more spreads cells
        evenly over them.
    type: int
  pinning:
    description:
      - V(node) lets each vCPU float over its cell's host CPUs (default); V(core) gives each guest core a whole
        dedicated host core; V(thread) gives each vCPU a dedicated host thread; V(none) writes no C(<vcpupin>).
    type: str
    choices: [node, core, thread, none]
  memory_mode:
    description:
      - Memory policy of each cell (C(<memnode mode>)). The default is V(strict).
    type: str
    choices: [strict, preferred, interleave, restrictive]
  memory_split:
    description:
      - V(even) gives every cell the same memory (default); V(vcpus) splits it in proportion to the cells' vCPUs.
    type: str
    choices: [even, vcpus]
  hugepages:
    description:
      - Back every cell with hugepages of this size (V(2 MiB), V(1 GiB)).
    type: raw
  emulator_pin:
    description:
      - V(nodes) pins the emulator threads to the selected nodes' CPUs that no vCPU holds exclusively.
    type: str
    choices: [none, nodes]
  cpuless_cells:
    description:
      - Allow guest cells that receive no vCPU (more cells than vCPUs).
    type: bool
  max_memory:
    description:
      - Maximum memory for memory hotplug (C(<maxMemory>)); needs O(memory_slots).
    type: raw
  memory_slots:
    description:
      - Number of memory slots for hot-plugged DIMMs (1 to 256); needs O(max_memory).
    type: int
"""
