# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virtio-mem cells in a lab hypervisor: the memory each cell's device plugs sits on the cell's host node.

One guest on lab4, one boot of the project's guest image (make guest-image), laid out by vnuma_domain over
the three nodes with CPUs, each cell with its virtio-mem device, and a total_memory that has every
device plug 64 MiB.  A device's memory is only backed where the guest kernel plugs it; the guest asks for
immediate allocation, so QEMU preallocates each block as the guest plugs it (libvirt passes
``prealloc`` on to virtio-mem) and the lab's /proc/<qemu pid>/numa_maps shows, per device, exactly what
was plugged, bound to and resident on the cell's host node.  The cells' own memory, preallocated too,
is checked beside it.

Nested TCG makes the boot slow: marked ``lab_boot`` like test_lab_boot.py, run by `make lab-boot-test`
(docs/lab.md has the time).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT, Lab
from lab import SSH_OPTIONS
from lab_checks import Region, parse_numa_maps
from test_lab_boot import CPU_XML, console_log, image_dir, remove_guest, wait_for_report
from test_lab_fleet import lab_python, start_code

from ansible_collections.vnuma.libvirt.tests.support.realguest import (
    GuestReport,
    domain_xml,
)

pytestmark = pytest.mark.lab_boot

HOST = "lab4"
GUEST = "lab-vmem-numa"
IMAGE_SRC = ROOT / ".build" / "guest-image"
IMAGE_DIR = image_dir(GUEST)
CONSOLE_LOG = console_log(GUEST)
VCPUS = 6
MIB = 1024
# Three cells of 256 MiB; max_memory leaves 3 x 192 MiB for the devices; the total plugs 64 MiB in each.
MEMORY_MIB = 768
MAX_MEMORY_MIB = 768 + 3 * 192
TOTAL_MIB = 768 + 3 * 64
BOOT_TIMEOUT_S = 1200
# The guest onlines plugged memory movable (a shrink then always completes, docs/vnuma_domain.md), and
# stays up after its report (vnuma.wait) so that its QEMU process can be read.
CMDLINE = f"memhp_default_state=online_movable vnuma.wait=1 vnuma.timeout={BOOT_TIMEOUT_S}"
ALLOCATION = "<memoryBacking><allocation mode='immediate'/></memoryBacking>"

# Prints each of the guest's QEMU mappings as "<size in KiB> <numa_maps line>".
NUMA_MAPS_CODE = f"""
pid = int(open('/run/libvirt/qemu/{GUEST}.pid').read())
sizes = {{}}
for line in open(f'/proc/{{pid}}/maps'):
    start, end = line.split()[0].split('-')
    sizes[start] = (int(end, 16) - int(start, 16)) // 1024
for line in open(f'/proc/{{pid}}/numa_maps'):
    print(sizes.get(line.split()[0].lstrip('0') or '0', sizes.get(line.split()[0], 0)), line.rstrip())
"""


def sized_regions(text: str) -> list[tuple[int, Region]]:
    """(size KiB, region) of each line NUMA_MAPS_CODE printed."""
    found = []
    for line in text.splitlines():
        size, _space, rest = line.partition(" ")
        if size.isdigit() and rest:
            found.extend((int(size), region) for region in parse_numa_maps(rest))
    return found


@pytest.fixture(scope="module")
def booted(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], GuestReport, str]]:
    host = lab.host(HOST)
    if not (IMAGE_SRC / "vmlinuz").is_file() or not (IMAGE_SRC / "initrd.img").is_file():
        pytest.fail(f"no guest image in {IMAGE_SRC}: run `make guest-image` (make lab-boot-test does)")
    out = tmp_path_factory.mktemp("lab-vmem")
    nodeset = ",".join(str(node.id) for node in host.topology.nodes if node.cpus)
    xml = domain_xml(
        GUEST,
        VCPUS,
        MEMORY_MIB,
        CONSOLE_LOG,
        image_dir=IMAGE_DIR,
        cpu_xml=CPU_XML,
        cmdline=CMDLINE,
        extra_xml=ALLOCATION,
    )
    try:
        remove_guest(host, GUEST)
        lab_python(host, f"import os\nos.makedirs({IMAGE_DIR!r}, exist_ok=True)\nconn.defineXML({xml!r})")
        copy = ["scp", *SSH_OPTIONS, "-i", str(host.lab_dir.key), "-P", str(host.running.port)]
        files = [str(IMAGE_SRC / "vmlinuz"), str(IMAGE_SRC / "initrd.img")]
        subprocess.run([*copy, *files, f"root@127.0.0.1:{IMAGE_DIR}/"], check=True, timeout=900)
        lab.playbook(
            "virtio_mem.yml",
            "--limit",
            HOST,
            "--extra-vars",
            json.dumps(
                {
                    "lab_out": str(out),
                    "guest": GUEST,
                    "guest_nodeset": nodeset,
                    "guest_memory": f"{MEMORY_MIB} MiB",
                    "guest_max_memory": f"{MAX_MEMORY_MIB} MiB",
                    "guest_total_memory": f"{TOTAL_MIB} MiB",
                }
            ),
        )
        applied = json.loads((out / "applied.json").read_text())
        started = time.monotonic()
        lab_python(host, start_code(GUEST))
        report = wait_for_report(host, GUEST)
        # Plugging (and QEMU's preallocation of each plugged block) follows the driver's load.
        time.sleep(10)
        maps = lab_python(host, NUMA_MAPS_CODE)
        print(f"\n{GUEST} on {HOST}: kernel report {time.monotonic() - started:.0f} s after start")
        yield applied, report, maps
    finally:
        remove_guest(host, GUEST)


def test_each_cells_plugged_memory_is_on_its_host_node(booted: tuple[dict[str, Any], GuestReport, str]) -> None:
    applied, report, maps = booted
    cells = applied["layout"]["cells"]
    assert sorted(report.nodes) == [cell["id"] for cell in cells]
    # The plan: 64 MiB requested per cell, in the definition the guest booted.
    requested = {
        change.split("]")[0].rsplit("cell", 1)[1]: change.rsplit(" ", 1)[1]
        for change in applied["changes"]
        if change.startswith("devices/memory[ua-vnuma-cell") and "/requested:" in change
    }
    assert requested == {str(cell["id"]): str(64 * MIB) for cell in cells}, applied["changes"]
    regions = sized_regions(maps)
    for cell in cells:
        node = int(cell["memory_nodes"])
        bound = [(size, region) for size, region in regions if region.policy == "bind" and region.nodes == {node}]
        devices = [region for size, region in bound if size == 192 * MIB]
        memory = [region for size, region in bound if size == 256 * MIB]
        what = f"cell {cell['id']} on host node {node}: {bound}"
        # The device's backend holds what the guest plugged, all of it on the cell's node.
        assert len(devices) == 1, what
        assert dict(devices[0].pages) == {node: 64 * MIB // 4}, what
        # The cell's own memory, preallocated, beside it.
        assert len(memory) == 1, what
        assert dict(memory[0].pages) == {node: 256 * MIB // 4}, what
