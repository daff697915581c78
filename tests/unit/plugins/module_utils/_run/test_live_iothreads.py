# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""I/O threads on a running guest: new pins are taken live, and live pins that differ from the definition; new
threads and disk assignments wait for a boot."""

from __future__ import annotations

from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import FakeHost, domain_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host
from ansible_collections.vnuma.libvirt.tests.unit.plugins.module_utils._run.test_live import (
    assert_lifted_pins_settle,
    pending,
    put_live_pin,
    take_live_pins,
)

TOPOLOGY = host("testdriver-default")
DISK = "<disk type='file' device='disk'><source file='/var/lib/a.img'/><target dev='vda' bus='virtio'/></disk>"


def started(options: dict[str, object]) -> FakeHost:
    """Guest ``a`` with one virtio disk, given its layout while shut off, then started."""
    xml = domain_xml("a").replace("</emulator>", f"</emulator>{DISK}")
    hypervisor = FakeHost({"a": xml})
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", options)])
    hypervisor.guests["a"].start()
    hypervisor.calls.clear()
    return hypervisor


def test_new_iothread_pins_are_taken_live() -> None:
    hypervisor = started({"mode": "host", "iothreads": "per_cell"})
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", {"pinning": "none"})])
    # The I/O threads stay (1 and 2, the disk on 1); only their pins go, back to every host CPU.
    assert result.restart_required is False
    calls = [(call.method, call.args) for call in hypervisor.writes() if call.method == "pin_iothread_live"]
    assert calls == [("pin_iothread_live", (1, tuple(range(16)), 16)), ("pin_iothread_live", (2, tuple(range(16)), 16))]
    assert result.live[-2:] == ["I/O thread 1 pinned to host CPUs 0-15", "I/O thread 2 pinned to host CPUs 0-15"]
    # Pinned again per cell: each thread live to its cell's node.
    hypervisor.calls.clear()
    (again,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", {"pinning": "node"})])
    assert again.restart_required is False
    assert [call.args for call in hypervisor.writes() if call.method == "pin_iothread_live"] == [
        (1, tuple(range(8)), 16),
        (2, tuple(range(8, 16)), 16),
    ]


def test_new_iothreads_wait_for_a_boot() -> None:
    hypervisor = started({"mode": "host"})
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", {"iothreads": "per_cell"})])
    assert result.restart_required is True
    assert [call.method for call in hypervisor.writes()] == ["define"]
    paths = {change.path for change in result.changes}
    assert {"iothreads", "devices/disk[vda]/driver/iothread", "cputune/iothreadpin[1]"} <= paths


def test_check_mode_tells_the_live_pins_and_makes_none() -> None:
    hypervisor = started({"mode": "host", "iothreads": "per_disk"})
    (result,) = Converger(hypervisor, TOPOLOGY, check_mode=True).converge([GuestRequest("a", {"pinning": "none"})])
    assert "I/O thread 1 pinned to host CPUs 0-15" in result.live
    assert hypervisor.writes() == []


def test_iothread_pins_lifted_live_are_not_pending() -> None:
    # libvirt lists the vCPUs and both I/O threads pinned to every host CPU.
    assert_lifted_pins_settle(started({"mode": "host", "iothreads": "per_cell"}))


def test_an_iothread_pin_another_client_set_live_is_pinned_again() -> None:
    hypervisor = started({"mode": "host", "iothreads": "per_cell"})
    put_live_pin(hypervisor, "iothreadpin", 1, tuple(range(8, 16)))
    planned = ["I/O thread 1 pinned to host CPUs 0-7", "I/O thread 2 pinned to host CPUs 8-15"]
    (check,) = Converger(hypervisor, TOPOLOGY, check_mode=True).converge([GuestRequest("a")])
    assert (check.changed, check.changes, check.restart_required, check.live) == (True, [], False, planned)
    assert hypervisor.writes() == []
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a")])
    assert (result.changed, result.live) == (True, planned)
    assert [call.args for call in hypervisor.writes()] == [(1, tuple(range(8)), 16), (2, tuple(range(8, 16)), 16)]
    take_live_pins(hypervisor)
    assert pending(hypervisor) == []


def test_with_iothreads_none_the_guests_own_live_iothread_pins_stay() -> None:
    """The collection does not own the I/O threads then: a live pin of the user's is left as it is."""
    own = "<iothreads>1</iothreads><cputune><iothreadpin iothread='1' cpuset='0-7'/></cputune>"
    hypervisor = FakeHost({"a": domain_xml("a", extra=own)})
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", {"mode": "host"})])
    hypervisor.guests["a"].start()
    put_live_pin(hypervisor, "iothreadpin", 1, tuple(range(8, 16)))
    hypervisor.calls.clear()
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a")])
    assert (result.changed, result.live, hypervisor.writes()) == (False, [], [])
