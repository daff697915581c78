# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Guest HMAT from a real host's HMAT: lab4's QEMU gets hmat-lb tables (scripts/lab/lab_qemu.py), Linux in
the lab reads them, libvirt reports them as <interconnects>, and vnuma_domain with ``hmat: host`` gives a
guest over nodes 1-3 those figures.  One playbook run and one Python session in the lab check the plan
against the figures the lab's QEMU was given, what the lab's libvirt kept (defined with
VIR_DOMAIN_DEFINE_VALIDATE), the initiators and hmat-lb options it hands QEMU, and that QEMU starts the
guest.  The guest kernel's own view is tests/integration/test_vnuma_domain_hmat.py's (a boot inside the
lab takes minutes: docs/lab.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Lab, LabHost
from lab_qemu import LOCAL_BANDWIDTH_MIB_S, LOCAL_LATENCY_NS_PER_DISTANCE
from test_lab_fleet import lab_python, start_code

HOST = "lab4"
GUEST = "lab-hmat-tiers"
FLAT = f"""<domain type='qemu'>
  <name>{GUEST}</name>
  <memory unit='MiB'>384</memory>
  <vcpu>4</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices><memballoon model='none'/></devices>
</domain>"""

# What libvirt kept, the QEMU command line it builds, and whether QEMU starts the guest: one lab session.
INSPECT = (
    f"""
import json, re, time
dom = conn.lookupByName({GUEST!r})
xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
argv = conn.domainXMLToNative("qemu-argv", xml, 0)
"""
    + start_code(GUEST)
    + """
running = dom.isActive()
dom.destroy()
print(json.dumps({"xml": xml, "argv": argv, "running": running}))
"""
)


def remove_guest(host: LabHost) -> None:
    lab_python(
        host,
        f"""
try:
    dom = conn.lookupByName({GUEST!r})
    if dom.isActive():
        dom.destroy()
    dom.undefine()
except libvirt.libvirtError:
    pass
""",
    )


@pytest.fixture(scope="module")
def applied(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabHost, dict[str, Any], dict]]:
    host = lab.host(HOST)
    out = tmp_path_factory.mktemp("lab-hmat")
    try:
        remove_guest(host)
        lab_python(host, f"conn.defineXML({FLAT!r})")
        lab.playbook("hmat.yml", "--limit", HOST, "--extra-vars", json.dumps({"lab_out": str(out), "guest": GUEST}))
        result = json.loads((out / "applied.json").read_text())
        inspected = json.loads(lab_python(host, INSPECT).strip().splitlines()[-1])
        yield host, result, inspected
    finally:
        remove_guest(host)


def lab_figures(host: LabHost, initiator: int, target: int) -> tuple[int, int]:
    """Latency (ns) and bandwidth (KiB/s) the lab's QEMU was given from ``initiator`` to ``target``."""
    distance = host.topology.distances[initiator][target]
    return distance * LOCAL_LATENCY_NS_PER_DISTANCE, LOCAL_BANDWIDTH_MIB_S * 10 // distance * 1024


def test_the_plan_carries_the_labs_own_figures(applied: tuple[LabHost, dict[str, Any], dict]) -> None:
    host, result, _inspected = applied
    layout = result["layout"]
    cells = {cell["id"]: cell for cell in layout["cells"]}
    assert [cell["host_nodes"] for cell in cells.values()] == ["1", "2", "3"]
    assert layout["hmat"]["mode"] == "host"
    for figure in layout["hmat"]["cells"]:
        node = int(cells[figure["id"]]["host_nodes"])
        # The lab's initiator of a node is itself, or the nearest node with CPUs (node 2 for node 3).
        lab_initiator = host.topology.initiator(host.topology.nodes[node])
        assert cells[figure["initiator"]]["host_nodes"] == str(lab_initiator)
        latency, bandwidth = lab_figures(host, lab_initiator, node)
        assert (figure["read_latency_ns"], figure["write_latency_ns"]) == (latency, latency), figure
        assert (figure["read_bandwidth_kib"], figure["write_bandwidth_kib"]) == (bandwidth, bandwidth), figure
    # Node 3 has no CPUs: its cell is the slower tier, served by the cell of node 2.
    tier = layout["hmat"]["cells"][2]
    assert (tier["initiator"], tier["read_latency_ns"]) == (1, 210)


def test_the_labs_libvirt_keeps_it_and_qemu_runs_it(applied: tuple[LabHost, dict[str, Any], dict]) -> None:
    _host, result, inspected = applied
    figures = result["layout"]["hmat"]["cells"]
    for figure in figures:
        for kind, value in (("latency", figure["read_latency_ns"]), ("bandwidth", figure["read_bandwidth_kib"])):
            entry = f"<{kind} initiator='{figure['initiator']}' target='{figure['id']}' type='read' value='{value}'"
            assert entry in inspected["xml"], entry
    argv = inspected["argv"]
    assert "hmat=on" in argv
    for figure in figures:
        assert f"nodeid={figure['id']}," in argv
        assert f"initiator={figure['initiator']}" in argv
        lb = f"hmat-lb,initiator={figure['initiator']},target={figure['id']},hierarchy=memory,data-type=read-latency"
        assert f"{lb},latency={figure['read_latency_ns']}" in argv
    assert inspected["running"] == 1
