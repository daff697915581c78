# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_verify
short_description: Compare a hypervisor's converted guests with their plan, for the vnuma_fleet role
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role's verification. Every guest whose plan has a layout and did not fail
    must have, in its persistent definition, the alignment and (within the tolerance) the locality its plan
    promised. A guest restarted by the role must also run, run its definition, and have them while running.
  - On libvirt's test driver, which forgets between tasks, the apply call's own read-back stands in for a fresh
    M(vnuma.libvirt.vnuma_info) read.
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description:
      - A dict with the keys C(test_driver), C(plan) (the plan's registered result), C(todo) (the guests still to
        do), C(applied) (the apply's registered result), C(after) (vnuma_info's re-read), C(restarts) (the restart
        batches) and C(locality_tolerance).
      - Instead of C(plan), C(applied) and C(after), the key C(registered) with the role's registered results C(read)
        (the fleet call's, compact), C(applied) (the apply task's) and C(reread) (verify's), from which they are taken.
    type: dict
    required: true
seealso:
  - module: vnuma.libvirt.vnuma_info
"""

EXAMPLES = r"""
---
- name: Compare every converted guest with its plan (see roles/vnuma_fleet/tasks/verify.yml for the inputs)
  ansible.builtin.set_fact:
    verified: "{{ inputs | vnuma.libvirt.vnuma_fleet_verify }}"
"""

RETURN = r"""
_value:
  description: The verification.
  type: dict
  contains:
    by:
      description: What was compared, V(vnuma_info) or V(apply) (the test driver).
      type: str
    note:
      description: How the guests were read, in a sentence.
      type: str
    checked:
      description: The guests found and compared, in plan order.
      type: list
      elements: str
    problems:
      description: One message per difference, each naming the guest.
      type: list
      elements: str
    ok:
      description: Whether there is no problem.
      type: bool
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, module_result_inputs

_NAME = "vnuma_fleet_verify"


def vnuma_fleet_verify(inputs: Any) -> dict[str, Any]:
    """The role's plan, apply and re-read results -> the verification (by, note, checked, problems, ok)."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import MODULE_RESULT_INPUTS, fleet_verify

    with filter_errors(_NAME):
        return fleet_verify(module_result_inputs(inputs, MODULE_RESULT_INPUTS))


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_verify filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_verify}
