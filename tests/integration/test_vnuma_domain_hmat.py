# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Guest HMAT on the real libvirtd and in a real guest kernel.

The hosts are fixtures with HMAT (a CXL host with memory-side caches, the lab's four-node host); this
machine has one node and none.  vnuma_domain plans for the fixture and defines the guest here
(``VIR_DOMAIN_DEFINE_VALIDATE``): libvirt accepts the figures, hands QEMU the planned initiators and
``hmat-lb``/``hmat-cache`` options, and a rerun changes nothing.  Then the definition, with its memory
binding moved to this machine's node (what the guest sees is unchanged), boots the guest image, whose
kernel reports ``/sys/devices/system/node/nodeN/access0/initiators`` and the memory-side caches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
import pytest
from vnuma_domain_support import bind_to_this_host, domain_root, inactive_xml, parse_qemu_argv

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import Guest, GuestFactory

CAPABILITIES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "capabilities"
CXL = CAPABILITIES / "cxl-hmat-cache.xml"
LAB4 = CAPABILITIES / "lab4-hmat.xml"
BOOT_TIMEOUT = 120.0

# (host fixture, module options, guest vCPUs, guest memory MiB)
CASES = {
    # The host's figures: CXL nodes 2 and 3 (no CPUs, a memory-side cache each) behind sockets 0 and 1.
    "cxl-host": (CXL, {"mode": "node", "nodeset": "0-3", "cpuless_cells": True, "hmat": "host"}, 4, 1024),
    # Figures from the lab's distances for its CPU-less node 3 (nearest CPU node 2).
    "lab4-synthesize": (LAB4, {"mode": "node", "nodeset": "1-3", "cpuless_cells": True, "hmat": "synthesize"}, 4, 768),
}


def planned(layout: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {cell["id"]: cell for cell in layout["hmat"]["cells"]}


def configure(make_guest: GuestFactory, case: str) -> tuple[Guest, dict[str, Any]]:
    """A flat guest, planned for the case's host by vnuma_domain: check mode first, then for real, then a rerun."""
    host, options, vcpus, memory_mib = CASES[case]
    guest = make_guest(f"hmat-{case}", vcpus=vcpus, memory_mib=memory_mib, start=False)
    args = {"name": guest.name, "host_capabilities": str(host), "pinning": "none", **options}
    before = guest.inactive_xml()
    check = run_module(args, check_mode=True, diff=True)
    assert check["changed"] is True
    assert guest.inactive_xml() == before
    # Every figure is in the change list ("path: before -> after").
    figures = [change for change in check["changes"] if change.startswith("cpu/numa/interconnects/")]
    assert len(figures) == 4 * len(check["layout"]["cells"]), check["changes"]
    result = run_module(args)
    assert result["changed"] is True and result["changes"] == check["changes"]
    # libvirt rewrites what it is given; the collection compares values: nothing left to do.
    assert run_module(args)["changed"] is False
    return guest, result["layout"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_libvirt_takes_the_planned_hmat_and_the_guest_kernel_shows_it(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str, case: str
) -> None:
    guest, layout = configure(make_guest, case)
    figures = planned(layout)
    cpuless = [cell["id"] for cell in layout["cells"] if not cell["vcpus"]]
    assert cpuless, "every case has a cell without vCPUs"
    for cell in cpuless:
        assert figures[cell]["initiator"] != cell

    # What libvirt kept: one read and one write figure per cell, from the planned initiator.
    root = domain_root(inactive_xml(qemu_conn, guest.name))
    kept = {
        (entry.tag, int(entry.get("target")), entry.get("type")): (int(entry.get("initiator")), int(entry.get("value")))
        for entry in root.iterfind("cpu/numa/interconnects/*")
    }
    expected = {}
    for cell, figure in figures.items():
        for kind, unit in (("latency", "ns"), ("bandwidth", "kib")):
            for access in ("read", "write"):
                expected[(kind, cell, access)] = (figure["initiator"], figure[f"{access}_{kind}_{unit}"])
    assert kept == expected

    # What QEMU is given: an initiator per node, the figures, the caches.
    here = set(parse_capabilities(host_caps).node_ids)
    bound, moved = bind_to_this_host(inactive_xml(qemu_conn, guest.name), here)
    assert moved
    qemu = parse_qemu_argv(qemu_conn.domainXMLToNative("qemu-argv", bound, 0))
    assert qemu.initiators == {cell: figure["initiator"] for cell, figure in figures.items()}
    for cell, figure in figures.items():
        latency = (figure["initiator"], cell, "memory", "read-latency")
        bandwidth = (figure["initiator"], cell, "memory", "write-bandwidth")
        assert qemu.hmat_lb[latency] == str(figure["read_latency_ns"])
        assert qemu.hmat_lb[bandwidth] == f"{figure['write_bandwidth_kib']}K"
    caches = {(cell, cache["level"]) for cell, figure in figures.items() for cache in figure["caches"]}
    assert set(qemu.hmat_cache) == caches

    # The guest kernel: each node's access0 initiator and figures (latency in ns, bandwidth in MiB/s).
    guest.dom.undefine()
    guest.dom = qemu_conn.defineXMLFlags(bound, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    guest.start()
    report = guest.report(BOOT_TIMEOUT)
    assert sorted(report.access) == sorted(figures), report.access
    for cell, figure in figures.items():
        seen = report.access[cell]
        assert seen.initiators == {figure["initiator"]}, (cell, seen)
        assert (seen.read_latency, seen.write_latency) == (figure["read_latency_ns"], figure["write_latency_ns"])
        assert (seen.read_bandwidth, seen.write_bandwidth) == (
            figure["read_bandwidth_kib"] // 1024,
            figure["write_bandwidth_kib"] // 1024,
        )
        assert [(cache.level, cache.size, cache.line) for cache in report.caches.get(cell, ())] == [
            (cache["level"], cache["size_kib"] * 1024, cache["line_bytes"]) for cache in figure["caches"]
        ]
    # The CPU-less cells are the slower tier.
    for cell in cpuless:
        initiator = figures[cell]["initiator"]
        assert report.access[cell].read_latency > report.access[initiator].read_latency
        assert report.access[cell].read_bandwidth < report.access[initiator].read_bandwidth


def test_hmat_host_is_refused_for_a_host_without_it(make_guest: GuestFactory) -> None:
    guest = make_guest("hmat-refused", vcpus=4, memory_mib=1024, start=False)
    before = guest.inactive_xml()
    args = {"name": guest.name, "host_capabilities": str(CAPABILITIES / "seed-4node-ring.xml"), "hmat": "host"}
    failed = fail_module(args)
    assert "reports no HMAT latency or bandwidth for host node 0" in failed["msg"]
    assert "use hmat synthesize or none" in failed["msg"]
    assert guest.inactive_xml() == before
