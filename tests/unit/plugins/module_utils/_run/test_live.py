# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a running guest takes without a boot: re-pinning, then vCPU and DIMM hot-plug, in that order."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest, Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.plan import Planner
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import BatchError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import Call, FakeGuest, FakeHost, domain_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

TOPOLOGY = host("testdriver-default")
ALL_CPUS = tuple(range(16))
HOTPLUG = {"mode": "host", "max_memory": "4 GiB", "memory_slots": 4}
DIMM = (
    '<memory model="dimm"><source><nodemask>{node}</nodemask></source>'
    '<target><size unit="KiB">131072</size><node>{node}</node></target></memory>'
)


def started(options: dict[str, object], current: int | None = None) -> FakeHost:
    """Guest ``a`` given its layout while shut off, then started: it runs what is defined."""
    hypervisor = FakeHost({"a": domain_xml("a", current=current)})
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", options)])
    hypervisor.guests["a"].start()
    hypervisor.calls.clear()
    return hypervisor


def live_calls(hypervisor: FakeHost) -> list[Call]:
    return [call for call in hypervisor.writes() if call.method != "define"]


def put_live_pin(hypervisor: FakeHost, tag: str, number: int, cpus: tuple[int, ...], name: str = "a") -> None:
    """A pin as libvirt's live XML lists it once set (``tag``: vcpupin or iothreadpin), replacing the one before."""
    guest = hypervisor.guests[name]
    assert guest.live is not None
    root = parse_xml(guest.live, "the running guest", root_tag="domain")
    cputune = root.find("cputune")
    if cputune is None:
        cputune = etree.SubElement(root, "cputune")
    key = "vcpu" if tag == "vcpupin" else "iothread"
    for old in [pin for pin in cputune.iterfind(tag) if pin.get(key) == str(number)]:
        cputune.remove(old)
    etree.SubElement(cputune, tag, {key: str(number), "cpuset": format_cpuset(cpus)})
    guest.live = etree.tostring(root, encoding="unicode")


def take_live_pins(hypervisor: FakeHost, name: str = "a") -> None:
    """The run's live pins in the running guest's XML, as libvirt lists them: an explicit pin each, one to the
    default affinity (every host CPU) included.  The fake only records the calls."""
    for method, tag in (("pin_vcpu_live", "vcpupin"), ("pin_iothread_live", "iothreadpin")):
        for call in hypervisor.called(method, name):
            put_live_pin(hypervisor, tag, call.args[0], call.args[1], name)


def pending(hypervisor: FakeHost, options: dict[str, object] | None = None) -> list[str]:
    """What guest ``a`` waits for its next boot in, as a plan sees it (vnuma_info's rule)."""
    (item,) = Planner(hypervisor, TOPOLOGY).plan_all([GuestRequest("a", options or {})])
    assert isinstance(item, Planned)
    return [str(change) for change in item.pending]


def test_a_running_guest_is_re_pinned_live_after_its_define() -> None:
    hypervisor = started({"mode": "host"})
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", {"pinning": "none"})])
    assert result.restart_required is False
    # pinning none: back to libvirt's default affinity, every host CPU.
    assert [call.method for call in hypervisor.writes()] == ["define", *["pin_vcpu_live"] * 4]
    assert [call.args for call in live_calls(hypervisor)] == [(vcpu, ALL_CPUS, 16) for vcpu in range(4)]
    assert result.live == [f"vCPU {vcpu} pinned to host CPUs 0-15" for vcpu in range(4)]
    assert result.written == ["definition", *(f"vCPU {vcpu} pinned live" for vcpu in range(4))]


def test_check_mode_tells_the_live_changes_and_makes_none() -> None:
    hypervisor = started({"mode": "host"})
    (result,) = Converger(hypervisor, TOPOLOGY, check_mode=True).converge([GuestRequest("a", {"pinning": "none"})])
    assert len(result.live) == 4 and result.written == []
    assert hypervisor.writes() == []


def test_vcpus_are_enabled_one_guest_core_per_call_then_pinned() -> None:
    hypervisor = started({"mode": "host"}, current=2)
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", current_vcpus=4)])
    assert result.restart_required is False
    # The definition's enable order keeps the cells balanced: 0 and 2 run, 1 and 3 are enabled.
    calls = live_calls(hypervisor)
    assert [(call.method, call.args[0]) for call in calls] == [
        ("set_vcpus_online", (1,)),
        ("set_vcpus_online", (3,)),
        ("pin_vcpu_live", 1),
        ("pin_vcpu_live", 3),
    ]
    assert all(call.args[1:] == (True, False) for call in calls[:2])
    assert [call.args[1] for call in calls[2:]] == [tuple(range(8)), tuple(range(8, 16))]
    assert result.live == ["enabled vCPUs 1,3"]


def test_dimms_are_hot_added_one_per_cell_live_and_persistent() -> None:
    hypervisor = started(HOTPLUG)
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", hotplug_memory_kib=256 * 1024)])
    calls = live_calls(hypervisor)
    assert [call.args for call in calls] == [
        (DIMM.format(node=0), True, True),
        (DIMM.format(node=1), True, True),
    ]
    assert result.written == [
        "DIMM of 128 MiB on guest cell 0 (host nodes 0) attached live",
        "DIMM of 128 MiB on guest cell 1 (host nodes 1) attached live",
    ]
    # The next run finds them in the definition and adds nothing.
    hypervisor.calls.clear()
    (again,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", hotplug_memory_kib=256 * 1024)])
    assert (again.changed, hypervisor.writes()) == (False, [])


def test_a_shut_off_guest_gets_its_dimms_in_the_definition_only() -> None:
    hypervisor = started(HOTPLUG)
    hypervisor.guests["a"].destroy()
    hypervisor.calls.clear()
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", hotplug_memory_kib=128 * 1024)])
    assert [call.args for call in live_calls(hypervisor)] == [(DIMM.format(node=0), False, True)]


def test_the_order_is_define_then_pins_then_vcpus_then_dimms() -> None:
    hypervisor = started(HOTPLUG, current=2)
    Converger(hypervisor, TOPOLOGY).converge(
        [GuestRequest("a", {"pinning": "none"}, current_vcpus=4, hotplug_memory_kib=128 * 1024)]
    )
    # Every vCPU is re-pinned, the two offline ones too (they come online next), then enabled.
    assert [call.method for call in hypervisor.writes()] == [
        "define",
        *["pin_vcpu_live"] * 4,
        "set_vcpus_online",
        "set_vcpus_online",
        "attach_device",
    ]


def test_a_failed_live_change_is_reported_with_what_was_written() -> None:
    hypervisor = started(HOTPLUG, current=2)
    hypervisor.fail("a", "set_vcpus_online", "enabling vCPUs 2: injected failure")
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", current_vcpus=4, hotplug_memory_kib=128 * 1024)])
    (a,) = raised.value.results
    assert str(a.error) == "guest a: enabling vCPUs 2: injected failure"
    assert a.written == ["definition"]
    assert hypervisor.called("attach_device") == []


VIRTIO_MEM = {"mode": "host", "max_memory": "4 GiB", "memory_slots": 4, "memory_device": "virtio-mem"}
MIB = 1024


def set_live_device(hypervisor: FakeHost, cell: int, requested_mib: int, current_mib: int) -> None:
    """What libvirt's live XML says after a resize made elsewhere (virsh) or a shrink the guest has not finished."""
    guest = hypervisor.guests["a"]
    root = parse_xml(guest.live, "the running guest", root_tag="domain")
    for element in root.iterfind("devices/memory"):
        if element.find("alias").get("name") == f"ua-vnuma-cell{cell}":
            target = element.find("target")
            for tag, mib in (("requested", requested_mib), ("current", current_mib)):
                child = target.find(tag)
                if child is None:
                    child = etree.SubElement(target, tag)
                child.set("unit", "KiB")
                child.text = str(mib * MIB)
    guest.live = etree.tostring(root, encoding="unicode")


def live_requested(hypervisor: FakeHost) -> dict[str, int]:
    root = parse_xml(hypervisor.guests["a"].live, "the running guest", root_tag="domain")
    return {
        element.find("alias").get("name"): int(element.find("target/requested").text)
        for element in root.iterfind("devices/memory")
    }


def test_a_resize_reaches_the_running_guest_with_total_memory() -> None:
    hypervisor = started(VIRTIO_MEM)
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", total_memory_kib=2048 * MIB)])
    assert [call.method for call in live_calls(hypervisor)] == ["update_device", "update_device"]
    assert live_requested(hypervisor) == {"ua-vnuma-cell0": 512 * MIB, "ua-vnuma-cell1": 512 * MIB}
    assert result.warnings == []


def test_without_total_memory_a_live_resize_made_elsewhere_stays_and_the_run_says_so() -> None:
    hypervisor = started(VIRTIO_MEM)
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", total_memory_kib=2048 * MIB)])
    # virsh update-memory-device grows cell 0 live only: the definition still asks for 512 MiB.
    set_live_device(hypervisor, 0, 1024, 1024)
    hypervisor.calls.clear()
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a")])
    assert live_calls(hypervisor) == [] and result.changed is False
    assert live_requested(hypervisor)["ua-vnuma-cell0"] == 1024 * MIB
    assert result.warnings == [
        "guest a: virtio-mem of guest cell 0: the running guest requests 1 GiB, its definition 512 MiB; left as it is "
        "without total_memory (give total_memory to set both)"
    ]
    # With total_memory the run converges both: the live size goes back to the planned share.
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", total_memory_kib=2048 * MIB)])
    assert [(call.method, call.args[1:]) for call in live_calls(hypervisor)] == [("update_device", (True, False))]
    assert live_requested(hypervisor)["ua-vnuma-cell0"] == 512 * MIB
    assert result.live == ["virtio-mem of guest cell 0 requested 1 GiB -> 512 MiB"]


def test_a_device_at_its_requested_size_with_more_still_plugged_warns() -> None:
    hypervisor = started(VIRTIO_MEM)
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", total_memory_kib=2048 * MIB)])
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", total_memory_kib=1536 * MIB)])
    # The guest has given back only part of cell 1's memory: 256 MiB requested, 384 MiB still plugged.
    set_live_device(hypervisor, 1, 256, 384)
    hypervisor.calls.clear()
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", total_memory_kib=1536 * MIB)])
    assert live_calls(hypervisor) == [] and result.changed is False
    assert result.warnings == [
        "guest a: virtio-mem of guest cell 1: the guest still has 384 MiB plugged of 256 MiB requested; it gives "
        "memory back only when it onlined it movable (docs/vnuma_domain.md, virtio-mem)"
    ]


def test_capacity_counts_what_a_running_guest_still_has_plugged() -> None:
    """A shrink still pending holds the larger live size on the cell's node; the definition's size otherwise."""
    hypervisor = started(VIRTIO_MEM)
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", total_memory_kib=2048 * MIB)])
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", total_memory_kib=1536 * MIB)])
    set_live_device(hypervisor, 1, 256, 384)
    hypervisor.guests["b"] = FakeGuest(hypervisor, "b", domain_xml("b", memory_mib=256))

    def node_share(report: Any, node: int, name: str) -> int:
        shares = [share.kib for entry in report.nodes if entry.id == node for share in entry.guests]
        names = [share.name for entry in report.nodes if entry.id == node for share in entry.guests]
        return shares[names.index(name)]

    # Planned (a is requested): the planned binding takes the live figure.
    planned = Converger(hypervisor, TOPOLOGY, capacity="report")
    planned.converge([GuestRequest("a", total_memory_kib=1536 * MIB)])
    assert planned.capacity_report is not None
    # Cell 1's boot memory (512 MiB) and its device's 384 MiB still plugged; cell 0 its 256 MiB requested.
    assert node_share(planned.capacity_report, 1, "a") == (512 + 384) * MIB
    assert node_share(planned.capacity_report, 0, "a") == (512 + 256) * MIB
    # Counted (another guest is requested): the same figure, read from the running guest.
    other = Converger(hypervisor, TOPOLOGY, capacity="report")
    other.converge([GuestRequest("b")])
    assert other.capacity_report is not None
    assert node_share(other.capacity_report, 1, "a") == (512 + 384) * MIB


def test_switching_to_dimms_does_not_count_the_virtio_mem_devices_it_removes() -> None:
    """virtio-mem cells to DIMMs with hotplug_memory in one run: the removed devices are no hot-plugged DIMMs."""
    hypervisor = FakeHost({"a": domain_xml("a")})
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", VIRTIO_MEM, total_memory_kib=1536 * MIB)])
    hypervisor.calls.clear()
    dimms = {**VIRTIO_MEM, "memory_device": "dimm"}
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", dimms, hotplug_memory_kib=128 * MIB)])
    assert result.error is None
    assert [call.args for call in live_calls(hypervisor)] == [(DIMM.format(node=0), False, True)]
    models = [device.get("model") for device in parse_xml(hypervisor.guests["a"].xml, "a").iterfind("devices/memory")]
    assert models == ["dimm"]
    # The next run counts the DIMM it added, and only it.
    hypervisor.calls.clear()
    (again,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", dimms, hotplug_memory_kib=128 * MIB)])
    assert (again.changed, hypervisor.writes()) == (False, [])


def test_a_virtio_mem_device_of_the_users_own_is_no_hot_plugged_dimm() -> None:
    """hotplug_memory counts DIMMs only: a virtio-mem device without the collection's alias is no DIMM."""
    own = (
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator><memory model='virtio-mem'>"
        "<target><size unit='MiB'>512</size><node>0</node><block unit='KiB'>2048</block>"
        "<requested unit='MiB'>256</requested></target></memory></devices>"
    )
    xml = domain_xml("a").replace("<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>", own)
    hypervisor = FakeHost({"a": xml})
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOTPLUG, hotplug_memory_kib=256 * MIB)])
    assert result.error is None
    # Two DIMMs, one per cell, after the user's device: devices/memory[1] and [2].
    assert [change.path for change in result.changes if change.path.startswith("devices/memory[")] == [
        "devices/memory[1]",
        "devices/memory[2]",
    ]


def test_fewer_memory_slots_than_the_dimms_a_guest_keeps_is_refused_before_the_define() -> None:
    """memory_slots lowered below the guest's DIMMs: refused in check mode too, with the slot rule's message."""
    hypervisor = started(HOTPLUG)
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", hotplug_memory_kib=256 * MIB)])
    hypervisor.calls.clear()
    fewer = {**HOTPLUG, "memory_slots": 1}
    for check_mode in (True, False):
        with pytest.raises(BatchError) as raised:
            Converger(hypervisor, TOPOLOGY, check_mode=check_mode).converge(
                [GuestRequest("a", fewer, hotplug_memory_kib=256 * MIB)]
            )
        (a,) = raised.value.results
        assert str(a.error) == "guest a: keeping the guest's 2 memory devices needs 2 memory slots; memory_slots is 1"
    assert hypervisor.writes() == []


def test_fewer_memory_slots_than_the_dimms_a_guest_keeps_is_refused_without_hotplug_memory() -> None:
    hypervisor = started(HOTPLUG)
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", hotplug_memory_kib=256 * MIB)])
    hypervisor.calls.clear()
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY, check_mode=True).converge([GuestRequest("a", {**HOTPLUG, "memory_slots": 1})])
    (a,) = raised.value.results
    assert str(a.error) == "guest a: keeping the guest's 2 memory devices needs 2 memory slots; memory_slots is 1"


# -- live pins that differ from the definition, and offline vCPUs ----------------------------------------


def assert_lifted_pins_settle(hypervisor: FakeHost) -> None:
    """pinning: none on running guest ``a``: its pins lifted live are not pending, and a rerun changes nothing."""
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", {"pinning": "none"})])
    take_live_pins(hypervisor)
    assert pending(hypervisor) == []
    hypervisor.calls.clear()
    (again,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a")])
    assert (again.changed, again.live, hypervisor.writes()) == (False, [], [])


def test_pins_lifted_live_are_not_pending_and_a_rerun_changes_nothing() -> None:
    """pinning: none lifts the pins live to every host CPU, which libvirt then lists as explicit pins."""
    assert_lifted_pins_settle(started({"mode": "host"}))


def test_a_pin_another_client_set_live_is_pinned_again_and_check_mode_says_so() -> None:
    """virsh vcpupin --live on a guest whose definition is converged: the run pins it back, without a define."""
    hypervisor = started({"mode": "host"})
    put_live_pin(hypervisor, "vcpupin", 0, tuple(range(8, 16)))
    assert pending(hypervisor) == ["cputune/vcpupin[0]: '8-15' -> '0-7'"]
    planned = [f"vCPU {vcpu} pinned to host CPUs {'0-7' if vcpu < 2 else '8-15'}" for vcpu in range(4)]

    (check,) = Converger(hypervisor, TOPOLOGY, check_mode=True).converge([GuestRequest("a")])
    assert (check.changed, check.changes, check.restart_required, check.live) == (True, [], False, planned)
    assert hypervisor.writes() == []

    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a")])
    assert (result.changed, result.changes, result.restart_required, result.live) == (True, [], False, planned)
    assert [call.args for call in hypervisor.writes()] == [
        (vcpu, tuple(range(8)) if vcpu < 2 else tuple(range(8, 16)), 16) for vcpu in range(4)
    ]
    assert result.written == [f"vCPU {vcpu} pinned live" for vcpu in range(4)]
    take_live_pins(hypervisor)
    hypervisor.calls.clear()
    (again,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a")])
    assert (again.changed, again.live, hypervisor.writes()) == (False, [], [])


def test_a_live_re_pin_that_failed_after_its_define_is_done_by_the_rerun() -> None:
    hypervisor = started({"mode": "host"})
    hypervisor.fail("a", "pin_vcpu_live", "pinning vCPU 0: injected failure")
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", {"pinning": "core"})])
    (failed,) = raised.value.results
    assert failed.written == ["definition"]
    del hypervisor.faults[("a", "pin_vcpu_live")]
    hypervisor.calls.clear()
    # The definition is converged; the running guest still has its old pins.
    (rerun,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a")])
    assert (rerun.error, rerun.changes, rerun.changed, rerun.restart_required) == (None, [], True, False)
    assert rerun.layout is not None and rerun.layout.vcpu_pins is not None
    planned = [tuple(sorted(cpus)) for cpus in rerun.layout.vcpu_pins]
    assert all(len(cpus) == 1 for cpus in planned)
    assert [call.args[:2] for call in live_calls(hypervisor)] == list(enumerate(planned))
    take_live_pins(hypervisor)
    assert pending(hypervisor) == []


def test_offline_vcpus_are_pinned_live_too() -> None:
    """A vCPU brought online later (virsh setvcpus --live) runs where its definition pins it."""
    hypervisor = started({"mode": "host"}, current=2)
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", {"pinning": "core"})])
    assert result.restart_required is False
    assert result.layout is not None and result.layout.vcpu_pins is not None
    planned = [tuple(sorted(cpus)) for cpus in result.layout.vcpu_pins]
    # vCPUs 0 and 2 run, 1 and 3 are offline: all four are pinned.
    assert [call.args[:2] for call in live_calls(hypervisor)] == list(enumerate(planned))
    assert result.live == [
        f"vCPU {vcpu} pinned to host CPUs {format_cpuset(cpus)}" for vcpu, cpus in enumerate(planned)
    ]
    take_live_pins(hypervisor)
    assert pending(hypervisor) == []
