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
  - Resizable memory per cell. With O(memory_device=virtio-mem) each cell gets a virtio-mem device bound like the
    cell, and O(total_memory) grows or shrinks a running guest, spread over the cells by their memory's balance rule.
  - One call can converge many guests on one host (O(guests)). Every guest is planned before anything is written, so
    a guest that cannot be placed stops the call with nothing changed. Guests with dedicated pinning (V(core),
    V(thread)) are planned first, so the other guests of the call avoid their host CPUs.
  - Before anything is written the host's capacity is checked across every guest on it that is running or autostart,
    the planned ones with their new layout (O(capacity)). Memory bound to each host node, hugepage pools and dedicated
    CPUs must fit; RV(capacity) explains where and who takes what.
  - The guests of one call that need a restart are restarted together. All are shut down at once and share one
    O(shutdown_timeout), then all are started again.
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
      - It must not be empty, and O(exclude) does not go with it.
    type: str
    aliases: [guest]
  guests:
    description:
      - Guests to converge in one call. Each entry is a guest name, a shell pattern (V(db*)), or a dict with C(name)
        and any spec option, O(state), O(current_vcpus), O(hotplug_memory), O(total_memory) or O(replan) to
        override the top-level value for that guest. The values of a dict entry are checked like the top-level
        options; a value of the wrong type or above its limit is refused, naming the guest, the option and the
        value. A null value is unset, and the top-level value or the default applies.
      - Before anything is read or written, each entry's spec options with the top-level ones under them are
        checked as its guests get them. Options that contradict each other whatever the guest's stored spec (such as
        O(mode=host) with O(cells)) refuse the whole call, naming the entry by its index and its name or pattern. What
        depends on a guest's definition or the host fails that guest alone.
      - An entry that is exactly the name of a defined guest means that guest, even when the name has pattern
        characters (a guest named V(web[1])). Any other entry is a shell pattern. An entry without pattern
        characters that names no defined guest fails the call, as an unknown guest.
      - Several entries may select one guest. Their options are merged. Two entries that set one option to
        different values are refused, naming the guest and both entries; equal values (V(1 GiB) and V(1048576)
        too) are fine.
      - A pattern that matches no defined guest is a warning, and so is a call that selects no guest at all (an
        empty list included); such a call changes nothing.
    type: list
    elements: raw
  exclude:
    description:
      - Guest names or shell patterns to leave out of O(guests), by the same rule as O(guests). Exclusion wins over
        any entry of O(guests).
    type: list
    elements: str
    default: []
  exact_names:
    description:
      - Read every entry of O(guests) and O(exclude) as an exact guest name, never as a shell pattern. A name that no
        guest has fails that guest as not defined, as a name without pattern characters always does.
      - For a list of names computed earlier, such as a plan's (the C(vnuma.libvirt.vnuma_fleet) role passes its
        guests this way after its plan). Without it, the name of a guest undefined in the meantime that holds
        pattern characters (V(web[12])) would select other guests (V(web1), V(web2)).
    type: bool
    default: false
  # BEGIN generated by scripts/gen-option-docs.py from plugins/module_utils/_core/options.py
  state:
    description:
      - V(present) applies the layout.
      - V(absent) undoes it. The first apply records the guest's owned parts in its C(<metadata>); absent puts them back
        as they were and removes the record and the stored spec. A part changed by hand since the last apply (such as
        C(virsh setvcpus --config)) stays as it is.
      - Without a record (a guest managed by an older version), absent drops the cells, memory binding, vCPU pins,
        hotplug order, C(<maxMemory>) and per-cell hugepages, and keeps C(<vcpu>) with its C(current), the
        C(<cpu><topology>), C(<emulatorpin>) and the memory sizes. A guest the collection never managed is left as it
        is. A record that cannot be used gives a warning and the same result as no record.
      - Absent is refused when hot-plugged DIMMs would be left without NUMA cells.
      - A O(guests) entry's C(state) takes the same two values; any other value is refused.
    type: str
    choices: [present, absent]
    default: present
  current_vcpus:
    description:
      - How many vCPUs are online. The definition's C(<vcpu current>) and its C(<vcpus>) enable order follow it. On a
        running guest, the vCPUs that keep the cells balanced are brought online live and pinned by the layout.
      - Lowering it changes the count at the next boot only; vCPUs are not unplugged live. Until that boot every run
        reports RV(restart_required) for the guest (and M(vnuma.libvirt.vnuma_info) reports it pending), so
        O(restart=if_needed) restarts it on a later run when an earlier one could not.
      - Without it the count is the definition's own. A running guest with fewer vCPUs online than its definition brings
        online at boot (after C(virsh setvcpus --live) lowered it, say) gets them back live, as with the option.
      - A positive integer (or its digits as text); anything else is refused before anything is read or written.
    type: raw
    aliases: [vcpus_live]
  hotplug_memory:
    description:
      - Total memory the guest should have in hot-plugged DIMMs, in KiB or with a unit (V(2 GiB)). The module adds the
        difference as one DIMM per cell (round-robin when it is smaller than the cells), in multiples of 128 MiB. Each
        DIMM has C(<target><node>) and is bound to its cell's host nodes. It goes in live when the guest runs, and into
        the definition in any case. Needs O(max_memory) and O(memory_slots).
      - The DIMMs the definition has and a running guest lacks (added while a restart was pending, or with C(virsh
        attach-device --config)) go in live too, whenever the guest keeps running, with or without this option. The
        running guest's memory devices, those attached live only included, count against O(memory_slots), checked before
        anything is written.
      - Memory is never unplugged; a value below what is already hot-plugged is an error.
      - Refused with O(memory_device=virtio-mem); use O(total_memory) there.
    type: raw
  total_memory:
    description:
      - For a guest with O(memory_device=virtio-mem), the memory it should have in total, in KiB or with a unit (V(6
        GiB)), counting its boot memory, any other memory devices, and what its virtio-mem devices plug.
      - The part above the boot memory is split over the cells by the rule that splits the cells' memory
        (O(memory_split)), in whole blocks of the device (2 MiB, or the hugepage size), and set as each device's
        requested size, in the definition and, when the guest runs, live. Lower values shrink the guest live.
      - Refused above the most the devices hold (O(max_memory)) or below the boot memory, and with
        O(memory_device=dimm); nothing is changed then. The guest kernel needs the C(virtio_mem) driver, and takes
        memory back reliably only when it onlined it movable (C(memhp_default_state=online_movable)).
    type: raw
  replan:
    description:
      - With O(mode=auto), choose the host nodes again from the host's load now, instead of keeping the nodes stored
        with the spec by an earlier run. A guest that runs then needs a restart to move (RV(restart_required)).
      - Without it, the stored choice is kept whatever the load, and a new choice is made only when there is none or
        when it names host nodes with CPUs that this host does not have.
    type: bool
    default: false
  # END generated by scripts/gen-option-docs.py
  rerender:
    description:
      - What to do with a guest that M(vnuma.libvirt.vnuma_migrate) moved here with its topology kept. Its
        C(<metadata>) records the move.
      - V(keep) leaves the guest as it is, with the topology it had on its earlier host and the host-side
        bindings the move planned for this host. Nothing is written, and a warning says why.
      - V(next_boot) renders its spec for this host, as for any other guest, and drops the record of the move. What
        the guest sees may change then, which needs a new boot (RV(restart_required)).
      - Guests that did not move are rendered either way. It applies to every guest of the call.
    type: str
    choices: [keep, next_boot]
    default: keep
  restart:
    description:
      - What to do with a running guest whose definition changed in a way that needs a new boot.
      - V(never) only reports RV(restart_required). V(if_needed) shuts it down gracefully and starts it again.
      - A guest that another client shut off before the restart is left off (its next boot takes the new
        definition), with a warning.
      - A shut-off guest with a managed save image (C(virsh managedsave)) resumes at its next start the layout
        saved with it, so it is compared as a running guest is and can report RV(restart_required). V(if_needed)
        neither starts it nor discards its saved state; it stays saved, with a warning.
    type: str
    choices: [never, if_needed]
    default: never
  force:
    description:
      - With O(restart=if_needed), power the guest off when it does not shut down within O(shutdown_timeout).
      - A paused guest cannot shut down. With O(force=true) it is powered off and started with its new definition;
        without it the guest fails, left paused.
    type: bool
    default: false
  shutdown_timeout:
    description:
      - Seconds to wait for a graceful shutdown. The guests restarted by one call share this one deadline.
      - From 0 to 86400 (a day). Any other value is refused before anything is read or written.
    type: float
    default: 120
  capacity:
    description:
      - What to do when the host cannot hold its guests with this call's plans in place.
      - The check counts every guest on the host that is running or starts with the host (autostart). The guests of
        this call count with their planned layout, the others with their current definition. A planned guest that is
        shut off and not autostart does not count; a warning says when starting it now would over-commit the host.
      - "Per host node, the normal memory bound there (cells and DIMMs) must fit the node's memory less its hugepage
        pools and O(reserved_memory). Per node and page size, hugepage-backed memory must fit the pool. Memory bound
        to no node must fit what the nodes have left. A dedicated host CPU must not be held by two guests nor named in
        another guest's pins. A guest whose vCPUs are not pinned, on a host where some guest holds dedicated CPUs, is
        a warning."
      - V(fail) refuses the call, before anything is written, when a problem involves a guest of this call. Problems
        among the other guests alone are reported and shown as warnings. The failure's result carries RV(capacity)
        too.
      - V(report) only reports, in RV(capacity) and as warnings. V(ignore) skips the check.
    type: str
    choices: [fail, report, ignore]
    default: fail
  reserved_memory:
    description:
      - Memory to keep free on every host node for the host itself, in KiB or with a unit (V(2 GiB)). The capacity
        check takes it off each node's memory.
    type: raw
    default: 0
  backup:
    description:
      - Save each changed guest's previous inactive definition in O(backup_dir) before changing it.
      - The definition is saved with what libvirt shows only on request (a C(<graphics>) password), so that
        defining the file brings the guest back as it was. Each file is readable by its owner only (mode 0600), and
        each directory created for it too (0700).
      - Each run writes one new file per guest it changes and never removes one; old backups stay until you delete
        them (for example with a C(find -mtime) job).
    type: bool
    default: false
  backup_dir:
    description:
      - Directory for O(backup) files on the managed node, created when missing, with each missing directory of its
        path (each mode 0700, owned by the user the module runs as). C(..) in it is resolved by name
        (C(/srv/x/../backups) is C(/srv/backups)), and that path is the one created and returned in RV(backup_file).
      - With O(backup=true) it must be an absolute path that is a writable directory, or that can be created in
        one, and no other user may be able to replace a backup in it. The directory, when it exists, must belong to
        the user the module runs as, with no write permission for group or others (sticky bit or not). Every
        directory above it must belong to root or that user and be writable by others only with the sticky bit
        (as C(/tmp)), so that no other user can rename it away. A symlink to a directory is followed, and checked
        too; a symlink to nothing is refused. Otherwise the call is refused before anything is read or written, in
        check mode too.
    type: path
    default: /var/lib/vnuma-libvirt/backups
  fleet:
    description:
      - The first steps of the P(vnuma.libvirt.vnuma_fleet#role) role in one call, which plans and never writes (as in
        check mode). The host is read (as M(vnuma.libvirt.vnuma_info) with every guest excluded), then the
        selected guests, their guests entries are built by the role's rule (the C(vnuma_fleet_requests) filter),
        and they are planned with O(capacity=report).
      - Keys C(guests), C(exclude), C(guest_state) (as M(vnuma.libvirt.vnuma_info)'s options), C(spec),
        C(overrides) and C(use_stored_spec) (as the filter's), C(apply) and C(compact) (default V(false)).
      - C(apply) is V(true) or V(together) (plan and apply), V(false) or V(apart) (plan only), or a dict of the role's
        C(plan_and_apply) (V(auto), V(together) or V(apart)) and C(hypervisors), the number of hypervisors in the
        play, which V(auto) needs (it applies when that is 1). RV(together) says what the call decided.
      - When it applies, not in check mode, the call then applies the plan as the role's apply step does, from the
        same plans (RV(applied)). It does so only when the plan changes something or guests failed at it, and neither
        the plan nor the capacity failed (RV(apply_needed)); only the guests whose plan went well are applied. The
        hypervisor's lock is taken before the first read and held to the last write.
      - Every definition is read once for the discover step and the plan; the read after an apply (RV(after) in
        RV(applied)) is each define's read-back, and a running guest's definition is read again.
      - A host that cannot be read fails the call. A failure of a later step is returned in RV(failure), naming the
        step.
      - C(compact) V(true) returns the guests' parts of the result in one JSON text, RV(guests_json), instead of
        nested data (RV(before), the C(guests) of RV(plan) and RV(applied), and the read after). A few hundred
        guests' results cost Ansible a second or more as nested data, a text almost nothing. The role reads it in
        its filters.
      - It is the role's internal wiring; its input and output may change with the role. Exactly one of O(name),
        O(guests) and O(fleet) is required.
    type: dict
  report_after:
    description:
      - Also return the guests as M(vnuma.libvirt.vnuma_info) reports them after the call (RV(after)), those with a
        layout and no error. With O(fleet), only when the plan changes nothing (in RV(applied) when it applied). Not
        in check mode otherwise.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for another vnuma.libvirt run that is changing guests of the same O(uri) on this
        machine; the run fails with a clear error when the lock is still held then. V(0) fails at once.
      - Runs that write take an exclusive lock on a file named after O(uri), under C(/run/lock/vnuma.libvirt)
        for root, from their first read to their last write, so two runs never plan from the same definition.
        Check mode takes no lock. Other tools can take the same lock with C(flock), see docs/guarantees.md.
      - From 0 to 86400.
    type: float
    default: 300
notes:
  - The capacity check counts the memory a guest is given (cells and DIMMs), not what it uses at the moment. A
    balloon does not lower it.
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

- name: Give each cell a virtio-mem device, then grow the running guest to 24 GiB, spread over its cells
  vnuma.libvirt.vnuma_domain:
    name: db03
    mode: host
    memory: 16 GiB
    max_memory: 64 GiB
    memory_slots: 8
    memory_device: virtio-mem
    total_memory: 24 GiB

- name: Let the collection choose the fewest host nodes that hold the guest, and say why
  vnuma.libvirt.vnuma_domain:
    name: web03
    mode: auto
    memory: 8 GiB
  register: placed

- name: Show the choice
  ansible.builtin.debug:
    msg: "{{ placed.auto.nodes }}: {{ placed.auto.why }}"

- name: Plan a layout for another host without touching anything
  vnuma.libvirt.vnuma_domain:
    name: db01
    host_capabilities: /srv/capabilities/new-hypervisor.xml
  check_mode: true
  diff: true
  register: plan

- name: Converge every web guest but the canary, restarting those that need it together
  vnuma.libvirt.vnuma_domain:
    guests:
      - web*
      - name: batch01
        distribution: interleave
    exclude: [web-canary]
    restart: if_needed
    force: true

- name: Plan a fleet of guests and see whether the host holds them, keeping 4 GiB per node for the host
  vnuma.libvirt.vnuma_domain:
    guests: ["*"]
    mode: host
    capacity: report
    reserved_memory: 4 GiB
  check_mode: true
  register: plan

- name: Show what does not fit
  ansible.builtin.debug:
    msg: "{{ plan.capacity.problems }}"
  when: not plan.capacity.fits
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
  description:
    - Whether any running guest must be restarted to run with its new definition, or any shut-off guest with a
      managed save image must boot once more after it resumes.
  returned: with O(name) or O(guests), unless the call failed before any guest (a refused option, capacity)
  type: bool
restart_required_guests:
  description: Names of the guests of RV(restart_required).
  returned: with O(name) or O(guests), unless the call failed before any guest (a refused option, capacity)
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
  description:
    - What was changed on the running guest (pins, vCPUs brought online, DIMMs added), in the order done; in check
      mode what would be. A live step that fails ends the list.
  returned: with O(name)
  type: list
  elements: str
alignment:
  description: The planned definition's alignment and locality (with O(name)); see RV(guests[].alignment).
  returned: with O(name)
  type: dict
locality_before:
  description: The current definition's locality (with O(name)); see RV(guests[].locality_before).
  returned: with O(name)
  type: float
auto:
  description: With O(mode=auto), the host nodes chosen or kept and why (with O(name)); see RV(guests[].auto).
  returned: with O(name)
  type: dict
capacity:
  description:
    - The host's capacity with this call's plans in place, across every guest on the host that is running or
      autostart (see O(capacity)). Sizes are in KiB.
  returned: with O(name) or O(guests) (an empty list included), unless O(capacity=ignore) or the call's guests are
    all O(state=absent) (absent places no layout); also in the result of a capacity failure. With O(fleet), in
    RV(plan).
  type: dict
  contains:
    fits:
      description: Whether the host holds all its counted guests (no problems).
      type: bool
    problems:
      description:
        - What does not fit, one sentence each, naming the node or CPUs, the amounts, the limit and every guest with
          its share and why it counts (V(planned), V(running) or V(autostart)).
      type: list
      elements: str
      sample:
        - "host node 1: 12 GiB bound, 8 GiB available (8 GiB - 0 reserved): db01 8 GiB (planned), web01 4 GiB (running)"
    blocking:
      description: The problems a guest of this call takes part in; O(capacity=fail) fails on these.
      type: list
      elements: str
    warnings:
      description:
        - Unpinned guests whose vCPUs may run on dedicated CPUs, planned guests that do not count but would not fit if
          started now, and definitions that could not be read.
      type: list
      elements: str
    nodes:
      description: One entry per host node.
      type: list
      elements: dict
      contains:
        id:
          description: The host node's id.
          type: int
        memory_kib:
          description: The node's memory.
          type: int
        hugepages_kib:
          description: Memory in the node's hugepage pools (not available as normal memory).
          type: int
        reserved_kib:
          description: O(reserved_memory).
          type: int
        available_kib:
          description: Normal memory guests may bind here, C(memory_kib - hugepages_kib - reserved_kib).
          type: int
        demand_kib:
          description: Normal memory the counted guests bind here.
          type: int
        free_after_kib:
          description: C(available_kib - demand_kib); negative when over-committed.
          type: int
        guests:
          description:
            - The counted guests binding normal memory here, largest first, each with C(name), C(kib), C(source)
              (V(planned) or V(defined)), C(running) and C(autostart).
          type: list
          elements: dict
        hugepages:
          description:
            - One entry per hugepage size the node has a pool of or a guest binds, with C(size_kib), C(pool_kib),
              C(demand_kib) and C(guests) (as RV(capacity.nodes[].guests)).
          type: list
          elements: dict
    unbound_kib:
      description: Normal memory the counted guests bind to no host node.
      type: int
    unbound_available_kib:
      description: Normal memory the nodes have left for it after the bound memory.
      type: int
    unbound_guests:
      description: The guests with unbound memory, as RV(capacity.nodes[].guests).
      type: list
      elements: dict
    dedicated:
      description: Host CPU (as a string) to the guest holding it for itself.
      type: dict
      sample: {"0": db01, "1": db01}
after:
  description:
    - The result of M(vnuma.libvirt.vnuma_info) for the guests of RV(guests) that have a layout and no error, read at
      the end of the call.
  returned: with O(report_after), when the call read them
  type: dict
failed_guests:
  description:
    - The guests of RV(guests) that failed, in their order, each with C(name), C(error), C(changed) and C(written), as
      the C(vnuma.libvirt.vnuma_guest_failures) filter gives them. Empty when none failed.
  returned: always, except with O(fleet) and when the call failed before any guest
  type: list
  elements: dict
host_info:
  description: The result of M(vnuma.libvirt.vnuma_info) with every guest excluded (with O(fleet)).
  returned: with O(fleet)
  type: dict
before:
  description: The result of M(vnuma.libvirt.vnuma_info) for the selected guests (with O(fleet)).
  returned: with O(fleet)
  type: dict
requests:
  description: The guests entries planned (with O(fleet)), as the C(vnuma_fleet_requests) filter returns them.
  returned: with O(fleet)
  type: list
  elements: dict
sources:
  description: Where each guest's spec comes from (with O(fleet)), as the C(vnuma_fleet_requests) filter says.
  returned: with O(fleet)
  type: dict
plan:
  description:
    - This module's result for the requests in check mode with O(capacity=report) (with O(fleet)); when it failed,
      with C(failed), C(msg) and C(guest) as a failed task returns them.
  returned: with O(fleet)
  type: dict
plan_failures:
  description: The guests whose plan failed (with O(fleet)), as RV(failed_guests), each with C(step) V(plan).
  returned: with O(fleet)
  type: list
  elements: dict
applied:
  description:
    - With O(fleet) when the call applies (RV(together)), what this module returns for the guests whose plan went
      well, applied with O(capacity=fail) and O(restart=never), RV(failed_guests) and RV(after) included; when it
      failed, as a failed task returns it. When the plan changes nothing, C(skipped) is true and nothing was
      written (also when the call does not apply, with its C(apply) key, since the role's apply step has nothing
      to do);
      null when the plan or the capacity failed.
  returned: with O(fleet) and its C(apply) key, not in check mode, when the call applies or there is nothing to apply
  type: dict
together:
  description: With O(fleet), whether the call applied its plan too (its C(apply) key; never in check mode).
  returned: with O(fleet), unless the host cannot be read
  type: bool
apply_needed:
  description:
    - With O(fleet), whether the role's apply step has anything to do after the plan, decided once here. It has when
      no step failed, the plan fits (no C(capacity.blocking)), and it changes something or guests failed at it.
  returned: with O(fleet), unless the host cannot be read
  type: bool
after_is_before:
  description:
    - True with O(fleet) and O(report_after) when the plan changes nothing and the guests to read are those of
      RV(before). RV(after) is then left out, since it would be RV(before) again.
  returned: with O(fleet)
  type: bool
guests_json:
  description:
    - With O(fleet) and its C(compact) key, the JSON text of what the result leaves out then, as an object with the
      keys C(before) (RV(before)), C(plan) (RV(plan)'s C(guests)), C(applied) and C(applied_after) (RV(applied)'s
      C(guests) and C(after)) and C(after) (RV(after)); a key whose part is null or missing is left out.
  returned: with O(fleet) and its C(compact) key
  type: str
laid_out:
  description: With O(fleet) and its C(compact) key, the names of the planned guests that got a layout.
  returned: with O(fleet) and its C(compact) key
  type: list
  elements: str
after_read:
  description:
    - With O(fleet) and its C(compact) key, whether the call read the guests after its writes (or knows them unchanged,
      RV(after_is_before)).
  returned: with O(fleet) and its C(compact) key
  type: bool
failure:
  description:
    - The step of O(fleet) that failed (C(step) V(discover), V(plan) or, with C(apply), V(apply); C(msg), C(guest),
      C(capacity)); null when none did. Guests that failed one by one are in RV(plan) and RV(applied), not here.
  returned: with O(fleet)
  type: dict
guests:
  description:
    - One entry per guest, in the order converged.
    - Also in the result of a failed run in which guests failed one by one (a guest that cannot be read, planned,
      defined, restarted or hot-plugged affects no other guest); then RV(ignore:changed) says whether anything was
      written and each entry says what (RV(guests[].written)) and why it failed (RV(guests[].error)).
  returned: with O(name) or O(guests), unless the call failed before any guest (a refused option, capacity); with
    O(fleet), in RV(plan) and RV(applied)
  type: list
  elements: dict
  contains:
    name:
      description: The guest's name.
      type: str
    changed:
      description: Whether the guest changed (in check mode, would change).
      type: bool
    written:
      description:
        - What this run wrote for the guest, in order, also when it then failed; empty in check mode and when nothing
          was written.
      type: list
      elements: str
      sample: ["backup /var/lib/vnuma-libvirt/backups/db01.20261202T101500.000000123Z.xml", "definition",
               "shutdown requested", "started"]
    error:
      description: Why this guest failed, naming the guest; null when it did not.
      type: str
    changes:
      description: As RV(changes).
      type: list
      elements: str
    layout:
      description: As RV(layout); null with O(state=absent).
      type: dict
    running:
      description:
        - Whether the guest was running, as this run last read it (right before its define); false for a guest
          another client shut off before its restart.
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
    alignment:
      description:
        - Where the planned definition puts the guest on the host. C(aligned) is true when every cell's memory is bound
          to exactly the host nodes its vCPUs run on. C(locality) (0 to 1) is the share of a vCPU's accesses to its own
          cell's memory that stay node-local, averaged over the vCPUs.
        - C(cells) lists each cell with C(id), C(vcpus), C(vcpu_count), C(memory_kib), C(memory_mode),
          C(memory_nodes), C(hugepages_kib), C(cpu_nodes), C(cpu_share) (host node to share of its vCPU time),
          C(memory_share_kib) (host node to KiB), C(aligned) and C(locality).
      type: dict
      sample:
        aligned: true
        locality: 1.0
        cells:
          - {id: 0, vcpus: "0-3", vcpu_count: 4, memory_kib: 8388608, memory_mode: strict, memory_nodes: "0",
             hugepages_kib: null, cpu_nodes: "0", cpu_share: {"0": 1.0}, memory_share_kib: {"0": 8388608},
             aligned: true, locality: 1.0}
    locality_before:
      description:
        - The locality of the guest's current definition, before this call's change (see RV(guests[].alignment)).
      type: float
      sample: 0.25
    auto:
      description:
        - With O(mode=auto), the host nodes of the guest and why; null in the other modes. Also in check mode.
        - C(nodes) (a cpuset), C(how) (V(chosen) now, or V(kept) from the spec stored by an earlier run), C(why) (one
          sentence), C(memory_kib) and C(hugepages_kib) (what the guest needs), C(considered) (node sets laid out).
        - C(nodes_left) lists each host node with CPUs (and any node the guest binds memory to) with C(id),
          C(capacity_kib) (normal memory guests may bind, or the pool of the guest's page size), C(committed_kib) (what
          the other counted guests and this call's earlier plans bind there), C(free_kib), C(planned_kib) (this guest),
          C(left_kib) and C(load) (committed share).
      type: dict
      sample:
        nodes: "1"
        how: chosen
        why: >-
          host node 1 holds the guest (4 GiB) alone; of 2 equally near nodes that do, the least loaded (0 % committed)
        memory_kib: 4194304
        hugepages_kib: null
        considered: 2
        nodes_left:
          - {id: 0, capacity_kib: 8388608, committed_kib: 6291456, free_kib: 2097152, planned_kib: 0,
             left_kib: 2097152, load: 0.75}
          - {id: 1, capacity_kib: 8388608, committed_kib: 0, free_kib: 8388608, planned_kib: 4194304,
             left_kib: 4194304, load: 0.0}
"""


from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CAPACITY_MODES
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import GUEST_OPTIONS, argument_spec
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import (
    CONNECTION_ARGS,
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.domain import run_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.fleet import applied_result, run_fleet_plan
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import DEFAULT_LOCK_TIMEOUT
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import error_result
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import HAS_LXML, LXML_IMPORT_ERROR

# From the option table, like the <vnuma> element and the documentation (scripts/gen-option-docs.py): the spec's
# options, and the other options a guests entry may set (state, current_vcpus, hotplug_memory...).
SPEC_ARGS = argument_spec()
GUEST_ARGS = argument_spec(GUEST_OPTIONS)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", aliases=["guest"]),
            guests=dict(type="list", elements="raw"),
            exclude=dict(type="list", elements="str", default=[]),
            exact_names=dict(type="bool", default=False),
            **CONNECTION_ARGS,
            restart=dict(type="str", choices=["never", "if_needed"], default="never"),
            force=dict(type="bool", default=False),
            # Seconds, read as lock_timeout and the connection's deadlines are (units.check_seconds): a float type
            # lets .inf and .nan through to the collection's range check.
            shutdown_timeout=dict(type="float", default=120),
            capacity=dict(type="str", choices=list(CAPACITY_MODES), default="fail"),
            reserved_memory=dict(type="raw", default=0),
            backup=dict(type="bool", default=False),
            backup_dir=dict(type="path", default="/var/lib/vnuma-libvirt/backups"),
            lock_timeout=dict(type="float", default=DEFAULT_LOCK_TIMEOUT),
            fleet=dict(type="dict"),
            report_after=dict(type="bool", default=False),
            rerender=dict(type="str", choices=["keep", "next_boot"], default="keep"),
            **GUEST_ARGS,
            **SPEC_ARGS,
        ),
        mutually_exclusive=[("name", "guests", "fleet")],
        required_one_of=[("name", "guests", "fleet")],
        supports_check_mode=True,
    )
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=LIBVIRT_IMPORT_ERROR)
    if not HAS_LXML:
        module.fail_json(msg=missing_required_lib("lxml"), exception=LXML_IMPORT_ERROR)
    params = module.params
    try:
        if params["fleet"] is not None:
            result = run_fleet_plan(params, module._diff, module.check_mode)
        else:
            try:
                result = run_domain(params, module.check_mode, module._diff)
            except VnumaError as error:
                # A capacity refusal also hands back the report, a run where guests failed every guest's result.
                result = error_result(error)
            result = applied_result(params, result, module.check_mode)
    except VnumaError as error:
        result = error_result(error)
    # ansible-core 2.19 deprecates a warnings key in the result: hand them to module.warn() instead.
    warned = result.pop("warnings", [])
    # With fleet: the plan's, then what the apply of the same plans adds (its own warnings repeat the plan's).
    for part in (result.get("plan"), result.get("applied")):
        if isinstance(part, dict):
            warned.extend(warning for warning in part.pop("warnings", []) if warning not in warned)
            if "diff" in part:
                result["diff"] = part["diff"]
    for warning in warned:
        module.warn(warning)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
