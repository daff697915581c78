# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The network between the lab hypervisors of one lab (docs/lab.md, "The lab network").

Every pair of lab hypervisors gets a point-to-point link of its own: one virtio NIC in each, joined by QEMU's
UDP socket backend on 127.0.0.1.  The outer machine only ever sees loopback datagrams between two QEMU
processes; nothing inside the lab reaches it or anything beyond it.  A link per pair, not one shared segment,
because QEMU's shared segment (multicast) needs a multicast route the loopback device does not have.

Each hypervisor has one address on the lab network, derived from its place in the lab (the order of the
topology files): 10.77.0.1 for the first, 10.77.0.2 for the next, and so on.  It holds that address on
each of its links and routes each peer's address over the link to that peer.  Its host name becomes its
lab name, and /etc/hosts names every hypervisor, so that ``qemu+ssh://lab2/system`` and libvirt's default
migration URI (``tcp://<destination host name>``) both reach the peer over the lab network.

libvirt between hypervisors goes over SSH with the lab's own key (qemu+ssh), not over libvirtd's TCP socket:
the key and sshd are already there, libvirtd needs no restart and no listener without authentication.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NETWORK_PREFIX = "10.77.0."
# The user-network NIC keeps QEMU's default MAC; the links' MACs say which pair they join.
MAC_PREFIX = "52:54:00:77"


@dataclass(frozen=True)
class PeerLink:
    """One end of the link from a lab hypervisor to a peer: its NIC's MAC and the UDP ports on 127.0.0.1."""

    peer: str
    peer_address: str
    mac: str
    local_port: int
    remote_port: int


def lab_address(index: int) -> str:
    """The lab network address of the hypervisor at ``index`` in the lab (topology files' order)."""
    return f"{NETWORK_PREFIX}{index + 1}"


def peer_links(names: Sequence[str], ports: Mapping[tuple[int, int], int]) -> dict[str, list[PeerLink]]:
    """Each hypervisor's links to every other; ``ports[(i, j)]`` is the UDP port i's end toward j binds."""
    links: dict[str, list[PeerLink]] = {name: [] for name in names}
    for index, name in enumerate(names):
        for other, peer in enumerate(names):
            if other != index:
                links[name].append(
                    PeerLink(
                        peer=peer,
                        peer_address=lab_address(other),
                        mac=f"{MAC_PREFIX}:{index:02x}:{other:02x}",
                        local_port=ports[(index, other)],
                        remote_port=ports[(other, index)],
                    )
                )
    return links


def qemu_args(links: Sequence[PeerLink]) -> list[str]:
    """One virtio NIC per link on a UDP socket between two QEMU processes on 127.0.0.1."""
    args: list[str] = []
    for number, link in enumerate(links):
        args += [
            "-netdev",
            f"socket,id=peer{number},udp=127.0.0.1:{link.remote_port},localaddr=127.0.0.1:{link.local_port}",
            "-device",
            f"virtio-net-pci,netdev=peer{number},mac={link.mac},romfile=",
        ]
    return args


def setup_script(name: str, names: Sequence[str], links: Sequence[PeerLink], private_key: str) -> str:
    """The shell script that joins one booted hypervisor to the lab network (run once, as root, over SSH).

    The image stays as built: the addresses depend on the lab, and a change to the image rebuilds it.
    """
    address = lab_address(names.index(name))
    hosts = "".join(f"{lab_address(index)} {peer}\n" for index, peer in enumerate(names))
    lines = [
        "set -eu",
        f"hostname {shlex.quote(name)}",
        f"echo {shlex.quote(name)} >/etc/hostname",
        f"printf %s {shlex.quote(hosts)} >>/etc/hosts",
        # The links' NICs are probed with eth0, which SSH already used; a slow probe gets 10 s.
        'nic() { for d in /sys/class/net/*; do [ "$(cat "$d/address")" = "$1" ] && echo "${d##*/}" && return 0;'
        " done; return 1; }",
    ]
    for link in links:
        lines += [
            f"for i in $(seq 100); do nic {link.mac} >/dev/null && break; sleep 0.1; done",
            f"dev=$(nic {link.mac})",
            'ip link set "$dev" up',
            f'ip address add {address}/32 dev "$dev"',
            f'ip route add {link.peer_address}/32 dev "$dev" src {address}',
        ]
    peers = " ".join(shlex.quote(peer) for peer in names)
    config = (
        f"Host {peers} {NETWORK_PREFIX}*\n"
        "  IdentityFile /root/.ssh/id_lab\n"
        "  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n"
        "  BatchMode yes\n"
    )
    lines += [
        "install -d -m 700 /root/.ssh",
        f"printf '%s\\n' {shlex.quote(private_key.strip())} >/root/.ssh/id_lab",
        "chmod 600 /root/.ssh/id_lab",
        f"printf %s {shlex.quote(config)} >/root/.ssh/config",
    ]
    return "\n".join(lines) + "\n"
