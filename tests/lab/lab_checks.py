# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a lab hypervisor's kernel says about a guest's QEMU process, parsed for the lab tests.

The parsers are deliberately independent of the collection: they read the kernel's own text
(cpu lists, /proc/<pid>/numa_maps, /proc/<pid>/task/*/status), so a test compares the collection's
plan with something the collection did not compute.
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from touch_payload import payload

if TYPE_CHECKING:
    from conftest import Lab, LabHost

# At least this share of a cell's pages sits on its planned node(s).
MIN_ON_NODE = 0.99
# The touch payload writes every page from 2 MiB up: nearly all of a guest's memory is faulted in.
MIN_TOUCHED = 0.9
# numa_maps policies as the kernel prints them, by libvirt's <memnode mode>.  'restrictive' sets no
# memory policy: cgroups' cpuset.mems confines the memory instead, so numa_maps says 'default'.
POLICY_OF_MODE = {"strict": "bind", "preferred": "prefer", "interleave": "interleave", "restrictive": "default"}
VCPU_THREAD = re.compile(r"CPU (\d+)/TCG")
# QEMU names an I/O thread's thread after its object id, which libvirt makes 'iothread<id>'.
IOTHREAD_THREAD = re.compile(r"IO iothread(\d+)")


def parse_cpuset(text: str) -> frozenset[int]:
    """A kernel or libvirt cpu/node list (``0-2,5``)."""
    cpus: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        first, _dash, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)


@dataclass(frozen=True)
class Region:
    """One line of numa_maps: a mapping's memory policy and its resident pages per node."""

    policy: str
    nodes: frozenset[int]
    pages: Counter[int]
    page_kib: int
    huge: bool

    def kib(self) -> int:
        return sum(self.pages.values()) * self.page_kib


def parse_numa_maps(text: str) -> list[Region]:
    regions = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        # 'bind:1', 'prefer:0', 'interleave:0-1', 'default', 'prefer (many):0' (a process-wide preferred
        # policy); a mode flag may follow '=' ('bind=static:1').
        rest = 2
        if len(fields) > 2 and fields[2].startswith("(many)"):
            fields[1:3] = [f"{fields[1]} {fields[2]}"]
        kind, _colon, nodes = fields[1].partition(":")
        pages: Counter[int] = Counter()
        page_kib = 4
        for item in fields[rest:]:
            key, _eq, value = item.partition("=")
            if re.fullmatch(r"N\d+", key):
                pages[int(key[1:])] += int(value)
            elif key == "kernelpagesize_kB":
                page_kib = int(value)
        regions.append(Region(kind.partition("=")[0], parse_cpuset(nodes), pages, page_kib, "huge" in fields[2:]))
    return regions


@dataclass(frozen=True)
class Thread:
    tid: int
    name: str
    cpus: frozenset[int]
    mems: frozenset[int]


@dataclass
class GuestReport:
    """A running guest's QEMU process as the lab's kernel shows it."""

    name: str
    pid: int
    regions: list[Region] = field(default_factory=list)
    threads: list[Thread] = field(default_factory=list)
    # I/O thread id -> its host CPUs as libvirt reports them (virsh iothreadinfo).
    iothreadinfo: dict[int, frozenset[int]] = field(default_factory=dict)

    def vcpu_affinity(self) -> dict[int, frozenset[int]]:
        """vCPU id -> the host CPUs its thread may run on (QEMU names TCG vCPU threads 'CPU n/TCG')."""
        found = {}
        for thread in self.threads:
            match = VCPU_THREAD.fullmatch(thread.name)
            if match:
                found[int(match.group(1))] = thread.cpus
        return found

    def emulator_threads(self) -> list[Thread]:
        """The main thread and QEMU's helpers, which libvirt's emulatorpin covers: neither vCPUs nor the
        thread contexts QEMU 7.2 preallocates a cell's memory with ('TC tc-ram-node<cell>'), which libvirt
        runs on that cell's host nodes, nor I/O threads (iothreadpin)."""
        return [
            thread
            for thread in self.threads
            if not VCPU_THREAD.fullmatch(thread.name)
            and not thread.name.startswith("TC ")
            and not IOTHREAD_THREAD.fullmatch(thread.name)
        ]

    def iothread_affinity(self) -> dict[int, frozenset[int]]:
        """I/O thread id -> the host CPUs its QEMU thread may run on."""
        found = {}
        for thread in self.threads:
            match = IOTHREAD_THREAD.fullmatch(thread.name)
            if match:
                found[int(match.group(1))] = thread.cpus
        return found

    def memory_contexts(self) -> dict[int, frozenset[int]]:
        """Guest cell -> the host CPUs of the thread context that preallocates its memory."""
        found = {}
        for thread in self.threads:
            match = re.fullmatch(r"TC tc-ram-node(\d+)", thread.name)
            if match:
                found[int(match.group(1))] = thread.cpus
        return found


@dataclass
class WaveReport:
    """What the modes playbook read in the lab while one wave of guests ran."""

    node_cpus: dict[int, frozenset[int]] = field(default_factory=dict)
    siblings: dict[int, frozenset[int]] = field(default_factory=dict)
    hugepages_before: dict[int, int] = field(default_factory=dict)
    hugepages_after: dict[int, int] = field(default_factory=dict)
    guests: dict[str, GuestReport] = field(default_factory=dict)


def parse_wave_report(text: str) -> WaveReport:
    """The text tests/lab/playbooks/modes.yml prints for a wave: '@@' lines open sections."""
    report = WaveReport()
    section = ""
    guest: GuestReport | None = None
    numa_maps: list[str] = []
    for line in text.splitlines():
        if line.startswith("@@ "):
            words = line.split()
            section = words[1]
            if section == "guest":
                guest = report.guests[words[2]] = GuestReport(words[2], int(words[3]))
            elif section == "threads" and guest is not None:
                guest.regions = parse_numa_maps("\n".join(numa_maps))
                numa_maps = []
            continue
        if section in ("node-cpus", "siblings"):
            name, _space, cpus = line.partition(" ")
            listed = report.node_cpus if section == "node-cpus" else report.siblings
            listed[int(name.removeprefix("node").removeprefix("cpu"))] = parse_cpuset(cpus)
        elif section in ("hugepages-before", "hugepages-after"):
            node, free = line.split()
            pools = report.hugepages_before if section == "hugepages-before" else report.hugepages_after
            pools[int(node.removeprefix("node"))] = int(free)
        elif section == "numa_maps":
            numa_maps.append(line)
        elif section == "threads" and guest is not None:
            tid, name, cpus, mems = line.split("|")
            guest.threads.append(Thread(int(tid), name, parse_cpuset(cpus), parse_cpuset(mems)))
        elif section == "iothreadinfo" and guest is not None:
            # virsh's table: a header, a rule, then ' <id>   <cpus>' rows.
            match = re.fullmatch(r"\s*(\d+)\s+([\d,-]+)\s*", line)
            if match:
                guest.iothreadinfo[int(match.group(1))] = parse_cpuset(match.group(2))
    return report


# What a host may change when a guest moves (docs/migration.md): the host-side bindings, what libvirt
# writes for the host it runs on, and the metadata (vnuma_migrate notes the move there; libvirt's ABI check
# ignores it).  Everything else of a domain XML is what the guest sees.
HOST_SIDE_ELEMENTS = ("numatune", "cputune", "resource", "seclabel", "metadata")


def guest_visible(domain_xml: str) -> str:
    """A domain XML without its host-side parts, canonical, to compare a guest before and after a move."""
    root = ET.fromstring(domain_xml)
    root.attrib.pop("id", None)
    for parent in list(root.iter()):
        for child in list(parent):
            host_side = parent is root and child.tag in HOST_SIDE_ELEMENTS
            if host_side or (parent.tag == "source" and child.tag == "nodemask"):
                parent.remove(child)
    for vcpu in root.iter("vcpu"):
        vcpu.attrib.pop("cpuset", None)
    return ET.canonicalize(ET.tostring(root, encoding="unicode"), strip_text=True)


def sections(text: str, marker: str) -> dict[str, str]:
    """The '@@ <marker> <name>' sections of a raw task's output, by name (up to the next '@@' line)."""
    found: dict[str, str] = {}
    name = None
    for line in text.replace("\r", "").splitlines():
        if line.startswith("@@ "):
            words = line.split()
            name = words[2] if words[1] == marker and len(words) > 2 else None
            if name:
                found[name] = ""
            continue
        if name:
            found[name] += line + "\n"
    return found


@dataclass(frozen=True)
class Bindings:
    """A domain XML's host-side bindings as libvirt keeps them, and its vCPUs' cells."""

    memnodes: dict[int, frozenset[int]]
    pins: dict[int, frozenset[int]]
    cell_of: dict[int, int]

    @classmethod
    def of(cls, domain_xml: str) -> Bindings:
        root = ET.fromstring(domain_xml)
        return cls(
            {int(node.get("cellid", "-1")): parse_cpuset(node.get("nodeset", "")) for node in root.iter("memnode")},
            {int(pin.get("vcpu", "-1")): parse_cpuset(pin.get("cpuset", "")) for pin in root.iter("vcpupin")},
            {
                vcpu: int(cell.get("id", "-1"))
                for cell in root.iterfind("cpu/numa/cell")
                for vcpu in parse_cpuset(cell.get("cpus", ""))
            },
        )

    def held(self) -> frozenset[int]:
        return frozenset().union(*self.pins.values())


def memory_by_policy(regions: list[Region], huge: bool = False) -> dict[tuple[str, frozenset[int]], Counter[int]]:
    """KiB resident per node, summed over the mappings of each (policy, policy nodes); 'default' left out."""
    found: dict[tuple[str, frozenset[int]], Counter[int]] = {}
    for region in regions:
        if region.policy == "default" or region.huge != huge:
            continue
        counts = found.setdefault((region.policy, region.nodes), Counter())
        for node, pages in region.pages.items():
            counts[node] += pages * region.page_kib
    return found


def share_on(counts: Counter[int], nodes: frozenset[int]) -> float:
    total = sum(counts.values())
    return sum(kib for node, kib in counts.items() if node in nodes) / total if total else 0.0


# The modes playbook's guests on lab4 (tests/lab/four-node.yml: nodes 0-2 with one SMT2 core each, CPUs
# 0-1, 2-3 and 4-5; node 3 memory-only; 2 MiB pools 32/32/32/16).  Every guest is small: all of them
# together hold about 0.5 GiB of the lab's memory, and their vCPUs halt once the payload is done.
MODES_HOST = "lab4"
PREFIX = "lab-mode-"


def _guest(name: str, memory_mib: int, vcpus: int, *, disk: bool = False, **spec: Any) -> dict[str, Any]:
    """A guest of the modes run; ``disk`` gives it a virtio disk (a 1 MiB file the payload never reads)."""
    return {
        "name": PREFIX + name,
        "memory_mib": memory_mib,
        "vcpus": vcpus,
        "disk": disk,
        "spec": {"name": PREFIX + name, **spec},
    }


# First wave: every mode with every distribution, one guest each (every guest start costs seconds in the
# lab), vCPUs floating over their cells' nodes or unpinned, and among them every memory mode, the emulator
# pin, cells on the memory-only node, more and fewer cells than nodes, and a hugepage-backed guest.
FLOATING = [
    # One I/O thread per cell, each on its own node's CPUs; the disk on cell 0's.
    _guest("host-contiguous", 48, 6, mode="host", distribution="contiguous", iothreads="per_cell", disk=True),
    _guest("host-siblings", 48, 6, mode="host", distribution="siblings", memory_mode="restrictive"),
    _guest("host-round-robin", 48, 3, mode="host", distribution="round-robin", memory_mode="preferred", pinning="none"),
    _guest("host-interleave", 48, 6, mode="host", distribution="interleave"),
    # One cell per node, node 3's without vCPUs.
    _guest("node-contiguous", 64, 4, mode="node", nodeset="0-3", cpuless_cells=True, distribution="contiguous"),
    # More cells than nodes: two cells on each of nodes 1 and 2, each cell in 2 MiB pages from its own
    # node's pool (the collection refuses hugepages for a cell on the memory-only node: libvirt 9.0 with
    # QEMU 7.2 cannot start it).
    _guest(
        "node-siblings",
        64,
        8,
        mode="node",
        nodeset="1-2",
        cells=4,
        distribution="siblings",
        emulator_pin="nodes",
        hugepages="2 MiB",
    ),
    # Fewer cells than nodes: cell 0 binds to and floats over nodes 0 and 1, interleaving its pages.
    _guest(
        "node-round-robin",
        64,
        6,
        mode="node",
        nodeset="0-2",
        cells=2,
        distribution="round-robin",
        memory_mode="interleave",
    ),
    _guest("node-interleave", 48, 4, mode="node", nodeset="1-3", cpuless_cells=True, distribution="interleave"),
]
HUGEPAGES_GUEST = PREFIX + "node-siblings"
# Second wave: dedicated host CPUs.  Together the three guests hold every CPU of the host: a whole core for
# two sibling vCPUs, a core for one vCPU (its sibling held idle), and one thread for a vCPU with the other
# thread of its core for its isolated emulator threads (its disk's I/O thread on the vCPU's thread).
DEDICATED = [
    _guest("core-siblings", 32, 2, mode="node", nodeset="0", distribution="siblings", pinning="core"),
    _guest("core-single", 32, 1, mode="node", nodeset="1", pinning="core"),
    _guest(
        "thread-isolate",
        32,
        1,
        mode="node",
        nodeset="2",
        pinning="thread",
        emulator_threads="isolate",
        iothreads="per_disk",
        disk=True,
    ),
]
WAVES = {"floating": FLOATING, "dedicated": DEDICATED}


@dataclass(frozen=True)
class PlannedGuest:
    """A guest of the modes run: what vnuma_domain returned for it and what the kernel reported."""

    name: str
    wave: str
    spec: dict[str, Any]
    layout: dict[str, Any]
    kernel: GuestReport


@dataclass(frozen=True)
class ModesRun:
    host: LabHost
    guests: dict[str, PlannedGuest]
    waves: dict[str, WaveReport]

    @property
    def node_cpus(self) -> dict[int, frozenset[int]]:
        """Host node -> its CPUs, as the lab's kernel lists them (an empty set for a memory-only node)."""
        return self.waves["floating"].node_cpus

    def siblings_of(self, cpu: int) -> frozenset[int]:
        """The threads of the host core that holds this CPU."""
        return self.waves["floating"].siblings[cpu]


def remove_guests(host: LabHost) -> None:
    """Destroy and undefine every guest of ours (the prefix), whatever state a failed run left."""
    host.run(
        f"for guest in $(virsh -c qemu:///system list --all --name | grep '^{PREFIX}'); do"
        " virsh -c qemu:///system destroy $guest >/dev/null 2>&1;"
        " virsh -c qemu:///system undefine $guest >/dev/null 2>&1;"
        " rm -f /var/log/libvirt/qemu/$guest.serial.log /tmp/$guest.xml /var/lib/libvirt/images/$guest.img; done;"
        f" rm -f /var/lib/libvirt/images/{PREFIX}touch.bin; true",
        # A loaded lab takes its time to stop a dozen guests.
        timeout=900,
    )


# What vnuma_hook installs with its defaults (docs/migration.md).
HOOK_PATHS = ("/etc/libvirt/hooks/qemu.d/vnuma-libvirt", "/usr/local/lib/vnuma-libvirt", "/var/lib/vnuma-libvirt")


def remove_moved(host: LabHost, guests: list[str], files: list[str]) -> None:
    """Remove guests, files and the collection's hook from a lab hypervisor, whatever a failed run left.

    libvirtd reloads after the hook goes, so that no later guest meets it.
    """
    host.run(
        f"for guest in {' '.join(guests)}; do virsh -c qemu:///system destroy $guest >/dev/null 2>&1;"
        " virsh -c qemu:///system undefine $guest >/dev/null 2>&1;"
        " rm -f /var/log/libvirt/qemu/$guest.serial.log /tmp/$guest.xml; done;"
        f" rm -f {' '.join(files)};"
        f" if [ -e {HOOK_PATHS[0]} ]; then rm -rf {' '.join(HOOK_PATHS)}; systemctl reload libvirtd; fi; true",
        timeout=600,
    )


def run_modes(lab: Lab, out: Path) -> ModesRun:
    """One run of tests/lab/playbooks/modes.yml on lab4 (both waves); the lab is left as it was."""
    host = lab.host(MODES_HOST)
    waves = [{"name": name, "guests": guests} for name, guests in WAVES.items()]
    variables = {"lab_out": str(out), "payload_base64": base64.b64encode(payload()).decode(), "waves": waves}
    try:
        lab.playbook("modes.yml", "--limit", MODES_HOST, "--extra-vars", json.dumps(variables))
    finally:
        remove_guests(host)
    return load_modes(host, out / "modes.json")


def load_modes(host: LabHost, path: Path) -> ModesRun:
    """The plans and kernel reports the modes playbook wrote, matched guest by guest."""
    planned: dict[str, PlannedGuest] = {}
    reports: dict[str, WaveReport] = {}
    results = json.loads(path.read_text())
    for wave, guests in WAVES.items():
        result = results[wave]
        report = reports[wave] = parse_wave_report(result["kernel"])
        layouts = {entry["name"]: entry["layout"] for entry in result["applied"]["guests"]}
        for guest in guests:
            name = guest["name"]
            planned[name] = PlannedGuest(name, wave, guest["spec"], layouts[name], report.guests[name])
    return ModesRun(host, planned, reports)
