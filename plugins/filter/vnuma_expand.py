# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_expand
short_description: Render the vNUMA request of a domain XML into concrete NUMA XML
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - Expand a libvirt domain XML for a host. The guest's vNUMA request, a C(<vnuma>) element in the domain (as in a
    template; a direct child of C(<domain>), one deeper such as inside C(<devices>) is an error), is computed into a
    layout for the host and rendered into the parts of the domain the collection owns; C(<vcpu>), C(<vcpus>),
    C(<cpu><topology>), C(<cpu><numa>) with its cells and distances, C(<numatune>), C(<cputune>) pinning,
    C(<maxMemory>) and C(<memoryBacking>) hugepages as asked. Everything else in the document stays as it was.
  - The C(<vnuma>) element, which stock libvirt does not know, is taken out and the spec is stored in the domain's
    C(<metadata>) under the collection's namespace. The first expansion also records the owned parts as the template
    had them (namespace C(urn:vnuma:libvirt:original:1.0)), so that C(state=absent) of the vnuma_domain module can
    restore them.
  - A domain without a C(<vnuma>) element but with a stored spec (a domain already expanded or defined by the
    collection) is rendered again from that spec; expanding an expanded domain for the same host gives the same
    document, and for another host the layout of that host. A domain with neither is returned unchanged.
  - The C(<vnuma>) element is the one of the libvirt vNUMA proposal,
    C(<vnuma mode='host|node' distribution='contiguous|siblings|round-robin|interleave'>) (the attributes C(mode) and
    C(distribution)) with the children
    C(<memory unit>) and C(<partition nodeset cells>), plus the collection's extensions, the attributes C(pinning),
    C(memory_mode), C(memory_split), C(emulator_pin), C(emulator_threads), C(cpuless_cells) (V(yes) or V(no)),
    C(memory_device), C(hmat), C(iothreads), C(pci_numa_affinity) and C(device_locality), and the children
    C(<hugepages size unit>), C(<maxMemory slots unit>) and C(<devices cells>) (the spec option C(device_cells)).
    They mean what the spec options of the same names of P(vnuma.libvirt.vnuma_layout#filter) mean. Anything else in
    it is an error.
  - The guest's vCPUs are read from its C(<vcpu>) element and its memory from C(<memory>) unless the spec sets one.
  - Errors name the guest (its C(<name>)), the value and the limit.
  - The filter runs on the controller and needs the C(lxml) Python library there; it does not use libvirt. To define
    the guest, use M(vnuma.libvirt.vnuma_domain), which also compares and applies idempotently.
options:
  _input:
    description:
      - The domain XML, for example a template rendered with P(ansible.builtin.template#lookup).
    type: str
    required: true
  capabilities:
    description:
      - The host's capabilities XML (C(virsh capabilities)), the first positional argument.
    type: str
    required: true
  taken_cpus:
    description:
      - Host CPUs dedicated to other guests, which floating pinning leaves out and dedicated (V(core), V(thread))
        pinning does not use.
      - A dict of host CPU id (or cpuset string such as V(0-3)) to the guest that holds it, a list of host CPU ids, or
        a cpuset string.
    type: raw
seealso:
  - plugin: vnuma.libvirt.vnuma_layout
    plugin_type: filter
  - module: vnuma.libvirt.vnuma_domain
  - name: libvirt domain XML, NUMA topology
    description: The elements the layout is rendered into.
    link: https://libvirt.org/formatdomain.html#cpu-model-and-topology
"""

EXAMPLES = r"""
---
- name: Read the capabilities of the host
  ansible.builtin.command: virsh capabilities
  register: caps
  changed_when: false

# templates/db01.xml.j2 holds, inside <domain>:
#   <vcpu>16</vcpu>
#   <memory unit='GiB'>32</memory>
#   <vnuma mode='node' distribution='siblings'>
#     <partition nodeset='0-1' cells='2'/>
#   </vnuma>
- name: Render the guest's domain XML for this host
  ansible.builtin.set_fact:
    db01_xml: "{{ lookup('ansible.builtin.template', 'db01.xml.j2') | vnuma.libvirt.vnuma_expand(caps.stdout) }}"

- name: Keep clear of the host CPUs that web01 holds
  ansible.builtin.set_fact:
    db01_xml: >-
      {{ lookup('ansible.builtin.template', 'db01.xml.j2')
         | vnuma.libvirt.vnuma_expand(caps.stdout, taken_cpus={'0-3': 'web01'}) }}
"""

RETURN = r"""
_value:
  description:
    - The expanded domain XML, without the C(<vnuma>) element and with the spec in C(<metadata>).
    - The input itself when it has neither a C(<vnuma>) element nor a stored spec.
  type: str
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import (
    filter_errors,
    require_text,
    taken_cpus_map,
)

_NAME = "vnuma_expand"


def vnuma_expand(domain_xml: Any, capabilities: Any = None, taken_cpus: Any = None) -> str:
    """Domain XML with a ``<vnuma>`` request (or a stored spec) -> the rendered domain XML."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain

    require_text(_NAME, "the input (domain XML)", domain_xml)
    require_text(_NAME, "capabilities (host capabilities XML)", capabilities)
    with filter_errors(_NAME):
        taken = taken_cpus_map(taken_cpus)
        return expand_domain(domain_xml, capabilities, taken_cpus=taken).xml


class FilterModule:
    """The vnuma.libvirt.vnuma_expand filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_expand}
