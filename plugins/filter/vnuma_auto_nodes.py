# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_auto_nodes
short_description: The host nodes mode auto chooses for a guest
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - Choose, as M(vnuma.libvirt.vnuma_domain) does with O(vnuma.libvirt.vnuma_domain#module:mode=auto), the fewest
    host nodes with CPUs that hold a guest, nearest first, ties to the least loaded; and explain the choice.
  - What the host's other guests use comes from O(capacity), the RV(vnuma.libvirt.vnuma_domain#module:capacity) of a
    M(vnuma.libvirt.vnuma_domain) call on that host (a check-mode call with O(vnuma.libvirt.vnuma_domain#module:guests)
    empty reads it without changing anything). Without it the host is taken as empty.
  - The rules are in the collection's C(docs/partitioning.md), "mode auto". A guest no set of nodes holds fails the
    task with a message that names the guest, what it needs and the most the host offers.
  - The filter runs on the controller and needs the C(lxml) Python library there; it does not use libvirt.
options:
  _input:
    description:
      - The host's capabilities XML, as C(virsh capabilities) prints it or C(virConnectGetCapabilities()) returns it.
    type: str
    required: true
  spec:
    description:
      - The vNUMA spec, the first positional argument, as for the C(vnuma.libvirt.vnuma_layout) filter. O(spec.mode)
        defaults to V(auto); any other mode is refused, and so is a O(spec.nodeset).
    type: dict
    default: {}
  vcpus:
    description: The guest's maximum number of vCPUs (C(<vcpu>)).
    type: int
    required: true
  memory:
    description: The guest's memory, used when the spec sets none; a number of KiB or a string with a unit.
    type: raw
  current_vcpus:
    description: How many vCPUs are online at boot. Defaults to O(vcpus).
    type: int
  name:
    description: The guest's name, for the messages.
    type: str
  capacity:
    description:
      - What the host's guests use, as RV(vnuma.libvirt.vnuma_domain#module:capacity) returns it. Its nodes'
        C(demand_kib), their hugepage pools' C(demand_kib), their C(reserved_kib) and its C(dedicated) CPUs are read.
      - A dict that is not a capacity result (the module's whole result, a key a capacity result does not have) is
        refused, since reading it as a host without guests would choose nodes that are taken.
    type: dict
seealso:
  - module: vnuma.libvirt.vnuma_domain
  - plugin: vnuma.libvirt.vnuma_layout
    plugin_type: filter
"""

EXAMPLES = r"""
---
- name: Read what the host's guests use, changing nothing
  vnuma.libvirt.vnuma_domain:
    guests: []
    capacity: report
  check_mode: true
  register: host_use

- name: Read the host's capabilities
  ansible.builtin.command: virsh capabilities
  register: caps
  changed_when: false

- name: Where would a 4 vCPU, 8 GiB guest go?
  ansible.builtin.debug:
    msg: >-
      {{ (caps.stdout | vnuma.libvirt.vnuma_auto_nodes({}, vcpus=4, memory='8 GiB', name='web03',
                                                        capacity=host_use.capacity)).why }}
"""

RETURN = r"""
_value:
  description: The choice, as RV(vnuma.libvirt.vnuma_domain#module:guests[].auto), and the layout on the nodes.
  type: dict
  contains:
    nodes:
      description: The host nodes chosen, a cpuset.
      type: str
      sample: "1"
    how:
      description: Always V(chosen).
      type: str
    why:
      description: Why these nodes, in one sentence.
      type: str
    memory_kib:
      description: The guest's memory.
      type: int
    hugepages_kib:
      description: The guest's hugepage size; V(null) for normal pages.
      type: int
    considered:
      description: How many node sets were laid out.
      type: int
    nodes_left:
      description: Per host node, what it had and what the guest leaves there, as in vnuma_domain's result.
      type: list
      elements: dict
    layout:
      description: The layout on the chosen nodes, as the C(vnuma.libvirt.vnuma_layout) filter returns it.
      type: dict
"""

from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import (
    filter_errors,
    guest_shape,
    is_omitted,
    plain,
    require_name,
    require_text,
    spec_options,
)

_NAME = "vnuma_auto_nodes"


def vnuma_auto_nodes(
    capabilities: Any,
    spec: Any = None,
    vcpus: Any = None,
    memory: Any = None,
    current_vcpus: Any = None,
    name: Any = None,
    capacity: Any = None,
) -> dict[str, Any]:
    """Host capabilities XML + spec + guest shape (+ the host's use) -> ``AutoChoice.to_dict()`` with the layout."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.auto import choose_nodes, nodeset_refusal
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import (
        check_capacity,
        commitments_from_result,
    )
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import place_guests
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities

    require_text(_NAME, "the input (host capabilities XML)", capabilities)
    guest = require_name(_NAME, name)
    with filter_errors(_NAME, guest):
        shape = guest_shape(vcpus, memory, current_vcpus, guest)
        options = {"mode": "auto", **spec_options(_NAME, spec)}
        if options["mode"] != "auto":
            raise SpecError(f"mode {options['mode']!r}: {_NAME} chooses nodes for mode auto only")
        if options.get("nodeset") is not None:
            raise nodeset_refusal(options["nodeset"])
        request = VnumaSpec.from_mapping(options)
        if not is_omitted(capacity) and not isinstance(capacity, Mapping):
            raise SpecError(
                f"capacity must be the capacity result of vnuma_domain (a dict), got {type(capacity).__name__}"
            )
        binding, reserved, dedicated = commitments_from_result({} if is_omitted(capacity) else plain(capacity))
    with filter_errors(_NAME):
        host = parse_capabilities(capabilities)
    with filter_errors(_NAME, guest):
        report = check_capacity(host, place_guests(host, [binding] if binding else []), reserved_kib=reserved)
        choice = choose_nodes(host, request, shape, report, dedicated)
        return {**choice.to_dict(), "layout": choice.layout.to_dict()}


class FilterModule:
    """The vnuma.libvirt.vnuma_auto_nodes filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_auto_nodes}
