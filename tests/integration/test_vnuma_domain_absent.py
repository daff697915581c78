# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``state: absent`` on a real libvirtd is the inverse of apply (issue 8, item 7).

Guests of several shapes, hand-written NUMA guests among them, are defined at qemu:///system (not
started: only definitions are compared), applied for the 4-node ring host, then made absent: the
owned parts must be the original definition's, compared as canonical XML (c14n), and everything
the collection does not own must be untouched.  The QEMU driver rewrites what it is given
(``<memory>`` from the cells, the machine type), so the original is the definition as libvirt
printed it after the first define.
"""

from __future__ import annotations

from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import ORIGINAL_NS, OWNED_PARTS, VNUMA_NS
from ansible_collections.vnuma.libvirt.tests.integration.vnuma_domain_support import (
    CAPABILITIES,
    RING,
    domain_root,
    inactive_xml,
)
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import GuestFactory

# Dedicates host CPUs: runs after the other integration tests, alone (make integration).
pytestmark = pytest.mark.host_cpus

SMT2 = str(CAPABILITIES / "intel-2s-smt2.xml")
RECORD = f"metadata/{{{ORIGINAL_NS}}}original"
SPEC = f"metadata/{{{VNUMA_NS}}}vnuma"

HAND_NUMA_CPU = """<cpu mode='maximum' check='none'>
    <topology sockets='2' dies='1' cores='2' threads='1'/>
    <numa>
      <cell id='0' cpus='0-1' memory='256' unit='MiB'>
        <distances><sibling id='0' value='10'/><sibling id='1' value='20'/></distances>
      </cell>
      <cell id='1' cpus='2-3' memory='256' unit='MiB'>
        <distances><sibling id='0' value='20'/><sibling id='1' value='10'/></distances>
      </cell>
    </numa>
  </cpu>"""
HAND_NUMA_TUNING = """<cputune>
    <shares>2048</shares>
    <vcpupin vcpu='0' cpuset='0'/>
    <vcpupin vcpu='1' cpuset='0'/>
    <vcpupin vcpu='2' cpuset='1'/>
    <vcpupin vcpu='3' cpuset='1'/>
    <emulatorpin cpuset='0-1'/>
  </cputune>
  <numatune>
    <memory mode='strict' nodeset='0'/>
    <memnode cellid='0' mode='strict' nodeset='0'/>
    <memnode cellid='1' mode='preferred' nodeset='0'/>
  </numatune>"""
HMAT_CPU = """<cpu mode='maximum' check='none'>
    <numa>
      <cell id='0' cpus='0-1' memory='256' unit='MiB'>
        <cache level='1' associativity='direct' policy='writeback'>
          <size value='10' unit='KiB'/>
          <line value='8' unit='B'/>
        </cache>
      </cell>
      <cell id='1' cpus='2-3' memory='256' unit='MiB'/>
      <interconnects>
        <latency initiator='0' target='1' type='access' value='5'/>
        <bandwidth initiator='0' target='0' type='access' value='204800' unit='KiB'/>
      </interconnects>
    </numa>
  </cpu>"""

# id: make_guest keyword arguments, apply options.
SHAPES = [
    pytest.param({}, {"current_vcpus": 2}, id="flat"),
    pytest.param({"current_vcpus": 3}, {}, id="vcpu-current"),
    pytest.param(
        {"cpu_xml": "<cpu mode='maximum' check='none'><topology sockets='1' dies='1' cores='2' threads='2'/></cpu>"},
        {"distribution": "siblings"},
        id="topology",
    ),
    pytest.param(
        {"extra_xml": "<cputune><shares>512</shares><emulatorpin cpuset='1'/></cputune>"},
        {"emulator_pin": "nodes", "pinning": "core"},
        id="emulatorpin",
    ),
    pytest.param(
        {"cpu_xml": HAND_NUMA_CPU, "extra_xml": HAND_NUMA_TUNING, "current_vcpus": 3},
        {"mode": "node", "cells": 4, "distribution": "interleave"},
        id="hand-numa-distances-numatune-pins",
    ),
    pytest.param({"cpu_xml": HMAT_CPU}, {"mode": "node", "nodeset": "0-1"}, id="hand-numa-hmat"),
    pytest.param(
        {"extra_xml": "<memoryBacking><nosharepages/></memoryBacking>"},
        {"host_capabilities": SMT2, "hugepages": "2 MiB", "max_memory": "2 GiB", "memory_slots": 2},
        id="hugepages-max-memory",
    ),
    pytest.param(
        {"extra_xml": "<maxMemory slots='2' unit='MiB'>2048</maxMemory>", "cpu_xml": HAND_NUMA_CPU},
        {"memory": "1 GiB"},
        id="hand-numa-max-memory-resized",
    ),
]


def owned_c14n(root: Any) -> dict[str, list[bytes]]:
    """The owned parts of a definition as canonical XML, by path; containers by presence."""
    parts: dict[str, list[bytes]] = {}
    for container, tag in OWNED_PARTS:
        parent = root if container is None else root.find(container)
        path = tag if container is None else f"{container}/{tag}"
        found = [] if parent is None else list(parent.iterchildren(tag))
        parts[path] = [etree.tostring(element, method="c14n", with_tail=False) for element in found]
    return parts


def not_owned(root: Any) -> bytes:
    """The definition without its owned parts and the collection's metadata, as canonical XML."""
    copy = etree.fromstring(etree.tostring(root))
    for container, tag in OWNED_PARTS:
        parent = copy if container is None else copy.find(container)
        for element in [] if parent is None else list(parent.iterchildren(tag)):
            parent.remove(element)
    for path in (RECORD, SPEC):
        element = copy.find(path)
        if element is not None:
            element.getparent().remove(element)
    for element in copy.iter():
        if len(element) and element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    return etree.tostring(copy, method="c14n")


@pytest.mark.parametrize(("guest_options", "options"), SHAPES)
def test_apply_then_absent_restores_the_definition(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, guest_options: dict[str, Any], options: dict[str, Any]
) -> None:
    guest = make_guest("vit-absent", vcpus=4, memory_mib=512, start=False, **guest_options)
    original = inactive_xml(qemu_conn, guest.name)
    applied = run_module({"name": guest.name, "host_capabilities": RING, **options})
    assert applied["changed"] is True
    converged = domain_root(inactive_xml(qemu_conn, guest.name))
    assert converged.find(RECORD) is not None and converged.find(SPEC) is not None
    assert owned_c14n(converged) != owned_c14n(domain_root(original))

    absent = run_module({"name": guest.name, "state": "absent"})
    assert absent["changed"] is True
    assert [text for text in absent.get("warnings", []) if "before the collection" in text] == []
    restored = domain_root(inactive_xml(qemu_conn, guest.name))
    assert owned_c14n(restored) == owned_c14n(domain_root(original))
    assert not_owned(restored) == not_owned(domain_root(original))
    assert restored.find(RECORD) is None and restored.find(SPEC) is None
    # The harness's own metadata is not the collection's: it stays.
    assert restored.find("metadata/{urn:vnuma:libvirt:integration-test}owner") is not None
    # And as libvirt prints it: the very definition the guest had.
    assert inactive_xml(qemu_conn, guest.name) == original
    # Nothing of the collection's is left: absent again changes nothing.
    assert run_module({"name": guest.name, "state": "absent"})["changed"] is False
    assert inactive_xml(qemu_conn, guest.name) == original


def test_the_record_survives_libvirt(make_guest: GuestFactory, qemu_conn: libvirt.virConnect) -> None:
    """libvirt keeps one <metadata> child per namespace: the record has its own, next to the spec's."""
    guest = make_guest("vit-absent-record", vcpus=4, memory_mib=512, current_vcpus=2, start=False)
    run_module({"name": guest.name, "host_capabilities": RING})
    dom = qemu_conn.lookupByName(guest.name)
    record = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, ORIGINAL_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert '<vcpu placement="static" current="2">4</vcpu>' in record.replace("vnuma-original:", "")
    spec = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, VNUMA_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert 'mode="host"' in spec


def test_a_vcpu_count_set_by_hand_stays(make_guest: GuestFactory, qemu_conn: libvirt.virConnect) -> None:
    """``virsh setvcpus --config`` after apply: absent keeps it, and puts back the rest."""
    guest = make_guest("vit-absent-hand", vcpus=4, memory_mib=512, current_vcpus=2, start=False)
    original = domain_root(inactive_xml(qemu_conn, guest.name))
    run_module({"name": guest.name, "host_capabilities": RING})
    qemu_conn.lookupByName(guest.name).setVcpusFlags(3, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    run_module({"name": guest.name, "state": "absent"})
    restored = domain_root(inactive_xml(qemu_conn, guest.name))
    assert restored.find("vcpu").get("current") == "3"
    assert restored.find("vcpus") is None
    mine, theirs = owned_c14n(restored), owned_c14n(original)
    assert {key: value for key, value in mine.items() if key != "vcpu"} == {
        key: value for key, value in theirs.items() if key != "vcpu"
    }


def test_a_corrupt_stored_spec_is_repaired_by_absent(make_guest: GuestFactory, qemu_conn: libvirt.virConnect) -> None:
    guest = make_guest("vit-absent-corrupt", vcpus=4, memory_mib=512, current_vcpus=2, start=False)
    original = inactive_xml(qemu_conn, guest.name)
    run_module({"name": guest.name, "host_capabilities": RING})
    dom = qemu_conn.lookupByName(guest.name)
    dom.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        "<vnuma mode='bogus'/>",
        "vnuma",
        VNUMA_NS,
        libvirt.VIR_DOMAIN_AFFECT_CONFIG,
    )
    assert run_module({"name": guest.name, "state": "absent"})["changed"] is True
    assert inactive_xml(qemu_conn, guest.name) == original


def test_dimms_the_guest_had_no_cells_for_refuse_absent(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect
) -> None:
    guest = make_guest("vit-absent-dimm", vcpus=4, memory_mib=512, start=False)
    run_module({"name": guest.name, "host_capabilities": RING, "max_memory": "2 GiB", "memory_slots": 2})
    dom = qemu_conn.lookupByName(guest.name)
    dom.attachDeviceFlags(
        "<memory model='dimm'><target><size unit='MiB'>128</size><node>1</node></target></memory>",
        libvirt.VIR_DOMAIN_AFFECT_CONFIG,
    )
    before = inactive_xml(qemu_conn, guest.name)
    result = fail_module({"name": guest.name, "state": "absent"})
    assert result["msg"] == (
        f"guest {guest.name}: has 1 hot-plugged memory device(s), which need NUMA cells; "
        "detach them before removing the layout"
    )
    assert inactive_xml(qemu_conn, guest.name) == before


def test_without_the_record_absent_only_removes_the_layout(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect
) -> None:
    """The documented way to skip the record (``virsh metadata NAME URI --config --remove``), then absent."""
    guest = make_guest("vit-absent-norecord", vcpus=4, memory_mib=512, current_vcpus=3, start=False)
    run_module({"name": guest.name, "host_capabilities": RING, "emulator_pin": "nodes"})
    dom = qemu_conn.lookupByName(guest.name)
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, ORIGINAL_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    converged = domain_root(inactive_xml(qemu_conn, guest.name))
    assert converged.find(RECORD) is None
    result = run_module({"name": guest.name, "state": "absent"})
    assert result["changed"] is True
    flat = domain_root(inactive_xml(qemu_conn, guest.name))
    for path in ("cpu/numa", "numatune", "cputune/vcpupin", "vcpus", SPEC):
        assert flat.find(path) is None, path
    # Kept as the layout left them: the sizes, current, the topology and the emulator pin.
    assert flat.find("vcpu").get("current") == "3"
    for path in ("cpu/topology", "cputune/emulatorpin", "memory", "currentMemory"):
        assert etree.tostring(flat.find(path), method="c14n") == etree.tostring(converged.find(path), method="c14n")
