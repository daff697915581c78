# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What vnuma_info asks of libvirt (``_libvirt.py``): the guest listing, free memory and free hugepages.

Against libvirt's test driver where it can answer, and against a stand-in connection for what it
cannot show: a driver without the call (VIR_ERR_NO_SUPPORT degrades to None, nothing else does),
sparse node ids, and the QEMU driver's bytes.
"""

from __future__ import annotations

from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtHost
from ansible_collections.vnuma.libvirt.tests.support.embedded_libvirt import small_test_domain

GIB = 1024 * 1024


def libvirt_error(code: int, message: str) -> libvirt.libvirtError:
    error = libvirt.libvirtError(message)
    # What libvirt-python fills from virGetLastError(): (code, domain, message, level, ...).
    error.err = (code, 0, message, 2, None, None, None, 0, 0)
    return error


class StandIn:
    """A connection whose NUMA calls are scripted; every call is recorded."""

    def __init__(self, driver: str = "QEMU", fail: libvirt.libvirtError | None = None) -> None:
        self.driver = driver
        self.fail = fail
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def getType(self) -> str:
        return self.driver

    def getCellsFreeMemory(self, first: int, count: int) -> list[int]:
        self.calls.append(("getCellsFreeMemory", (first, count)))
        if self.fail is not None:
            raise self.fail
        return [(first + offset + 1) * GIB * 1024 for offset in range(count)]

    def getFreePages(self, sizes: list[int], first: int, count: int, flags: int) -> dict[int, dict[int, int]]:
        self.calls.append(("getFreePages", (tuple(sizes), first, count)))
        if self.fail is not None:
            raise self.fail
        return {first: {size: first + size for size in sizes}}

    def getAllDomainStats(self, stats: int, flags: int) -> list[Any]:
        raise libvirt_error(libvirt.VIR_ERR_NO_SUPPORT, "this function is not supported by the connection driver")

    def close(self) -> None:
        pass


def stand_in(host: LibvirtHost, **kwargs: Any) -> StandIn:
    fake = StandIn(**kwargs)
    host.connection = fake
    return fake


def test_free_memory_of_the_test_driver(host: LibvirtHost) -> None:
    # The test driver answers in KiB where the API says bytes: taken as KiB, they match its cells.
    assert host.free_memory_kib([0, 1]) == {0: 2 * GIB, 1: 4 * GIB}


def test_free_memory_is_asked_per_run_of_node_ids_and_read_as_bytes(host: LibvirtHost) -> None:
    fake = stand_in(host)
    assert host.free_memory_kib([8, 0, 1, 9]) == {0: GIB, 1: 2 * GIB, 8: 9 * GIB, 9: 10 * GIB}
    assert fake.calls == [("getCellsFreeMemory", (0, 2)), ("getCellsFreeMemory", (8, 2))]


def test_a_driver_without_the_call_gives_none_and_other_errors_stay_errors(host: LibvirtHost) -> None:
    unsupported = libvirt_error(libvirt.VIR_ERR_NO_SUPPORT, "this function is not supported by the connection driver")
    stand_in(host, fail=unsupported)
    assert host.free_memory_kib([0]) is None
    assert host.free_pages({0: [2048]}) is None
    stand_in(host, fail=libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR, "start cell 3 out of range (0-0)"))
    with pytest.raises(LibvirtOperationError) as caught:
        host.free_memory_kib([3])
    assert str(caught.value) == (
        "reading the free memory of host nodes 3-3 at test:///default: start cell 3 out of range (0-0)"
    )
    with pytest.raises(LibvirtOperationError, match="reading the free hugepages of host node 0 at test:///default"):
        host.free_pages({0: [2048]})


def test_free_pages_ask_each_node_for_its_own_pools(host: LibvirtHost) -> None:
    fake = stand_in(host)
    assert host.free_pages({0: [2048, 1048576], 1: [], 8: [2048]}) == {
        0: {2048: 2048, 1048576: 1048576},
        8: {2048: 2056},
    }
    assert fake.calls == [("getFreePages", ((2048, 1048576), 0, 1)), ("getFreePages", ((2048,), 8, 1))]


def test_the_test_driver_has_no_hugepage_counters(host: LibvirtHost) -> None:
    assert host.free_pages({0: [2048], 1: [2048]}) == {}


def test_listing_gives_state_and_autostart(host: LibvirtHost) -> None:
    conn = host.connection
    name = "libvirt-info-listing"
    dom = conn.defineXML(small_test_domain(name))
    try:
        dom.setAutostart(1)
        entries = {entry.name: entry for entry in host.listing()}
        assert (entries["test"].state, entries["test"].active, entries["test"].autostart) == ("running", True, False)
        assert (entries[name].state, entries[name].active, entries[name].autostart) == ("shutoff", False, True)
        assert [entry.name for entry in host.listing()] == sorted(entries)
        dom.create()
        dom.suspend()
        assert {entry.name: entry.state for entry in host.listing()}[name] == "paused"
        # A driver without domain statistics is asked per guest, with the same answer.
        real = host.connection
        host.connection = type("NoStats", (), {})()
        host.connection.listAllDomains = real.listAllDomains
        host.connection.getAllDomainStats = StandIn().getAllDomainStats
        fallback = {entry.name: (entry.state, entry.active, entry.autostart) for entry in host.listing()}
        host.connection = real
        assert fallback[name] == ("paused", True, True)
        dom.destroy()
        # A managed save image (virsh managedsave) is listed for a shut-off guest, in the same four calls.
        dom.create()
        dom.managedSave(0)
        saved = {entry.name: entry for entry in host.listing()}
        assert (saved[name].state, saved[name].active, saved[name].saved, saved["test"].saved) == (
            "shutoff",
            False,
            True,
            False,
        )
        assert host.managed_save_names() == [name]
        dom.managedSaveRemove(0)
        assert {entry.name: entry.saved for entry in host.listing()}[name] is False
        # Undefined after the listing: the reads say so with None rather than failing.
        listed = {entry.name: entry for entry in host.listing()}[name]
        dom.undefine()
        assert listed.guest.xml_if_defined() is None
        assert listed.guest.xml_if_defined(live=True) is None
    finally:
        if name in [domain.name() for domain in conn.listAllDomains()]:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
