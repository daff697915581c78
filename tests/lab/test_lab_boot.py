# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A real guest kernel inside a lab hypervisor: the project's guest image (make guest-image) boots in a
guest laid out by vnuma_domain on lab4 (every host node, the CPU-less one too), and the kernel's own
report (/sys/devices/system/node, per-CPU topology) has the planned nodes, CPUs per node, memory per node
and distances, and, with the lab's HMAT given to the guest (hmat: host), each node's access0 initiator and
figures.

Nested TCG (the guest's QEMU emulated inside the lab's emulated CPUs) makes the boot slow: this test is
marked ``lab_boot``, left out of `make lab` and run by `make lab-boot-test` (docs/lab.md has the time).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT, Lab, LabHost
from lab import SSH_OPTIONS
from lab_checks import parse_cpuset
from test_lab_fleet import lab_python, start_code

from ansible_collections.vnuma.libvirt.tests.integration.test_harness import check_node_memory
from ansible_collections.vnuma.libvirt.tests.support.realguest import (
    GuestReport,
    ReportError,
    domain_xml,
    parse_reports,
)

pytestmark = pytest.mark.lab_boot

HOST = "lab4"
GUEST = "lab-boot-numa"
IMAGE_SRC = ROOT / ".build" / "guest-image"
IMAGE_DIR = f"/var/lib/libvirt/images/{GUEST}"
CONSOLE_LOG = f"/var/log/libvirt/qemu/{GUEST}.serial.log"
VCPUS = 6
MEMORY_MIB = 512
# Seconds from start to the kernel's report.  Under nested TCG the boot takes minutes (docs/lab.md).
BOOT_TIMEOUT_S = 1200
POLL_S = 5
# TCG's default and `maximum` CPUs are AMD-flavoured without topoext, and Linux then sees every thread
# as a core of its own (ENVIRONMENT.md: the lab itself needs vendor=GenuineIntel for the same reason).
# kvm64 is an Intel model that TCG runs, with CPUID leaf 0xB, so the guest kernel sees SMT siblings.
CPU_XML = "<cpu mode='custom' match='exact' check='none'><model fallback='allow'>kvm64</model></cpu>"


def image_dir(guest: str) -> str:
    return f"/var/lib/libvirt/images/{guest}"


def console_log(guest: str) -> str:
    return f"/var/log/libvirt/qemu/{guest}.serial.log"


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


def wait_for_report(host: LabHost, guest: str = GUEST) -> GuestReport:
    """The first report on a boot guest's serial log, waiting BOOT_TIMEOUT_S at most."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    text = ""
    log = console_log(guest)
    while time.monotonic() < deadline:
        text = host.run(f"cat {log} 2>/dev/null; true")
        reports = parse_reports(text)
        if reports:
            return reports[0]
        if "Kernel panic" in text or "VNUMA-POWEROFF" in text:
            break
        time.sleep(POLL_S)
    tail = "\n".join(text.replace("\r", "").splitlines()[-40:])
    raise ReportError(f"no report from {guest} on {host.topology.name} in {log}\n--- end of the console:\n{tail}")


@pytest.fixture(scope="module")
def booted(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabHost, dict[str, Any], GuestReport]]:
    host = lab.host(HOST)
    if not (IMAGE_SRC / "vmlinuz").is_file() or not (IMAGE_SRC / "initrd.img").is_file():
        pytest.fail(f"no guest image in {IMAGE_SRC}: run `make guest-image` (make lab-boot-test does)")
    out = tmp_path_factory.mktemp("lab-boot")
    nodeset = ",".join(str(node.id) for node in host.topology.nodes)
    xml = domain_xml(GUEST, VCPUS, MEMORY_MIB, CONSOLE_LOG, image_dir=IMAGE_DIR, cpu_xml=CPU_XML)
    try:
        # Define the flat guest and copy the image in two SSH connections: each costs seconds in the lab.
        remove_guest(host)
        lab_python(host, f"import os\nos.makedirs({IMAGE_DIR!r}, exist_ok=True)\nconn.defineXML({xml!r})")
        copy = ["scp", *SSH_OPTIONS, "-i", str(host.lab_dir.key), "-P", str(host.running.port)]
        files = [str(IMAGE_SRC / "vmlinuz"), str(IMAGE_SRC / "initrd.img")]
        subprocess.run([*copy, *files, f"root@127.0.0.1:{IMAGE_DIR}/"], check=True, timeout=900)
        lab.playbook(
            "boot.yml",
            "--limit",
            HOST,
            "--extra-vars",
            json.dumps({"lab_out": str(out), "guest": GUEST, "guest_nodeset": nodeset}),
        )
        applied = json.loads((out / "applied.json").read_text())
        started = time.monotonic()
        lab_python(host, start_code(GUEST))
        report = wait_for_report(host)
        # The figure docs/lab.md quotes; printed for `pytest -s` and make lab-boot-test's log.
        seen = time.monotonic() - started
        print(
            f"\n{GUEST} on {HOST}: kernel report at guest uptime {report.uptime:.0f} s, read {seen:.0f} s after start"
        )
        yield host, applied["layout"], report
    finally:
        remove_guest(host)


def test_the_guest_kernel_sees_the_planned_nodes_cpus_memory_and_distances(
    booted: tuple[LabHost, dict[str, Any], GuestReport],
) -> None:
    host, layout, report = booted
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


def test_the_guest_kernel_sees_the_labs_hmat(booted: tuple[LabHost, dict[str, Any], GuestReport]) -> None:
    _host, layout, report = booted
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
