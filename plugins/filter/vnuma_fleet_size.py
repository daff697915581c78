# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_fleet_size
short_description: A size in KiB as the vnuma_fleet role's HTML reports show it
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The P(vnuma.libvirt.vnuma_fleet#role) role's HTML reports show sizes rounded for the eye, as the host diagram
    does, in the largest unit the size reaches with one decimal at most, for example C(1 GiB) for 1049088 KiB, C(1.5
    GiB), C(2 TiB) or C(512 MiB). A negative size keeps its sign.
  - It is the role's internal wiring; its input and output may change with the role.
options:
  _input:
    description: The size in KiB.
    type: int
    required: true
"""

EXAMPLES = r"""
---
- name: Show a node's memory
  ansible.builtin.debug:
    msg: "{{ 1572864 | vnuma.libvirt.vnuma_fleet_size }}"
"""

RETURN = r"""
_value:
  description: The size with its unit, such as C(1.5 GiB).
  type: str
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, plain

_NAME = "vnuma_fleet_size"


def vnuma_fleet_size(kib: Any) -> str:
    """A size in KiB -> the text the role's HTML reports show for it."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import size_text

    with filter_errors(_NAME):
        return size_text(plain(kib))


class FilterModule:
    """The vnuma.libvirt.vnuma_fleet_size filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_fleet_size}
