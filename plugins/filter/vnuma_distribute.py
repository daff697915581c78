# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_distribute
short_description: Assign a guest's vCPU ids to its NUMA cells
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - Split the vCPU ids V(0) to V(n-1) of a guest with n vCPUs over its NUMA cells following one of the collection's
    distributions, and return the vCPUs of each cell as a cpuset, ready for the C(cpus) attribute of
    C(<cpu><numa><cell>) in hand-written domain XML.
  - Without O(capabilities) the split is pure arithmetic over O(cells) cells. With O(capabilities) the cells are the
    guest cells P(vnuma.libvirt.vnuma_layout#filter) computes for a V(node) mode spec over O(nodeset), and the result
    is exactly the C(vcpus) of its cells; V(round-robin) needs this, since it follows the host's CPU numbering, and
    V(siblings) then takes the width of its guest cores from the host.
  - For the whole layout (memory, binding, pinning, distances, topology) use P(vnuma.libvirt.vnuma_layout#filter) or
    P(vnuma.libvirt.vnuma_expand#filter).
options:
  _input:
    description:
      - The guest's number of vCPUs (the content of C(<vcpu>)), at most V(4096) (KVM's limit per guest).
    type: int
    required: true
  cells:
    description:
      - The number of guest cells, at most V(128) (QEMU's limit of guest NUMA nodes).
      - Required without O(capabilities); with it, defaults to the number of host nodes of O(nodeset).
    type: int
  distribution:
    description:
      - V(contiguous) gives each cell a block of consecutive vCPU ids, the blocks differing in size by at most one
        guest core of O(threads) vCPUs.
      - V(siblings) is V(contiguous) in whole guest cores; with O(capabilities) the cores are as wide as the host's.
      - V(round-robin) follows the host's CPU numbering, scaled to the guest (vCPU k goes to the cell of the host CPU
        at position k times H over n of the H host CPUs of the selected nodes); it needs O(capabilities).
      - V(interleave) deals the vCPUs one at a time over the cells (vCPU k goes to cell k modulo O(cells)).
    type: str
    choices: [contiguous, siblings, round-robin, interleave]
    default: contiguous
  threads:
    description:
      - The width of a guest core, in vCPUs, that V(contiguous) and V(siblings) never split across cells. O(_input)
        must be a multiple of it.
      - Defaults to V(1). Only without O(capabilities), which gives the width itself.
    type: int
  capabilities:
    description:
      - The host's capabilities XML (C(virsh capabilities)), to distribute the vCPUs over guest cells placed on the
        host's nodes.
      - Reading it needs the C(lxml) Python library on the controller; without O(capabilities) the filter needs none.
    type: str
  nodeset:
    description:
      - The host nodes the guest cells are placed on, in libvirt's nodeset syntax (V(0-3,^2)); requires
        O(capabilities). Defaults to every host node with CPUs.
    type: str
seealso:
  - plugin: vnuma.libvirt.vnuma_layout
    plugin_type: filter
  - plugin: vnuma.libvirt.cpuset_parse
    plugin_type: filter
"""

EXAMPLES = r"""
---
- name: Four cells, consecutive vCPUs
  ansible.builtin.debug:
    msg: "{{ 16 | vnuma.libvirt.vnuma_distribute(cells=4) }}"
  # => ["0-3", "4-7", "8-11", "12-15"]

- name: Four cells, vCPUs dealt one at a time
  ansible.builtin.debug:
    msg: "{{ 8 | vnuma.libvirt.vnuma_distribute(cells=4, distribution='interleave') }}"
  # => ["0,4", "1,5", "2,6", "3,7"]

- name: Three cells of whole two-thread cores
  ansible.builtin.debug:
    msg: "{{ 12 | vnuma.libvirt.vnuma_distribute(cells=3, distribution='siblings', threads=2) }}"
  # => ["0-3", "4-7", "8-11"]

- name: Follow the host's CPU numbering over host nodes 0 and 1
  ansible.builtin.debug:
    msg: >-
      {{ 8 | vnuma.libvirt.vnuma_distribute(distribution='round-robin',
                                            capabilities=lookup('ansible.builtin.file', 'host-caps.xml'),
                                            nodeset='0-1') }}

- name: Template the guest cells by hand
  ansible.builtin.debug:
    msg: >-
      {% for cpus in 16 | vnuma.libvirt.vnuma_distribute(cells=2) %}
      <cell id='{{ loop.index0 }}' cpus='{{ cpus }}' memory='8' unit='GiB'/>
      {% endfor %}
"""

RETURN = r"""
_value:
  description:
    - The vCPU ids of each guest cell as a canonical cpuset, one string per cell in cell id order; an empty string for
      a cell without vCPUs (more cells than vCPUs, or a cell on a host node without CPUs).
  type: list
  elements: str
  sample: ["0-3", "4-7", "8-11", "12-15"]
"""

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import (
    coerce_int,
    filter_errors,
    is_omitted,
    require_text,
    spec_options,
)

_NAME = "vnuma_distribute"


def _host_cells(capabilities: str, vcpus: Any, cells: Any, distribution: Any, nodeset: Any) -> list[str]:
    """The vCPUs of the cells the partitioner places: a ``node`` mode spec that asks nothing else of the host.

    Memory is the least the cells can hold and binds ``preferred`` (never refused for size); CPU-less cells are
    allowed: the question is only which vCPU goes where.
    """
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities

    options = {"mode": "node", "distribution": distribution, "nodeset": nodeset, "cells": cells, "pinning": "none"}
    # The request is checked against its limits (vCPUs, cells, node ids) before the host is parsed.
    spec = VnumaSpec.from_mapping(spec_options(_NAME, {**options, "memory_mode": "preferred", "cpuless_cells": True}))
    GuestShape(vcpus=vcpus)
    host = parse_capabilities(capabilities)
    # The host's own cell granule: a POWER host's cells are whole 256 MiB blocks.
    guest = GuestShape(vcpus=vcpus, memory_kib=host.cell_granule_kib * (spec.cells or len(host.nodes)))
    return [format_cpuset(cell.vcpus) for cell in compute_layout(host, spec, guest).cells]


def _counted_cells(vcpus: Any, cells: Any, distribution: Any, threads: Any, nodeset: Any) -> list[str]:
    """The vCPUs of ``cells`` cells by arithmetic alone, without a host."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.vcpu_distribution import distribute_vcpus

    if cells is None:
        raise AnsibleFilterError(f"vnuma.libvirt.{_NAME}: cells is required without capabilities")
    if not is_omitted(nodeset):
        raise AnsibleFilterError(f"vnuma.libvirt.{_NAME}: nodeset selects host nodes and needs capabilities")
    with filter_errors(_NAME):
        blocks = distribute_vcpus(vcpus, cells, distribution, 1 if threads is None else threads)
    return [format_cpuset(block) for block in blocks]


def vnuma_distribute(
    vcpus: Any,
    cells: Any = None,
    distribution: Any = "contiguous",
    threads: Any = None,
    capabilities: Any = None,
    nodeset: Any = None,
) -> list[str]:
    """vCPU count -> one cpuset of vCPU ids per guest cell."""
    vcpus, cells, threads = coerce_int(vcpus), coerce_int(cells), coerce_int(threads)
    distribution = "contiguous" if is_omitted(distribution) else distribution
    if is_omitted(capabilities):
        return _counted_cells(vcpus, cells, distribution, threads, nodeset)
    if threads is not None:
        raise AnsibleFilterError(f"vnuma.libvirt.{_NAME}: give threads or capabilities, not both (the host sets it)")
    require_text(_NAME, "capabilities (host capabilities XML)", capabilities)
    with filter_errors(_NAME):
        return _host_cells(capabilities, vcpus, cells, distribution, nodeset)


class FilterModule:
    """The vnuma.libvirt.vnuma_distribute filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_distribute}
