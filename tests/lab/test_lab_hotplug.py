# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Memory hotplug on a real multi-node hypervisor (lab4): the DIMMs vnuma_domain hot-adds to a running guest
are backed by their cells' host nodes.

Each DIMM has its own memory backend in QEMU, a mapping of its own in the lab's numa_maps with the bind
policy libvirt gave it.  The touch payload writes only the memory present at boot, so the playbook has QEMU
preallocate each DIMM's backend (qom-set prealloc): QEMU faults the pages in itself, and the kernel puts
them where the mapping's policy says.  New mappings, not the whole process, are compared: the guest's boot
memory is not touched again.
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Lab, LabHost
from lab_checks import MIN_ON_NODE, Region, parse_cpuset, parse_numa_maps, share_on
from touch_payload import payload

HOST = "lab4"
GUEST = "lab-cap-hot"
MEMORY_MIB = 64
DIMM_MIB = 128
# QEMU preallocates the whole backend; a few pages more or less (page tables, a racing reclaim) are noise.
MIN_FAULTED = 0.95


@pytest.fixture(scope="module")
def hotplug(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabHost, dict[str, Any]]]:
    host = lab.host(HOST)
    out = tmp_path_factory.mktemp("lab-hotplug")
    nodes = [node.id for node in host.topology.nodes if node.cpus and node.id != 0][:2]
    variables = {
        "lab_out": str(out),
        "guest": GUEST,
        "payload_base64": base64.b64encode(payload()).decode(),
        "guest_memory_mib": MEMORY_MIB,
        "dimm_mib": DIMM_MIB,
        "guest_nodeset": ",".join(map(str, nodes)),
    }
    try:
        lab.playbook("hotplug.yml", "--limit", HOST, "--extra-vars", json.dumps(variables))
        yield host, json.loads((out / "hotplug.json").read_text())
    finally:
        host.run(
            f"virsh -c qemu:///system destroy {GUEST} >/dev/null 2>&1;"
            f" virsh -c qemu:///system undefine {GUEST} >/dev/null 2>&1;"
            f" rm -f /var/lib/libvirt/images/{GUEST}.bin /var/log/libvirt/qemu/{GUEST}.serial.log /tmp/{GUEST}.xml;"
            " true"
        )


def _regions_by_address(text: str) -> dict[str, Region]:
    lines = [line for line in text.splitlines() if line.strip()]
    return {line.split()[0]: region for line, region in zip(lines, parse_numa_maps("\n".join(lines)), strict=True)}


def test_vnuma_domain_hot_adds_one_dimm_per_cell_on_its_cells_node(hotplug: tuple[LabHost, dict[str, Any]]) -> None:
    _host, result = hotplug
    cells = result["laid_out"]["layout"]["cells"]
    assert result["hot"]["changed"] is True
    live = ET.fromstring(result["live"])
    dimms = [device for device in live.iter("memory") if device.get("model") == "dimm"]
    assert len(dimms) == len(cells) == 2
    for dimm in dimms:
        cell = int(dimm.findtext("target/node", ""))
        size = dimm.find("target/size")
        assert size is not None
        assert int(size.text or 0) * {"KiB": 1, "MiB": 1024}[size.get("unit", "KiB")] == DIMM_MIB * 1024
        nodemask = dimm.findtext("source/nodemask", "")
        # vnuma_domain's layout gives node lists as libvirt writes them ("1", "1-2").
        assert parse_cpuset(nodemask) == parse_cpuset(cells[cell]["memory_nodes"]), (cell, nodemask, cells[cell])


def test_each_dimms_memory_is_on_its_planned_host_node(hotplug: tuple[LabHost, dict[str, Any]]) -> None:
    _host, result = hotplug
    before = _regions_by_address(result["before"])
    after = _regions_by_address(result["after"])
    planned = sorted(
        node for cell in result["laid_out"]["layout"]["cells"] for node in parse_cpuset(cell["memory_nodes"])
    )
    new = [region for address, region in after.items() if address not in before and region.policy == "bind"]
    assert sorted(next(iter(region.nodes)) for region in new) == planned, result["after"]
    grown: Counter[int] = Counter()
    for region in new:
        node = next(iter(region.nodes))
        assert region.kib() >= MIN_FAULTED * DIMM_MIB * 1024, (node, dict(region.pages))
        assert share_on(region.pages, region.nodes) >= MIN_ON_NODE, (node, dict(region.pages))
        for host_node, pages in region.pages.items():
            grown[host_node] += pages * region.page_kib
    # numa_maps grew on each planned node by about one DIMM.
    for node in planned:
        assert grown[node] >= MIN_FAULTED * DIMM_MIB * 1024, dict(grown)
