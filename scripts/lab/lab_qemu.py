# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The QEMU command line of one lab hypervisor (a pure function of its topology)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lab_network import PeerLink
from lab_network import qemu_args as link_args
from lab_topology import LabHypervisor

QEMU = "qemu-system-x86_64"
# Every lab process carries this in its -name, so that `lab-down` recognises what the lab started.
PROCESS_PREFIX = "vnuma-lab-"
# HMAT figures derived from the distances: latency grows and bandwidth shrinks with distance.
LOCAL_LATENCY_NS_PER_DISTANCE = 10
LOCAL_BANDWIDTH_MIB_S = 20480


@dataclass(frozen=True)
class BootFiles:
    """The lab image (scripts/lab/build-image.sh): kernel and root filesystem (no initrd: see kernel_cmdline)."""

    kernel: Path
    rootfs: Path

    @classmethod
    def under(cls, directory: Path) -> BootFiles:
        return cls(directory / "vmlinuz", directory / "rootfs.ext4")


def process_name(hypervisor: LabHypervisor) -> str:
    return f"{PROCESS_PREFIX}{hypervisor.name}"


# Every word here saves boot time under TCG or keeps a slow emulated machine from looking broken:
# - the root disk is NVMe, built into Debian's cloud kernel (virtio-blk is a module): no initrd to unpack
#   and no udev run inside one; rootwait because NVMe probes asynchronously;
# - tsc=reliable: on a loaded machine the kernel would find TCG's TSC unstable and fall back to the HPET,
#   which is far slower to read under emulation; no_timer_check likewise skips a timer check that a slow
#   emulated machine fails;
# - net.ifnames=0: the one link is eth0, as lab-network.service in the image expects;
# - 8250.nr_uarts=1, cryptomgr.notests, audit=0, nowatchdog: fewer probes, no self-tests, no audit, no
#   soft-lockup warnings when the host stalls the emulated CPUs.
KERNEL_WORDS = (
    "root=/dev/nvme0n1",
    "rootfstype=ext4",
    "rootwait",
    "rw",
    "console=ttyS0",
    "quiet",
    "mitigations=off",
    "systemd.show_status=0",
    "tsc=reliable",
    "no_timer_check",
    "net.ifnames=0",
    "8250.nr_uarts=1",
    "cryptomgr.notests",
    "audit=0",
    "nowatchdog",
)


def kernel_cmdline(hypervisor: LabHypervisor) -> str:
    """The lab kernel's command line: root disk, serial console, fast-boot options, per-node 2 MiB pools.

    The pools are reserved at boot (`hugepages=NODE:COUNT,...`, Linux 5.17 and later), before memory
    fragments; the lab checks them over SSH once it is up.
    """
    words = list(KERNEL_WORDS)
    pools = [f"{node.id}:{node.hugepages_2m}" for node in hypervisor.nodes if node.hugepages_2m]
    if pools:
        words += ["hugepagesz=2M", f"hugepages={','.join(pools)}"]
    return " ".join(words)


def numa_args(hypervisor: LabHypervisor) -> list[str]:
    """The -object / -numa options: one memory backend per node, cores per node, distances, HMAT."""
    args: list[str] = []
    for node in hypervisor.nodes:
        args += ["-object", f"memory-backend-ram,id=mem{node.id},size={node.memory_mib}M"]
        numa = f"node,nodeid={node.id},memdev=mem{node.id}"
        if hypervisor.hmat:
            numa += f",initiator={hypervisor.initiator(node)}"
        args += ["-numa", numa]
    for node in hypervisor.nodes:
        for socket, core in hypervisor.core_positions(node):
            args += ["-numa", f"cpu,node-id={node.id},socket-id={socket},core-id={core}"]
    count = len(hypervisor.nodes)
    for source in range(count):
        for other in range(count):
            if source != other:
                args += ["-numa", f"dist,src={source},dst={other},val={hypervisor.distances[source][other]}"]
    if hypervisor.hmat:
        for initiator in hypervisor.cpu_nodes:
            for target in hypervisor.nodes:
                distance = hypervisor.distances[initiator.id][target.id]
                latency = distance * LOCAL_LATENCY_NS_PER_DISTANCE
                bandwidth = LOCAL_BANDWIDTH_MIB_S * 10 // distance
                lb = f"hmat-lb,initiator={initiator.id},target={target.id},hierarchy=memory"
                args += ["-numa", f"{lb},data-type=access-latency,latency={latency}"]
                args += ["-numa", f"{lb},data-type=access-bandwidth,bandwidth={bandwidth}M"]
    return args


# The first bus number of each node's PCI expander bus: 16 apart from 128 up, room for its root port's bus.
PXB_FIRST_BUS = 128
PXB_BUS_STEP = 16


def device_args(hypervisor: LabHypervisor) -> list[str]:
    """One PCI device per node, so that the lab's own node-device XML reports real host nodes.

    Each node gets a PCIe expander bus (``pxb-pcie``) with ``numa_node`` set, a root port on it and a
    virtio RNG behind the port (a PCIe device cannot sit on the expander bus itself).  The lab's kernel
    reads the node from the firmware's proximity for the expander's host bridge, as on real hardware,
    and libvirt reports it in ``<numa node>`` (docs/lab.md).
    """
    args: list[str] = []
    for index, node in enumerate(hypervisor.nodes):
        bus = PXB_FIRST_BUS + index * PXB_BUS_STEP
        args += ["-device", f"pxb-pcie,id=pxb{node.id},bus_nr={bus},numa_node={node.id},bus=pcie.0"]
        args += ["-device", f"pcie-root-port,id=pxb{node.id}-port,bus=pxb{node.id},chassis={index + 1},slot=0"]
        args += ["-device", f"virtio-rng-pci,id=rng{node.id},bus=pxb{node.id}-port"]
    return args


def qemu_argv(
    hypervisor: LabHypervisor, files: BootFiles, ssh_port: int, console: Path, links: Sequence[PeerLink] = ()
) -> list[str]:
    """The whole command line: TCG, the topology, the image read-only, SSH on loopback only, the peer links."""
    machine = "q35,hmat=on" if hypervisor.hmat else "q35"
    return [
        QEMU,
        "-name",
        f"{process_name(hypervisor)},process={process_name(hypervisor)}",
        "-machine",
        machine,
        "-accel",
        "tcg,thread=multi",
        # Without the vendor, TCG's `max` CPU is AMD-flavoured and Linux sees cores, not SMT siblings.
        "-cpu",
        "max,vendor=GenuineIntel",
        "-smp",
        f"{hypervisor.cpus},sockets={hypervisor.sockets},cores={hypervisor.cores_per_socket},"
        f"threads={hypervisor.threads_per_core}",
        "-m",
        f"{hypervisor.memory_mib}M",
        *numa_args(hypervisor),
        "-kernel",
        str(files.kernel),
        "-append",
        kernel_cmdline(hypervisor),
        # snapshot=on: writes go to a temporary file, so the image stays as built and labs share it.
        "-drive",
        f"file={files.rootfs},if=none,id=root,format=raw,snapshot=on",
        "-device",
        "nvme,drive=root,serial=vnuma-lab",
        # restrict=on: the lab reaches nothing outside; only the forwarded SSH port reaches in.
        "-netdev",
        f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        # romfile=: no iPXE option ROM for the firmware to run (the kernel is loaded directly).
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
        # After the user network's NIC, so that it stays eth0 (the image's lab-network.service).
        *link_args(links),
        *device_args(hypervisor),
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        f"file:{console}",
        "-no-reboot",
    ]
