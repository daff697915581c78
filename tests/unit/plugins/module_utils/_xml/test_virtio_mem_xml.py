# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's virtio-mem devices in a domain: how a resize and a new size are classified, what a
device update sends to libvirt, and what capacity counts (the requested size, not the device's size)."""

from __future__ import annotations

import re
from pathlib import Path

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.absent import render_absent
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import binding_from_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import MemoryDevice, requested_update
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
MIB = 1024


def _expanded() -> str:
    text = (FIXTURES / "domains" / "ring-virtio-mem-in.xml").read_text()
    return expand_domain(text, (FIXTURES / "capabilities" / "seed-4node-ring.xml").read_text()).xml


def test_capacity_counts_requested_sizes_on_the_devices_nodes() -> None:
    numa = DomainNuma.from_domain(parse_xml(_expanded(), "domain"))
    dimms = {(dimm.cell, dimm.host_nodes): dimm.size_kib for dimm in binding_from_domain(numa, "g").dimms}
    # The user's DIMM counts whole; each virtio-mem device only what it is asked to plug.
    assert dimms == {(1, None): 512 * MIB, (0, (0,)): 300 * MIB, (1, (1,)): 0, (2, (2,)): 0, (3, (3,)): 0}


def test_a_resize_is_live_and_a_new_size_waits_for_a_boot() -> None:
    text = _expanded()
    before = DomainNuma.from_domain(parse_xml(text, "domain"))
    resized = text.replace("<requested unit='KiB'>0</requested>", "<requested unit='KiB'>4096</requested>", 1)
    changes = before.changes(DomainNuma.from_domain(parse_xml(resized, "domain")))
    assert [(str(change), change.kind) for change in changes] == [
        ("devices/memory[ua-vnuma-cell1]/requested: 0 -> 4096", ChangeKind.LIVE)
    ]
    grown = text.replace("<size unit='KiB'>1966080</size>", "<size unit='KiB'>2097152</size>", 1)
    changes = before.changes(DomainNuma.from_domain(parse_xml(grown, "domain")))
    assert [(str(change), change.kind) for change in changes] == [
        ("devices/memory[ua-vnuma-cell0]/size: 1966080 -> 2097152", ChangeKind.NEEDS_BOOT)
    ]


def test_the_update_is_the_running_device_with_another_requested_size() -> None:
    live = parse_xml(
        "<memory model='virtio-mem'><target><size unit='KiB'>524288</size><node>1</node>"
        "<block unit='KiB'>2048</block><requested unit='KiB'>131072</requested><current unit='KiB'>131072</current>"
        "</target><alias name='ua-vnuma-cell1'/><address type='pci' bus='0x02' slot='0x00'/></memory>",
        "device",
    )
    sent = MemoryDevice.from_element(parse_xml(requested_update(live, 262144), "device"))
    assert (sent.alias, sent.node, sent.size_kib, sent.requested_kib, sent.current_kib) == (
        "ua-vnuma-cell1",
        1,
        524288,
        262144,
        131072,
    )
    # The element read is left as it was.
    assert MemoryDevice.from_element(live).requested_kib == 131072
    assert sent.cell_owned == 1


TEMPLATE = """<domain type='kvm'>
  <name>g</name>
  <memory unit='MiB'>4096</memory>
  <vcpu>8</vcpu>
  <vnuma mode='host' memory_device='virtio-mem'><maxMemory slots='8' unit='GiB'>12</maxMemory></vnuma>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <console type='pty'/>
  </devices>
</domain>"""


def _absent(text: str) -> tuple[list[str], DomainNuma]:
    root = parse_xml(text, "domain")
    warnings = render_absent(root, "g")
    return warnings, DomainNuma.from_domain(root)


def test_absent_takes_the_virtio_mem_devices_with_the_layout() -> None:
    expanded = expand_domain(TEMPLATE, (FIXTURES / "capabilities" / "seed-4node-ring.xml").read_text()).xml
    # A resize since: the devices' requested sizes are in the definition.
    resized = expanded.replace("<requested unit='KiB'>0</requested>", "<requested unit='KiB'>4096</requested>")
    warnings, restored = _absent(resized)
    assert warnings == []
    assert (restored.memory_devices, restored.numa, restored.memory_kib) == ((), None, 4096 * MIB)
    # Without the record (a guest an older version managed): the devices' memory leaves <memory> with them.
    flat = re.sub(r"<vnuma-original:original.*?</vnuma-original:original>", "", resized, flags=re.S)
    warnings, restored = _absent(flat)
    assert (restored.memory_devices, restored.numa, restored.memory_kib) == ((), None, 4096 * MIB)
