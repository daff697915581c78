# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Planning every guest of a call before anything is written: read, plan, compare, then the host's capacity.

``Planner.plan_all`` reads every definition of the host once, plans each requested guest
(``Planned``: the new definition, its changes, what the running guest differs in) and checks the
host's capacity with every plan in place (``_run/capacity.py``).  A guest that cannot be read or
planned fails alone.  ``Planner.replan`` plans one guest again from a definition (or a running state)
another client changed since (``_run/apply.py:fresh``).

A shut-off guest with a managed save image (``virsh managedsave``) is not planned as an ordinary shut-off one:
its next start resumes the saved state, which runs the layout saved with it.  Its image's XML is compared with
the target as a running guest's live XML is (``Planned.saved``, ``Planned.pending``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.affinity import check_affinity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.auto import AutoChoice
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import (
    CapacityError,
    CapacityReport,
    CapacityTally,
    MemoryRoom,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import (
    GuestDevice,
    HostPciDevice,
    PciAddress,
    with_host_nodes,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    LibvirtOperationError,
    SpecError,
    VnumaError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import check_memory_options
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    GuestBinding,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import DEDICATED_PINNINGS
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib
from ansible_collections.vnuma.libvirt.plugins.module_utils._hypervisor import GuestHandle, HostConnection
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.auto import (
    is_auto,
    placed_for_room,
    resolve_auto,
    room_for,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.capacity import bindings, check_fit, layout_held, place
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import (
    GuestRequest,
    Planned,
    Reading,
    RunningState,
    saved_state_warning,
    spec_for,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.live import check_hotplug_memory, takes_dimms_live
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import binding_from_domain, dedicated_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.definition import (
    NewDefinition,
    plan_absent,
    plan_written,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import plan_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import memory_devices_of, plugged_of
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import moved_from
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.nodedev import guest_pci_devices, host_pci_devices
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml

__all__ = ["Planner"]


class Planner:
    """Plans a batch of guest requests on one host, and keeps what it learnt of the host for a re-plan."""

    def __init__(
        self, host: HostConnection, topology: HostTopology, capacity: str = "fail", reserved_kib: int = 0
    ) -> None:
        self.host = host
        self.topology = topology
        # fail | report | ignore (_core.capacity.CAPACITY_MODES), and the memory kept free on every host node.
        self.capacity = capacity
        self.reserved_kib = reserved_kib
        # The last capacity check; None with capacity: ignore, and in a call of state: absent alone.
        self.capacity_report: CapacityReport | None = None
        # Whether this call checks the host's capacity (plan_all): not with capacity: ignore, nor when every
        # guest of the call is state: absent, which places nothing and is never refused for capacity.
        self.checks_capacity = capacity != "ignore"
        # What plan_all learnt of the host, for planning a guest again right before its define.
        self.taken: dict[int, str] = {}
        self.autostart: set[str] = set()
        # The guests running at the plan's listing: a guest that failed is reported with it.
        self.running: set[str] = set()
        self.others: list[GuestBinding] = []
        self.unread: list[str] = []
        self.planned_items: list[Planned] = []
        self.replanned: dict[str, Planned] = {}
        # The host's PCI devices, read when the first guest with a passthrough device is planned.
        self.host_pci: dict[PciAddress, HostPciDevice] | None = None

    def guest_devices(self, root: etree._Element) -> list[GuestDevice]:
        """The guest's PCI passthrough devices with their host nodes (the host is read once, when needed)."""
        devices = guest_pci_devices(root)
        if not devices:
            return []
        if self.host_pci is None:
            self.host_pci = host_pci_devices(self.host.pci_device_xmls())
        return with_host_nodes(devices, self.host_pci)

    def plan_all(self, requests: Sequence[GuestRequest]) -> list[Planned | VnumaError]:
        """Plan every request, then check the host's capacity, before anything is written.

        A guest that cannot be read or planned gets its error in its place and affects nothing else:
        it is counted as it is defined now.  Guests asking for dedicated pinning are planned first, so
        the node-pinned guests of the same call avoid their CPUs; the plans keep the order of the
        requests.  A capacity refusal (with ``capacity: fail``) concerns the host and raises.  A call whose
        guests are all ``state: absent`` checks nothing: absent places no layout, a capacity problem never refuses
        it, and the report would only repeat what other guests already hold.
        """
        names = [request.name for request in requests]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise SpecError(f"guests {', '.join(duplicates)} are requested more than once")
        taken: dict[int, str] = {}
        readings: dict[str, Reading] = {}
        wanted = set(names)
        running = set(self.host.running_names())
        # One listing of the guests with a managed save image, when a requested guest may have one (it is shut off).
        saved = set(self.host.managed_save_names()) if not wanted <= running else set()
        autostart = set(self.host.autostart_names()) if self.capacity != "ignore" else set()
        counted: dict[str, GuestBinding] = {}
        unread: list[str] = []
        outcome: dict[int, Planned | VnumaError] = {}
        for guest, xml in self.host.definitions():
            counts = self.capacity != "ignore" and (guest.name in running or guest.name in autostart)
            try:
                root = parse_xml(xml, f"the definition of guest {guest.name}", root_tag="domain")
                if guest.name in wanted:
                    # Its stored spec is read once, here: planning holds its own CPUs, not these.
                    readings[guest.name] = Reading.of(guest, xml, root)
                    continue
                held = dedicated_cpus(self.topology, root, guest.name)
            except VnumaError as error:
                # Only a requested guest fails for it; any other is counted as a whole (below).
                if guest.name in wanted:
                    readings[guest.name] = Reading(guest, xml, error.naming(guest.name))
                elif counts:
                    unread.append(self.count_unreadable(guest, error, counted, running, autostart))
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
            elif isinstance(reading.root, VnumaError):
                outcome[index] = reading.root
        taken_before = dict(taken)
        # mode auto guests come last, so that their choice sees every other plan of the call.
        order = sorted(
            range(len(requests)),
            key=lambda index: (
                self.automatic(requests[index], readings),
                not self.dedicated(requests[index], readings),
                index,
            ),
        )
        # A requested guest that fails keeps its definition, and with it the host CPUs it has dedicated: the plans
        # of the others must avoid them, as a later run's would.  Planned again without them when one did not.
        unread_outcome = dict(outcome)
        kept: dict[int, str] = {}
        while True:
            outcome = dict(unread_outcome)
            taken = {**taken_before, **kept}
            # The host as the mode auto guests see it: checked once, before the first of them, then updated
            # as each is placed (a host's worth of guests is not checked again for every one).
            host_room: CapacityTally | None = None
            for index in order:
                if index in outcome:
                    continue
                request = requests[index]
                reading = readings[request.name]
                room = None
                automatic = self.automatic(request, readings)
                if automatic:
                    if host_room is None:
                        done = [item for item in outcome.values() if isinstance(item, Planned)]
                        planned = {item.request.name for item in done}
                        waiting = self.waiting(readings, planned, running, autostart)
                        host_room = CapacityTally(
                            room_for(self.topology, [*counted.values(), *waiting], done, autostart, self.reserved_kib)
                        )
                    # Without its own definition: the guest is what is being placed.
                    room = host_room.room(without=request.name)
                # Its own CPUs, kept for it when it failed before, are its to plan with again.
                mine = taken if not kept else {cpu: who for cpu, who in taken.items() if kept.get(cpu) != request.name}
                try:
                    listed = reading.guest.name
                    item = self.plan_one(request, reading, mine, listed in running, room, listed in saved)
                except VnumaError as error:
                    outcome[index] = error.naming(request.name)
                    continue
                outcome[index] = item
                if automatic and host_room is not None and item.plan is not None:
                    host_room.add(self.topology, placed_for_room(self.topology, item, autostart))
                layout = item.plan.layout if item.plan is not None else None
                if layout is not None:
                    taken.update(dict.fromkeys(layout_held(self.topology, layout), request.name))
            failed_holding = {
                cpu: name
                for index, name in enumerate(names)
                if isinstance(outcome[index], VnumaError) and index not in unread_outcome
                for cpu in self.held_now(readings[name])
                if cpu not in taken_before and cpu not in kept
            }
            if not failed_holding:
                break
            kept.update(failed_holding)
        results = [outcome[index] for index in range(len(requests))]
        items = [item for item in results if isinstance(item, Planned)]
        # A requested guest that failed stays as it is defined, and is counted so.
        planned_names = {item.request.name for item in items}
        for name, reading in readings.items():
            guest, parsed = reading.guest, reading.root
            failed = name not in planned_names
            if failed and self.capacity != "ignore" and (name in running or name in autostart):
                if isinstance(parsed, VnumaError):
                    unread.append(self.count_unreadable(guest, parsed, counted, running, autostart))
                else:
                    self.count_defined(guest, parsed, self.held_now(reading), counted, unread, running, autostart)
        others = list(counted.values())
        self.taken, self.autostart, self.others, self.unread = taken, autostart, others, unread
        self.running = running
        self.planned_items, self.replanned = items, {}
        place(self.topology, items, autostart)
        # A call of absent guests alone places nothing: no check.  A call of none still reports the host (what a
        # playbook reads to see what is left: guests [] with capacity report).
        self.checks_capacity = self.capacity != "ignore" and (
            not requests or any(request.state != "absent" for request in requests)
        )
        if self.checks_capacity:
            self.check_capacity(items)
        return results

    def held_now(self, reading: Reading) -> list[int]:
        """The host CPUs a requested guest's definition dedicates now (none when it cannot be read)."""
        if isinstance(reading.root, VnumaError):
            return []
        try:
            return sorted(dedicated_cpus(self.topology, reading.root, reading.guest.name))
        except VnumaError:
            return []

    def count_defined(
        self,
        guest: GuestHandle,
        root: etree._Element,
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
        plugged: dict[str, int] = {}
        if guest.name in running and any(device.model == "virtio-mem" for device in numa.memory_devices):
            # A virtio-mem device may hold more than its definition requests (a shrink still pending).
            try:
                live = parse_xml(guest.live_xml(), f"the running guest {guest.name}", root_tag="domain")
                plugged = plugged_of(memory_devices_of(live))
            except VnumaError:
                pass  # stopped since the listing, or unreadable: its definition is what it holds
        counted[guest.name] = binding_from_domain(
            numa, guest.name, guest.name in running, guest.name in autostart, held, plugged
        )

    @staticmethod
    def count_unreadable(
        guest: GuestHandle,
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

    @staticmethod
    def waiting(
        readings: Mapping[str, Reading], planned: set[str], running: set[str], autostart: set[str]
    ) -> list[GuestBinding]:
        """The requested guests not planned yet that count, where their definitions put them now."""
        bindings: list[GuestBinding] = []
        for name, reading in readings.items():
            if name in planned or isinstance(reading.root, VnumaError) or not (name in running or name in autostart):
                continue
            try:
                numa = DomainNuma.from_domain(reading.root)
            except VnumaError:
                continue  # planned in its turn, where its error is reported
            bindings.append(binding_from_domain(numa, name, name in running, name in autostart))
        return bindings

    @staticmethod
    def automatic(request: GuestRequest, readings: Mapping[str, Reading]) -> bool:
        """Whether the request is in mode auto (a spec that does not parse is planned in turn)."""
        reading = readings.get(request.name)
        if request.state == "absent" or reading is None or isinstance(reading.root, VnumaError):
            return False
        try:
            return is_auto(spec_for(request, reading.stored))
        except VnumaError:
            return False

    def room(self, name: str) -> CapacityReport:
        """What the host has left for ``name`` with everything else of the call as planned (for a re-plan)."""
        planned = [self.replanned.get(item.request.name, item) for item in self.planned_items]
        done = [item for item in planned if item.request.name != name]
        return room_for(self.topology, self.others, done, self.autostart, self.reserved_kib)

    @staticmethod
    def dedicated(request: GuestRequest, readings: Mapping[str, Reading]) -> bool:
        """Whether the request asks for dedicated pinning (a spec that does not parse is planned in turn)."""
        reading = readings.get(request.name)
        if request.state == "absent" or reading is None or isinstance(reading.root, VnumaError):
            return False
        try:
            return spec_for(request, reading.stored).pinning in DEDICATED_PINNINGS
        except VnumaError:
            return False

    def check_capacity(self, items: Sequence[Planned]) -> None:
        """Check the host's capacity with this call's plans in place; with ``capacity: fail`` a CapacityError."""
        report = check_fit(self.topology, items, self.others, self.unread, self.reserved_kib)
        self.capacity_report = report
        if report.blocking and self.capacity == "fail":
            raise CapacityError(report)

    def plan_one(
        self,
        request: GuestRequest,
        reading: Reading,
        taken: Mapping[int, str],
        running: bool,
        room: MemoryRoom | None = None,
        saved: bool = False,
    ) -> Planned:
        """Plan one guest; ``room`` is what the host has left for it (mode auto; None: worked out here).

        ``saved``: the guest has a managed save image (ignored when it runs).  Its next start resumes the image, so
        the image's XML is compared with the target as a running guest's is, and a layout that only a boot brings
        makes it need a restart, with a warning that says why (``saved_state_warning``).  An image whose XML cannot
        be read (gone since the listing, or a driver without the call) leaves the definition's changes to decide.
        """
        saved = saved and not running
        guest, xml, root = reading.guest, reading.xml, reading.root
        if isinstance(root, VnumaError):
            raise root  # plan_all reports a definition that does not parse without planning it
        others = {cpu: owner for cpu, owner in taken.items() if owner != request.name}
        warnings: list[str] = []
        choice: AutoChoice | None = None
        written: NewDefinition
        if request.state == "absent":
            written = plan_absent(root, xml, request.name)
            warnings.extend(written.warnings)
            plan = None
        elif request.rerender == "keep" and (moved := moved_from(root)) is not None:
            # A guest that moved keeps what it sees; its host side was planned for this host by the move.
            kept = DomainNuma.from_domain(root)
            written, plan = NewDefinition(kept, kept, (), None), None
            warnings.append(
                f"guest {request.name} came here by {moved} and keeps its topology: nothing is rendered for it; "
                "rerender: next_boot renders its spec for this host, for its next boot"
            )
        else:
            spec = spec_for(request, reading.stored, warnings)
            devices = self.guest_devices(root)
            if is_auto(spec):
                report = room if room is not None else self.room(request.name)
                choice = resolve_auto(self.topology, request, root, spec, reading.stored, report, others, devices)
                spec = choice.spec
            stored = None if isinstance(reading.stored, VnumaError) else reading.stored
            check_memory_options(spec, request.total_memory_kib, request.hotplug_memory_kib)
            # Each passthrough device's host node places it near its cell (device_locality).
            host_nodes = {device.source: device.host_node for device in devices}
            plan = plan_domain(
                root, self.topology, spec, others, request.current_vcpus, stored, request.total_memory_kib, host_nodes
            )
            if devices:
                warnings.extend(check_affinity(self.topology, plan.layout, devices, request.name))
            warnings.extend(f"guest {request.name}: {warning}" for warning in plan.target.pci.warnings)
            if request.hotplug_memory_kib is not None:
                check_hotplug_memory(plan, request.hotplug_memory_kib, root)
            written = plan_written(root, xml, plan, request.name)
        target = written.target
        state = RunningState.read(guest, request.name, guest.live_xml() if running else None, saved)
        # What only a boot brings; hot-plugged vCPUs make the running guest differ without one.  Live pins among
        # them are taken live (_run/live.py), so a rerun converges a guest whose pins differ.  A saved guest's
        # image is compared as a running guest is: what resumes, and the vCPUs it runs count for a hot-add.
        live = state.live
        online, pending = state.online, state.pending(target, self.topology.cpu_node)
        plugged = plugged_of(live.memory_devices) if live is not None else {}
        planned = Planned(
            request,
            guest,
            xml,
            root,
            running,
            plan,
            target,
            list(written.changes),
            written.xml,
            online,
            pending,
            current=written.current,
            warnings=warnings,
            auto=choice,
            plugged=plugged,
            saved=saved,
        )
        if saved and planned.needs_restart():
            planned.warnings.append(saved_state_warning(request.name))
        if live is not None and plan is not None and takes_dimms_live(planned) and not planned.needs_restart():
            # A guest that keeps running takes its DIMMs live: they must fit beside every memory device it runs with,
            # checked here so that a refusal comes before anything is written, check mode too.  One that needs a
            # restart gets them with the boot of its definition, whose slots the check above counted.
            check_hotplug_memory(plan, request.hotplug_memory_kib, root, live.memory_devices)
        return planned

    def replan(self, item: Planned, xml: str, running: bool, saved: bool | None = None) -> Planned:
        """``item`` planned again on ``xml`` and ``running`` (the guest as another client left it), checked to fit.

        ``saved`` when the caller knows whether the guest has a managed save image.  Otherwise a guest that ran at
        the plan and is shut off now is asked (one call): another client may have saved it (``virsh managedsave``)
        instead of shutting it down; any other guest keeps what the plan found.
        """
        name = item.request.name
        root = parse_xml(xml, f"the definition of guest {name}", root_tag="domain")
        if saved is None:
            saved = item.saved if running == item.running else not running and item.guest.has_managed_save()
        before = item
        item = self.plan_one(item.request, Reading.of(item.guest, xml, root), self.taken, running, saved=saved)
        self.replanned[name] = item
        place(self.topology, [item], self.autostart)
        # The new plan must fit with everything else as planned and as counted: checked again, over the whole host,
        # unless the guest counts as it did (another client's change outside what binds it, such as a description,
        # or the new <uuid> libvirt's test driver gives a guest without one on each connection).
        counts_the_same = bindings(self.topology, item, self.autostart) == bindings(
            self.topology, before, self.autostart
        )
        if self.checks_capacity and not counts_the_same:
            self.check_capacity([self.replanned.get(other.request.name, other) for other in self.planned_items])
        return item
