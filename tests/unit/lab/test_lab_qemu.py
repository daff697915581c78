# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The QEMU command line of a lab hypervisor (scripts/lab/lab_qemu.py): no QEMU needed."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts" / "lab"))

from lab_qemu import BootFiles, kernel_cmdline, qemu_argv  # noqa: E402
from lab_topology import LabHypervisor, load_topology  # noqa: E402

FILES = BootFiles.under(Path("/lab/image"))


def hypervisors() -> tuple[LabHypervisor, ...]:
    return load_topology(
        [ROOT / "tests" / "lab" / "four-node.yml", ROOT / "tests" / "lab" / "two-node.yml"]
    ).hypervisors


def options(argv: list[str], flag: str) -> list[str]:
    return [argv[index + 1] for index, word in enumerate(argv) if word == flag]


def test_four_node_smt2_with_a_cpu_less_node_hmat_and_distances() -> None:
    four = hypervisors()[0]
    argv = qemu_argv(four, FILES, 40022, Path("/lab/lab4.console.log"))
    assert argv[0] == "qemu-system-x86_64"
    assert options(argv, "-name") == ["vnuma-lab-lab4,process=vnuma-lab-lab4"]
    assert options(argv, "-machine") == ["q35,hmat=on"]
    assert options(argv, "-accel") == ["tcg,thread=multi"]
    assert options(argv, "-cpu") == ["max,vendor=GenuineIntel"]
    assert options(argv, "-smp") == ["6,sockets=3,cores=1,threads=2"]
    assert options(argv, "-m") == ["3584M"]
    assert options(argv, "-object") == [
        "memory-backend-ram,id=mem0,size=1024M",
        "memory-backend-ram,id=mem1,size=1024M",
        "memory-backend-ram,id=mem2,size=1024M",
        "memory-backend-ram,id=mem3,size=512M",
    ]
    numa = options(argv, "-numa")
    # The CPU-less node 3 is initiated by its nearest CPU node (2) and gets no `-numa cpu`.
    assert [entry for entry in numa if entry.startswith("node,")] == [
        "node,nodeid=0,memdev=mem0,initiator=0",
        "node,nodeid=1,memdev=mem1,initiator=1",
        "node,nodeid=2,memdev=mem2,initiator=2",
        "node,nodeid=3,memdev=mem3,initiator=2",
    ]
    assert [entry for entry in numa if entry.startswith("cpu,")] == [
        "cpu,node-id=0,socket-id=0,core-id=0",
        "cpu,node-id=1,socket-id=1,core-id=0",
        "cpu,node-id=2,socket-id=2,core-id=0",
    ]
    distances = [entry for entry in numa if entry.startswith("dist,")]
    assert len(distances) == 12
    assert "dist,src=0,dst=3,val=41" in distances
    assert "dist,src=3,dst=0,val=41" in distances
    hmat = [entry for entry in numa if entry.startswith("hmat-lb,")]
    # Latency and bandwidth from every CPU node to every node.
    assert len(hmat) == 3 * 4 * 2
    assert "hmat-lb,initiator=0,target=0,hierarchy=memory,data-type=access-latency,latency=100" in hmat
    assert "hmat-lb,initiator=2,target=3,hierarchy=memory,data-type=access-latency,latency=210" in hmat
    assert not [entry for entry in hmat if "initiator=3" in entry]


def test_the_image_is_read_only_and_ssh_is_forwarded_on_loopback_only() -> None:
    argv = qemu_argv(hypervisors()[0], FILES, 40022, Path("/lab/lab4.console.log"))
    assert options(argv, "-drive") == ["file=/lab/image/rootfs.ext4,if=none,id=root,format=raw,snapshot=on"]
    assert "nvme,drive=root,serial=vnuma-lab" in options(argv, "-device")
    assert options(argv, "-netdev") == ["user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22"]
    assert options(argv, "-kernel") == ["/lab/image/vmlinuz"]
    assert options(argv, "-serial") == ["file:/lab/lab4.console.log"]
    assert "-nodefaults" in argv


def test_hugepages_are_reserved_per_node_on_the_kernel_command_line() -> None:
    four, two = hypervisors()
    assert kernel_cmdline(four).endswith("hugepagesz=2M hugepages=0:32,1:32,2:32,3:16")
    assert kernel_cmdline(two).endswith("hugepages=0:16,1:16")


def test_the_kernel_boots_without_an_initrd_from_the_nvme_disk() -> None:
    """The cloud kernel has NVMe built in (virtio-blk is a module): no initrd, which boots faster."""
    four = hypervisors()[0]
    argv = qemu_argv(four, FILES, 40022, Path("/lab/lab4.console.log"))
    assert "-initrd" not in argv
    words = kernel_cmdline(four).split()
    assert {"root=/dev/nvme0n1", "rootwait", "rw", "console=ttyS0"} <= set(words)
    # The image's lab-network.service configures eth0; lab.py waits for the ready line on the console.
    assert "net.ifnames=0" in words
    # Under load TCG's TSC looks unstable; the HPET fallback would slow the whole lab down.
    assert "tsc=reliable" in words
    # The firmware runs no network option ROM.
    assert "virtio-net-pci,netdev=net0,romfile=" in options(argv, "-device")


def test_two_nodes_in_one_socket_without_smt_or_hmat() -> None:
    two = hypervisors()[1]
    argv = qemu_argv(two, FILES, 40023, Path("/lab/lab2.console.log"))
    assert options(argv, "-machine") == ["q35"]
    assert options(argv, "-smp") == ["4,sockets=1,cores=4,threads=1"]
    numa = options(argv, "-numa")
    assert [entry for entry in numa if entry.startswith("node,")] == [
        "node,nodeid=0,memdev=mem0",
        "node,nodeid=1,memdev=mem1",
    ]
    assert [entry for entry in numa if entry.startswith("cpu,")] == [
        "cpu,node-id=0,socket-id=0,core-id=0",
        "cpu,node-id=0,socket-id=0,core-id=1",
        "cpu,node-id=1,socket-id=0,core-id=2",
        "cpu,node-id=1,socket-id=0,core-id=3",
    ]
    assert [entry for entry in numa if entry.startswith("dist,")] == [
        "dist,src=0,dst=1,val=12",
        "dist,src=1,dst=0,val=12",
    ]
    assert not [entry for entry in numa if entry.startswith("hmat-lb,")]


def test_every_node_gets_a_pci_device_on_its_own_expander_bus() -> None:
    """The lab's node-device XML then reports real nodes (tests/lab/test_lab_devices.py)."""
    four = hypervisors()[0]
    devices = options(qemu_argv(four, FILES, 40022, Path("/lab/lab4.console.log")), "-device")
    expanders = [entry for entry in devices if entry.startswith("pxb-pcie,")]
    assert expanders == [
        f"pxb-pcie,id=pxb{node},bus_nr={128 + 16 * node},numa_node={node},bus=pcie.0" for node in range(4)
    ]
    for node in range(4):
        assert f"pcie-root-port,id=pxb{node}-port,bus=pxb{node},chassis={node + 1},slot=0" in devices
        assert f"virtio-rng-pci,id=rng{node},bus=pxb{node}-port" in devices
