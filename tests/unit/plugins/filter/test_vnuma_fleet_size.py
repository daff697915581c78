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
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.diagram import short_size
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.fleet import size_text

GIB = 1024**2
SIZES = (0, 1, 700, 1024, 1536, 512 * 1024, GIB, GIB + 512, 3 * GIB // 2, 4548812, 2 * 1024 * GIB, 3 * 1024**4)


@pytest.mark.parametrize("kib", SIZES)
def test_a_size_is_the_one_formatters(kib: int) -> None:
    assert size_text(kib) == short_size(kib)
    assert vnuma_fleet_size(kib) == short_size(kib)
    # A negative one (a node short of memory after the plan) keeps its sign in front.
    if kib:
        assert size_text(-kib) == f"-{short_size(kib)}"


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
