# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""libvirt cpuset / nodeset syntax: parsing, canonical formatting, errors."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import (
    MAX_CPU_ID,
    MAX_CPUSET_CHARS,
    MAX_CPUSET_SPAN,
    format_cpuset,
    parse_cpuset,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", {0}),
        ("3,1", {1, 3}),
        ("0-3", {0, 1, 2, 3}),
        ("5-5", {5}),
        ("0-3,8", {0, 1, 2, 3, 8}),
        ("1-4,^3", {1, 2, 4}),
        # Items apply left to right, as in libvirt's virBitmapParse.
        ("^3,1-4", {1, 2, 3, 4}),
        ("1-2,^2,2", {1, 2}),
        ("1-4,^3,", {1, 2, 4}),
        ("0-7,^8", set(range(8))),
        ("1,1,1-2", {1, 2}),
        (" 1 , 2 - 3 ", {1, 2, 3}),
        ("007", {7}),
        (str(MAX_CPU_ID), {MAX_CPU_ID}),
        (f"{MAX_CPU_ID - 1}-{MAX_CPU_ID}", {MAX_CPU_ID - 1, MAX_CPU_ID}),
    ],
)
def test_parse(text: str, expected: set[int]) -> None:
    assert parse_cpuset(text) == frozenset(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cpuset '' selects nothing"),
        ("   ", "cpuset '   ' selects nothing"),
        ("1,^1", "cpuset '1,^1' selects nothing"),
        ("^1", "selects nothing"),
        ("1,,2", "cpuset '1,,2': empty item between commas"),
        (",", "empty item between commas"),
        (",1", "empty item between commas"),
        ("a", "cpuset 'a': 'a' is not a non-negative integer"),
        ("-1", "'' is not a non-negative integer"),
        ("1-", "'' is not a non-negative integer"),
        ("+1", "'+1' is not a non-negative integer"),
        ("1.5", "'1.5' is not a non-negative integer"),
        ("0x3", "'0x3' is not a non-negative integer"),
        ("1-3-5", "'3-5' is not a non-negative integer"),
        ("^1-3", "an exclusion takes one id, not the range '1-3'"),
        ("^", "'' is not a non-negative integer"),
        ("\u0661", "'\u0661' is not a non-negative integer"),  # ARABIC-INDIC DIGIT ONE: isdigit(), not ASCII
        ("3-1", "cpuset '3-1': range 3-1 runs backwards"),
        (str(MAX_CPU_ID + 1), f"{MAX_CPU_ID + 1} is above the limit of {MAX_CPU_ID}"),
        (f"0-{MAX_CPU_ID + 1}", "above the limit"),
        (f"1,^{MAX_CPU_ID + 1}", "above the limit"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_cpuset(text)
    assert message in str(error.value)


def test_what_names_the_value() -> None:
    with pytest.raises(SpecError, match=r"^nodeset '9-2': range 9-2 runs backwards$"):
        parse_cpuset("9-2", what="nodeset")


@pytest.mark.parametrize("value", [3, None, ["0-3"], b"0-3"])
def test_parse_needs_a_string(value: object) -> None:
    with pytest.raises(SpecError, match="must be a string in libvirt cpuset syntax"):
        parse_cpuset(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "  ", "2,^2"])
def test_allow_empty(text: str) -> None:
    assert parse_cpuset(text, allow_empty=True) == frozenset()


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([], ""),
        ([0], "0"),
        ([7, 8], "7-8"),
        ([3, 1, 2], "1-3"),
        ([0, 2, 4], "0,2,4"),
        ([0, 1, 3, 4, 5, 7], "0-1,3-5,7"),
        ([5, 5, 6], "5-6"),
        (frozenset({16, 0}), "0,16"),
        (range(512, 544), "512-543"),
        ((x for x in (9, 1)), "1,9"),
    ],
)
def test_format(ids: object, expected: str) -> None:
    assert format_cpuset(ids) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("^3,1-4", "1-4"),
        ("1-4,^3", "1-2,4"),
        ("3,2,1,0", "0-3"),
        (" 8 , 0-1 ", "0-1,8"),
        ("0-3,2-5", "0-5"),
        ("0-1,^0", "1"),
    ],
)
def test_canonical_form(text: str, canonical: str) -> None:
    assert format_cpuset(parse_cpuset(text)) == canonical


cpu_sets = st.frozensets(st.integers(0, MAX_CPU_ID), min_size=1, max_size=64)


@given(cpu_sets)
def test_format_then_parse_round_trips(ids: frozenset[int]) -> None:
    assert parse_cpuset(format_cpuset(ids)) == ids


@given(cpu_sets)
def test_canonical_form_is_a_fixed_point(ids: frozenset[int]) -> None:
    text = format_cpuset(ids)
    assert format_cpuset(parse_cpuset(text)) == text
    assert "^" not in text
    assert " " not in text


@given(cpu_sets, st.frozensets(st.integers(0, MAX_CPU_ID), max_size=16), st.randoms(use_true_random=False))
def test_items_apply_left_to_right(included: frozenset[int], excluded: frozenset[int], random: Random) -> None:
    items = [str(cpu) for cpu in included] + [f"^{cpu}" for cpu in excluded]
    random.shuffle(items)
    expected: set[int] = set()
    for item in items:
        if item.startswith("^"):
            expected.discard(int(item[1:]))
        else:
            expected.add(int(item))
    text = ",".join(items)
    assert parse_cpuset(text, allow_empty=True) == frozenset(expected)


# -- bounded work (issue 8, point 3) --------------------------------------------------------------------------------


def test_a_caller_limit_and_its_reason() -> None:
    assert parse_cpuset("1023", "nodeset", limit=1023) == {1023}
    with pytest.raises(SpecError) as caught:
        parse_cpuset("0-1024", "nodeset", limit=1023, why="MAX_NUMNODES")
    assert str(caught.value) == "nodeset '0-1024': 1024 is above the limit of 1023 (MAX_NUMNODES)"


def test_the_text_length_is_checked_before_the_text_is_split() -> None:
    text = "0," * (MAX_CPUSET_CHARS // 2) + "0"
    with pytest.raises(SpecError) as caught:
        parse_cpuset(text)
    assert str(caught.value) == (
        f"cpuset {('0,' * 40)!r}... ({len(text)} characters) is {len(text)} characters long, "
        f"above the limit of {MAX_CPUSET_CHARS}"
    )


def test_every_id_written_out_fits_the_length_limit() -> None:
    text = ",".join(map(str, range(MAX_CPU_ID + 1)))
    assert len(text) <= MAX_CPUSET_CHARS
    assert parse_cpuset(text) == frozenset(range(MAX_CPU_ID + 1))


def test_the_ranges_together_are_bounded() -> None:
    # Four full ranges are the most: a fifth would have the set filled again for nothing.
    assert parse_cpuset(",".join([f"0-{MAX_CPU_ID}"] * 4)) == frozenset(range(MAX_CPU_ID + 1))
    text = ",".join([f"0-{MAX_CPU_ID}"] * 5)
    with pytest.raises(SpecError) as caught:
        parse_cpuset(text)
    assert str(caught.value) == (
        f"cpuset {text!r}: its ranges cover more than {MAX_CPUSET_SPAN} ids in total, the limit; write each id once"
    )
