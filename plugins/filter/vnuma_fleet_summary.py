# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_summary
short_description: The vnuma_fleet role's fleet summary, from every host of the play
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role's fleet summary, one line per host of the play in play order, and the
    totals. A host without a C(vnuma_fleet_result) of its own (unreachable, or failed before the role recorded a
    result) counts as failed.
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description: The names of the play's hosts (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars), where each host's C(vnuma_fleet_result) and C(vnuma_fleet_uri) are read.
    type: dict
    required: true
  generated:
    description: The time stamp written into the summary.
    type: str
    required: true
"""

EXAMPLES = r"""
---
- name: Summarise the fleet from every host of the play
  ansible.builtin.set_fact:
    summary: "{{ ansible_play_hosts_all | vnuma.libvirt.vnuma_fleet_summary(hostvars, now(utc=true).isoformat()) }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The fleet summary, as the role writes it to C(fleet.json) (C(generated), C(hosts), C(totals)).
  type: dict
"""

from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import (
    filter_errors,
    host_variable,
    kind,
    plain,
)

_NAME = "vnuma_fleet_summary"


def _host(hostvars: Any, name: str) -> dict[str, Any]:
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import SUMMARY_KEYS

    # Read two variables of one host, not every variable of every host (hostvars templates on access), and of
    # the result only what the summary reads: its guests' rows are most of it.
    result = host_variable(hostvars, name, "vnuma_fleet_result")
    if isinstance(result, Mapping):
        result = {key: plain(result[key]) for key in SUMMARY_KEYS if key in result}
    return {"host": name, "result": plain(result) or {}, "uri": plain(host_variable(hostvars, name, "vnuma_fleet_uri"))}


def vnuma_fleet_summary(hosts: Any, hostvars: Any, generated: Any) -> dict[str, Any]:
    """The play's host names and hostvars -> the fleet summary (generated, hosts, totals)."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import fleet_summary

    with filter_errors(_NAME):
        names = plain(hosts)
        if not isinstance(names, list):
            raise SpecError(f"the input must be the list of the play's hosts, got {kind(names)}")
        return fleet_summary([_host(hostvars, name) for name in names], plain(generated))


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_summary filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_summary}
