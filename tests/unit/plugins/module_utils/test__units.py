# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Memory sizes in libvirt's units (https://libvirt.org/formatdomain.html#memory-allocation)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._units import format_kib, parse_size, to_kib, unit_bytes

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


@given(st.integers(0, 2**50))
def test_format_then_parse_round_trips(kib: int) -> None:
    assert parse_size(format_kib(kib)) == kib
