# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain against the real libvirtd's QEMU driver, on defined guests that are never started.

What libvirt's QEMU driver keeps of each layout (it rewrites what it is given, unlike the test driver
of the unit tests), the QEMU command line it would run for it (``domainXMLToNative``), and every
refusal.  Plans for other hosts (``host_capabilities``) are defined only: their memory is bound to
host nodes this machine does not have.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import libvirt
import pytest
from vnuma_domain_support import (
    CAPABILITIES,
    MIB,
    RING,
    ROOT,
    bind_to_this_host,
    cpuset,
    domain_root,
    inactive_xml,
    memnode_nodesets,
    numa_cells,
    parse_qemu_argv,
    rhythm,
)

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib, parse_size
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import URI, GuestFactory

PLAYBOOK = Path(__file__).parent / "playbooks" / "vnuma_domain_rhythm.yml"
DISTRIBUTIONS = ("contiguous", "siblings", "round-robin", "interleave")


def check_definition_holds(xml: str, layout: dict[str, Any]) -> None:
    """The definition libvirt kept has the layout's cells, memory binding and topology, as values."""
    cells = numa_cells(xml)
    assert sorted(cells) == [cell["id"] for cell in layout["cells"]]
    for cell in layout["cells"]:
        assert cells[cell["id"]] == (cpuset(cell["vcpus"]), cell["memory_kib"]), cell
    assert memnode_nodesets(xml) == {cell["id"]: cpuset(cell["memory_nodes"]) for cell in layout["cells"]}
    topology = domain_root(xml).find("cpu/topology")
    assert {key: int(topology.get(key)) for key in ("sockets", "dies", "cores", "threads")} == layout["topology"]
    vcpu = domain_root(xml).find("vcpu")
    assert int(vcpu.text) == layout["vcpus"]


# -- 1. the four-step rhythm, every mode and distribution -------------------------------------------


RING_PLANS = {
    # mode host mirrors the ring's four nodes; 4 vCPUs give one per cell under every distribution.
    ("host", "contiguous"): ["0", "1", "2", "3"],
    ("host", "siblings"): ["0", "1", "2", "3"],
    ("host", "round-robin"): ["0", "1", "2", "3"],
    ("host", "interleave"): ["0", "1", "2", "3"],
}
# mode node on the ring: nodes 0-2 in 2 cells; node 1 is nearer to node 0 (21) than node 2 (31).
RING_NODE_CELLS = [("0-1", "0-1"), ("2", "2")]
RING_NODE_VCPUS = {
    "contiguous": ["0-1", "2-3"],
    "siblings": ["0-1", "2-3"],
    # 12 host CPUs numbered node by node: vCPU k samples host CPU 3k, so 0, 3 and 6 are in cell 0's nodes 0-1.
    "round-robin": ["0-2", "3"],
    "interleave": ["0,2", "1,3"],
}


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("mode", ["host", "node"])
def test_rhythm_for_the_4node_ring(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, mode: str, distribution: str
) -> None:
    guest = make_guest(f"vit-ring-{mode}", vcpus=4, memory_mib=512, start=False)
    args: dict[str, Any] = {"name": guest.name, "host_capabilities": RING, "mode": mode, "distribution": distribution}
    if mode == "node":
        args.update(nodeset="0-2", cells=2)
    plan, applied = rhythm(qemu_conn, args)
    layout = applied["layout"]
    assert layout["mode"] == mode and layout["distribution"] == distribution
    if mode == "host":
        assert [cell["host_nodes"] for cell in layout["cells"]] == RING_PLANS[(mode, distribution)]
        assert [cell["vcpus"] for cell in layout["cells"]] == ["0", "1", "2", "3"]
        assert [cell["memory_kib"] for cell in layout["cells"]] == [128 * MIB] * 4
        assert [cell["distances"] for cell in layout["cells"]] == [
            [10, 21, 31, 21],
            [21, 10, 21, 31],
            [31, 21, 10, 21],
            [21, 31, 21, 10],
        ]
    else:
        assert [(cell["host_nodes"], cell["memory_nodes"]) for cell in layout["cells"]] == RING_NODE_CELLS
        assert [cell["vcpus"] for cell in layout["cells"]] == RING_NODE_VCPUS[distribution]
        # Grouped cells: the nearest pair of their nodes (1 to 2: 21).
        assert [cell["distances"] for cell in layout["cells"]] == [[10, 21], [21, 10]]
    # Check mode showed the values the apply wrote.
    assert plan["diff"]["before"]["cpu/numa/cell[0]/memory"] is None
    assert plan["diff"]["after"]["cpu/numa/cell[0]/memory"] == layout["cells"][0]["memory_kib"]
    check_definition_holds(inactive_xml(qemu_conn, guest.name), layout)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("mode", ["host", "node"])
def test_rhythm_for_this_host(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str, mode: str, distribution: str
) -> None:
    """Without host_capabilities: the module reads the topology from the connection."""
    topology = parse_capabilities(host_caps)
    node = topology.cpu_node_ids[0]
    guest = make_guest(f"vit-here-{mode}", vcpus=4, memory_mib=512, start=False)
    args: dict[str, Any] = {"name": guest.name, "mode": mode, "distribution": distribution}
    if mode == "node":
        args.update(nodeset=str(node), cells=2)
    _plan, applied = rhythm(qemu_conn, args)
    layout = applied["layout"]
    cells = layout["cells"]
    if mode == "host":
        assert [cell["host_nodes"] for cell in cells] == [str(node) for node in topology.cpu_node_ids]
    else:
        assert [cell["host_nodes"] for cell in cells] == [str(node), str(node)]
        assert [cell["memory_kib"] for cell in cells] == [256 * MIB, 256 * MIB]
        # Two cells on one host node: 11 apart (libvirt refuses 10 off the diagonal).
        assert [cell["distances"] for cell in cells] == [[10, 11], [11, 10]]
    check_definition_holds(inactive_xml(qemu_conn, guest.name), layout)


def test_rhythm_through_ansible_playbook(make_guest: GuestFactory, qemu_conn: libvirt.virConnect) -> None:
    """The same four steps as tasks of a real ansible-playbook run, asserted in the playbook itself."""
    guest = make_guest("vit-playbook", vcpus=4, memory_mib=512, start=False)
    before = inactive_xml(qemu_conn, guest.name)
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    command = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-e",
        f"guest_name={guest.name}",
        "-e",
        f"capabilities={RING}",
        str(PLAYBOOK),
    ]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    output = f"--- stdout:\n{done.stdout}\n--- stderr:\n{done.stderr}"
    assert done.returncode == 0, output
    # Every task ran: 4 module runs and their assertions, none skipped.
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0\s+skipped=0", done.stdout)
    assert recap is not None, output
    after = inactive_xml(qemu_conn, guest.name)
    assert after != before
    assert len(numa_cells(after)) == 4


# -- 2. the QEMU command line for the plans of every host fixture -------------------------------------

# The guest planned for each fixture: mode host, 6 vCPUs (2 online at boot), 768 MiB, contiguous and
# siblings.  Where it cannot be placed, the refusal (after "guest NAME: ").
CANNOT_HOLD = {
    ("amd-2s-nps4.xml", "contiguous"): (
        "8 guest cells with host CPUs need at least 8 vCPUs, the guest has 6; use fewer cells or set "
        "cpuless_cells to allow cells without vCPUs"
    ),
    ("amd-2s-nps4.xml", "siblings"): (
        "8 guest cells with host CPUs need at least 16 vCPUs (whole cores of 2 threads), the guest has 6; "
        "use fewer cells or set cpuless_cells to allow cells without vCPUs"
    ),
    # Four nodes of SMT2 cores: siblings needs whole cores, two vCPUs per cell.
    ("amd-epyc-nps4-ccx.xml", "siblings"): (
        "4 guest cells with host CPUs need at least 8 vCPUs (whole cores of 2 threads), the guest has 6; "
        "use fewer cells or set cpuless_cells to allow cells without vCPUs"
    ),
    ("intel-snc2-l3.xml", "siblings"): (
        "4 guest cells with host CPUs need at least 8 vCPUs (whole cores of 2 threads), the guest has 6; "
        "use fewer cells or set cpuless_cells to allow cells without vCPUs"
    ),
    ("large-16node-1024cpu.xml", "contiguous"): (
        "16 guest cells with host CPUs need at least 16 vCPUs, the guest has 6; use fewer cells or set "
        "cpuless_cells to allow cells without vCPUs"
    ),
    ("large-16node-1024cpu.xml", "siblings"): (
        "16 guest cells with host CPUs need at least 32 vCPUs (whole cores of 2 threads), the guest has 6; "
        "use fewer cells or set cpuless_cells to allow cells without vCPUs"
    ),
    ("intel-snc2-cxl.xml", "siblings"): (
        "4 guest cells with host CPUs need at least 8 vCPUs (whole cores of 2 threads), the guest has 6; "
        "use fewer cells or set cpuless_cells to allow cells without vCPUs"
    ),
    ("memoryless-node.xml", "siblings"): (
        "4 guest cells with host CPUs need at least 8 vCPUs (whole cores of 2 threads), the guest has 6; "
        "use fewer cells or set cpuless_cells to allow cells without vCPUs"
    ),
    ("smt4-power.xml", "siblings"): (
        "distribution siblings builds guest cores of 4 threads like the host; 6 vCPUs is not a multiple of 4"
    ),
    ("smt8-power.xml", "siblings"): (
        "distribution siblings builds guest cores of 8 threads like the host; 6 vCPUs is not a multiple of 8"
    ),
    ("sparse-ids.xml", "siblings"): (
        "distribution siblings builds guest cores of 4 threads like the host; 6 vCPUs is not a multiple of 4"
    ),
}
FIXTURES = sorted(path.name for path in CAPABILITIES.glob("*.xml"))


def test_every_fixture_is_covered() -> None:
    assert len(FIXTURES) >= 15
    assert {fixture for fixture, _distribution in CANNOT_HOLD} <= set(FIXTURES)


def check_qemu_command_line(
    conn: libvirt.virConnect, xml: str, layout: dict[str, Any], here: set[int], fixture: str
) -> None:
    rendered, moved = bind_to_this_host(xml, here)
    if moved:
        # The unmodified definition names nodes this host lacks; libvirt says so and builds nothing.
        with pytest.raises(libvirt.libvirtError, match=r"NUMA node \d+ is unavailable"):
            conn.domainXMLToNative("qemu-argv", xml, 0)
    qemu = parse_qemu_argv(conn.domainXMLToNative("qemu-argv", rendered, 0))
    cells = layout["cells"]
    ids = [cell["id"] for cell in cells]

    # -numa node,nodeid=i,cpus=...: exactly the planned cells and vCPUs.
    assert qemu.nodes == {cell["id"]: cpuset(cell["vcpus"]) for cell in cells}, fixture
    # -numa dist: every ordered pair, the planned distance.  When every planned distance is the default
    # (10 local, 20 remote: a host without distances), libvirt leaves them out and QEMU gives the guest
    # no distance table, which Linux reads as the same 10 and 20.
    planned = {(cell["id"], other): cell["distances"][other] for cell in cells for other in ids}
    if all(value == (10 if src == dst else 20) for (src, dst), value in planned.items()):
        assert qemu.distances == {}, fixture
    else:
        assert qemu.distances == planned, fixture
    # -smp: the layout's topology.  maxcpus is the maximum; the first count is the boot vCPUs 0..p-1
    # (hotpluggable='no').  The other vCPUs online at boot are not on the command line: libvirt adds them
    # through QEMU's monitor once QEMU runs (see test_vnuma_domain_running.py).
    topology = layout["topology"]
    online = set(layout["enable_order"][: layout["current_vcpus"]])
    prefix = next(count for count in range(layout["vcpus"] + 1) if count not in online)
    smp = {
        "cpus": prefix,
        "sockets": topology["sockets"],
        "dies": topology["dies"],
        "cores": topology["cores"],
        "threads": topology["threads"],
    }
    if prefix < layout["vcpus"]:
        smp["maxcpus"] = layout["vcpus"]
    assert qemu.smp == smp, fixture
    assert qemu.cpu_devices == {}
    assert topology["sockets"] * topology["dies"] * topology["cores"] * topology["threads"] == layout["vcpus"]
    # One memory backend per cell, of the cell's size, bound (strict) to the cell's memory nodes.
    assert set(qemu.memdev) == set(ids)
    for cell in cells:
        backend = qemu.backends[qemu.memdev[cell["id"]]]
        assert backend["size"] == cell["memory_kib"] * 1024
        assert backend["policy"] == "bind"
        expected = cpuset(cell["memory_nodes"])
        if moved:
            expected = frozenset(min(here) if node not in here else node for node in expected)
        assert set(backend["host-nodes"]) == expected, (fixture, cell)
    assert qemu.memory_mib == layout["memory_kib"] // MIB


@pytest.mark.parametrize("distribution", ["contiguous", "siblings"])
@pytest.mark.parametrize("fixture", FIXTURES)
def test_qemu_command_line_for_each_host_fixture(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str, fixture: str, distribution: str
) -> None:
    guest = make_guest("vit-argv", vcpus=6, memory_mib=768, start=False)
    before = inactive_xml(qemu_conn, guest.name)
    args = {
        "name": guest.name,
        "host_capabilities": str(CAPABILITIES / fixture),
        "mode": "host",
        "distribution": distribution,
        "current_vcpus": 2,
    }
    refusal = CANNOT_HOLD.get((fixture, distribution))
    if refusal is not None:
        failed = fail_module(args)
        assert failed["msg"] == f"guest {guest.name}: {refusal}"
        assert failed["guest"] == guest.name
        assert inactive_xml(qemu_conn, guest.name) == before
        return
    result = run_module(args)
    assert result["changed"] is True
    layout = result["layout"]
    assert layout["current_vcpus"] == 2 and layout["vcpus"] == 6
    xml = inactive_xml(qemu_conn, guest.name)
    check_definition_holds(xml, layout)
    here = set(parse_capabilities(host_caps).node_ids)
    check_qemu_command_line(qemu_conn, xml, layout, here, fixture)


def test_qemu_command_line_with_a_memory_only_cell(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    """A CXL node in the nodeset: a guest cell with memory and no vCPUs (-numa node without cpus)."""
    guest = make_guest("vit-cxl", vcpus=4, memory_mib=512, start=False)
    result = run_module(
        {
            "name": guest.name,
            "host_capabilities": str(CAPABILITIES / "intel-snc2-cxl.xml"),
            "mode": "node",
            "nodeset": "0,4",
        }
    )
    layout = result["layout"]
    assert [(cell["vcpus"], cell["host_nodes"]) for cell in layout["cells"]] == [("0-3", "0"), ("", "4")]
    xml = inactive_xml(qemu_conn, guest.name)
    check_definition_holds(xml, layout)
    check_qemu_command_line(qemu_conn, xml, layout, set(parse_capabilities(host_caps).node_ids), "intel-snc2-cxl")


# -- 7. absent, backup, refusals ----------------------------------------------------------------------


def test_absent_flattens_a_converged_guest(make_guest: GuestFactory, qemu_conn: libvirt.virConnect) -> None:
    guest = make_guest("vit-absent", vcpus=4, memory_mib=512, start=False)
    run_module({"name": guest.name, "host_capabilities": RING, "current_vcpus": 2, "pinning": "node"})
    converged = domain_root(inactive_xml(qemu_conn, guest.name))
    assert converged.find("cpu/numa") is not None and converged.find("vcpus") is not None

    plan = run_module({"name": guest.name, "state": "absent"}, check_mode=True)
    assert plan["changed"] is True
    flat = run_module({"name": guest.name, "state": "absent"})
    assert flat["changed"] is True and flat["changes"] == plan["changes"]
    assert flat["layout"] is None
    root = domain_root(inactive_xml(qemu_conn, guest.name))
    for path in ("cpu/numa", "numatune", "cputune/vcpupin", "vcpus", "maxMemory"):
        assert root.find(path) is None, path
    assert root.find("metadata/{urn:vnuma:libvirt:1.0}vnuma") is None
    # The harness's own metadata is not the module's: it stays.
    assert root.find("metadata/{urn:vnuma:libvirt:integration-test}owner") is not None
    vcpu = root.find("vcpu")
    assert vcpu.text == "4" and vcpu.get("current") is None
    assert int(root.find("memory").text) == 512 * MIB
    # Idempotent.
    flat_xml = inactive_xml(qemu_conn, guest.name)
    assert run_module({"name": guest.name, "state": "absent"}, check_mode=True)["changed"] is False
    assert run_module({"name": guest.name, "state": "absent"})["changed"] is False
    assert inactive_xml(qemu_conn, guest.name) == flat_xml


def test_backup_holds_the_previous_definition(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    guest = make_guest("vit-backup", vcpus=4, memory_mib=512, start=False)
    backups = tmp_path / "backups"
    first_xml = inactive_xml(qemu_conn, guest.name)
    args = {"name": guest.name, "host_capabilities": RING, "backup": True, "backup_dir": str(backups)}
    # Check mode writes no backup.
    assert run_module(args, check_mode=True)["backup_file"] is None
    assert not backups.exists()
    first = run_module(args)
    assert Path(first["backup_file"]).parent == backups
    assert Path(first["backup_file"]).read_text() == first_xml
    # A change saves the definition it replaces; no change saves nothing.
    second_xml = inactive_xml(qemu_conn, guest.name)
    second = run_module({**args, "distribution": "interleave"})
    assert second["backup_file"] != first["backup_file"]
    assert Path(second["backup_file"]).read_text() == second_xml
    assert run_module({**args, "distribution": "interleave"})["backup_file"] is None
    assert sorted(path.name for path in backups.iterdir()) == sorted(
        Path(result["backup_file"]).name for result in (first, second)
    )
    # Restoring a backup (virsh define <file>) brings the saved definition back exactly.
    qemu_conn.defineXML(Path(first["backup_file"]).read_text())
    assert inactive_xml(qemu_conn, guest.name) == first_xml
    assert numa_cells(first_xml) == {}


# Run in a mount namespace of its own (unshare -m, private propagation): a tmpfs of two pages, one taken by a
# filler, and the module in a process of its own that writes its backup there.  The mount goes with the namespace.
FULL_BACKUP_DIR = """
set -eu
mount -t tmpfs -o size=8k,mode=0755 vnuma-full "$1"
head -c 4096 /dev/zero > "$1/filler"
"$2" -m ansible_collections.vnuma.libvirt.plugins.modules.vnuma_domain "$3" > "$4" || true
cd "$1" && find . -mindepth 1 -printf '%P\\n'
"""


def test_a_full_file_system_leaves_no_backup_and_no_define(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    # A definition of more than the page left: the write fails with ENOSPC after 4096 bytes.
    guest = make_guest(
        "vit-backup-full", vcpus=4, memory_mib=512, start=False, extra_xml=f"<description>{'d' * 20000}</description>"
    )
    before = inactive_xml(qemu_conn, guest.name)
    mount = tmp_path / "full"
    mount.mkdir()
    args = tmp_path / "args.json"
    args.write_text(
        json.dumps(
            {
                "ANSIBLE_MODULE_ARGS": {
                    "name": guest.name,
                    "host_capabilities": RING,
                    "backup": True,
                    "backup_dir": str(mount / "backups"),
                }
            }
        ),
        encoding="utf-8",
    )
    output = tmp_path / "result.json"
    command = ["unshare", "-m", "--propagation", "private", "sh", "-c", FULL_BACKUP_DIR, "sh"]
    done = subprocess.run(
        [*command, str(mount), sys.executable, str(args), str(output)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=os.environ,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(output.read_text(encoding="utf-8"))
    assert result["failed"] is True and result["changed"] is False
    assert re.fullmatch(
        rf"guest {guest.name}: cannot save the backup of its definition as {re.escape(str(mount))}/backups/"
        rf"{guest.name}\.\d{{8}}T\d{{6}}\.\d{{9}}Z\.xml: \[Errno 28\] No space left on device "
        rf"\(the directory {re.escape(str(mount))}/backups was created for it\); its definition was left as it was",
        result["msg"],
    )
    # Nothing but the filler and the empty directory: no truncated file named like a backup, no temporary file.
    assert sorted(done.stdout.split()) == ["backups", "filler"]
    assert inactive_xml(qemu_conn, guest.name) == before


def test_a_guest_with_a_long_name_is_backed_up(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    # libvirt takes a 245-byte name; with the time the backup's name would be 276 bytes, past NAME_MAX (255).
    guest = make_guest("vit-backup-long-" + "x" * 220, vcpus=4, memory_mib=512, start=False)
    before = inactive_xml(qemu_conn, guest.name)
    backups = tmp_path / "backups"
    applied = run_module({"name": guest.name, "host_capabilities": RING, "backup": True, "backup_dir": str(backups)})
    backup = Path(applied["backup_file"])
    assert applied["changed"] is True and backup.parent == backups
    assert len(backup.name.encode()) == 255 and backup.name.startswith(guest.name[:200])
    assert backup.read_text() == before


def test_secrets_of_the_definition_survive_the_apply_the_backup_and_absent(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    # libvirt shows a VNC password only to a read with VIR_DOMAIN_XML_SECURE; a definition read without
    # it and defined back has none.
    # VNC takes at most 8 characters.
    password = secrets.token_hex(4)
    graphics = f"<graphics type='vnc' port='-1' autoport='yes' passwd='{password}'/>"
    guest = make_guest("vit-secret", vcpus=4, memory_mib=512, start=False, devices_xml=graphics)
    secure = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE

    def kept() -> bool:
        return f"passwd='{password}'" in qemu_conn.lookupByName(guest.name).XMLDesc(secure)

    assert kept() and password not in inactive_xml(qemu_conn, guest.name)
    backups = tmp_path / "backups"
    applied = run_module({"name": guest.name, "host_capabilities": RING, "backup": True, "backup_dir": str(backups)})
    assert applied["changed"] is True and numa_cells(inactive_xml(qemu_conn, guest.name))
    assert kept()
    # Nothing the module returns shows it.
    assert password not in repr(applied)
    backup = Path(applied["backup_file"])
    assert f"passwd='{password}'" in backup.read_text()
    assert (backup.stat().st_mode & 0o777, backups.stat().st_mode & 0o777) == (0o600, 0o700)
    assert run_module({"name": guest.name, "host_capabilities": RING, "distribution": "interleave"})["changed"]
    assert kept()
    assert run_module({"name": guest.name, "state": "absent"})["changed"] is True
    assert kept() and not numa_cells(inactive_xml(qemu_conn, guest.name))


def test_refusals_name_guest_value_and_limit_and_change_nothing(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    guest = make_guest("vit-refuse", vcpus=6, memory_mib=512, start=False)
    run_module({"name": guest.name, "mode": "node", "cells": 2})
    before = inactive_xml(qemu_conn, guest.name)

    # Unknown guest.
    nosuch = f"vit-nosuch-{secrets.token_hex(4)}"
    failed = fail_module({"name": nosuch})
    assert failed["msg"] == f"guest {nosuch}: no guest named {nosuch} is defined at {URI}"
    assert failed["guest"] == nosuch

    # Unreachable libvirt: no waiting with connect_timeout 0.
    bad_uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    failed = fail_module({"name": guest.name, "uri": bad_uri, "connect_timeout": 0})
    assert failed["msg"] == (
        f"cannot connect to libvirt at {bad_uri}: Failed to connect socket to '/nonexistent/libvirt-sock': "
        "No such file or directory"
    )

    # More memory than the host node holds.  This VM's node grows while it runs (memory is hot-added): ask
    # for far more than it could ever reach, and read the node's size from the message, not from before.
    topology = parse_capabilities(host_caps)
    node = topology.node(topology.cpu_node_ids[0])
    too_much_mib = 1024 * 1024
    failed = fail_module({"name": guest.name, "mode": "host", "memory": f"{too_much_mib} MiB"})
    prefix = f"guest {guest.name}: guest cell 0 needs {format_kib(too_much_mib * MIB)}, host node {node.id} has "
    assert failed["msg"].startswith(prefix), failed["msg"]
    has_kib = parse_size(failed["msg"].removeprefix(prefix))
    assert node.memory_kib // 2 <= has_kib < too_much_mib * MIB
    assert failed["guest"] == guest.name

    # More vCPUs online than the guest has.
    failed = fail_module({"name": guest.name, "current_vcpus": 7})
    assert failed["msg"] == f"guest {guest.name}: current vcpus 7 is above the maximum of 6 vCPUs"
    assert failed["guest"] == guest.name

    # Check mode refuses the same way.
    failed = fail_module({"name": guest.name, "current_vcpus": 7}, check_mode=True)
    assert failed["msg"] == f"guest {guest.name}: current vcpus 7 is above the maximum of 6 vCPUs"

    assert inactive_xml(qemu_conn, guest.name) == before
    assert run_module({"name": guest.name})["changed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            {"guests": [{"name": "{a}", "mode": "node", "cells": 200}, "{b}"]},
            "guest {a}: cells 200 must be an integer from 1 to 128 (QEMU's MAX_NODES)",
            id="entry-cells-above-limit",
        ),
        pytest.param(
            {"guests": ["{a}", "{b}"], "max_memory": "1 GiB", "memory_slots": 300},
            "memory_slots 300 must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)",
            id="top-level-slots-above-limit",
        ),
        pytest.param(
            {"guests": [{"name": "{a}", "hugepages": "32 GiB"}, "{b}"]},
            "guest {a}: hugepages '32 GiB' is above the limit of 16 GiB (the largest page size Linux has)",
            id="entry-hugepages-above-limit",
        ),
        pytest.param(
            {"guests": [{"name": "{a}", "memory": 0}, "{b}"]},
            "guest {a}: memory 0 must be a positive integer",
            id="entry-memory-0",
        ),
        pytest.param(
            {"guests": ["{b}", {"name": "{a}", "mode": "host", "cells": 2}]},
            "guests[1] ({a}): cells 2 applies to mode node only; mode host mirrors every host node with CPUs",
            id="entry-host-mode-with-cells",
        ),
        pytest.param(
            {"guests": ["{b}", {"name": "{a}", "emulator_threads": "isolate", "pinning": "node"}]},
            "guests[1] ({a}): emulator_threads isolate needs pinning core or thread, not node: vCPUs that float would "
            "run on the emulator's host CPU too",
            id="entry-isolate-floating",
        ),
    ],
)
def test_a_spec_mistake_that_needs_no_guest_writes_no_guest(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, args: dict[str, Any], message: str
) -> None:
    """A value above its limit or a contradiction in one entry refuses the call: the other guest is not written."""
    first = make_guest("vit-spec-a", vcpus=2, memory_mib=512, start=False)
    second = make_guest("vit-spec-b", vcpus=2, memory_mib=512, start=False)
    names = {"a": first.name, "b": second.name}

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**names)
        if isinstance(value, list):
            return [fill(item) for item in value]
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        return value

    before = {name: inactive_xml(qemu_conn, name) for name in names.values()}
    failed = fail_module(fill(args))
    assert failed["msg"] == fill(message)
    assert failed.get("changed", False) is False
    assert "guests" not in failed, failed["guests"]
    assert {name: inactive_xml(qemu_conn, name) for name in names.values()} == before
    # Without the mistake, the same guests are written.  Planned for the ring (defined only), on nodes whose CPUs no
    # other guest of this shared libvirtd has dedicated.
    good = {"guests": [first.name, second.name], "host_capabilities": RING, "mode": "node", "nodeset": "2-3"}
    assert run_module(good)["changed"] is True
