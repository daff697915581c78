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

The guest kernel's own report must show each node grown by exactly what its device plugged.

Nested TCG makes the boot slow: marked ``lab_boot`` like test_lab_boot.py, run after every other lab test,
its guest booting beside test_lab_boot.py's (conftest.py: boot_guests; docs/lab.md has the time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Lab, LabHost
from lab_checks import Region, parse_numa_maps
from test_lab_boot import (
    BOOT_TIMEOUT_S,
    CPU_XML,
    LAB_CMDLINE,
    console_log,
    define_and_lay_out,
    image_dir,
    wait_for_report,
)
from test_lab_fleet import lab_python, start_code

from ansible_collections.vnuma.libvirt.tests.integration.test_harness import FIRMWARE_HOLES_KIB, check_node_memory
from ansible_collections.vnuma.libvirt.tests.support.realguest import (
    GuestNode,
    GuestReport,
    domain_xml,
)

pytestmark = pytest.mark.lab_boot

HOST = "lab4"
GUEST = "lab-vmem-numa"
IMAGE_DIR = image_dir(GUEST)
CONSOLE_LOG = console_log(GUEST)
VCPUS = 6
MIB = 1024
# Three cells of 256 MiB; max_memory leaves 3 x 192 MiB for the devices; the total plugs 64 MiB in each.
CELL_MIB = 256
DEVICE_MIB = 192
PLUG_MIB = 64
MEMORY_MIB = 3 * CELL_MIB
MAX_MEMORY_MIB = MEMORY_MIB + 3 * DEVICE_MIB
TOTAL_MIB = MEMORY_MIB + 3 * PLUG_MIB
# Linux's memory block on x86 with less than 64 GiB of memory: the unit in which plugged memory is added.
MEMORY_BLOCK_MIB = 128
# After the kernel's report shows the plugged memory, QEMU has backed it (it preallocates a block before it
# acknowledges the plug): a short wait for numa_maps to say so, generous for a loaded lab.
MAPS_TIMEOUT_S = 300
# The guest onlines plugged memory movable (a shrink then always completes, docs/vnuma_domain.md), and
# stays up after its report (vnuma.wait) so that its QEMU process can be read.
CMDLINE = f"{LAB_CMDLINE} memhp_default_state=online_movable vnuma.wait=1 vnuma.timeout={BOOT_TIMEOUT_S}"
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


def plugged(report: GuestReport, cells: list[int]) -> bool:
    """Whether the guest kernel has every cell's plugged memory online (present beyond the cell's own)."""
    wanted = (CELL_MIB + PLUG_MIB) * MIB - FIRMWARE_HOLES_KIB
    return all(cell in report.nodes and report.nodes[cell].present_kib > wanted for cell in cells)


def device_regions(maps: str, nodes: list[int]) -> dict[int, list[Region]]:
    """The device-sized mappings bound to each of ``nodes`` (one virtio-mem backend per cell)."""
    regions = sized_regions(maps)
    return {
        node: [
            region
            for size, region in regions
            if size == DEVICE_MIB * MIB and region.policy == "bind" and region.nodes == {node}
        ]
        for node in nodes
    }


def wait_for_backed(host: LabHost, nodes: list[int]) -> str:
    """numa_maps of the guest's QEMU once each node's device backend holds what the guest plugged."""
    deadline = time.monotonic() + MAPS_TIMEOUT_S
    while True:
        maps = lab_python(host, NUMA_MAPS_CODE)
        devices = device_regions(maps, nodes)
        if all(len(found) == 1 and found[0].kib() >= PLUG_MIB * MIB for found in devices.values()):
            return maps
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{GUEST}: the virtio-mem backends do not hold {PLUG_MIB} MiB each after {MAPS_TIMEOUT_S} s: {devices}"
            )
        time.sleep(5)


@dataclass(frozen=True)
class Started:
    host: LabHost
    applied: dict[str, Any]
    started: float


def start_guest(lab: Lab, out: Path) -> Started:
    """Define the guest, lay it out with its devices (virtio_mem.yml) and start it; the conftest's boot_guests
    calls this."""
    host = lab.host(HOST)
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
    variables = {
        "guest_nodeset": nodeset,
        "guest_memory": f"{MEMORY_MIB} MiB",
        "guest_max_memory": f"{MAX_MEMORY_MIB} MiB",
        "guest_total_memory": f"{TOTAL_MIB} MiB",
    }
    applied = define_and_lay_out(lab, GUEST, xml, "virtio_mem.yml", variables, out)
    started = time.monotonic()
    lab_python(host, start_code(GUEST))
    return Started(host, applied, started)


@pytest.fixture(scope="module")
def booted(boot_guests: dict[str, Any]) -> tuple[dict[str, Any], GuestReport, str]:
    started: Started = boot_guests[GUEST]
    host, applied = started.host, started.applied
    cells = [cell["id"] for cell in applied["layout"]["cells"]]
    # The driver plugs after it loads, so the first report may come before the memory: wait for it.
    report = wait_for_report(
        host, GUEST, lambda seen: plugged(seen, cells), f"report with {PLUG_MIB} MiB plugged in every node"
    )
    maps = wait_for_backed(host, [int(cell["memory_nodes"]) for cell in applied["layout"]["cells"]])
    print(f"\n{GUEST} on {HOST}: kernel report {time.monotonic() - started.started:.0f} s after start")
    return applied, report, maps


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
    assert requested == {str(cell["id"]): str(PLUG_MIB * MIB) for cell in cells}, applied["changes"]
    regions = sized_regions(maps)
    for cell in cells:
        node = int(cell["memory_nodes"])
        bound = [(size, region) for size, region in regions if region.policy == "bind" and region.nodes == {node}]
        devices = [region for size, region in bound if size == DEVICE_MIB * MIB]
        memory = [region for size, region in bound if size == CELL_MIB * MIB]
        what = f"cell {cell['id']} on host node {node}: {bound}"
        # The device's backend holds what the guest plugged, all of it on the cell's node.
        assert len(devices) == 1, what
        assert dict(devices[0].pages) == {node: PLUG_MIB * MIB // 4}, what
        # The cell's own memory, preallocated, beside it.
        assert len(memory) == 1, what
        assert dict(memory[0].pages) == {node: CELL_MIB * MIB // 4}, what


def test_the_guest_kernel_sees_each_cells_plugged_memory(booted: tuple[dict[str, Any], GuestReport, str]) -> None:
    applied, report, _maps = booted
    for cell in applied["layout"]["cells"]:
        node = report.nodes[cell["id"]]
        what = f"guest node {cell['id']} (host node {cell['memory_nodes']})"
        # The kernel adds hot-plugged memory in whole memory blocks and counts the block as present, but only
        # the plugged part as usable (virtio-mem keeps the rest of the block offline): measured in this test,
        # node 0 showed 128 MiB more present and 64 MiB more MemTotal.  Less the blocks and the plugged
        # 64 MiB, the node is what the cell's planned memory boots with (the check the boot test makes), so
        # MemTotal grew by exactly what the device plugged, on the cell's own node.
        blocks = round((node.present_kib - cell["memory_kib"]) / (MEMORY_BLOCK_MIB * MIB))
        assert blocks >= 1, f"{what}: present {node.present_kib} KiB, no memory block added"
        booted_with = GuestNode(
            node.cpus,
            node.distances,
            node.mem_kib - PLUG_MIB * MIB,
            node.present_kib - blocks * MEMORY_BLOCK_MIB * MIB,
        )
        check_node_memory(booted_with, cell["memory_kib"], cell["id"] == 0, what)
