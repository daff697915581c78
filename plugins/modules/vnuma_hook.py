#!/usr/bin/python
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vnuma_hook
short_description: Install the libvirt hook that rebinds guests moved by other tools
version_added: 0.1.0
description:
  - Installs or removes a libvirt qemu hook on the hypervisor the module runs on. The hook rewrites the host-side
    NUMA bindings of a guest that arrives by live migration or by a restore that the collection did not start
    (C(virsh migrate), C(virsh restore), virt-manager, managed save). It binds the guest's cells to this host's
    nodes and pins its vCPUs to this host's CPUs, by the same planner as the collection's own moves.
  - Only guests with a spec stored by M(vnuma.libvirt.vnuma_domain) are changed, and only their C(<numatune>),
    C(<vcpupin>), C(<emulatorpin>), C(<iothreadpin>) and memory devices' C(<nodemask>). What the guest sees stays
    the same. Every other guest passes through untouched.
  - A guest that cannot fit on this host is refused. libvirt then cancels the migration or the restore, and
    the hook's message is in libvirt's error.
  - The hook never calls libvirt. It reads this host's topology from a cache file that the module writes, and
    that each M(vnuma.libvirt.vnuma_domain) run on a local URI keeps up to date.
  - The hook's code is copied into O(lib_dir), so it needs no Ansible at run time. It runs under the Python
    interpreter that runs this module, which must have lxml.
  - After writing, the module runs the installed script once as libvirtd runs it for a call the hook passes
    through. A script that does not exit 0 within 30 seconds is removed again and the task fails, since libvirtd
    would fail every guest start with it.
  - Every path option must be absolute. An empty one (an empty templated variable, say) is refused, never taken
    for its default.
  - Paths in the way (a directory where the script or the cache goes, a file where a directory goes) are refused
    before anything is written. A write that fails later fails the task naming the path and the system's error;
    RV(written) and C(changed) then say what was written before the failure.
  - libvirtd looks for hooks when it starts and when it reloads (SIGHUP). RV(reload_required) says when it must
    reload before it sees the new hook. The module never reloads or restarts libvirtd itself.
  - The whole story, with its limits, is in the collection's C(docs/migration.md).
author:
  - vnuma.libvirt contributors (@vnuma)
extends_documentation_fragment:
  - vnuma.libvirt.connection
attributes:
  check_mode:
    support: full
    description: Check mode reports what would be written or removed and writes nothing.
  diff_mode:
    support: full
    description: The diff shows the hook script and one line per library file with its digest.
  idempotent:
    support: full
    description: A second run with the same options and an unchanged host changes nothing.
options:
  state:
    description:
      - V(present) installs or updates the hook, its library and the topology cache.
      - V(absent) removes all three.
    type: str
    choices: [present, absent]
    default: present
  hooks_dir:
    description:
      - libvirt's hooks directory. The hook is written to C(<hooks_dir>/qemu.d/vnuma-libvirt).
    type: path
    default: /etc/libvirt/hooks
  lib_dir:
    description:
      - Directory that holds the hook's copy of the collection's code, in an C(ansible_collections) tree. The module
        owns C(ansible_collections/vnuma/libvirt/plugins/module_utils/_core), C(_xml) and C(_run) there. Files in
        them that the hook no longer needs are removed. Files beside the C(ansible_collections) tree are never
        touched.
      - A directory whose C(ansible_collections) tree holds anything else (another collection, a collection's roles,
        a symbolic link) is not the hook's own, for example a collections path given by mistake. It is refused
        before anything is written or removed, with O(state=absent) and in check mode too, naming the first foreign
        file.
    type: path
    default: /usr/local/lib/vnuma-libvirt
  cache_path:
    description:
      - The host topology cache the hook plans with, the host's capabilities XML.
      - M(vnuma.libvirt.vnuma_domain) refreshes only the default path.
    type: path
    default: /var/lib/vnuma-libvirt/host-capabilities.xml
  state_dir:
    description:
      - Where libvirtd keeps the live XML of its running guests. The hook reads it to leave other guests' dedicated
        CPUs and memory alone.
    type: path
    default: /run/libvirt/qemu
  interpreter:
    description:
      - The Python interpreter of the hook script. It must import lxml.
      - Its path goes on the script's C(#!) line, which the kernel reads. A path with whitespace, or one that makes
        that line (C(#!<interpreter> -I)) longer than 127 bytes (the kernel reads 128 bytes of it before Linux 5.1),
        is refused with O(state=present), since the script could not run and libvirtd would fail every guest start. Give
        such an interpreter through a symbolic link to its directory.
      - Default is the interpreter that runs this module.
    type: path
notes:
  - The cache is filled from the capabilities of O(uri), which must be a daemon on this machine (no host part in
    the URI), since the hook runs here. With O(host_capabilities) the module caches that XML instead and does not
    connect.
  - Live migrations started by M(vnuma.libvirt.vnuma_migrate) send the destination XML themselves; the hook sees
    that XML already planned for this host and writes the same bindings again.
  - libvirt passes the hook only the live definition of an incoming migration. A persistent definition sent with
    C(virsh migrate --persistent) keeps the source host's bindings, until M(vnuma.libvirt.vnuma_domain) runs
    on the destination.
seealso:
  - module: vnuma.libvirt.vnuma_domain
  - name: libvirt hooks
    description: How libvirt runs hook scripts.
    link: https://libvirt.org/hooks.html
"""

EXAMPLES = r"""
- name: Install the migration hook
  vnuma.libvirt.vnuma_hook:
  register: hook

- name: Let libvirtd see a new hook (SIGHUP; running guests are not touched)
  ansible.builtin.service:
    name: libvirtd
    state: reloaded
  when: hook.reload_required

- name: Remove it
  vnuma.libvirt.vnuma_hook:
    state: absent
"""

RETURN = r"""
hook_path:
  description: The hook script.
  returned: always
  type: str
  sample: /etc/libvirt/hooks/qemu.d/vnuma-libvirt
lib_dir:
  description: The directory of the hook's code.
  returned: always
  type: str
cache_path:
  description: The host topology cache.
  returned: always
  type: str
cache_changed:
  description: Whether the topology cache was (or, in check mode, would be) written or removed.
  returned: always
  type: bool
files:
  description: The hook's library files, relative to O(lib_dir), with the first 16 hex digits of their SHA-256.
  returned: always
  type: dict
other_hooks:
  description: The other qemu hooks libvirtd runs on this host (C(<hooks_dir>/qemu) and other scripts in C(qemu.d)).
  returned: always
  type: list
  elements: str
written:
  description:
    - What this run wrote, in order, each write once; an entry ends with C(removed) for a removal. Empty in check
      mode and when nothing changed.
    - Also returned when the task fails after it wrote anything (C(changed) is then V(true)).
  returned: always
  type: list
  elements: str
  sample:
    - topology cache /var/lib/vnuma-libvirt/host-capabilities.xml
    - library file ansible_collections/vnuma/libvirt/plugins/module_utils/_core/units.py
    - hook script /etc/libvirt/hooks/qemu.d/vnuma-libvirt
reload_required:
  description:
    - Whether libvirtd must reload (SIGHUP, C(systemctl reload libvirtd)) or restart before it runs the hook. It
      looks for hooks only then, unless another qemu hook was there already.
    - V(true) only on the run that adds the hook while no other qemu hook is there. libvirtd's reloads cannot be
      read, so a later run says V(false) even when nothing reloaded libvirtd in between (a play that failed after
      this module and before its reload); reload libvirtd then by hand, or remove the hook (O(state=absent)) and
      install it again.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import CONNECTION_ARGS
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.hook import DEFAULT_STATE_DIR
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.hook_install import (
    DEFAULT_HOOKS_DIR,
    DEFAULT_LIB_DIR,
    STATES,
    install_hook,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import error_result
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.topology_cache import DEFAULT_CACHE_PATH
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import HAS_LXML, LXML_IMPORT_ERROR


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            **CONNECTION_ARGS,
            state=dict(type="str", choices=list(STATES), default="present"),
            hooks_dir=dict(type="path", default=DEFAULT_HOOKS_DIR),
            lib_dir=dict(type="path", default=DEFAULT_LIB_DIR),
            cache_path=dict(type="path", default=DEFAULT_CACHE_PATH),
            state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
            interpreter=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    if not HAS_LXML:
        module.fail_json(msg=missing_required_lib("lxml"), exception=LXML_IMPORT_ERROR)
    try:
        result = install_hook(module.params, module.check_mode)
    except VnumaError as error:
        # A failure after the first write says so: changed and written (what was written before it).
        module.fail_json(**error_result(error))
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
