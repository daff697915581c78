# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The host side of a domain XML as plain sets, for tests of guests that move (the migration hook's)."""

from __future__ import annotations

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml

__all__ = ["host_side"]


def host_side(xml: str) -> tuple[dict[int, frozenset[int]], dict[int, frozenset[int]]]:
    """(guest cell -> its <memnode> host nodes, vCPU -> its <vcpupin> host CPUs) of a domain XML."""
    root = parse_xml(xml, "domain XML", root_tag="domain")
    memnodes = {
        int(node.get("cellid", "")): parse_cpuset(node.get("nodeset", ""), "<memnode nodeset>")
        for node in root.iterfind("numatune/memnode")
    }
    pins = {
        int(pin.get("vcpu", "")): parse_cpuset(pin.get("cpuset", ""), "<vcpupin cpuset>")
        for pin in root.iterfind("cputune/vcpupin")
    }
    return memnodes, pins
