#!/usr/bin/python
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vnuma_migrate
short_description: Move a vNUMA guest to another host, or restore a saved one, with its host bindings planned there
version_added: 0.1.0
description:
  - Moves a running guest live to another hypervisor (O(operation=migrate)), or brings up a guest from a save image on
    the host of O(uri) (O(operation=restore)). A guest saved on one host and restored on another moves this way too.
  - What the guest sees stays exactly as it was. That is its cells, their vCPUs and memory, the distances, the CPU
    topology, memory devices, expander buses and HMAT. libvirt refuses any other change to a moving guest.
  - Only the host side is planned again for the destination. That is the C(<numatune>) node sets, C(<vcpupin>),
    C(<emulatorpin>), C(<iothreadpin>), C(<vcpu cpuset>) and the memory devices' C(<source><nodemask>).
  - Each guest cell gets destination nodes where its memory, and that of the memory devices (DIMM, virtio-mem) in
    it, fits beside what other guests hold, and where its dedicated CPUs are free. Cells that shared a host node keep
    sharing one. Among the choices, the one whose node distances are closest to the guest's own wins. The pins
    follow the spec's pinning rules, read from the spec stored with the guest.
  - Before anything moves, the destination's capacity is checked with the guest in place. A refusal names the guest,
    the cell and the limit, and changes nothing on either host.
  - A persistent definition that lays the guest out otherwise than it runs (a change waiting for its next boot) gets
    its host side planned from its own cells (RV(definition_plan)), before anything moves. A definition the
    destination cannot hold refuses the move, saying so.
  - After the move, the guest is read on the destination and its pins and memory binding are compared with the plan.
  - The rules, examples and limits are in the collection's C(docs/migration.md).
author:
  - vnuma.libvirt contributors (@vnuma)
extends_documentation_fragment:
  - vnuma.libvirt.connection
attributes:
  check_mode:
    support: full
    description: Plans the move and checks the destination's capacity. Returns the plan and the host-side changes
      without moving anything.
  diff_mode:
    support: none
    description: RV(host_changes) lists the host-side values before and after.
  idempotent:
    support: none
    description: A migrated guest is no longer on the source, so a second run fails with a clear error.
options:
  uri:
    description:
      - The libvirt connection URI of the source hypervisor for O(operation=migrate).
      - The host the guest is restored on for O(operation=restore).
  host_capabilities:
    description:
      - Host capabilities XML of the destination, to plan against instead of the destination connection's own. Give
        XML text or the path of a file on the managed node.
      - The guests counted there are still those of the destination connection.
  name:
    description:
      - The guest to move. Required for O(operation=migrate).
      - With O(operation=restore), the guest the save image must hold. The image's own guest is restored when this is
        not given.
    type: str
  operation:
    description:
      - V(migrate) moves the running guest live to O(destination_uri). It uses C(virDomainMigrate3) with the flags
        C(VIR_MIGRATE_LIVE), C(VIR_MIGRATE_PERSIST_DEST) and C(VIR_MIGRATE_UNDEFINE_SOURCE), and the parameters
        C(VIR_MIGRATE_PARAM_DEST_XML) and C(VIR_MIGRATE_PARAM_PERSIST_XML) set to the guest's running and persistent
        XML with the host side rewritten. The guest stays defined on the destination only.
      - V(restore) restores O(restore_from) running on the host of O(uri) with C(virDomainRestoreFlags), with the host
        side of the image's XML planned for that host. A guest defined there gets the same bindings in its definition.
    type: str
    choices: [migrate, restore]
    default: migrate
  destination_uri:
    description:
      - The libvirt connection URI of the destination hypervisor. Required for O(operation=migrate).
    type: str
  migration_uri:
    description:
      - Where the migration data goes, for example V(tcp://10.0.0.2:49152). This is C(VIR_MIGRATE_PARAM_URI).
      - When not given, the destination's libvirt chooses it from its host name.
    type: str
  restore_from:
    description:
      - The path of a save image on the host of O(uri), as written by C(virsh save). Required for
        O(operation=restore).
    type: path
  lock_timeout:
    description:
      - Seconds to wait for another vnuma.libvirt run that changes guests of the destination. From 0 to 86400.
      - The move takes the destination's lock, as M(vnuma.libvirt.vnuma_domain) takes it. Check mode takes no lock.
    type: float
    default: 300
notes:
  - The call that moves the guest is bounded by O(call_timeout), like every other call. Give a large enough
    O(call_timeout) for a guest with much memory.
seealso:
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
- name: Plan a live migration and show what would change on the destination
  vnuma.libvirt.vnuma_migrate:
    name: db01
    uri: qemu+ssh://hv1.example.com/system
    destination_uri: qemu+ssh://hv2.example.com/system
  check_mode: true
  register: planned

- name: Move db01 live to hv2, its cells on hv2's nodes
  vnuma.libvirt.vnuma_migrate:
    name: db01
    uri: qemu+ssh://hv1.example.com/system
    destination_uri: qemu+ssh://hv2.example.com/system
    migration_uri: tcp://hv2.example.com:49152
    call_timeout: 900

- name: Bring up a guest saved on another host, pinned for this one
  vnuma.libvirt.vnuma_migrate:
    operation: restore
    restore_from: /var/lib/libvirt/save/db01.save
    uri: qemu:///system
"""

RETURN = r"""
plan:
  description: Where the guest lives on the destination, and why.
  returned: always
  type: dict
  contains:
    guest:
      description: The guest's name.
      type: str
    cells:
      description: One entry per guest cell.
      type: list
      elements: dict
      contains:
        id:
          description: The guest cell id.
          type: int
        vcpus:
          description: The cell's vCPUs, in cpuset syntax.
          type: str
        memory_kib:
          description: The cell's memory in KiB.
          type: int
        host_nodes:
          description: The destination nodes the cell lives on.
          type: str
        memory_nodes:
          description: The destination nodes its memory is bound to.
          type: str
        source_nodes:
          description: The nodes its memory was bound to before the move.
          type: str
        guest_distances:
          description: The cell's distances as the guest sees them, by cell id.
          type: list
          elements: int
        host_distances:
          description: The distances the destination nodes give, by cell id.
          type: list
          elements: int
    host_nodes:
      description: Every destination node the guest uses.
      type: str
    memory_mode:
      description: The memory binding mode, kept from the guest.
      type: str
    numatune_nodes:
      description: The C(<numatune><memory nodeset>) on the destination.
      type: str
    vcpu_pins:
      description: Host CPUs per vCPU id on the destination; empty when the guest pins nothing.
      type: dict
    emulator_pins:
      description: The C(<emulatorpin>) on the destination, or null.
      type: str
    shared_cpus:
      description: The destination CPUs no vCPU holds, used for C(<iothreadpin>).
      type: str
    held_cpus:
      description: The destination CPUs the guest's dedicated pins hold.
      type: str
    distance_error:
      description: The sum over cell pairs of the difference between the guest's distance and the destination's. 0
        when the destination keeps the guest's distances.
      type: int
    considered:
      description: How many choices of destination nodes were examined.
      type: int
    why:
      description: Which source nodes each cell leaves for which destination nodes, and how they were chosen.
      type: str
definition_plan:
  description:
    - The plan of the guest's persistent definition when it lays the guest out otherwise than it runs (other cells,
      bindings or memory devices waiting for its next boot), as RV(plan). Its definition on the destination gets
      these bindings.
    - V(null) when the definition lays the guest out as it runs and takes RV(plan), or (O(operation=restore)) the
      guest is not defined on that host.
  returned: always
  type: dict
host_changes:
  description: The host-side values that differ between the guest before and after, one entry per value.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The value's place, for example C(cputune/vcpupin[3]/cpuset).
      type: str
    before:
      description: The value before the move.
      type: str
    after:
      description: The value after the move.
      type: str
capacity:
  description: The destination's capacity report with the guest in place, as M(vnuma.libvirt.vnuma_domain) returns it.
  returned: always
  type: dict
moved:
  description: Whether the guest moved. False in check mode.
  returned: always
  type: bool
operation:
  description: The operation run.
  returned: always
  type: str
source_uri:
  description: The hypervisor the guest moves from.
  returned: with O(operation=migrate)
  type: str
destination_uri:
  description: The hypervisor the guest moves to.
  returned: with O(operation=migrate)
  type: str
uri:
  description: The hypervisor the guest is restored on.
  returned: with O(operation=restore)
  type: str
restore_from:
  description: The save image the guest is restored from.
  returned: with O(operation=restore)
  type: str
name:
  description: The restored guest's name, the save image's own when O(name) is not given.
  returned: with O(operation=restore), when the guest was restored
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGS,
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import DEFAULT_LOCK_TIMEOUT
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.migrate import OPERATIONS, run_migrate
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import error_result
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import HAS_LXML, LXML_IMPORT_ERROR


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            **CONNECTION_ARGS,
            name=dict(type="str"),
            operation=dict(type="str", choices=list(OPERATIONS), default="migrate"),
            destination_uri=dict(type="str"),
            migration_uri=dict(type="str"),
            restore_from=dict(type="path"),
            lock_timeout=dict(type="float", default=DEFAULT_LOCK_TIMEOUT),
        ),
        required_if=[
            ("operation", "migrate", ("name", "destination_uri")),
            ("operation", "restore", ("restore_from",)),
        ],
        supports_check_mode=True,
    )
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=LIBVIRT_IMPORT_ERROR)
    if not HAS_LXML:
        module.fail_json(msg=missing_required_lib("lxml"), exception=LXML_IMPORT_ERROR)
    try:
        result = run_migrate(module.params, module.check_mode)
    except VnumaError as error:
        module.fail_json(**error_result(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
