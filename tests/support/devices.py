# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Node-device fixtures (``tests/unit/fixtures/nodedev/<host>/``) and guests that pass host devices through."""

from __future__ import annotations

from pathlib import Path

NODEDEV = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "nodedev"


def node_device_xmls(name: str) -> list[str]:
    """Every node-device XML document of the fixture host ``name`` (PCI and others), sorted by file name."""
    return [path.read_text(encoding="utf-8") for path in sorted((NODEDEV / name).glob("*.xml"))]


def hostdev(address: str, alias: str | None = None) -> str:
    """A ``<hostdev>`` of the host PCI device ``address`` (``0000:41:00.0``), as libvirt writes it."""
    domain, bus, rest = address.split(":")
    slot, function = rest.split(".")
    alias_xml = f"<alias name='{alias}'/>" if alias else ""
    return (
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
        f"<address domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' function='0x{function}'/>"
        f"</source>{alias_xml}</hostdev>"
    )


def passthrough_domain(name: str, devices: str, vcpus: int = 4, memory_mib: int = 1024) -> str:
    """A small x86 guest whose ``<devices>`` hold ``devices`` (hostdevs, interfaces)."""
    return (
        f"<domain type='kvm'>\n  <name>{name}</name>\n  <memory unit='MiB'>{memory_mib}</memory>\n"
        f"  <vcpu>{vcpus}</vcpu>\n"
        "  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>\n"
        "  <features><acpi/><apic/></features>\n  <cpu mode='host-passthrough'/>\n"
        f"  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{devices}</devices>\n</domain>\n"
    )
