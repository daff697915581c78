# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_info's report of one guest (``_run/info.py:_guest``) against the in-memory hypervisor: what is pending.

A running guest is compared with its definition as it runs; a shut-off guest with a managed save image
(``virsh managedsave``) as its next start resumes it, the image's XML.  The listing that says which guests have
an image is the adapter's (``tests/unit/plugins/module_utils/test_libvirt_info.py``).
"""

from __future__ import annotations

from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import GuestEntry
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.info import _guest
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import FakeHost, domain_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

TOPOLOGY = host("testdriver-default")
ONE_CELL = {"mode": "node", "nodeset": "0", "cells": 1}
TWO_CELLS = {"mode": "host"}


def report(hypervisor: FakeHost, name: str) -> dict[str, Any]:
    """vnuma_info's entry for ``name``, listed as the adapter lists it (``LibvirtHost.listing``)."""
    guest = hypervisor.guests[name]
    active = guest.live is not None
    entry = GuestEntry(
        guest,  # type: ignore[arg-type]  # the fake stands in for LibvirtGuest
        "running" if active else "shutoff",
        active,
        False,
        not active and name in hypervisor.managed_save_names(),
    )
    info = _guest(entry, TOPOLOGY, {}, {}, TOPOLOGY.cpu_node)
    assert info is not None
    return dict(info.report)


def saved_then_redefined() -> FakeHost:
    """Guest ``a`` booted with one cell and saved (virsh managedsave), then given two cells in its definition."""
    hypervisor = FakeHost({"a": domain_xml("a")}, running=("a",))
    Converger(hypervisor, TOPOLOGY, restart="if_needed", shutdown_timeout=0).converge([GuestRequest("a", ONE_CELL)])
    hypervisor.managed_save("a")
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", TWO_CELLS)])
    return hypervisor


def test_a_saved_guest_is_pending_when_its_image_differs_from_its_definition() -> None:
    # Its next start resumes the image's one cell: pending before the start, as it is after it.
    hypervisor = saved_then_redefined()
    before = report(hypervisor, "a")
    assert (before["state"], before["running"], before["source"], before["pending"]) == (
        "shutoff",
        False,
        "inactive",
        True,
    )
    assert "cpu/numa/cell[1]/cpus: None -> '2-3'" in before["pending_changes"]
    # The layout and alignment are the definition's (what a boot brings), as for any guest that is not running.
    assert before["defined_alignment"] == before["alignment"]
    assert len(before["layout"]["cells"]) == 2
    hypervisor.guests["a"].start()
    resumed = report(hypervisor, "a")
    assert (resumed["source"], resumed["pending"], resumed["pending_changes"]) == (
        "live",
        True,
        before["pending_changes"],
    )
    hypervisor.guests["a"].destroy()
    hypervisor.guests["a"].start()
    booted = report(hypervisor, "a")
    assert (booted["source"], booted["pending"], booted["pending_changes"]) == ("live", False, [])


def test_a_saved_guest_whose_image_is_its_definition_is_not_pending() -> None:
    hypervisor = FakeHost({"a": domain_xml("a")}, running=("a",))
    Converger(hypervisor, TOPOLOGY, restart="if_needed", shutdown_timeout=0).converge([GuestRequest("a", ONE_CELL)])
    hypervisor.managed_save("a")
    saved = report(hypervisor, "a")
    assert (saved["source"], saved["pending"], saved["pending_changes"]) == ("inactive", False, [])


def test_an_image_that_cannot_be_read_leaves_the_guest_not_pending() -> None:
    # libvirt's test driver has managed save but cannot read an image's XML: nothing to compare.
    hypervisor = saved_then_redefined()
    hypervisor.guests["a"].saved_unreadable = True
    assert report(hypervisor, "a")["pending"] is False
    assert [call.method for call in hypervisor.calls if call.guest == "a"][-2:] == [
        "xml_if_defined",
        "managed_save_xml",
    ]


def test_a_shut_off_guest_without_an_image_reads_its_definition_only() -> None:
    hypervisor = FakeHost({"a": domain_xml("a")})
    hypervisor.calls.clear()
    assert report(hypervisor, "a")["pending"] is False
    assert [call.method for call in hypervisor.calls if call.guest == "a"] == ["xml_if_defined"]


HOTPLUG = {"mode": "host", "max_memory": "4 GiB", "memory_slots": 4}


def test_a_running_guest_is_pending_while_its_definition_brings_a_dimm_it_runs_without() -> None:
    hypervisor = FakeHost({"a": domain_xml("a")})
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", HOTPLUG)])
    hypervisor.guests["a"].start()
    # virsh attach-device a dimm.xml --config: memory for the next boot only.
    dimm = "<memory model='dimm'><target><size unit='MiB'>128</size><node>1</node></target></memory>"
    hypervisor.guests["a"].attach_device(dimm, live=False, persistent=True)
    before = report(hypervisor, "a")
    assert (before["pending"], before["pending_changes"]) == (
        True,
        ["devices/memory[0]: None -> 'DIMM of 128 MiB on guest cell 1'"],
    )
    # vnuma_domain attaches it live (the guest keeps running); then it runs as defined.
    (result,) = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a")])
    assert (result.restart_required, result.live) == (False, ["DIMM of 128 MiB on guest cell 1 of the definition"])
    after = report(hypervisor, "a")
    assert (after["pending"], after["pending_changes"]) == (False, [])
    # One attached live only (by another client) is not pending: nothing waits for a boot.
    hypervisor.guests["a"].attach_device(dimm, live=True, persistent=False)
    assert report(hypervisor, "a")["pending"] is False


def test_a_running_guest_is_pending_while_its_definition_brings_more_vcpus_online() -> None:
    hypervisor = FakeHost({"a": domain_xml("a", current=2)})
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", TWO_CELLS)])
    hypervisor.guests["a"].start()
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("a", current_vcpus=4)])
    entry = report(hypervisor, "a")
    # The fake records the live enable without listing it: the guest still runs 2 of the 4 its definition boots.
    assert entry["pending"] is True
    assert "vcpu/current: 2 -> None" in entry["pending_changes"]
