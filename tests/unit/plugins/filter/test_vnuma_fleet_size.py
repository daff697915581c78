# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""size_text / vnuma_fleet_size: a size as the role's HTML reports show it, the one rounded formatter's text."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_size import FilterModule, vnuma_fleet_size
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import MAX_MEMORY_KIB
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.diagram import short_size
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import size_text

GIB = 1024**2
SIZES = [
    (0, "0 KiB"),
    (1, "1 KiB"),
    (700, "700 KiB"),
    (1024, "1 MiB"),
    (1536, "1.5 MiB"),
    (512 * 1024, "512 MiB"),
    (GIB, "1 GiB"),
    (GIB + 512, "1 GiB"),
    (3 * GIB // 2, "1.5 GiB"),
    (4548812, "4.3 GiB"),
    (2 * 1024 * GIB, "2 TiB"),
]


@pytest.mark.parametrize(("kib", "text"), SIZES)
def test_a_size_is_shown_as_the_host_diagram_shows_it(kib: int, text: str) -> None:
    assert size_text(kib) == text == short_size(kib)
    assert vnuma_fleet_size(kib) == text
    # A negative one (a node short of memory after the plan) keeps its sign in front.
    if kib:
        assert size_text(-kib) == f"-{text}"


def test_a_size_beyond_any_host_is_refused_naming_the_limit() -> None:
    # 10**400 KiB raised OverflowError from the formatter's float division.
    for kib in (MAX_MEMORY_KIB + 1, -(MAX_MEMORY_KIB + 1), 10**400):
        with pytest.raises(SpecError, match=r"is beyond 4 PiB, all a 52-bit physical address space holds"):
            size_text(kib)
    assert size_text(MAX_MEMORY_KIB) == short_size(MAX_MEMORY_KIB)


def test_the_sizes_the_templates_own_formatter_got_wrong() -> None:
    # report.html.j2 had "1.0 GiB" and "2048 GiB" for these.
    assert size_text(GIB + 512) == "1 GiB"
    assert size_text(2 * 1024 * GIB) == "2 TiB"


@pytest.mark.parametrize("bad", [None, True, 1.5, "1 GiB", [1]])
def test_anything_but_a_whole_number_of_kib_is_refused(bad: Any) -> None:
    with pytest.raises(SpecError, match="a size must be a whole number of KiB"):
        size_text(bad)
    with pytest.raises(AnsibleFilterError, match=r"^vnuma\.libvirt\.vnuma_fleet_size: a size must be"):
        vnuma_fleet_size(bad)


def test_the_filter_module() -> None:
    assert FilterModule().filters() == {"vnuma_fleet_size": vnuma_fleet_size}
