# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A running guest's live pins against its definition, on the real libvirtd and QEMU.

vnuma_domain pins a running guest's vCPUs live.  A pin lifted live (``pinning: none``) is listed by libvirt as
a pin to every host CPU, which must not read as a change waiting for the boot (vnuma_info's ``pending``); a live
pin that differs from a definition that does not change (another client's ``virsh vcpupin --live``) is pinned
again by the next run, which says so in check mode too; an offline vCPU is pinned live as well, and QEMU runs it
there once it comes online.

Nothing here needs a guest kernel: the harness's guests are started without theirs, so QEMU runs SeaBIOS with
nothing to boot.  They start at once and their vCPU threads are there to pin (a few seconds a test).
"""

from __future__ import annotations

from typing import Any

import libvirt
import pytest
from vnuma_domain_support import cpuset, domain_root, live_xml

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_info
from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import Guest, GuestFactory

# Dedicates host CPUs (pinning core): runs after the other integration tests, alone (make integration).
pytestmark = pytest.mark.host_cpus


def idle_guest(
    make_guest: GuestFactory, prefix: str, current_vcpus: int | None = None, vcpus: int = 2, memory_mib: int = 128
) -> Guest:
    """A harness guest (removed at the end) defined without its kernel: it runs SeaBIOS, nothing else."""
    guest = make_guest(prefix, vcpus=vcpus, memory_mib=memory_mib, current_vcpus=current_vcpus, start=False)
    root = domain_root(guest.inactive_xml())
    boot = root.find("os")
    for tag in ("kernel", "initrd", "cmdline"):
        for element in boot.findall(tag):
            boot.remove(element)
    guest.conn.defineXMLFlags(etree.tostring(root, encoding="unicode"), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    return guest


def pending(name: str) -> list[str]:
    """vnuma_info's pending changes of the running guest ``name`` (empty: it runs as defined)."""
    guest = run_module({"guests": [name]}, module=vnuma_info)["guests"][0]
    assert guest["source"] == "live" and guest["pending"] is bool(guest["pending_changes"])
    return list(guest["pending_changes"])


def live_pins(xml: str) -> dict[int, frozenset[int]]:
    """The ``<vcpupin>``s libvirt lists for the running guest."""
    return {int(pin.get("vcpu")): cpuset(pin.get("cpuset")) for pin in domain_root(xml).iterfind("cputune/vcpupin")}


def thread_cpus(guest: Guest) -> list[frozenset[int]]:
    """Where QEMU's threads of the online vCPUs may run (their affinity, read by libvirt from the process)."""
    _info, cpumaps = guest.dom.vcpus()
    return [frozenset(cpu for cpu, on in enumerate(cpumap) if on) for cpumap in cpumaps]


def pinned(pins: dict[int, frozenset[int]]) -> list[str]:
    return [f"vCPU {vcpu} pinned to host CPUs {format_cpuset(cpus)}" for vcpu, cpus in sorted(pins.items())]


def core_pins(host_caps: str, make_guest: GuestFactory, prefix: str, **extra: Any) -> tuple[Guest, dict, dict]:
    """A guest given pinning core on this host's first node (one host CPU per vCPU), not started; its options
    and pins."""
    node = parse_capabilities(host_caps).cpu_node_ids[0]
    guest = idle_guest(make_guest, prefix, extra.pop("current_vcpus", None))
    options = {"name": guest.name, "mode": "node", "nodeset": str(node), "cells": 1, **extra}
    layout = run_module({**options, "pinning": "core"})["layout"]
    pins = {int(vcpu): cpuset(cpus) for vcpu, cpus in layout["vcpupin"].items()}
    assert sorted(pins) == [0, 1] and all(len(cpus) == 1 for cpus in pins.values()) and pins[0] != pins[1]
    return guest, options, pins


def test_pins_lifted_live_are_not_pending(make_guest: GuestFactory, host_caps: str) -> None:
    """pinning: none on a running guest: libvirt lists its vCPUs and I/O thread pinned to every host CPU."""
    guest, options, _pins = core_pins(host_caps, make_guest, "vlp-lifted", iothreads="per_cell")
    guest.start()
    everywhere = frozenset(parse_capabilities(host_caps).cpu_node)
    lifted = run_module({**options, "pinning": "none"})
    assert (lifted["changed"], lifted["restart_required"]) == (True, False)
    assert lifted["live"] == [
        *pinned({0: everywhere, 1: everywhere}),
        f"I/O thread 1 pinned to host CPUs {format_cpuset(everywhere)}",
    ]
    assert live_pins(live_xml(guest.conn, guest.name)) == {0: everywhere, 1: everywhere}
    assert thread_cpus(guest) == [everywhere, everywhere]
    assert pending(guest.name) == []
    again = run_module({**options, "pinning": "none"})
    assert (again["changed"], again["live"]) == (False, [])


def test_a_pin_another_client_set_live_is_pinned_again(make_guest: GuestFactory, host_caps: str) -> None:
    guest, options, pins = core_pins(host_caps, make_guest, "vlp-moved")
    options["pinning"] = "core"
    guest.start()
    # Another client: virsh vcpupin --live, vCPU 0 onto vCPU 1's host CPU.
    size = max(parse_capabilities(host_caps).cpu_node) + 1
    guest.dom.pinVcpuFlags(0, tuple(cpu in pins[1] for cpu in range(size)), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    assert thread_cpus(guest) == [pins[1], pins[1]]
    assert pending(guest.name) == [f"cputune/vcpupin[0]: '{format_cpuset(pins[1])}' -> '{format_cpuset(pins[0])}'"]

    before = live_xml(guest.conn, guest.name)
    plan = run_module(options, check_mode=True)
    assert (plan["changed"], plan["changes"], plan["restart_required"], plan["live"]) == (True, [], False, pinned(pins))
    assert live_xml(guest.conn, guest.name) == before, "check mode pinned a vCPU"
    applied = run_module(options)
    assert (applied["changed"], applied["changes"], applied["restart_required"]) == (True, [], False)
    assert applied["live"] == plan["live"]
    assert applied["guests"][0]["written"] == ["vCPU 0 pinned live", "vCPU 1 pinned live"]
    assert thread_cpus(guest) == [pins[0], pins[1]]
    assert pending(guest.name) == []
    assert run_module(options)["changed"] is False


def test_an_offline_vcpu_is_pinned_live_and_runs_there_once_online(make_guest: GuestFactory, host_caps: str) -> None:
    guest, options, pins = core_pins(host_caps, make_guest, "vlp-offline", current_vcpus=1)
    # Defined with the node's pins and vCPU 1 offline, then booted: pinning core comes while it runs.
    run_module({**options, "current_vcpus": 1, "pinning": "node"})
    guest.start()
    assert len(thread_cpus(guest)) == 1
    repinned = run_module({**options, "pinning": "core"})
    assert (repinned["changed"], repinned["restart_required"], repinned["live"]) == (True, False, pinned(pins))
    assert live_pins(live_xml(guest.conn, guest.name)) == pins
    assert pending(guest.name) == []
    assert run_module({**options, "pinning": "core"})["changed"] is False
    # Another client brings vCPU 1 online (virsh setvcpus --live): QEMU's new thread runs where it is pinned.
    guest.dom.setVcpusFlags(2, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    assert thread_cpus(guest) == [pins[0], pins[1]]
