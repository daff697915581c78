# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``<vcpu>`` and ``<vcpus>``: the boot state of each vCPU under a layout."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.tests.support.domain_cases import (
    PLAIN,
    make_layout,
    render,
)

# --------------------------------------------------------------------------------------------------
# <vcpu> and <vcpus>
# --------------------------------------------------------------------------------------------------


def states(root: Any) -> list[tuple[int, str, str, str | None]]:
    return [
        (int(v.get("id")), v.get("enabled"), v.get("hotpluggable"), v.get("order")) for v in root.iterfind("vcpus/vcpu")
    ]


def test_vcpus_balanced_enable_order() -> None:
    root, _unused, _unused = render(PLAIN, make_layout(vcpus=8, current=3, enable_order=(0, 4, 1, 5, 2, 6, 3, 7)))
    assert root.find("vcpu").get("current") == "3"
    assert root.find("vcpu").text == "8"
    assert states(root) == [
        (0, "yes", "no", "1"),
        (1, "yes", "no", "3"),
        (2, "no", "yes", None),
        (3, "no", "yes", None),
        (4, "yes", "yes", "2"),
        (5, "no", "yes", None),
        (6, "no", "yes", None),
        (7, "no", "yes", None),
    ]


def test_vcpus_prefix_is_the_boot_set() -> None:
    # Boot vCPUs take their places in the enable order (1, 3, 2) ascending by id, as libvirt requires
    # (test_layout_policy.py checks every shape).
    root, _unused, _unused = render(PLAIN, make_layout(vcpus=4, current=3, enable_order=(0, 2, 1, 3)))
    assert states(root) == [(0, "yes", "no", "1"), (1, "yes", "no", "2"), (2, "yes", "no", "3"), (3, "no", "yes", None)]


def test_all_vcpus_online_removes_vcpus_and_current() -> None:
    domain = PLAIN.replace(
        "<vcpu>8</vcpu>",
        "<vcpu current='1'>2</vcpu>\n  <vcpus>\n    <vcpu id='0' enabled='yes' hotpluggable='no'/>\n"
        "    <vcpu id='1' enabled='no' hotpluggable='yes'/>\n  </vcpus>",
    )
    root, before, target = render(domain, make_layout(vcpus=8))
    assert root.find("vcpus") is None
    assert "current" not in root.find("vcpu").attrib
    assert before.vcpu.current == 1
    assert target.vcpu.current is None
    assert target.vcpus is None


@pytest.mark.parametrize(
    ("enable_order", "current", "fragment"),
    [((1, 0, 2, 3), 1, "vCPU 0 must be online"), ((0, 1, 1, 3), 2, "not a permutation")],
)
def test_bad_enable_order_is_refused(enable_order: tuple[int, ...], current: int, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        render(PLAIN, make_layout(vcpus=4, current=current, enable_order=enable_order))


def test_vcpu_placement_auto_becomes_static_and_cpuset_stays() -> None:
    domain = PLAIN.replace("<vcpu>8</vcpu>", "<vcpu placement='auto' cpuset='0-15'>8</vcpu>")
    root, _unused, _unused = render(domain, make_layout())
    assert dict(root.find("vcpu").attrib) == {"placement": "static", "cpuset": "0-15"}
