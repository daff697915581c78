# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``<cpu><numa>`` and ``<cpu>``: guest distances and cells as libvirt accepts them, and the rest of ``<cpu>`` kept."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import validate_distances
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cpu_numa import Numa, NumaCell, Sibling
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.tests.support.domain_cases import (
    GIB,
    PLAIN,
    RING,
    c14n,
    make_layout,
    render,
    xml,
)

# --------------------------------------------------------------------------------------------------
# Distances: nothing libvirt would reject (and crash on) may ever be rendered
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matrix", "fragment"),
    [
        (((11, 21), (21, 10)), "to itself is 11"),
        (((10, 21), (21, 20)), "to itself is 20"),
        (((10, 10), (10, 10)), "0->1 is 10"),
        (((10, 9), (9, 10)), "0->1 is 9"),
        (((10, 0), (0, 10)), "0->1 is 0"),
        (((10, 256), (256, 10)), "0->1 is 256"),
        (((10, 21), (31, 10)), "symmetric"),
        (((10, 21, 31), (21, 10, 21)), "has 3 distances for 2 cells"),
        (((10, 21), (21,)), "has 1 distances for 2 cells"),
        (((10, True), (True, 10)), "not an integer"),
        (((10, "21"), ("21", 10)), "not an integer"),
    ],
)
def test_invalid_distance_matrices_are_refused(matrix: Any, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_distances(matrix)
    assert fragment in str(caught.value)


def test_valid_distance_matrices_pass() -> None:
    validate_distances(RING)
    validate_distances(((10, 11), (11, 10)))
    validate_distances(((10, 255), (255, 10)))
    validate_distances(((10,),))


def _cells(rows: list[list[tuple[int, int]]]) -> Numa:
    return Numa(
        tuple(NumaCell(i, (i,), GIB, distances=tuple(Sibling(s, v) for s, v in row)) for i, row in enumerate(rows))
    )


@pytest.mark.parametrize(
    ("numa", "fragment"),
    [
        (_cells([[(0, 10), (2, 21)], [(0, 21), (1, 10)]]), "exactly one to each"),
        (_cells([[(0, 10)], [(0, 21), (1, 10)]]), "exactly one to each"),
        (_cells([[(0, 10), (1, 21), (1, 21)], [(0, 21), (1, 10)]]), "exactly one to each"),
        (_cells([[(0, 10), (1, 21)], []]), "every guest cell has <distances> or none"),
        (_cells([[(0, 10), (1, 10)], [(0, 10), (1, 10)]]), "0->1 is 10"),
        (Numa((NumaCell(0, (0,), GIB), NumaCell(2, (1,), GIB))), "must be 0..1"),
        (Numa((NumaCell(0, (0, 1), GIB), NumaCell(1, (1,), GIB))), "vCPU 1 is in guest cells 0 and 1"),
    ],
)
def test_invalid_cells_are_refused(numa: Numa, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        numa.to_element()
    assert fragment in str(caught.value)


def test_invalid_layout_distances_never_reach_the_document() -> None:
    layout = make_layout(cells=2, distances=((10, 21), (21, 10)))
    bad_cells = (layout.cells[0], replace(layout.cells[1], distances=(9, 10)))
    bad = replace(layout, cells=bad_cells)
    root = xml(PLAIN)
    before = c14n(root)
    with pytest.raises(SpecError, match="0->1 is 21 but 1->0 is 9"):
        DomainNuma.from_layout(bad, DomainNuma.from_domain(root))
    # A model built by hand is checked again by apply, before it writes anything.
    good = DomainNuma.from_layout(layout, DomainNuma.from_domain(root))
    forged = replace(good, numa=Numa((good.numa.cells[0], replace(good.numa.cells[1], distances=(Sibling(0, 21),)))))
    with pytest.raises(SpecError):
        forged.apply(root)
    assert c14n(root) == before


def test_one_cell_has_no_distances() -> None:
    root, _unused, target = render(PLAIN, make_layout(cells=1, distances=((10,),)))
    assert root.find("cpu/numa/cell/distances") is None
    assert target.numa.cells[0].distances == ()


def test_cpuless_cell_has_no_cpus_attribute() -> None:
    layout = make_layout(cells=2, pins=False)
    layout = replace(
        layout, cells=(replace(layout.cells[0], vcpus=tuple(range(8))), replace(layout.cells[1], vcpus=()))
    )
    root, _unused, _unused = render(PLAIN, layout)
    cells = root.findall("cpu/numa/cell")
    assert cells[0].get("cpus") == "0-7"
    assert "cpus" not in cells[1].attrib


# --------------------------------------------------------------------------------------------------
# <cpu>
# --------------------------------------------------------------------------------------------------


def test_cpu_is_created_without_mode() -> None:
    root, _unused, _unused = render(PLAIN, make_layout())
    cpu = root.find("cpu")
    assert dict(cpu.attrib) == {}
    assert [child.tag for child in cpu] == ["topology", "numa"]
    assert cpu.getprevious().tag == "os"


def test_cpu_keeps_mode_model_and_features_in_schema_order() -> None:
    domain = PLAIN.replace(
        "</os>",
        "</os>\n  <cpu mode='custom' match='exact'>\n    <model fallback='allow'>Skylake-Server</model>\n"
        "    <vendor>Intel</vendor>\n    <feature policy='require' name='pcid'/>\n"
        "    <numa>\n      <cell id='0' cpus='0-7' memory='2' unit='GiB' memAccess='shared' discard='no'>\n"
        "        <cache level='1' associativity='direct' policy='writeback'>\n"
        "          <size value='10' unit='KiB'/>\n          <line value='8' unit='B'/>\n        </cache>\n"
        "      </cell>\n    </numa>\n  </cpu>",
    )
    root, _unused, _unused = render(domain, make_layout())
    cpu = root.find("cpu")
    assert dict(cpu.attrib) == {"mode": "custom", "match": "exact"}
    assert [child.tag for child in cpu] == ["model", "vendor", "topology", "feature", "numa"]
    cells = cpu.findall("numa/cell")
    # HMAT caches stay with the cell of the same id; memAccess/discard too, and the new cell 1 takes the
    # value the domain's only cell has (layout_policy.numa_for, tested in test_layout_policy.py).
    assert (cells[0].get("memAccess"), cells[0].get("discard")) == ("shared", "no")
    assert cells[0].find("cache/size").get("value") == "10"
    assert (cells[1].get("memAccess"), cells[1].get("discard")) == ("shared", "no")
    assert cells[1].find("cache") is None


def test_interconnects_naming_lost_cells_are_refused() -> None:
    domain = PLAIN.replace(
        "</os>",
        "</os>\n  <cpu>\n    <numa>\n      <cell id='0' cpus='0-3' memory='1' unit='GiB'/>\n"
        "      <cell id='1' cpus='4-5' memory='1' unit='GiB'/>\n      <cell id='2' cpus='6-7' memory='1' unit='GiB'/>\n"
        "      <interconnects>\n        <latency initiator='0' target='2' type='access' value='5'/>\n"
        "      </interconnects>\n    </numa>\n  </cpu>",
    )
    root = xml(domain)
    # Refused when planned, before anything is written (check mode says so too).
    with pytest.raises(SpecError, match="target='2'"):
        DomainNuma.from_layout(make_layout(cells=2), DomainNuma.from_domain(root))
    # With enough cells they are kept.
    root, _unused, _unused = render(domain, make_layout(cells=4))
    assert root.find("cpu/numa/interconnects/latency").get("target") == "2"
