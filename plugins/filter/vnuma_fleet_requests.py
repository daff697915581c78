# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_requests
short_description: One vnuma_domain guests entry per guest, for the vnuma_fleet role
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role's rule for what each selected guest is asked to get. A guest with a
    spec stored by an earlier run keeps it when O(use_stored_spec) is true, and O(spec) fills only the options it
    leaves unset. A stored spec that cannot be read is kept too, and nothing of O(spec) is sent for it. The guest's
    entry of O(overrides) goes on top.
  - M(vnuma.libvirt.vnuma_domain) then lays the options sent over the guest's stored spec.
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description:
      - The C(guests) that M(vnuma.libvirt.vnuma_info) returned (C(name), C(spec), C(spec_error) are used).
    type: list
    elements: dict
    required: true
  spec:
    description:
      - The spec every guest gets (the role's C(vnuma_fleet_spec)); options set to null are unset.
    type: dict
    required: true
  overrides:
    description:
      - Guest name to the options of a M(vnuma.libvirt.vnuma_domain) guests entry, on top of everything else.
    type: dict
    required: true
  use_stored_spec:
    description:
      - Whether a guest keeps the spec stored in its metadata.
    type: bool
    required: true
seealso:
  - module: vnuma.libvirt.vnuma_info
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
---
- name: Build one vnuma_domain guests entry per guest that vnuma_info read
  ansible.builtin.set_fact:
    requests: "{{ (discovered.guests | vnuma.libvirt.vnuma_fleet_requests({'mode': 'host'}, {}, true)).requests }}"
"""

RETURN = r"""
_value:
  description: The entries and where each guest's spec comes from.
  type: dict
  contains:
    requests:
      description: One M(vnuma.libvirt.vnuma_domain) guests entry per guest, in input order, each with its C(name).
      type: list
      elements: dict
    sources:
      description:
        - Guest name to C(spec) (V(stored), V(stored, unreadable), V(vnuma_fleet_spec, over the stored spec) or
          V(vnuma_fleet_spec)) and C(override) (whether O(overrides) has the guest).
      type: dict
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, plain

_NAME = "vnuma_fleet_requests"


def vnuma_fleet_requests(guests: Any, spec: Any, overrides: Any, use_stored_spec: Any) -> dict[str, Any]:
    """vnuma_info's guests -> the vnuma_domain guests entries and the spec source of each guest."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import fleet_requests

    with filter_errors(_NAME):
        return fleet_requests(plain(guests), plain(spec), plain(overrides), plain(use_stored_spec))


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_requests filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_requests}
