# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_failure
short_description: Why the vnuma_fleet role fails a hypervisor at its end, in one line
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role fails a hypervisor only at its very end, after its report. This filter
    says why in one line, from the hypervisor's C(vnuma_fleet_result). That is the step that failed or the gate that
    held it back, the guests that failed alone, and where its report is. It returns null when the hypervisor did not
    fail.
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description: The hypervisor's C(vnuma_fleet_result).
    type: dict
    required: true
  report_written:
    description: Whether the report was written (false when the report directory could not take it).
    type: bool
    required: true
seealso:
  - module: vnuma.libvirt.vnuma_fleet_report
"""

EXAMPLES = r"""
---
- name: Fail this hypervisor when a step or a guest failed
  ansible.builtin.fail:
    msg: "{{ failure }}"
  vars:
    failure: "{{ vnuma_fleet_result | vnuma.libvirt.vnuma_fleet_failure(true) }}"
  when: failure is not none
"""

RETURN = r"""
_value:
  description:
    - "One line, such as C(hv01: 1 of 5 guests failed (db02), the others went on: guest db02: ... (report:
      /srv/reports/hv01.html)), or null."
  type: str
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, plain

_NAME = "vnuma_fleet_failure"


def vnuma_fleet_failure(result: Any, report_written: Any) -> str | None:
    """A vnuma_fleet_result -> why the role fails the hypervisor, or None."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import fleet_failure

    with filter_errors(_NAME):
        return fleet_failure(plain(result), plain(report_written))


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_failure filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_failure}
