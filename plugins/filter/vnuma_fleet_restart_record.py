# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_restart_record
short_description: The vnuma_fleet role's record of one restart batch
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role restarts guests in batches. This filter makes the report's record of one
    batch from what M(vnuma.libvirt.vnuma_domain) returned for it.
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description: The batch's number, from 1.
    type: int
    required: true
  guests:
    description: The guest names of the batch.
    type: list
    elements: str
    required: true
  result:
    description:
      - What M(vnuma.libvirt.vnuma_domain) returned for the batch (its C(guests) and C(restart_required_guests)).
    type: dict
    required: true
  finished:
    description: When the batch finished, as text.
    type: str
    required: true
seealso:
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
---
- name: Record the batch
  ansible.builtin.set_fact:
    restarts: "{{ restarts + [1 | vnuma.libvirt.vnuma_fleet_restart_record(['db01', 'db02'], batch_result, 'now')] }}"
"""

RETURN = r"""
_value:
  description:
    - "C(batch), C(guests), C(restarted) (the guests vnuma_domain restarted), C(restart_required) (those that still need
      a restart) and C(finished)."
  type: dict
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, plain

_NAME = "vnuma_fleet_restart_record"


def vnuma_fleet_restart_record(number: Any, guests: Any, result: Any, finished: Any) -> dict[str, Any]:
    """A restart batch's number, guests and vnuma_domain result -> the report's record of it."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import restart_record

    with filter_errors(_NAME):
        return restart_record(plain(number), plain(guests), plain(result), plain(finished))


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_restart_record filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_restart_record}
