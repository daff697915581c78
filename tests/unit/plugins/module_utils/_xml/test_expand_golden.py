# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Golden tests of domain expansion: ``fixtures/domains/<case>-in.xml`` expanded for a host fixture must give
``<case>-out.xml`` exactly; ``pytest --regenerate-output`` rewrites the out files from the current results.

Every golden output must also be a fixed point of expansion, and be accepted by libvirt's own parser (the
test driver, ``VIR_DOMAIN_DEFINE_VALIDATE``) with the owned parts reading back unchanged.  That last test
fails without libvirt-python unless ``VNUMA_ALLOW_NO_LIBVIRT=1`` is set for a quick local run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import read_stored_spec

try:
    import libvirt
except ImportError:
    libvirt = None

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
DOMAINS = FIXTURES / "domains"
CAPABILITIES = FIXTURES / "capabilities"

# case -> host capabilities fixture it is expanded for.
CASES = {
    "host-ring-contiguous": "seed-4node-ring",
    "host-ring-round-robin": "seed-4node-ring",
    "host-ring-interleave": "seed-4node-ring",
    "host-smt2-siblings": "intel-2s-smt2",
    "node-ring-nodeset-exclusion": "seed-4node-ring",
    "node-ring-more-cells": "seed-4node-ring",
    "node-ring-fewer-cells": "seed-4node-ring",
    "node-cxl-cpuless-cell": "intel-snc2-cxl",
    "smt2-core-pinning": "intel-2s-smt2",
    "smt2-thread-pinning": "intel-2s-smt2",
    "smt2-hugepages": "intel-2s-smt2",
    "smt2-current-vcpus": "intel-2s-smt2",
    "ring-memory-hotplug": "seed-4node-ring",
    "ring-preserve-user-parts": "seed-4node-ring",
    # The document as written: the root's start tag (its namespace declaration where it was), CDATA
    # sections (quotes and markup in them as they were), comments in value elements (the values read
    # as libvirt reads them, 16 GiB and 16 vCPUs; the comments kept after the values written), a
    # closing tag with a blank, and a trailing comment holding "</domain>".
    "ring-document-as-written": "seed-4node-ring",
    # virtio-mem cells: the user's DIMM stays, the collection's device of cell 0 keeps its requested size
    # and PCI address, the one of a cell the layout no longer has goes.
    "ring-virtio-mem": "seed-4node-ring",
    # A domain as libvirt itself prints it after an earlier expansion: the spec is in <metadata>.
    "ring-already-expanded": "seed-4node-ring",
    # HMAT: the host's figures and caches on CXL nodes; figures derived from the lab's distances.
    "cxl-hmat-host": "cxl-hmat-cache",
    "lab4-hmat-synthesize": "lab4-hmat",
    # PCI locality: an expander bus per cell near its devices (q35: a root port per device; i440fx: none);
    # the user's root ports, bridges and the addresses of devices not moved stay.
    "pci-q35": "seed-4node-ring",
    "pci-i440fx": "seed-4node-ring",
    # I/O threads per cell, each pinned to its cell's vCPUs' host CPUs, the disks on their cells' threads
    # (vdb behind cell 1's expander bus); the user's I/O thread and its pin replaced, <shares> and the
    # disks' other <driver> attributes kept; the emulator on one more dedicated thread of node 0.
    "iothreads-q35": "intel-2s-smt2",
}


def _host(name: str) -> str:
    return (CAPABILITIES / f"{name}.xml").read_text(encoding="utf-8")


def _input(case: str) -> str:
    return (DOMAINS / f"{case}-in.xml").read_text(encoding="utf-8")


def _expected_path(case: str) -> Path:
    return DOMAINS / f"{case}-out.xml"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, regenerate_output: bool) -> None:
    result = expand_domain(_input(case), _host(CASES[case]))
    assert result.layout is not None
    expected_path = _expected_path(case)
    if regenerate_output:
        expected_path.write_text(result.xml, encoding="utf-8")
        return
    if not expected_path.exists():
        pytest.fail(f"{expected_path.name} is missing; run pytest with --regenerate-output and review it")
    assert result.xml == expected_path.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_output_expands_to_itself(case: str) -> None:
    expected_path = _expected_path(case)
    if not expected_path.exists():
        pytest.fail(f"{expected_path.name} is missing; run pytest with --regenerate-output and review it")
    text = expected_path.read_text(encoding="utf-8")
    again = expand_domain(text, _host(CASES[case]))
    assert again.spec_source == "metadata"
    assert again.changes == []
    assert again.xml == text


def test_already_expanded_domain_has_no_changes() -> None:
    result = expand_domain(_input("ring-already-expanded"), _host("seed-4node-ring"))
    assert result.spec_source == "metadata"
    assert result.changes == []
    assert result.xml == _input("ring-already-expanded")


def test_element_spec_is_stored_in_metadata() -> None:
    result = expand_domain(_input("node-ring-nodeset-exclusion"), _host("seed-4node-ring"))
    assert result.spec_source == "element"
    root = parse_xml(result.xml, "expanded")
    assert root.find("vnuma") is None
    stored = read_stored_spec(root)
    assert stored is not None
    assert stored.mode == "node"
    assert stored.nodeset == "0-1,3"
    assert stored.memory_kib == 3 * 1024 * 1024


def test_host_may_be_a_parsed_topology() -> None:
    text = _input("host-ring-contiguous")
    from_text = expand_domain(text, _host("seed-4node-ring"))
    from_model = expand_domain(text, parse_capabilities(_host("seed-4node-ring")))
    assert from_text == from_model


def test_domain_without_spec_is_returned_unchanged() -> None:
    text = "<domain type='kvm'>\n  <name>plain</name>\n  <memory>1048576</memory>\n  <vcpu>2</vcpu>\n</domain>\n"
    result = expand_domain(text, _host("seed-4node-ring"))
    assert result.xml is text
    assert result.layout is None
    assert result.spec_source is None
    assert result.changes == []


def test_prolog_and_epilog_are_kept() -> None:
    text = (
        "<?xml version='1.0' encoding='UTF-8'?>\n<!-- template for g1 -->\n"
        "<domain type='kvm'>\n  <name>g1</name>\n  <memory unit='GiB'>2</memory>\n  <vcpu>4</vcpu>\n"
        "  <vnuma/>\n</domain>\n<!-- end -->\n"
    )
    result = expand_domain(text, _host("seed-4node-ring"))
    assert result.xml.startswith("<?xml version='1.0' encoding='UTF-8'?>\n<!-- template for g1 -->\n<domain")
    assert result.xml.endswith("</domain>\n<!-- end -->\n")


# -- the document as written: what the collection does not own stays as it was ----------------------------------

TEMPLATE = (
    "<domain type='kvm'{root_extra}>\n  <name>g1</name>\n{before}  <memory unit='GiB'>2</memory>\n"
    "  <vcpu>4</vcpu>\n  <vnuma/>\n{after}</domain>\n"
)


def template(root_extra: str = "", before: str = "", after: str = "") -> str:
    return TEMPLATE.format(root_extra=root_extra, before=before, after=after)


@pytest.mark.parametrize(
    "start_tag",
    [
        "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>",
        "<domain xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\"\n        type='kvm' id='7'>",
        "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' >",
    ],
)
def test_the_root_start_tag_stays_as_written(start_tag: str) -> None:
    """Used to come out as <domain xmlns:qemu='...' type='kvm'>: lxml writes namespace declarations first."""
    text = template(after="  <qemu:commandline>\n    <qemu:arg value='-x'/>\n  </qemu:commandline>\n").replace(
        "<domain type='kvm'>", start_tag
    )
    result = expand_domain(text, _host("seed-4node-ring"))
    assert result.xml.startswith(start_tag + "\n  <name>g1</name>\n")
    assert "  <qemu:commandline>\n    <qemu:arg value='-x'/>\n  </qemu:commandline>\n</domain>\n" in result.xml
    assert expand_domain(result.xml, _host("seed-4node-ring")).xml == result.xml


_OTHER_TOOL = '<app:x xmlns:app=\'urn:app\'><![CDATA[<q a="1"/> -->"<!--]]></app:x>'


@pytest.mark.parametrize(
    ("section", "kept"),
    [
        (
            '<description><![CDATA[a <b class="x">x</b> & "y"]]></description>',
            '\n  <description><![CDATA[a <b class="x">x</b> & "y"]]></description>\n',
        ),
        (f"<metadata>\n    {_OTHER_TOOL}\n  </metadata>", f"\n  <metadata>\n    {_OTHER_TOOL}\n    <vnuma:vnuma "),
        (
            '<description><![CDATA[it\'s "quoted"]]><!-- a="b" --><![CDATA[<?x y="z"?>]]></description>',
            '\n  <description><![CDATA[it\'s "quoted"]]><!-- a="b" --><![CDATA[<?x y="z"?>]]></description>\n',
        ),
    ],
)
def test_cdata_sections_stay_as_written(section: str, kept: str) -> None:
    """Used to come out as escaped text, and the quote style was then turned inside them."""
    result = expand_domain(template(before=f"  {section}\n"), _host("seed-4node-ring"))
    assert kept in result.xml
    assert expand_domain(result.xml, _host("seed-4node-ring")).xml == result.xml


def test_crlf_line_breaks_stay() -> None:
    """Used to give LF line breaks in the body and CRLF in the prolog and epilog."""
    text = ("<?xml version='1.0'?>\n<!-- t -->\n" + template(before="  <description>a\nb</description>\n")).replace(
        "\n", "\r\n"
    ) + "<!-- end -->\r\n"
    result = expand_domain(text, _host("seed-4node-ring"))
    assert result.xml.count("\n") == result.xml.count("\r\n") > 20
    assert result.xml.startswith("<?xml version='1.0'?>\r\n<!-- t -->\r\n<domain type='kvm'>\r\n  <name>g1</name>\r\n")
    assert "  <description>a\r\nb</description>\r\n" in result.xml
    assert result.xml.endswith("</domain>\r\n<!-- end -->\r\n")
    assert expand_domain(result.xml, _host("seed-4node-ring")).xml == result.xml


def test_mixed_line_breaks_are_written_as_lf() -> None:
    text = template().replace("\n", "\r\n", 1)
    result = expand_domain(text, _host("seed-4node-ring"))
    assert "\r" not in result.xml.split("<name>", 1)[1]


@pytest.mark.parametrize(
    ("closing", "epilog"),
    [
        pytest.param("</domain>", "\n<!-- end -->\n", id="plain"),
        pytest.param("</domain >", "\n<!-- end -->\n", id="blank-in-the-closing-tag"),
        pytest.param("</domain\n>", "\n", id="line-break-in-the-closing-tag"),
        pytest.param("</domain>", "\n<!-- it ended at </domain> -->\n", id="closing-tag-in-a-comment"),
        pytest.param("</domain>", "<?pi a <? b?>\n<!---->\n\n<?x?>", id="processing-instructions"),
        pytest.param("</domain>", "\n<?pi </domain><?x?>\n", id="closing-tag-in-a-processing-instruction"),
        pytest.param("</domain>", "", id="nothing"),
    ],
)
def test_the_epilog_stays_as_written(closing: str, epilog: str) -> None:
    """Used to drop the epilog when the closing tag held a blank or a comment after it held </domain>."""
    text = template().replace("</domain>\n", closing + epilog)
    result = expand_domain(text, _host("seed-4node-ring"))
    assert result.xml.endswith("\n" + closing + epilog)
    assert expand_domain(result.xml, _host("seed-4node-ring")).xml == result.xml


def test_errors_name_the_guest() -> None:
    text = "<domain type='kvm'>\n  <name>db07</name>\n  <memory>1048576</memory>\n  <vcpu>2</vcpu>\n"
    text += "  <vnuma mode='host' distrbution='interleave'/>\n</domain>\n"
    with pytest.raises(SpecError) as caught:
        expand_domain(text, _host("seed-4node-ring"))
    assert str(caught.value).startswith("guest db07: ")
    assert "distrbution" in str(caught.value)


def test_dimm_beyond_new_cells_is_refused_naming_the_guest() -> None:
    text = """<domain type='kvm'>
  <name>db08</name>
  <maxMemory slots='4' unit='GiB'>16</maxMemory>
  <memory unit='MiB'>2560</memory>
  <vcpu>4</vcpu>
  <vnuma mode='node'><partition cells='2'/></vnuma>
  <devices>
    <memory model='dimm'><target><size unit='MiB'>512</size><node>3</node></target></memory>
  </devices>
</domain>"""
    with pytest.raises(VnumaError) as caught:
        expand_domain(text, _host("seed-4node-ring"))
    message = str(caught.value)
    assert message.startswith("guest db08: ")
    assert "memory device 0" in message
    assert "cell 3" in message
    assert "2 cells" in message


# --------------------------------------------------------------------------------------------------
# libvirt's own parser
# --------------------------------------------------------------------------------------------------


def _require_libvirt() -> None:
    if libvirt is not None:
        return
    if os.environ.get("VNUMA_ALLOW_NO_LIBVIRT") == "1":
        pytest.skip("libvirt-python is not installed (allowed by VNUMA_ALLOW_NO_LIBVIRT=1)")
    pytest.fail("libvirt-python is required to check golden outputs against libvirt (VNUMA_ALLOW_NO_LIBVIRT=1 skips)")


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_output_is_accepted_by_libvirt(case: str) -> None:
    _require_libvirt()
    expected_path = _expected_path(case)
    if not expected_path.exists():
        pytest.fail(f"{expected_path.name} is missing; run pytest with --regenerate-output and review it")
    text = expected_path.read_text(encoding="utf-8")
    root = parse_xml(text, case)
    # Imported here: the module needs libvirt-python, which a quick local run may go without.
    from ansible_collections.vnuma.libvirt.tests.support.embedded_libvirt import read_back

    back = read_back(root, f"golden-{case}")
    rendered = DomainNuma.from_domain(root)
    assert rendered.changes(DomainNuma.from_domain(back)) == []
    assert read_stored_spec(back) == read_stored_spec(root)
