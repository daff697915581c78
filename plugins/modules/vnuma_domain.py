#!/usr/bin/python
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vnuma_domain
short_description: Give libvirt guests a virtual NUMA layout that mirrors their host
version_added: 0.1.0
description:
  - Computes each guest's virtual NUMA layout from the host's topology and a spec, then applies it to the guest's
    persistent definition. The layout covers cells, vCPUs per cell, memory per cell, distances, memory binding,
    pinning, and the hotplug order.
  - Works as plan, compare, apply. The guest's inactive definition is read and the layout planned. Only the parts of
    the definition the module owns are compared, as values (CPU sets as sets, memory in KiB), never as XML text. The
    guest is redefined only when they differ, then read back to confirm libvirt kept the layout.
  - The owned parts are C(<vcpu>), C(<vcpus>), C(<cpu><topology>), C(<cpu><numa>), C(<numatune>),
    C(<cputune><vcpupin>) (and C(<emulatorpin>) when asked), C(<maxMemory>), C(<memoryBacking><hugepages>) when
    asked, C(<memory>), and the spec stored in C(<metadata>). Everything else in the definition stays exactly as it
    was.
  - The spec is stored in the guest's metadata. Options left unset keep the stored values, so a later run (or a run
    after the guest moved to another host) renders the layout from what the guest asked for.
  - A running guest gets its persistent definition changed and reports RV(restart_required); with
    O(restart=if_needed) it is shut down and started again. Pinning is also changed live.
  - NUMA-aware hotplug. O(current_vcpus) brings vCPUs online that keep the cells balanced, not simply the lowest ids.
    O(hotplug_memory) hot-adds DIMMs split over the cells, each bound to its cell's host nodes.
  - One call can converge many guests on one host (O(guests)). Every guest is planned before anything is written, so
    a guest that cannot be placed stops the call with nothing changed.
  - The rules are in the collection's C(docs/partitioning.md).
author:
  - vnuma.libvirt contributors (@vnuma)
extends_documentation_fragment:
  - vnuma.libvirt.connection
  - vnuma.libvirt.spec
attributes:
  check_mode:
    support: full
    description: Plans and reports every change without writing anything.
  diff_mode:
    support: full
    description: Shows the owned parts before and after, value by value.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
options:
  name:
    description:
      - The guest to converge. Exactly one of O(name) and O(guests) is required.
    type: str
    aliases: [guest]
  guests:
    description:
      - Guests to converge in one call. Each entry is a guest name, a shell pattern (V(db*)), or a dict with C(name)
        and any spec option, O(state), O(current_vcpus) or O(hotplug_memory) to override the top-level value for
        that guest.
    type: list
    elements: raw
  exclude:
    description:
      - Shell patterns of guest names to leave out of O(guests).
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) applies the layout.
      - V(absent) removes it and leaves a flat guest. It drops the cells, memory binding, vCPU pins, hotplug order,
        C(<maxMemory>) and the stored spec. The vCPU and memory sizes stay. A guest with hot-plugged DIMMs cannot be
        flattened.
    type: str
    choices: [present, absent]
    default: present
  current_vcpus:
    description:
      - How many vCPUs are online. The definition's C(<vcpu current>) and its C(<vcpus>) enable order follow it. On
        a running guest, the vCPUs that keep the cells balanced are brought online live and pinned by the layout.
      - Lowering it changes the count at the next boot only; vCPUs are not unplugged live.
    type: int
    aliases: [vcpus_live]
  hotplug_memory:
    description:
      - Total memory the guest should have in hot-plugged DIMMs, in KiB or with a unit (V(2 GiB)). The module adds
        the difference as one DIMM per cell (round-robin when it is smaller than the cells), in multiples of
        128 MiB. Each DIMM has C(<target><node>) and is bound to its cell's host nodes. It goes in live when the
        guest runs, and into the definition in any case. Needs O(max_memory) and O(memory_slots).
      - Memory is never unplugged; a value below what is already hot-plugged is an error.
    type: raw
  restart:
    description:
      - What to do with a running guest whose definition changed in a way that needs a new boot.
      - V(never) only reports RV(restart_required). V(if_needed) shuts it down gracefully and starts it again.
    type: str
    choices: [never, if_needed]
    default: never
  force:
    description:
      - With O(restart=if_needed), power the guest off when it does not shut down within O(shutdown_timeout).
    type: bool
    default: false
  shutdown_timeout:
    description:
      - Seconds to wait for a graceful shutdown.
    type: int
    default: 120
  backup:
    description:
      - Save each changed guest's previous inactive definition in O(backup_dir) before changing it.
    type: bool
    default: false
  backup_dir:
    description:
      - Directory for O(backup) files on the managed node.
    type: path
    default: /var/lib/vnuma-libvirt/backups
notes:
  - libvirt's QEMU driver rewrites some of what it is given (for example C(<memory>) becomes the sum of the cells).
    The module compares models, so those rewrites never show as changes.
  - Dedicated pinning (V(core), V(thread)) avoids host CPUs that other guests on the host hold. Such a guest was
    placed with dedicated pinning by this collection, or has vCPUs pinned to single host CPUs.
seealso:
  - plugin: vnuma.libvirt.vnuma_expand
    plugin_type: filter
  - plugin: vnuma.libvirt.vnuma_layout
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Mirror the host's NUMA nodes in a guest
  vnuma.libvirt.vnuma_domain:
    name: db01
    mode: host

- name: Pin a database to host nodes 0 and 1, one guest core per host core
  vnuma.libvirt.vnuma_domain:
    name: db02
    mode: node
    nodeset: 0-1
    distribution: siblings
    pinning: thread
    memory: 64 GiB

- name: Bring 8 vCPUs online, balanced across the cells
  vnuma.libvirt.vnuma_domain:
    name: db01
    current_vcpus: 8

- name: Give the guest 4 GiB of hot-plugged memory, split over its cells
  vnuma.libvirt.vnuma_domain:
    name: db01
    max_memory: 64 GiB
    memory_slots: 16
    hotplug_memory: 4 GiB

- name: Plan a layout for another host without touching anything
  vnuma.libvirt.vnuma_domain:
    name: db01
    host_capabilities: /srv/capabilities/new-hypervisor.xml
  check_mode: true
  diff: true
  register: plan

- name: Converge every web guest but the canary, restarting those that need it
  vnuma.libvirt.vnuma_domain:
    guests:
      - web*
      - name: batch01
        distribution: interleave
    exclude: [web-canary]
    restart: if_needed
    force: true
"""

RETURN = r"""
layout:
  description: The planned layout of the guest (with O(name)); see the vnuma_layout filter for every key.
  returned: with O(name) and O(state=present)
  type: dict
  sample:
    vcpus: 8
    memory_kib: 16777216
    topology: {sockets: 2, dies: 1, cores: 4, threads: 1}
    cells:
      - {id: 0, vcpus: "0-3", memory_kib: 8388608, host_nodes: "0", memory_nodes: "0", distances: [10, 21]}
      - {id: 1, vcpus: "4-7", memory_kib: 8388608, host_nodes: "1", memory_nodes: "1", distances: [21, 10]}
changes:
  description: "The owned values that changed (or would change in check mode), as C(path: before -> after)."
  returned: with O(name)
  type: list
  elements: str
  sample: ["cpu/numa/cell[0]/cpus: None -> '0-3'", "numatune/memnode[0]/nodeset: None -> '0'"]
restart_required:
  description: Whether any running guest must be restarted to run with its new definition.
  returned: always
  type: bool
restart_required_guests:
  description: Names of the running guests that must be restarted.
  returned: always
  type: list
  elements: str
restarted:
  description: Whether the guest was restarted (with O(name)).
  returned: with O(name)
  type: bool
backup_file:
  description: Path of the saved previous definition (with O(name) and O(backup)).
  returned: with O(name)
  type: str
live:
  description: What was changed on the running guest (pins, vCPUs brought online, DIMMs added).
  returned: with O(name)
  type: list
  elements: str
guests:
  description: One entry per guest, in the order converged.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The guest's name.
      type: str
    changed:
      description: Whether the guest changed.
      type: bool
    changes:
      description: As RV(changes).
      type: list
      elements: str
    layout:
      description: As RV(layout); null with O(state=absent).
      type: dict
    running:
      description: Whether the guest was running.
      type: bool
    restart_required:
      description: As RV(restart_required), for this guest alone.
      type: bool
    restarted:
      description: Whether the guest was restarted.
      type: bool
    backup_file:
      description: Path of the saved previous definition; null when nothing was saved.
      type: str
    live:
      description: As RV(live).
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.vnuma.libvirt.plugins.module_utils._domain_run import run_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import HAS_LIBVIRT, LIBVIRT_IMPORT_ERROR
from ansible_collections.vnuma.libvirt.plugins.module_utils._spec import (
    DISTRIBUTIONS,
    EMULATOR_PINS,
    MEMORY_MODES,
    MEMORY_SPLITS,
    MODES,
    PINNINGS,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import HAS_LXML, LXML_IMPORT_ERROR

# Types here; the choices come from the spec itself, so the module and the <vnuma> element agree.
SPEC_ARGS = dict(
    mode=dict(type="str", choices=list(MODES)),
    distribution=dict(type="str", choices=list(DISTRIBUTIONS)),
    memory=dict(type="raw"),
    nodeset=dict(type="str"),
    cells=dict(type="int"),
    pinning=dict(type="str", choices=list(PINNINGS)),
    memory_mode=dict(type="str", choices=list(MEMORY_MODES)),
    memory_split=dict(type="str", choices=list(MEMORY_SPLITS)),
    hugepages=dict(type="raw"),
    emulator_pin=dict(type="str", choices=list(EMULATOR_PINS)),
    cpuless_cells=dict(type="bool"),
    max_memory=dict(type="raw"),
    memory_slots=dict(type="int"),
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", aliases=["guest"]),
            guests=dict(type="list", elements="raw"),
            exclude=dict(type="list", elements="str", default=[]),
            uri=dict(type="str", default="qemu:///system"),
            connect_timeout=dict(type="float", default=60),
            host_capabilities=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            current_vcpus=dict(type="int", aliases=["vcpus_live"]),
            hotplug_memory=dict(type="raw"),
            restart=dict(type="str", choices=["never", "if_needed"], default="never"),
            force=dict(type="bool", default=False),
            shutdown_timeout=dict(type="int", default=120),
            backup=dict(type="bool", default=False),
            backup_dir=dict(type="path", default="/var/lib/vnuma-libvirt/backups"),
            **SPEC_ARGS,
        ),
        mutually_exclusive=[("name", "guests")],
        required_one_of=[("name", "guests")],
        supports_check_mode=True,
    )
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=LIBVIRT_IMPORT_ERROR)
    if not HAS_LXML:
        module.fail_json(msg=missing_required_lib("lxml"), exception=LXML_IMPORT_ERROR)
    try:
        result = run_domain(module.params, module.check_mode, module._diff)
    except VnumaError as error:
        module.fail_json(msg=str(error), guest=error.guest)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
