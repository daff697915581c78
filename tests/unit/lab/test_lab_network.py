# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab network between lab hypervisors (scripts/lab/lab_network.py): links, QEMU options, the setup."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts" / "lab"))

from lab_network import lab_address, peer_links, qemu_args, setup_script  # noqa: E402
from lab_qemu import BootFiles, qemu_argv  # noqa: E402
from lab_topology import load_topology  # noqa: E402

NAMES = ["lab4", "lab2", "lab8"]
PORTS = {(i, j): 50000 + 10 * i + j for i in range(3) for j in range(3)}


def test_every_pair_is_linked_both_ways_on_loopback_ports_that_meet() -> None:
    links = peer_links(NAMES, PORTS)
    assert [link.peer for link in links["lab4"]] == ["lab2", "lab8"]
    assert [link.peer_address for link in links["lab2"]] == ["10.77.0.1", "10.77.0.3"]
    for name, own in links.items():
        for link in own:
            back = next(other for other in links[link.peer] if other.peer == name)
            # Each end sends to the port the other end listens on.
            assert (link.remote_port, link.local_port) == (back.local_port, back.remote_port)
    macs = [link.mac for own in links.values() for link in own]
    assert len(set(macs)) == len(macs) == 6
    assert lab_address(0) == "10.77.0.1"


def test_a_link_is_a_virtio_nic_on_a_udp_socket_bound_to_127_0_0_1() -> None:
    link = peer_links(NAMES[:2], PORTS)["lab4"][0]
    assert qemu_args([link]) == [
        "-netdev",
        "socket,id=peer0,udp=127.0.0.1:50010,localaddr=127.0.0.1:50001",
        "-device",
        "virtio-net-pci,netdev=peer0,mac=52:54:00:77:00:01,romfile=",
    ]


def test_the_links_come_after_the_user_network_nic_so_that_it_stays_eth0() -> None:
    four = load_topology([ROOT / "tests" / "lab" / "four-node.yml"]).hypervisors[0]
    links = peer_links(["lab4", "lab2"], PORTS)["lab4"]
    argv = qemu_argv(four, BootFiles.under(Path("/lab/image")), 40022, Path("/lab/c.log"), links)
    devices = [argv[index + 1] for index, word in enumerate(argv) if word == "-device"]
    nics = [device for device in devices if device.startswith("virtio-net-pci")]
    assert nics == ["virtio-net-pci,netdev=net0,romfile=", "virtio-net-pci,netdev=peer0,mac=52:54:00:77:00:01,romfile="]
    # No lab network without peers: a lab of one hypervisor boots as before.
    alone = qemu_argv(four, BootFiles.under(Path("/lab/image")), 40022, Path("/lab/c.log"))
    assert not any("peer" in word for word in alone)


def test_the_setup_script_is_valid_shell_and_names_every_hypervisor() -> None:
    links = peer_links(NAMES, PORTS)["lab2"]
    script = setup_script("lab2", NAMES, links, "-----BEGIN KEY-----\nabc'def\n-----END KEY-----\n")
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert "hostname lab2\n" in script
    assert "10.77.0.1 lab4\n10.77.0.2 lab2\n10.77.0.3 lab8\n" in script
    assert 'ip route add 10.77.0.1/32 dev "$dev" src 10.77.0.2' in script
    assert 'ip route add 10.77.0.3/32 dev "$dev" src 10.77.0.2' in script
    assert "Host lab4 lab2 lab8 10.77.0.*" in script
