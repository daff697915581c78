# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The migration hook under a real libvirtd: ``virsh save`` and ``virsh restore`` without ``--xml``, and a
plain ``virsh migrate --live`` between two libvirtds on this machine.

A private libvirtd (tests/support/private_libvirtd.py) has its own /etc/libvirt, so the hook is
installed into its hooks directory by ``vnuma_hook`` and never runs for the other tests' guests.
Guests are real TCG guests laid out by ``vnuma_domain``.

This machine has one NUMA node and two CPUs, so a move from another host is staged: the saved image's
definition is given a source host's bindings (memory on nodes 1 and 2, vCPUs on CPUs 6 and 7, none of
which exist here) with ``save-image-define``, which changes nothing the guest sees.  Without the hook
libvirt cannot restore that image; with it the restored guest runs on this host's node and CPUs, as
the hook planned.  The cross-host proof with live migration is the lab's (docs/lab.md).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._run import topology_cache
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_hook
from ansible_collections.vnuma.libvirt.tests.support.host_side import host_side
from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module
from ansible_collections.vnuma.libvirt.tests.support.private_libvirtd import PrivateLibvirtd, user_domain_xml

# Dedicates host CPUs: runs after the other integration tests, alone (make integration).
pytestmark = pytest.mark.host_cpus

SPEC = {"mode": "node", "nodeset": "0", "cells": 2, "pinning": "thread"}
STALE_CAPS = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "capabilities" / "seed-4node-ring.xml"
# How long libvirtd may take to act on SIGHUP (it rescans the hooks in a thread of its own).
RELOAD_DEADLINE = 60.0


@pytest.fixture
def daemon() -> Iterator[PrivateLibvirtd]:
    instance = PrivateLibvirtd("mig2")
    try:
        instance.start()
        yield instance
    finally:
        instance.close()


def virsh(daemon: PrivateLibvirtd, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-c", daemon.uri, *args], capture_output=True, text=True, timeout=300, check=False)


def guest_sees(xml: str) -> bytes:
    """The guest-visible topology: <vcpu>, <memory> and <cpu> (cells, distances, CPU topology)."""
    root = parse_xml(xml, "domain XML", root_tag="domain")
    return b"".join(etree.tostring(root.find(tag), method="c14n") for tag in ("vcpu", "memory", "cpu"))


def stage_source_bindings(conn: libvirt.virConnect, image: str) -> None:
    """Give the saved image another host's bindings: nodes 1 and 2, CPUs 6 and 7 (none exist here)."""
    xml = conn.saveImageGetXMLDesc(image, 0)
    xml = re.sub(r"(<memnode cellid='(\d)' mode='strict' nodeset=')[^']*'", lambda m: f"{m[1]}{int(m[2]) + 1}'", xml)
    xml = re.sub(r"(<memory mode='strict' nodeset=')[^']*'", r"\g<1>1-2'", xml)
    xml = re.sub(r"(<vcpupin vcpu='(\d)' cpuset=')[^']*'", lambda m: f"{m[1]}{int(m[2]) + 6}'", xml)
    conn.saveImageDefineXML(image, xml, 0)
    assert host_side(conn.saveImageGetXMLDesc(image, 0)) == ({0: {1}, 1: {2}}, {0: {6}, 1: {7}})


def lay_out(daemon: PrivateLibvirtd, conn: libvirt.virConnect, name: str) -> libvirt.virDomain:
    """A TCG guest with two cells and dedicated CPUs, laid out by vnuma_domain, started."""
    conn.defineXML(user_domain_xml(name, vcpus=2, memory_mib=128))
    result = run_module({"uri": daemon.uri, "guests": [name], **SPEC})
    assert result["changed"] is True, result
    domain = conn.lookupByName(name)
    domain.create()
    return domain


def thread_affinity(domain: libvirt.virDomain) -> dict[int, frozenset[int]]:
    """vCPU -> the host CPUs its QEMU thread may run on, as the kernel has it (not the XML)."""
    _info, maps = domain.vcpus()
    return {vcpu: frozenset(cpu for cpu, allowed in enumerate(cpumap) if allowed) for vcpu, cpumap in enumerate(maps)}


def test_virsh_restore_rebinds_through_the_hook_and_refuses_what_does_not_fit(
    daemon: PrivateLibvirtd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = libvirt.open(daemon.uri)
    try:
        installed = run_module(
            {
                "uri": daemon.uri,
                "hooks_dir": str(daemon.root / "etc" / "hooks"),  # /etc/libvirt/hooks inside its namespace
                "lib_dir": str(tmp_path / "lib"),
                "cache_path": str(tmp_path / "cache" / "host-capabilities.xml"),
            },
            module=vnuma_hook,
        )
        assert (installed["changed"], installed["reload_required"]) == (True, True)
        cache = tmp_path / "cache" / "host-capabilities.xml"
        assert cache.read_text() == conn.getCapabilities()
        # A vnuma_domain run on a local URI brings a stale cache up to date (the default path, pointed here).
        monkeypatch.setattr(topology_cache, "DEFAULT_CACHE_PATH", str(cache))
        cache.write_text(STALE_CAPS.read_text())

        moving = f"{daemon.guest_prefix()}-moving"
        domain = lay_out(daemon, conn, moving)
        assert cache.read_text() == conn.getCapabilities()
        here = host_side(domain.XMLDesc(0))
        seen = guest_sees(domain.XMLDesc(0))
        image = str(tmp_path / "moving.save")
        assert virsh(daemon, "save", moving, image).returncode == 0
        stage_source_bindings(conn, image)

        # libvirtd has not seen the hook yet (reload_required): the image's bindings cannot work here.
        before = virsh(daemon, "restore", image)
        assert before.returncode != 0
        assert "NUMA node 1 is unavailable" in before.stderr

        os.kill(daemon.pid, signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_DEADLINE
        while True:
            restored = virsh(daemon, "restore", image)
            if restored.returncode == 0 or "NUMA node 1 is unavailable" not in restored.stderr:
                break
            assert time.monotonic() < deadline, f"libvirtd did not pick the hook up after SIGHUP: {restored.stderr}"
            time.sleep(0.5)
        assert restored.returncode == 0, restored.stderr
        domain = conn.lookupByName(moving)
        live = domain.XMLDesc(0)
        # The hook's plan for this host: both cells on node 0, one dedicated host CPU per vCPU.
        assert host_side(live) == here
        memnodes, pins = host_side(live)
        assert set(memnodes.values()) == {frozenset({0})}
        assert sorted(min(cpus) for cpus in pins.values()) == [0, 1]
        assert thread_affinity(domain) == pins
        assert guest_sees(live) == seen

        # A guest that cannot fit is refused, and nothing changes: a guest pinned by hand, started since,
        # holds both CPUs (libvirt's status file of a running guest is where the hook sees it).
        assert virsh(daemon, "save", moving, image).returncode == 0
        holder_xml = user_domain_xml(f"{daemon.guest_prefix()}-holder", vcpus=2, memory_mib=64).replace(
            "<vcpu>2</vcpu>",
            "<vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/></cputune>",
        )
        holder = conn.defineXML(holder_xml)
        holder.create()
        refused = virsh(daemon, "restore", image)
        assert refused.returncode != 0
        assert "vnuma.libvirt hook: restore refused: guest " + moving in refused.stderr, refused.stderr
        assert "0 free host threads for pinning thread" in refused.stderr, refused.stderr
        assert holder.isActive() and host_side(holder.XMLDesc(0))[1] == {0: {0}, 1: {1}}
        assert not conn.lookupByName(moving).isActive()
        holder.destroy()
        assert virsh(daemon, "restore", image).returncode == 0
        assert host_side(conn.lookupByName(moving).XMLDesc(0)) == here

        # A guest without a spec passes through: restored as it was saved.
        plain = f"{daemon.guest_prefix()}-plain"
        conn.defineXML(user_domain_xml(plain, vcpus=2, memory_mib=64)).create()
        plain_before = conn.lookupByName(plain).XMLDesc(0)
        plain_image = str(tmp_path / "plain.save")
        assert virsh(daemon, "save", plain, plain_image).returncode == 0
        assert virsh(daemon, "restore", plain_image).returncode == 0
        plain_after = conn.lookupByName(plain).XMLDesc(0)
        assert host_side(plain_after) == host_side(plain_before) == ({}, {})
        assert guest_sees(plain_after) == guest_sees(plain_before)
    finally:
        conn.close()


def test_virsh_migrate_live_rebinds_on_the_destination(tmp_path: Path) -> None:
    """A plain ``virsh migrate --live`` between two libvirtds: the destination's hook plans the pins again.

    The source's vCPU pins are swapped live first (vCPU 0 on CPU 1, vCPU 1 on CPU 0), so the XML that
    arrives is not the plan; on the destination the guest runs with the hook's plan.
    """
    source, destination = PrivateLibvirtd("mig2"), PrivateLibvirtd("mig2")
    src = dst = None
    try:
        source.start()
        destination.start()
        # Two daemons on one machine: libvirt refuses to migrate between hosts with the same UUID.
        with open(destination.root / "etc" / "libvirtd.conf", "a", encoding="utf-8") as conf:
            conf.write(f'host_uuid = "{uuid.uuid4()}"\n')
        installed = run_module(
            {
                "uri": destination.uri,
                "hooks_dir": str(destination.root / "etc" / "hooks"),
                "lib_dir": str(tmp_path / "lib"),
                "cache_path": str(tmp_path / "cache" / "host-capabilities.xml"),
            },
            module=vnuma_hook,
        )
        assert installed["reload_required"] is True
        destination.restart()  # reads host_uuid, and finds the hook
        src, dst = libvirt.open(source.uri), libvirt.open(destination.uri)
        # libvirt names a guest's cgroup after its id and name, and both daemons count ids from 1: a guest
        # started and stopped on the destination first keeps the two QEMU processes' cgroups apart.
        spacer = dst.defineXML(user_domain_xml(f"{destination.guest_prefix()}-spacer", vcpus=1, memory_mib=64))
        spacer.create()
        spacer.destroy()

        moving = f"{source.guest_prefix()}-moving"
        domain = lay_out(source, src, moving)
        planned = host_side(domain.XMLDesc(0))
        assert planned[1] == {0: {0}, 1: {1}}
        for vcpu, cpu in ((0, "1"), (1, "0")):
            assert virsh(source, "vcpupin", moving, str(vcpu), cpu, "--live").returncode == 0
        assert host_side(domain.XMLDesc(0))[1] == {0: {1}, 1: {0}}
        seen = guest_sees(domain.XMLDesc(0))

        moved = virsh(source, "migrate", "--live", moving, destination.uri, "--migrateuri", "tcp://127.0.0.1")
        assert moved.returncode == 0, moved.stderr
        arrived = dst.lookupByName(moving)
        live = arrived.XMLDesc(0)
        assert host_side(live) == planned
        assert thread_affinity(arrived) == planned[1]
        assert guest_sees(live) == seen
    finally:
        for conn in (src, dst):
            if conn is not None:
                conn.close()
        # The destination first: the moved guest's cgroup carries the source's name, which removes it.
        destination.close()
        source.close()
