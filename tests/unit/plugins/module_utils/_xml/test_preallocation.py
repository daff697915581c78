# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A cell whose memory libvirt would preallocate on a CPU-less host node is refused before anything is written.

libvirt 9.0 with QEMU 7.2 preallocates with threads on the CPUs of the memory's own host nodes; a CPU-less
node has none, and the guest fails at start with "The nodes select no CPUs" (measured in the lab,
tests/lab/test_lab_capacity.py).  Preallocation comes with hugepages, and with ``<allocation
mode='immediate'/>``.  Host fixture: intel-snc2-cxl, nodes 0-3 with CPUs, 4 and 5 CPU-less CXL memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import CellBinding, check_preallocation
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import plan_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml

HOST = parse_capabilities(
    (Path(__file__).resolve().parents[3] / "fixtures" / "capabilities" / "intel-snc2-cxl.xml").read_text()
)
GIB = 1024 * 1024


def _domain(backing: str = "") -> str:
    return (
        "<domain type='kvm'><name>cxl01</name><memory unit='GiB'>4</memory><vcpu>4</vcpu>"
        f"{backing}<os><type arch='x86_64'>hvm</type></os></domain>"
    )


def _spec(**options: object) -> VnumaSpec:
    return VnumaSpec.from_mapping({"mode": "node", "nodeset": "0,4", "cpuless_cells": True, **options})


def test_hugepages_on_the_cpu_less_cell_are_refused_naming_guest_cell_node_and_cause() -> None:
    with pytest.raises(PlacementError) as caught:
        plan_domain(parse_xml(_domain(), "domain"), HOST, _spec(hugepages=2048))
    message = str(caught.value)
    assert message.startswith("guest cxl01: guest cell 1 is bound to host node 4, which has no CPUs")
    assert "2 MiB hugepages" in message
    assert "The nodes select no CPUs" in message


def test_immediate_allocation_with_a_cpu_less_cell_is_refused() -> None:
    backing = "<memoryBacking><allocation mode='immediate'/></memoryBacking>"
    with pytest.raises(PlacementError) as caught:
        plan_domain(parse_xml(_domain(backing), "domain"), HOST, _spec())
    message = str(caught.value)
    assert message.startswith("guest cxl01: guest cell 1 is bound to host node 4, which has no CPUs")
    assert "remove <allocation mode='immediate'/>" in message


def test_the_users_own_hugepages_for_the_cpu_less_cell_are_judged_too() -> None:
    # Guest cell 1 is the CPU-less one: the user's <page nodeset> names guest cells.
    backing = "<memoryBacking><hugepages><page size='2' unit='MiB' nodeset='1'/></hugepages></memoryBacking>"
    with pytest.raises(PlacementError, match="guest cell 1 is bound to host node 4"):
        plan_domain(parse_xml(_domain(backing), "domain"), HOST, _spec())


@pytest.mark.parametrize(
    ("backing", "options"),
    [
        ("", {}),
        # Hugepages and immediate allocation on cells with CPUs only.
        ("<memoryBacking><allocation mode='immediate'/></memoryBacking>", {"nodeset": "0-1"}),
        ("", {"nodeset": "0-1", "hugepages": 2048}),
        # The user's hugepages for the cell with CPUs only.
        ("<memoryBacking><hugepages><page size='2' unit='MiB' nodeset='0'/></hugepages></memoryBacking>", {}),
        # 'on demand' is no preallocation.
        ("<memoryBacking><allocation mode='ondemand'/></memoryBacking>", {}),
        # restrictive: cgroups confine the memory; the backend names no host node to preallocate on.
        ("<memoryBacking><allocation mode='immediate'/></memoryBacking>", {"memory_mode": "restrictive"}),
    ],
)
def test_what_does_not_preallocate_on_a_cpu_less_node_is_planned(backing: str, options: dict[str, object]) -> None:
    plan = plan_domain(parse_xml(_domain(backing), "domain"), HOST, _spec(**options))
    assert len(plan.layout.cells) == 2


def test_a_cell_bound_to_a_cpu_less_node_and_a_node_with_cpus_is_not_refused() -> None:
    cell = CellBinding(id=0, vcpus=(), memory_kib=GIB, memory_mode="strict", memory_nodes=(0, 4), hugepage_kib=2048)
    check_preallocation(HOST, [cell], immediate=True)


def test_unbound_memory_is_not_refused() -> None:
    check_preallocation(HOST, [CellBinding(id=0, vcpus=(), memory_kib=GIB, hugepage_kib=2048)], immediate=True)
