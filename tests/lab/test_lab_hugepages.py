# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A hugepage-backed guest on the lab draws each cell's pages from its own host node's 2 MiB pool.

The guest is one of the modes run's (lab_checks.HUGEPAGES_GUEST): four cells, two on node 1 and two on
node 2, each bound strictly and backed by 2 MiB pages.  The lab reserved a pool on every
node at boot (tests/lab/four-node.yml).
"""

from __future__ import annotations

from collections import Counter

import pytest
from lab_checks import HUGEPAGES_GUEST, ModesRun, PlannedGuest, memory_by_policy, parse_cpuset

PAGE_KIB = 2048


@pytest.fixture(scope="module")
def guest(modes_run: ModesRun) -> PlannedGuest:
    return modes_run.guests[HUGEPAGES_GUEST]


def planned_pages(guest: PlannedGuest) -> Counter[int]:
    """2 MiB pages per host node, from the cells vnuma_domain planned (each bound to one node here)."""
    pages: Counter[int] = Counter()
    for cell in guest.layout["cells"]:
        [node] = parse_cpuset(cell["memory_nodes"])
        pages[node] += cell["memory_kib"] // PAGE_KIB
    return pages


def test_the_plan_backs_every_cell_with_2mib_pages_on_its_own_node(guest: PlannedGuest) -> None:
    assert guest.layout["hugepages_kib"] == PAGE_KIB
    cells = guest.layout["cells"]
    assert [cell["host_nodes"] for cell in cells] == [cell["memory_nodes"] for cell in cells] == ["1", "1", "2", "2"]
    assert all(cell["memory_kib"] % PAGE_KIB == 0 for cell in cells)


def test_numa_maps_shows_each_cells_huge_pages_on_its_node(guest: PlannedGuest) -> None:
    found = memory_by_policy(guest.kernel.regions, huge=True)
    planned = planned_pages(guest)
    assert set(found) == {("bind", frozenset({node})) for node in planned}, found
    for node, pages in planned.items():
        counts = found["bind", frozenset({node})]
        # Every page of the node's cells is there; the payload leaves at most cell 0's first 2 MiB page alone.
        assert set(counts) == {node}, f"node {node}: {dict(counts)}"
        assert pages - 1 <= counts[node] // PAGE_KIB <= pages, f"node {node}: {dict(counts)} KiB, {pages} pages planned"
    # No 4 KiB guest RAM under a binding: all of it is in the hugepage mappings.
    assert memory_by_policy(guest.kernel.regions, huge=False) == {}


def test_each_nodes_free_pool_shrinks_by_its_cells_pages(modes_run: ModesRun, guest: PlannedGuest) -> None:
    report = modes_run.waves[guest.wave]
    used = {node: report.hugepages_before[node] - report.hugepages_after[node] for node in report.hugepages_before}
    found = memory_by_policy(guest.kernel.regions, huge=True)
    for node in planned_pages(guest):
        faulted = found["bind", frozenset({node})][node] // PAGE_KIB
        # Other lab tests' guests may take pages at the same time, never give ours back.
        assert used[node] >= faulted > 0, f"node {node}: {used[node]} pages taken from its pool, {faulted} faulted in"
