# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vnuma_fleet role over two lab hypervisors of different shapes, in one play, through SSH.

Both hypervisors get the same flat guests (playbooks/fleet-setup.yml); the role (playbooks/fleet.yml)
selects only the test's guests, gives each a layout that mirrors its own host, restarts the running
one, verifies and writes its reports on the controller.  A shut-off guest is started afterwards, and a
rerun of the role must change nothing.  Where the started guests' memory and vCPU threads really are is
read on each hypervisor (numa_maps, thread affinity), as in test_lab_modes.py.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import Lab, LabHost
from lab_checks import MIN_ON_NODE, MIN_TOUCHED, parse_cpuset
from touch_payload import payload

HOSTS = ("lab4", "lab2")
PREFIX = "lab-fleet-"
# Running before the role: the role restarts it with its new layout.
RESTARTED = f"{PREFIX}run"
# Shut off during the role: started by the test afterwards, with the layout the role wrote.
STARTED_AFTER = f"{PREFIX}off"
# Overridden to one host node (the host's last node with CPUs).
SINGLE = f"{PREFIX}one"
# Excluded by the role's selection: must stay exactly as defined.
KEPT = f"{PREFIX}keep"
CONVERTED = (SINGLE, STARTED_AFTER, RESTARTED)
STARTED = (RESTARTED, STARTED_AFTER)
MEMORY_MIB = {RESTARTED: 128, STARTED_AFTER: 96, SINGLE: 64, KEPT: 64}
# Seconds to wait for a started guest's payload to fault its memory in (nested TCG, a loaded machine).
TOUCH_TIMEOUT_S = 300
PAYLOAD = f"/var/lib/libvirt/images/{PREFIX}touch.bin"

T = TypeVar("T")


@dataclass(frozen=True)
class Cell:
    """One guest cell as the domain XML defines it."""

    vcpus: frozenset[int]
    memory_kib: int
    nodes: frozenset[int]
    distances: dict[int, int]


@dataclass(frozen=True)
class Domain:
    cells: dict[int, Cell]
    threads: int
    pins: dict[int, frozenset[int]]


@dataclass(frozen=True)
class Seen:
    """What one hypervisor shows after both role runs, read in one SSH call (each costs seconds in the lab)."""

    defined: dict[str, Domain]
    live: dict[str, Domain]
    numa_maps: dict[str, str]
    threads: dict[str, str]
    node_cpus: dict[int, frozenset[int]]


@dataclass
class FleetRun:
    """What the test's plays left: the reports of both role runs, the rerun's output, each host's state."""

    hosts: dict[str, LabHost]
    converted: Path
    rerun: Path
    rerun_stdout: str
    seen: dict[str, Seen]

    def report(self, run: Path, name: str) -> Any:
        return json.loads((run / f"{name}.json").read_text())


def flat_guests(host: LabHost) -> dict[str, int]:
    """The test's guests on one hypervisor and their vCPUs: the mirrored ones get as many as the host has CPUs."""
    cpus = host.topology.cpus
    return {RESTARTED: cpus, STARTED_AFTER: cpus, SINGLE: 2, KEPT: 1}


def flat_domain(name: str, vcpus: int) -> str:
    """A diskless guest without a layout that boots the touch payload (as playbooks/modes.yml defines them)."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{MEMORY_MIB[name]}</memory>
  <vcpu>{vcpus}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{PAYLOAD}</kernel></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='file'><source path='{serial_log(name)}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>"""


def serial_log(guest: str) -> str:
    return f"/var/log/libvirt/qemu/{guest}.serial.log"


def lab_python(host: LabHost, code: str, timeout: float = 900) -> str:
    """Run Python with the lab's libvirt bindings on a lab hypervisor: one process and one libvirt connection
    for many calls (in a loaded lab every virsh process costs seconds)."""
    return host.run(f"python3 - <<'PY'\nimport libvirt\nconn = libvirt.open('qemu:///system')\n{code}\nPY", timeout)


def start_code(guest: str) -> str:
    """Python for lab_python that starts a guest, three tries: in a loaded lab, libvirtd's call to
    systemd-machined may time out ("error from service: Timeout was reached")."""
    return f"""
import time
dom = conn.lookupByName({guest!r})
for attempt in range(3):
    try:
        dom.create()
        break
    except libvirt.libvirtError:
        if attempt == 2:
            raise
        time.sleep(5)
"""


def setup_guests(host: LabHost) -> None:
    """Define the flat guests and start the running one."""
    xmls = [flat_domain(name, vcpus) for name, vcpus in flat_guests(host).items()]
    lab_python(
        host,
        f"open({PAYLOAD!r}, 'wb').write({payload()!r})\nfor xml in {xmls!r}:\n    conn.defineXML(xml)\n"
        + start_code(RESTARTED),
    )


def remove_guests(host: LabHost) -> None:
    lab_python(
        host,
        f"""
import os
for name in {[*CONVERTED, KEPT]!r}:
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        continue
    if dom.isActive():
        dom.destroy()
    dom.undefine()
for path in {[serial_log(name) for name in [*CONVERTED, KEPT]] + [PAYLOAD]!r}:
    if os.path.exists(path):
        os.remove(path)
""",
    )


def look(host: LabHost) -> Seen:
    """Every guest's definition, and for the started ones their live XML, numa_maps and thread affinity."""
    code = f"""
import glob, json, os, time
seen = {{"defined": {{}}, "live": {{}}, "numa_maps": {{}}, "threads": {{}}, "nodes": {{}}}}
for name in {list(flat_guests(host))!r}:
    seen["defined"][name] = conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
for name in {list(STARTED)!r}:
    # The payload says OK on its serial port once it has written every page.
    log = "/var/log/libvirt/qemu/%s.serial.log" % name
    deadline = time.time() + {TOUCH_TIMEOUT_S}
    while time.time() < deadline and not (os.path.exists(log) and "OK" in open(log, errors="replace").read()):
        time.sleep(1)
    pid = open("/run/libvirt/qemu/%s.pid" % name).read().strip()
    seen["live"][name] = conn.lookupByName(name).XMLDesc(0)
    seen["numa_maps"][name] = open("/proc/%s/numa_maps" % pid).read()
    threads = []
    for task in glob.glob("/proc/%s/task/*" % pid):
        # A QEMU worker thread may end between the listing and the read: it is passed over.
        try:
            allowed = [line for line in open(task + "/status") if line.startswith("Cpus_allowed_list")]
            comm = open(task + "/comm").read().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        threads.append(comm + "|" + allowed[0].strip())
    seen["threads"][name] = "\\n".join(threads)
for node in glob.glob("/sys/devices/system/node/node[0-9]*"):
    seen["nodes"][node.rsplit("node", 1)[1]] = open(node + "/cpulist").read().strip()
print(json.dumps(seen))
"""
    seen = json.loads(lab_python(host, code, timeout=TOUCH_TIMEOUT_S + 600))
    return Seen(
        defined={guest: domain(xml) for guest, xml in seen["defined"].items()},
        live={guest: domain(xml) for guest, xml in seen["live"].items()},
        numa_maps=seen["numa_maps"],
        threads=seen["threads"],
        node_cpus={int(node): frozenset(parse_cpuset(cpus)) for node, cpus in seen["nodes"].items()},
    )


@pytest.fixture(scope="module")
def fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetRun]:
    missing = [name for name in HOSTS if name not in lab.hosts]
    if missing:
        pytest.fail(f"the lab has no hypervisor {', '.join(missing)} (tests/lab/four-node.yml, tests/lab/two-node.yml)")
    hosts = {name: lab.hosts[name] for name in HOSTS}
    out = tmp_path_factory.mktemp("lab-fleet")

    def on_every_host(step: Callable[[LabHost], T]) -> dict[str, T]:
        with ThreadPoolExecutor(len(hosts)) as pool:
            return dict(zip(hosts, pool.map(step, hosts.values()), strict=True))

    def role_run(report_dir: Path, start_after: bool) -> str:
        role_vars = {
            "fleet_report_dir": str(report_dir),
            "fleet_single_node": {name: str(host.topology.cpu_nodes[-1].id) for name, host in hosts.items()},
            "fleet_start_after": start_after,
        }
        limit = ",".join(HOSTS)
        return lab.playbook("fleet.yml", "--limit", limit, "--forks", "2", "--extra-vars", json.dumps(role_vars)).stdout

    try:
        # A run killed earlier may have left the guests defined.
        on_every_host(remove_guests)
        on_every_host(setup_guests)
        role_run(out / "converted", start_after=True)
        rerun_stdout = role_run(out / "rerun", start_after=False)
        yield FleetRun(hosts, out / "converted", out / "rerun", rerun_stdout, on_every_host(look))
    finally:
        on_every_host(remove_guests)


def domain(xml: str) -> Domain:
    root = ET.fromstring(xml)
    memnodes = {int(m.get("cellid", "")): parse_cpuset(m.get("nodeset", "")) for m in root.iter("memnode")}
    cells = {}
    for cell in root.iter("cell"):
        cell_id = int(cell.get("id", ""))
        assert cell.get("unit", "KiB") == "KiB", xml
        cells[cell_id] = Cell(
            vcpus=frozenset(parse_cpuset(cell.get("cpus", ""))),
            memory_kib=int(cell.get("memory", "")),
            nodes=frozenset(memnodes.get(cell_id, set())),
            distances={int(s.get("id", "")): int(s.get("value", "")) for s in cell.iter("sibling")},
        )
    topology = root.find("cpu/topology")
    pins = {int(pin.get("vcpu", "")): frozenset(parse_cpuset(pin.get("cpuset", ""))) for pin in root.iter("vcpupin")}
    return Domain(cells, int(topology.get("threads", "1")) if topology is not None else 1, pins)


def test_one_play_converts_both_hypervisors_and_reports_them(fleet: FleetRun) -> None:
    summary = fleet.report(fleet.converted, "fleet")
    assert [row["host"] for row in summary["hosts"]] == list(HOSTS)
    assert summary["totals"]["failed"] == 0
    assert summary["totals"]["changed"] == len(HOSTS) * len(CONVERTED)
    html = (fleet.converted / "fleet.html").read_text()
    for name, host in fleet.hosts.items():
        row = next(row for row in summary["hosts"] if row["host"] == name)
        assert row["status"] == "converted", row
        assert row["changed"] == len(CONVERTED)
        assert row["restarted"] == 1
        assert f'href="{name}.html"' in html
        result = fleet.report(fleet.converted, name)
        assert result["status"] == "converted"
        assert result["mode"] == "apply"
        # Only the test's guests were selected: lab-fleet-keep is excluded, other guests on the lab are not ours.
        assert sorted(guest["name"] for guest in result["guests"]) == sorted(CONVERTED)
        assert result["counts"]["changed"] == len(CONVERTED)
        assert result["restart"]["batches"] == [
            {**result["restart"]["batches"][0], "guests": [RESTARTED], "restarted": [RESTARTED]}
        ]
        assert result["restart_required"] == []
        assert result["verify"]["ok"]
        assert sorted(result["verify"]["checked"]) == sorted(CONVERTED)
        assert result["capacity"]["fits"]
        cpu_nodes = [node.id for node in host.topology.cpu_nodes]
        for guest in result["guests"]:
            assert not guest["before"]["aligned"], guest["name"]
            assert guest["planned"]["aligned"] and guest["planned"]["locality"] == 1.0, guest["name"]
            want = [str(cpu_nodes[-1])] if guest["name"] == SINGLE else [str(node) for node in cpu_nodes]
            assert guest["planned"]["host_nodes"] == want, guest["name"]
        page = (fleet.converted / f"{name}.html").read_text()
        assert all(guest in page for guest in CONVERTED)
        assert f"NODE {host.topology.nodes[-1].id}" in page
        assert ("memory only" in page) == any(not node.cpus for node in host.topology.nodes)


def test_each_guest_mirrors_its_own_hypervisor(fleet: FleetRun) -> None:
    shapes = {}
    for name, host in fleet.hosts.items():
        topology = host.topology
        seen = fleet.seen[name]
        cpu_nodes = topology.cpu_nodes
        for guest in STARTED:
            defined = seen.defined[guest]
            # One cell per host node with CPUs, in host id order (mode host leaves the CPU-less node out).
            assert [cell.nodes for cell in defined.cells.values()] == [frozenset({node.id}) for node in cpu_nodes]
            # As many vCPUs as the host node has CPUs, in whole guest cores of the host's SMT width.
            assert [len(cell.vcpus) for cell in defined.cells.values()] == [node.cpus for node in cpu_nodes]
            assert defined.threads == topology.threads_per_core
            for cell_id, cell in defined.cells.items():
                node = cpu_nodes[cell_id].id
                assert {sibling: cell.distances[sibling] for sibling in defined.cells} == {
                    other: topology.distances[node][cpu_nodes[other].id] for other in defined.cells
                }, f"{name} {guest} cell {cell_id}"
                assert all(defined.pins[vcpu] == seen.node_cpus[node] for vcpu in cell.vcpus), (
                    f"{name} {guest} cell {cell_id}"
                )
            sizes = [cell.memory_kib for cell in defined.cells.values()]
            assert sum(sizes) == MEMORY_MIB[guest] * 1024
            assert max(sizes) - min(sizes) <= 1024
            shapes[name] = [len(cell.vcpus) for cell in defined.cells.values()]
        single = seen.defined[SINGLE]
        assert [cell.nodes for cell in single.cells.values()] == [frozenset({cpu_nodes[-1].id})]
        assert [cell.vcpus for cell in single.cells.values()] == [frozenset({0, 1})]
        # Excluded by the selection: still flat.
        assert seen.defined[KEPT].cells == {}
    # The two hypervisors' shapes differ, and so do their guests'.
    assert shapes["lab4"] != shapes["lab2"]


def recap(stdout: str) -> dict[str, dict[str, int]]:
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"^(\S+)\s+:\s+(ok=.*)$", line)
        if match:
            found[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return found


def test_a_rerun_changes_nothing_on_either_hypervisor(fleet: FleetRun) -> None:
    counts = recap(fleet.rerun_stdout)
    assert sorted(counts) == sorted(HOSTS), fleet.rerun_stdout[-2000:]
    for name in HOSTS:
        assert counts[name]["changed"] == 0, f"{name}: {counts[name]}\n{fleet.rerun_stdout}"
        assert counts[name]["failed"] == 0
        result = fleet.report(fleet.rerun, name)
        assert result["status"] == "unchanged", result["status"]
        assert result["counts"]["changed"] == 0
        assert result["counts"]["to_change"] == 0
        assert result["restart"]["batches"] == []
        assert result["restart_required"] == []
        assert result["verify"]["ok"]
        assert all(guest["before"]["aligned"] for guest in result["guests"])
    summary = fleet.report(fleet.rerun, "fleet")
    assert summary["totals"]["changed"] == 0


def numa_pages(numa_maps: str) -> dict[frozenset[int], Counter[int]]:
    """Pages per memory binding (bind:NODES) and host node, from a process's numa_maps."""
    pages: dict[frozenset[int], Counter[int]] = {}
    for line in numa_maps.splitlines():
        policy = re.search(r" bind:([0-9,-]+)", line)
        if policy:
            counts = pages.setdefault(frozenset(parse_cpuset(policy.group(1))), Counter())
            for node, count in re.findall(r" N(\d+)=(\d+)", line):
                counts[int(node)] += int(count)
    return pages


def vcpu_affinity(threads: str) -> dict[int, frozenset[int]]:
    """Each vCPU thread's allowed CPUs, from `comm|Cpus_allowed_list: ...` lines of the QEMU process's threads."""
    affinity = {}
    for line in threads.splitlines():
        comm, _bar, status = line.partition("|")
        match = re.fullmatch(r"CPU (\d+)/TCG", comm.strip())
        if match:
            affinity[int(match.group(1))] = frozenset(parse_cpuset(status.split(":", 1)[1]))
    return affinity


@pytest.mark.parametrize("guest", STARTED)
def test_started_guests_memory_and_vcpus_are_on_their_planned_nodes(fleet: FleetRun, guest: str) -> None:
    """lab-fleet-run was restarted by the role, lab-fleet-off started after it: both run the role's layout."""
    for name, seen in fleet.seen.items():
        live = seen.live[guest]
        assert live.cells == seen.defined[guest].cells, f"{name} {guest}: runs another layout than its definition"
        pages = numa_pages(seen.numa_maps[guest])
        touched = sum(sum(counts.values()) for counts in pages.values())
        assert touched * 4 >= MIN_TOUCHED * MEMORY_MIB[guest] * 1024, f"{name} {guest}: only {touched} pages: {pages}"
        assert set(pages) == {cell.nodes for cell in live.cells.values()}, f"{name} {guest}: {pages}"
        for bound, counts in pages.items():
            on_node = sum(count for node, count in counts.items() if node in bound)
            assert on_node / sum(counts.values()) >= MIN_ON_NODE, f"{name} {guest} bind:{sorted(bound)}: {counts}"
        affinity = vcpu_affinity(seen.threads[guest])
        assert sorted(affinity) == sorted(vcpu for cell in live.cells.values() for vcpu in cell.vcpus)
        for cell_id, cell in live.cells.items():
            planned = frozenset().union(*(seen.node_cpus[node] for node in cell.nodes))
            for vcpu in cell.vcpus:
                assert affinity[vcpu] == planned, f"{name} {guest} vCPU {vcpu} of cell {cell_id}"
