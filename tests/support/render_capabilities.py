# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A parsed host written back as capabilities XML, for tests that edit a host and parse it again.

``render_capabilities(parse_capabilities(xml))`` is libvirt's layout of what the collection read, so
that ``parse_capabilities`` reads it back to the same ``HostTopology``.  (``hostgen.py`` builds hosts
from a shape instead, without the collection's models.)
"""

from __future__ import annotations

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostCpu, HostNode, HostTopology

__all__ = ["render_capabilities"]


def _render_cpu(cpu: HostCpu) -> str:
    attrs = [f"id='{cpu.id}'"]
    for name, value in (("socket_id", cpu.socket_id), ("die_id", cpu.die_id), ("core_id", cpu.core_id)):
        if value is not None:
            attrs.append(f"{name}='{value}'")
    if cpu.siblings:
        attrs.append(f"siblings='{format_cpuset(cpu.siblings)}'")
    return f"            <cpu {' '.join(attrs)}/>"


def _render_cell(node: HostNode) -> list[str]:
    lines = [f"        <cell id='{node.id}'>"]
    # As libvirt does: no <memory> for a node without memory.
    if node.memory_kib:
        lines.append(f"          <memory unit='KiB'>{node.memory_kib}</memory>")
    lines.extend(f"          <pages unit='KiB' size='{size}'>{count}</pages>" for size, count in node.pages)
    if node.distances:
        lines.append("          <distances>")
        lines.extend(f"            <sibling id='{other}' value='{value}'/>" for other, value in node.distances)
        lines.append("          </distances>")
    for cache in node.caches:
        attrs = f"level='{cache.level}'"
        for name, value in (("associativity", cache.associativity), ("policy", cache.policy)):
            if value is not None:
                attrs += f" {name}='{value}'"
        lines.append(f"          <cache {attrs}>")
        lines.append(f"            <size value='{cache.size_kib}' unit='KiB'/>")
        if cache.line_bytes:
            lines.append(f"            <line value='{cache.line_bytes}' unit='B'/>")
        lines.append("          </cache>")
    if node.cpus:
        lines.append(f"          <cpus num='{len(node.cpus)}'>")
        lines.extend(_render_cpu(cpu) for cpu in node.cpus)
        lines.append("          </cpus>")
    else:
        lines.append("          <cpus num='0'/>")
    lines.append("        </cell>")
    return lines


def render_capabilities(topology: HostTopology) -> str:
    """Capabilities XML, in libvirt's layout, describing ``topology``: ``parse_capabilities`` reads it back."""
    lines = ["<capabilities>", "  <host>", "    <cpu>"]
    if topology.arch is not None:
        lines.append(f"      <arch>{topology.arch}</arch>")
    lines.extend(f"      <pages unit='KiB' size='{size}'/>" for size in topology.page_sizes_kib)
    lines.extend(["    </cpu>", "    <topology>", f"      <cells num='{len(topology.nodes)}'>"])
    for node in topology.nodes:
        lines.extend(_render_cell(node))
    lines.append("      </cells>")
    if topology.interconnects:
        lines.append("      <interconnects>")
        for entry in topology.interconnects:
            cache = f" cache='{entry.cache}'" if entry.cache else ""
            unit = " unit='KiB'" if entry.kind == "bandwidth" else ""
            lines.append(
                f"        <{entry.kind} initiator='{entry.initiator}' target='{entry.target}'{cache} "
                f"type='{entry.access}' value='{entry.value}'{unit}/>"
            )
        lines.append("      </interconnects>")
    lines.append("    </topology>")
    if topology.cache_banks:
        lines.append("    <cache>")
        lines.extend(
            f"      <bank id='{bank.id}' level='{bank.level}' type='{bank.kind}' size='{bank.size_kib}' unit='KiB' "
            f"cpus='{format_cpuset(bank.cpus)}'/>"
            for bank in topology.cache_banks
        )
        lines.append("    </cache>")
    lines.extend(["  </host>", "</capabilities>", ""])
    return "\n".join(lines)
