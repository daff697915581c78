# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_result
short_description: One hypervisor's vnuma_fleet result from the role's registered results
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role registers the results of its steps and hands them to this filter, which
    builds C(vnuma_fleet_result), the content of the hypervisor's JSON and HTML reports.
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description:
      - A dict with the keys C(host), C(uri), C(check), C(test_driver), C(host_info), C(before), C(requests),
        C(sources), C(plan), C(applied), C(restarts), C(after), C(verify), C(failed_guests), C(failure),
        C(held_back), C(restart_required), C(selection), C(spec), C(use_stored_spec), C(restart_policy),
        C(restart_batch), C(report_dir) and C(generated), as the role's report step sets them.
      - Instead of C(host_info), C(before), C(requests), C(sources), C(plan), C(applied) and C(after), the key
        C(registered) with the role's registered results C(read) (the fleet call's, compact), C(applied) (the apply
        task's) and C(reread) (verify's), from which they are taken.
    type: dict
    required: true
seealso:
  - module: vnuma.libvirt.vnuma_info
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
---
- name: Gather this hypervisor's result (see roles/vnuma_fleet/tasks/report.yml for the inputs)
  ansible.builtin.set_fact:
    vnuma_fleet_result: "{{ inputs | vnuma.libvirt.vnuma_fleet_result }}"
"""

RETURN = r"""
_value:
  description:
    - The hypervisor's result, as the role documents C(vnuma_fleet_result) (host, status, counts, one entry per
      guest with its state before, the plan and the state after).
  type: dict
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, module_result_inputs

_NAME = "vnuma_fleet_result"


def vnuma_fleet_result(inputs: Any) -> dict[str, Any]:
    """The role's registered results -> vnuma_fleet_result."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import MODULE_RESULT_INPUTS, fleet_result

    with filter_errors(_NAME):
        return fleet_result(module_result_inputs(inputs, MODULE_RESULT_INPUTS))


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_result filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_result}
