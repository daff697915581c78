# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one reader of digit text and the rounded size formatter (issue 9), and who goes through them."""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import format_size
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    MAX_DIGITS,
    format_kib_rounded,
    read_digits,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.diagram import short_size
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import attr_int
from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import coerce_int


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("0", 0),
        ("007", 7),
        ("18446744073709551616", 2**64),
        ("0" * 500 + "5", 5),
        ("9" * MAX_DIGITS, int("9" * MAX_DIGITS)),
        ("9" * (MAX_DIGITS + 1), None),
        ("", None),
        (" 1", None),
        ("1 ", None),
        ("+1", None),
        ("-1", None),
        ("1_0", None),
        ("٢", None),
        ("²", None),
        ("1.0", None),
        ("0x10", None),
    ],
)
def test_read_digits(token: str, value: int | None) -> None:
    assert read_digits(token) == value


def test_read_digits_takes_a_smaller_bound() -> None:
    assert read_digits("123", max_digits=3) == 123
    assert read_digits("1234", max_digits=3) is None


@pytest.mark.parametrize(
    ("raw", "value"),
    [(" 12 ", 12), ("-3", -3), ("0", 0)],
)
def test_attr_int_reads(raw: str, value: int) -> None:
    element = parse_xml(f"<vcpu current='{raw}'/>", "test")
    assert attr_int(element, "current", "<vcpu>") == value


@pytest.mark.parametrize("raw", ["- 3", "+3", "1_0", "", "-", "٢", "9" * (MAX_DIGITS + 1)])
def test_attr_int_refuses(raw: str) -> None:
    element = parse_xml(f"<vcpu current='{raw}'/>", "test")
    with pytest.raises(XmlError) as caught:
        attr_int(element, "current", "<vcpu>")
    assert str(caught.value) == f"<vcpu>: attribute current={raw!r} is not an integer"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(" 16 ", 16), ("x", "x"), ("1" * 101, "1" * 101), ("-1", "-1")],
)
def test_filter_glue_coerces_digit_text_only(value: str, expected: object) -> None:
    assert coerce_int(value) == expected


@pytest.mark.parametrize(
    ("kib", "decimals", "units", "text"),
    [
        (4548812, 2, ("GiB", "MiB"), "4.34 GiB"),
        (1024**2, 2, ("GiB", "MiB"), "1 GiB"),
        (1536, 2, ("GiB", "MiB"), "1.5 MiB"),
        (1000, 2, ("GiB", "MiB"), "1000 KiB"),
        (10 * 1024**2, 1, ("TiB", "GiB", "MiB"), "10 GiB"),
        (1536 * 1024, 1, ("TiB", "GiB", "MiB"), "1.5 GiB"),
        (2 * 1024**3, 1, ("TiB", "GiB", "MiB"), "2 TiB"),
        (1023 * 1024 + 1023, 1, ("TiB", "GiB", "MiB"), "1024 MiB"),
    ],
)
def test_format_kib_rounded(kib: int, decimals: int, units: tuple[str, ...], text: str) -> None:
    assert format_kib_rounded(kib, decimals, units) == text


def test_the_rounded_formatters_are_format_kib_rounded() -> None:
    assert format_size(4548812) == "4.34 GiB"
    assert format_size(0) == "0"
    assert format_size(16 * 1024**2) == "16 GiB"
    assert short_size(1536 * 1024) == "1.5 GiB"
    assert short_size(512) == "512 KiB"
