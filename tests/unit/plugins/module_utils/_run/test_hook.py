# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The migration hook's answers (_run/hook.py): XML in, XML out, over fixture hosts as its topology cache.

Guests are laid out for one fixture host by the collection (``expand_domain``) and arrive on another:
the hook must bind them to the new host's nodes and CPUs and leave everything the guest sees as it was,
pass guests without a stored spec and every other operation through, and refuse what does not fit.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.hook import HookOutcome, main, run_hook
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from tests.support.host_side import host_side
from tests.support.hostgen import HostShape, build_capabilities
from tests.support.hosts import CAPABILITIES, host

GUEST = """<domain type='kvm'>
  <name>{name}</name>
  <memory unit='GiB'>{memory_gib}</memory>
  <vcpu>8</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
  <vnuma mode='node' pinning='{pinning}'><partition cells='2'/></vnuma>
</domain>
"""
# Where the host side lives: everything else is what the guest sees.
HOST_SIDE = ("numatune", "cputune")


def laid_out(source: str, name: str = "mig2-db", memory_gib: int = 48, pinning: str = "node") -> str:
    """A guest as the collection lays it out on fixture host ``source``, its spec stored in <metadata>."""
    return expand_domain(GUEST.format(name=name, memory_gib=memory_gib, pinning=pinning), host(source)).xml


def cache(name: str) -> str:
    return str(CAPABILITIES / f"{name}.xml")


def guest_visible(xml: str) -> bytes:
    root = parse_xml(xml, "domain XML", root_tag="domain")
    for tag in HOST_SIDE:
        for element in root.findall(tag):
            root.remove(element)
    for nodemask in root.iterfind("devices/memory/source/nodemask"):
        nodemask.getparent().remove(nodemask)
    return etree.tostring(root, method="c14n")


def status_file(xml: str) -> str:
    """libvirtd's status file of a running guest: the live XML inside <domstatus>."""
    return f"<domstatus state='running' reason='booted' pid='4242'>\n{xml}</domstatus>\n"


@pytest.mark.parametrize(
    ("source", "destination"),
    [
        ("sparse-ids", "intel-2s-smt2"),  # nodes 0 and 8 -> 0 and 1
        ("intel-2s-smt2", "sparse-ids"),  # and back
        ("intel-2s-smt2", "smt2-far-siblings"),  # other CPU numbering, larger nodes
    ],
)
@pytest.mark.parametrize("operation", ["migrate", "restore"])
def test_an_arriving_guest_is_bound_to_this_hosts_nodes_and_sees_the_same(
    source: str, destination: str, operation: str
) -> None:
    arriving = laid_out(source)
    outcome = run_hook(["mig2-db", operation, "begin", "-"], arriving, cache(destination), "/nonexistent")
    assert (outcome.status, outcome.stderr) == (0, "")
    assert guest_visible(outcome.stdout) == guest_visible(arriving)
    memnodes, pins = host_side(outcome.stdout)
    there = host(destination)
    # Each cell whole on one destination node, its vCPUs on that node's CPUs; two cells, two nodes.
    assert sorted(memnodes) == [0, 1]
    assert len(set(memnodes.values())) == 2
    root = parse_xml(arriving, "domain XML", root_tag="domain")
    cells = {int(cell.get("id")): cell.get("cpus") for cell in root.iterfind("cpu/numa/cell")}
    for cell_id, nodes in memnodes.items():
        (node,) = nodes
        node_cpus = {cpu.id for cpu in there.node(node).cpus}
        for vcpu in parse_cpuset(cells[cell_id], "cpus"):
            assert pins[vcpu] == node_cpus
    # Planned for this host, not copied: the source's own bindings are gone.
    assert host_side(outcome.stdout) != host_side(arriving)


def test_a_guest_already_planned_for_this_host_comes_out_the_same() -> None:
    """What vnuma_migrate sends (the destination XML it planned) goes through the hook unchanged."""
    arriving = laid_out("intel-2s-smt2")
    first = run_hook(["mig2-db", "migrate", "begin", "-"], arriving, cache("sparse-ids"), "/nonexistent")
    again = run_hook(["mig2-db", "migrate", "begin", "-"], first.stdout, cache("sparse-ids"), "/nonexistent")
    assert host_side(again.stdout) == host_side(first.stdout)
    assert guest_visible(again.stdout) == guest_visible(arriving)


def test_dedicated_cpus_of_running_guests_are_left_alone(tmp_path: Path) -> None:
    state = tmp_path / "qemu"
    state.mkdir()
    resident = laid_out("intel-2s-smt2", name="mig2-resident", memory_gib=8, pinning="thread")
    (state / "mig2-resident.xml").write_text(status_file(resident))
    (state / "mig2-resident.pid").write_text("4242")  # libvirtd keeps these beside; not XML
    held = set().union(*host_side(resident)[1].values())
    arriving = laid_out("sparse-ids", memory_gib=8, pinning="thread")
    outcome = run_hook(["mig2-db", "migrate", "begin", "-"], arriving, cache("intel-2s-smt2"), str(state))
    assert outcome.status == 0, outcome.stderr
    pins = host_side(outcome.stdout)[1]
    taken = set().union(*pins.values())
    assert len(taken) == 8
    assert not taken & held
    # Its own earlier status file (a restore of a guest that ran here) does not count against it.
    (state / "mig2-db.xml").write_text(status_file(outcome.stdout))
    again = run_hook(["mig2-db", "restore", "begin", "-"], outcome.stdout, cache("intel-2s-smt2"), str(state))
    assert host_side(again.stdout) == host_side(outcome.stdout)


def test_a_guest_that_does_not_fit_is_refused_naming_the_cell_and_limit() -> None:
    arriving = laid_out("sparse-ids", memory_gib=48)
    outcome = run_hook(["mig2-db", "migrate", "begin", "-"], arriving, cache("single-node"), "/nonexistent")
    assert outcome.status == 1
    assert outcome.stdout == ""
    assert outcome.stderr.startswith("vnuma.libvirt hook: migrate refused: guest mig2-db: guest cell 0 (24 GiB")
    assert "destination node 0 has" in outcome.stderr
    assert "GiB free" in outcome.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["mig2-db", "prepare", "begin", "-"],
        ["mig2-db", "start", "begin", "-"],
        ["mig2-db", "release", "end", "-"],
        ["mig2-db", "migrate", "end", "-"],
        ["-", "start", "-"],
    ],
)
def test_other_operations_pass_through_without_reading_anything(argv: list[str]) -> None:
    # The cache path does not exist: these calls never look at it.
    assert run_hook(argv, laid_out("sparse-ids"), "/nonexistent/cache.xml", "/nonexistent") == HookOutcome(0)


def test_a_guest_without_a_stored_spec_passes_through() -> None:
    plain = "<domain type='kvm'><name>plain</name><memory unit='GiB'>1</memory><vcpu>2</vcpu></domain>"
    assert run_hook(["plain", "migrate", "begin", "-"], plain, "/nonexistent/cache.xml", "/nonexistent") == (
        HookOutcome(0)
    )


def test_a_missing_cache_refuses_a_guest_with_a_spec() -> None:
    outcome = run_hook(["mig2-db", "restore", "begin", "-"], laid_out("sparse-ids"), "/nonexistent/c.xml", "/x")
    assert outcome.status == 1
    assert "no host topology cache at /nonexistent/c.xml" in outcome.stderr
    assert "vnuma_hook" in outcome.stderr


def test_main_reads_stdin_and_writes_what_libvirt_expects() -> None:
    arriving = laid_out("sparse-ids")
    out, err = io.StringIO(), io.StringIO()
    status = main(
        ["mig2-db", "migrate", "begin", "-"],
        cache_path=cache("intel-2s-smt2"),
        state_dir="/nonexistent",
        stdin=io.StringIO(arriving),
        stdout=out,
        stderr=err,
    )
    assert (status, err.getvalue()) == (0, "")
    assert guest_visible(out.getvalue()) == guest_visible(arriving)
    # Unreadable XML is no reason for a traceback: libvirt gets a status and a line.
    out, err = io.StringIO(), io.StringIO()
    status = main(
        ["g", "restore", "begin", "-"],
        cache_path=cache("intel-2s-smt2"),
        stdin=io.StringIO("<domain"),
        stdout=out,
        stderr=err,
    )
    assert status != 0
    assert out.getvalue() == ""
    assert err.getvalue().startswith("vnuma.libvirt hook: ")
    assert "\n" not in err.getvalue().rstrip("\n")


DIMM_GUEST = """<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <features><acpi/></features>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
  <vnuma mode='host'><maxMemory slots='4' unit='GiB'>4</maxMemory></vnuma>
</domain>
"""


def with_dimm(xml: str, cell: int, size_mib: int, nodemask: str) -> str:
    """``xml`` with a DIMM of ``size_mib`` on guest cell ``cell``, bound to host nodes ``nodemask``."""
    dimm = (
        f"<memory model='dimm'><source><nodemask>{nodemask}</nodemask></source>"
        f"<target><size unit='MiB'>{size_mib}</size><node>{cell}</node></target></memory>"
    )
    return xml.replace("</devices>", f"{dimm}</devices>")


def small_cache(tmp_path: Path, *node_mib: int) -> str:
    """A topology cache of nodes of two CPUs each, with the memory given."""
    shape = HostShape(sockets=len(node_mib), cores_per_node=2, memory_kib=[mib * 1024 for mib in node_mib])
    path = tmp_path / "host-capabilities.xml"
    path.write_text(build_capabilities(shape), encoding="utf-8")
    return str(path)


def test_memory_devices_count_against_the_node_their_cell_goes_to(tmp_path: Path) -> None:
    """A 512 MiB cell with a 1 GiB DIMM does not fit a 1 GiB node: the restore is refused, naming the devices."""
    arriving = with_dimm(expand_domain(DIMM_GUEST.format(name="mig2-dimm"), host("single-node")).xml, 0, 1024, "0")
    outcome = run_hook(["mig2-dimm", "restore", "begin", "-"], arriving, small_cache(tmp_path, 1024), "/nonexistent")
    assert (outcome.status, outcome.stdout) == (1, "")
    assert outcome.stderr.startswith(
        "vnuma.libvirt hook: restore refused: guest mig2-dimm: guest cell 0 (512 MiB and 1 GiB of memory devices, "
        "2 vCPUs) must live on one destination node"
    )
    # On a host with a node of room for both, the cell and its DIMM go there.
    fits = run_hook(["mig2-dimm", "restore", "begin", "-"], arriving, small_cache(tmp_path, 1024, 4096), "/x")
    assert fits.status == 0, fits.stderr
    memnodes, _pins = host_side(fits.stdout)
    assert memnodes == {0: frozenset({1})}
    assert "<nodemask>1</nodemask>" in fits.stdout


def test_the_plan_is_checked_with_the_running_guests_as_vnuma_migrate_checks_it(tmp_path: Path) -> None:
    """The planner counts what other guests bind per node; the check after it also counts their unbound memory."""
    state = tmp_path / "qemu"
    state.mkdir()
    # A running guest bound to no node (no <numatune>): 1792 MiB of the host's 2 GiB, wherever it lands.
    resident = "<domain type='kvm'><name>web</name><memory unit='MiB'>1792</memory><vcpu>1</vcpu></domain>"
    (state / "web.xml").write_text(status_file(resident))
    arriving = expand_domain(DIMM_GUEST.format(name="mig2-dimm"), host("single-node")).xml
    cache_path = small_cache(tmp_path, 1024, 1024)
    outcome = run_hook(["mig2-dimm", "migrate", "begin", "-"], arriving, cache_path, str(state))
    assert (outcome.status, outcome.stdout) == (1, "")
    assert outcome.stderr == (
        "vnuma.libvirt hook: migrate refused: guest mig2-dimm: the guests do not fit the host (1 problem): memory "
        "bound to no host node: 1792 MiB, 1536 MiB the nodes have left after the bound memory: web 1792 MiB (running)\n"
    )
    (state / "web.xml").unlink()
    assert run_hook(["mig2-dimm", "migrate", "begin", "-"], arriving, cache_path, str(state)).status == 0


SHARED_RESIDENT = """<domain type='kvm'><name>mig2-resident</name><memory unit='MiB'>512</memory><vcpu>2</vcpu>
  <cputune><vcpupin vcpu='0' cpuset='0-7'/><vcpupin vcpu='1' cpuset='0-7'/></cputune>
  <numatune><memnode cellid='0' mode='strict' nodeset='0-1'/></numatune>
  <cpu><numa><cell id='0' cpus='0-1' memory='512' unit='MiB'/></numa></cpu></domain>
"""


def test_dedicated_pins_leave_the_cpus_running_guests_pins_name(tmp_path: Path) -> None:
    """A running guest pinned (shared) to the CPUs of nodes 0-1, where a thread-pinned guest comes from."""
    state = tmp_path / "qemu"
    state.mkdir()
    (state / "mig2-resident.xml").write_text(status_file(SHARED_RESIDENT))
    named = set(range(8))
    arriving = laid_out("seed-4node-ring", memory_gib=2, pinning="thread")
    assert set().union(*host_side(arriving)[1].values()) & named
    outcome = run_hook(["mig2-db", "migrate", "begin", "-"], arriving, cache("seed-4node-ring"), str(state))
    assert outcome.status == 0, outcome.stderr
    taken = set().union(*host_side(outcome.stdout)[1].values())
    assert len(taken) == 8
    assert not taken & named


def test_a_stored_spec_that_cannot_be_read_is_refused_saying_so() -> None:
    arriving = laid_out("intel-2s-smt2").replace("pinning='node'", "pinning='bogus'", 1)
    outcome = run_hook(["mig2-db", "restore", "begin", "-"], arriving, cache("sparse-ids"), "/nonexistent")
    assert outcome.status == 1
    assert outcome.stderr.startswith(
        "vnuma.libvirt hook: restore refused: guest mig2-db: its spec stored in <metadata> cannot be read: <vnuma>: "
        "pinning 'bogus' is not one of"
    )
    assert "vnuma_domain with the spec's options" in outcome.stderr
