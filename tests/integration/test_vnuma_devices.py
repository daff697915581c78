# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PCI devices on the real libvirtd (qemu:///system): the host's node devices, a guest's passthrough devices.

The host's PCI devices come from libvirt's node-device XML; the test compares them with what the
kernel says in /sys/bus/pci/devices (the same facts, read without libvirt).  A guest defined (never
started: passing the host's own devices through would take them away) with a ``<hostdev>`` and an
``<interface type='hostdev'>`` of two of the host's devices must be reported with their host nodes,
and pci_numa_affinity must judge it on them: on this machine the kernel gives every device node -1,
so ``required`` refuses, changing nothing, and the default ``legacy`` accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import PciAddress, pci_class_kind
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain, vnuma_info
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import GuestFactory

SYSFS = Path("/sys/bus/pci/devices")


def sysfs_devices() -> dict[str, tuple[int | None, str]]:
    """Every PCI device the kernel has: address -> (node or None for -1, kind from its class)."""
    found = {}
    for path in sorted(SYSFS.iterdir()):
        node = int((path / "numa_node").read_text())
        kind = pci_class_kind(int((path / "class").read_text(), 16))
        found[str(PciAddress.parse(path.name))] = (node if node >= 0 else None, kind)
    return found


def source_address(address: str, typed: bool = False) -> str:
    """The host address as libvirt writes it in a device's ``<source>`` (an interface's names its type)."""
    parsed = PciAddress.parse(address)
    kind = "type='pci' " if typed else ""
    return (
        f"<address {kind}domain='{parsed.domain:#06x}' bus='{parsed.bus:#04x}' slot='{parsed.slot:#04x}' "
        f"function='{parsed.function:#x}'/>"
    )


@pytest.fixture(scope="module")
def host_devices() -> dict[str, tuple[int | None, str]]:
    devices = sysfs_devices()
    if len(devices) < 2:
        pytest.fail("this machine has fewer than two PCI devices; the test needs two to pass through", pytrace=False)
    return devices


def test_devices_reported_and_judged(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_devices: dict[str, tuple[int | None, str]]
) -> None:
    first, second = sorted(host_devices)[-2:]
    guest = make_guest(
        "h4-dev",
        vcpus=2,
        memory_mib=128,
        start=False,
        devices_xml=(
            f"<hostdev mode='subsystem' type='pci' managed='no'><source>{source_address(first)}</source>"
            "<alias name='ua-pass0'/></hostdev>"
            "<interface type='hostdev' managed='no'><mac address='52:54:00:a4:00:01'/>"
            f"<source>{source_address(second, typed=True)}</source></interface>"
        ),
    )
    result = run_module({"guests": [guest.name]}, module=vnuma_info)
    # The host report: libvirt's node devices grouped by node, exactly what the kernel says.
    expected: dict[str, list[str]] = {}
    for address, (node, _kind) in sorted(host_devices.items()):
        expected.setdefault("unknown" if node is None else str(node), []).append(address)
    assert result["host"]["pci_devices"] == expected
    reported = result["guests"][0]["devices"]

    def entry(address: str, element: str, alias: str | None, mac: str | None) -> dict[str, Any]:
        node, kind = host_devices[address]
        return {
            "address": address,
            "element": element,
            "alias": alias,
            "mac": mac,
            "kind": kind,
            "host_node": node,
            "known": True,
            # The guest has no cells yet: its one cell floats over every host node with CPUs.
            "local": None if node is None else True,
            "cell": None if node is None else 0,
        }

    # In the order of the definition, which libvirt keeps as it likes (interfaces before hostdevs).
    assert sorted(reported, key=lambda device: device["address"]) == [
        entry(first, "hostdev", "ua-pass0", None),
        entry(second, "interface", None, "52:54:00:a4:00:01"),
    ]

    before = qemu_conn.lookupByName(guest.name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    base = {"name": guest.name, "mode": "node", "nodeset": "0", "capacity": "ignore"}
    refused = fail_module({**base, "pci_numa_affinity": "required"}, module=vnuma_domain)
    assert refused["msg"].startswith(
        f"guest {guest.name}: PCI device {second} (52:54:00:a4:00:01) reports no host node"
    )
    assert f"PCI device {first} (ua-pass0) reports no host node" in refused["msg"]
    assert refused["msg"].endswith("pci_numa_affinity legacy or preferred allows devices without a host node")
    assert qemu_conn.lookupByName(guest.name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before

    applied = run_module(base, module=vnuma_domain)
    assert applied["changed"] is True
    after = qemu_conn.lookupByName(guest.name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    # The policy is stored with the spec (libvirt writes the metadata's attributes in double quotes).
    assert 'pci_numa_affinity="legacy"' in after
    # The passthrough devices are left exactly where they were.
    assert source_address(first) in after
    assert source_address(second, typed=True) in after
