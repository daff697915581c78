# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a guest that keeps running takes live from its definition, by the one rule vnuma_info's pending follows.

The DIMMs its definition has and it runs without (attached while it needed a restart, or by a user with
``virsh attach-device --config``) go in live; those it has beyond its definition (``--live`` only) stay and count
against ``memory_slots``, checked before anything is written.  vCPUs its definition brings online at boot and it
runs without are brought online live, with ``current_vcpus`` or without, so that two runs with nothing changed
between them say the same ``restart_required``.  A real run is ``changed`` by what it wrote, and its ``live`` lists
what was done.
"""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest, Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.plan import Planner
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import BatchError, GuestResult
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import Call, FakeHost
from ansible_collections.vnuma.libvirt.tests.support.hosts import host
from ansible_collections.vnuma.libvirt.tests.unit.plugins.module_utils._run.test_live import started

TOPOLOGY = host("testdriver-default")
HOTPLUG = {"mode": "host", "max_memory": "4 GiB", "memory_slots": 4}
MIB = 1024
# The collection's DIMM of 128 MiB for guest cell N (host node N on this host), as MemoryDevice.dimm writes it.
DIMM = (
    '<memory model="dimm"><source><nodemask>{node}</nodemask></source>'
    '<target><size unit="KiB">131072</size><node>{node}</node></target></memory>'
)
# A user's DIMM, as `virsh attach-device` takes it (no host nodes of its own: its cell's).
USER_DIMM = "<memory model='dimm'><target><size unit='MiB'>128</size><node>1</node></target></memory>"
USER_DIMM_AS_ATTACHED = '<memory model="dimm"><target><size unit="MiB">128</size><node>1</node></target></memory>'


def converge(hypervisor: FakeHost, request: GuestRequest, check_mode: bool = False) -> GuestResult:
    (result,) = Converger(hypervisor, TOPOLOGY, check_mode=check_mode).converge([request])
    return result


def failed(hypervisor: FakeHost, request: GuestRequest, check_mode: bool = False) -> GuestResult:
    with pytest.raises(BatchError) as raised:
        Converger(hypervisor, TOPOLOGY, check_mode=check_mode).converge([request])
    (result,) = raised.value.results
    return result


def pending(hypervisor: FakeHost) -> list[str]:
    """What guest ``a`` waits for its next boot in, as a plan sees it (vnuma_info's rule)."""
    (item,) = Planner(hypervisor, TOPOLOGY).plan_all([GuestRequest("a")])
    assert isinstance(item, Planned)
    return [str(change) for change in item.pending]


def live_calls(hypervisor: FakeHost) -> list[Call]:
    return [call for call in hypervisor.writes() if call.method != "define"]


def attached(hypervisor: FakeHost) -> list[tuple[str, bool, bool]]:
    return [call.args for call in hypervisor.called("attach_device")]


def live_dimms(hypervisor: FakeHost) -> int:
    live = hypervisor.guests["a"].live
    assert live is not None
    return len(parse_xml(live, "the running guest", root_tag="domain").findall("devices/memory"))


def defined_dimms(hypervisor: FakeHost) -> int:
    return len(parse_xml(hypervisor.guests["a"].xml, "the definition", root_tag="domain").findall("devices/memory"))


def attach_by_hand(hypervisor: FakeHost, device: str, live: bool, persistent: bool) -> None:
    """Another client's `virsh attach-device` (--live, --config), not recorded as the run's."""
    hypervisor.guests["a"].attach_device(device, live=live, persistent=persistent)
    hypervisor.calls.clear()


def take_enabled_vcpus(hypervisor: FakeHost) -> None:
    """The vCPUs the run brought online, in the running guest's XML as libvirt lists them (the fake only records)."""
    guest = hypervisor.guests["a"]
    assert guest.live is not None
    root = parse_xml(guest.live, "the running guest", root_tag="domain")
    enabled = {vcpu for call in hypervisor.called("set_vcpus_online", "a") for vcpu in call.args[0]}
    states = root.findall("vcpus/vcpu")
    for state in states:
        if int(state.get("id")) in enabled:
            state.set("enabled", "yes")
    vcpu = root.find("vcpu")
    online = sum(1 for state in states if state.get("enabled") == "yes")
    if online == int(vcpu.text):
        vcpu.attrib.pop("current", None)
    else:
        vcpu.set("current", str(online))
    guest.live = etree.tostring(root, encoding="unicode")


def set_config_vcpus(hypervisor: FakeHost, count: int) -> None:
    """`virsh setvcpus a COUNT --config` on the running guest: its definition boots COUNT online."""
    guest = hypervisor.guests["a"]
    root = parse_xml(guest.xml, "the definition", root_tag="domain")
    states = root.findall("vcpus/vcpu")
    for state in states:
        state.set("enabled", "yes" if int(state.get("id")) < count else "no")
        state.attrib.pop("order", None)
    vcpu = root.find("vcpu")
    if count == int(vcpu.text):
        vcpu.attrib.pop("current", None)
    else:
        vcpu.set("current", str(count))
    guest.xml = etree.tostring(root, encoding="unicode")


# -- 1. DIMMs the definition has and the running guest lacks ---------------------------------------------------


def test_dimms_added_while_a_restart_was_needed_go_in_live_once_the_guest_keeps_running() -> None:
    hypervisor = started(HOTPLUG)
    # Fewer vCPUs than run: a restart is needed, so the DIMMs go into the definition only.
    first = converge(hypervisor, GuestRequest("a", current_vcpus=2, hotplug_memory_kib=256 * MIB))
    assert first.restart_required is True
    assert attached(hypervisor) == [(DIMM.format(node=0), False, True), (DIMM.format(node=1), False, True)]
    assert (live_dimms(hypervisor), defined_dimms(hypervisor)) == (0, 2)
    # vnuma_info: its next boot brings memory it runs without.
    waiting = pending(hypervisor)
    assert "devices/memory[0]: None -> 'DIMM of 128 MiB on guest cell 0 (host nodes 0)'" in waiting
    assert "devices/memory[1]: None -> 'DIMM of 128 MiB on guest cell 1 (host nodes 1)'" in waiting
    hypervisor.calls.clear()

    # Back to the vCPUs it runs: no restart, so the DIMMs it lacks go in live (check mode says so first).
    request = GuestRequest("a", current_vcpus=4, hotplug_memory_kib=256 * MIB)
    plan = converge(hypervisor, request, check_mode=True)
    expected = [
        "DIMM of 128 MiB on guest cell 0 (host nodes 0) of the definition",
        "DIMM of 128 MiB on guest cell 1 (host nodes 1) of the definition",
    ]
    assert (plan.changed, plan.restart_required, plan.live, hypervisor.writes()) == (True, False, expected, [])
    applied = converge(hypervisor, request)
    assert (applied.changed, applied.restart_required, applied.live) == (True, False, expected)
    # Live only: the definition has them already.
    assert attached(hypervisor) == [(DIMM.format(node=0), True, False), (DIMM.format(node=1), True, False)]
    assert applied.written == ["definition", *(f"{text} attached live" for text in expected)]
    assert (live_dimms(hypervisor), defined_dimms(hypervisor)) == (2, 2)
    assert pending(hypervisor) == []
    hypervisor.calls.clear()
    again = converge(hypervisor, request)
    assert (again.changed, again.live, hypervisor.writes()) == (False, [], [])


def test_a_dimm_a_user_attached_to_the_definition_goes_in_live_and_counts_for_hotplug_memory() -> None:
    hypervisor = started(HOTPLUG)
    converge(hypervisor, GuestRequest("a", hotplug_memory_kib=256 * MIB))
    # virsh attach-device a userdimm.xml --config: 128 MiB more on guest cell 1, at the next boot.
    attach_by_hand(hypervisor, USER_DIMM, live=False, persistent=True)
    assert pending(hypervisor) == ["devices/memory[2]: None -> 'DIMM of 128 MiB on guest cell 1'"]

    result = converge(hypervisor, GuestRequest("a", hotplug_memory_kib=512 * MIB))
    # The user's DIMM goes in live, and the new 128 MiB goes to cell 0, which has less: 256 MiB each, live too.
    assert attached(hypervisor) == [(USER_DIMM_AS_ATTACHED, True, False), (DIMM.format(node=0), True, True)]
    assert result.live == [
        "DIMM of 128 MiB on guest cell 1 of the definition",
        "DIMM of 128 MiB on guest cell 0 (host nodes 0)",
    ]
    assert (live_dimms(hypervisor), defined_dimms(hypervisor)) == (4, 4)
    assert pending(hypervisor) == []
    hypervisor.calls.clear()
    again = converge(hypervisor, GuestRequest("a", hotplug_memory_kib=512 * MIB))
    assert (again.changed, hypervisor.writes()) == (False, [])


def test_a_dimm_of_the_definition_goes_in_live_without_hotplug_memory() -> None:
    hypervisor = started(HOTPLUG)
    attach_by_hand(hypervisor, USER_DIMM, live=False, persistent=True)
    result = converge(hypervisor, GuestRequest("a"))
    assert (result.changed, result.restart_required) == (True, False)
    assert result.live == ["DIMM of 128 MiB on guest cell 1 of the definition"]
    assert attached(hypervisor) == [(USER_DIMM_AS_ATTACHED, True, False)]
    assert pending(hypervisor) == []


def test_a_dimm_attached_live_only_stays_and_is_not_pending() -> None:
    hypervisor = started(HOTPLUG)
    converge(hypervisor, GuestRequest("a", hotplug_memory_kib=256 * MIB))
    attach_by_hand(hypervisor, USER_DIMM, live=True, persistent=False)
    assert pending(hypervisor) == []
    result = converge(hypervisor, GuestRequest("a", hotplug_memory_kib=256 * MIB))
    assert (result.changed, hypervisor.writes()) == (False, [])
    assert (live_dimms(hypervisor), defined_dimms(hypervisor)) == (3, 2)


def test_a_restart_needed_leaves_the_definitions_dimms_to_the_boot() -> None:
    hypervisor = started(HOTPLUG)
    attach_by_hand(hypervisor, USER_DIMM, live=False, persistent=True)
    result = converge(hypervisor, GuestRequest("a", current_vcpus=2))
    assert (result.restart_required, result.live, attached(hypervisor)) == (True, [], [])


# -- 2. memory slots: the running guest's devices count, before anything is written --------------------------

SLOTS_FULL = (
    "the running guest holds 3 memory devices (DIMM of 128 MiB on guest cell 0 (host nodes 0), DIMM of 128 MiB on "
    "guest cell 1 (host nodes 1), DIMM of 128 MiB on guest cell 1 attached live only); attaching 2 DIMMs live "
    "(2 new for hotplug_memory 512 MiB) makes 5, above memory_slots 4; detach a memory device from the running "
    "guest, or raise memory_slots"
)


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "real"])
def test_a_dimm_attached_live_only_holds_a_slot_and_the_hot_add_is_refused_before_any_write(check_mode: bool) -> None:
    hypervisor = started(HOTPLUG)
    converge(hypervisor, GuestRequest("a", hotplug_memory_kib=256 * MIB))
    attach_by_hand(hypervisor, USER_DIMM, live=True, persistent=False)
    result = failed(hypervisor, GuestRequest("a", hotplug_memory_kib=512 * MIB), check_mode)
    assert str(result.error) == f"guest a: {SLOTS_FULL}"
    assert (result.changed, result.written, result.live) == (False, [], [])
    assert hypervisor.writes() == []


def test_the_slot_refusal_comes_before_a_definition_change_of_the_same_run() -> None:
    hypervisor = started(HOTPLUG)
    converge(hypervisor, GuestRequest("a", hotplug_memory_kib=256 * MIB))
    attach_by_hand(hypervisor, USER_DIMM, live=True, persistent=False)
    # pinning none changes the definition (and the pins live): refused as the plan is made, nothing defined.
    result = failed(hypervisor, GuestRequest("a", {"pinning": "none"}, hotplug_memory_kib=512 * MIB))
    assert str(result.error) == f"guest a: {SLOTS_FULL}"
    assert (result.changed, result.written, hypervisor.writes()) == (False, [], [])


def test_the_definitions_dimms_need_their_slots_in_the_running_guest_too() -> None:
    hypervisor = started({**HOTPLUG, "memory_slots": 2})
    attach_by_hand(hypervisor, USER_DIMM, live=False, persistent=True)
    for _slot in range(2):
        attach_by_hand(hypervisor, DIMM.format(node=0), live=True, persistent=False)
    result = failed(hypervisor, GuestRequest("a"))
    assert str(result.error) == (
        "guest a: the running guest holds 2 memory devices (DIMM of 128 MiB on guest cell 0 (host nodes 0) "
        "attached live only, DIMM of 128 MiB on guest cell 0 (host nodes 0) attached live only); attaching 1 DIMM "
        "live (1 of the definition that it runs without) makes 3, above memory_slots 2; detach a memory device from "
        "the running guest, or raise memory_slots"
    )
    assert hypervisor.writes() == []


# -- 3. vCPUs the definition brings online and the running guest lacks -------------------------------------------


def test_vcpus_a_definition_brings_online_at_boot_are_brought_online_live_by_one_stable_rule() -> None:
    hypervisor = started({"mode": "host"}, current=2)
    # virsh setvcpus a 4 --config: the next boot brings 4 online, the guest runs 2.
    set_config_vcpus(hypervisor, 4)
    assert "vcpu/current: 2 -> None" in pending(hypervisor)
    plan = converge(hypervisor, GuestRequest("a"), check_mode=True)
    assert (plan.changed, plan.restart_required, plan.live, hypervisor.writes()) == (
        True,
        False,
        ["enabled vCPUs 1,3"],
        [],
    )
    applied = converge(hypervisor, GuestRequest("a"))
    assert (applied.changed, applied.restart_required, applied.live) == (True, False, ["enabled vCPUs 1,3"])
    assert applied.written == ["definition", "vCPUs 1 enabled live", "vCPUs 3 enabled live"]
    take_enabled_vcpus(hypervisor)
    assert pending(hypervisor) == []
    hypervisor.calls.clear()
    again = converge(hypervisor, GuestRequest("a"))
    assert (again.changed, again.restart_required, again.live, hypervisor.writes()) == (False, False, [], [])


def test_a_saved_guest_takes_the_vcpus_its_definition_brings_once_resumed_without_a_restart() -> None:
    hypervisor = started({"mode": "host"}, current=2)
    hypervisor.managed_save("a")
    set_config_vcpus(hypervisor, 4)
    saved = converge(hypervisor, GuestRequest("a"))
    assert (saved.restart_required, saved.live, saved.warnings) == (False, [], [])
    # Its start resumes the image's 2 vCPUs; the next run brings the other 2 online.
    hypervisor.guests["a"].start()
    hypervisor.calls.clear()
    resumed = converge(hypervisor, GuestRequest("a"))
    assert (resumed.restart_required, resumed.live) == (False, ["enabled vCPUs 1,3"])


def test_fewer_vcpus_defined_than_run_need_a_restart_on_every_run() -> None:
    hypervisor = started({"mode": "host"})
    set_config_vcpus(hypervisor, 2)
    answers = [converge(hypervisor, GuestRequest("a")).restart_required for _run in range(2)]
    assert answers == [True, True]
    assert "vcpu/current: None -> 2" in pending(hypervisor)
    assert hypervisor.called("set_vcpus_online") == []


# -- 4. a real run is changed by what it wrote, and its live lists what was done --------------------------------


def test_a_failed_hot_add_is_unchanged_and_lists_nothing_done() -> None:
    hypervisor = started(HOTPLUG)
    hypervisor.fail("a", "attach_device", "attaching a memory device: injected failure")
    result = failed(hypervisor, GuestRequest("a", hotplug_memory_kib=256 * MIB))
    assert str(result.error) == "guest a: attaching a memory device: injected failure"
    assert (result.changed, result.written, result.live) == (False, [], [])


def test_a_hot_add_that_fails_halfway_lists_what_was_attached() -> None:
    hypervisor = started(HOTPLUG)
    hypervisor.meanwhile("a", "attach_device", lambda: None)
    hypervisor.meanwhile("a", "attach_device", lambda: hypervisor.fail("a", "attach_device"))
    result = failed(hypervisor, GuestRequest("a", hotplug_memory_kib=256 * MIB))
    assert result.changed is True
    assert result.written == ["DIMM of 128 MiB on guest cell 0 (host nodes 0) attached live"]
    assert result.live == ["DIMM of 128 MiB on guest cell 0 (host nodes 0)"]


def test_a_failed_live_pin_lists_only_the_pins_done() -> None:
    hypervisor = started({"mode": "host"})
    hypervisor.meanwhile("a", "pin_vcpu_live", lambda: None)
    hypervisor.meanwhile("a", "pin_vcpu_live", lambda: hypervisor.fail("a", "pin_vcpu_live"))
    result = failed(hypervisor, GuestRequest("a", {"pinning": "none"}))
    assert result.written == ["definition", "vCPU 0 pinned live"]
    assert (result.changed, result.live) == (True, ["vCPU 0 pinned to host CPUs 0-15"])


def test_vcpus_enabled_before_a_failure_are_listed() -> None:
    hypervisor = started({"mode": "host"}, current=2)
    hypervisor.meanwhile("a", "set_vcpus_online", lambda: None)
    hypervisor.meanwhile("a", "set_vcpus_online", lambda: hypervisor.fail("a", "set_vcpus_online"))
    result = failed(hypervisor, GuestRequest("a", current_vcpus=4))
    assert result.written == ["definition", "vCPUs 1 enabled live"]
    assert result.live == ["enabled vCPUs 1"]


def test_a_run_without_a_define_whose_first_live_write_fails_is_unchanged() -> None:
    hypervisor = started({"mode": "host"}, current=2)
    guest = hypervisor.guests["a"]
    runs_two = guest.live
    # Defined with 4 vCPUs online while shut off, then running 2 of them: nothing to define, 2 to bring online.
    guest.destroy()
    converge(hypervisor, GuestRequest("a", current_vcpus=4))
    guest.start()
    guest.live = runs_two
    hypervisor.calls.clear()
    hypervisor.fail("a", "set_vcpus_online")
    result = failed(hypervisor, GuestRequest("a", current_vcpus=4))
    assert (result.changed, result.written, result.live) == (False, [], [])
    assert [call.method for call in hypervisor.writes()] == ["set_vcpus_online"]
