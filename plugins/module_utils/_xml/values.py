# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The values of the owned elements: small readers and formatters shared by the element models.

Readers accept every spelling libvirt accepts and raise ``XmlError`` naming the element; values are
models, never text: cpusets are ascending tuples, sizes are KiB.  They are the XML layer's one reader
of each kind of value: a decimal number (``decimal_int``, ``attr_int``, ``text_int``), a number libvirt
reads in base 0 (``libvirt_int``), a size and its unit (``read_size_kib``), a yes/no word
(``yes_no_value``), and the domain's name (``domain_name``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import cast

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    MAX_DIGITS,
    MAX_MEMORY_KIB,
    MEMORY_LIMIT_REASON,
    parse_int,
    plain_int,
    read_digits,
    shown,
    size_kib,
    to_kib,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree

__all__ = [
    "attr_cpuset",
    "attr_int",
    "attr_int_or",
    "decimal_int",
    "domain_name",
    "format_ids",
    "libvirt_int",
    "optional_libvirt_int",
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
    "yes_no_value",
]

_YES_NO = {"yes": True, "no": False}
# The digits of each base C's strtol reads in base 0 past its prefix ("0x" hexadecimal, "0" octal).
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_OCTAL_DIGITS = frozenset("01234567")


def decimal_int(raw: str) -> int | None:
    """The int a decimal number written ``raw`` is (a ``-`` allowed, blanks around it), None for anything else.

    ``int()`` also takes ``+1``, ``1_0`` and other scripts' digits (``'٢'``): refused here, as
    ``_core/units.py:read_digits`` refuses them.
    """
    text = raw.strip()
    negative = text.startswith("-")
    value = read_digits(text[1:] if negative else text)
    if value is None:
        return None
    # A factor, not unary minus: pylint cannot tell that the None case has left by now.
    return (-1 if negative else 1) * value


def attr_int(element: etree._Element, name: str, what: str, default: int | None = None) -> int | None:
    """An integer attribute (``decimal_int``), ``default`` when absent; a clear error when it is not one."""
    raw = element.get(name)
    if raw is None:
        return default
    value = decimal_int(raw)
    if value is None:
        raise XmlError(f"{what}: attribute {name}={raw!r} is not an integer")
    return value


def _strtol_base_0(raw: str) -> int | None:
    """The int C's ``strtol(raw, &end, 0)`` reads when it reads all of ``raw`` (blanks around it aside).

    ``0x``/``0X`` then hexadecimal digits, ``0`` then octal digits, else decimal digits, after an optional
    sign: ``'010'`` is 8.  ``int(raw, 0)`` differs: it refuses ``'010'`` and takes ``'0o10'``, ``'0b11'``
    and ``'1_0'``, none of which libvirt reads.  ASCII digits only, at most ``MAX_DIGITS`` significant ones.
    """
    text = raw.strip()
    sign = -1 if text.startswith("-") else 1
    if text[:1] in ("+", "-"):
        text = text[1:]
    if text[:2] in ("0x", "0X"):
        digits, base, allowed = text[2:], 16, _HEX_DIGITS
    elif len(text) > 1 and text.startswith("0"):
        digits, base, allowed = text[1:], 8, _OCTAL_DIGITS
    else:
        value = read_digits(text)
        return None if value is None else sign * value
    if not digits or not allowed.issuperset(digits) or len(digits.lstrip("0")) > MAX_DIGITS:
        return None
    return sign * int(digits, base)


def libvirt_int(raw: str | None, what: str) -> int:
    """A number libvirt reads in base 0 (a guest PCI address, ``<target busNr>``, a node device's bus):
    ``0x03``, ``010`` (8) or ``3``; ``what`` names it in the error."""
    value = None if raw is None else _strtol_base_0(raw)
    if value is None:
        raise XmlError(f"{what} {raw!r} is not a number")
    return value


def optional_libvirt_int(raw: str | None, what: str) -> int | None:
    """``libvirt_int`` of ``raw``, None when it is absent."""
    return None if raw is None else libvirt_int(raw, what)


def domain_name(root: etree._Element) -> str | None:
    """The domain's ``<name>`` as libvirt reads it (its string value), blanks around it left out; None without one."""
    element = root.find("name")
    name = None if element is None else string_value(element).strip()
    return name or None


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


def read_size_kib(
    value: str | None,
    unit: str | None,
    what: str,
    *,
    default_unit: str = "KiB",
    limit: int = MAX_MEMORY_KIB,
    why: str = MEMORY_LIMIT_REASON,
    error: type[VnumaError] = XmlError,
) -> int:
    """A size written as a number and a unit apart, in KiB, at most ``limit``: the one reader of the XML layer
    (a domain's elements, a ``<vnuma>`` element, the host's capabilities).

    As libvirt reads one (virDomainParseScaledValue, virScaleInteger): an absent or empty unit is the
    element's default, any other is read as written (``' MiB'`` is unknown); the units are
    ``_core/units.py:unit_bytes``'s (https://libvirt.org/formatdomain.html#memory-allocation).  Every
    refusal is ``error``, ``"{what}: ..."``: the value, or the unit, or the value in its unit and the limit.
    """
    unit = unit or default_unit
    if unit == "KiB":
        # What libvirt writes: digits in KiB take no other step (a big host's capabilities have many).
        kib = plain_int(value, limit)
        if kib is not None:
            return kib
    text = value.strip() if isinstance(value, str) else ""
    if not text.isdigit() or not text.isascii():
        raise error(f"{what}: {shown(value)} is not a non-negative integer")
    try:
        to_kib(0, unit, what)
    except SpecError as refused:
        raise error(refused.message) from None
    return size_kib(text, unit, f"{what}:", limit, why, error)


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


def yes_no_value(raw: str) -> bool | None:
    """What libvirt's ``yes`` or ``no`` written ``raw`` (blanks around it allowed) means, None for another word."""
    return _YES_NO.get(raw.strip())


def yes_no(element: etree._Element, name: str, what: str) -> bool | None:
    raw = element.get(name)
    if raw is None:
        return None
    value = yes_no_value(raw)
    if value is None:
        raise XmlError(f"{what}: attribute {name}={raw!r} is not yes or no")
    return value


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
