#!/usr/bin/python
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vnuma_fleet_report
short_description: Write the vnuma_fleet role's reports on the controller
version_added: 0.1.0
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role's report step. It runs on the controller and starts no module. It
    creates the report directory, dumps a hypervisor's result or the fleet summary as JSON, renders the role's HTML
    templates with Jinja2, and writes every file atomically.
  - The reports are the role's output, not a change to the hosts. They are written in check mode too, and the task
    never reports a change.
  - It is the role's internal wiring; its options may change with the role.
author:
  - vnuma.libvirt contributors (@vnuma)
attributes:
  action:
    support: full
    description: Runs on the controller as an action plugin; the module file only holds this documentation.
  async:
    support: none
    description: The files are written within the task.
  bypass_host_loop:
    support: none
    description: Runs once per host (use C(run_once) for the fleet summary).
  check_mode:
    support: full
    description: The reports are written in check mode too (they are what a plan produces). RV(check_mode) tells.
  diff_mode:
    support: none
    description: The reports are output, not a change; there is nothing to show.
  platform:
    support: full
    platforms: posix
    description: The controller's file system.
  idempotent:
    support: none
    description: Every run writes the files again with their new timestamps, and never reports a change.
options:
  dir:
    description:
      - The report directory on the controller, an absolute path. It is created with its missing parents, each mode
        C(0755).
      - An existing directory keeps its mode and owner (a shared C(/tmp) stays C(1777), a private directory C(0700)),
        in check mode too. A symlink to a directory is followed, as M(ansible.builtin.file) follows it.
      - A file, a symlink that does not lead to a directory, or a directory this user cannot write in is refused
        with a message that names the path, as is a directory that cannot be created.
    type: path
    required: true
  probe:
    description:
      - Also write a probe file in O(dir) and remove it, to find out that the directory takes files before anything
        else happens. Only a real write tells, since root passes every permission check yet cannot write in C(/proc),
        C(/sys) or on a read-only file system.
    type: bool
    default: false
  result:
    description:
      - One hypervisor's C(vnuma_fleet_result). Written as JSON to its C(report.json) and, through the role's
        C(report.html.j2), as HTML to its C(report.html).
      - Both must be files right in O(dir), other than the fleet summary's C(fleet.json) and C(fleet.html) (compared
        without case); anything else is refused before a file is written. The role's preflight refuses an inventory
        name that could not name them.
    type: dict
  result_var:
    description:
      - The name of a variable that holds O(result), used in its place. A mapping is read as it is stored (a
        C(set_fact)'s value is already templated); templating a few hundred guests' result again, as the task's
        argument would be, costs Ansible a noticeable part of a second. Anything else is templated.
      - Mutually exclusive with O(result).
    type: str
  summary:
    description:
      - The fleet summary. Written as C(fleet.json) and, through the role's C(fleet.html.j2), as C(fleet.html) in
        O(dir).
    type: dict
notes:
  - The templates are found as the M(ansible.builtin.template) module finds them (the role's C(templates)
    directory). They are rendered by plain Jinja2 with the template module's settings, not by Ansible's templar,
    which costs several times as much for a few hundred guests; the pages are the same byte for byte.
  - A template sees O(result) as C(vnuma_fleet_result), O(summary) as C(__vnuma_fleet_summary), and the guests as the
    role's fleet call read them first as C(__vnuma_fleet_before) (from the role's C(__vnuma_fleet_read)); it may use
    Jinja2's filters and tests, C(to_json) and C(vnuma.libvirt.vnuma_host_svg).
  - Each file is written to a temporary file in its directory and renamed over the old one, mode C(0644).
seealso:
  - module: vnuma.libvirt.vnuma_info
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
---
- name: Check that the report directory takes files, first of all
  vnuma.libvirt.vnuma_fleet_report:
    dir: /srv/vnuma-report
    probe: true

- name: Write this hypervisor's JSON and HTML reports
  vnuma.libvirt.vnuma_fleet_report:
    dir: /srv/vnuma-report
    result_var: vnuma_fleet_result
"""

RETURN = r"""
dir:
  description: The report directory.
  returned: success
  type: str
  sample: /srv/vnuma-report
written:
  description: The files written, in order.
  returned: success
  type: list
  elements: str
  sample: [/srv/vnuma-report/hv01.json, /srv/vnuma-report/hv01.html]
check_mode:
  description: Whether the task ran in check mode (the role learns here that it runs as a plan only).
  returned: success
  type: bool
  sample: false
"""
