# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""I/O threads and emulator threads on the real libvirtd and QEMU, read back from the running QEMU's threads.

Guest one (q35, TCG, a real guest kernel): two cells on this machine's node, two virtio disks on tiny files,
``iothreads: per_cell`` with ``device_locality: all`` and vdb named near cell 1.  vnuma_domain writes one I/O
thread per cell pinned to its cell's host CPUs and puts each disk on its cell's thread; libvirt's
VIR_DOMAIN_DEFINE_VALIDATE accepts it, a rerun changes nothing.  Booted, the guest kernel reads vdb's
virtio-blk on node 1; libvirt's ``virDomainGetIOThreadInfo`` (``virsh iothreadinfo``) and the affinity of
QEMU's own ``IO iothreadN`` threads (``/proc/<pid>/task/*/status``) are the planned pins.  ``pinning: none``
on the running guest unpins them live, without a restart.

Guest two: one vCPU on a dedicated thread and ``emulator_threads: isolate``: the emulator gets the other host
CPU, QEMU's main thread runs there, and a third guest asking for a dedicated thread is refused, because the
emulator's CPU counts as held.
"""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest
from test_harness import BOOT_TIMEOUT
from vnuma_domain_support import domain_root, inactive_xml

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.module_run import ModuleExit, run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import GuestFactory, describe

# Dedicates host CPUs: runs after the other integration tests, alone (make integration).
pytestmark = pytest.mark.host_cpus

VIRTIO_VENDOR = "0x1af4"
VIRTIO_BLK = "0x1042"
PID_DIR = Path("/run/libvirt/qemu")


def disks_xml(tmp_path: Path, *targets: str) -> str:
    text = ""
    for target in targets:
        image = tmp_path / f"{target}.img"
        image.write_bytes(b"\0" * 1024 * 1024)
        text += (
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
            f"<source file='{image}'/><target dev='{target}' bus='virtio'/><readonly/></disk>"
        )
    return text


def threads(name: str) -> dict[str, list[str]]:
    """The running QEMU's threads: name -> the Cpus_allowed_list of each thread of that name."""
    pid = (PID_DIR / f"{name}.pid").read_text().strip()
    found: dict[str, list[str]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            status = (task / "status").read_text()
        except FileNotFoundError:
            continue  # a thread that ended while we looked
        allowed = next(
            line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list")
        )
        found.setdefault(comm, []).append(allowed)
    found["main"] = [
        next(
            line.split(":", 1)[1].strip()
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Cpus_allowed_list")
        )
    ]
    return found


def iothread_info(dom: libvirt.virDomain) -> dict[int, str]:
    """``virsh iothreadinfo``: I/O thread id -> its host CPUs."""
    return {number: format_cpuset(cpu for cpu, on in enumerate(cpumap) if on) for number, cpumap in dom.ioThreadInfo(0)}


def cell_cpus(xml: str) -> dict[int, str]:
    """Each guest cell's host CPUs as the definition pins its vCPUs (the union of their <vcpupin>s)."""
    root = domain_root(xml)
    pins = {int(pin.get("vcpu")): parse_cpuset(pin.get("cpuset"), "pin") for pin in root.iterfind("cputune/vcpupin")}
    cells = {}
    for cell in root.iterfind("cpu/numa/cell"):
        vcpus = parse_cpuset(cell.get("cpus"), "cell")
        cells[int(cell.get("id"))] = format_cpuset(set().union(*(pins[vcpu] for vcpu in vcpus)))
    return cells


def test_iothreads_per_cell_run_where_planned_and_repin_live(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str, tmp_path: Path
) -> None:
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    guest = make_guest(
        "h4-iothreads",
        vcpus=2,
        memory_mib=384,
        start=False,
        wait=True,
        guest_timeout=90,
        devices_xml=disks_xml(tmp_path, "vda", "vdb"),
    )
    options = {
        "name": guest.name,
        "mode": "node",
        "nodeset": str(node),
        "cells": 2,
        "iothreads": "per_cell",
        "device_locality": "all",
        "device_cells": "vdb=1",
    }
    before = inactive_xml(qemu_conn, guest.name)
    plan = run_module(options, check_mode=True, diff=True)
    assert plan["changed"] is True
    assert plan["diff"]["after"]["iothreads"] == 2
    assert plan["diff"]["after"]["devices/disk[vdb]/driver/iothread"] == 2
    assert inactive_xml(qemu_conn, guest.name) == before, "check mode wrote to the definition"

    applied = run_module(options)
    assert applied["changed"] is True
    defined = inactive_xml(qemu_conn, guest.name)
    qemu_conn.defineXMLFlags(defined, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    rerun = run_module(options)
    assert rerun["changed"] is False, rerun.get("changes")

    root = domain_root(defined)
    planned = {int(pin.get("iothread")): pin.get("cpuset") for pin in root.iterfind("cputune/iothreadpin")}
    cells = cell_cpus(defined)
    assert planned == {1: cells[0], 2: cells[1]}, defined
    disks = {
        disk.find("target").get("dev"): disk.find("driver").get("iothread") for disk in root.iterfind("devices/disk")
    }
    assert disks == {"vda": "1", "vdb": "2"}, defined

    guest.start()
    report = guest.report(BOOT_TIMEOUT)
    blk = sorted(
        function.node
        for function in report.pci.values()
        if (function.vendor, function.device) == (VIRTIO_VENDOR, VIRTIO_BLK)
    )
    assert blk == [0, 1], describe([report])
    assert iothread_info(guest.dom) == {1: cells[0], 2: cells[1]}
    running = threads(guest.name)
    assert running["IO iothread1"] == [cells[0]] and running["IO iothread2"] == [cells[1]], running

    unpinned = run_module({**options, "pinning": "none"})
    assert unpinned["changed"] is True and unpinned["restart_required"] is False, unpinned
    everywhere = format_cpuset(parse_capabilities(host_caps).cpu_node)
    assert iothread_info(guest.dom) == {1: everywhere, 2: everywhere}
    running = threads(guest.name)
    assert running["IO iothread1"] == [everywhere] and running["IO iothread2"] == [everywhere], running
    assert domain_root(inactive_xml(qemu_conn, guest.name)).find("cputune/iothreadpin") is None


def test_an_isolated_emulator_runs_on_its_own_cpu_which_others_cannot_take(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str, tmp_path: Path
) -> None:
    host = parse_capabilities(host_caps)
    if len(host.cpu_node) < 2:
        pytest.fail("emulator_threads isolate needs a host with two CPUs: one for the vCPU, one for the emulator")
    guest = make_guest(
        "h4-isolate",
        vcpus=1,
        memory_mib=256,
        start=False,
        wait=True,
        guest_timeout=60,
        devices_xml=disks_xml(tmp_path, "vda"),
    )
    options = {
        "name": guest.name,
        "mode": "host",
        "pinning": "thread",
        "emulator_threads": "isolate",
        "iothreads": "per_disk",
    }
    assert run_module(options)["changed"] is True
    root = domain_root(inactive_xml(qemu_conn, guest.name))
    vcpu = root.find("cputune/vcpupin").get("cpuset")
    emulator = root.find("cputune/emulatorpin").get("cpuset")
    assert len(parse_cpuset(emulator, "emulator")) == 1 and emulator != vcpu
    assert host.cpu_node[int(emulator)] == host.cpu_node[int(vcpu)]
    assert root.find("cputune/iothreadpin").get("cpuset") == vcpu

    guest.start()
    guest.report(BOOT_TIMEOUT)
    pinned = guest.dom.emulatorPinInfo(0)
    assert format_cpuset(cpu for cpu, on in enumerate(pinned) if on) == emulator
    running = threads(guest.name)
    assert running["main"] == [emulator], running
    assert running["CPU 0/TCG"] == [vcpu], running
    assert running["IO iothread1"] == [vcpu], running

    # Every host CPU is held now (the vCPU's and the emulator's): a dedicated vCPU for another guest is refused.
    other = make_guest("h4-isolate-other", vcpus=1, memory_mib=128, start=False)
    with pytest.raises(ModuleExit) as refused:
        run_module({"name": other.name, "mode": "host", "pinning": "thread"})
    message = str(refused.value.result["msg"])
    assert "pinning thread needs 1 free host threads" in message and guest.name in message, message
