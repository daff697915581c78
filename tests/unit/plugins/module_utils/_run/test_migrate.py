# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_migrate's run: the host-side diff it returns, the check after the move, and option refusals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    LibvirtOperationError,
    PlacementError,
    SpecError,
    XmlError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_models import MovingCell, MovingGuest
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_planner import plan_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import DimmBinding
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtGuest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run import migrate
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.migrate import (
    _after_the_move,
    _verify_running,
    changes,
    definition_plan,
    run_migrate,
    verify_placement,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import (
    host_side,
    moving_guest_from_xml,
    rewrite_host_bindings,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import FakeGuest, FakeHost
from ansible_collections.vnuma.libvirt.tests.support.hostgen import HostShape, build_capabilities
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES, host

SOURCE = (Path(__file__).parents[3] / "fixtures" / "migration" / "smt2-thread-pinning-in.xml").read_text(
    encoding="utf-8"
)


def test_the_diff_lists_only_the_host_side_values_that_change() -> None:
    plan = plan_destination(moving_guest_from_xml(SOURCE), host("smt2-far-siblings"))
    moved = rewrite_host_bindings(SOURCE, plan)
    found = changes(host_side(parse_xml(SOURCE, "x")), host_side(parse_xml(moved, "x")))
    paths = [change["path"] for change in found]
    # vCPUs 0 and 2 stay on CPUs 0 and 1; their siblings move from 16-17 to 64-65, the second socket's to 32-33, 96-97.
    assert paths == [
        "cputune/emulatorpin/cpuset",
        "cputune/vcpupin[1]/cpuset",
        "cputune/vcpupin[3]/cpuset",
        "cputune/vcpupin[4]/cpuset",
        "cputune/vcpupin[5]/cpuset",
        "cputune/vcpupin[6]/cpuset",
        "cputune/vcpupin[7]/cpuset",
    ]
    assert {"path": "cputune/vcpupin[1]/cpuset", "before": "16", "after": "64"} in found


def test_sets_compare_as_sets() -> None:
    assert changes({"numatune/memory/nodeset": "0,1"}, {"numatune/memory/nodeset": "0-1"}) == []


def test_the_check_after_the_move_names_what_differs() -> None:
    plan = plan_destination(moving_guest_from_xml(SOURCE), host("smt2-far-siblings"))
    moved = rewrite_host_bindings(SOURCE, plan)
    verify_placement("smt2-thread", moved, plan)
    wrong = moved.replace("<vcpupin vcpu='1' cpuset='64'/>", "<vcpupin vcpu='1' cpuset='65'/>").replace(
        "<memnode cellid='1' mode='strict' nodeset='1'/>", "<memnode cellid='1' mode='strict' nodeset='0'/>"
    )
    with pytest.raises(LibvirtOperationError) as caught:
        verify_placement("smt2-thread", wrong, plan)
    assert str(caught.value) == (
        "guest smt2-thread: the guest runs on the destination, but not as planned: vCPU 1 is pinned to 65, the plan "
        "says 64; cell 1's memory is bound to host nodes 0, the plan says 1"
    )


class _DiedOnArrival:
    """A domain libvirt reports shut off, crashed (virDomainState 5, virDomainShutoffReason 3)."""

    def isActive(self) -> int:
        return 0

    def state(self, flags: int = 0) -> list[int]:
        return [5, 3]


def test_a_guest_that_died_on_arrival_fails_the_run_which_says_it_moved() -> None:
    result = {"plan": {"vcpu_pins": {"0": "1"}}, "operation": "migrate"}
    with pytest.raises(LibvirtOperationError) as raised, _after_the_move(result):
        _verify_running(LibvirtGuest(_DiedOnArrival(), "g1"), "qemu+ssh://b/system")  # type: ignore[arg-type]
    assert str(raised.value) == "the guest moved but does not run at qemu+ssh://b/system: it is shutoff (crashed)"
    assert raised.value.details == {**result, "changed": True, "moved": True}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"operation": "move"}, "operation 'move' is not one of migrate, restore"),
        ({"operation": "migrate", "destination_uri": "test:///default"}, "operation migrate needs name"),
        ({"operation": "migrate", "name": "g"}, "operation migrate needs destination_uri"),
        ({"operation": "restore"}, "operation restore needs restore_from"),
        (
            {"operation": "restore", "restore_from": "/x", "destination_uri": "test:///default"},
            "operation restore brings the guest up on the host of uri; destination_uri goes with operation migrate",
        ),
        ({"operation": "migrate", "name": "g", "destination_uri": "t", "restore_from": "/x"}, "restore_from goes with"),
    ],
)
def test_option_refusals(params: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        run_migrate({"uri": "test:///default", **params})


# -- whole runs, against fake hosts that migrate and restore ----------------------------------------------


class _MovingGuest(FakeGuest):
    """A fake guest that migrates: the destination gets it running and defined, the source loses it."""

    def migratable_xml(self, persistent: bool) -> str:
        self._call("migratable_xml", persistent)
        return self.xml if persistent else self._require_running("reading the guest for its migration")

    def migrate_live(self, destination: FakeHost, xml: str, persistent_xml: str, migration_uri: str | None) -> None:
        self._call("migrate_live", xml, persistent_xml, migration_uri)
        moved = destination.define(persistent_xml, guest=self.name)
        moved.live = xml
        del self.host.guests[self.name]

    def state_text(self) -> str:
        return "running" if self.live is not None else "shutoff"


class _Hypervisor(FakeHost):
    """A fake host with a topology, save images and restores."""

    def __init__(self, capabilities: str, domains: Mapping[str, str] | None = None, running: tuple[str, ...] = ()):
        super().__init__()
        self.capabilities = capabilities
        self.images: dict[str, str] = {}
        for name, xml in (domains or {}).items():
            self.guests[name] = _MovingGuest(self, name, xml, running=name in running)

    def capabilities_xml(self) -> str:
        return self.capabilities

    def guest_if_defined(self, name: str) -> FakeGuest | None:
        return self.guests.get(name)

    def define(self, xml: str, guest: str | None = None) -> FakeGuest:
        name = parse_xml(xml, "x", root_tag="domain").findtext("name") or ""
        if name not in self.guests:
            self.guests[name] = _MovingGuest(self, name, xml)
        return super().define(xml, guest)

    def saved_image_xml(self, path: str) -> str:
        return self.images[path]

    def restore(self, path: str, xml: str, guest: str | None = None) -> None:
        self.record(guest or "", "restore", (path, xml))
        name = parse_xml(xml, "x", root_tag="domain").findtext("name") or ""
        restored = self.guests.get(name)
        if restored is None:
            # A guest not defined here runs transient.
            restored = self.guests[name] = _MovingGuest(self, name, xml)
            restored.persistent = False
        restored.live = xml


def _caps(name: str) -> str:
    return (CAPABILITIES / f"{name}.xml").read_text(encoding="utf-8")


MOVING = """<domain type='kvm'>
  <name>mig3-db</name>
  <memory unit='GiB'>{memory_gib}</memory>
  <vcpu>4</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <features><acpi/></features>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
  {vnuma}
</domain>
"""


def _laid_out(vnuma: str, memory_gib: int = 4, source: str = "seed-4node-ring") -> str:
    return expand_domain(MOVING.format(vnuma=vnuma, memory_gib=memory_gib), host(source)).xml


def _memnodes(xml: str) -> dict[int, str]:
    root = parse_xml(xml, "x", root_tag="domain")
    return {int(node.get("cellid", "")): node.get("nodeset", "") for node in root.iterfind("numatune/memnode")}


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> dict[str, _Hypervisor]:
    """The fake hypervisors by URI; the run connects to them instead of libvirt."""
    found: dict[str, _Hypervisor] = {}

    def connect(uri: str, *_timeouts: object) -> _Hypervisor:
        return found[uri]

    monkeypatch.setattr(migrate, "LibvirtHost", connect)
    return found


# Two cells on ring nodes 0 and 1 as it runs; four cells, one per ring node, waiting for its next boot.
RUNS = "<vnuma mode='node'><partition nodeset='0-1'/></vnuma>"
NEXT_BOOT = "<vnuma mode='host'/>"


def _migrate_args(**more: Any) -> dict[str, Any]:
    return {"name": "mig3-db", "uri": "qemu+ssh://a/system", "destination_uri": "qemu+ssh://b/system", **more}


def test_a_definition_waiting_for_a_boot_with_other_cells_is_planned_from_itself(
    hosts: dict[str, _Hypervisor],
) -> None:
    """Migrate: the live XML gets the running guest's plan, the persistent XML a plan of its own four cells."""
    live, definition = _laid_out(RUNS), _laid_out(NEXT_BOOT)
    source = hosts["qemu+ssh://a/system"] = _Hypervisor(_caps("seed-4node-ring"), {"mig3-db": live}, ("mig3-db",))
    source.guests["mig3-db"].xml = definition
    target = hosts["qemu+ssh://b/system"] = _Hypervisor(_caps("amd-2s-nps4"))

    planned = run_migrate(_migrate_args(), check_mode=True)
    assert (planned["changed"], planned["moved"]) == (True, False)
    assert [cell["id"] for cell in planned["plan"]["cells"]] == [0, 1]
    assert [cell["id"] for cell in planned["definition_plan"]["cells"]] == [0, 1, 2, 3]
    assert "mig3-db" in source.guests and not target.guests

    moved = run_migrate(_migrate_args())
    assert moved["moved"] is True
    guest = target.guests["mig3-db"]
    assert guest.live is not None
    assert _memnodes(guest.live) == {cell["id"]: cell["memory_nodes"] for cell in moved["plan"]["cells"]}
    assert _memnodes(guest.xml) == {cell["id"]: cell["memory_nodes"] for cell in moved["definition_plan"]["cells"]}
    # Four cells on four nodes of their own on the destination, its node ids.
    assert len(set(_memnodes(guest.xml).values())) == 4
    assert "mig3-db" not in source.guests


def test_a_definition_like_the_running_guest_takes_its_plan(hosts: dict[str, _Hypervisor]) -> None:
    live = _laid_out(RUNS)
    hosts["qemu+ssh://a/system"] = _Hypervisor(_caps("seed-4node-ring"), {"mig3-db": live}, ("mig3-db",))
    hosts["qemu+ssh://b/system"] = _Hypervisor(_caps("amd-2s-nps4"))
    planned = run_migrate(_migrate_args(), check_mode=True)
    assert planned["definition_plan"] is None


def test_a_definition_the_destination_cannot_hold_refuses_before_anything_moves(
    hosts: dict[str, _Hypervisor],
) -> None:
    """The running guest fits the destination, its definition waiting for a boot does not: refused, said why."""
    live = _laid_out("<vnuma mode='node'><partition nodeset='0'/></vnuma>", memory_gib=2)
    definition = _laid_out("<vnuma mode='node'><partition nodeset='0'/></vnuma>", memory_gib=6)
    source = hosts["qemu+ssh://a/system"] = _Hypervisor(_caps("seed-4node-ring"), {"mig3-db": live}, ("mig3-db",))
    source.guests["mig3-db"].xml = definition
    small = build_capabilities(HostShape(cores_per_node=4, memory_kib=4 * 1024 * 1024))
    target = hosts["qemu+ssh://b/system"] = _Hypervisor(small)
    for check_mode in (True, False):
        with pytest.raises(PlacementError) as caught:
            run_migrate(_migrate_args(), check_mode=check_mode)
        assert str(caught.value).startswith(
            "guest mig3-db: its persistent definition has a layout waiting for the next boot (cells of other vCPUs "
            "or memory than it runs with), which the destination cannot hold: guest cell 0 (6 GiB, 4 vCPUs) must "
            "live on one destination node"
        )
        assert str(caught.value).endswith(
            "; restart the guest so that it runs its definition, or undo the change waiting in it, then move it"
        )
        assert not source.called("migrate_live") and not target.guests


def test_a_restore_plans_the_definition_waiting_here_from_itself(hosts: dict[str, _Hypervisor]) -> None:
    """Restore: the image runs with its plan; the definition here, four cells for the next boot, gets its own."""
    image, definition = _laid_out(RUNS), _laid_out(NEXT_BOOT)
    here = hosts["qemu:///system"] = _Hypervisor(_caps("amd-2s-nps4"), {"mig3-db": definition})
    here.images["/save/mig3-db"] = image
    args = {"operation": "restore", "restore_from": "/save/mig3-db", "uri": "qemu:///system"}

    planned = run_migrate(args, check_mode=True)
    assert [cell["id"] for cell in planned["definition_plan"]["cells"]] == [0, 1, 2, 3]
    assert here.guests["mig3-db"].live is None and here.guests["mig3-db"].xml == definition

    restored = run_migrate(args)
    assert restored["moved"] is True
    guest = here.guests["mig3-db"]
    assert guest.live is not None
    assert _memnodes(guest.live) == {cell["id"]: cell["memory_nodes"] for cell in restored["plan"]["cells"]}
    assert _memnodes(guest.xml) == {cell["id"]: cell["memory_nodes"] for cell in restored["definition_plan"]["cells"]}


def test_memory_devices_choose_the_destination_node(hosts: dict[str, _Hypervisor]) -> None:
    """A 512 MiB cell and 2 GiB of DIMMs: node 0 (1400 MiB) holds the cell, not with its DIMMs; node 1 is chosen."""
    dimm = (
        "<memory model='dimm'><source><nodemask>0</nodemask></source>"
        "<target><size unit='MiB'>1024</size><node>0</node></target></memory>"
    )
    guest = MOVING.format(
        memory_gib=1, vnuma="<vnuma mode='host'><maxMemory slots='4' unit='GiB'>8</maxMemory></vnuma>"
    )
    live = expand_domain(
        guest.replace("<memory unit='GiB'>1</memory>", "<memory unit='MiB'>512</memory>"), host("single-node")
    ).xml
    live = live.replace("</devices>", f"{dimm}{dimm}</devices>")
    hosts["qemu+ssh://a/system"] = _Hypervisor(_caps("single-node"), {"mig3-db": live}, ("mig3-db",))
    shape = HostShape(sockets=2, cores_per_node=2, memory_kib=(1400 * 1024, 32 * 1024 * 1024))
    hosts["qemu+ssh://b/system"] = _Hypervisor(build_capabilities(shape))
    planned = run_migrate(_migrate_args(), check_mode=True)
    assert planned["plan"]["cells"][0]["host_nodes"] == "1"
    assert {"path": "devices/memory[1]/source/nodemask", "before": "0", "after": "1"} in planned["host_changes"]


def test_a_plan_rewrites_only_the_layout_it_was_planned_from() -> None:
    """The guard under the planner: a domain XML with other cells than the plan's is refused, saying so."""
    plan = plan_destination(moving_guest_from_xml(_laid_out(RUNS)), host("amd-2s-nps4"))
    with pytest.raises(XmlError) as caught:
        rewrite_host_bindings(_laid_out(NEXT_BOOT), plan)
    assert str(caught.value) == (
        "guest mig3-db: the domain XML has guest cells 0-3, the plan cells 0-1: a plan rewrites only the layout it "
        "was planned from (a definition with a layout waiting for the next boot needs a plan of its own)"
    )


def test_definition_plan_reads_what_the_planner_reads() -> None:
    """A definition like the running guest but for what a running guest's devices have plugged takes its plan."""
    cells = (MovingCell(0, (0, 1), 4 * 1024 * 1024, None, (0,)), MovingCell(1, (2, 3), 4 * 1024 * 1024, None, (1,)))
    device = DimmBinding(0, 512 * 1024, (0,))
    running = MovingGuest(name="mig3-db", vcpus=4, cells=cells, dimms=(replace(device, plugged_kib=256 * 1024),))
    destination = host("amd-2s-nps4")

    def plan(guest: MovingGuest) -> Any:
        return plan_destination(guest, destination)

    assert definition_plan(running, replace(running, dimms=(device,)), plan) is None
    # Its cells bound elsewhere (a binding waiting for the next boot): planned from itself.
    rebound = replace(running, cells=(cells[0], replace(cells[1], source_nodes=(0,))))
    later = definition_plan(running, rebound, plan)
    assert later is not None and later.cells[0].host_nodes == later.cells[1].host_nodes
    # Four cells for the next boot that no destination node holds: refused, naming both layouts.
    four = replace(
        running,
        cells=tuple(MovingCell(cell, (cell,), 40 * 1024 * 1024, None, (cell,)) for cell in range(4)),
        dimms=(),
    )
    with pytest.raises(PlacementError) as caught:
        definition_plan(running, four, plan)
    assert str(caught.value).startswith(
        "guest mig3-db: its persistent definition has a layout waiting for the next boot (4 cells; it runs with "
        "2 cells), which the destination cannot hold: guest cell 0 (40 GiB, 1 vCPUs) must live on one destination "
        "node"
    )
