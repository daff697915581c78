# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vnuma_host_svg
short_description: Draw the host's NUMA nodes and the guests' cells on them as SVG
version_added: 0.1.0
author: vnuma.libvirt contributors (@vnuma)
description:
  - The host diagram of M(vnuma.libvirt.vnuma_info) (its C(diagram) return value) drawn as an SVG image, for HTML
    pages. One box per host node with its CPUs (a square each), memory, free memory and hugepage pools, a bar of the
    guests' memory on the node, and one line per guest cell on the node with its vCPUs and memory there.
  - The bar counts the memory of the guests that run or start with the host (autostart), as the capacity check of
    M(vnuma.libvirt.vnuma_domain) does, and turns red when that is more than the node has. A shut-off guest's memory
    is drawn pale after it and said apart, not counted.
  - A node without CPUs is drawn dashed and marked "memory only". Markers as in the text diagram, explained in the
    legend below the boxes.
  - Large hosts stay readable. The boxes are laid out in rows of up to 4. A box draws at most 78 CPUs and 12 guest
    lines, and at most 32 nodes are drawn. Each cap says how many more there are.
  - The result is an C(<svg>) element without an XML declaration, to be inlined in HTML as it is (not escaped) or
    written to a C(.svg) file. Every text in it is escaped.
options:
  _input:
    description:
      - A registered M(vnuma.libvirt.vnuma_info) result, or any dict with its C(host) and, optionally, its C(guests).
    type: dict
    required: true
  layouts:
    description:
      - Planned layouts (the C(layout) return value of M(vnuma.libvirt.vnuma_domain), or the
        P(vnuma.libvirt.vnuma_fleet#role) role's C(planned.layout) of each guest). Each one is drawn in place of the
        guest it names, as that guest will be placed once its layout is applied.
    type: list
    elements: dict
    default: []
  title:
    description: A title drawn above the boxes (also the image's accessible name).
    type: str
    default: ''
  standalone:
    description:
      - With the SVG namespace (C(xmlns)), as an C(.svg) file needs it. Set it to V(false) for an C(<svg>) inlined in
        an HTML page, which needs none.
    type: bool
    default: true
"""

EXAMPLES = r"""
---
- name: Read the host and its guests
  vnuma.libvirt.vnuma_info:
    uri: qemu:///system
  register: info

- name: Write the host diagram as an SVG file
  ansible.builtin.copy:
    content: "{{ info | vnuma.libvirt.vnuma_host_svg(title='hv01 now') }}"
    dest: /tmp/hv01.svg
    mode: "0644"

- name: Draw the host as it will be once a planned layout is applied
  ansible.builtin.copy:
    content: "{{ info | vnuma.libvirt.vnuma_host_svg(layouts=[planned.layout], title='hv01 planned') }}"
    dest: /tmp/hv01-planned.svg
    mode: "0644"
  vars:
    planned: "{{ lookup('ansible.builtin.file', 'db01-plan.json') | from_json }}"
"""

RETURN = r"""
_value:
  description: The diagram, an C(<svg>) element.
  type: str
"""

from collections.abc import Callable
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import filter_errors, is_omitted, kind, plain

_NAME = "vnuma_host_svg"


def vnuma_host_svg(info: Any, layouts: Any = None, title: Any = "", standalone: Any = True) -> str:
    """vnuma_info's result (``host``, ``guests``), planned layouts in place of their guests -> an ``<svg>`` element."""
    # On call, not at load: ansible-core runs every filter file of ours to find one (docs/architecture.md, Layers).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.from_report import (
        free_figures,
        placement_from_layout,
        placement_from_report,
        topology_from_report,
    )
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.svg import render_svg

    with filter_errors(_NAME):
        info = plain(info)
        if not isinstance(info, dict) or "host" not in info:
            raise SpecError(f"the input must be a vnuma_info result (a dict with its host), got {kind(info)}")
        layouts = [] if is_omitted(layouts) else plain(layouts)
        if not isinstance(layouts, list):
            raise SpecError(f"layouts must be a list of layouts, got {kind(layouts)}")
        title = "" if is_omitted(title) else plain(title)
        if not isinstance(title, str):
            raise SpecError(f"title must be a string, got {kind(title)}")
        standalone = True if is_omitted(standalone) else plain(standalone)
        if not isinstance(standalone, bool):
            raise SpecError(f"standalone must be a boolean, got {kind(standalone)}")
        guests = plain(info.get("guests") or [])
        if not isinstance(guests, list):
            raise SpecError(f"the input's guests must be a list, got {kind(guests)}")
        topology = topology_from_report(info["host"])
        placements = {placement.name: placement for placement in map(placement_from_report, guests)}
        for layout in layouts:
            name = layout.get("guest") if isinstance(layout, dict) else None
            current = placements.get(str(name))
            running = current.binding.running if current is not None else False
            autostart = current.binding.autostart if current is not None else False
            planned = placement_from_layout(topology, layout, running=running, autostart=autostart)
            placements[planned.name] = planned
        free_kib, free_pages = free_figures(info["host"])
        return render_svg(topology, list(placements.values()), free_kib, free_pages, title, standalone)


class FilterModule:
    """The vnuma.libvirt.vnuma_host_svg filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {_NAME: vnuma_host_svg}
