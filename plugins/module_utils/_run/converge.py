# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Converge guests on one hypervisor to their vNUMA layouts: plan every guest, then apply.

Plan -> compare -> apply, as models: the guest's inactive definition is read, the layout
planned, and the owned parts compared value by value.  libvirt is called only for guests that
differ, and only after every guest of the call has planned without error and the host's capacity
has been checked across all its guests (``_core.capacity``), so a refused request changes nothing.
After a define the definition is read back and compared again: libvirt may drop or rewrite what it
does not accept, and that must not pass silently.

Applying goes in phases across the guests of the call: every define first, then the restarts as
one batch (all shut down together against one deadline, then all started), then the live changes
(re-pinning, hot-plug) guest by guest.  N guests needing a restart are down once, together, not
one after the other.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import (
    CapacityError,
    CapacityReport,
    check_capacity,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    LibvirtDeadlineError,
    LibvirtOperationError,
    SpecError,
    VnumaError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import plan_dimms, vcpus_to_enable
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    DimmBinding,
    GuestBinding,
    GuestPlacement,
    held_cpus,
    place_guests,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import DEDICATED_PINNINGS, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtGuest, LibvirtHost
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.absent import render_absent
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import binding_from_domain, dedicated_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import Change, ChangeKind, changes_as_diff
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import (
    DomainPlan,
    plan_domain,
    render_plan,
    serialize_like,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import MemoryDevice
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import (
    has_original,
    has_stored_spec,
    read_stored_spec,
)

__all__ = ["BatchError", "GuestRequest", "GuestResult", "Converger"]

# Seconds between looks at guests asked to shut down.
_SHUTDOWN_POLL = 0.25
# Guests powered off at once (libvirtd's default max_workers is 20: leave it room for other clients).
_PARALLEL = 8
# Times a guest is planned again when another client keeps changing its definition under this run.
_REPLANS = 3


@dataclass(frozen=True)
class GuestRequest:
    """What one guest should become.  ``options`` are user-facing spec options given explicitly."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    state: str = "present"
    current_vcpus: int | None = None
    hotplug_memory_kib: int | None = None


@dataclass
class GuestResult:
    """What happened (or, in check mode, would happen) to one guest."""

    name: str
    changed: bool = False
    changes: list[Change] = field(default_factory=list)
    layout: Layout | None = None
    running: bool = False
    restart_required: bool = False
    restarted: bool = False
    backup_file: str | None = None
    live: list[str] = field(default_factory=list)
    # The planned definition's alignment ({aligned, locality, cells}) and the current one's locality.
    alignment: dict[str, Any] | None = None
    locality_before: float | None = None
    # What this run wrote for the guest, in order ("definition", "shutdown requested", ...): also when
    # it then failed.  Empty in check mode.
    written: list[str] = field(default_factory=list)
    # Why the guest failed, or None; a failed guest never stops the others.
    error: VnumaError | None = None
    warnings: list[str] = field(default_factory=list)

    def wrote(self, what: str) -> None:
        self.written.append(what)
        self.changed = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "changed": self.changed,
            "written": list(self.written),
            "error": None if self.error is None else str(self.error),
            "changes": [str(change) for change in self.changes],
            "layout": None if self.layout is None else self.layout.to_dict(),
            "running": self.running,
            "restart_required": self.restart_required,
            "restarted": self.restarted,
            "backup_file": self.backup_file,
            "live": list(self.live),
            "alignment": self.alignment,
            "locality_before": self.locality_before,
        }

    def diff(self) -> dict[str, dict[str, object]]:
        return changes_as_diff(self.changes)


class BatchError(VnumaError):
    """Some guests of a call failed; ``results`` holds every guest's result, what was written included."""

    def __init__(self, results: Sequence[GuestResult]) -> None:
        failed = [result for result in results if result.error is not None]
        written = [f"guest {result.name}: {', '.join(result.written)}" for result in results if result.written]
        if len(failed) == 1 and failed[0].error is not None:
            message, guest = failed[0].error.message, failed[0].error.guest
        else:
            message, guest = (
                f"{len(failed)} of {len(results)} guests failed: " + "; ".join(str(result.error) for result in failed),
                None,
            )
        if written:
            message += f" (written before the failure: {'; '.join(written)})"
        super().__init__(message, guest=guest)
        self.results = list(results)


@dataclass
class _Planned:
    request: GuestRequest
    guest: LibvirtGuest
    original_xml: str
    root: Any
    running: bool
    plan: DomainPlan | None  # None for state=absent
    target: DomainNuma
    changes: list[Change]
    new_xml: str | None
    online: set[int] | None = None
    # Owned values where the running guest differs from the target: what only a new boot brings.
    pending: list[Change] = field(default_factory=list)
    # The definition as it is, parsed (for its locality before the change).
    current: DomainNuma | None = None
    # Where the planned and the current definitions put the guest on the host (set by place()).
    placement: GuestPlacement | None = None
    before: GuestPlacement | None = None
    warnings: list[str] = field(default_factory=list)

    def needs_restart(self) -> bool:
        """Whether a running guest needs a restart to run as defined."""
        if not self.running:
            return False
        adding = (
            self.plan is not None
            and self.online is not None
            and self.request.current_vcpus is not None
            and self.request.current_vcpus >= len(self.online)
        )
        # A definition changed by an earlier run (restart: never) still waits for its boot: the running
        # guest is compared too, not just the definition.
        return any(change.kind.waits_for_boot(adding) for change in [*self.changes, *self.pending])


def _layout_held(topology: HostTopology, layout: Layout) -> tuple[int, ...]:
    """Host CPUs a planned layout holds for itself (the rule is ``_core/placement.py:held_cpus``)."""
    return held_cpus(layout.vcpu_pins or (), layout.spec.pinning, topology)


class Converger:
    """Plans and applies a batch of guest requests on one host."""

    def __init__(
        self,
        host: LibvirtHost,
        topology: HostTopology,
        check_mode: bool = False,
        restart: str = "never",
        force: bool = False,
        shutdown_timeout: float = 120.0,
        backup_dir: str | None = None,
        capacity: str = "fail",
        reserved_kib: int = 0,
    ) -> None:
        self.host = host
        self.topology = topology
        self.check_mode = check_mode
        self.restart = restart
        self.force = force
        self.shutdown_timeout = shutdown_timeout
        self.backup_dir = backup_dir
        # fail | report | ignore (_core.capacity.CAPACITY_MODES), and the memory kept free on every host node.
        self.capacity = capacity
        self.reserved_kib = reserved_kib
        # The last plan_all's capacity check; None with capacity: ignore.
        self.capacity_report: CapacityReport | None = None
        # What plan_all learnt of the host, for planning a guest again right before its define.
        self.taken: dict[int, str] = {}
        self.autostart: set[str] = set()
        self.others: list[GuestBinding] = []
        self.unread: list[str] = []
        self.planned_items: list[_Planned] = []
        self.replanned: dict[str, _Planned] = {}

    # -- planning ---------------------------------------------------------------------------------

    def plan_all(self, requests: Sequence[GuestRequest]) -> list[_Planned | VnumaError]:
        """Plan every request, then check the host's capacity, before anything is written.

        A guest that cannot be read or planned gets its error in its place and affects nothing else:
        it is counted as it is defined now.  Guests asking for dedicated pinning are planned first, so
        the node-pinned guests of the same call avoid their CPUs; the plans keep the order of the
        requests.  A capacity refusal (with ``capacity: fail``) concerns the host and raises.
        """
        names = [request.name for request in requests]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise SpecError(f"guests {', '.join(duplicates)} are requested more than once")
        taken: dict[int, str] = {}
        readings: dict[str, tuple[LibvirtGuest, str, Any]] = {}
        wanted = set(names)
        running = set(self.host.running_names())
        autostart = set(self.host.autostart_names()) if self.capacity != "ignore" else set()
        counted: dict[str, GuestBinding] = {}
        unread: list[str] = []
        outcome: dict[int, _Planned | VnumaError] = {}
        for guest, xml in self.host.definitions():
            counts = self.capacity != "ignore" and (guest.name in running or guest.name in autostart)
            try:
                root = parse_xml(xml, f"the definition of guest {guest.name}", root_tag="domain")
                held = dedicated_cpus(self.topology, root, guest.name)
            except VnumaError as error:
                # Only a requested guest fails for it; any other is counted as a whole (below).
                if guest.name in wanted:
                    readings[guest.name] = (guest, xml, error.naming(guest.name))
                elif counts:
                    unread.append(self.count_unreadable(guest, error, counted, running, autostart))
                continue
            if guest.name in wanted:
                readings[guest.name] = (guest, xml, root)
                continue
            taken.update(held)
            if counts:
                self.count_defined(guest, root, held, counted, unread, running, autostart)
        for index, name in enumerate(names):
            reading = readings.get(name)
            if reading is None:
                outcome[index] = LibvirtOperationError(
                    f"no guest named {name} is defined at {self.host.uri}", guest=name
                )
            elif isinstance(reading[2], VnumaError):
                outcome[index] = reading[2]
        order = sorted(range(len(requests)), key=lambda index: (not self.dedicated(requests[index], readings), index))
        for index in order:
            if index in outcome:
                continue
            request = requests[index]
            guest, xml, root = readings[request.name]
            try:
                item = self.plan_one(request, guest, xml, root, taken, guest.name in running)
            except VnumaError as error:
                outcome[index] = error.naming(request.name)
                continue
            outcome[index] = item
            layout = item.plan.layout if item.plan is not None else None
            if layout is not None:
                taken.update(dict.fromkeys(_layout_held(self.topology, layout), request.name))
        results = [outcome[index] for index in range(len(requests))]
        items = [item for item in results if isinstance(item, _Planned)]
        # A requested guest that failed stays as it is defined, and is counted so.
        for name, reading in readings.items():
            guest, _xml, root = reading
            failed = not any(item.request.name == name for item in items)
            if failed and self.capacity != "ignore" and (name in running or name in autostart):
                if isinstance(root, VnumaError):
                    unread.append(self.count_unreadable(guest, root, counted, running, autostart))
                else:
                    self.count_defined(guest, root, (), counted, unread, running, autostart)
        others = list(counted.values())
        self.taken, self.autostart, self.others, self.unread = taken, autostart, others, unread
        self.planned_items, self.replanned = items, {}
        self.place(items, autostart)
        if self.capacity != "ignore":
            self.check_capacity(items, others, unread)
        return results

    def count_defined(
        self,
        guest: LibvirtGuest,
        root: Any,
        held: Iterable[int],
        counted: dict[str, GuestBinding],
        unread: list[str],
        running: set[str],
        autostart: set[str],
    ) -> None:
        """Count a guest outside the plan where its definition puts it (as a whole when that cannot be read)."""
        try:
            numa = DomainNuma.from_domain(root)
        except VnumaError as error:
            unread.append(self.count_unreadable(guest, error, counted, running, autostart))
            return
        counted[guest.name] = binding_from_domain(
            numa, guest.name, guest.name in running, guest.name in autostart, held
        )

    def count_unreadable(
        self,
        guest: LibvirtGuest,
        error: VnumaError,
        counted: dict[str, GuestBinding],
        running: set[str],
        autostart: set[str],
    ) -> str:
        """Count a guest whose definition cannot be read as its whole memory, bound to no node; the warning."""
        memory_kib = guest.memory_kib()
        counted[guest.name] = GuestBinding(
            name=guest.name,
            cells=(CellBinding(id=0, vcpus=(0,), memory_kib=memory_kib),),
            running=guest.name in running,
            autostart=guest.name in autostart,
        )
        return (
            f"guest {guest.name} is counted as {format_kib(memory_kib)} of memory on any host node: "
            f"its definition cannot be read ({error.message})"
        )

    def dedicated(self, request: GuestRequest, readings: Mapping[str, tuple[LibvirtGuest, str, Any]]) -> bool:
        """Whether the request asks for dedicated pinning (a spec that does not parse is planned in turn)."""
        reading = readings.get(request.name)
        if request.state == "absent" or reading is None or isinstance(reading[2], VnumaError):
            return False
        try:
            return self.spec_for(request, reading[2]).pinning in DEDICATED_PINNINGS
        except VnumaError:
            return False

    def place(self, items: Sequence[_Planned], autostart: set[str]) -> None:
        """Where each guest would be (its planned definition) and is (its current one) on the host."""
        planned: list[GuestBinding] = []
        current: list[GuestBinding] = []
        for item in items:
            name = item.request.name
            starts = name in autostart
            if item.plan is None:
                # state: absent: the flat definition it is given.
                planned.append(binding_from_domain(item.target, name, item.running, starts))
            else:
                planned.append(self.planned_binding(item, item.plan, starts))
            current.append(binding_from_domain(item.current or item.target, name, item.running, starts))
        for item, after, before in zip(
            items, place_guests(self.topology, planned), place_guests(self.topology, current), strict=True
        ):
            item.placement, item.before = after, before

    def planned_binding(self, item: _Planned, plan: DomainPlan, autostart: bool) -> GuestBinding:
        """The binding of the planned definition, with the DIMMs it keeps and those this call hot-adds."""
        layout = plan.layout
        # Read from the definition to be written, not the layout alone: the user's own <hugepages>
        # and <emulatorpin> stay when the spec does not set them, and they decide where memory lives.
        written = binding_from_domain(
            plan.target, item.request.name, item.running, autostart, _layout_held(self.topology, layout)
        )
        dimms = list(written.dimms)
        wanted = item.request.hotplug_memory_kib
        present = _dimms(plan.current.memory_devices)
        missing = 0 if wanted is None else wanted - sum(size for _cell, size in present)
        if missing > 0:
            dimms.extend(
                DimmBinding(cell=dimm.cell, size_kib=dimm.size_kib, host_nodes=tuple(dimm.host_nodes))
                for dimm in plan_dimms(layout, missing, present)
            )
        return replace(written, dimms=tuple(dimms), source="planned")

    def check_capacity(self, items: Sequence[_Planned], others: Sequence[GuestBinding], unread: list[str]) -> None:
        """Check the host's capacity with this call's plans in place.

        With ``capacity: fail``, a CapacityError when a planned guest takes part in a problem.
        """
        placements = [item.placement for item in items if item.placement is not None]
        report = check_capacity(
            self.topology, [*placements, *place_guests(self.topology, others)], reserved_kib=self.reserved_kib
        )
        if unread:
            report = replace(report, warnings=(*report.warnings, *unread))
        self.capacity_report = report
        if report.blocking and self.capacity == "fail":
            raise CapacityError(report)

    def spec_for(self, request: GuestRequest, root: Any, warnings: list[str] | None = None) -> VnumaSpec:
        """The stored spec with the explicitly given options on top (defaults when nothing is stored).

        A stored spec that cannot be read (edited by hand, written by another tool) is replaced by the
        options given, with a warning; without any it is an error that says how to repair the guest.
        """
        try:
            stored = read_stored_spec(root)
        except VnumaError as error:
            if not request.options:
                raise SpecError(
                    f"its stored vnuma spec cannot be read ({error.message}); give the spec's options (at least "
                    "mode) to replace it, or state: absent to remove the layout",
                    guest=request.name,
                ) from None
            stored = None
            if warnings is not None:
                warnings.append(
                    f"guest {request.name}: its stored vnuma spec cannot be read ({error.message}); "
                    "replaced by the options given"
                )
        base = {} if stored is None else {k: v for k, v in stored.to_mapping().items() if v is not None}
        base.update({key: value for key, value in request.options.items() if value is not None})
        if request.options.get("mode") == "host":
            # Partition options of a stored node-mode spec mean nothing once the mode is host; given now
            # together with mode host, the spec refuses them.
            for key in ("nodeset", "cells"):
                if key not in request.options:
                    base.pop(key, None)
        return VnumaSpec.from_mapping(base)

    def plan_one(
        self,
        request: GuestRequest,
        guest: LibvirtGuest,
        xml: str,
        root: Any,
        taken: Mapping[int, str],
        running: bool,
    ) -> _Planned:
        others = {cpu: owner for cpu, owner in taken.items() if owner != request.name}
        warnings: list[str] = []
        if request.state == "absent":
            current = DomainNuma.from_domain(root)
            # What the write below makes (render_absent on a fresh parse), read as models: the target,
            # and the warnings (a record that cannot be used) for the result.  A stored spec that cannot
            # be read does not matter here: absent removes it whatever it says.
            restored = parse_xml(xml, f"the definition of guest {request.name}", root_tag="domain")
            warnings.extend(render_absent(restored, request.name))
            target = DomainNuma.from_domain(restored)
            changes = current.changes(target)
            if has_stored_spec(root):
                changes.append(Change("metadata/vnuma", "stored", None, ChangeKind.LIVE))
            if has_original(root):
                changes.append(Change("metadata/vnuma-original", "recorded", None, ChangeKind.LIVE))
            plan = None
        else:
            spec = self.spec_for(request, root, warnings)
            plan = plan_domain(root, self.topology, spec, others, request.current_vcpus)
            current, target, changes = plan.current, plan.target, list(plan.changes)
            if request.hotplug_memory_kib is not None:
                self.check_hotplug_memory(plan, request.hotplug_memory_kib, root)
        new_xml = None
        if changes:
            new_root = parse_xml(xml, f"the definition of guest {request.name}", root_tag="domain")
            if plan is not None:
                render_plan(new_root, plan)
            else:
                render_absent(new_root, request.name)
            new_xml = serialize_like(new_root, xml)
        online: set[int] | None = None
        pending: list[Change] = []
        if running:
            live = DomainNuma.from_domain(parse_xml(guest.live_xml(), f"the running guest {request.name}", "domain"))
            online = _online(live)
            # Hot-plugged vCPUs and DIMMs make the running guest differ without needing a boot.
            pending = [change for change in live.changes(target) if change.kind is not ChangeKind.HOTPLUG]
        return _Planned(
            request,
            guest,
            xml,
            root,
            running,
            plan,
            target,
            changes,
            new_xml,
            online,
            pending,
            current=current,
            warnings=warnings,
        )

    def check_hotplug_memory(self, plan: DomainPlan, wanted_kib: int, root: Any) -> None:
        """Everything a DIMM hot-add needs, checked before the first write (slots, sizes, ACPI)."""
        present = _dimms(plan.current.memory_devices)
        have = sum(size for _cell, size in present)
        if wanted_kib < have:
            raise SpecError(
                f"hotplug_memory {format_kib(wanted_kib)} is below the {format_kib(have)} already hot-plugged; "
                "memory is never unplugged by this module"
            )
        if wanted_kib > have:
            plan_dimms(plan.layout, wanted_kib - have, present)
            # QEMU's device_add of a pc-dimm on x86 needs the guest's ACPI memory hotplug controller
            # ("memory hotplug is not enabled: ... ACPI"), which libvirt only gives a guest with <acpi/>.
            arch = root.find("os/type")
            arch_name = arch.get("arch") if arch is not None else None
            if arch_name in (None, "x86_64", "i686") and root.find("features/acpi") is None:
                raise SpecError(
                    f"hotplug_memory {format_kib(wanted_kib)} needs ACPI: the guest's <features> has no <acpi/>, "
                    "and QEMU hot-adds DIMMs on x86 only through ACPI; add <acpi/> first"
                )

    # -- applying ---------------------------------------------------------------------------------

    def converge(self, requests: Sequence[GuestRequest]) -> list[GuestResult]:
        """Plan everything, then define every guest, restart those that need it together, then the live changes.

        A guest that fails at any step keeps its error in its result and drops out of the later steps;
        the others go on.  When any guest failed, a ``BatchError`` carries every result, with what was
        written for each, after all the others are done.
        """
        outcome = self.plan_all(requests)
        results: list[GuestResult] = []
        planned: list[tuple[_Planned, GuestResult]] = []
        for request, item in zip(requests, outcome, strict=True):
            if isinstance(item, VnumaError):
                results.append(GuestResult(name=request.name, error=item))
                continue
            result = self.define_one(item)
            results.append(result)
            if result.error is None:
                planned.append((self.replanned.pop(item.request.name, item), result))
        if self.restart == "if_needed":
            self.restart_together([(item, result) for item, result in planned if result.restart_required])
        for item, result in planned:
            if result.error is None:
                self.live_changes(item, result)
        if any(result.error is not None for result in results):
            raise BatchError(results)
        return results

    def define_one(self, item: _Planned) -> GuestResult:
        """The result of one guest, and its new definition written (after a backup when asked).

        The definition is read again right before the define: when another client changed it since
        the plan, the guest is planned again from what is there now (``_REPLANS`` times at most), so
        their change is kept, never overwritten.
        """
        name = item.request.name
        result = GuestResult(name=name, running=item.running)
        result.warnings.extend(item.warnings)
        try:
            if item.changes and not self.check_mode:
                item = self.fresh(item)
                result.warnings.extend(warning for warning in item.warnings if warning not in result.warnings)
            self.describe(item, result)
            if item.changes and not self.check_mode:
                if self.backup_dir is not None:
                    result.backup_file = self.write_backup(name, item.original_xml)
                    result.wrote(f"backup {result.backup_file}")
                self.define_and_verify(item, result)
        except VnumaError as error:
            result.error = error.naming(name)
            # In a real run only what was written counts as changed; in check mode what would be.
            result.changed = bool(result.written) if not self.check_mode else result.changed
        return result

    def describe(self, item: _Planned, result: GuestResult) -> None:
        result.changes = list(item.changes)
        result.layout = item.plan.layout if item.plan is not None else None
        result.changed = bool(item.changes)
        result.restart_required = item.needs_restart()
        if item.placement is not None:
            result.alignment = {key: value for key, value in item.placement.to_dict().items() if key != "name"}
        if item.before is not None:
            result.locality_before = round(item.before.locality, 4)

    def fresh(self, item: _Planned) -> _Planned:
        """``item`` planned on the definition as it is now (the same item when nobody changed it)."""
        name = item.request.name
        for _attempt in range(_REPLANS):
            xml = item.guest.xml_if_defined()
            if xml is None:
                raise LibvirtOperationError(
                    "was undefined by another client after this run read it; nothing was written for it", guest=name
                )
            if xml == item.original_xml:
                return item
            root = parse_xml(xml, f"the definition of guest {name}", root_tag="domain")
            running = item.guest.is_running()
            item = self.plan_one(item.request, item.guest, xml, root, self.taken, running)
            self.replanned[name] = item
            self.place([item], self.autostart)
            if self.capacity != "ignore":
                # The new plan must fit with everything else as planned and as counted.
                items = [self.replanned.get(other.request.name, other) for other in self.planned_items]
                self.check_capacity(items, self.others, self.unread)
            if not item.changes:
                return item
        raise LibvirtOperationError(
            f"its definition changed {_REPLANS} times while this run planned it (another client is editing it); "
            "nothing was written for it",
            guest=name,
        )

    def restart_together(self, batch: Sequence[tuple[_Planned, GuestResult]]) -> None:
        """Shut every guest of ``batch`` down at once, wait for all against one deadline, then start them all.

        After the deadline the guests still running are powered off with ``force``; without it they
        are left running, the others are started again, and each guest that did not stop or start
        gets its error in its result.
        """
        for _item, result in batch:
            # A restart changes the running guest even when the definition was changed by an earlier run.
            result.restarted = True
            result.changed = True
            result.restart_required = False
        if self.check_mode or not batch:
            return
        by_name = {item.guest.name: result for item, result in batch}
        waiting = []
        for item, result in batch:
            try:
                if item.guest.ask_shutdown():
                    result.wrote("shutdown requested")
                    waiting.append(item.guest)
            except VnumaError as error:
                self.restart_failed(result, error)
        deadline = time.monotonic() + self.shutdown_timeout
        while waiting:
            waiting = [guest for guest in waiting if self.still_running(guest, by_name[guest.name])]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(min(_SHUTDOWN_POLL, max(deadline - time.monotonic(), 0.0)))
        if self.force:
            # libvirtd takes a second or two to power a QEMU off (SIGTERM, then it waits for the exit): in
            # parallel, the batch is down for the slowest one, not for the sum.
            failed = _each(waiting, LibvirtGuest.destroy)
            for guest in waiting:
                if guest.name in failed:
                    self.restart_failed(by_name[guest.name], failed[guest.name])
                else:
                    by_name[guest.name].wrote("powered off")
        else:
            for guest in waiting:
                self.restart_failed(by_name[guest.name], _not_stopped(guest.name, self.shutdown_timeout))
        # The others are down with their new definition: started again even when some did not stop.
        # One after the other: starting QEMUs at once only makes them compete for the host's CPUs.
        for item, result in batch:
            if result.error is not None:
                continue
            try:
                item.guest.start()
            except VnumaError as error:
                self.restart_failed(result, error)
                continue
            result.wrote("started")

    def still_running(self, guest: LibvirtGuest, result: GuestResult) -> bool:
        try:
            return guest.is_running()
        except VnumaError as error:
            self.restart_failed(result, error)
            return False

    @staticmethod
    def restart_failed(result: GuestResult, error: VnumaError) -> None:
        result.error = error.naming(result.name)
        result.restarted = False
        result.restart_required = True
        result.changed = bool(result.written)

    def live_changes(self, item: _Planned, result: GuestResult) -> None:
        """What a guest takes without a (further) boot: re-pinning when it keeps running, then hot-plug."""
        repinned = any(change.path.startswith("cputune/vcpupin") for change in item.changes)
        stays_up = not result.restart_required and not result.restarted
        try:
            if item.running and repinned and stays_up and item.plan is not None:
                self.repin_live(item, result)
            if item.plan is not None:
                self.hotplug(item, result)
        except VnumaError as error:
            result.error = error.naming(result.name)

    def write_backup(self, name: str, xml: str) -> str:
        directory = self.backup_dir or "."
        try:
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, f"{name}.{time.strftime('%Y%m%dT%H%M%S')}.{time.time_ns() % 10**9}.xml")
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(xml)
        except OSError as error:
            raise LibvirtOperationError(
                f"cannot save the backup of its definition in {directory}: {error}", guest=name
            ) from None
        return path

    def define_and_verify(self, item: _Planned, result: GuestResult) -> None:
        name = item.request.name
        if item.new_xml is None:
            return
        try:
            guest = self.host.define(item.new_xml, guest=name)
        except LibvirtDeadlineError:
            # The define was sent: libvirtd may yet carry it out, so it counts as written.
            result.wrote("definition (unconfirmed: no answer within call_timeout)")
            raise
        result.wrote("definition")
        reread = parse_xml(guest.inactive_xml(), f"the definition of guest {name}", root_tag="domain")
        kept = DomainNuma.from_domain(reread)
        lost = kept.changes(item.target)
        if lost:
            detail = "; ".join(str(change) for change in lost[:5])
            raise LibvirtOperationError(
                f"libvirt did not keep the layout as defined ({detail}); the definition was saved as libvirt "
                "rewrote it",
                guest=name,
            )

    def repin_live(self, item: _Planned, result: GuestResult) -> None:
        pins = item.plan.layout.vcpu_pins if item.plan is not None else None
        if pins is None:
            if item.plan is None:
                return
            # pinning: none drops the <vcpupin>s from the definition; the running guest keeps its old
            # pins unless they are lifted live as well: back to libvirt's default affinity, which is
            # <vcpu cpuset> when the guest has one and every host CPU otherwise.
            vcpu = item.target.vcpu
            default = vcpu.cpuset if vcpu is not None and vcpu.cpuset else tuple(sorted(self.topology.cpu_node))
            pins = (default,) * item.plan.layout.vcpus
        online = item.online or set()
        host_cpus = max(self.topology.cpu_node, default=0) + 1
        for vcpu, cpus in enumerate(pins):
            if vcpu not in online:
                continue
            result.live.append(f"vCPU {vcpu} pinned to host CPUs {format_cpuset(cpus)}")
            if not self.check_mode:
                item.guest.pin_vcpu_live(vcpu, cpus, host_cpus)
                result.wrote(f"vCPU {vcpu} pinned live")

    def hotplug(self, item: _Planned, result: GuestResult) -> None:
        """Live (and persistent) vCPU enable and DIMM hot-add, balanced across cells."""
        plan = item.plan
        if plan is None:
            return
        request = item.request
        live = item.running and not result.restart_required and not result.restarted
        if request.current_vcpus is not None and live:
            online = item.online or set()
            enable = vcpus_to_enable(plan.layout, online, request.current_vcpus)
            if enable:
                result.changed = True
                result.live.append(f"enabled vCPUs {format_cpuset(enable)}")
                if not self.check_mode:
                    # Persistent too: the definition's current count was already set by the define.
                    # One call per guest core: libvirt's QEMU driver refuses several hot-pluggable
                    # entities in one setVcpu() ("only one hotpluggable entity can be selected").
                    threads = plan.layout.topology.threads
                    cores: dict[int, list[int]] = {}
                    for vcpu in enable:
                        cores.setdefault(vcpu // threads, []).append(vcpu)
                    for core_vcpus in cores.values():
                        item.guest.set_vcpus_online(core_vcpus, True, persistent=False)
                        result.wrote(f"vCPUs {format_cpuset(core_vcpus)} enabled live")
                    pins = plan.layout.vcpu_pins
                    if pins is not None:
                        host_cpus = max(self.topology.cpu_node, default=0) + 1
                        for vcpu in enable:
                            item.guest.pin_vcpu_live(vcpu, pins[vcpu], host_cpus)
        if request.hotplug_memory_kib is None:
            return
        present = _dimms(plan.current.memory_devices)
        missing = request.hotplug_memory_kib - sum(size for _cell, size in present)
        if missing <= 0:
            return
        dimms = plan_dimms(plan.layout, missing, present)
        result.changed = True
        into_running = live or (item.running and result.restarted)
        for index, dimm in enumerate(dimms, start=len(present)):
            nodes = format_cpuset(dimm.host_nodes)
            text = f"DIMM of {format_kib(dimm.size_kib)} on guest cell {dimm.cell} (host nodes {nodes})"
            result.changes.append(Change(f"devices/memory[{index}]", None, text, ChangeKind.HOTPLUG))
            if into_running:
                result.live.append(text)
            if not self.check_mode:
                # A guest restarted by this run already runs its new definition: it takes the DIMMs
                # live too (otherwise they would wait in the definition for yet another restart).
                item.guest.attach_device(
                    dimm_xml(dimm.cell, dimm.size_kib, dimm.host_nodes),
                    live=into_running,
                    persistent=True,
                )
                result.wrote(f"{text} attached{' live' if into_running else ''}")


def _each(guests: Sequence[LibvirtGuest], action: Callable[[LibvirtGuest], None]) -> dict[str, VnumaError]:
    """Run ``action`` on every guest at once (a thread each; libvirt connections are thread-safe).

    The errors by guest name; the guests without one succeeded.
    """
    if not guests:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(guests), _PARALLEL)) as pool:
        futures = {guest.name: pool.submit(action, guest) for guest in guests}
    errors: dict[str, VnumaError] = {}
    for name, future in futures.items():
        error = future.exception()
        if isinstance(error, VnumaError):
            errors[name] = error
        elif error is not None:
            raise error
    return errors


def _not_stopped(name: str, timeout: float) -> LibvirtOperationError:
    return LibvirtOperationError(
        f"did not shut down within {timeout:g} seconds; set force to power it off",
        guest=name,
    )


def _dimms(devices: Sequence[MemoryDevice]) -> list[tuple[int, int]]:
    return [(device.node, device.size_kib) for device in devices if device.node is not None]


def dimm_xml(cell: int, size_kib: int, host_nodes: Sequence[int]) -> str:
    """A DIMM for guest cell ``cell`` whose memory comes from ``host_nodes``.

    https://libvirt.org/formatdomain.html#memory-devices: ``<source><nodemask>`` binds the backing
    memory to host nodes, ``<target><node>`` puts the DIMM in the guest cell.
    """
    return (
        "<memory model='dimm'>"
        f"<source><nodemask>{format_cpuset(host_nodes)}</nodemask></source>"
        f"<target><size unit='KiB'>{size_kib}</size><node>{cell}</node></target>"
        "</memory>"
    )


def _online(live: DomainNuma) -> set[int]:
    if live.vcpus is not None:
        return {state.id for state in live.vcpus.vcpus if state.enabled}
    count = live.vcpu.current or live.vcpu.count if live.vcpu is not None else 1
    return set(range(count))
