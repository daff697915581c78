# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fast boot's parts agree: kernel command line, the image's files and lab.py's readiness wait."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LAB_SCRIPTS = ROOT / "scripts" / "lab"
ROOTFS = LAB_SCRIPTS / "rootfs"
sys.path.insert(0, str(LAB_SCRIPTS))

from lab import READY_PREFIX, console_ready  # noqa: E402
from lab_qemu import kernel_cmdline  # noqa: E402
from lab_topology import load_topology  # noqa: E402


def cmdline_words() -> list[str]:
    return kernel_cmdline(load_topology([ROOT / "tests" / "lab" / "four-node.yml"]).hypervisors[0]).split()


def test_the_ready_line_gives_the_hypervisors_uptime(tmp_path: Path) -> None:
    console = tmp_path / "lab4.console.log"
    assert console_ready(console) is None
    console.write_text("Debian GNU/Linux 12\nvnuma-lab: ready af", encoding="utf-8")
    assert console_ready(console) is None
    console.write_text(f"noise\r\n{READY_PREFIX}23.41 s\r\n", encoding="utf-8")
    assert console_ready(console) == 23.41


def test_the_image_writes_the_ready_line_lab_py_waits_for() -> None:
    unit = (ROOTFS / "etc/systemd/system/lab-ready.service").read_text(encoding="utf-8")
    assert f'echo "{READY_PREFIX}$(' in unit
    assert "virsh -c qemu:///system capabilities" in unit
    assert re.search(r"^After=.*libvirtd\.service", unit, re.MULTILINE)
    assert re.search(r"^After=.*ssh\.service", unit, re.MULTILINE)


def test_the_root_disk_and_the_network_link_match_the_kernel_command_line() -> None:
    words = cmdline_words()
    root = next(word.split("=", 1)[1] for word in words if word.startswith("root="))
    fstab = [line.split() for line in (ROOTFS / "etc/fstab").read_text(encoding="utf-8").splitlines()]
    assert [entry[0] for entry in fstab if entry and not entry[0].startswith("#") and entry[1] == "/"] == [root]
    network = (ROOTFS / "etc/systemd/system/lab-network.service").read_text(encoding="utf-8")
    # net.ifnames=0 names the one link eth0, which the static unit configures.
    assert "net.ifnames=0" in words
    assert "dev eth0" in network
    # eth0 comes from virtio_net, loaded early by systemd-modules-load, which the unit waits for.
    assert "virtio_net" in (ROOTFS / "etc/modules-load.d/lab.conf").read_text(encoding="utf-8").split()
    assert "After=systemd-modules-load.service" in network


def test_the_build_enables_the_lab_units_and_keeps_what_libvirt_needs() -> None:
    script = (LAB_SCRIPTS / "build-image.sh").read_text(encoding="utf-8")
    enable = re.search(r"systemctl (?:--quiet )?enable ([^'\"]+)", script)
    assert enable is not None
    assert set(enable.group(1).split()) >= {
        "ssh.service",
        "libvirtd.service",
        "lab-network.service",
        "lab-ready.service",
    }
    masked_block = re.search(r"^MASKED=\((.*?)^\)", script, re.MULTILINE | re.DOTALL)
    assert masked_block is not None
    masked = set(masked_block.group(1).split())
    # hugetlbfs (hugepage-backed guests), udev (loads virtio_net), machined and dbus (libvirt registers
    # its guests there) and virtlogd (QEMU's logs) must keep running.
    kept = {
        "dev-hugepages.mount",
        "systemd-udevd.service",
        "systemd-machined.service",
        "dbus.service",
        "virtlogd.service",
        "virtlogd.socket",
        "libvirtd.service",
        "ssh.service",
    }
    assert not masked & kept
