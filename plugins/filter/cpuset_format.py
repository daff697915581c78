# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: cpuset_format
short_description: Write a list of CPU or node ids as a canonical libvirt cpuset
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - Write a set of CPU or node ids in libvirt's cpuset syntax, for C(<vcpu cpuset>), C(<vcpupin cpuset>),
    C(<numatune><memory nodeset>) or the C(cpus) attribute of a guest NUMA cell.
  - The form is canonical, ascending, every run of two or more consecutive ids written as a range, no exclusions and no
    spaces (V(0-3,5,7-8)), so two equal sets always give the same string. Order and duplicates in the input do not
    matter.
  - The reverse filter is P(vnuma.libvirt.cpuset_parse#filter); formatting what it returns gives the canonical form of
    any cpuset.
options:
  _input:
    description:
      - The ids, each an integer from V(0) to V(16383) (libvirt's limit).
      - An empty list gives an empty string.
    type: list
    elements: int
    required: true
seealso:
  - plugin: vnuma.libvirt.cpuset_parse
    plugin_type: filter
  - name: libvirt domain XML, CPU allocation
    description: The cpuset syntax.
    link: https://libvirt.org/formatdomain.html#cpu-allocation
"""

EXAMPLES = r"""
---
- name: Write ids as a cpuset
  ansible.builtin.debug:
    msg: "{{ [8, 0, 1, 2, 3, 5, 2] | vnuma.libvirt.cpuset_format }}"
  # => "0-3,5,8"

- name: Canonical form of a cpuset
  ansible.builtin.debug:
    msg: "{{ '8,0-3,^2' | vnuma.libvirt.cpuset_parse | vnuma.libvirt.cpuset_format }}"
  # => "0-1,3,8"
"""

RETURN = r"""
_value:
  description:
    - The canonical cpuset; an empty string for an empty input.
  type: str
  sample: 0-3,5,8
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, require_cpu_ids

_NAME = "cpuset_format"


def cpuset_format(ids: Any) -> str:
    """``[8, 0, 1, 2, 3]`` -> ``'0-3,8'``."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset

    with filter_errors(_NAME):
        return format_cpuset(require_cpu_ids("the input", ids))


class FilterModule:
    """The vnuma.libvirt.cpuset_format filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: cpuset_format}
