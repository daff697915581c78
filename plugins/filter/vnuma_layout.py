# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_layout
short_description: Compute the virtual NUMA layout of a guest on a host
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - Compute, from a host's capabilities XML and a vNUMA spec, the guest NUMA layout the collection would render into
    the guest's domain XML; the guest NUMA cells with their vCPUs, memory and host nodes, the guest CPU topology, the
    memory binding, the vCPU pinning and the vCPU hotplug order.
  - This is the computation of M(vnuma.libvirt.vnuma_domain), without reading or writing any domain. Use it to plan
    for a host before converting guests, to check capacity, or to template domain XML by hand.
  - Every refusal (bad spec, nodes the host does not have, memory that does not fit a host node, too few free host
    CPUs for dedicated pinning) fails the task with a message that names the guest, the value and the limit.
  - The filter runs on the controller and needs the C(lxml) Python library there; it does not use libvirt.
options:
  _input:
    description:
      - The host's capabilities XML, as C(virsh capabilities) prints it or C(virConnectGetCapabilities()) returns it.
      - Only the NUMA cells (C(<host><topology><cells>)) and the page sizes are read.
    type: str
    required: true
  spec:
    description:
      - The vNUMA spec, the first positional argument; the options of M(vnuma.libvirt.vnuma_domain) of the same names.
      - Sizes are a number of KiB or a string with a unit, such as V(16 GiB) or V(512M).
      - Omitted options, and options set to V(null) or to C(omit), take their defaults.
    type: dict
    default: {}
    suboptions:
      mode:
        description:
          - V(host) gives the guest one cell per host node with CPUs, mirroring it; O(spec.nodeset) and O(spec.cells)
            are refused with it, since they would change nothing.
          - V(node) gives the guest O(spec.cells) cells over the host nodes of O(spec.nodeset).
          - V(auto) is laid out as V(node) on the nodes of O(spec.nodeset), the choice a spec stored by
            M(vnuma.libvirt.vnuma_domain) holds; without one it is refused (the C(vnuma.libvirt.vnuma_auto_nodes) filter
            chooses).
        type: str
        choices: [host, node, auto]
        default: host
      distribution:
        description:
          - How vCPU ids are assigned to guest cells.
          - V(contiguous) gives each cell a block of consecutive ids.
          - V(siblings) does too, in whole guest cores as wide as the host's cores (the guest topology gets the host's
            threads per core).
          - V(round-robin) follows the host's own CPU numbering, scaled to the guest.
          - V(interleave) deals the vCPUs one at a time over the cells.
        type: str
        choices: [contiguous, siblings, round-robin, interleave]
        default: contiguous
      memory:
        description:
          - The guest's memory, split over the cells. Required unless O(memory) is given.
        type: raw
      nodeset:
        description:
          - The host nodes the guest runs on in V(node) mode, in libvirt's nodeset syntax (V(1-4,^3)). Defaults to
            every host node with CPUs. A node without CPUs gives a guest cell without vCPUs.
        type: str
      cells:
        description:
          - The number of guest cells in V(node) mode. Defaults to the number of nodes of O(spec.nodeset).
          - At most V(128), QEMU's limit of guest NUMA nodes.
        type: int
      pinning:
        description:
          - V(node) lets each vCPU float over the host CPUs of its cell's nodes; V(core) and V(thread) dedicate host
            cores or threads 1:1; V(none) pins nothing.
        type: str
        choices: [node, core, thread, none]
        default: node
      memory_mode:
        description:
          - The memory binding policy of every cell (C(<numatune>)).
        type: str
        choices: [strict, preferred, interleave, restrictive]
        default: strict
      memory_split:
        description:
          - V(even) splits the memory evenly over the cells, V(vcpus) in proportion to their vCPUs.
        type: str
        choices: [even, vcpus]
        default: even
      hugepages:
        description:
          - Back the guest's memory with host pages of this size (V(2 MiB), V(1 GiB)); each cell then takes whole pages
            from its host node's pool.
        type: raw
      emulator_pin:
        description:
          - V(nodes) pins the emulator threads to the selected host nodes' CPUs that are not dedicated to vCPUs.
        type: str
        choices: [none, nodes]
        default: none
      cpuless_cells:
        description:
          - Allow guest cells without vCPUs (more cells than vCPUs).
        type: bool
        default: false
      max_memory:
        description:
          - The most memory the guest can reach by memory hotplug. Goes with O(spec.memory_slots).
        type: raw
      memory_slots:
        description:
          - The number of memory hotplug slots. Goes with O(spec.max_memory).
        type: int
  vcpus:
    description:
      - The guest's maximum number of vCPUs (C(<vcpu>)), hot-pluggable ones included.
      - At most V(4096), KVM's limit of vCPUs per guest.
    type: int
    required: true
  current_vcpus:
    description:
      - How many vCPUs are online at boot (C(<vcpu current>)). Defaults to O(vcpus).
    type: int
  memory:
    description:
      - The guest's memory (the domain's C(<memory>)), used when O(spec.memory) is not set.
      - A number of KiB or a string with a unit, such as V(16 GiB).
    type: raw
  name:
    description:
      - The guest's name. Error messages start with it, as in V(guest db01), and RV(_value.guest) holds it.
    type: str
  taken_cpus:
    description:
      - Host CPUs dedicated to other guests, which O(spec.pinning=node) leaves out and O(spec.pinning=core) and
        O(spec.pinning=thread) do not use.
      - A dict of host CPU id (or cpuset string such as V(0-3)) to the guest that holds it, a list of host CPU ids, or
        a cpuset string.
    type: raw
notes:
  - The result does not depend on the order of the spec's keys, and is the same on every run for the same input.
seealso:
  - plugin: vnuma.libvirt.vnuma_expand
    plugin_type: filter
  - plugin: vnuma.libvirt.vnuma_distribute
    plugin_type: filter
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
---
- name: Read the capabilities of the host to plan for
  ansible.builtin.command: virsh capabilities
  register: caps
  changed_when: false

- name: Plan a 16 vCPU guest over host nodes 0-1 in two cells
  ansible.builtin.set_fact:
    layout: >-
      {{ caps.stdout | vnuma.libvirt.vnuma_layout(
           {'mode': 'node', 'nodeset': '0-1', 'distribution': 'siblings', 'pinning': 'core'},
           vcpus=16, memory='16 GiB', name='db01') }}

- name: Show where the guest cells live
  ansible.builtin.debug:
    msg: "cell {{ item.id }}: vCPUs {{ item.vcpus }} on host node(s) {{ item.host_nodes }}, {{ item.memory_kib }} KiB"
  loop: "{{ layout.cells }}"

- name: Plan with the spec of a host mirror, leaving out CPUs other guests hold
  ansible.builtin.debug:
    msg: >-
      {{ caps.stdout | vnuma.libvirt.vnuma_layout({'pinning': 'thread'}, vcpus=8, current_vcpus=4,
                                                  memory=8388608, taken_cpus={'0-3': 'web01'}) }}
"""

RETURN = r"""
_value:
  description:
    - The guest layout. Sets of ids (vCPUs, host nodes, host CPUs) are canonical libvirt cpuset strings (V(0-3,8));
      sizes are KiB.
  type: dict
  contains:
    guest:
      description: The guest's name, from O(name); V(null) when not given.
      type: str
    vcpus:
      description: The maximum number of vCPUs (C(<vcpu>)).
      type: int
      sample: 16
    current_vcpus:
      description: The number of vCPUs online at boot (C(<vcpu current>)).
      type: int
      sample: 16
    memory_kib:
      description: The guest's boot memory in KiB, the sum of the cells' memory.
      type: int
      sample: 16777216
    mode:
      description: The spec's O(spec.mode).
      type: str
      sample: node
    distribution:
      description: The spec's O(spec.distribution).
      type: str
      sample: contiguous
    pinning:
      description: The spec's O(spec.pinning).
      type: str
      sample: node
    memory_mode:
      description: The spec's O(spec.memory_mode).
      type: str
      sample: strict
    topology:
      description:
        - The guest CPU topology (C(<cpu><topology>)); the product of its four values is RV(_value.vcpus), and no guest
          socket or core spans two cells.
      type: dict
      contains:
        sockets:
          description: Sockets.
          type: int
          sample: 2
        dies:
          description: Dies per socket.
          type: int
          sample: 1
        cores:
          description: Cores per die.
          type: int
          sample: 4
        threads:
          description: Threads per core.
          type: int
          sample: 2
    numatune:
      description: The guest-wide memory binding (C(<numatune><memory>)).
      type: dict
      contains:
        mode:
          description: The binding policy, O(spec.memory_mode).
          type: str
          sample: strict
        nodeset:
          description: The host nodes the guest's memory is bound to.
          type: str
          sample: 0-1
    cells:
      description: The guest NUMA cells (C(<cpu><numa><cell>)), by ascending id.
      type: list
      elements: dict
      contains:
        id:
          description: The guest cell id.
          type: int
          sample: 0
        vcpus:
          description: The cell's vCPU ids; an empty string for a cell without vCPUs.
          type: str
          sample: 0-7
        vcpu_count:
          description: The number of vCPUs of the cell.
          type: int
          sample: 8
        memory_kib:
          description: The cell's memory in KiB.
          type: int
          sample: 8388608
        host_nodes:
          description: The host node or nodes the cell mirrors.
          type: str
          sample: "0"
        memory_nodes:
          description: The host nodes the cell's memory is bound to (C(<numatune><memnode nodeset>)).
          type: str
          sample: "0"
        distances:
          description:
            - The guest distance from this cell to every cell, indexed by cell id (C(<distances>)); V(10) to itself.
          type: list
          elements: int
          sample: [10, 21]
        pinning:
          description:
            - The host CPUs the cell's vCPUs are pinned to, together; V(null) when O(spec.pinning=none), an empty
              string for a cell without vCPUs.
          type: str
          sample: 0-3,8-11
    vcpupin:
      description:
        - The host CPUs of every vCPU (C(<cputune><vcpupin>)), keyed by vCPU id as a string; V(null) when
          O(spec.pinning=none).
      type: dict
      sample: {"0": "0-3", "1": "0-3"}
    emulatorpin:
      description:
        - The host CPUs of the emulator threads (C(<cputune><emulatorpin>)); V(null) unless O(spec.emulator_pin=nodes).
      type: str
      sample: 4-7
    enable_order:
      description:
        - Every vCPU id in the order they are brought online; the first RV(_value.current_vcpus) are online at boot, and
          a hot-add enables the next ones, which keeps the online vCPUs balanced across cells. vCPU V(0) is always
          first.
      type: list
      elements: int
      sample: [0, 8, 1, 9]
    hugepages_kib:
      description: The page size backing the guest's memory, in KiB; V(null) without O(spec.hugepages).
      type: int
      sample: 2048
    max_memory_kib:
      description: The memory hotplug limit (C(<maxMemory>)) in KiB; V(null) without O(spec.max_memory).
      type: int
      sample: 33554432
    memory_slots:
      description: The memory hotplug slots (C(<maxMemory slots>)); V(null) without O(spec.memory_slots).
      type: int
      sample: 16
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import (
    filter_errors,
    guest_shape,
    require_name,
    require_text,
    spec_options,
    taken_cpus_map,
)

_NAME = "vnuma_layout"


def vnuma_layout(
    capabilities: Any,
    spec: Any = None,
    vcpus: Any = None,
    memory: Any = None,
    current_vcpus: Any = None,
    name: Any = None,
    taken_cpus: Any = None,
) -> dict[str, Any]:
    """Host capabilities XML + spec + guest shape -> ``Layout.to_dict()``."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities

    require_text(_NAME, "the input (host capabilities XML)", capabilities)
    guest = require_name(_NAME, name)
    # The request first: every number in it is held to its limit before the host document is parsed
    # or anything is built (docs/partitioning.md, "Limits").
    with filter_errors(_NAME, guest):
        taken = taken_cpus_map(taken_cpus)
        shape = guest_shape(vcpus, memory, current_vcpus, guest)
        request = VnumaSpec.from_mapping(spec_options(_NAME, spec))
    with filter_errors(_NAME):
        host = parse_capabilities(capabilities)
    with filter_errors(_NAME, guest):
        return compute_layout(host, request, shape, taken).to_dict()


class FilterModule:
    """The vnuma.libvirt.vnuma_layout filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_layout}
