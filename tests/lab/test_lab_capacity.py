# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Capacity and CPU-less cells on a real multi-node hypervisor (lab4, tests/lab/four-node.yml).

- A plan bigger than what its node has left (the node's memory as the lab's libvirt reports it, less its
  hugepage pools and the other guests bound there) is refused before anything changes; the same guest
  written by hand with its memory strictly bound to the same node starts, and the lab's OOM killer ends it.
- A memory-only cell lands on the CPU-less node; the preallocation libvirt 9.0 / QEMU 7.2 cannot do
  there (hugepages, immediate allocation) is refused clearly, and the plain layout starts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from conftest import Lab
from lab_capacity import CPULESS, GUEST_MEMORY_MIB, PREFIX, CapacityRun, capacity_run_once
from lab_checks import MIN_ON_NODE, MIN_TOUCHED, memory_by_policy, parse_cpuset, share_on

BIG = PREFIX + "big"
PREALLOC = PREFIX + "prealloc"


@pytest.fixture(scope="module")
def capacity_run(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> CapacityRun:
    return capacity_run_once(lab, tmp_path_factory)


def test_a_plan_above_what_its_node_has_left_is_refused_and_nothing_changes(capacity_run: CapacityRun) -> None:
    node = capacity_run["node"]["id"]
    too_big_kib = capacity_run["too_big_mib"] * 1024
    # The size came from what the collection read at the time, and is above it; the kernel's own free
    # memory on the node is lower still (it keeps part of the node for itself).
    assert too_big_kib > capacity_run["left_kib"]
    assert too_big_kib > capacity_run["node"]["free_kib"]
    # The playbook registers the failure without stopping (failed_when: false): the module's result is kept.
    refused = capacity_run["refused"]
    assert refused["changed"] is False
    assert refused["capacity"]["fits"] is False, refused
    assert any(BIG in problem for problem in refused["capacity"]["blocking"]), refused
    message = refused["msg"]
    assert BIG in message
    assert f"host node {node}" in message
    assert f"{capacity_run['too_big_mib']} MiB" in message
    # Before anything changed: the definition is as it was, and nothing started.
    assert capacity_run.after[BIG] == capacity_run.before[BIG]
    assert capacity_run.after[BIG].state == "shut off"


def test_the_same_guest_started_anyway_is_killed_by_the_oom_killer(capacity_run: CapacityRun) -> None:
    text = capacity_run["oom"]
    found = re.search(r"^pid (\d+)$", text, re.MULTILINE)
    assert found, f"the hand-written guest did not start:\n{text}"
    pid = found.group(1)
    # libvirt saw its QEMU die; the payload never got through the node's memory.
    assert re.search(r"^state shut off \(crashed\)", text, re.MULTILINE), text
    assert re.search(r"^payload $", text, re.MULTILINE), text
    # The OOM killer chose this QEMU, under the memory policy of the strict binding of its RAM to that
    # node: only that node was short, whatever the rest of the hypervisor had free.
    node = capacity_run["node"]["id"]
    kill = [line for line in text.splitlines() if "oom-kill:" in line and f",pid={pid}," in line]
    assert kill, text
    assert re.search(rf"constraint=CONSTRAINT_MEMORY_POLICY,nodemask={node},", kill[0]), kill[0]
    assert re.search(rf"Killed process {pid} \(qemu-system-x86\)", text), text
    # The hypervisor's libvirtd and sshd lived through it.
    assert "Id" in capacity_run.host.run("virsh -c qemu:///system list")


def test_preallocation_on_the_cpu_less_node_is_refused_before_anything_changes(capacity_run: CapacityRun) -> None:
    cell_text = f"is bound to host node {capacity_run.cpuless_node}, which has no CPUs"
    for key, guest, cause in (
        ("refused_hugepages", CPULESS, "2 MiB hugepages"),
        ("refused_prealloc", PREALLOC, "<allocation mode='immediate'/>"),
    ):
        refused = capacity_run[key]
        assert refused["changed"] is False
        message = refused.get("msg", "")
        assert message.startswith(f"guest {guest}: guest cell 1 {cell_text}"), message
        assert cause in message
        assert "The nodes select no CPUs" in message
    for guest in (CPULESS, PREALLOC):
        assert capacity_run.after[guest] == capacity_run.before[guest]
        # The definitions had no layout before: none was written.
        domain = ET.fromstring(capacity_run.before[guest].xml)
        assert domain.find("cpu/numa") is None
        assert domain.find("numatune") is None


def test_the_memory_only_cell_lands_on_the_cpu_less_node_and_the_guest_runs(capacity_run: CapacityRun) -> None:
    applied = {entry["name"]: entry for entry in capacity_run["applied"]["guests"]}
    cells = applied[CPULESS]["layout"]["cells"]
    memory_only = [cell for cell in cells if not cell["vcpus"]]
    assert len(memory_only) == 1
    assert parse_cpuset(memory_only[0]["memory_nodes"]) == {capacity_run.cpuless_node}
    # The guest ran its payload to the end (the playbook waited for it): it started.
    kernel = capacity_run.guests[CPULESS]
    by_policy = memory_by_policy(kernel.regions)
    on_cpuless = by_policy[("bind", frozenset({capacity_run.cpuless_node}))]
    assert share_on(on_cpuless, frozenset({capacity_run.cpuless_node})) >= MIN_ON_NODE, dict(on_cpuless)
    # The payload touched the cell's memory: the kernel holds it.
    assert sum(on_cpuless.values()) >= MIN_TOUCHED * memory_only[0]["memory_kib"], dict(on_cpuless)
    # The cell with vCPUs is on its own node.
    on_cpu = by_policy[("bind", frozenset({capacity_run.cpu_node}))]
    assert share_on(on_cpu, frozenset({capacity_run.cpu_node})) >= MIN_ON_NODE, dict(on_cpu)
    assert sum(cell["memory_kib"] for cell in cells) == GUEST_MEMORY_MIB * 1024
