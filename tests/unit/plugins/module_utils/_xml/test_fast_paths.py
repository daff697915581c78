# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shortcuts taken for speed give what the plain way gives.

Large guests are rendered through shortcuts (elements written as text and parsed in one go, a run
of elements inserted as one slice, all quotes of a document turned at once, CPUs read two calls at
a time).  Each is compared here with the plain way it replaces, on the cases where they could part.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import (
    _TOKEN,
    _quotes_like,
    _single_quoted,
    expand_domain,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import make_markup, parse_markup, parse_markups
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import insert_at, insert_run

# -- elements written as text ---------------------------------------------------------------------------------


def _built(tag: str, attributes: tuple[tuple[str, object | None], ...]) -> Any:
    """The element built the plain way: one lxml call, attributes in order, None values left out."""
    return etree.Element(tag, {name: str(value) for name, value in attributes if value is not None})


@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20))
def test_markup_reads_back_any_attribute_value(value: str) -> None:
    try:
        expected = _built("cell", (("id", 1), ("memAccess", value), ("discard", None)))
    except ValueError:
        # lxml refuses characters XML cannot hold (control characters): nothing to write either way.
        return
    element = parse_markup(make_markup("cell", (("id", 1), ("memAccess", value), ("discard", None))))
    assert element.get("memAccess") == value
    assert etree.tostring(element) == etree.tostring(expected)


def test_markup_with_children_and_without_attributes() -> None:
    inner = make_markup("distances", (), make_markup("sibling", (("id", 0), ("value", 10))))
    element = parse_markup(make_markup("cell", (("id", 0), ("cpus", "0-3")), inner))
    expected = b'<cell id="0" cpus="0-3"><distances><sibling id="0" value="10"/></distances></cell>'
    assert etree.tostring(element) == expected
    assert [child.tag for child in parse_markups(["<a/>", "<b x='1'/>"])] == ["a", "b"]


# -- a run of elements inserted at once ------------------------------------------------------------------------

_PARENTS = {
    "empty, pretty": "<domain>\n  <cputune/>\n</domain>",
    "empty, open": "<domain>\n  <cputune>\n  </cputune>\n</domain>",
    "before others": "<domain>\n  <cputune>\n    <emulatorpin cpuset='0'/>\n  </cputune>\n</domain>",
    "after others": "<domain>\n  <cputune>\n    <shares>2</shares>\n  </cputune>\n</domain>",
    "between": (
        "<domain>\n  <cputune>\n    <shares>2</shares>\n    <!-- c -->\n    <period>9</period>\n  </cputune>\n</domain>"
    ),
    "tabs": "<domain>\n\t<cputune>\n\t\t<shares>2</shares>\n\t</cputune>\n</domain>",
    "odd spacing": "<domain>\n  <cputune>  <shares>2</shares>\n\n      <period>9</period>   </cputune>\n</domain>",
    "tail text": "<domain>\n  <cputune>\n    <shares>2</shares>words\n  </cputune>\n</domain>",
    "compact": "<domain><cputune><shares>2</shares></cputune></domain>",
}


def _pins(count: int, nested: bool) -> list[Any]:
    if nested:
        return [parse_markup(f"<vcpupin vcpu='{n}'><x/></vcpupin>") for n in range(count)]
    return parse_markups([f"<vcpupin vcpu='{n}' cpuset='{n}'/>" for n in range(count)])


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
@pytest.mark.parametrize("count", [1, 2, 5])
@pytest.mark.parametrize("parent", sorted(_PARENTS))
def test_insert_run_is_inserting_one_by_one(parent: str, count: int, nested: bool) -> None:
    for index in range(len(parse_xml(_PARENTS[parent], "t").find("cputune")) + 1):
        one_by_one = parse_xml(_PARENTS[parent], "t")
        cputune = one_by_one.find("cputune")
        for offset, pin in enumerate(_pins(count, nested)):
            insert_at(cputune, index + offset, pin)
        as_run = parse_xml(_PARENTS[parent], "t")
        insert_run(as_run.find("cputune"), index, _pins(count, nested))
        assert to_text(as_run) == to_text(one_by_one), (parent, index)


# -- quotes turned at once -------------------------------------------------------------------------------------

_BODIES = [
    '<domain type="kvm"><name>a</name><vcpu placement="static">2</vcpu></domain>',
    '<domain type="kvm"><description>say "hi" x="y"</description><vcpu a="b"/></domain>',
    '<domain type="kvm"><vcpu a="it\'s" b="c"/><x d="e"/></domain>',
    '<domain type="kvm"><!-- a="b" --><x d="e"/><?pi f="g"?><y h="i"/></domain>',
    '<domain type="kvm"><!-- a="b" --><description>x="y"</description><!--c--><z q="&quot;"/></domain>',
    '<domain type="kvm"><a>"</a><!--x-->"<b c="d"/></domain>',
    '<domain type="kvm">"<!--x-->"</domain>',
    '<domain type="kvm"><description><![CDATA[a="b" <c d="e"/>]]></description><x f="g"/></domain>',
    '<domain type="kvm"><![CDATA[<!-- x="y"]]><a b="c"/><!-- <![CDATA[ d="e" --><f g="h"/></domain>',
    '<domain type="kvm"><![CDATA[-->"<?]]><a b="c"/><?p q="r" <![CDATA[?><s t="u"/></domain>',
]


@pytest.mark.parametrize("body", _BODIES)
def test_quotes_turned_at_once_as_tag_by_tag(body: str) -> None:
    original = "<domain type='kvm'><name>a</name><vcpu placement='static'>2</vcpu></domain>"
    assert _quotes_like(body, original) == _TOKEN.sub(_single_quoted, body)


def test_quotes_in_cdata_sections_stay() -> None:
    """A CDATA section is text: its quotes, and what looks like tags in it, are not attributes."""
    body = '<domain type="kvm"><description><![CDATA[<b class="x">"y"</b>]]></description><vcpu a="b"/></domain>'
    original = "<domain type='kvm'><vcpu placement='static'>2</vcpu></domain>"
    expected = (
        "<domain type='kvm'><description><![CDATA[<b class=\"x\">\"y\"</b>]]></description><vcpu a='b'/></domain>"
    )
    assert _quotes_like(body, original) == expected
    assert _TOKEN.sub(_single_quoted, body) == expected


def test_quotes_of_a_double_quoted_input_stay() -> None:
    body = '<domain type="kvm"><vcpu a="b"/></domain>'
    assert _quotes_like(body, body) == body


# -- CPUs read by position -------------------------------------------------------------------------------------


def _caps(cpus: str) -> str:
    return (
        "<capabilities><host><topology><cells num='1'><cell id='0'><memory unit='KiB'>4096</memory>"
        f"<cpus num='2'>{cpus}</cpus></cell></cells></topology></host></capabilities>"
    )


def test_cpus_in_any_attribute_order_read_alike() -> None:
    libvirt_order = _caps(
        "<cpu id='0' socket_id='0' die_id='1' core_id='2' siblings='0-1'/>"
        "<cpu id='1' socket_id='0' die_id='1' core_id='2' siblings='0-1'/>"
    )
    other_orders = _caps(
        "<cpu siblings='0-1' core_id='2' die_id='1' socket_id='0' id='0'/>"
        "<cpu id='1' socket_id='0' die_id='1' cluster_id='0' core_id='2' siblings='0-1'/>"
    )
    assert parse_capabilities(other_orders) == parse_capabilities(libvirt_order)


def _cell(memory: str, pages: str, cell_id: str = "0") -> str:
    return (
        f"<capabilities><host><cpu><pages unit='KiB' size='4'/></cpu><topology><cells num='1'><cell id={cell_id}>"
        f"{memory}{pages}<cpus num='1'><cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0'/></cpus>"
        "</cell></cells></topology></host></capabilities>"
    )


def test_sizes_and_counts_in_other_spellings_read_alike() -> None:
    """Plain digits in KiB take the fast path; blanks, zeros and other units the careful one."""
    plain = parse_capabilities(
        _cell("<memory unit='KiB'>4194304</memory>", "<pages unit='KiB' size='2048'>16</pages>", "'1'")
    )
    other = parse_capabilities(
        _cell(
            "<memory unit='GiB'> 4 </memory>",
            "<pages unit='MiB' size='0002'> 016 </pages>",
            "' 0001 '",
        )
    )
    unitless = parse_capabilities(_cell("<memory>4194304</memory>", "<pages size='2048'>16</pages>", "'1'"))
    assert plain == other == unitless
    assert plain.nodes[0].memory_kib == 4194304
    assert plain.nodes[0].pages == ((2048, 16),)


# -- the change list, worked out when asked for ----------------------------------------------------------------


def test_changes_are_those_of_the_models() -> None:
    domain = "<domain type='kvm'><name>g</name><memory unit='MiB'>1</memory><vcpu>4</vcpu><vnuma mode='host'/></domain>"
    host = _caps("<cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0'/>")
    result = expand_domain(domain, host)
    before = DomainNuma.from_domain(parse_xml(domain, "t"))
    after = DomainNuma.from_domain(parse_xml(result.xml, "t"))
    assert result.changes == before.changes(after)
    assert result.changes and result.changed
