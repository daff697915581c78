# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Elements written as text, and the base of the element models: one writer per element.

Each owned element's model has exactly one writer, ``markup()``: the element's text, libvirt's
spelling and attribute order, children included.  A parent writes its children by joining their
``markup()``, and the whole subtree is parsed in one go: libxml2 builds elements several times faster
than one lxml call per element (a 1024-vCPU guest has 1024 ``<vcpupin>``s).  ``to_element`` and
``update`` only parse what the writer wrote; they know nothing of any element.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar, Self

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_written
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import set_string_value

__all__ = ["ElementModel", "make_markup", "parse_markup", "parse_markups"]

# What an attribute value must escape to be read back exactly: markup characters, the quote used,
# and the whitespace characters that a parser would otherwise normalise to spaces.
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)


def make_markup(tag: str, attributes: Sequence[tuple[str, object | None]], inner: str = "") -> str:
    """The text of the element ``tag`` with ``attributes`` in their order, ``inner`` (markup) inside.

    None values are left out.  Parsed (``parse_markup``), it gives the element that building it with
    lxml would give, attribute order included, so the document serialises to the same bytes.
    """
    parts = [f"<{tag}"]
    for name, value in attributes:
        if value is not None:
            text = value if isinstance(value, int) else str(value).translate(_ATTRIBUTE_ESCAPES)
            parts.append(f' {name}="{text}"')
    parts.append(f">{inner}</{tag}>" if inner else "/>")
    return "".join(parts)


def parse_markup(markup: str) -> etree._Element:
    """The element written as ``markup`` (see ``make_markup``), parsed as every text is (``parse_written``)."""
    return parse_written(markup)


def parse_markups(markups: Iterable[str]) -> list[etree._Element]:
    """The elements written as ``markups``, parsed together (under a wrapper, then taken out of it)."""
    # Inserting one elsewhere moves it out of the wrapper, its tail too.
    return list(parse_markup(f"<_>{''.join(markups)}</_>"))


class ElementModel:
    """The model of one owned element; subclasses are frozen dataclasses with a ``TAG`` and a writer."""

    TAG: ClassVar[str]
    #: How a running guest takes a change of this element (set by the models of owned elements).
    KIND: ClassVar[ChangeKind]

    @classmethod
    def from_element(cls, element: etree._Element) -> Self:
        """The model of ``element``, accepting every spelling libvirt accepts."""
        raise NotImplementedError

    def markup(self) -> str:
        """The element as text: the one writer of this element."""
        raise NotImplementedError

    def validate(self) -> None:
        """What must hold before the element is written; nothing unless the model says so."""

    def to_element(self) -> etree._Element:
        """The element ``markup`` writes, checked first (``validate``)."""
        self.validate()
        return parse_markup(self.markup())

    def overwrite(self, element: etree._Element, names: Sequence[str]) -> None:
        """Give an existing value ``element`` this model's text and its values of the attributes ``names``.

        The element's other attributes and their order stay; an attribute of ``names`` that the
        writer leaves out is removed.  Its comments stay, after the new value (``set_string_value``).
        """
        written = parse_markup(self.markup())
        set_string_value(element, written.text)
        for name in names:
            value = written.get(name)
            if value is None:
                if name in element.attrib:
                    del element.attrib[name]
            else:
                element.set(name, value)
