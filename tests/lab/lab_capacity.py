# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One run of tests/lab/playbooks/capacity.yml on lab4, shared by the capacity and vnuma_info lab tests.

The run refuses a plan too big for a node and shows what starting it anyway does, refuses the
preallocation libvirt 9.0 / QEMU 7.2 cannot do on a CPU-less node, and reads the kernel around a
vnuma_info call while two guests run (one with a memory-only cell, one spread over two nodes).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from lab_checks import GuestReport, parse_wave_report
from touch_payload import payload

if TYPE_CHECKING:
    from conftest import Lab, LabHost

HOST = "lab4"
PREFIX = "lab-cap-"
# The guests that run while vnuma_info reads them.
CPULESS = PREFIX + "cpuless"
SPREAD = PREFIX + "spread"
GUEST_MEMORY_MIB = 128
# Every guest the run defines (the playbook's names).
GUESTS = tuple(PREFIX + name for name in ("big", "oom", "cpuless", "prealloc", "spread"))


@dataclass
class NodeFigures:
    """A node's free memory (KiB) and free 2 MiB pages, as the kernel says (/sys/devices/system/node)."""

    free_kib: dict[int, int] = field(default_factory=dict)
    free_2m: dict[int, int] = field(default_factory=dict)


def parse_node_figures(text: str) -> NodeFigures:
    """'nodeN FREE_KIB FREE_2M' lines (others are skipped)."""
    figures = NodeFigures()
    for line in text.splitlines():
        if not re.fullmatch(r"node\d+ \d+ \d+", line.strip()):
            continue
        node, free_kib, free_2m = line.split()
        figures.free_kib[int(node.removeprefix("node"))] = int(free_kib)
        figures.free_2m[int(node.removeprefix("node"))] = int(free_2m)
    return figures


@dataclass(frozen=True)
class Definition:
    """A guest's inactive definition (``virsh dumpxml --inactive``) and its state, read at one moment."""

    state: str
    xml: str


def parse_definitions(text: str) -> dict[str, Definition]:
    """The playbook's '@@ NAME STATE' sections, each followed by the guest's definition."""
    found: dict[str, list[str]] = {}
    states: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("@@ "):
            _at, name, state = line.split(" ", 2)
            states[name] = state
            found[name] = []
        elif name:
            found[name].append(line)
    return {name: Definition(states[name], "\n".join(lines)) for name, lines in found.items()}


@dataclass(frozen=True)
class CapacityRun:
    host: LabHost
    cpu_node: int
    cpuless_node: int
    result: dict[str, Any]
    node_cpus: dict[int, frozenset[int]]
    guests: dict[str, GuestReport]
    # Inactive definitions and states before the plans, and after the refusals and the OOM run.
    before: dict[str, Definition]
    after: dict[str, Definition]
    # The kernel's free memory and free 2 MiB pages right before and right after vnuma_info.
    nodes_before: NodeFigures
    nodes_after: NodeFigures

    def __getitem__(self, key: str) -> Any:
        return self.result[key]


def parse_kernel(text: str) -> tuple[dict[int, frozenset[int]], dict[str, GuestReport]]:
    """The host's CPUs per node and the guests the helper's report read (lab_checks.parse_wave_report).

    File-backed mappings (QEMU's binary, its libraries) are left out of each guest's numa_maps: they are
    the page cache, shared, and wherever they were first read, whatever the process's policy; they are
    not the guest's memory."""
    report = parse_wave_report("\n".join(line for line in text.splitlines() if " file=" not in line))
    return report.node_cpus, report.guests


def remove_guests(host: LabHost) -> None:
    """Destroy and undefine the run's guests, whatever state a failed run left (other lab tests' guests stay)."""
    names = " ".join(GUESTS)
    host.run(
        f"for guest in {names}; do"
        " virsh -c qemu:///system destroy $guest >/dev/null 2>&1;"
        " virsh -c qemu:///system undefine $guest >/dev/null 2>&1;"
        " rm -f /var/log/libvirt/qemu/$guest.serial.log /tmp/$guest.xml /tmp/$guest.err /tmp/$guest.dmesg; done;"
        f" rm -f /var/lib/libvirt/images/{PREFIX}touch.bin /usr/local/bin/lab-python3-node0; true"
    )


_RUNS: dict[Path, CapacityRun] = {}


def capacity_run_once(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> CapacityRun:
    """The run, made once per session for every test module that asks for it (the lab's boot is shared too)."""
    key = lab.lab_dir.path
    if key not in _RUNS:
        _RUNS[key] = run_capacity(lab, tmp_path_factory.mktemp("lab-capacity"))
    return _RUNS[key]


def run_capacity(lab: Lab, out: Path) -> CapacityRun:
    host = lab.host(HOST)
    nodes = host.topology.nodes
    cpuless_node = next(node.id for node in nodes if not node.cpus)
    # The first node with CPUs after node 0 (where the hypervisor's own processes live), and the two after it.
    cpu_nodes = [node.id for node in nodes if node.cpus and node.id != 0]
    variables = {
        "lab_out": str(out),
        "payload_base64": base64.b64encode(payload()).decode(),
        "guest_memory_mib": GUEST_MEMORY_MIB,
        "cpu_node": cpu_nodes[0],
        "cpuless_node": cpuless_node,
        "spread_nodes": ",".join(map(str, cpu_nodes[:2])),
    }
    # A run stopped half-way leaves its guests defined, and a definition without a <uuid> cannot replace them.
    remove_guests(host)
    try:
        lab.playbook("capacity.yml", "--limit", HOST, "--extra-vars", json.dumps(variables))
    finally:
        remove_guests(host)
    result = json.loads((out / "capacity.json").read_text())
    node_cpus, guests = parse_kernel(result["kernel"])
    return CapacityRun(
        host,
        cpu_nodes[0],
        cpuless_node,
        result,
        node_cpus,
        guests,
        parse_definitions(result["defined_before"]),
        parse_definitions(result["defined_after"]),
        parse_node_figures(result["nodes_before"]),
        parse_node_figures(result["kernel"]),
    )
