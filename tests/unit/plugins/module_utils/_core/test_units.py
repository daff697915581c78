# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Memory sizes in libvirt's units (https://libvirt.org/formatdomain.html#memory-allocation)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    MAX_INTEGER,
    MAX_MEMORY_KIB,
    check_count,
    format_kib,
    parse_int,
    parse_size,
    plain_int,
    shown,
    size_kib,
    to_kib,
    unit_bytes,
)

KIB, MIB, GIB, TIB, PIB, EIB = (1024**power for power in range(1, 7))

# Every unit libvirt's virScaleInteger() accepts, with its size in bytes.
LIBVIRT_UNITS = {
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "k": KIB,
    "KiB": KIB,
    "KB": 1000,
    "M": MIB,
    "MiB": MIB,
    "MB": 1000**2,
    "G": GIB,
    "GiB": GIB,
    "GB": 1000**3,
    "T": TIB,
    "TiB": TIB,
    "TB": 1000**4,
    "P": PIB,
    "PiB": PIB,
    "PB": 1000**5,
    "E": EIB,
    "EiB": EIB,
    "EB": 1000**6,
}


@pytest.mark.parametrize(("unit", "size"), LIBVIRT_UNITS.items())
def test_every_libvirt_unit(unit: str, size: int) -> None:
    assert unit_bytes(unit) == size


@pytest.mark.parametrize(("unit", "size"), LIBVIRT_UNITS.items())
def test_units_ignore_case(unit: str, size: int) -> None:
    assert unit_bytes(unit.lower()) == size
    assert unit_bytes(unit.upper()) == size
    assert unit_bytes(unit.swapcase()) == size


@pytest.mark.parametrize(
    "unit", ["", "x", "Ki", "KiBs", "kibibytes", "kB2", "bit", "bits", "B2", "Q", "Kb ", " KiB", "μB"]
)
def test_units_libvirt_rejects(unit: str) -> None:
    assert unit_bytes(unit) is None


@pytest.mark.parametrize(
    ("value", "unit", "kib"),
    [
        (0, "GiB", 0),
        (1, "KiB", 1),
        (3, "MiB", 3 * 1024),
        (16, "GiB", 16 * MIB),
        (2, "TiB", 2 * GIB),
        # Rounded up to whole KiB, as libvirt does (VIR_DIV_UP in virDomainParseMemory).
        (1, "b", 1),
        (1024, "bytes", 1),
        (1025, "b", 2),
        (1, "KB", 1),
        (1, "MB", 977),
        (1, "GB", 976563),
        (512, "M", 524288),
    ],
)
def test_to_kib(value: int, unit: str, kib: int) -> None:
    assert to_kib(value, unit) == kib


def test_to_kib_defaults_to_kib() -> None:
    assert to_kib(4096) == 4096


@pytest.mark.parametrize(
    ("value", "unit", "message"),
    [
        (1, "parsec", "memory: unknown unit 'parsec'"),
        (1, "", "unknown unit ''"),
        (1, None, "unknown unit None"),
        (-1, "KiB", "memory: -1 is not a non-negative integer"),
        (1.5, "KiB", "1.5 is not a non-negative integer"),
        ("1", "KiB", "'1' is not a non-negative integer"),
        (True, "KiB", "True is not a non-negative integer"),
    ],
)
def test_to_kib_errors(value: object, unit: object, message: str) -> None:
    with pytest.raises(SpecError) as error:
        to_kib(value, unit)  # type: ignore[arg-type]
    assert message in str(error.value)


def test_to_kib_names_the_value() -> None:
    with pytest.raises(SpecError, match=r"^hugepage size: unknown unit 'X'"):
        to_kib(1, "X", what="hugepage size")


@pytest.mark.parametrize(
    ("text", "kib"),
    [
        ("16 GiB", 16 * MIB),
        ("16GiB", 16 * MIB),
        ("  16  gib  ", 16 * MIB),
        ("512M", 524288),
        ("1 GB", 976563),
        ("2048", 2048),
        (524288, 524288),
        (0, 0),
        ("1 TiB", GIB),
        ("100 bytes", 1),
    ],
)
def test_parse_size(text: str | int, kib: int) -> None:
    assert parse_size(text) == kib


def test_parse_size_default_unit() -> None:
    assert parse_size(2, default_unit="GiB") == 2 * MIB
    assert parse_size("2", default_unit="MiB") == 2048
    assert parse_size("2 KiB", default_unit="GiB") == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'' is not a size such as '16 GiB' or 524288"),
        ("GiB", "is not a size"),
        ("1.5 GiB", "is not a size"),
        ("-1 GiB", "is not a size"),
        ("16 Gigs", "unknown unit 'Gigs'"),
        ("1 2 GiB", "is not a size"),
        (None, "None is not a size"),
        (True, "True is not a size"),
        (1.5, "1.5 is not a size"),
        (-3, "-3 is not a non-negative integer"),
    ],
)
def test_parse_size_errors(text: object, message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_size(text)  # type: ignore[arg-type]
    assert message in str(error.value)


def test_parse_size_names_the_value() -> None:
    with pytest.raises(SpecError, match=r"^maxMemory: 'lots' is not a size"):
        parse_size("lots", what="maxMemory")


@pytest.mark.parametrize(
    ("kib", "text"),
    [
        (0, "0 KiB"),
        (4, "4 KiB"),
        (1025, "1025 KiB"),
        (1024, "1 MiB"),
        (1536 * 1024, "1536 MiB"),
        (16 * MIB, "16 GiB"),
        (GIB, "1 TiB"),
        (3 * GIB + MIB, "3073 GiB"),
    ],
)
def test_format_kib(kib: int, text: str) -> None:
    assert format_kib(kib) == text


@given(st.integers(0, 2**42))  # up to the limit, 4 PiB
def test_format_then_parse_round_trips(kib: int) -> None:
    assert parse_size(format_kib(kib)) == kib


# -- the one integer parser, the limits, and what a message shows (issue 8, points 3 and 8) -------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [("0", 0), ("007", 7), (" 42 ", 42), (str(MAX_INTEGER), MAX_INTEGER), ("0" * 100 + "5", 5)],
)
def test_parse_int(raw: str, value: int) -> None:
    assert parse_int(raw, "count") == value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # int() takes every one of these: other scripts' digits, signs, underscores, blanks inside.
        ("\u0662\u0665\u0666", "count '\u0662\u0665\u0666' is not a non-negative integer"),
        ("\uff12", "count '\uff12' is not a non-negative integer"),
        ("\u00b2", "count '\u00b2' is not a non-negative integer"),  # SUPERSCRIPT TWO: isdigit() is True
        ("+1", "count '+1' is not a non-negative integer"),
        ("-1", "count '-1' is not a non-negative integer"),
        ("1_000", "count '1_000' is not a non-negative integer"),
        ("", "count '' is not a non-negative integer"),
        (None, "count None is not a non-negative integer"),
        ("129", "count 129 is above the limit of 128 (QEMU's MAX_NODES)"),
        pytest.param(
            "9" * 5000,
            f"count {'9' * 80}... (5000 digits) is above the limit of 128 (QEMU's MAX_NODES)",
            id="5000-digits",
        ),
    ],
)
def test_parse_int_refusals(raw: object, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_int(raw, "count", 128, "QEMU's MAX_NODES")
    assert str(caught.value) == message


def test_parse_int_raises_the_callers_error_class() -> None:
    with pytest.raises(XmlError, match=r"^<cell id='x'>: id 'x' is not a non-negative integer$"):
        parse_int("x", "<cell id='x'>: id", error=XmlError)


@pytest.mark.parametrize(
    ("raw", "limit", "value"),
    [
        ("0", 128, 0),
        ("128", 128, 128),
        ("007", 128, 7),
        ("9" * 19, MAX_INTEGER, int("9" * 19)),
        # Everything else is left to parse_int: above the limit, blanks, signs, other scripts' digits,
        # more than 19 digits (even leading zeros), and what is not text at all.
        ("129", 128, None),
        (" 1", 128, None),
        ("+1", 128, None),
        ("\u0662", 128, None),
        ("\u00b2", 128, None),
        ("", 128, None),
        ("0" * 20, 128, None),
        (None, 128, None),
        (1, 128, None),
    ],
)
def test_plain_int_is_the_fast_path_of_parse_int(raw: object, limit: int, value: int | None) -> None:
    assert plain_int(raw, limit) == value
    if value is not None:
        assert parse_int(raw, "count", limit) == value


@given(st.text(st.sampled_from("0123456789 +-_x\u0662"), max_size=22), st.integers(0, MAX_INTEGER))
def test_plain_int_never_accepts_what_parse_int_refuses(raw: str, limit: int) -> None:
    fast = plain_int(raw, limit)
    try:
        careful = parse_int(raw, "count", limit)
    except SpecError:
        assert fast is None
    else:
        assert fast in (None, careful)


def test_parse_int_never_converts_a_number_longer_than_its_limit() -> None:
    """Python refuses int() of more than 4300 digits with a ValueError: the length is compared first."""
    with pytest.raises(SpecError, match=r"is above the limit of 18446744073709551615$"):
        parse_int("1" * 100_000, "count")


@pytest.mark.parametrize(
    "value",
    [
        0,
        True,
        1.0,
        1.5,
        float("inf"),
        float("nan"),
        "2",
        129,
        pytest.param(10**5000, id="huge"),
    ],
)
def test_check_count_with_a_limit_gives_the_range_whatever_is_wrong(value: object) -> None:
    """A count with a limit had two messages ("must be a positive integer", "is above the limit of 128"), and the
    first gave no range: now every refusal names the option, the value and the whole range."""
    with pytest.raises(SpecError) as caught:
        check_count("cells", value, 128, "why")
    assert str(caught.value) == f"cells {shown(value)} must be an integer from 1 to 128 (why)"
    assert check_count("cells", 128, 128) == 128
    assert check_count("cells", 1, 128) == 1


def test_check_count_with_a_limit_and_a_minimum() -> None:
    with pytest.raises(SpecError) as caught:
        check_count("cpu", -1, 7, minimum=0)
    assert str(caught.value) == "cpu -1 must be an integer from 0 to 7"
    assert check_count("cpu", 0, 7, minimum=0) == 0


@pytest.mark.parametrize(
    ("value", "minimum", "message"),
    [
        (0, 1, "vcpus 0 must be a positive integer"),
        (1.5, 1, "vcpus 1.5 must be a positive integer"),
        (-1, 0, "vcpus -1 must be an integer of at least 0"),
    ],
)
def test_check_count_without_a_limit(value: object, minimum: int, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        check_count("vcpus", value, minimum=minimum)
    assert str(caught.value) == message
    assert check_count("vcpus", 10**30) == 10**30


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12, "12"),
        (-3, "-3"),
        (2**128 - 1, str(2**128 - 1)),
        pytest.param(10**5000, "about 10^5000", id="huge"),
        pytest.param(-(10**5000), "-about 10^5000", id="huge-negative"),
        ("x" * 80, repr("x" * 80)),
        ("x" * 81, f"{'x' * 80!r}... (81 characters)"),
        (1.5, "1.5"),
        ([0] * 100, f"{repr([0] * 100)[:80]}... (list)"),
    ],
)
def test_shown(value: object, text: str) -> None:
    assert shown(value) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\u0662\u0665\u0666 MiB", "memory: '\u0662\u0665\u0666 MiB' is not a size such as '16 GiB' or 524288"),
        ("\uff12\uff15\uff16 MiB", "memory: '\uff12\uff15\uff16 MiB' is not a size such as '16 GiB' or 524288"),
        ("4097 TiB", "memory '4097 TiB' is above the limit of 4 PiB (all a 52-bit physical address space holds)"),
        ("1 EiB", "memory '1 EiB' is above the limit of 4 PiB (all a 52-bit physical address space holds)"),
        (2**42 + 1, f"memory {2**42 + 1} KiB is above the limit of 4 PiB (all a 52-bit physical address space holds)"),
        ("9" * 30 + " parsec", "memory: unknown unit 'parsec' (use one of KiB, MiB, GiB, TiB, b, KB, MB, GB)"),
    ],
)
def test_parse_size_limits_and_digits(text: object, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_size(text)
    assert str(caught.value) == message


def test_parse_size_takes_the_limit_itself() -> None:
    assert parse_size("4 PiB") == MAX_MEMORY_KIB
    assert parse_size(f"{4 * 1024**5} b") == MAX_MEMORY_KIB


def test_size_kib() -> None:
    assert size_kib("16", "GiB", "<memory>") == 16 * MIB
    with pytest.raises(SpecError) as caught:
        size_kib("16", "GiB", "<hugepages> size", 1024, "a reason")
    assert str(caught.value) == "<hugepages> size 16 GiB is above the limit of 1 MiB (a reason)"
    with pytest.raises(XmlError, match=r"^<memory>: content '1\.5' is not a non-negative integer$"):
        size_kib("1.5", "KiB", "<memory>: content", error=XmlError)


def test_format_kib_large_units() -> None:
    assert format_kib(MAX_MEMORY_KIB) == "4 PiB"
    assert format_kib(EIB // KIB) == "1 EiB"
    assert format_kib(10**5000 + 1) == "about 10^5000 KiB"
    assert format_kib(10**5000) == "about 10^4984 EiB"  # 10^5000 KiB is a whole number of EiB
