# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.cpuset_format import FilterModule, cpuset_format
from ansible_collections.vnuma.libvirt.plugins.filter.cpuset_parse import cpuset_parse


def test_filter_module_exposes_the_filter() -> None:
    assert FilterModule().filters() == {"cpuset_format": cpuset_format}


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([8, 0, 1, 2, 3, 5, 2], "0-3,5,8"),
        ([0, 1], "0-1"),
        ([7], "7"),
        ([], ""),
        ((3, 4, 6), "3-4,6"),
        ({16383, 0}, "0,16383"),
    ],
)
def test_values(ids: Any, expected: str) -> None:
    assert cpuset_format(ids) == expected


@pytest.mark.parametrize("text", ["0-3,^2,8", "^3,1-4", "8,0,8", "0,1,2,3,4"])
def test_round_trip_is_canonical(text: str) -> None:
    canonical = cpuset_format(cpuset_parse(text))
    assert cpuset_format(cpuset_parse(canonical)) == canonical


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0-3", "the input must be a list of CPU ids, got str"),
        (3, "the input must be a list of CPU ids, got int"),
        (None, "the input must be a list of CPU ids, got None"),
        ({"0": "a"}, "the input must be a list of CPU ids, got dict"),
        ([0, "1"], "the input must hold CPU ids (integers), got str '1'"),
        ([0, True], "the input must hold CPU ids (integers), got bool True"),
        ([1.0], "the input must hold CPU ids (integers), got float 1.0"),
        ([-1], "the input: CPU id -1 is outside 0-16383"),
        ([16384], "the input: CPU id 16384 is outside 0-16383"),
    ],
)
def test_bad_input(value: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        cpuset_format(value)
    assert str(caught.value) == f"vnuma.libvirt.cpuset_format: {message}"
