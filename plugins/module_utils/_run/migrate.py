# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The ``vnuma_migrate`` run: move a guest to another host, or restore a saved one, with bindings planned there.

1. Read the guest as it runs (its live XML) and, for a restore, the XML stored in the save image.
2. Read the destination: its topology (capabilities, or ``host_capabilities``), the guests it runs or
   starts with it, and the CPUs other guests hold (``_run/plan.py:Planner`` reads them as vnuma_domain does).
3. Plan (``_core/move_planner.py:plan_destination``) and check the destination's capacity with the planned
   guest in place (``_core/move_capacity.py:check_destination``).  A persistent definition that lays the guest
   out otherwise than it runs (a change waiting for its next boot) is planned from itself
   (``definition_plan``).  Nothing has changed on either host yet; a refusal stops here.  Check mode stops
   here too, and returns the plan and the host-side changes.
4. Rewrite the host side (``_xml/migration.py:rewrite_host_bindings``) and move: a live migration with
   the destination and persistent XML, or a restore with the rewritten XML.
5. Read the guest on the destination and check that its pins and memory binding are the plan's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityReport, check_capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    LibvirtOperationError,
    PlacementError,
    SpecError,
    VnumaError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_capacity import check_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_models import DestinationPlan, MovingGuest
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_planner import plan_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import place_guests
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    LibvirtGuest,
    LibvirtHost,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import (
    DEFAULT_LOCK_TIMEOUT,
    check_lock_timeout,
    host_lock,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.plan import Planner
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import dedicated_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import (
    parse_capabilities,
    read_host_capabilities,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import (
    host_side,
    moving_guest_from_root,
    rewrite_host_bindings,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import domain_name

__all__ = ["OPERATIONS", "definition_plan", "run_migrate", "verify_placement"]

OPERATIONS = ("migrate", "restore")


def _root(xml: str, what: str) -> etree._Element:
    return parse_xml(xml, what, root_tag="domain")


def _canonical(path: str, value: str) -> str:
    """Cpusets and nodesets compare as sets: libvirt may print ``0,1`` as ``0-1``."""
    if path.endswith(("nodeset", "cpuset", "nodemask")):
        with contextlib.suppress(VnumaError):
            return format_cpuset(parse_cpuset(value, path))
    return value


def changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[dict[str, str | None]]:
    """The host-side values that differ, one entry per path."""
    return [
        {"path": path, "before": before.get(path), "after": after.get(path)}
        for path in sorted(set(before) | set(after))
        if _canonical(path, before.get(path) or "") != _canonical(path, after.get(path) or "")
    ]


def verify_placement(name: str, live_xml: str, plan: DestinationPlan) -> None:
    """Refuse unless the guest's live pins and memory binding on the destination are the plan's."""
    root = _root(live_xml, f"the running guest {name}")
    numa = DomainNuma.from_domain(root)
    problems = []
    pins = {pin.vcpu: pin.cpuset for pin in numa.vcpupins}
    for vcpu, cpus in sorted(plan.vcpu_pins.items()):
        if pins.get(vcpu) != cpus:
            got = format_cpuset(pins[vcpu]) if vcpu in pins else "no pin"
            problems.append(f"vCPU {vcpu} is pinned to {got}, the plan says {format_cpuset(cpus)}")
    memnodes = {node.cellid: node.nodeset for node in numa.numatune.memnodes} if numa.numatune is not None else {}
    for cell in plan.cells:
        if cell.id in memnodes and tuple(memnodes[cell.id]) != cell.memory_nodes:
            problems.append(
                f"cell {cell.id}'s memory is bound to host nodes {format_cpuset(memnodes[cell.id])}, "
                f"the plan says {format_cpuset(cell.memory_nodes)}"
            )
    emulator = numa.emulatorpin
    if plan.emulator_pins is not None and emulator is not None and tuple(emulator.cpuset) != plan.emulator_pins:
        problems.append(
            f"the emulator is pinned to {format_cpuset(emulator.cpuset)}, "
            f"the plan says {format_cpuset(plan.emulator_pins)}"
        )
    if problems:
        raise LibvirtOperationError(
            "the guest runs on the destination, but not as planned: " + "; ".join(problems), guest=name
        )


class _Destination:
    """The destination host as the planner sees it: topology, the room other guests leave, their CPUs."""

    def __init__(self, host: LibvirtHost, caps: str | None, guest: str) -> None:
        self.host = host
        self.topology: HostTopology = parse_capabilities(
            read_host_capabilities(caps) if caps else host.capabilities_xml()
        )
        planner = Planner(host, self.topology, capacity="report")
        # No requests: the planner only reads the host, counting running and autostart guests as they are.
        planner.plan_all([])
        self.others = [binding for binding in planner.others if binding.name != guest]
        # The CPUs other guests hold, each guest read as the planner reads it; the planner's own table
        # keeps one owner per CPU, and the moving guest's stale definition here may be that owner.
        self.taken: dict[int, str] = {}
        for other, xml in host.definitions():
            if other.name != guest:
                with contextlib.suppress(VnumaError):
                    root = parse_xml(xml, f"the definition of guest {other.name}", root_tag="domain")
                    self.taken.update(dedicated_cpus(self.topology, root, other.name))
        self.unread = planner.unread
        self.report: CapacityReport = check_capacity(self.topology, place_guests(self.topology, self.others))

    def check_fit(self, plan: DestinationPlan) -> CapacityReport:
        return check_destination(self.topology, self.others, plan, self.unread)

    def plan(self, guest: MovingGuest) -> DestinationPlan:
        return plan_destination(guest, self.topology, self.report, self.taken, self.others)


def _as_planned(guest: MovingGuest) -> MovingGuest:
    """What the planner reads of ``guest``, less what differs between a running guest and its definition anyway.

    A running guest's virtio-mem devices say what they have plugged (live ``<current>``), its definition not;
    the source topology is the same object for both.
    """
    return replace(guest, dimms=tuple(replace(dimm, plugged_kib=0) for dimm in guest.dimms), source=None)


def _counted(count: int, what: str) -> str:
    return f"{count} {what}" if count == 1 else f"{count} {what}s"


def _pending_text(definition: MovingGuest, running: MovingGuest) -> str:
    """How the definition's layout differs from the running guest's, for the refusal."""
    if len(definition.cells) != len(running.cells):
        return f"{_counted(len(definition.cells), 'cell')}; it runs with {_counted(len(running.cells), 'cell')}"
    shape = [(cell.vcpus, cell.memory_kib, cell.hugepage_kib) for cell in definition.cells]
    if shape != [(cell.vcpus, cell.memory_kib, cell.hugepage_kib) for cell in running.cells]:
        return "cells of other vCPUs or memory than it runs with"
    if _as_planned(definition).dimms != _as_planned(running).dimms:
        return "other memory devices than it runs with"
    return "other memory bindings, pinning or distances than it runs with"


def definition_plan(
    running: MovingGuest, definition: MovingGuest, plan: Callable[[MovingGuest], DestinationPlan]
) -> DestinationPlan | None:
    """The plan of the guest's persistent definition; None when it is the running guest's plan.

    A definition that lays the guest out otherwise than it runs (other cells, bindings or memory devices: a
    change waiting for its next boot, such as ``vnuma_domain``'s ``rerender: next_boot``) gets the host side
    planned from itself by ``plan``, so that its next boot on the destination binds its own cells.  A
    definition the destination cannot hold refuses the move, before anything moves, saying it is about the
    definition.
    """
    if _as_planned(definition) == _as_planned(running):
        return None
    try:
        return plan(definition)
    except PlacementError as error:
        raise PlacementError(
            f"its persistent definition has a layout waiting for the next boot ({_pending_text(definition, running)}), "
            f"which the destination cannot hold: {error.message}; restart the guest so that it runs its definition, "
            "or undo the change waiting in it, then move it",
            guest=running.name,
        ) from None


def _check_params(params: Mapping[str, Any]) -> str:
    operation = params.get("operation") or "migrate"
    if operation not in OPERATIONS:
        raise SpecError(f"operation {operation!r} is not one of {', '.join(OPERATIONS)}")
    if operation == "migrate":
        if not params.get("name"):
            raise SpecError("operation migrate needs name: the running guest to move")
        if not params.get("destination_uri"):
            raise SpecError("operation migrate needs destination_uri: the hypervisor to move the guest to")
        if params.get("restore_from"):
            raise SpecError("restore_from goes with operation restore, not migrate")
    else:
        if not params.get("restore_from"):
            raise SpecError("operation restore needs restore_from: the path of the save image on the host")
        if params.get("destination_uri"):
            raise SpecError(
                "operation restore brings the guest up on the host of uri; destination_uri goes with operation migrate"
            )
    check_lock_timeout(params.get("lock_timeout", DEFAULT_LOCK_TIMEOUT))
    return str(operation)


@contextlib.contextmanager
def _locked(uri: str, params: Mapping[str, Any], check_mode: bool) -> Iterator[None]:
    if check_mode:
        yield
        return
    with host_lock(uri, float(params.get("lock_timeout", DEFAULT_LOCK_TIMEOUT))):
        yield


def _result(
    plan: DestinationPlan,
    before: Mapping[str, str],
    after_xml: str,
    report: CapacityReport,
    later: DestinationPlan | None = None,
) -> dict[str, Any]:
    after = host_side(_root(after_xml, "the rewritten domain XML"))
    return {
        "plan": plan.to_dict(),
        "definition_plan": None if later is None else later.to_dict(),
        "host_changes": changes(before, after),
        "capacity": report.to_dict(),
    }


@contextlib.contextmanager
def _after_the_move(result: Mapping[str, Any]) -> Iterator[None]:
    """A failure once the guest has moved says so: the failed result has the plan, changed and moved."""
    try:
        yield
    except VnumaError as error:
        error.details.update({**result, "changed": True, "moved": True})
        raise


def _verify_running(guest: LibvirtGuest, uri: str) -> None:
    # An inactive domain's XMLDesc(0) is its definition, which has the planned bindings too: the
    # placement check alone would pass for a guest that died on arrival.
    if not guest.is_running():
        raise LibvirtOperationError(f"the guest moved but does not run at {uri}: it is {guest.state_text()}")


def run_migrate(params: Mapping[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """The module's run; raises a ``VnumaError`` naming the guest, the option and the limit on any refusal."""
    operation = _check_params(params)
    if operation == "migrate":
        return _migrate(params, check_mode)
    return _restore(params, check_mode)


def _migrate(params: Mapping[str, Any], check_mode: bool) -> dict[str, Any]:
    name = str(params["name"])
    source_uri, destination_uri = params["uri"], params["destination_uri"]
    timeouts = (
        params.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        params.get("call_timeout", DEFAULT_CALL_TIMEOUT),
    )
    try:
        if source_uri == destination_uri:
            raise SpecError(f"destination_uri {destination_uri} is the source's uri: a guest moves to another host")
        with LibvirtHost(source_uri, *timeouts) as source, LibvirtHost(destination_uri, *timeouts) as target:
            guest = source.guest_if_defined(name)
            if guest is None:
                raise LibvirtOperationError(f"no guest named {name} is defined at {source_uri}")
            if not guest.is_running():
                raise LibvirtOperationError(
                    f"the guest is not running at {source_uri}: a live migration moves a running guest"
                )
            if target.guest_if_defined(name) is not None:
                raise LibvirtOperationError(
                    f"a guest named {name} is already defined at {destination_uri}; undefine it there first"
                )
            live_xml, persistent_xml = guest.migratable_xml(persistent=False), guest.migratable_xml(persistent=True)
            source_topology = parse_capabilities(source.capabilities_xml())
            live = _root(live_xml, f"the running guest {name}")
            destination = _Destination(target, params.get("host_capabilities"), name)
            running = moving_guest_from_root(live, source_topology)
            plan = destination.plan(running)
            report = destination.check_fit(plan)
            persistent = _root(persistent_xml, f"the persistent definition of guest {name}")
            later = definition_plan(running, moving_guest_from_root(persistent, source_topology), destination.plan)
            moved_xml = rewrite_host_bindings(live_xml, plan, ("migrate", source_uri))
            moved_persistent = rewrite_host_bindings(persistent_xml, later or plan, ("migrate", source_uri))
            result = _result(plan, host_side(live), moved_xml, report, later)
            result.update(operation="migrate", source_uri=source_uri, destination_uri=destination_uri)
            if check_mode:
                return {**result, "changed": True, "moved": False}
            with _locked(destination_uri, params, check_mode):
                guest.migrate_live(target, moved_xml, moved_persistent, params.get("migration_uri"))
                with _after_the_move(result):
                    moved = target.guest_if_defined(name)
                    if moved is None:
                        raise LibvirtOperationError(
                            f"the migration ended but {destination_uri} has no guest named {name}"
                        )
                    _verify_running(moved, destination_uri)
                    verify_placement(name, moved.live_xml(), plan)
            return {**result, "changed": True, "moved": True}
    except VnumaError as error:
        raise error.naming(name) from None


def _restore(params: Mapping[str, Any], check_mode: bool) -> dict[str, Any]:
    path = str(params["restore_from"])
    uri = params["uri"]
    timeouts = (
        params.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        params.get("call_timeout", DEFAULT_CALL_TIMEOUT),
    )
    name: str | None = params.get("name")
    try:
        with LibvirtHost(uri, *timeouts) as host:
            saved_xml = host.saved_image_xml(path)
            saved = _root(saved_xml, f"the domain XML of the save image {path}")
            saved_name = domain_name(saved) or ""
            if name and saved_name != name:
                raise SpecError(f"restore_from {path} holds guest {saved_name}, not {name}")
            name = saved_name
            existing = host.guest_if_defined(name)
            if existing is not None and existing.is_running():
                raise LibvirtOperationError(f"the guest is already running at {uri}; a restore would start it twice")
            destination = _Destination(host, params.get("host_capabilities"), name)
            running = moving_guest_from_root(saved)
            plan = destination.plan(running)
            report = destination.check_fit(plan)
            later: DestinationPlan | None = None
            if existing is not None:
                # Its definition here is planned before anything moves: it may wait for a boot with other cells.
                definition = _root(existing.inactive_xml(), f"the definition of guest {name} at {uri}")
                later = definition_plan(running, moving_guest_from_root(definition), destination.plan)
            restored_xml = rewrite_host_bindings(saved_xml, plan, ("restore", path))
            result = _result(plan, host_side(saved), restored_xml, report, later)
            result.update(operation="restore", restore_from=path, uri=uri)
            if check_mode:
                return {**result, "changed": True, "moved": False}
            with _locked(uri, params, check_mode):
                host.restore(path, restored_xml, guest=name)
                with _after_the_move({**result, "name": name}):
                    restored = host.guest_if_defined(name)
                    if restored is None:
                        raise LibvirtOperationError(f"the restore ended but {uri} has no guest named {name}")
                    _verify_running(restored, uri)
                    verify_placement(name, restored.live_xml(), plan)
                    if existing is not None:
                        # Its definition here moves with it: the next start uses the bindings planned for it
                        # (those it runs with, or its own for a layout waiting for the next boot).
                        moved_definition = rewrite_host_bindings(
                            restored.inactive_xml(), later or plan, ("restore", path)
                        )
                        host.define(moved_definition, guest=name)
            return {**result, "changed": True, "moved": True, "name": name}
    except VnumaError as error:
        raise error.naming(name) from None
