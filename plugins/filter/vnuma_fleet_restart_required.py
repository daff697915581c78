# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_restart_required
short_description: The guests whose new layout waits for a boot after the vnuma_fleet role's apply step
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role exports the running guests whose new layout waits for their next boot
    as C(vnuma_fleet_restart_required). This filter lists them from what the apply step's
    M(vnuma.libvirt.vnuma_domain) call returned and the guests that failed.
  - A guest that failed at apply after its new definition was written is listed, since it runs its old layout until
    its next boot. One that failed before its definition was written is not.
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description:
      - What M(vnuma.libvirt.vnuma_domain) returned for the apply step (its C(restart_required_guests)).
    type: dict
    required: true
  failed_guests:
    description:
      - The guests that failed, each a dict with its C(name) and what was C(written) for it (the entries of
        P(vnuma.libvirt.vnuma_guest_failures#filter)).
    type: list
    elements: dict
    required: true
  held_back:
    description:
      - In check mode, whether a step failed or the apply's gate would hold the hypervisor back; then the real run
        would write nothing, and no guest is listed.
    type: bool
    default: false
seealso:
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
---
- name: List the running guests that wait for a restart
  ansible.builtin.set_fact:
    restart_required: "{{ applied | vnuma.libvirt.vnuma_fleet_restart_required(failed_guests) }}"
"""

RETURN = r"""
_value:
  description: The names of the guests, in the order vnuma_domain listed them.
  type: list
  elements: str
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, plain

_NAME = "vnuma_fleet_restart_required"


def vnuma_fleet_restart_required(result: Any, failed_guests: Any, held_back: Any = False) -> list[str]:
    """The apply step's vnuma_domain result and the failed guests -> the guests whose new layout waits for a boot."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import restart_waiting

    with filter_errors(_NAME):
        return restart_waiting(plain(result), plain(failed_guests), plain(held_back))


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_restart_required filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_restart_required}
