# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one dedicated-CPU rule (issue 9): which host CPUs a guest holds for itself."""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import DEDICATED_PINNINGS, PINNINGS
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import held_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

# intel-2s-smt2: core k of node 0 is CPUs k and k+16 (k < 8), of node 1 CPUs k and k+16 (8 <= k < 16).
SMT2 = host("intel-2s-smt2")


@pytest.mark.parametrize(
    ("pins", "pinning", "expected"),
    [
        pytest.param([(3,), (0, 1), (17,)], None, (3, 17), id="unknown: single-CPU pins only"),
        pytest.param([(3,), (17,)], "node", (), id="node: nothing"),
        pytest.param([(3,)], "none", (), id="none: nothing"),
        pytest.param([(0,), (16,)], "thread", (0, 16), id="thread: the pinned threads"),
        pytest.param([(0,), (1,)], "core", (0, 1, 16, 17), id="core: whole cores"),
        pytest.param([(0, 16)], "core", (), id="core: a shared pin holds nothing"),
        pytest.param([], "core", (), id="core without pins"),
        pytest.param([(5,), (5,)], "thread", (5,), id="one CPU twice"),
    ],
)
def test_held_cpus(pins: list[tuple[int, ...]], pinning: str | None, expected: tuple[int, ...]) -> None:
    assert held_cpus(pins, pinning, SMT2) == expected


def test_dedicated_pinnings_are_spec_pinnings() -> None:
    assert set(DEDICATED_PINNINGS) < set(PINNINGS)


@pytest.mark.parametrize("pinning", PINNINGS)
def test_a_layout_holds_its_pins_under_dedicated_pinning(pinning: str) -> None:
    layout: Layout = compute_layout(SMT2, VnumaSpec(pinning=pinning), GuestShape(vcpus=4, memory_kib=4 << 20))
    held = held_cpus(layout.vcpu_pins or (), pinning, SMT2)
    assert layout.dedicated is (pinning in DEDICATED_PINNINGS)
    if not layout.dedicated:
        assert held == ()
        return
    pinned = {cpu for cpus in layout.vcpu_pins or () for cpu in cpus}
    assert pinned <= set(held)
    assert len(pinned) == 4
    if pinning == "core":
        assert set(held) == {cpu for node in SMT2.nodes for core in node.cores if pinned & set(core) for cpu in core}
    else:
        assert set(held) == pinned
