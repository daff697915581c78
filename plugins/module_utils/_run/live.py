# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""What a running guest takes without a (further) boot: re-pinning its vCPUs, vCPU and DIMM hot-plug,
and the requested sizes of its virtio-mem cells.

Which vCPUs to enable, how a memory hot-add is cut into DIMMs and how a new total is spread over the
virtio-mem cells are the pure core's rules (``_core/hotplug.py``); each device is written by its
element model (``_xml/memory.py:MemoryDevice``).  A virtio-mem resize reaches the definition with the
define, like every owned value, and the running guest here, device by device.

A guest that keeps running also gets what its definition brings at boot and it runs without: the vCPUs its
definition brings online, and the DIMMs of its definition it lacks (``dimm_steps``).  Those are the hot-plug
differences ``_xml/domain.py:DomainNuma.waiting_for_boot`` reports pending, and that need no restart
(``_run/guest.py:Planned.needs_restart``).  A real run is changed by what it writes and lists in ``live`` what
it did; check mode lists what it would do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import (
    DimmPlan,
    check_memory_slots,
    plan_dimms,
    vcpus_to_enable,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.wording import plural
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import GuestResult
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import Change, ChangeKind
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import DomainPlan
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.features import dimms_need_acpi
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import (
    MemoryDevice,
    attachable,
    device_element,
    dimms_not_running,
    memory_devices_of,
    not_among,
    requested_update,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml

__all__ = [
    "DimmSteps",
    "check_hotplug_memory",
    "dimm_steps",
    "live_changes",
    "present_dimms",
    "running_memory_devices",
    "takes_dimms_live",
]


def present_dimms(devices: Sequence[MemoryDevice]) -> list[tuple[int, int]]:
    """The (guest cell, KiB) of the DIMMs among ``devices`` that are in a guest cell: what ``hotplug_memory`` counts.

    Only DIMMs (``model='dimm'``): the virtio-mem devices (the collection's, which a switch to DIMMs removes, and
    anyone else's) and other models are not hot-plugged DIMMs.  Give the devices the plan keeps
    (``DomainPlan.target.memory_devices``).
    """
    return [(device.node, device.size_kib) for device in devices if device.model == "dimm" and device.node is not None]


@dataclass(frozen=True)
class DimmSteps:
    """The DIMMs a run attaches to one guest, in order: those of its definition that the running guest lacks,
    then the new ones ``hotplug_memory`` asks for."""

    # The definition's DIMMs the running guest does not have (dimms_not_running): attached live only.
    defined: tuple[MemoryDevice, ...] = ()
    # hotplug_memory's new DIMMs: into the definition, and live when the guest runs.
    new: tuple[DimmPlan, ...] = ()
    # The position of the first new DIMM among the definition's memory devices (its change path).
    first: int = 0


def dimm_steps(plan: DomainPlan, wanted_kib: int | None, running: Sequence[MemoryDevice] | None = None) -> DimmSteps:
    """The DIMMs to attach so that the guest has ``wanted_kib`` in DIMMs (None: no new ones), checked.

    ``hotplug_memory`` counts the DIMMs of the definition (``present_dimms``).  ``running`` holds the memory
    devices of the running guest when the DIMMs go into it live (a guest that keeps running), None otherwise.
    Then the definition's DIMMs it lacks go in too, and every memory device the running guest holds counts
    against ``memory_slots`` with the DIMMs it gets: libvirt refuses an attach beyond the slots ("memory device
    count '5' exceeds slots count '4'").  A device it has beyond its definition (attached live only) is kept.
    """
    kept = plan.target.memory_devices
    present = present_dimms(kept)
    new: tuple[DimmPlan, ...] = ()
    if wanted_kib is not None:
        have = sum(size for _cell, size in present)
        if wanted_kib < have:
            raise SpecError(
                f"hotplug_memory {format_kib(wanted_kib)} is below the {format_kib(have)} already hot-plugged; "
                "memory is never unplugged by this module"
            )
        # The devices the guest keeps must have their slots, whether anything is added or not.
        check_memory_slots(plan.layout, len(kept))
        if wanted_kib > have:
            new = plan_dimms(plan.layout, wanted_kib - have, present, len(kept))
    defined = () if running is None else dimms_not_running(kept, running)
    if running is not None and (defined or new):
        _check_running_slots(plan.layout, kept, running, defined, new, wanted_kib)
    return DimmSteps(defined, new, len(kept))


def _check_running_slots(
    layout: Layout,
    kept: Sequence[MemoryDevice],
    running: Sequence[MemoryDevice],
    defined: Sequence[MemoryDevice],
    new: Sequence[DimmPlan],
    wanted_kib: int | None,
) -> None:
    """The DIMMs going into the running guest fit ``memory_slots`` beside every memory device it runs with."""
    slots = layout.memory_slots
    total = len(running) + len(defined) + len(new)
    if slots is None or total <= slots:
        return
    live_only = {device.index for device in not_among(running, kept)}
    listed = ", ".join(
        device.describe() + (" attached live only" if device.index in live_only else "") for device in running
    )
    what = []
    if new:
        what.append(f"{len(new)} new for hotplug_memory {format_kib(wanted_kib or 0)}")
    if defined:
        what.append(f"{len(defined)} of the definition that it runs without")
    raise PlacementError(
        f"the running guest holds {plural(len(running), 'memory device')} ({listed}); attaching "
        f"{plural(len(defined) + len(new), 'DIMM')} live ({', '.join(what)}) makes {total}, above memory_slots "
        f"{slots}; detach a memory device from the running guest, or raise memory_slots"
    )


def check_hotplug_memory(
    plan: DomainPlan, wanted_kib: int | None, root: etree._Element, running: Sequence[MemoryDevice] | None = None
) -> DimmSteps:
    """Everything a DIMM hot-add needs, checked before the first write (slots, sizes, ACPI); the DIMMs to attach.

    ``running``: the running guest's memory devices, when the DIMMs go into it live (``dimm_steps``).
    """
    steps = dimm_steps(plan, wanted_kib, running)
    if (steps.new or steps.defined) and dimms_need_acpi(root):
        what = (
            f"hotplug_memory {format_kib(wanted_kib)}"
            if steps.new and wanted_kib is not None
            else "attaching the definition's DIMMs to the running guest"
        )
        raise SpecError(
            f"{what} needs ACPI: the guest's <features> has no <acpi/>, "
            "and QEMU hot-adds DIMMs on x86 only through ACPI; add <acpi/> first"
        )
    return steps


def running_memory_devices(item: Planned) -> tuple[MemoryDevice, ...]:
    """The memory devices of the running guest, read now."""
    name = item.request.name
    return memory_devices_of(parse_xml(item.guest.live_xml(), f"the running guest {name}", root_tag="domain"))


def takes_dimms_live(item: Planned) -> bool:
    """Whether DIMMs may go into the guest live if it keeps running: its definition has some, or it gets new ones."""
    return item.plan is not None and (
        item.request.hotplug_memory_kib is not None or bool(present_dimms(item.plan.target.memory_devices))
    )


def live_changes(topology: HostTopology, item: Planned, result: GuestResult, check_mode: bool) -> None:
    """Re-pinning when the guest keeps running, then hot-plug; a failure goes into ``result``.

    A running guest is re-pinned when its definition's pins change, and also when its live pins differ from
    a definition that does not change (``Planned.pending``: pins set live by another client, or a re-pin that
    failed after its define), so that a rerun converges.  A guest that keeps running also gets what its
    definition brings at boot and it runs without: vCPUs online (``_enable_vcpus``) and DIMMs (``dimm_steps``).

    In a real run ``changed`` follows what was written (``GuestResult.wrote``) and ``live`` lists what was done;
    in check mode both say what would be.  The DIMMs are worked out and checked before the first live change.
    """
    stays_up = item.running and not result.restart_required and not result.restarted
    # I/O threads the spec does not own (iothreads: none) keep the pins they run with.
    owns_iothreads = item.plan is not None and item.plan.layout.spec.iothreads != "none"
    try:
        dimms = _dimms(item, result, stays_up)
        if stays_up and item.plan is not None and _pins_differ(item, _VCPUPIN, True):
            _repin_live(topology, item, item.plan, result, check_mode)
        if stays_up and _pins_differ(item, _IOTHREADPIN, owns_iothreads):
            _repin_iothreads_live(topology, item, result, check_mode)
        if stays_up and item.plan is not None:
            _enable_vcpus(topology, item, item.plan, result, check_mode)
        if dimms is not None:
            _attach_dimms(item, dimms, result, check_mode)
        # A resize reaches a running guest even when another change waits for its next boot: only devices
        # the running guest has as planned are resized (_resize_live), so nothing else is touched.
        if item.running and not result.restarted and item.plan is not None:
            _resize_live(item, item.plan, result, check_mode)
    except VnumaError as error:
        result.error = error.naming(result.name)
        if not check_mode:
            # In a real run only what was written counts as changed (as _run/converge.py:Converger.define_one).
            result.changed = bool(result.written)


# The paths of the pins' changes (Vcpupin.items, Iothreadpin.items).
_VCPUPIN = "cputune/vcpupin["
_IOTHREADPIN = "cputune/iothreadpin["


def _pins_differ(item: Planned, path: str, live_too: bool) -> bool:
    """Whether the definition's pins at ``path`` change, or (``live_too``) the running guest's differ from them."""
    changes = [*item.changes, *item.pending] if live_too else item.changes
    return any(change.path.startswith(path) for change in changes)


def _repin_live(topology: HostTopology, item: Planned, plan: DomainPlan, result: GuestResult, check_mode: bool) -> None:
    """Every vCPU of the running guest pinned as its definition now says (virDomainPinVcpuFlags, live).

    A vCPU without a pin goes back to libvirt's default affinity (``DomainNuma.default_affinity``): how
    ``pinning: none`` lifts the old pins.  Offline vCPUs are pinned too: libvirt keeps the pin of an offline
    vCPU and applies it when the vCPU comes online (libvirt 9.0 with QEMU 7.2), so one brought online later,
    by this collection or by another client (``virsh setvcpus --live``), runs where its definition says.
    """
    default = item.target.default_affinity(topology.cpu_node)
    pins = {pin.vcpu: pin.cpuset for pin in item.target.vcpupins}
    host_cpus = max(topology.cpu_node, default=0) + 1
    # A real run is changed by what it writes (result.wrote): a first pin that fails leaves it unchanged.
    result.changed = result.changed or check_mode
    for vcpu in range(plan.layout.vcpus):
        cpus = pins.get(vcpu, default)
        if not check_mode:
            item.guest.pin_vcpu_live(vcpu, cpus, host_cpus)
            result.wrote(f"vCPU {vcpu} pinned live")
        result.live.append(f"vCPU {vcpu} pinned to host CPUs {format_cpuset(cpus)}")


def _repin_iothreads_live(topology: HostTopology, item: Planned, result: GuestResult, check_mode: bool) -> None:
    """The running guest's I/O threads pinned as the definition now says (virDomainPinIOThread).

    Only pins change here: a guest that stays up has the definition's I/O threads already (a new thread
    waits for a boot).  A thread left without a pin goes back to libvirt's default affinity.
    """
    default = item.target.default_affinity(topology.cpu_node)
    pins = {pin.iothread: pin.cpuset for pin in item.target.iothreadpins.pins}
    host_cpus = max(topology.cpu_node, default=0) + 1
    result.changed = result.changed or (check_mode and bool(item.target.iothreads.ids))
    for iothread in item.target.iothreads.ids:
        cpus = pins.get(iothread, default)
        if not check_mode:
            item.guest.pin_iothread_live(iothread, cpus, host_cpus)
            result.wrote(f"I/O thread {iothread} pinned live")
        result.live.append(f"I/O thread {iothread} pinned to host CPUs {format_cpuset(cpus)}")


def _enable_vcpus(
    topology: HostTopology, item: Planned, plan: DomainPlan, result: GuestResult, check_mode: bool
) -> None:
    """The vCPUs online live up to the count the definition brings online at boot, balanced across the cells.

    That count is ``current_vcpus`` when given, else the definition's own (``<vcpu current>``): a guest that
    keeps running gets the vCPUs its next boot would bring (``DomainNuma.waiting_for_boot``).  The collection
    never takes vCPUs offline live: a lower count waits for the boot (``Planned.needs_restart``).
    """
    enable = vcpus_to_enable(plan.layout, item.online or set(), plan.layout.current_vcpus)
    if not enable:
        return
    result.changed = result.changed or check_mode
    if check_mode:
        result.live.append(f"enabled vCPUs {format_cpuset(enable)}")
        return
    # Persistent too: the definition's current count was already set by the define.
    # One call per guest core: libvirt's QEMU driver refuses several hot-pluggable
    # entities in one setVcpu() ("only one hotpluggable entity can be selected").
    threads = plan.layout.topology.threads
    cores: dict[int, list[int]] = {}
    for vcpu in enable:
        cores.setdefault(vcpu // threads, []).append(vcpu)
    enabled: list[int] = []
    try:
        for core_vcpus in cores.values():
            item.guest.set_vcpus_online(core_vcpus, True, persistent=False)
            enabled.extend(core_vcpus)
            result.wrote(f"vCPUs {format_cpuset(core_vcpus)} enabled live")
        pins = plan.layout.vcpu_pins
        if pins is not None:
            host_cpus = max(topology.cpu_node, default=0) + 1
            for vcpu in enable:
                item.guest.pin_vcpu_live(vcpu, pins[vcpu], host_cpus)
    finally:
        # What was done, also when a later call failed.
        if enabled:
            result.live.append(f"enabled vCPUs {format_cpuset(enabled)}")


def _dimms(item: Planned, result: GuestResult, stays_up: bool) -> DimmSteps | None:
    """The DIMMs this run attaches (None: none to think of), worked out and checked before any live change.

    A guest that keeps running is read now: the definition's DIMMs it lacks go in live, and what it holds counts
    against ``memory_slots`` (``dimm_steps``).  A guest restarted by this run boots its definition, DIMMs included.
    """
    if item.plan is None or (item.request.hotplug_memory_kib is None and not (stays_up and takes_dimms_live(item))):
        return None
    running = running_memory_devices(item) if stays_up else None
    return check_hotplug_memory(item.plan, item.request.hotplug_memory_kib, item.root, running)


def _attach_dimms(item: Planned, steps: DimmSteps, result: GuestResult, check_mode: bool) -> None:
    """The definition's DIMMs the running guest lacks, attached live; then the new ones, live when it runs too.

    A new DIMM goes into the definition in any case.  A guest restarted by this run already runs its new
    definition: it takes the new DIMMs live too (otherwise they would wait in the definition for yet another
    restart).
    """
    if steps.defined or steps.new:
        result.changed = result.changed or check_mode
    for device in steps.defined:
        text = f"{device.describe()} of the definition"
        if not check_mode:
            item.guest.attach_device(attachable(device_element(item.root, device)), live=True, persistent=False)
            result.wrote(f"{text} attached live")
        result.live.append(text)
    into_running = item.running and (result.restarted or not result.restart_required)
    for index, dimm in enumerate(steps.new, start=steps.first):
        nodes = format_cpuset(dimm.host_nodes)
        text = f"DIMM of {format_kib(dimm.size_kib)} on guest cell {dimm.cell} (host nodes {nodes})"
        result.changes.append(Change(f"devices/memory[{index}]", None, text, ChangeKind.HOTPLUG))
        if not check_mode:
            item.guest.attach_device(
                MemoryDevice.dimm(dimm.cell, dimm.size_kib, dimm.host_nodes).markup(),
                live=into_running,
                persistent=True,
            )
            result.wrote(f"{text} attached{' live' if into_running else ''}")
        if into_running:
            result.live.append(text)


def _resize_live(item: Planned, plan: DomainPlan, result: GuestResult, check_mode: bool) -> None:
    """The running guest's virtio-mem cells take the requested sizes of the definition just written.

    Only with ``total_memory``: a run without it leaves the running guest's requested sizes as they
    are (a live resize made with virsh stays) and says so when they differ from the definition.  Only
    a device the running guest has as planned (same cell, size and block) is resized live; a device
    that differs comes with the guest's next boot (the run reports ``restart_required``).
    """
    wanted = {device.alias: device for device in plan.target.virtio_mem.devices}
    if not wanted:
        return
    name = item.request.name
    resize = item.request.total_memory_kib is not None
    live = parse_xml(item.guest.live_xml(), f"the running guest {name}", root_tag="domain")
    for device in memory_devices_of(live):
        target = wanted.get(device.alias) if device.cell_owned is not None else None
        if target is None:
            continue
        if not resize and (device.requested_kib or 0) != (target.requested_kib or 0):
            result.warnings.append(
                f"guest {name}: virtio-mem of guest cell {target.node}: the running guest requests "
                f"{format_kib(device.requested_kib or 0)}, its definition {format_kib(target.requested_kib or 0)}; "
                "left as it is without total_memory (give total_memory to set both)"
            )
            continue
        if (device.requested_kib or 0) == target.requested_kib:
            if (device.current_kib or 0) > (target.requested_kib or 0):
                # The guest has not given the memory back (not onlined movable, or still busy): say so,
                # or a shrink that never happens would look done.
                plugged, requested = format_kib(device.current_kib or 0), format_kib(target.requested_kib or 0)
                result.warnings.append(
                    f"guest {name}: virtio-mem of guest cell {target.node}: the guest still has {plugged} plugged of "
                    f"{requested} requested; it gives memory back only when it onlined it movable "
                    "(docs/vnuma_domain.md, virtio-mem)"
                )
            continue
        if (device.node, device.size_kib, device.block_kib) != (target.node, target.size_kib, target.block_kib):
            continue
        before, after = device.requested_kib or 0, target.requested_kib or 0
        text = f"virtio-mem of guest cell {target.node} requested {format_kib(before)} -> {format_kib(after)}"
        result.changed = result.changed or check_mode
        if not check_mode:
            element = device_element(live, device)
            item.guest.update_device(requested_update(element, after), live=True, persistent=False)
            result.wrote(f"{text} live")
        result.live.append(text)
