# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The values of the owned elements: small readers and formatters shared by the element models.

Readers accept every spelling libvirt accepts and raise ``XmlError`` naming the element; values are
models, never text: cpusets are ascending tuples, sizes are KiB.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import cast

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import parse_int, size_kib, to_kib
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import attr_int, etree

__all__ = [
    "attr_cpuset",
    "attr_int_or",
    "format_ids",
    "optional_size_kib",
    "pin_text",
    "read_size_kib",
    "require_tag",
    "required_int",
    "set_string_value",
    "size_kib_of",
    "sorted_ids",
    "string_value",
    "text_cpuset",
    "text_int",
    "yes_no",
    "yes_no_text",
]

_YES_NO = {"yes": True, "no": False}


def require_tag(element: etree._Element, tag: str) -> None:
    if element is None or element.tag != tag:
        found = "nothing" if element is None else f"<{element.tag}>"
        raise XmlError(f"expected a <{tag}> element, got {found}")


def required_int(element: etree._Element, name: str, what: str) -> int:
    value = attr_int(element, name, what)
    if value is None:
        raise XmlError(f"{what}: attribute {name} is missing")
    return value


def attr_int_or(element: etree._Element, name: str, what: str, default: int) -> int:
    """An integer attribute, ``default`` when absent (libvirt's value for an attribute left out)."""
    value = attr_int(element, name, what)
    return default if value is None else value


def string_value(element: etree._Element) -> str:
    """The text of ``element`` as libvirt reads a value: all the text inside it, comments and processing
    instructions left out (XPath's string value).

    ``element.text`` is only the text before the first child: ``<vcpu>1<!-- c -->6</vcpu>`` is 16 vCPUs
    to libvirt, and ``<vcpu><!-- c -->8</vcpu>`` is 8.
    """
    if not len(element):
        return element.text or ""
    # lxml reads text as str (lxml-stubs allow bytes too).
    return "".join(cast(Iterator[str], element.itertext()))


def set_string_value(element: etree._Element, text: str | None) -> None:
    """Make ``text`` the string value of ``element`` (see ``string_value``), whatever it held.

    Its comments and processing instructions stay, after the value and without the text that
    followed them, which would be read as part of the value (``<vcpu>8<!-- c -->6</vcpu>`` is 86).
    An element child, which no value element has, would be read as part of it too: it goes.
    """
    element.text = text
    for child in list(element):
        if isinstance(child, etree._Comment | etree._ProcessingInstruction):
            child.tail = None
        else:
            element.remove(child)


def text_int(element: etree._Element, what: str) -> int:
    raw = string_value(element)
    text = raw.strip()
    if not text.isdigit() or not text.isascii():
        raise XmlError(f"{what}: {raw!r} is not a non-negative integer")
    return parse_int(text, f"{what}:", error=XmlError)


def read_size_kib(value: str | None, unit: str | None, what: str) -> int:
    """A size in any unit libvirt accepts, in KiB (https://libvirt.org/formatdomain.html#memory-allocation)."""
    text = (value or "").strip()
    if not text.isdigit() or not text.isascii():
        raise XmlError(f"{what}: {value!r} is not a non-negative integer")
    unit = unit if unit is not None else "KiB"
    try:
        # The unit first, on its own: its message names the element as "<memory>: unknown unit ...".
        to_kib(0, unit, what)
    except SpecError as error:
        raise XmlError(error.message) from None
    return size_kib(text, unit, f"{what}:", error=XmlError)


def attr_cpuset(element: etree._Element, name: str, what: str) -> tuple[int, ...] | None:
    raw = element.get(name)
    if raw is None:
        return None
    try:
        return tuple(sorted(parse_cpuset(raw, f"{what} {name}")))
    except SpecError as error:
        raise XmlError(error.message) from None


def size_kib_of(element: etree._Element, what: str) -> int:
    """The size ``element`` holds (its string value, in its ``unit``), in KiB."""
    return read_size_kib(string_value(element), element.get("unit"), what)


def optional_size_kib(element: etree._Element | None, what: str) -> int | None:
    return None if element is None else size_kib_of(element, what)


def text_cpuset(element: etree._Element | None, what: str) -> tuple[int, ...] | None:
    text = None if element is None else string_value(element)
    if text is None or not text.strip():
        return None
    try:
        return tuple(sorted(parse_cpuset(text.strip(), what)))
    except SpecError as error:
        raise XmlError(error.message) from None


def yes_no(element: etree._Element, name: str, what: str) -> bool | None:
    raw = element.get(name)
    if raw is None:
        return None
    try:
        return _YES_NO[raw.strip()]
    except KeyError:
        raise XmlError(f"{what}: attribute {name}={raw!r} is not yes or no") from None


def yes_no_text(value: bool) -> str:
    return "yes" if value else "no"


def sorted_ids(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(set(values)))


def format_ids(ids: Iterable[int] | None) -> str | None:
    return None if ids is None else format_cpuset(ids)


@functools.lru_cache(maxsize=1024)
def pin_text(cpuset: tuple[int, ...]) -> str:
    """``format_cpuset`` of a pin's cpuset: the vCPUs of a cell share one, so each is formatted once."""
    return format_cpuset(cpuset)
