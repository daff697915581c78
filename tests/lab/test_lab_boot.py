# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A real guest kernel inside a lab hypervisor: the project's guest image (make guest-image) boots in a
guest laid out by vnuma_domain on lab4 (every host node, the CPU-less one too), and the kernel's own
report (/sys/devices/system/node, per-CPU topology) has the planned nodes, CPUs per node, memory per node
and distances, and, with the lab's HMAT given to the guest (hmat: host), each node's access0 initiator and
figures.  The same guest, before it starts, shows that the plan carries the figures the lab's QEMU was given
and that the lab's libvirt keeps them and hands QEMU the planned initiators and hmat-lb values.  A virtio-rng
named near the cell of host node 2 (``device_cells``) sits behind that cell's expander bus, and the guest
kernel reads that node in its ``/sys/bus/pci/devices/*/numa_node``.

Nested TCG (the guest's QEMU emulated inside the lab's emulated CPUs) makes the boot slow: one boot proves
all of this.  The tests that wait for the kernel's report are marked ``lab_boot``; this module's tests run
after every other lab test, and its guest boots beside test_lab_virtio_mem.py's (conftest.py: boot_guests;
docs/lab.md has the time).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from conftest import ROOT, Lab, LabHost
from lab import SSH_OPTIONS
from lab_checks import parse_cpuset
from lab_qemu import LOCAL_BANDWIDTH_MIB_S, LOCAL_LATENCY_NS_PER_DISTANCE
from test_lab_fleet import lab_python, start_code

from ansible_collections.vnuma.libvirt.tests.integration.test_harness import check_node_memory
from ansible_collections.vnuma.libvirt.tests.integration.vnuma_domain_support import parse_qemu_argv
from ansible_collections.vnuma.libvirt.tests.support.realguest import (
    GuestReport,
    ReportError,
    domain_xml,
    parse_reports,
)

HOST = "lab4"
GUEST = "lab-boot-numa"
IMAGE_SRC = ROOT / ".build" / "guest-image"
IMAGE_DIR = f"/var/lib/libvirt/images/{GUEST}"
CONSOLE_LOG = f"/var/log/libvirt/qemu/{GUEST}.serial.log"
VCPUS = 6
MEMORY_MIB = 512
# Seconds from start to the kernel's report.  Under nested TCG the boot takes minutes, and many more on a
# loaded machine (docs/lab.md): the wait only ends early when the report comes.
BOOT_TIMEOUT_S = 1800
POLL_S = 5
# TCG's default and `maximum` CPUs are AMD-flavoured without topoext, and Linux then sees every thread
# as a core of its own (ENVIRONMENT.md: the lab itself needs vendor=GenuineIntel for the same reason).
# kvm64 is an Intel model that TCG runs, with CPUID leaf 0xB, so the guest kernel sees SMT siblings.
CPU_XML = "<cpu mode='custom' match='exact' check='none'><model fallback='allow'>kvm64</model></cpu>"
# Kernel options for a boot under nested TCG, where every emulated step costs tens of times what it costs
# one level down (docs/lab.md): cryptomgr.notests skips the crypto self-tests (13 s of a 92 s kernel boot),
# and nowatchdog the soft-lockup warnings that a loaded machine's stalls would otherwise print (the timer
# and TSC checks are skipped for every test guest: realguest.BASE_CMDLINE).  The boot messages stay on:
# they tell where a slow boot is.
LAB_CMDLINE = "cryptomgr.notests nowatchdog"
# The guest's one PCI device besides the root complex's own, placed by device_cells near guest cell 2 (host
# node 2: one cell per host node).  virtio's vendor id and a modern (virtio 1.0) entropy source's device id.
RNG_ALIAS = "ua-rng0"
RNG_CELL = 2
RNG_XML = f"<rng model='virtio'><backend model='random'>/dev/urandom</backend><alias name='{RNG_ALIAS}'/></rng>"
VIRTIO_VENDOR = "0x1af4"
VIRTIO_RNG = "0x1044"


def image_dir(guest: str) -> str:
    return f"/var/lib/libvirt/images/{guest}"


def console_log(guest: str) -> str:
    return f"/var/log/libvirt/qemu/{guest}.serial.log"


def copy_image(host: LabHost, guest: str) -> None:
    """The guest image into the boot guest's image directory on the lab hypervisor."""
    copy = ["scp", *SSH_OPTIONS, "-i", str(host.lab_dir.key), "-P", str(host.running.port)]
    files = [str(IMAGE_SRC / "vmlinuz"), str(IMAGE_SRC / "initrd.img")]
    subprocess.run([*copy, *files, f"root@127.0.0.1:{image_dir(guest)}/"], check=True, timeout=900)


def remove_guest(host: LabHost, guest: str = GUEST) -> None:
    """Destroy and undefine a boot guest, and remove its image copy and logs (test_lab_virtio_mem.py too)."""
    lab_python(
        host,
        f"""
import os, shutil
try:
    dom = conn.lookupByName({guest!r})
    if dom.isActive():
        dom.destroy()
    dom.undefine()
except libvirt.libvirtError:
    pass
shutil.rmtree({image_dir(guest)!r}, ignore_errors=True)
for path in ({console_log(guest)!r}, "/var/log/libvirt/qemu/{guest}.log"):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
""",
    )


def wait_for_report(
    host: LabHost,
    guest: str = GUEST,
    until: Callable[[GuestReport], bool] = lambda _report: True,
    what: str = "report",
) -> GuestReport:
    """The first report on a boot guest's serial log for which ``until`` holds, waiting BOOT_TIMEOUT_S at
    most (a guest with vnuma.wait=1 prints a new report whenever what it sees changes)."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    text = ""
    log = console_log(guest)
    while time.monotonic() < deadline:
        text = host.run(f"cat {log} 2>/dev/null; true")
        found = [report for report in parse_reports(text) if until(report)]
        if found:
            return found[0]
        if "Kernel panic" in text or "VNUMA-POWEROFF" in text:
            break
        time.sleep(POLL_S)
    tail = "\n".join(text.replace("\r", "").splitlines()[-40:])
    raise ReportError(
        f"{guest} on {host.topology.name}: no {what} in {log} within {BOOT_TIMEOUT_S} s\n"
        f"--- end of the console:\n{tail}"
    )


# What the lab's libvirt kept and the QEMU command line it builds, read in the session that starts the guest.
INSPECT_AND_START = """
import json
dom = conn.lookupByName({guest!r})
xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
argv = conn.domainXMLToNative("qemu-argv", xml, 0)
{start}
print(json.dumps({{"xml": xml, "argv": argv}}))
"""


@dataclass(frozen=True)
class Started:
    host: LabHost
    layout: dict[str, Any]
    # The inactive definition and its QEMU command line, before the start.
    xml: str
    argv: str
    started: float


@dataclass(frozen=True)
class Booted:
    host: LabHost
    layout: dict[str, Any]
    report: GuestReport


def define_and_lay_out(
    lab: Lab, guest: str, xml: str, playbook: str, variables: dict[str, Any], out: Path
) -> dict[str, Any]:
    """Define a boot guest on HOST from ``xml`` with the guest image, run ``playbook`` (which lays it out and
    writes out/applied.json) and return what it wrote; test_lab_virtio_mem.py's guest is made the same way."""
    host = lab.host(HOST)
    if not (IMAGE_SRC / "vmlinuz").is_file() or not (IMAGE_SRC / "initrd.img").is_file():
        pytest.fail(f"no guest image in {IMAGE_SRC}: run `make guest-image` (make lab does)")
    # Define the flat guest and copy the image in two SSH connections: each costs seconds in the lab.
    remove_guest(host, guest)
    directory = image_dir(guest)
    lab_python(host, f"import os\nos.makedirs({directory!r}, exist_ok=True)\nconn.defineXML({xml!r})")
    copy_image(host, guest)
    extra = {"lab_out": str(out), "guest": guest, **variables}
    lab.playbook(playbook, "--limit", HOST, "--extra-vars", json.dumps(extra))
    return cast(dict[str, Any], json.loads((out / "applied.json").read_text()))


def start_guest(lab: Lab, out: Path) -> Started:
    """Define the guest, lay it out (boot.yml) and start it; the conftest's boot_guests calls this."""
    host = lab.host(HOST)
    nodeset = ",".join(str(node.id) for node in host.topology.nodes)
    xml = domain_xml(
        GUEST,
        VCPUS,
        MEMORY_MIB,
        CONSOLE_LOG,
        image_dir=IMAGE_DIR,
        cpu_xml=CPU_XML,
        cmdline=LAB_CMDLINE,
        devices_xml=RNG_XML,
    )
    variables = {"guest_nodeset": nodeset, "rng_alias": RNG_ALIAS, "rng_cell": RNG_CELL}
    applied = define_and_lay_out(lab, GUEST, xml, "boot.yml", variables, out)
    start_time = time.monotonic()
    inspected = json.loads(
        lab_python(host, INSPECT_AND_START.format(guest=GUEST, start=start_code(GUEST))).strip().splitlines()[-1]
    )
    return Started(host, applied["layout"], inspected["xml"], inspected["argv"], start_time)


@pytest.fixture(scope="module")
def started(boot_guests: dict[str, Any]) -> Started:
    return cast(Started, boot_guests[GUEST])


@pytest.fixture(scope="module")
def booted(started: Started) -> Booted:
    report = wait_for_report(started.host)
    # The figure docs/lab.md quotes; printed for `pytest -s` and make lab-boot-test's log.
    seen = time.monotonic() - started.started
    print(f"\n{GUEST} on {HOST}: kernel report at guest uptime {report.uptime:.0f} s, read {seen:.0f} s after start")
    return Booted(started.host, started.layout, report)


@pytest.mark.lab_boot
def test_the_guest_kernel_sees_the_planned_nodes_cpus_memory_and_distances(booted: Booted) -> None:
    host, layout, report = booted.host, booted.layout, booted.report
    cells = layout["cells"]
    # One cell per host node, the CPU-less one included, and the kernel has exactly those nodes.
    assert [cell["host_nodes"] for cell in cells] == [str(node.id) for node in host.topology.nodes]
    assert sorted(report.nodes) == [cell["id"] for cell in cells]
    assert report.online == frozenset(range(VCPUS))
    for cell in cells:
        node = report.nodes[cell["id"]]
        what = f"guest node {cell['id']} (host node {cell['host_nodes']})"
        # No vCPU is hot-plugged: the guest's CPU numbers are libvirt's vCPU ids.
        assert node.cpus == frozenset(parse_cpuset(cell["vcpus"])), what
        assert all(report.cpus[cpu].node == cell["id"] for cpu in node.cpus), what
        assert list(node.distances) == cell["distances"], what
        check_node_memory(node, cell["memory_kib"], cell["id"] == 0, what)
    # The CPU-less host node gives a guest node with memory and no CPUs.
    cpuless = [cell["id"] for cell in cells if not cell["vcpus"]]
    assert cpuless == [node.id for node in host.topology.nodes if not node.cpus]
    # Whole cores of the host's SMT width (distribution siblings): each guest core's threads on one node.
    threads = host.topology.threads_per_core
    assert layout["topology"]["threads"] == threads
    cores: dict[tuple[int, int], set[int]] = {}
    for cpu, where in report.cpus.items():
        cores.setdefault((where.package, where.core), set()).add(cpu)
    assert all(len(cpus) == threads for cpus in cores.values()), cores
    assert all(len({report.cpus[cpu].node for cpu in cpus}) == 1 for cpus in cores.values()), cores


@pytest.mark.lab_boot
def test_the_guest_kernel_sees_the_labs_hmat(booted: Booted) -> None:
    layout, report = booted.layout, booted.report
    figures = {figure["id"]: figure for figure in layout["hmat"]["cells"]}
    assert sorted(report.access) == sorted(figures), report.access
    for cell, figure in figures.items():
        seen = report.access[cell]
        assert seen.initiators == {figure["initiator"]}, (cell, seen)
        assert (seen.read_latency, seen.write_latency) == (figure["read_latency_ns"], figure["write_latency_ns"])
        assert (seen.read_bandwidth, seen.write_bandwidth) == (
            figure["read_bandwidth_kib"] // 1024,
            figure["write_bandwidth_kib"] // 1024,
        )
    # The CPU-less node 3 is the slower tier, served by the cell of node 2 (210 ns, 9752 MiB/s in the lab).
    tier = report.access[3]
    assert (tier.initiators, tier.read_latency, tier.read_bandwidth) == ({2}, 210, 9752)


@pytest.mark.lab_boot
def test_the_guest_kernel_reads_the_planned_node_of_the_device_behind_the_expander_bus(booted: Booted) -> None:
    cell = next(cell for cell in booted.layout["cells"] if cell["id"] == RNG_CELL)
    assert cell["host_nodes"] == "2", booted.layout["cells"]
    rngs = [
        function.node
        for function in booted.report.pci.values()
        if (function.vendor, function.device) == (VIRTIO_VENDOR, VIRTIO_RNG)
    ]
    assert rngs == [RNG_CELL], booted.report.pci


def _alias(element: ET.Element) -> str:
    alias = element.find("alias")
    return "" if alias is None else alias.get("name", "")


def _bus(element: ET.Element) -> int:
    """The PCI bus (a controller's index) of a device's or controller's own address."""
    address = element.find("address")
    assert address is not None, ET.tostring(element, encoding="unicode")
    return int(address.get("bus", ""), 0)


def test_the_device_sits_behind_the_expander_bus_of_its_cell(started: Started) -> None:
    root = ET.fromstring(started.xml)
    controllers = {_alias(controller): controller for controller in root.iterfind("devices/controller[@type='pci']")}
    expander = controllers[f"ua-vnuma-pxb{RNG_CELL}"]
    assert expander.get("model") == "pcie-expander-bus"
    assert expander.findtext("target/node") == str(RNG_CELL)
    # The rng sits in a root port plugged into the expander's bus.
    rng = next(rng for rng in root.iterfind("devices/rng") if _alias(rng) == RNG_ALIAS)
    port = next(bus for bus in controllers.values() if bus.get("index") == str(_bus(rng)))
    assert port.get("model") == "pcie-root-port"
    assert _bus(port) == int(expander.get("index", ""))


def lab_figures(host: LabHost, initiator: int, target: int) -> tuple[int, int]:
    """Latency (ns) and bandwidth (KiB/s) the lab's QEMU was given from ``initiator`` to ``target``."""
    distance = host.topology.distances[initiator][target]
    return distance * LOCAL_LATENCY_NS_PER_DISTANCE, LOCAL_BANDWIDTH_MIB_S * 10 // distance * 1024


def test_the_plan_carries_the_labs_own_figures(started: Started) -> None:
    host, layout = started.host, started.layout
    cells = {cell["id"]: cell for cell in layout["cells"]}
    assert layout["hmat"]["mode"] == "host"
    assert sorted(figure["id"] for figure in layout["hmat"]["cells"]) == sorted(cells)
    for figure in layout["hmat"]["cells"]:
        node = int(cells[figure["id"]]["host_nodes"])
        # The lab's initiator of a node is itself, or the nearest node with CPUs (node 2 for node 3).
        lab_initiator = host.topology.initiator(host.topology.nodes[node])
        assert cells[figure["initiator"]]["host_nodes"] == str(lab_initiator)
        latency, bandwidth = lab_figures(host, lab_initiator, node)
        assert (figure["read_latency_ns"], figure["write_latency_ns"]) == (latency, latency), figure
        assert (figure["read_bandwidth_kib"], figure["write_bandwidth_kib"]) == (bandwidth, bandwidth), figure


def test_the_labs_libvirt_keeps_the_figures_and_hands_qemu_the_planned_values(started: Started) -> None:
    figures = started.layout["hmat"]["cells"]
    for figure in figures:
        for kind, value in (("latency", figure["read_latency_ns"]), ("bandwidth", figure["read_bandwidth_kib"])):
            entry = f"<{kind} initiator='{figure['initiator']}' target='{figure['id']}' type='read' value='{value}'"
            assert entry in started.xml, entry
    words = shlex.split(started.argv)
    machine = words[words.index("-machine") + 1].split(",")
    assert "hmat=on" in machine, machine
    qemu = parse_qemu_argv(started.argv)
    assert qemu.initiators == {figure["id"]: figure["initiator"] for figure in figures}
    # One access entry per cell and figure kind, from its initiator, with exactly the planned value.
    planned_lb: dict[tuple[int, int, str, str], str] = {}
    for figure in figures:
        where = (figure["initiator"], figure["id"], "memory")
        planned_lb[(*where, "read-latency")] = str(figure["read_latency_ns"])
        planned_lb[(*where, "write-latency")] = str(figure["write_latency_ns"])
        planned_lb[(*where, "read-bandwidth")] = f"{figure['read_bandwidth_kib']}K"
        planned_lb[(*where, "write-bandwidth")] = f"{figure['write_bandwidth_kib']}K"
    assert qemu.hmat_lb == planned_lb
    # The lab's nodes have no memory-side caches: neither has the plan, nor QEMU's command line.
    assert set(qemu.hmat_cache) == {(figure["id"], cache["level"]) for figure in figures for cache in figure["caches"]}
