# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_gate
short_description: Whether the vnuma_fleet role holds a hypervisor back before a step, and why
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role checks C(vnuma_fleet_max_fail_percentage) before its apply step and again
    before its restarts. This filter counts the hypervisors of the play that failed, those Ansible dropped
    (unreachable, or failed outside the role) and those whose failure the role recorded, and returns why this
    hypervisor is held back when they are more than the percentage of the play's hosts. It returns null when the
    hypervisor goes on, and when it failed itself (its own failure is what it reports).
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description: The names of the play's hosts (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  hosts:
    description: The play's hosts that are still going (C(ansible_play_hosts)).
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars), where each host's recorded failure (C(__vnuma_fleet_failure)) is read.
    type: dict
    required: true
  host:
    description: This hypervisor's name (C(inventory_hostname)).
    type: str
    required: true
  step:
    description: The step the gate comes before, named in the message (C(apply), C(restart)).
    type: str
    required: true
  max_fail_percentage:
    description: C(vnuma_fleet_max_fail_percentage), from 0 to 100.
    type: int
    required: true
  check:
    description: Whether the role runs in check mode; the message then says what the real run would do.
    type: bool
    default: false
"""

EXAMPLES = r"""
---
- name: Hold this hypervisor back when more than 25 percent of the play failed
  ansible.builtin.set_fact:
    held_back: "{{ held }}"
  vars:
    held: >-
      {{ ansible_play_hosts_all | vnuma.libvirt.vnuma_fleet_gate(ansible_play_hosts, hostvars, inventory_hostname,
         step='apply', max_fail_percentage=25) }}
  when: held is not none
"""

RETURN = r"""
_value:
  description:
    - "One line, such as C(apply held back: 1 of 2 hypervisors failed (hv02), more than vnuma_fleet_max_fail_percentage
      25%), or null."
  type: str
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, host_variable, plain

_NAME = "vnuma_fleet_gate"
# The role's record of a failed step (roles/vnuma_fleet/tasks/failed.yml); null or absent when none failed.
_FAILURE = "__vnuma_fleet_failure"


def vnuma_fleet_gate(
    hosts_all: Any, hosts: Any, hostvars: Any, host: Any, step: Any, max_fail_percentage: Any, check: Any = False
) -> str | None:
    """The play's hosts, the remaining ones and their hostvars -> why this hypervisor is held back, or None."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import gate_held_back

    with filter_errors(_NAME):
        remaining = plain(hosts)
        failures = (
            {name: plain(host_variable(hostvars, name, _FAILURE)) for name in remaining}
            if isinstance(remaining, list)
            else {}
        )
        return gate_held_back(
            plain(step), plain(hosts_all), remaining, failures, plain(host), plain(max_fail_percentage), plain(check)
        )


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_gate filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_gate}
