# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_input_problem
short_description: What is wrong with the vnuma_fleet role's inputs that its argument spec cannot check
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role checks, before it reads anything, what C(meta/argument_specs.yml) cannot
    say. The inventory name C(host) must name the hypervisor's report files C(<host>.json) and C(<host>.html) in the
    report directory. It must not be empty, V(.) or V(..), contain C(/) or NUL, be the fleet summary's name V(fleet)
    in any case, or be longer than 240 bytes. C(restart_batch) at least 1, C(shutdown_timeout) from 0 to 86400,
    C(max_fail_percentage) from 0 to 100 and, with C(plan_and_apply) V(together) on several hypervisors, 100.
    C(connect_timeout), C(call_timeout), C(reserved_memory), the C(guests) and C(exclude) entries and the C(spec) as
    M(vnuma.libvirt.vnuma_domain) reads them, named as the role's inputs (a bad C(spec) fails every guest, so it is
    not named after the first). Every override a mapping of options a M(vnuma.libvirt.vnuma_domain) guests entry
    takes.
  - This filter gives the first kind of problem as one line, or null. Every number out of its range is named in that
    line, with its value and its limit.
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description:
      - A dict with the keys C(host) (the hypervisor's inventory name), C(restart_batch), C(shutdown_timeout),
        C(max_fail_percentage), C(plan_and_apply), C(hypervisors) (how many the play has), C(overrides),
        C(connect_timeout), C(call_timeout), C(reserved_memory), C(guests), C(exclude) and C(spec), the role's inputs
        of those names.
    type: dict
    required: true
  entry_options:
    description: The options a M(vnuma.libvirt.vnuma_domain) guests entry takes.
    type: list
    elements: str
    required: true
seealso:
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
---
- name: Check the inputs
  ansible.builtin.assert:
    that: problem is none
    fail_msg: "{{ problem or '' }}"
  vars:
    problem: >-
      {{ {'host': inventory_hostname, 'restart_batch': 1, 'shutdown_timeout': 120, 'max_fail_percentage': 100,
          'plan_and_apply': 'auto', 'hypervisors': 1, 'overrides': {'db01': {'pinning': 'core'}},
          'connect_timeout': 60, 'call_timeout': 120, 'reserved_memory': '2 GiB', 'guests': ['db*'], 'exclude': [],
          'spec': {'mode': 'host'}}
         | vnuma.libvirt.vnuma_fleet_input_problem(['mode', 'pinning', 'state']) }}
"""

RETURN = r"""
_value:
  description:
    - The first kind of problem, such as C(vnuma_fleet_overrides of db01. unknown option(s) vcpus; known ...) or
      C(vnuma_fleet_restart_batch must be at least 1 (got 0)), or null.
  type: str
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, kind, plain

_NAME = "vnuma_fleet_input_problem"
_KEYS = (
    "host",
    "restart_batch",
    "shutdown_timeout",
    "max_fail_percentage",
    "plan_and_apply",
    "hypervisors",
    "overrides",
    "connect_timeout",
    "call_timeout",
    "reserved_memory",
    "guests",
    "exclude",
    "spec",
)


def vnuma_fleet_input_problem(inputs: Any, entry_options: Any) -> str | None:
    """The role's inputs -> their first problem, or None."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import fleet_input_problem

    with filter_errors(_NAME):
        given = plain(inputs)
        if not isinstance(given, dict) or set(given) != set(_KEYS):
            raise SpecError(f"the input must be a dict with the keys {', '.join(_KEYS)}, got {kind(given)}")
        options = plain(entry_options)
        if not isinstance(options, list):
            raise SpecError(f"entry_options must be a list of option names, got {kind(options)}")
        overrides = plain(given["overrides"])
        if isinstance(overrides, dict):
            given["overrides"] = {str(name): plain(value) for name, value in overrides.items()}
        for key in ("guests", "exclude"):
            entries = plain(given[key])
            given[key] = [plain(entry) for entry in entries] if isinstance(entries, list) else entries
        spec = plain(given["spec"])
        given["spec"] = {plain(key): plain(value) for key, value in spec.items()} if isinstance(spec, dict) else spec
        return fleet_input_problem(given, options)


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_input_problem filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_input_problem}
