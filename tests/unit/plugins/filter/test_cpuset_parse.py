# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.cpuset_parse import FilterModule, cpuset_parse
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError


def test_filter_module_exposes_the_filter() -> None:
    assert FilterModule().filters() == {"cpuset_parse": cpuset_parse}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0-3,^2,8", [0, 1, 3, 8]),
        ("^3,1-4", [1, 2, 3, 4]),
        ("1-4,^3", [1, 2, 4]),
        ("8,0,8", [0, 8]),
        (" 0 - 1 , 5", [0, 1, 5]),
        ("16383", [16383]),
        (7, [7]),
    ],
)
def test_values(text: Any, expected: list[int]) -> None:
    assert cpuset_parse(text) == expected


@pytest.mark.parametrize("text", ["", " ", "^1", "1,^1"])
def test_allow_empty(text: str) -> None:
    assert cpuset_parse(text, allow_empty=True) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "vnuma.libvirt.cpuset_parse: cpuset '' selects nothing"),
        ("3-1", "vnuma.libvirt.cpuset_parse: cpuset '3-1': range 3-1 runs backwards"),
        ("0,,1", "vnuma.libvirt.cpuset_parse: cpuset '0,,1': empty item between commas"),
        ("a", "vnuma.libvirt.cpuset_parse: cpuset 'a': 'a' is not a non-negative integer"),
        (
            "16384",
            "vnuma.libvirt.cpuset_parse: cpuset '16384': 16384 is above the limit of 16383 "
            "(libvirt's cpuset bitmap holds 16384 ids)",
        ),
    ],
)
def test_spec_errors_become_filter_errors(text: str, message: str) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        cpuset_parse(text)
    assert str(caught.value) == message
    assert isinstance(caught.value.__cause__, SpecError)


@pytest.mark.parametrize(
    ("value", "kind"),
    [([0, 1], "list"), (None, "None"), (True, "bool"), (1.5, "float"), ({"0": 1}, "dict")],
)
def test_bad_input_types(value: Any, kind: str) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        cpuset_parse(value)
    assert str(caught.value) == f"vnuma.libvirt.cpuset_parse: the input must be a cpuset string, got {kind}"


def test_bad_allow_empty() -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        cpuset_parse("0", allow_empty="yes")
    assert str(caught.value) == "vnuma.libvirt.cpuset_parse: allow_empty must be true or false, got str"
