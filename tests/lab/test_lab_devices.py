# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PCI devices on real host nodes: the lab gives each node an expander bus with a virtio RNG behind it
(scripts/lab/lab_qemu.py:device_args), so the lab's kernel and libvirt report real nodes.  vnuma_info must
report the lab's PCI devices by node exactly as the lab's /sys/bus/pci says, and pci_numa_affinity required
must refuse a guest passing the RNG of one node through while its cell is on another node, and accept it
on the device's node (defined only, never started: one playbook run, no guest boot)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Lab, LabHost

POLICY_HOST = "lab2"
# virtio-rng-pci, the modern device ID (the lab's devices behind its expander buses).
VIRTIO_RNG = ("0x1af4", "0x1044")


def sysfs_pci(host: LabHost) -> dict[str, tuple[int | None, tuple[str, str]]]:
    """The lab's PCI devices as its kernel has them: address -> (node or None for -1, (vendor, device))."""
    listing = host.run(
        "for d in /sys/bus/pci/devices/*; do echo ${d##*/} $(cat $d/numa_node) $(cat $d/vendor) $(cat $d/device); done"
    )
    found = {}
    for line in listing.splitlines():
        address, node, vendor, device = line.split()
        found[address] = (int(node) if int(node) >= 0 else None, (vendor, device))
    return found


def source_address(address: str) -> str:
    domain, bus, rest = address.split(":")
    slot, function = rest.split(".")
    return f"<address domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' function='0x{function}'/>"


@pytest.fixture(scope="module")
def run(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The playbook's reports, the kernel's view of every lab hypervisor, and the policy guest's device."""
    # lab2 when it is up (the smaller one), else the first lab hypervisor.
    policy_host = POLICY_HOST if POLICY_HOST in lab.hosts else sorted(lab.hosts)[0]
    host = lab.host(policy_host)
    kernel = {name: sysfs_pci(entry) for name, entry in lab.hosts.items()}
    # The device on the last node with CPUs, the guest first planned on another one (mode node needs CPUs).
    with_cpus = [node.id for node in host.topology.nodes if node.cpus]
    device_node, other_node = with_cpus[-1], with_cpus[0]
    rngs = [
        address
        for address, (node, ids) in sorted(kernel[policy_host].items())
        if ids == VIRTIO_RNG and node == device_node
    ]
    if not rngs:
        pytest.fail(f"{policy_host} has no virtio RNG on node {device_node} (scripts/lab/lab_qemu.py:device_args)")
    address = rngs[0]
    guest = f"h4-dev-{secrets.token_hex(3)}"
    xml = (
        f"<domain type='qemu'><name>{guest}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>"
        f"<hostdev mode='subsystem' type='pci' managed='no'><source>{source_address(address)}</source>"
        "<alias name='ua-rng-host'/></hostdev></devices></domain>"
    )
    host.run(f"cat > /tmp/{guest}.xml <<'EOF'\n{xml}\nEOF\nvirsh define /tmp/{guest}.xml")
    out = tmp_path_factory.mktemp("lab-devices")
    try:
        lab.playbook(
            "devices.yml",
            "--extra-vars",
            json.dumps(
                {
                    "lab_out": str(out),
                    "policy_host": policy_host,
                    "policy_guest": guest,
                    "device_node": str(device_node),
                    "other_node": str(other_node),
                }
            ),
        )
        reports = {name: json.loads((out / f"{name}.json").read_text()) for name in lab.hosts}
        policy = json.loads((out / f"{policy_host}-policy.json").read_text())
        yield {
            "kernel": kernel,
            "reports": reports,
            "policy": policy,
            "address": address,
            "device_node": device_node,
            "other_node": other_node,
            "guest": guest,
        }
    finally:
        host.run(f"virsh undefine {guest} >/dev/null 2>&1; rm -f /tmp/{guest}.xml; true")


def test_each_lab_node_has_a_device_libvirt_reports_on_it(lab: Lab, run: dict[str, Any]) -> None:
    for name, entry in lab.hosts.items():
        kernel: dict[str, tuple[int | None, tuple[str, str]]] = run["kernel"][name]
        # The expander buses work: the kernel puts one RNG on every node of the lab's topology.
        rng_nodes = sorted(node for node, ids in kernel.values() if ids == VIRTIO_RNG and node is not None)
        assert rng_nodes == [node.id for node in entry.topology.nodes]
        # vnuma_info (libvirt's node-device XML) says exactly what the kernel says.
        expected: dict[str, list[str]] = {}
        for address, (node, _ids) in sorted(kernel.items()):
            expected.setdefault("unknown" if node is None else str(node), []).append(address)
        assert run["reports"][name]["host"]["pci_devices"] == expected


def test_the_policy_on_a_device_of_the_lab(run: dict[str, Any]) -> None:
    policy, address, node = run["policy"], run["address"], run["device_node"]
    refused = policy["refused"]
    assert refused["failed"] is True
    assert refused["msg"].startswith(
        f"guest {run['guest']}: PCI device {address} (ua-rng-host) is on host node {node}; pci_numa_affinity "
        f"required needs each device on a host node the cells use (node {run['other_node']})"
    )
    assert policy["applied"]["changed"] is True
    assert policy["guest"]["devices"] == [
        {
            "address": address,
            "element": "hostdev",
            "alias": "ua-rng-host",
            "mac": None,
            "kind": "other",
            "host_node": node,
            "known": True,
            "local": True,
            "cell": 0,
        }
    ]
    assert policy["guest"]["spec"]["pci_numa_affinity"] == "required"
