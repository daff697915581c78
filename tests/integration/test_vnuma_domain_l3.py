# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""L3-aware cells on the real libvirtd and in a real guest kernel (docs/cache-locality.md).

The guest kernel reports, for every CPU, the CPUs sharing its L3 (``cache/index*/shared_cpu_list`` of
level 3) and any warning that a CPU's LLC sibling lies in another node (``topology_sane()``: "CPU #2's
llc-sibling CPU #0 is not on the same node!").  A guest of two or more cells must have each CPU's L3
inside its node and no such warning.

This machine has one node of two CPUs and one L3.  The host given to vnuma_domain is its own
capabilities with that L3 reported as two banks, one per CPU: two CCXs in one node, the shape on which
the cells follow the banks, and on which vnuma_domain writes ``<cpu><cache level='3' mode='emulate'/>``
(QEMU's ``l3-cache=on``: one guest L3 per die).  Every binding and pin is to this machine's node and
CPUs, so the guest runs as planned.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import libvirt
import pytest
from vnuma_domain_support import domain_root, inactive_xml

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import GuestFactory, GuestReport

BOOT_TIMEOUT = 180.0
QEMU_NAMESPACE = "http://libvirt.org/schemas/domain/qemu/1.0"


def two_bank_host(host_caps: str, path: Path) -> tuple[Path, list[int]]:
    """This machine's capabilities with one L3 bank per online CPU of its first node; the file and the CPUs."""
    topology = parse_capabilities(host_caps)
    cpus = list(topology.node(topology.cpu_node_ids[0]).usable_cpus)
    if len(cpus) < 2:
        pytest.fail(f"this test needs a host node with two CPUs or more, the host has {cpus}", pytrace=False)
    banks = "".join(
        f"<bank id='{index}' level='3' type='both' size='16' unit='MiB' cpus='{cpu}'/>"
        for index, cpu in enumerate(cpus[:2])
    )
    text = re.sub(r"\s*<cache>.*?</cache>", "", host_caps, flags=re.DOTALL)
    path.write_text(text.replace("</topology>", f"</topology>\n    <cache>{banks}</cache>", 1), encoding="utf-8")
    return path, cpus[:2]


def check_l3_inside_nodes(report: GuestReport, cells: int) -> None:
    """Every CPU's L3 lies inside its own node, and the kernel saw no sibling across nodes."""
    assert len(report.nodes) == cells, report.nodes
    assert report.sibling_warnings == (), report.sibling_warnings
    for cpu, where in sorted(report.cpus.items()):
        node_cpus = report.nodes[where.node].cpus
        assert where.l3, f"guest CPU {cpu} reports no L3"
        assert cpu in where.l3 and where.l3 <= node_cpus, (
            f"guest CPU {cpu} (node {where.node} {sorted(node_cpus)}): L3 {where.l3}"
        )


def configure(make_guest: GuestFactory, args: dict[str, Any], vcpus: int, **template: str) -> tuple[Any, dict]:
    """A flat guest configured by vnuma_domain; the rerun changes nothing.  The guest and the module's layout."""
    guest = make_guest("h6-l3", vcpus=vcpus, memory_mib=512, start=False, **template)
    result = run_module({"name": guest.name, **args})
    assert result["changed"] is True
    assert run_module({"name": guest.name, **args})["changed"] is False
    return guest, result["layout"]


def test_cells_on_l3_banks_boot_with_each_l3_inside_its_node(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str, tmp_path: Path
) -> None:
    """Two cells on a node of two L3 banks: each floats over its own bank, one guest socket each, and the guest's
    L3 is QEMU's emulated one (the collection's <cpu><cache>)."""
    caps, banks = two_bank_host(host_caps, tmp_path / "two-banks.xml")
    guest, layout = configure(make_guest, {"host_capabilities": str(caps), "mode": "node", "cells": 2}, vcpus=4)
    assert [cell["pinning"] for cell in layout["cells"]] == [str(cpu) for cpu in banks]
    assert layout["topology"] == {"sockets": 2, "dies": 1, "cores": 2, "threads": 1}
    # What libvirt kept (defined with VIR_DOMAIN_DEFINE_VALIDATE): each vCPU pinned to its cell's bank.
    root = domain_root(inactive_xml(qemu_conn, guest.name))
    pins = {int(pin.get("vcpu")): pin.get("cpuset") for pin in root.iterfind("cputune/vcpupin")}
    assert pins == {0: str(banks[0]), 1: str(banks[0]), 2: str(banks[1]), 3: str(banks[1])}
    assert [cache.attrib for cache in root.iterfind("cpu/cache")] == [{"level": "3", "mode": "emulate"}]
    # What QEMU is told: its own L3 per die, not the host's (the maximum CPU model would pass that through).
    argv = qemu_conn.domainXMLToNative("qemu-argv", inactive_xml(qemu_conn, guest.name), 0)
    cpu_arg = argv.split(" -cpu ", 1)[1].split(" ", 1)[0]
    assert "l3-cache=on" in cpu_arg.split(",") and "host-cache-info=off" in cpu_arg.split(","), cpu_arg

    guest.start()
    report = guest.report(BOOT_TIMEOUT)
    check_l3_inside_nodes(report, 2)
    # The guest's L3 domains are its cells: the two CPUs of each node share one.
    assert {format_cpuset(where.l3) for where in report.cpus.values()} == {
        format_cpuset(node.cpus) for node in report.nodes.values()
    }


def host_vendor_xml() -> str:
    """QEMU arguments that give TCG's maximum CPU this machine's vendor, as KVM's host-passthrough has it.

    TCG's maximum CPU says AuthenticAMD whatever the host.  With the host's caches passed through, a guest of
    the AMD flavour on an Intel host reads AMD's cache leaves (0x80000005/6), which an Intel CPU leaves
    empty: its kernel finds no cache at all, not even an L1 (seen on an Intel Xeon host, QEMU 7.2).  Under
    KVM the vendor is always the host's, so that mix never happens there.
    """
    vendors = set(re.findall(r"^vendor_id\s*:\s*(\S+)$", Path("/proc/cpuinfo").read_text(), flags=re.MULTILINE))
    if len(vendors) != 1 or not vendors <= {"GenuineIntel", "AuthenticAMD"}:
        pytest.fail(f"this test needs an Intel or AMD machine, /proc/cpuinfo says {sorted(vendors)}", pytrace=False)
    (cpuid_vendor,) = vendors
    return (
        f"<qemu:commandline xmlns:qemu='{QEMU_NAMESPACE}'><qemu:arg value='-global'/>"
        f"<qemu:arg value='max-x86_64-cpu.vendor={cpuid_vendor}'/></qemu:commandline>"
    )


def test_three_cells_with_the_hosts_cache_passed_through(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    """The user's <cache mode='passthrough'/> stays; QEMU 7.1+ caps the host's L3 sharing at the guest
    socket, and a socket lies in one cell: the guest's L3 stays inside each of three cells."""
    cpu_xml = "<cpu mode='maximum' check='none'><cache mode='passthrough'/></cpu>"
    guest, layout = configure(
        make_guest,
        {"mode": "node", "cells": 3, "pinning": "none"},
        vcpus=6,
        cpu_xml=cpu_xml,
        extra_xml=host_vendor_xml(),
    )
    assert layout["topology"]["sockets"] == 3
    root = domain_root(inactive_xml(qemu_conn, guest.name))
    # Kept as the user wrote it: the collection adds no <cache> where one is (nor here, with no L3 banks).
    assert [cache.attrib for cache in root.iterfind("cpu/cache")] == [{"mode": "passthrough"}]
    guest.start()
    check_l3_inside_nodes(guest.report(BOOT_TIMEOUT), 3)


def test_a_socket_across_two_cells_is_what_the_guest_kernel_warns_about(make_guest: GuestFactory) -> None:
    """Why the rule exists, and that the check above can fail: a hand-written topology of one socket over
    two cells gives the guest one L3 across both nodes, and the kernel says so."""
    cpu_xml = (
        "<cpu mode='maximum' check='none'><topology sockets='1' dies='1' cores='4' threads='1'/><numa>"
        "<cell id='0' cpus='0-1' memory='256' unit='MiB'/><cell id='1' cpus='2-3' memory='256' unit='MiB'/>"
        "</numa></cpu>"
    )
    report = make_guest("h6-l3-socket", vcpus=4, memory_mib=512, cpu_xml=cpu_xml).report(BOOT_TIMEOUT)
    assert any("llc-sibling" in line and "not on the same node" in line for line in report.sibling_warnings), report
    with pytest.raises(AssertionError):
        check_l3_inside_nodes(report, 2)
    assert sorted(report.cpus) == [0, 1, 2, 3]
