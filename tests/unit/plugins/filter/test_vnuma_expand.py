# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from lxml import etree

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_expand import FilterModule, vnuma_expand
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_layout import vnuma_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import expand as source

CAPABILITIES = Path(__file__).parents[2] / "fixtures" / "capabilities"
RING = (CAPABILITIES / "seed-4node-ring.xml").read_text()
SMT2 = (CAPABILITIES / "intel-2s-smt2.xml").read_text()
VNUMA_NS = "urn:vnuma:libvirt:1.0"

TEMPLATE = """<domain type='qemu'>
  <name>db01</name>
  <memory unit='GiB'>8</memory>
  <vcpu>8</vcpu>
  {vnuma}
  <os>
    <type arch='x86_64'>hvm</type>
  </os>
  <devices>
    <!-- left alone -->
    <console type='pty'/>
  </devices>
</domain>
"""
NODE_SPEC = "<vnuma mode='node' distribution='interleave'><partition nodeset='0-1' cells='2'/></vnuma>"


def domain(vnuma: str = NODE_SPEC) -> str:
    return TEMPLATE.format(vnuma=vnuma)


def cells(xml: str) -> list[tuple[str, str, str]]:
    root = etree.fromstring(xml.encode())
    return [(cell.get("id"), cell.get("cpus"), cell.get("memory")) for cell in root.iterfind("cpu/numa/cell")]


def fail_text(call: Any) -> str:
    with pytest.raises(AnsibleFilterError) as caught:
        call()
    return str(caught.value)


def test_filter_module_exposes_the_filter() -> None:
    assert FilterModule().filters() == {"vnuma_expand": vnuma_expand}


def test_expands_the_vnuma_element() -> None:
    xml = vnuma_expand(domain(), RING)
    root = etree.fromstring(xml.encode())
    assert root.find("vnuma") is None
    stored = root.find(f"metadata/{{{VNUMA_NS}}}vnuma")
    assert stored is not None
    assert (stored.get("mode"), stored.get("distribution")) == ("node", "interleave")
    assert cells(xml) == [("0", "0,2,4,6", "4194304"), ("1", "1,3,5,7", "4194304")]
    assert [memnode.get("nodeset") for memnode in root.iterfind("numatune/memnode")] == ["0", "1"]
    # Everything the collection does not own stays.
    assert root.find("os/type").text == "hvm"
    assert "<!-- left alone -->" in xml
    assert root.find("devices/console").get("type") == "pty"


def test_matches_the_layout() -> None:
    xml = vnuma_expand(domain(), RING)
    spec = {"mode": "node", "distribution": "interleave", "nodeset": "0-1", "cells": 2}
    layout = vnuma_layout(RING, spec, vcpus=8, memory="8 GiB")
    assert [cpus for _id, cpus, _memory in cells(xml)] == [cell["vcpus"] for cell in layout["cells"]]
    root = etree.fromstring(xml.encode())
    pins = {pin.get("vcpu"): pin.get("cpuset") for pin in root.iterfind("cputune/vcpupin")}
    assert pins == layout["vcpupin"]


def test_expanding_twice_gives_the_same_document() -> None:
    once = vnuma_expand(domain(), RING)
    assert vnuma_expand(once, RING) == once


def test_stored_spec_is_rendered_for_another_host() -> None:
    mirror = vnuma_expand(domain("<vnuma mode='host'/>"), RING)
    assert len(cells(mirror)) == 4
    moved = vnuma_expand(mirror, SMT2)
    assert cells(moved) == [("0", "0-3", "4194304"), ("1", "4-7", "4194304")]


@pytest.mark.parametrize(
    "xml",
    [
        domain(""),
        "<domain type='kvm'><name>plain</name><vcpu>2</vcpu></domain>",
        "<?xml version='1.0'?>\n<!-- c -->\n<domain>  <name>a</name>\n</domain>\n\n",
    ],
)
def test_domain_without_a_spec_is_unchanged(xml: str) -> None:
    assert vnuma_expand(xml, RING) == xml


@pytest.mark.parametrize(
    ("taken", "pin_of_vcpu_0"),
    [({0: "web01"}, "1"), ({"0-1": "web01"}, "2"), ([0, 1], "2"), ("1", "0"), ("0", "1"), (None, "0")],
)
def test_taken_cpus(taken: Any, pin_of_vcpu_0: str) -> None:
    xml = vnuma_expand(domain("<vnuma pinning='core'/>"), RING, taken_cpus=taken)
    root = etree.fromstring(xml.encode())
    assert root.find("cputune/vcpupin[@vcpu='0']").get("cpuset") == pin_of_vcpu_0


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (
            domain("<vnuma distribution='bogus'/>"),
            "guest db01: <vnuma>: distribution 'bogus' is not one of contiguous, siblings, round-robin, interleave",
        ),
        (
            domain("<vnuma mode='node'><partition nodeset='0-9'/></vnuma>"),
            "guest db01: nodeset '0-9' names host nodes 4-9, which the host does not have (it has nodes 0-3)",
        ),
        (
            domain("<vnuma><memory unit='GiB'>64</memory></vnuma>"),
            "guest db01: guest cell 0 needs 16 GiB, host node 0 has 8 GiB",
        ),
        (
            domain("<vnuma speed='fast'/>"),
            "guest db01: <vnuma>: unknown attribute(s) speed; known: mode, distribution, pinning, memory_mode, "
            "memory_split, emulator_pin, cpuless_cells, memory_device, hmat, pci_numa_affinity, device_locality, "
            "emulator_threads, iothreads",
        ),
    ],
)
def test_errors_name_the_guest(xml: str, message: str) -> None:
    assert fail_text(lambda: vnuma_expand(xml, RING)) == f"vnuma.libvirt.vnuma_expand: {message}"


def test_dedicated_cpus_of_other_guests() -> None:
    message = fail_text(lambda: vnuma_expand(domain("<vnuma pinning='core'/>"), RING, taken_cpus={"0-3": "web01"}))
    assert message == (
        "vnuma.libvirt.vnuma_expand: guest db01: pinning core needs 2 free host cores for guest cell 0 on host node 0, "
        "0 are free (others are dedicated to web01)"
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((None, RING), {}, "the input (domain XML) must be a string of XML, got None"),
        ((5, RING), {}, "the input (domain XML) must be a string of XML, got int"),
        ((domain(),), {}, "capabilities (host capabilities XML) must be a string of XML, got None"),
        ((domain(), ["<capabilities/>"]), {}, "capabilities (host capabilities XML) must be a string of XML, got list"),
        (
            (domain(), RING),
            {"taken_cpus": 1.5},
            "taken_cpus must be a dict of CPU id to guest name, a list of CPU ids or a cpuset string, got float",
        ),
        ((domain(), RING), {"taken_cpus": {True: "web01"}}, "taken_cpus must hold CPU ids (integers), got bool True"),
        ((domain(), RING), {"taken_cpus": "^"}, "taken_cpus '^': '' is not a non-negative integer"),
    ],
)
def test_bad_inputs(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    assert fail_text(lambda: vnuma_expand(*args, **kwargs)) == f"vnuma.libvirt.vnuma_expand: {message}"


@pytest.mark.parametrize("xml", ["<domain>", "<network/>"])
def test_not_a_domain(xml: str) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        vnuma_expand(xml, RING)
    assert str(caught.value).startswith("vnuma.libvirt.vnuma_expand: domain XML ")
    assert isinstance(caught.value.__cause__, XmlError)


def test_error_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise PlacementError("no room", guest="db02")

    # The filter imports it when called (plugin_utils/_filter_glue.py, "Imports"): patched where it lives.
    monkeypatch.setattr(source, "expand_domain", refuse)
    with pytest.raises(AnsibleFilterError) as caught:
        vnuma_expand(domain(), RING)
    assert str(caught.value) == "vnuma.libvirt.vnuma_expand: guest db02: no room"
    assert isinstance(caught.value.__cause__, PlacementError)


def test_spec_error_is_chained() -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        vnuma_expand(domain("<vnuma mode='nodes'/>"), RING)
    assert isinstance(caught.value.__cause__, SpecError)


def test_everything_else_in_the_document_stays_as_it_was() -> None:
    """The filter's promise, on what it broke: the root's namespace declaration moved first, CDATA came back
    escaped, a comment inside <vcpu> made it read 1 vCPU, CRLF became LF, and the epilog after
    ``</domain >`` was dropped."""
    template = (
        "<?xml version='1.0'?>\r\n"
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\r\n"
        "  <name>db01</name>\r\n"
        '  <description><![CDATA[<b class="hot">tier</b> & more]]></description>\r\n'
        "  <memory unit='GiB'>8</memory>\r\n"
        "  <vcpu>1<!-- sized by the DBA team -->6</vcpu>\r\n"
        "  <vnuma mode='host'/>\r\n"
        "  <qemu:commandline>\r\n"
        "    <qemu:arg value='-x'/>\r\n"
        "  </qemu:commandline>\r\n"
        "</domain >\r\n"
        "<!-- was </domain> -->\r\n"
    )
    expanded = vnuma_expand(template, RING)
    assert expanded.startswith(
        "<?xml version='1.0'?>\r\n"
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\r\n"
        "  <name>db01</name>\r\n"
        '  <description><![CDATA[<b class="hot">tier</b> & more]]></description>\r\n'
    )
    assert "\r\n  <vcpu>1<!-- sized by the DBA team -->6</vcpu>\r\n" in expanded
    assert expanded.count("<vcpupin ") == 16
    assert expanded.count("\n") == expanded.count("\r\n")
    assert expanded.endswith(
        "  <qemu:commandline>\r\n    <qemu:arg value='-x'/>\r\n  </qemu:commandline>\r\n</domain >\r\n"
        "<!-- was </domain> -->\r\n"
    )
