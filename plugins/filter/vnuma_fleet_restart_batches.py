# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_restart_batches
short_description: The vnuma_fleet role's restart batches
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - With C(vnuma_fleet_restart=if_needed) the P(vnuma.libvirt.vnuma_fleet#role) role restarts the guests that wait for
    a restart in batches, one M(vnuma.libvirt.vnuma_domain) call per batch. This filter makes the batches, in the
    order of the guests' list, C(vnuma_fleet_restart_batch) guests each (the last one may be smaller).
  - A guest that failed is never restarted, although it is listed as waiting when it may run its old layout.
  - There is no batch with C(vnuma_fleet_restart=never), nor when the restarts' gate held the hypervisor back.
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description: The guests that wait for a restart (P(vnuma.libvirt.vnuma_fleet_restart_required#filter)).
    type: list
    elements: str
    required: true
  failed_guests:
    description:
      - The guests that failed, each a dict with its C(name) (the entries of
        P(vnuma.libvirt.vnuma_guest_failures#filter)).
    type: list
    elements: dict
    required: true
  policy:
    description: C(vnuma_fleet_restart).
    type: str
    choices: [never, if_needed]
    required: true
  size:
    description: C(vnuma_fleet_restart_batch), the guests of a batch; at least 1.
    type: int
    required: true
  held_back:
    description: Whether a gate held the hypervisor back.
    type: bool
    default: false
seealso:
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
---
- name: Restart the guests two at a time
  ansible.builtin.include_tasks: restart_batch.yml
  loop: "{{ restart_required | vnuma.libvirt.vnuma_fleet_restart_batches(failed_guests, 'if_needed', 2) }}"
  loop_control:
    loop_var: batch
"""

RETURN = r"""
_value:
  description: The batches, each a list of guest names.
  type: list
  elements: list
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, plain

_NAME = "vnuma_fleet_restart_batches"


def vnuma_fleet_restart_batches(
    waiting: Any, failed_guests: Any, policy: Any, size: Any, held_back: Any = False
) -> list[list[str]]:
    """The guests that wait for a restart, the failed guests and the policy -> the restart batches."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import restart_batches

    with filter_errors(_NAME):
        return restart_batches(plain(waiting), plain(failed_guests), plain(policy), plain(size), plain(held_back))


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_restart_batches filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_restart_batches}
