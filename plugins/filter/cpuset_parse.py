# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: cpuset_parse
short_description: Parse a libvirt cpuset or nodeset into a sorted list of ids
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - Read a set of CPU or node ids written in libvirt's cpuset syntax, as found in C(<vcpu cpuset>), C(<vcpupin cpuset>),
    C(<numatune><memory nodeset>) or the C(cpus) attribute of a guest NUMA cell.
  - The syntax is a comma-separated list of items, each a number (V(8)), an inclusive range (V(0-3)) or an exclusion
    (V(^2)). Items apply from left to right as libvirt applies them, so V(1-4,^3) is V(1,2,4) while V(^3,1-4) is V(1-4).
  - The result is the set as a list of integers in ascending order, without duplicates; compare these lists rather than
    the strings, which may spell one set in several ways.
  - The reverse filter is P(vnuma.libvirt.cpuset_format#filter).
options:
  _input:
    description:
      - The cpuset, for example V(0-3,^2,8).
      - A single id may also be given as an integer.
    type: raw
    required: true
  allow_empty:
    description:
      - Accept a cpuset that selects nothing (an empty string, or exclusions only) and return an empty list.
      - By default such a cpuset is an error, since a set that selects nothing is almost always a mistake. The
        C(vcpus) of a guest cell without vCPUs in the result of P(vnuma.libvirt.vnuma_layout#filter) is empty.
    type: bool
    default: false
seealso:
  - plugin: vnuma.libvirt.cpuset_format
    plugin_type: filter
  - name: libvirt domain XML, CPU allocation
    description: The cpuset syntax.
    link: https://libvirt.org/formatdomain.html#cpu-allocation
"""

EXAMPLES = r"""
---
- name: Expand a cpuset
  ansible.builtin.debug:
    msg: "{{ '0-3,^2,8' | vnuma.libvirt.cpuset_parse }}"
  # => [0, 1, 3, 8]

- name: Count the vCPUs of every guest cell of a computed layout
  ansible.builtin.debug:
    msg: >-
      {{ layout.cells | map(attribute='vcpus') | map('vnuma.libvirt.cpuset_parse', allow_empty=true) | map('length') }}

- name: Compare two cpusets as sets, not as strings
  ansible.builtin.assert:
    that:
      - ('3,0-2' | vnuma.libvirt.cpuset_parse) == ('0-4,^4' | vnuma.libvirt.cpuset_parse)
"""

RETURN = r"""
_value:
  description:
    - The ids of the set, ascending, each once.
  type: list
  elements: int
  sample: [0, 1, 3, 8]
"""

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, kind

_NAME = "cpuset_parse"


def cpuset_parse(cpuset: Any, allow_empty: bool = False) -> list[int]:
    """``'0-3,^2,8'`` -> ``[0, 1, 3, 8]``."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import MAX_CPU_ID, parse_cpuset
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import shown

    if isinstance(cpuset, int) and not isinstance(cpuset, bool):
        if not 0 <= cpuset <= MAX_CPU_ID:
            # Checked as a number: str() of a huge int is slow, and Python refuses past 4300 digits.
            raise AnsibleFilterError(f"vnuma.libvirt.{_NAME}: the input {shown(cpuset)} is outside 0-{MAX_CPU_ID}")
        cpuset = str(cpuset)
    if not isinstance(cpuset, str):
        raise AnsibleFilterError(f"vnuma.libvirt.{_NAME}: the input must be a cpuset string, got {kind(cpuset)}")
    if not isinstance(allow_empty, bool):
        raise AnsibleFilterError(f"vnuma.libvirt.{_NAME}: allow_empty must be true or false, got {kind(allow_empty)}")
    with filter_errors(_NAME):
        return sorted(parse_cpuset(cpuset, "cpuset", allow_empty=allow_empty))


class FilterModule:
    """The vnuma.libvirt.cpuset_parse filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: cpuset_parse}
