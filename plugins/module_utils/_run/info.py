# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The vnuma_info module's work, from its parameters to its result, without Ansible.  Read-only.

For each selected guest the report says where its cells live on the host and how local their
memory is (``_core.placement``).  A running guest is judged by its live definition, since that is what
runs; ``pending`` says whether its persistent definition (what the next boot runs) differs in the
parts the collection owns, and ``defined_alignment`` gives the alignment of that definition.  A
guest that is not running is judged by its persistent definition.  One with a managed save image
(``virsh managedsave``) is too (``source: inactive``), but its next start resumes the image, not the
definition: ``pending`` compares the image's XML with the definition as a running guest's is.

Free memory and free hugepages come from the connection.  With ``host_capabilities`` they are
reported only when the connection's host has the same node ids (the figures would otherwise be
another host's); elsewhere they are null.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import (
    HostPciDevice,
    PciAddress,
    device_report,
    devices_by_node,
    with_host_nodes,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, TopologyError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.names import check_entries, select
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import GuestPlacement, place_guest
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import GuestEntry, LibvirtHost
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.diagram import render_diagram
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.host import host_report
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import RunningState
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import binding_from_domain, dedicated_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import (
    parse_capabilities,
    read_host_capabilities,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.nodedev import guest_pci_devices, host_pci_devices
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import read_stored_spec

__all__ = ["GUEST_STATES", "run_info", "select_guests"]

GUEST_STATES = ("running", "shutoff", "all")


def select_guests(entries: Sequence[GuestEntry], params: Mapping[str, Any]) -> tuple[list[GuestEntry], list[str]]:
    """The listed guests that ``guests`` selects and ``exclude`` does not, in ``guest_state``; and a warning
    for each entry of ``guests`` that names no defined guest (``*`` aside: it misses only on a host without guests).

    The selection rule is ``_core.names``' (an exact name is that guest, anything else a shell pattern),
    the same as vnuma_domain's; with ``exact_names`` every entry is a name.
    """
    patterns = params.get("guests")
    if patterns is None:
        patterns = ["*"]
    excludes = params.get("exclude") or []
    state = params.get("guest_state") or "all"
    if state not in GUEST_STATES:
        raise SpecError(f"guest_state {state!r} is not one of {', '.join(GUEST_STATES)}")
    check_entries("guests", patterns)
    check_entries("exclude", excludes)
    names, unmatched = select([entry.name for entry in entries], patterns, excludes, bool(params.get("exact_names")))
    chosen = set(names)
    warnings = [
        f"guests[{index}] {entry!r} matches no defined guest"
        for index, entry in enumerate(patterns)
        if entry in unmatched and entry != "*"
    ]
    selected = [
        entry for entry in entries if entry.name in chosen and (state == "all" or entry.active == (state == "running"))
    ]
    return selected, warnings


class CellAlignment(TypedDict):
    """One guest cell in ``guests[].alignment.cells`` (vnuma_info's RETURN)."""

    id: int
    aligned: bool
    locality: float
    cpu_nodes: str
    memory_nodes: str | None


class Alignment(TypedDict):
    """``guests[].alignment`` and ``guests[].defined_alignment``."""

    aligned: bool
    locality: float
    cells: list[CellAlignment]


class GuestLayout(TypedDict):
    """``guests[].layout``."""

    cells: list[dict[str, Any]]
    numa: bool
    pinning: bool
    dimm_share_kib: dict[str, int]


class GuestReport(TypedDict):
    """One entry of vnuma_info's ``guests``."""

    name: str
    state: str
    running: bool
    autostart: bool
    vcpus: int
    current_vcpus: int
    memory_kib: int | None
    spec: dict[str, Any] | None
    spec_error: str | None
    source: str
    layout: GuestLayout
    alignment: Alignment
    defined_alignment: Alignment
    pending: bool
    pending_changes: list[str]
    dedicated_cpus: str | None
    devices: list[dict[str, Any]]


@dataclass(frozen=True)
class _GuestInfo:
    report: GuestReport
    placement: GuestPlacement


def _alignment(placement: GuestPlacement) -> Alignment:
    return {
        "aligned": placement.aligned,
        "locality": round(placement.locality, 4),
        "cells": [
            {
                "id": cell.id,
                "aligned": cell.aligned,
                "locality": round(cell.locality, 4),
                "cpu_nodes": format_cpuset(cell.cpu_nodes),
                "memory_nodes": format_cpuset(cell.memory_nodes) if cell.bound else None,
            }
            for cell in placement.cells
        ],
    }


def _guest(
    entry: GuestEntry,
    topology: HostTopology,
    known: Mapping[str, str],
    host_pci: Mapping[PciAddress, HostPciDevice],
    host_cpus: Collection[int],
) -> _GuestInfo | None:
    """One guest's report, or None when it was undefined since the listing.

    ``known`` holds definitions the caller read in this call (by name): those are not read again;
    ``host_pci`` the connection's PCI devices, which give the guest's passthrough devices their nodes;
    ``host_cpus`` the online CPUs of the host the guest runs on (its default affinity, for ``pending``).
    """
    name = entry.name
    defined_xml = known[name] if name in known else entry.guest.xml_if_defined()
    if defined_xml is None:
        return None
    defined_root = parse_xml(defined_xml, f"the definition of guest {name}", root_tag="domain")
    defined = DomainNuma.from_domain(defined_root)
    spec_error = None
    try:
        spec = read_stored_spec(defined_root)
        # The spec decides whether single-CPU pins are dedicated: read as vnuma_domain reads them.
        held: str | None = format_cpuset(dedicated_cpus(topology, defined_root, name))
    except VnumaError as error:
        # A broken stored spec is reported, not fatal: the report is what shows it.
        spec, held, spec_error = None, None, str(error.naming(name))
    # What runs, or what the next start resumes instead of booting the definition (a managed save image's XML).
    live_xml = entry.guest.xml_if_defined(live=True) if entry.active else None
    state = RunningState.read(entry.guest, name, live_xml, entry.saved and not entry.active)
    current, source, current_root = defined, "inactive", defined_root
    if state.live is not None and state.live_root is not None:
        current, source, current_root = state.live, "live", state.live_root
    binding = binding_from_domain(current, name, running=entry.active, autostart=entry.autostart)
    placement = place_guest(topology, binding)
    pending = state.pending(defined, host_cpus)
    if pending and source == "live":
        defined_binding = binding_from_domain(defined, name, running=entry.active, autostart=entry.autostart)
        defined_placement = place_guest(topology, defined_binding)
    else:
        defined_placement = placement
    vcpu = current.vcpu
    # A device is local to a cell whose vCPUs run on its node (a cell without vCPUs: whose memory is there).
    cells = [
        (cell.id, cell.cpu_nodes if cell.vcpus else cell.memory_nodes, bool(cell.vcpus)) for cell in placement.cells
    ]
    devices = with_host_nodes(guest_pci_devices(current_root), host_pci)
    report: GuestReport = {
        "name": name,
        "state": entry.state,
        "running": entry.active,
        "autostart": entry.autostart,
        "vcpus": vcpu.count if vcpu is not None else 1,
        "current_vcpus": (vcpu.current or vcpu.count) if vcpu is not None else 1,
        "memory_kib": current.memory_kib,
        "spec": None if spec is None else spec.to_mapping(),
        "spec_error": spec_error,
        "source": source,
        "layout": {
            "cells": [cell.to_dict() for cell in placement.cells],
            "numa": current.numa is not None and bool(current.numa.cells),
            "pinning": binding.pinned,
            # Hot-plugged DIMMs, beside the cells: what the text diagram's dimm lines show, for the SVG's too.
            "dimm_share_kib": {str(node): kib for node, kib in sorted(placement.dimm_share.items())},
        },
        "alignment": _alignment(placement),
        "defined_alignment": _alignment(defined_placement),
        "pending": bool(pending),
        "pending_changes": [str(change) for change in pending],
        "dedicated_cpus": held,
        "devices": [device_report(device, cells) for device in devices],
    }
    return _GuestInfo(report, placement)


def _host_figures(
    host: LibvirtHost, topology: HostTopology, own: HostTopology | None
) -> tuple[dict[int, int] | None, dict[int, dict[int, int]] | None]:
    """Free memory and free hugepages of the connection's host, when they describe ``topology``'s nodes."""
    if own is None or own.node_ids != topology.node_ids:
        return None, None
    free_kib = host.free_memory_kib(own.node_ids)
    # The connection's own pool sizes: a size its kernel has no pool of cannot be asked about.
    free_pages = host.free_pages({node.id: node.hugepage_sizes for node in own.nodes})
    return free_kib, free_pages


def run_info(params: Mapping[str, Any], known: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The host's topology and the selected guests' layouts and alignment; the module's result dict.

    ``known``: inactive definitions by guest name that the caller read in the same call (vnuma_domain's
    fleet option, which reads every guest once); the others are read here.
    """
    with LibvirtHost.from_params(params) as host:
        own_xml = host.capabilities_xml()
        caps = params.get("host_capabilities")
        if caps:
            topology = parse_capabilities(read_host_capabilities(caps))
            try:
                own: HostTopology | None = parse_capabilities(own_xml)
            except TopologyError:
                # A connection without NUMA cells (a test driver file) has no figures to give.
                own = None
        else:
            topology = own = parse_capabilities(own_xml)
        free_kib, free_pages = _host_figures(host, topology, own)
        # The connection's PCI devices, read once for the host report and every guest's devices.
        host_pci = host_pci_devices(host.pci_device_xmls())
        selected, warnings = select_guests(host.listing(), params)
        # A running guest's default affinity is the connection's host's CPUs (host_capabilities may be another's).
        host_cpus = (own if own is not None else topology).cpu_node
        infos = [_guest(entry, topology, known or {}, host_pci, host_cpus) for entry in selected]
    guests = [info for info in infos if info is not None]
    placements = [info.placement for info in guests]
    lines = render_diagram(
        topology,
        placements,
        free_kib=free_kib,
        free_pages=free_pages,
        states={info.report["name"]: info.report["state"] for info in guests},
    )
    return {
        "changed": False,
        "host": {
            **host_report(topology, free_kib, free_pages),
            "pci_devices": devices_by_node(list(host_pci.values())),
        },
        "guests": [info.report for info in guests],
        "guest_count": len(guests),
        "aligned_count": sum(1 for info in guests if info.placement.aligned),
        "diagram": "\n".join(lines),
        "diagram_lines": lines,
        **({"warnings": warnings} if warnings else {}),
    }
