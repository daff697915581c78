# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_guest_failures
short_description: The guests a vnuma_domain result reports as failed
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - M(vnuma.libvirt.vnuma_domain) isolates guests. A guest that cannot be read, parsed, planned, defined or restarted is
    reported in its RV(vnuma.libvirt.vnuma_domain#module:guests) entry with C(error), the other guests go on, and the
    task fails. A task that fails before any guest (a bad option, the connection, a capacity refusal) returns no
    C(guests).
  - This filter takes the registered result of such a task and returns the guests that failed, with their error and
    what was written for them before they failed. An empty list means the task did not fail guest by guest.
  - With C(failed_when), it keeps a play going past failed guests while still failing on anything else (see the
    examples). The P(vnuma.libvirt.vnuma_fleet#role) role works this way.
options:
  _input:
    description:
      - The registered result of a M(vnuma.libvirt.vnuma_domain) task, failed or not. A skipped task gives an empty
        list.
    type: dict
    required: true
  step:
    description:
      - A label copied into every entry as C(step), such as V(plan) or V(apply).
    type: str
seealso:
  - module: vnuma.libvirt.vnuma_domain
"""

EXAMPLES = r"""
---
- name: Convert the guests; fail only when the call failed as a whole
  vnuma.libvirt.vnuma_domain:
    guests: ["db*", "web*"]
  register: converted
  failed_when: converted is failed and not (converted | vnuma.libvirt.vnuma_guest_failures)

- name: Tell which guests failed, and what was written for them
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.error }} (written: {{ item.written | join(', ') or 'nothing' }})"
  loop: "{{ converted | vnuma.libvirt.vnuma_guest_failures(step='apply') }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
_value:
  description:
    - One entry per failed guest, in the order of the result's C(guests).
  type: list
  elements: dict
  contains:
    name:
      description: The guest's name.
      type: str
    step:
      description: O(step), only when it is given.
      type: str
    error:
      description: The guest's error, as the module reported it (it names the guest).
      type: str
    changed:
      description: Whether anything was written for the guest before it failed.
      type: bool
    written:
      description: What the call wrote for the guest before it failed, in order (V(definition), V(started), ...).
      type: list
      elements: str
  sample:
    - name: db02
      step: plan
      error: "guest db02: its stored vnuma spec cannot be read (<vnuma>: mode 'bogus' is not one of host, node, auto)"
      changed: false
      written: []
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, is_omitted, plain

_NAME = "vnuma_guest_failures"


def vnuma_guest_failures(result: Any, step: Any = None) -> list[dict[str, Any]]:
    """A vnuma_domain result -> its failed guests (name, step, error, changed, written)."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import guest_failures

    with filter_errors(_NAME):
        return guest_failures(plain(result), None if is_omitted(step) else plain(step))


class FilterModule:
    """The vnuma.libvirt.vnuma_guest_failures filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_guest_failures}
