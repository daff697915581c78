# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One XML parser set-up: ``_xml/parse.py``'s, with its refusing resolver, for every text lxml reads.

A document is parsed by ``parse_xml``; the markup the element models write and the copies of elements
(``tree.py:detached_copy``) by ``parse_written``, with the same parser set-up.  Before, ``markup.py``
built a parser of its own without the resolver, and four copies parsed with lxml's default parser
(which resolves entities and would read a DTD's files).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import detached_copy
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import stripped_copy

PLUGINS = Path(__file__).resolve().parents[5] / "plugins"
# lxml's ways of reading text into a tree, each with a parser of its own unless one is given.
_PARSING = {"fromstring", "XML", "XMLParser", "parse", "iterparse", "fromstringlist", "XMLID", "HTML"}


def _parsing_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "etree"
            and node.func.attr in _PARSING
        ):
            found.append(f"{path.relative_to(PLUGINS)}:{node.lineno} etree.{node.func.attr}")
    return found


def test_only_parse_py_reads_text_into_a_tree() -> None:
    calls = [call for path in sorted(PLUGINS.rglob("*.py")) for call in _parsing_calls(path)]
    assert calls, "the scan found no parser at all: it no longer sees parse.py's"
    assert all(call.startswith("module_utils/_xml/parse.py:") for call in calls), calls


@pytest.mark.parametrize("copy", [detached_copy, stripped_copy])
def test_a_copy_keeps_what_the_document_has(copy: object) -> None:
    """A copy is parsed as the document was: its CDATA sections, comments and namespaces stay."""
    assert callable(copy)
    root = parse_xml(
        "<domain><metadata><v:x xmlns:v='urn:v' a='1'><![CDATA[<b>]]><!-- c --></v:x></metadata></domain>",
        "domain",
    )
    element = root.find("metadata/{urn:v}x")
    assert element is not None
    element.tail = "\n  "
    copied = copy(element)
    assert isinstance(copied, etree._Element)
    assert copied.getparent() is None and copied.tail is None
    assert to_text(copied) == '<v:x xmlns:v="urn:v" a="1"><![CDATA[<b>]]><!-- c --></v:x>'
