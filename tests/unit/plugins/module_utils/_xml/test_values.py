# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Values as libvirt reads them: an element's whole text, comments and processing instructions left out.

``<memory unit='GiB'>1<!--c-->6</memory>`` is 16 GiB to libvirt (``virsh define`` then ``dumpxml`` shows
16777216 KiB); the collection read the text before the comment, 1 GiB.  And a value written into an
element with a comment must not keep the text after the comment: ``<vcpu>8<!--c-->6</vcpu>`` is 86.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma, read_guest_shape
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import (
    expand_domain,
    plan_domain,
    render_plan,
    serialize_like,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import (
    CurrentMemory,
    MaxMemory,
    Memory,
    MemoryDevice,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import text_cpuset, text_int
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vcpus import Vcpu
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import spec_from_element
from ansible_collections.vnuma.libvirt.tests.support.domain_cases import GIB

try:
    import libvirt
except ImportError:
    libvirt = None

RING = (Path(__file__).resolve().parents[3] / "fixtures" / "capabilities" / "seed-4node-ring.xml").read_text()


def element(text: str) -> Any:
    return parse_xml(text, "test XML")


# -- reading ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("<vcpu>16</vcpu>", "16", id="plain"),
        pytest.param("<vcpu/>", "", id="empty"),
        pytest.param("<vcpu>1<!--c-->6</vcpu>", "16", id="comment-inside"),
        pytest.param("<vcpu><!-- c -->16</vcpu>", "16", id="comment-first"),
        pytest.param("<vcpu>1<?pi x?>6<!--c--></vcpu>", "16", id="processing-instruction"),
        pytest.param("<vcpu>1<![CDATA[6]]></vcpu>", "16", id="cdata"),
    ],
)
def test_string_value_is_the_text_libvirt_reads(text: str, value: str) -> None:
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import string_value

    assert string_value(element(text)) == value


@pytest.mark.parametrize(
    "text", ["<vcpu>1<!--c-->6</vcpu>", "<vcpu><!-- sized by the DBA team -->16</vcpu>", "<vcpu>16<!--c--></vcpu>"]
)
def test_vcpu_reads_past_comments(text: str) -> None:
    """Used to read 1 vCPU (or fail with "None is not a non-negative integer" when the comment came first)."""
    assert Vcpu.from_element(element(text)).count == 16
    assert text_int(element(text), "<vcpu>") == 16


@pytest.mark.parametrize("model", [Memory, CurrentMemory])
@pytest.mark.parametrize(
    "value", ["1<!--c-->6", "<!-- per the DBA team -->16", "1<?review?>6", "16<!-- c -->"], ids=lambda v: v
)
def test_memory_reads_past_comments(model: type[Memory], value: str) -> None:
    """Used to read 1 GiB, as libvirt reads 16."""
    assert model.from_element(element(f"<{model.TAG} unit='GiB'>{value}</{model.TAG}>")).kib == 16 * GIB


def test_other_values_read_past_comments() -> None:
    assert MaxMemory.from_element(element("<maxMemory slots='4' unit='GiB'>6<!--c-->4</maxMemory>")).kib == 64 * GIB
    device = element("<memory model='dimm'><target><size unit='MiB'>5<!--c-->12</size><node>0</node></target></memory>")
    assert MemoryDevice.from_element(device).size_kib == 512 * 1024
    assert text_cpuset(element("<nodemask>0<!--c-->-3</nodemask>"), "<nodemask>") == (0, 1, 2, 3)


def test_vnuma_memory_reads_past_comments() -> None:
    spec = spec_from_element(element("<vnuma mode='host'><memory unit='GiB'>1<!--c-->6</memory></vnuma>"))
    assert spec.memory_kib == 16 * GIB


def test_guest_shape_reads_past_comments() -> None:
    root = element(
        "<domain><name>g1</name><memory unit='GiB'>1<!--c-->6</memory><vcpu><!--c-->1<!--c-->6</vcpu></domain>"
    )
    shape = read_guest_shape(root)
    assert (shape.vcpus, shape.memory_kib) == (16, 16 * GIB)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("<vcpu></vcpu>", "<vcpu>: '' is not a non-negative integer", id="empty"),
        pytest.param("<vcpu><!-- c --></vcpu>", "<vcpu>: '' is not a non-negative integer", id="only-a-comment"),
        pytest.param("<vcpu> </vcpu>", "<vcpu>: ' ' is not a non-negative integer", id="blank"),
        pytest.param("<vcpu>eight<!-- c --></vcpu>", "<vcpu>: 'eight' is not a non-negative integer", id="word"),
    ],
)
def test_an_empty_vcpu_is_named_and_shown(text: str, message: str) -> None:
    """Used to say "<vcpu>: None is not a non-negative integer"."""
    with pytest.raises(XmlError) as caught:
        Vcpu.from_element(element(text))
    assert str(caught.value) == message


@pytest.mark.parametrize("value", ["", "<!-- c -->"], ids=["empty", "only-a-comment"])
def test_an_empty_memory_is_named_and_shown(value: str) -> None:
    with pytest.raises(XmlError) as caught:
        Memory.from_element(element(f"<memory unit='GiB'>{value}</memory>"))
    assert str(caught.value) == "<memory>: '' is not a non-negative integer"


def test_an_empty_vcpu_in_a_domain_names_the_guest() -> None:
    domain = "<domain type='kvm'><name>g1</name><memory>1048576</memory><vcpu/><vnuma mode='host'/></domain>"
    with pytest.raises(XmlError) as caught:
        expand_domain(domain, RING)
    assert str(caught.value) == "guest g1: <vcpu>: '' is not a non-negative integer"


# -- writing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param("<vcpu>8</vcpu>", "<vcpu>24</vcpu>", id="plain"),
        pytest.param("<vcpu>8<!--c-->6</vcpu>", "<vcpu>24<!--c--></vcpu>", id="comment-inside"),
        pytest.param("<vcpu><!--c-->86</vcpu>", "<vcpu>24<!--c--></vcpu>", id="comment-first"),
        pytest.param("<vcpu>8<!--a-->6<?pi x?>\n</vcpu>", "<vcpu>24<!--a--><?pi x?></vcpu>", id="comment-and-pi"),
        pytest.param("<vcpu>8<x>6</x></vcpu>", "<vcpu>24</vcpu>", id="element-child"),
    ],
)
def test_a_written_value_keeps_comments_but_not_the_text_after_them(before: str, after: str) -> None:
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import set_string_value, string_value

    target = element(before)
    set_string_value(target, "24")
    assert to_text(target) == after
    assert string_value(target) == "24"


def test_vcpu_update_leaves_no_old_digits_behind() -> None:
    """Used to write <vcpu>24<!--c-->6</vcpu>: 246 vCPUs to libvirt."""
    target = element("<vcpu placement='auto' cpuset='0-3'>8<!--c-->6</vcpu>")
    Vcpu(count=24).update(target)
    assert to_text(target) == '<vcpu placement="static">24<!--c--></vcpu>'
    assert Vcpu.from_element(target) == Vcpu(count=24)


def test_memory_update_leaves_no_old_digits_behind() -> None:
    target = element("<memory unit='GiB' dumpCore='off'>1<!-- c -->6</memory>")
    Memory(12 * GIB).update(target)
    assert to_text(target) == f'<memory unit="KiB" dumpCore="off">{12 * GIB}<!-- c --></memory>'


# -- through expansion and a written definition ----------------------------------------------------------------

DOMAIN = """<domain type='kvm'>
  <name>g1</name>
  <memory unit='GiB'>1<!-- c -->6</memory>
  <currentMemory unit='GiB'><!-- balloon -->1<!-- c -->6</currentMemory>
  <vcpu placement='auto' cpuset='0-15'>1<!-- sized by the DBA team -->6</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
  </os>
</domain>
"""
SPEC = VnumaSpec(mode="host", memory_kib=8 * GIB)


def test_expansion_reads_and_writes_values_with_comments() -> None:
    """16 vCPUs and 16 GiB read (they were 1 and 1), and the values written hold no old digits."""
    result = expand_domain(
        DOMAIN.replace("<os>", "<vnuma mode='host'><memory unit='GiB'>8</memory></vnuma>\n  <os>"), RING
    )
    assert "  <memory unit='KiB'>8388608<!-- c --></memory>\n" in result.xml
    assert "  <currentMemory unit='KiB'>8388608<!-- balloon --><!-- c --></currentMemory>\n" in result.xml
    assert "  <vcpu placement='static' cpuset='0-15'>16<!-- sized by the DBA team --></vcpu>\n" in result.xml
    root = parse_xml(result.xml, "expanded")
    assert result.layout is not None
    assert sum(len(cell.vcpus) for cell in result.layout.cells) == 16
    model = DomainNuma.from_domain(root)
    assert (model.memory_kib, model.current_memory_kib) == (8 * GIB, 8 * GIB)


def _written_definition(domain: str, spec: VnumaSpec) -> str:
    """The definition vnuma_domain defines: planned, rendered and written as ``_run/plan.py`` does."""
    root = parse_xml(domain, "the definition of guest g1", root_tag="domain")
    plan = plan_domain(root, parse_capabilities(RING), spec)
    new_root = parse_xml(domain, "the definition of guest g1", root_tag="domain")
    render_plan(new_root, plan)
    return serialize_like(new_root, domain)


def test_a_written_definition_reads_back_as_planned() -> None:
    written = _written_definition(DOMAIN, SPEC)
    assert "<memory unit='KiB'>8388608<!-- c --></memory>" in written
    assert "<vcpu placement='static' cpuset='0-15'>16<!-- sized by the DBA team --></vcpu>" in written
    model = DomainNuma.from_domain(parse_xml(written, "written"))
    assert model.vcpu is not None
    assert (model.vcpu.count, model.memory_kib, model.current_memory_kib) == (16, 8 * GIB, 8 * GIB)


def test_libvirt_reads_the_written_definition_as_planned() -> None:
    """libvirt's own parser agrees: what it reads is what was planned, not 86 vCPUs or 83886086 KiB."""
    if libvirt is None:
        if os.environ.get("VNUMA_ALLOW_NO_LIBVIRT") == "1":
            pytest.skip("libvirt-python is not installed (allowed by VNUMA_ALLOW_NO_LIBVIRT=1)")
        pytest.fail("libvirt-python is required (VNUMA_ALLOW_NO_LIBVIRT=1 skips)")
    # Imported here: the module needs libvirt-python.
    from ansible_collections.vnuma.libvirt.tests.support.embedded_libvirt import read_back

    root = parse_xml(_written_definition(DOMAIN, SPEC), "written")
    back = DomainNuma.from_domain(read_back(root, "comment-values"))
    assert back.vcpu is not None
    assert (back.vcpu.count, back.memory_kib, back.current_memory_kib) == (16, 8 * GIB, 8 * GIB)
    assert DomainNuma.from_domain(root).changes(back) == []
