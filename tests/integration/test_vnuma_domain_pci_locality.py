# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PCI locality the guest can see, on a real guest kernel: a virtio device near cell 1 reads node 1.

One guest, one boot (q35, TCG): two cells on this machine's node, a virtio-rng named near cell 1 by its
alias and a virtio disk on a tiny file that ``device_locality: all`` puts near cell 0.  vnuma_domain writes
an expander bus per cell with a root port per device (libvirt's VIR_DOMAIN_DEFINE_VALIDATE accepts it; a
rerun changes nothing), and the guest kernel's own report (``/sys/bus/pci/devices/*/numa_node``, /init of
scripts/build-guest-image.sh) gives each device the planned cell.  The diff of the move shows each device's
address as libvirt gave it and the new one.  Then, with the guest still running, ``device_locality: none``
removes the buses and puts every device back where libvirt had it, waiting for the next boot: the
definition's devices are those from before the move, compared as models.
"""

from __future__ import annotations

from pathlib import Path

import libvirt
from test_harness import BOOT_TIMEOUT
from vnuma_domain_support import domain_root, inactive_xml

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import GuestFactory, describe

# virtio's PCI vendor, and the device ids of a modern (virtio 1.0) block device and entropy source.
VIRTIO_VENDOR = "0x1af4"
VIRTIO_BLK = "0x1042"
VIRTIO_RNG = "0x1044"


def owned_controllers(xml: str) -> dict[str, tuple[str, str | None]]:
    """The collection's PCI controllers of a definition: alias -> (model, <target><node> text)."""
    found = {}
    for element in domain_root(xml).iterfind("devices/controller[@type='pci']"):
        alias = element.find("alias")
        if alias is not None and alias.get("name", "").startswith("ua-vnuma-"):
            node = element.find("target/node")
            found[alias.get("name")] = (element.get("model"), None if node is None else node.text)
    return found


def devices_model(xml: str) -> list[tuple[str, dict[str, str], dict[str, str] | None]]:
    """Every device of a definition as (tag, attributes, its guest address's attributes)."""
    return [
        (
            element.tag,
            dict(element.attrib),
            None if element.find("address") is None else dict(element.find("address").attrib),
        )
        for element in domain_root(xml).iterfind("devices/*")
    ]


def pci_address(xml: str, path: str) -> str:
    """The guest PCI address of the device at ``path`` as the collection's diff writes it (0000:bb:ss.f)."""
    address = domain_root(xml).find(f"{path}/address")
    assert address is not None and address.get("type") == "pci", xml
    bus, slot, function = (int(address.get(name, "0"), 0) for name in ("bus", "slot", "function"))
    return f"0000:{bus:02x}:{slot:02x}.{function:x}"


def test_a_virtio_device_near_cell_1_reads_node_1_in_the_guest(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str, tmp_path: Path
) -> None:
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    disk = tmp_path / "tiny.img"
    disk.write_bytes(b"\0" * 1024 * 1024)
    guest = make_guest(
        "h5-pci-locality",
        vcpus=2,
        memory_mib=512,
        start=False,
        # Up after its report: the option's removal below must find it running (a restart then pending).
        wait=True,
        devices_xml=(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
            f"<source file='{disk}'/><target dev='vda' bus='virtio'/><readonly/></disk>"
            "<rng model='virtio'><backend model='random'>/dev/urandom</backend><alias name='ua-rng0'/></rng>"
        ),
    )
    base = {"name": guest.name, "mode": "node", "nodeset": str(node), "cells": 2}
    near = {**base, "device_locality": "all", "device_cells": [{"alias": "ua-rng0", "cell": 1}]}

    before = inactive_xml(qemu_conn, guest.name)
    plan = run_module(near, check_mode=True, diff=True)
    assert plan["changed"] is True
    assert plan["diff"]["after"]["devices/controller[ua-vnuma-pxb1]/node"] == 1, plan["diff"]["after"]
    assert "devices/rng[ua-rng0]/address" in plan["diff"]["after"], plan["diff"]["after"]
    # The first move shows where libvirt had put each device (the definition had no address for them).
    for path, key in (("devices/rng", "devices/rng[ua-rng0]/address"), ("devices/disk", "devices/disk[vda]/address")):
        assert plan["diff"]["before"][key] == pci_address(before, path), plan["diff"]["before"]
        assert plan["diff"]["after"][key] != plan["diff"]["before"][key]
    assert inactive_xml(qemu_conn, guest.name) == before, "check mode wrote to the definition"

    applied = run_module(near)
    assert applied["changed"] is True
    assert applied["restart_required"] is False
    defined = inactive_xml(qemu_conn, guest.name)
    assert owned_controllers(defined) == {
        "ua-vnuma-pxb0": ("pcie-expander-bus", "0"),
        "ua-vnuma-port0-0": ("pcie-root-port", None),
        "ua-vnuma-pxb1": ("pcie-expander-bus", "1"),
        "ua-vnuma-port1-0": ("pcie-root-port", None),
    }, defined
    # libvirt's own validation takes the definition as libvirt wrote it back.
    qemu_conn.defineXMLFlags(defined, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    rerun = run_module(near)
    assert rerun["changed"] is False, rerun.get("changes")
    assert inactive_xml(qemu_conn, guest.name) == defined

    guest.start()
    report = guest.report(BOOT_TIMEOUT)
    assert sorted(report.nodes) == [0, 1], describe([report])
    nodes = {
        function.device: function.node
        for function in report.pci.values()
        if function.vendor == VIRTIO_VENDOR and function.device in (VIRTIO_BLK, VIRTIO_RNG)
    }
    assert nodes == {VIRTIO_RNG: 1, VIRTIO_BLK: 0}, report.pci
    # Everything else stays on the root bus, which belongs to no node.
    others = {address: function.node for address, function in report.pci.items() if function.vendor != VIRTIO_VENDOR}
    assert others and set(others.values()) <= {-1, 0, 1}, others

    # Removing the option: no owned controller left, every device back where libvirt had it, at the next boot.
    removed = run_module({**base, "device_locality": "none"})
    assert removed["changed"] is True
    assert removed["restart_required"] is True
    flat = inactive_xml(qemu_conn, guest.name)
    assert owned_controllers(flat) == {}, flat
    assert devices_model(flat) == devices_model(before), flat
    assert "vnuma-addresses" not in flat
    again = run_module({**base, "device_locality": "none"})
    assert again["changed"] is False, again


def test_on_i440fx_the_device_sits_in_a_slot_of_the_expander_bus_and_reads_its_cell(
    make_guest: GuestFactory,
) -> None:
    # QEMU's pxb holds a bridge of its own: the device is on the bus behind it, both on node 1.
    guest = make_guest(
        "h5-pci-i440fx",
        vcpus=2,
        memory_mib=512,
        machine="pc",
        vnuma=("<vnuma mode='node' device_locality='all'><partition cells='2'/><devices cells='ua-rng0=1'/></vnuma>"),
        devices_xml="<rng model='virtio'><backend model='random'>/dev/urandom</backend><alias name='ua-rng0'/></rng>",
    )
    assert owned_controllers(guest.inactive_xml()) == {"ua-vnuma-pxb1": ("pci-expander-bus", "1")}
    report = guest.report(BOOT_TIMEOUT)
    # A transitional virtio-rng on the legacy machine (device id 0x1005), and the pxb's own bridge.
    rng = [
        function for function in report.pci.values() if (function.vendor, function.device) == (VIRTIO_VENDOR, "0x1005")
    ]
    assert [function.node for function in rng] == [1], report.pci
    bridges = [function.node for function in report.pci.values() if function.pci_class == "0x060400"]
    assert bridges == [1], report.pci
