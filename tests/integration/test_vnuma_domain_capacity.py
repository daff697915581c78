# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain's capacity check and batched restarts against the real libvirtd.

Other work shares this libvirtd, and the capacity check counts every running or autostart guest of
the host: the guests here are small (256 MiB, names ``vnuma-cap-*``), and a plan is made not to fit
with ``reserved_memory`` rather than with guests big enough to crowd out everyone else's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import libvirt
from test_harness import BOOT_TIMEOUT
from vnuma_domain_support import MIB, inactive_xml, live_xml, numa_cells, wait_for

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import format_size
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import URI, GuestFactory, connect


def test_a_plan_that_does_not_fit_changes_nothing(make_guest: GuestFactory, qemu_conn: libvirt.virConnect) -> None:
    # This host's node grows as the machine onlines memory blocks (128 MiB each) while it runs: the
    # capabilities read now are handed to the module, so that the reserve below means what it says.
    caps = qemu_conn.getCapabilities()
    topology = parse_capabilities(caps)
    node = topology.cpu_node_ids[0]
    guests = [make_guest("vnuma-cap-fit", vcpus=1, memory_mib=256, start=False) for _index in range(2)]
    for guest in guests:
        guest.dom.setAutostart(1)  # defined, not running, but counted: it starts with the host
    names = [guest.name for guest in guests]
    # Keep all but 384 MiB of the node for the host: one guest of 256 MiB fits, two do not.
    memory = topology.node(node).memory_kib
    reserved = memory - 384 * MIB
    args = {
        "guests": names,
        "mode": "node",
        "nodeset": str(node),
        "reserved_memory": reserved,
        "host_capabilities": caps,
    }
    before = {name: inactive_xml(qemu_conn, name) for name in names}

    for check_mode in (True, False):
        failed = fail_module(args, check_mode=check_mode)
        assert failed["msg"].startswith("the guests do not fit the host ("), failed["msg"]
        problem = next(text for text in failed["capacity"]["blocking"] if text.startswith(f"host node {node}: "))
        assert f"({format_size(memory)} - {format_size(reserved)} reserved)" in problem
        assert ", 384 MiB available " in problem
        for name in names:
            assert f"{name} 256 MiB (planned)" in problem
            assert problem in failed["msg"]
        entry = next(item for item in failed["capacity"]["nodes"] if item["id"] == node)
        assert entry["reserved_kib"] == reserved and entry["available_kib"] == 384 * MIB
        listed = {item["name"]: (item["source"], item["autostart"]) for item in entry["guests"]}
        assert [listed.get(name) for name in names] == [("planned", True)] * 2
        after = {name: inactive_xml(qemu_conn, name) for name in names}
        assert after == before, "a plan that does not fit must leave every definition byte for byte as it was"

    # Without the reserve they fit (the guests of the other tests on this host are small too).
    alone = run_module({**args, "guests": names[:1], "reserved_memory": 0, "host_capabilities": None})
    assert alone["changed"] is True and alone["capacity"]["fits"] is True
    assert inactive_xml(qemu_conn, names[1]) == before[names[1]]
    assert alone["guests"][0]["alignment"]["aligned"] is True


_EVENT_LOOP: list[threading.Thread] = []


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


@contextmanager
def lifecycle_events(names: list[str]) -> Iterator[list[tuple[float, str, int]]]:
    """The guests' lifecycle events (when, guest, libvirt.VIR_DOMAIN_EVENT_*), in the order libvirtd sent them.

    libvirtd emits them as it stops and starts domains, over one connection in order: unlike sampling
    the states, a short window where both guests are down cannot be missed.
    """
    if not _EVENT_LOOP:
        # Before the connection below is opened; the loop runs for the rest of the test process.
        libvirt.virEventRegisterDefaultImpl()
        _EVENT_LOOP.append(threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True))
        _EVENT_LOOP[0].start()
    events: list[tuple[float, str, int]] = []

    def record(_conn: libvirt.virConnect, dom: libvirt.virDomain, event: int, _detail: int, _opaque: object) -> None:
        if dom.name() in names:
            events.append((time.monotonic(), dom.name(), event))

    conn = connect(URI)
    callback = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, record, None)
    try:
        yield events
    finally:
        conn.domainEventDeregisterAny(callback)
        conn.close()


def test_guests_of_one_call_restart_together(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, host_caps: str
) -> None:
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    guests = [make_guest("vnuma-cap-rs", vcpus=2, memory_mib=256, wait=True) for _index in range(2)]
    names = [guest.name for guest in guests]
    args = {"guests": names, "mode": "node", "nodeset": str(node), "cells": 2}
    pending = run_module(args)
    assert pending["restart_required_guests"] == names
    ids = {guest.name: guest.dom.ID() for guest in guests}

    # The harness's guest mostly ignores ACPI shutdown (a guest kernel still booting may honour it):
    # force powers off whoever is still up at the one shared deadline.
    timeout = 6
    stopped, started = libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STARTED
    with lifecycle_events(names) as events:
        done = run_module({**args, "restart": "if_needed", "force": True, "shutdown_timeout": timeout})
        wait_for(lambda: sum(event == started for *_seen, event in events) == 2, 10, f"both started: {events}")
    assert [(item["restarted"], item["restart_required"]) for item in done["guests"]] == [(True, False)] * 2
    assert done["restart_required_guests"] == []

    # Both stopped before either started again: one batch, not one guest after the other.
    order = [(name, event) for _at, name, event in events if event in (stopped, started)]
    assert sorted(order[:2]) == sorted((name, stopped) for name in names), events
    assert sorted(order[2:]) == sorted((name, started) for name in names), events
    # One deadline for the pair, not one per guest, is held on the batch's own clock (no wall clock):
    # tests/unit/plugins/modules/test_vnuma_domain.py:test_one_deadline_for_the_whole_batch.

    # Both run again (new domain ids), with the new definition, and the guest kernel sees two nodes.
    for guest in guests:
        assert guest.is_active()
        # (a domain object keeps the id it was looked up with: look it up again)
        assert qemu_conn.lookupByName(guest.name).ID() != ids[guest.name]
        live = numa_cells(live_xml(qemu_conn, guest.name))
        assert live == numa_cells(inactive_xml(qemu_conn, guest.name))
        assert len(live) == 2
    for guest in guests:
        report = guest.report(BOOT_TIMEOUT, until=lambda seen: len(seen.nodes) == 2)
        assert sorted(report.nodes) == [0, 1]
    settled = run_module(args)
    assert settled["changed"] is False and settled["restart_required"] is False
