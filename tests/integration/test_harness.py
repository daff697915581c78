# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The harness itself, end to end: a real libvirtd, real TCG guests, a real guest kernel's view of NUMA.

Guests stay small (at most 4 vCPUs and 512 MiB) so that each boots in a few seconds under TCG.
"""

from __future__ import annotations

import time
from pathlib import Path

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.tests.support import realguest
from ansible_collections.vnuma.libvirt.tests.support.layouts import cell_of_vcpu, online_at_boot
from ansible_collections.vnuma.libvirt.tests.support.realguest import (
    GuestFactory,
    GuestKernelStall,
    GuestNode,
    GuestReport,
    KernelStallError,
    ReportError,
    describe,
)

MIB = 1024  # in KiB

# Deadlines, not measurements: make integration runs two test files side by side, so a guest shares the
# machine's two CPUs with another guest and another module run.  A guest that never reports still fails.
# Seconds until the first report: 3.5-10 s measured (TCG, 2 host CPUs shared with other work).
BOOT_TIMEOUT = 120.0
# Seconds from setVcpu() until the guest reports the new CPU online: 2-17 s measured under TCG, over 60 s
# once with another test's guest booting beside it (the guest's stop_machine waits for every CPU), and over
# 120 s once while make test's offline stages (unit tests, ansible-test) kept both CPUs busy.  The wait ends
# as soon as the report comes.
HOTPLUG_TIMEOUT = 300.0

# How the memory a guest node reports relates to the cell's planned size (q35, SeaBIOS, Linux 6.1, no KASLR):
# - present memory (/proc/zoneinfo) is the cell less the PC firmware's holes: 392 KiB below 1 MiB in the
#   first cell, the 128 KiB SeaBIOS keeps at the top of RAM in the last one; never 1 MiB;
FIRMWARE_HOLES_KIB = 1 * MIB
# - MemTotal is present memory less the boot-time reservations: the node's own page structs (64 bytes
#   per 4 KiB page, 1/64), plus, in the first cell only, the kernel image (29.7 MiB for this kernel:
#   code, data, rodata, bss) and early allocations.  Measured beyond the page structs: 33.1-35.2 MiB in
#   the first cell, 1.7 MiB (the node's pgdat, per-CPU areas) in the others.
FIRST_CELL_RESERVED_KIB = 40 * MIB
OTHER_CELL_RESERVED_KIB = 4 * MIB


def check_node_memory(node: GuestNode, planned_kib: int, first_cell: bool, what: str) -> None:
    assert planned_kib - FIRMWARE_HOLES_KIB < node.present_kib <= planned_kib, (
        f"{what}: present {node.present_kib} KiB, planned {planned_kib} KiB"
    )
    page_structs = node.present_kib // 64
    reserved = node.present_kib - node.mem_kib
    limit = page_structs + (FIRST_CELL_RESERVED_KIB if first_cell else OTHER_CELL_RESERVED_KIB)
    assert page_structs <= reserved <= limit, (
        f"{what}: MemTotal {node.mem_kib} KiB of {node.present_kib} KiB present: {reserved} KiB reserved, "
        f"expected {page_structs}..{limit} KiB"
    )


def wait_inactive(dom: libvirt.virDomain, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while dom.isActive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def test_libvirtd_answers_with_this_hosts_topology(qemu_conn: libvirt.virConnect, host_caps: str) -> None:
    assert qemu_conn.getType() == "QEMU"
    assert qemu_conn.getLibVersion() >= 9_000_000
    assert qemu_conn.getVersion() > 0  # QEMU's version: the driver found and probed QEMU
    topology = parse_capabilities(host_caps)
    assert len(topology.nodes) >= 1
    assert topology.cpu_node_ids, "no host node with CPUs"
    # libvirtd runs on this machine: its cells are the kernel's nodes and its CPUs the online ones.
    sys_nodes = sorted(int(path.name[4:]) for path in Path("/sys/devices/system/node").glob("node[0-9]*"))
    assert list(topology.node_ids) == (sys_nodes or [0])
    online = parse_cpuset(Path("/sys/devices/system/cpu/online").read_text().strip(), "online host CPUs")
    assert set(topology.cpu_node) == online
    for node in topology.nodes:
        assert dict(node.distances).get(node.id, 10) == 10


def test_guest_without_numa_reports_one_node(make_guest: GuestFactory) -> None:
    guest = make_guest("vit-plain", vcpus=2, memory_mib=256)
    report = guest.report(BOOT_TIMEOUT)
    assert report.seq == 1
    assert report.online == report.possible == {0, 1}
    assert sorted(report.nodes) == [0]
    node = report.nodes[0]
    assert node.cpus == {0, 1}
    assert node.distances == (10,)
    assert {cpu.node for cpu in report.cpus.values()} == {0}
    check_node_memory(node, 256 * MIB, first_cell=True, what="node 0")
    # Without vnuma.wait=1 the guest powers itself off after its report (on_poweroff: destroy).
    assert wait_inactive(guest.dom, 20.0), "the guest did not power off after its report"


def test_two_cells_on_one_host_node(make_guest: GuestFactory, host_caps: str) -> None:
    host_node = parse_capabilities(host_caps).cpu_node_ids[0]
    vnuma = f"<vnuma mode='node'><partition nodeset='{host_node}' cells='2'/></vnuma>"
    guest = make_guest("vit-cells", vcpus=4, memory_mib=512, vnuma=vnuma)
    layout = guest.layout
    assert [cell.host_nodes for cell in layout.cells] == [(host_node,), (host_node,)]
    assert [cell.vcpus for cell in layout.cells] == [(0, 1), (2, 3)]
    assert [cell.memory_kib for cell in layout.cells] == [256 * MIB, 256 * MIB]
    # Two cells on one host node: 11 between them (libvirt refuses 10 off the diagonal).
    assert [list(cell.distances) for cell in layout.cells] == [[10, 11], [11, 10]]
    # libvirt rewrites the XML it is given (machine, units, defaults), yet keeps the layout: expanding
    # its own definition for the same host changes nothing.
    assert expand_domain(guest.inactive_xml(), host_caps).changes == []

    report = guest.report(BOOT_TIMEOUT)
    assert sorted(report.nodes) == [cell.id for cell in layout.cells], describe([report])
    for cell in layout.cells:
        node = report.nodes[cell.id]
        assert node.cpus == set(cell.vcpus), describe([report])
        for vcpu in cell.vcpus:
            assert report.node_of_vcpu(layout.topology, vcpu) == cell.id, report.cpus
        check_node_memory(node, cell.memory_kib, first_cell=cell.id == 0, what=f"node {cell.id}")
    assert report.distance_matrix == [[10, 11], [11, 10]]


def test_a_guest_whose_kernel_stalls_before_init_is_started_again(
    make_guest: GuestFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A paused guest is a kernel that makes no progress, as one caught in TCG's loop on stale code is.  The
    # threshold stays well above the seconds a loaded machine takes from a start to the kernel's first line
    # (2 s was too short for the second start in a clean clone's make test).
    monkeypatch.setattr(realguest, "KERNEL_STALL_SECONDS", 15.0)
    guest = make_guest("vit-stall", vcpus=1, memory_mib=128, wait=True, guest_timeout=60)
    guest.dom.suspend()
    with pytest.warns(GuestKernelStall, match=f"{guest.name} started again"):
        first = guest.report(BOOT_TIMEOUT)
    assert first.seq == 1 and first.online == {0}
    assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    # Past /init a silent guest is only late: the wait ends at its deadline and nothing is started again.
    started_at = guest.started_at
    guest.dom.suspend()
    with pytest.raises(ReportError) as caught:
        guest.report(5.0, after=first.seq)
    assert not isinstance(caught.value, KernelStallError), caught.value
    assert guest.started_at == started_at and guest.dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED


def _enabled_vcpus(live_xml: str) -> set[int]:
    root = parse_xml(live_xml, "live domain XML", root_tag="domain")
    return {int(vcpu.get("id")) for vcpu in root.iterfind("vcpus/vcpu") if vcpu.get("enabled") == "yes"}


def test_hot_added_vcpu_comes_online_in_its_planned_node(make_guest: GuestFactory, host_caps: str) -> None:
    host_node = parse_capabilities(host_caps).cpu_node_ids[0]
    # interleave puts vCPUs 0 and 1 in different cells, so the balanced enable order starts 0, 1: the
    # vCPUs online at boot are the prefix 0-1 and libvirt boots them as non-hotpluggable.  (A layout
    # that boots a hot-pluggable vCPU, like contiguous here with 0 and 2 online, takes 80 s to over
    # 150 s to boot under TCG: the guest's stop_machine stalls on the hot-plugged vCPU.)
    vnuma = f"<vnuma mode='node' distribution='interleave'><partition nodeset='{host_node}' cells='2'/></vnuma>"
    guest = make_guest("vit-hotplug", vcpus=4, memory_mib=512, current_vcpus=2, vnuma=vnuma, wait=True)
    layout = guest.layout
    assert online_at_boot(layout) == (0, 1)
    assert [cell.vcpus for cell in layout.cells] == [(0, 2), (1, 3)]

    first = guest.report(BOOT_TIMEOUT)
    assert first.online == {0, 1}
    assert first.possible == {0, 1, 2, 3}
    for vcpu in (0, 1):
        assert first.node_of_vcpu(layout.topology, vcpu) == cell_of_vcpu(layout)[vcpu], first.cpus

    guest.dom.setVcpu("3", True, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    assert _enabled_vcpus(guest.live_xml()) == {0, 1, 3}

    def three_online(report: GuestReport) -> bool:
        return len(report.online) == 3

    after = guest.report(HOTPLUG_TIMEOUT, after=first.seq, until=three_online)
    # The guest numbers the new CPU 2 (the next free number): found by its package (socket) id instead.
    assert after.node_of_vcpu(layout.topology, 3) == cell_of_vcpu(layout)[3] == 1, describe(guest.reports())
    assert after.node_of_vcpu(layout.topology, 2) is None
    for vcpu in (0, 1):
        assert after.node_of_vcpu(layout.topology, vcpu) == cell_of_vcpu(layout)[vcpu]
    assert after.nodes[1].cpus == {1, 2}
    assert after.distance_matrix == [[10, 11], [11, 10]]
