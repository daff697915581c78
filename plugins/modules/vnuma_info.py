#!/usr/bin/python
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vnuma_info
short_description: Show a libvirt host's NUMA topology and how well its guests are aligned to it
version_added: 0.1.0
description:
  - Reads the host's NUMA topology. That is its nodes, CPUs with socket, core and sibling threads, memory and free
    memory per node, hugepage pools per node, and the distances between nodes.
  - For each selected guest it decodes the NUMA layout from the guest's definition, hand-written C(<numa>),
    C(<numatune>) and C(<vcpupin>) included. It also reads the spec stored by M(vnuma.libvirt.vnuma_domain), if any,
    and works out the guest's alignment. A cell is aligned when its memory is bound to exactly the host nodes its vCPUs
    run on. Its locality is the chance, from 0 to 1, that a memory access of one of its vCPUs to the cell's memory is
    node-local.
  - A running guest is judged by its live definition, since that is what runs. RV(guests[].pending) says whether its
    persistent definition, which the next boot uses, differs in the parts the collection owns.
    RV(guests[].defined_alignment) is the alignment of that persistent definition.
  - Returns a text diagram of the host's nodes with the guests' cells placed on them.
  - Changes nothing. The rules and a worked example are in the collection's C(docs/vnuma_info.md).
author:
  - vnuma.libvirt contributors (@vnuma)
extends_documentation_fragment:
  - vnuma.libvirt.connection
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode returns the same report.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  idempotent:
    support: full
    description: The module never changes anything.
options:
  host_capabilities:
    description:
      - Host capabilities XML to report against instead of the connection's own, as XML text or as the path of a file
        on the managed node. The guests are still those of the connection, and their alignment is worked out on this
        topology.
      - Free memory and free hugepages then come from the connection only when its host has the same node ids;
        otherwise they are null.
    type: str
  guests:
    description:
      - Names or shell patterns (V(db*)) of the guests to report.
      - An entry that names no defined guest is a warning, whether it is a pattern or a name
        (M(vnuma.libvirt.vnuma_domain), which writes, fails on a name that names no guest); V(*) finds none only on
        a host without guests, which C(guest_count) says.
    type: list
    elements: str
    default: ["*"]
  exclude:
    description:
      - Guest names or shell patterns to leave out, by the same rule as O(guests).
    type: list
    elements: str
    default: []
  exact_names:
    description:
      - Read every entry of O(guests) and O(exclude) as an exact guest name, never as a shell pattern (as
        M(vnuma.libvirt.vnuma_domain)'s O(vnuma.libvirt.vnuma_domain#module:exact_names)). A name that no guest has
        is a warning.
    type: bool
    default: false
  guest_state:
    description:
      - V(running) reports the guests that run (paused ones and those shutting down included), V(shutoff) every other
        guest, V(all) both.
    type: str
    choices: [running, shutoff, all]
    default: all
notes:
  - The diagram and the guest list cover the selected guests only.
  - libvirt's test driver (V(test:///default)) reports no free hugepages; they are null there.
seealso:
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
- name: Read the host's topology and every guest's alignment
  vnuma.libvirt.vnuma_info:
  register: numa

- name: Show the diagram
  ansible.builtin.debug:
    var: numa.diagram_lines

- name: List the guests whose memory is not where their vCPUs run
  ansible.builtin.debug:
    msg: "{{ numa.guests | rejectattr('alignment.aligned') | map(attribute='name') | list }}"

- name: Running database guests only, without the canary
  vnuma.libvirt.vnuma_info:
    guests: ["db*"]
    exclude: [db-canary]
    guest_state: running
  register: databases

- name: Running guests whose new definition waits for a restart
  ansible.builtin.debug:
    msg: "{{ databases.guests | selectattr('pending') | map(attribute='name') | list }}"
"""

RETURN = r"""
host:
  description: The host's topology.
  returned: always
  type: dict
  contains:
    nodes:
      description: One entry per host NUMA node, ascending by id.
      type: list
      elements: dict
      contains:
        id:
          description: The node id.
          type: int
        cpus:
          description: The node's online CPUs, in cpuset syntax.
          type: str
          sample: "0-3"
        cpu_count:
          description: Number of online CPUs of the node.
          type: int
        offline_cpus:
          description: The node's offline CPUs, in cpuset syntax (empty when none).
          type: str
        cores:
          description: Number of physical cores of the node.
          type: int
        threads_per_core:
          description: SMT width of the node's cores (0 for a node without CPUs).
          type: int
        socket:
          description: The socket of the node's CPUs; null when they span several sockets or the node has no CPUs.
          type: int
        memory_kib:
          description: The node's memory in KiB.
          type: int
        free_kib:
          description: The node's free memory in KiB; null when the connection cannot tell.
          type: int
        hugepages:
          description: The node's hugepage pools (every page size but the node's normal one).
          type: list
          elements: dict
          contains:
            size_kib:
              description: Page size in KiB.
              type: int
            total:
              description: Pages in the pool.
              type: int
            free:
              description: Free pages in the pool; null when the connection cannot tell.
              type: int
        distances:
          description:
            - Distance from this node to each node, keyed by node id. libvirt's defaults (10 to itself, 20 to others)
              when the host reports none (see RV(host.distances_reported)).
          type: dict
          sample: {"0": 10, "1": 21}
    cpus:
      description: Every host CPU, ascending by id.
      type: list
      elements: dict
      contains:
        id:
          description: The CPU id.
          type: int
        node:
          description: Its node.
          type: int
        socket:
          description: Its socket; null for an offline CPU.
          type: int
        die:
          description: Its die; null for an offline CPU.
          type: int
        core:
          description: Its core id; null for an offline CPU.
          type: int
        siblings:
          description: The threads of its core, in cpuset syntax.
          type: str
          sample: "0,4"
        online:
          description: Whether the CPU is online.
          type: bool
    sockets:
      description: Number of sockets.
      type: int
    cores:
      description: Number of physical cores.
      type: int
    threads_per_core:
      description: SMT width (the widest core).
      type: int
    cpu_count:
      description: Number of online CPUs.
      type: int
    memory_kib:
      description: Total memory in KiB.
      type: int
    free_kib:
      description: Total free memory in KiB; null unless every node's is known.
      type: int
    page_sizes_kib:
      description: Page sizes the host supports, in KiB.
      type: list
      elements: int
    distances_reported:
      description: Whether the host reports node distances.
      type: bool
    pci_devices:
      description:
        - The connection's PCI devices (libvirt's node devices) by the host node they are attached to, keyed by node id,
          and V(unknown) for those whose node the host does not report. Each a PCI address. Empty for a driver without
          node devices (libvirt's test driver).
      type: dict
      sample: {"0": ["0000:01:00.0"], "2": ["0000:41:00.0", "0000:41:00.1"], "unknown": ["0000:00:14.0"]}
guests:
  description: The selected guests, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The guest's name.
      type: str
    state:
      description: libvirt's state of the guest.
      type: str
      sample: running
      choices: [running, blocked, paused, shutdown, shutoff, crashed, pmsuspended, nostate]
    running:
      description: Whether the guest runs (has a QEMU process), paused or shutting down included.
      type: bool
    autostart:
      description: Whether the guest starts with the host.
      type: bool
    vcpus:
      description: Maximum vCPUs, hot-pluggable ones included.
      type: int
    current_vcpus:
      description: vCPUs online (at boot for a guest that is not running).
      type: int
    memory_kib:
      description: The guest's memory in KiB as libvirt counts it (C(<memory>), hot-plugged DIMMs included).
      type: int
    spec:
      description: The spec stored in the guest's metadata by M(vnuma.libvirt.vnuma_domain), under its option names,
        sizes in KiB; null when none is stored.
      type: dict
    spec_error:
      description: Why the stored spec could not be read; null normally.
      type: str
    source:
      description: The definition the layout and alignment come from, V(live) for a running guest, V(inactive) else.
      type: str
      choices: [live, inactive]
    layout:
      description: The guest's NUMA layout as decoded from its definition, placed on the host.
      type: dict
      contains:
        cells:
          description:
            - One entry per guest cell; a guest without C(<numa>) is one cell holding all its vCPUs and memory.
            - Each has C(id), C(vcpus) (cpuset), C(vcpu_count), C(memory_kib), C(memory_mode) (null when unbound),
              C(memory_nodes) (the bound nodeset, null when unbound), C(hugepages_kib), C(cpu_nodes) (the host nodes
              its vCPUs may run on), C(cpu_share) (node id to the share of the cell's vCPU time there),
              C(memory_share_kib) (node id to KiB of the cell's memory there), C(aligned) and C(locality).
          type: list
          elements: dict
        numa:
          description: Whether the definition has C(<cpu><numa>) cells.
          type: bool
        pinning:
          description: Whether any vCPU or the emulator is confined to some host CPUs.
          type: bool
        dimm_share_kib:
          description: Host node id to KiB of the guest's hot-plugged DIMMs there (empty without DIMMs).
          type: dict
    alignment:
      description: How local the guest's memory is, from its RV(guests[].source) definition.
      type: dict
      contains:
        aligned:
          description: Whether every cell is aligned.
          type: bool
        locality:
          description: The mean locality over the guest's vCPUs, 0 to 1 (1.0 for a guest without vCPU-bearing cells).
          type: float
        cells:
          description: Per cell C(id), C(aligned), C(locality), C(cpu_nodes) and C(memory_nodes) (null when unbound).
          type: list
          elements: dict
    defined_alignment:
      description: As RV(guests[].alignment), for the persistent definition (what the next boot runs).
      type: dict
    pending:
      description:
        - Whether a running guest's persistent definition differs from what runs, in the owned parts.
        - For a shut-off guest with a managed save image, whether its definition differs from what the image resumes.
      type: bool
    pending_changes:
      description: "Those differences, as C(path: running -> defined)."
      type: list
      elements: str
    dedicated_cpus:
      description:
        - Host CPUs the guest holds for itself (single-CPU pins; whole cores with the stored pinning V(core)), as
          M(vnuma.libvirt.vnuma_domain) counts them. Empty when none; null when the stored spec cannot be read.
      type: str
    devices:
      description:
        - The guest's host PCI devices, C(<hostdev type='pci'>) and C(<interface type='hostdev'>), in the order of its
          definition, with the host node each is attached to and the guest cell it is local to.
      type: list
      elements: dict
      contains:
        address:
          description: The device's PCI address on the host.
          type: str
          sample: "0000:41:00.0"
        element:
          description: The element of the guest's definition, V(hostdev) or V(interface).
          type: str
        alias:
          description: The device's C(<alias name>); null when it has none.
          type: str
        mac:
          description: The MAC address of an interface; null for a C(<hostdev>).
          type: str
        kind:
          description: What the PCI class says the device is (V(network), V(storage), V(display)...), else V(other).
          type: str
        host_node:
          description: The host node the device is attached to; null when the host does not say.
          type: int
        known:
          description: Whether the host has a PCI device at this address.
          type: bool
        local:
          description:
            - Whether the device is on a host node of one of the guest's cells (where the cell's vCPUs run, or for a
              cell without vCPUs its memory). Null when the device's host node is unknown.
          type: bool
        cell:
          description: The guest cell the device is local to (the first with vCPUs on its node); null when none.
          type: int
guest_count:
  description: Number of guests reported.
  returned: always
  type: int
aligned_count:
  description: Number of reported guests whose every cell is aligned.
  returned: always
  type: int
diagram:
  description: The host's nodes drawn as boxes with the guests' cells on them, a distance table, a guest summary
    and a legend.
  returned: always
  type: str
diagram_lines:
  description: RV(diagram) as a list of lines, for C(debug) output.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGS,
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.info import GUEST_STATES, run_info
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import error_result
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import HAS_LXML, LXML_IMPORT_ERROR


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            **CONNECTION_ARGS,
            guests=dict(type="list", elements="str", default=["*"]),
            exclude=dict(type="list", elements="str", default=[]),
            exact_names=dict(type="bool", default=False),
            guest_state=dict(type="str", choices=list(GUEST_STATES), default="all"),
        ),
        supports_check_mode=True,
    )
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=LIBVIRT_IMPORT_ERROR)
    if not HAS_LXML:
        module.fail_json(msg=missing_required_lib("lxml"), exception=LXML_IMPORT_ERROR)
    try:
        result = run_info(module.params)
    except VnumaError as error:
        module.fail_json(**error_result(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
