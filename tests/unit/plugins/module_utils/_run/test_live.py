# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a running guest takes without a boot: re-pinning, then vCPU and DIMM hot-plug, in that order."""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.live import dimm_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import BatchError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import MemoryDevice
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import Call, FakeHost, domain_xml
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
    assert [call.method for call in hypervisor.writes()] == [
        "define",
        "pin_vcpu_live",
        "pin_vcpu_live",
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


@pytest.mark.parametrize(
    "device",
    [
        MemoryDevice(index=0, model="dimm", size_kib=131072, node=1, nodemask=(2, 3)),
        MemoryDevice(index=0, model="dimm", size_kib=1048576, node=0, nodemask=(0,), pagesize_kib=2048),
        MemoryDevice(index=0, model="dimm", size_kib=262144),
    ],
)
def test_a_dimm_is_written_by_its_element_model_and_reads_back_the_same(device: MemoryDevice) -> None:
    assert MemoryDevice.from_element(parse_xml(device.markup(), "a DIMM")) == device


def test_dimm_xml_binds_the_dimm_to_its_cell_and_host_nodes() -> None:
    written = MemoryDevice.from_element(parse_xml(dimm_xml(1, 131072, (2, 3)), "a DIMM"))
    assert (written.model, written.node, written.size_kib, written.nodemask) == ("dimm", 1, 131072, (2, 3))
