# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hand-written domain definitions read as bindings and placed on the host fixtures, and the layouts the
partitioner computes read back from the domain they are rendered into.

Each table row is a host fixture, the owned parts of a definition as a user or another tool writes them,
and what the row is about: per cell whether it is aligned and its locality, and the guest's memory per
host node and page size, worked out by hand.  The property test renders every layout of the partitioner's
random cases into a domain (``plan_domain`` / ``render_plan``, the expand path) and requires that the
definition reads back as the binding the layout itself describes (``tests/support/bindings.py``),
placed identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import dimm_granule_kib, plan_dimms
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    DimmBinding,
    GuestPlacement,
    place_guest,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import binding_from_domain, dedicated_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import plan_domain, render_plan
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import MemoryDevice
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import store_spec
from ansible_collections.vnuma.libvirt.tests.support.bindings import binding_from_layout
from ansible_collections.vnuma.libvirt.tests.support.hosts import host
from ansible_collections.vnuma.libvirt.tests.support.layouts import memory_by_node
from ansible_collections.vnuma.libvirt.tests.unit.plugins.module_utils._core.test_partitioner_properties import (
    Case as LayoutCase,
)
from ansible_collections.vnuma.libvirt.tests.unit.plugins.module_utils._core.test_partitioner_properties import (
    cases,
    describe,
    feasible_cases,
    scaled,
    sometimes,
)

MIB = 1024
GIB = 1024 * 1024
GUEST = "db01"
RING = "seed-4node-ring"


def domain(body: str, memory_kib: int = 4 * GIB) -> Any:
    """A parsed domain: name, ``<memory>``, the given owned parts, and what every domain has."""
    return parse_xml(
        f"<domain type='kvm'><name>{GUEST}</name><memory unit='KiB'>{memory_kib}</memory>{body}"
        "<os><type arch='x86_64'>hvm</type></os></domain>",
        "domain XML",
        root_tag="domain",
    )


def pins(**by_cpuset: str) -> str:
    """``<cputune>`` pinning the vCPU ranges (keyword ``v0_1`` = vCPUs 0-1) to cpusets."""
    lines = []
    for name, cpuset in by_cpuset.items():
        first, _sep, last = name[1:].partition("_")
        for vcpu in range(int(first), int(last or first) + 1):
            lines.append(f"<vcpupin vcpu='{vcpu}' cpuset='{cpuset}'/>")
    return f"<cputune>{''.join(lines)}</cputune>"


def numa(*cells: tuple[str | None, int]) -> str:
    """``<cpu><numa>``: one cell per (vCPUs or None for a CPU-less cell, memory in GiB)."""
    markup = "".join(
        f"<cell id='{index}'{'' if vcpus is None else f' cpus={vcpus!r}'} memory='{kib}' unit='GiB'/>"
        for index, (vcpus, kib) in enumerate(cells)
    )
    return f"<cpu><numa>{markup}</numa></cpu>"


def dimm(size_mib: int, cell: int, nodemask: str | None = None) -> str:
    source = "" if nodemask is None else f"<source><nodemask>{nodemask}</nodemask></source>"
    target = f"<target><size unit='MiB'>{size_mib}</size><node>{cell}</node></target>"
    return f"<memory model='dimm'>{source}{target}</memory>"


def placed(fixture: str, root: Any) -> GuestPlacement:
    return place_guest(host(fixture), binding_from_domain(DomainNuma.from_domain(root), GUEST))


@dataclass(frozen=True)
class Row:
    id: str
    host: str
    body: str
    aligned: tuple[bool, ...]
    locality: tuple[float, ...]
    # Page size (None: normal pages) -> KiB per host node.
    memory: dict[int | None, dict[int, int]]
    guest_locality: float | None = None
    memory_kib: int = 4 * GIB
    cpu_share: tuple[dict[int, float], ...] | None = field(default=None)


def every(nodes: range | tuple[int, ...], kib: int) -> dict[int, int]:
    return dict.fromkeys(nodes, kib)


ROWS = [
    Row(
        "no NUMA, no pins: 1/4 of the vCPU time x 1/4 of the memory on each ring node",
        RING,
        "<vcpu>4</vcpu>",
        (False,),
        (0.25,),
        {None: every(range(4), GIB)},
        cpu_share=(every(range(4), 0.25),),
    ),
    Row(
        "no NUMA, no pins: unequal nodes, 16/8/12 of 36 CPUs x 64/16/32 of 112 GiB",
        "unequal-nodes",
        "<vcpu>8</vcpu>",
        (False,),
        ((16 * 64 + 8 * 16 + 12 * 32) / (36 * 112),),
        # 4 GiB x 64/112, 16/112, 32/112 = ...745.14, ...186.29, ...372.57: the left-over KiB to the largest remainder
        {None: {0: 2396745, 1: 599186, 2: 1198373}},
    ),
    Row(
        "no NUMA, no pins: memory-only CXL nodes take unbound memory by their size",
        "intel-snc2-cxl",
        "<vcpu>8</vcpu>",
        (False,),
        (4 * 0.25 * 0.125,),
        {None: {**every(range(4), 512 * MIB), 4: GIB, 5: GIB}},
    ),
    Row(
        "no NUMA, no pins: sparse node ids 0 and 8",
        "sparse-ids",
        "<vcpu>4</vcpu>",
        (False,),
        (0.5,),
        {None: {0: 2 * GIB, 8: 2 * GIB}},
    ),
    Row(
        "pinned and bound to ring node 1",
        RING,
        "<vcpu>4</vcpu>" + pins(v0_3="4-7") + "<numatune><memory mode='strict' nodeset='1'/></numatune>",
        (True,),
        (1.0,),
        {None: {1: 4 * GIB}},
    ),
    Row(
        "<vcpu cpuset> is every vCPU's affinity; <memory> without a mode is strict",
        RING,
        "<vcpu cpuset='4-7'>4</vcpu><numatune><memory nodeset='1'/></numatune>",
        (True,),
        (1.0,),
        {None: {1: 4 * GIB}},
    ),
    Row(
        "pinned to node 0, memory strict on node 2",
        RING,
        "<vcpu>4</vcpu>" + pins(v0_3="0-3") + "<numatune><memory mode='strict' nodeset='2'/></numatune>",
        (False,),
        (0.0,),
        {None: {2: 4 * GIB}},
    ),
    Row(
        "interleave over nodes 0-1 with the vCPUs on both",
        RING,
        "<vcpu cpuset='0-7'>4</vcpu><numatune><memory mode='interleave' nodeset='0-1'/></numatune>",
        (True,),
        (0.5,),
        {None: {0: 2 * GIB, 1: 2 * GIB}},
    ),
    Row(
        "<vcpu cpuset> for most, a <vcpupin> moves vCPU 3 to node 1",
        RING,
        "<vcpu cpuset='0-3'>4</vcpu>" + pins(v3="4") + "<numatune><memory nodeset='0'/></numatune>",
        (False,),
        (0.75,),
        {None: {0: 4 * GIB}},
        cpu_share=({0: 0.75, 1: 0.25},),
    ),
    Row(
        "a <memnode> overrides <numatune><memory> for its cell; the other cell follows <memory>",
        RING,
        "<vcpu>4</vcpu>"
        + pins(v0_1="0-3", v2_3="4-7")
        + numa(("0-1", 2), ("2-3", 2))
        + "<numatune><memory mode='strict' nodeset='0-3'/><memnode cellid='0' mode='strict' nodeset='0'/></numatune>",
        (True, False),
        (1.0, 0.25),
        {None: {0: 2 * GIB + 512 * MIB, 1: 512 * MIB, 2: 512 * MIB, 3: 512 * MIB}},
        guest_locality=0.625,
    ),
    Row(
        "a <memnode> in another mode than <memory>",
        RING,
        "<vcpu>4</vcpu>"
        + pins(v0_1="0-3", v2_3="4-7")
        + numa(("0-1", 2), ("2-3", 2))
        + "<numatune><memory mode='preferred' nodeset='2'/>"
        + "<memnode cellid='1' mode='interleave' nodeset='1'/></numatune>",
        (False, True),
        (0.0, 1.0),
        {None: {2: 2 * GIB, 1: 2 * GIB}},
    ),
    Row(
        "a <memnode> without <numatune><memory>: the other cell is unbound",
        RING,
        "<vcpu>4</vcpu>"
        + pins(v0_1="0-3", v2_3="4-7")
        + numa(("0-1", 2), ("2-3", 2))
        + "<numatune><memnode cellid='0' mode='restrictive' nodeset='0'/></numatune>",
        (True, False),
        (1.0, 0.25),
        {None: {0: 2 * GIB + 512 * MIB, 1: 512 * MIB, 2: 512 * MIB, 3: 512 * MIB}},
    ),
    Row(
        "placement='auto' (numad decides) counts as unbound",
        RING,
        "<vcpu placement='auto'>4</vcpu><numatune><memory mode='strict' placement='auto'/></numatune>",
        (False,),
        (0.25,),
        {None: every(range(4), GIB)},
    ),
    Row(
        "placement='auto' pins the vCPUs where numad says: the <vcpu cpuset> is ignored",
        RING,
        "<vcpu placement='auto' cpuset='4-7'>4</vcpu><numatune><memory mode='strict' placement='auto'/></numatune>",
        (False,),
        (0.25,),
        {None: every(range(4), GIB)},
        cpu_share=(every(range(4), 0.25),),
    ),
    Row(
        "pinned to node 1, memory left to numad: libvirt drops a nodeset under placement='auto'",
        RING,
        "<vcpu>4</vcpu>"
        + pins(v0_3="4-7")
        + "<numatune><memory mode='strict' nodeset='1' placement='auto'/></numatune>",
        (False,),
        (0.25,),
        {None: every(range(4), GIB)},
    ),
    Row(
        "hugepages for cell 0 only (page nodeset = guest cells)",
        "intel-2s-smt2",
        "<vcpu>4</vcpu>"
        + pins(v0_1="0-7", v2_3="8-15")
        + numa(("0-1", 1), ("2-3", 1))
        + "<numatune><memnode cellid='0' nodeset='0'/><memnode cellid='1' nodeset='1'/></numatune>"
        + "<memoryBacking><hugepages><page size='2' unit='MiB' nodeset='0'/></hugepages></memoryBacking>",
        (True, True),
        (1.0, 1.0),
        {2048: {0: GIB}, None: {1: GIB}, 1048576: {}},
        memory_kib=2 * GIB,
    ),
    Row(
        "DIMMs are backed by their cell's hugepages unless their <source><pagesize> says otherwise",
        "intel-2s-smt2",
        "<vcpu>4</vcpu>"
        + pins(v0_1="0-7", v2_3="8-15")
        + numa(("0-1", 1), ("2-3", 1))
        + "<maxMemory slots='4' unit='GiB'>8</maxMemory>"
        + "<numatune><memnode cellid='0' nodeset='0'/><memnode cellid='1' nodeset='1'/></numatune>"
        + "<memoryBacking><hugepages><page size='2' unit='MiB' nodeset='0'/></hugepages></memoryBacking>"
        + f"<devices>{dimm(512, 0)}{dimm(256, 1)}"
        + "<memory model='dimm'><source><pagesize unit='KiB'>4</pagesize></source>"
        + "<target><size unit='MiB'>128</size><node>0</node></target></memory></devices>",
        (True, True),
        (1.0, 1.0),
        {2048: {0: GIB + 512 * MIB}, None: {0: 128 * MIB, 1: GIB + 256 * MIB}},
        memory_kib=2 * GIB + 896 * MIB,
    ),
    Row(
        "hugepages: a page without nodeset backs the cells no other page names",
        "intel-2s-smt2",
        "<vcpu>4</vcpu>"
        + pins(v0_1="0-7", v2_3="8-15")
        + numa(("0-1", 1), ("2-3", 1))
        + "<numatune><memory mode='strict' nodeset='0-1'/></numatune>"
        + "<memoryBacking><hugepages><page size='1' unit='GiB' nodeset='1'/><page size='2048'/></hugepages>"
        + "</memoryBacking>",
        (False, False),
        (0.5, 0.5),
        {2048: {0: GIB // 2, 1: GIB // 2}, 1048576: {0: GIB // 2, 1: GIB // 2}, None: {}},
        memory_kib=2 * GIB,
    ),
    Row(
        "DIMMs: its own <nodemask>, its cell's <memnode>, or unbound with its cell",
        RING,
        "<vcpu>4</vcpu>"
        + pins(v0_1="0-3", v2_3="4-7")
        + numa(("0-1", 2), ("2-3", 2))
        + "<maxMemory slots='4' unit='GiB'>16</maxMemory>"
        + "<numatune><memnode cellid='0' mode='strict' nodeset='0'/></numatune>"
        + f"<devices>{dimm(1024, 0)}{dimm(512, 1, '2-3')}{dimm(1024, 1)}</devices>",
        (True, False),
        (1.0, 0.25),
        # cell 0: 2 GiB on node 0; cell 1: 512 MiB on each node; DIMMs: 1 GiB on node 0, 256 MiB on 2 and 3,
        # 256 MiB on each node.
        {None: {0: 3840 * MIB, 1: 768 * MIB, 2: 1024 * MIB, 3: 1024 * MIB}},
        memory_kib=6 * GIB + 512 * MIB,
    ),
    Row(
        "DIMMs without <nodemask> in a cell without <memnode> follow <numatune><memory>",
        RING,
        "<vcpu>4</vcpu>"
        + pins(v0_1="0-3", v2_3="12-15")
        + numa(("0-1", 2), ("2-3", 2))
        + "<maxMemory slots='4' unit='GiB'>16</maxMemory>"
        + "<numatune><memory mode='strict' nodeset='3'/><memnode cellid='0' mode='strict' nodeset='0'/></numatune>"
        + f"<devices>{dimm(1024, 0)}{dimm(1024, 1)}</devices>",
        (True, True),
        (1.0, 1.0),
        {None: {0: 3 * GIB, 3: 3 * GIB}},
        memory_kib=6 * GIB,
    ),
    Row(
        "no NUMA: the boot memory is <memory> less the DIMMs",
        RING,
        "<vcpu>4</vcpu><numatune><memory mode='strict' nodeset='2'/></numatune>"
        + f"<devices>{dimm(2048, 0)}</devices>",
        (False,),
        (0.25,),
        {None: {2: 6 * GIB}},
        memory_kib=6 * GIB,
    ),
    Row(
        "memory on a node the host lacks is kept by its id",
        RING,
        "<vcpu cpuset='0-3'>4</vcpu><numatune><memory mode='strict' nodeset='0,7'/></numatune>",
        (False,),
        (0.5,),
        {None: {0: 2 * GIB, 7: 2 * GIB}},
    ),
    Row(
        "vCPU pins naming CPUs the host lacks: CPU 64 alone runs nowhere, '2,64' runs on CPU 2",
        RING,
        "<vcpu>4</vcpu>" + pins(v0_1="0-3", v2="2,64", v3="64") + "<numatune><memory nodeset='0'/></numatune>",
        (False,),
        (0.75,),
        {None: {0: 4 * GIB}},
        cpu_share=({0: 0.75},),
    ),
    Row(
        "a CPU-less cell on a CXL node: aligned when bound, no part in the guest's locality",
        "intel-snc2-cxl",
        "<vcpu cpuset='0-3,16-19'>4</vcpu>"
        + numa(("0-3", 2), (None, 2))
        + "<numatune><memnode cellid='0' nodeset='0'/><memnode cellid='1' nodeset='4'/></numatune>",
        (True, True),
        (1.0, 0.0),
        {None: {0: 2 * GIB, 4: 2 * GIB}},
        guest_locality=1.0,
        cpu_share=({0: 1.0}, {}),
    ),
    Row(
        "memory split over a CPU node and a CXL node: half local",
        "intel-snc2-cxl",
        "<vcpu cpuset='0-3,16-19'>4</vcpu><numatune><memory mode='strict' nodeset='0,4'/></numatune>",
        (False,),
        (0.5,),
        {None: {0: 2 * GIB, 4: 2 * GIB}},
    ),
    Row(
        "sparse ids: a cell per POWER9 chip",
        "sparse-ids",
        "<vcpu>4</vcpu>"
        + pins(v0_1="0-15", v2_3="16-31")
        + numa(("0-1", 2), ("2-3", 2))
        + "<numatune><memnode cellid='0' nodeset='0'/><memnode cellid='1' nodeset='8'/></numatune>",
        (True, True),
        (1.0, 1.0),
        {None: {0: 2 * GIB, 8: 2 * GIB}},
    ),
    Row(
        "sparse ids: a definition written for a dense host binds node 1, which this host lacks",
        "sparse-ids",
        "<vcpu>4</vcpu>"
        + pins(v0_1="0-15", v2_3="16-31")
        + numa(("0-1", 2), ("2-3", 2))
        + "<numatune><memnode cellid='0' nodeset='0'/><memnode cellid='1' nodeset='1'/></numatune>",
        (True, False),
        (1.0, 0.0),
        {None: {0: 2 * GIB, 1: 2 * GIB}},
    ),
    Row(
        "a memory-less node's vCPUs with memory on the nearest node: remote, not aligned",
        "memoryless-node",
        "<vcpu cpuset='8-15,40-47'>4</vcpu><numatune><memory mode='strict' nodeset='0'/></numatune>",
        (False,),
        (0.0,),
        {None: {0: 4 * GIB}},
    ),
    Row(
        "offline CPUs: the host's 7 online CPUs, 4 on node 0 and 3 on node 1",
        "offline-cpus",
        "<vcpu>4</vcpu><numatune><memory mode='strict' nodeset='0'/></numatune>",
        (False,),
        (4 / 7,),
        {None: {0: 4 * GIB}},
        cpu_share=({0: 4 / 7, 1: 3 / 7},),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_definition_placement(row: Row) -> None:
    placement = placed(row.host, domain(row.body, row.memory_kib))
    assert tuple(cell.aligned for cell in placement.cells) == row.aligned
    assert tuple(cell.locality for cell in placement.cells) == pytest.approx(row.locality, abs=1e-6)
    if row.guest_locality is not None:
        assert placement.locality == pytest.approx(row.guest_locality, abs=1e-9)
    for page, expected in row.memory.items():
        assert memory_by_node(placement, page) == expected, page
    if row.cpu_share is not None:
        assert [dict(cell.cpu_share) for cell in placement.cells] == [pytest.approx(share) for share in row.cpu_share]
    for cell in placement.cells:
        assert sum(cell.memory_share.values()) == cell.memory_kib


def test_binding_carries_the_guest_state_and_the_emulator_pin() -> None:
    root = domain("<vcpu current='2'>4</vcpu><cputune><emulatorpin cpuset='14-15'/></cputune>")
    binding = binding_from_domain(DomainNuma.from_domain(root), GUEST, True, True, dedicated_cpus=(5, 3, 5))
    assert (binding.name, binding.running, binding.autostart, binding.source) == (GUEST, True, True, "defined")
    assert binding.dedicated_cpus == (3, 5)
    assert binding.emulator_cpus == (14, 15) and binding.pinned
    assert binding.vcpu_cpus == {} and binding.default_cpus is None
    # Without NUMA: one cell 0 holding every vCPU (offline ones included) and all the memory, unbound.
    (cell,) = binding.cells
    assert (cell.id, cell.vcpus, cell.memory_kib) == (0, (0, 1, 2, 3), 4 * GIB)
    assert (cell.memory_mode, cell.hugepage_kib) == (None, None)


def test_numatune_memory_without_nodeset_is_unbound() -> None:
    binding = binding_from_domain(
        DomainNuma.from_domain(domain("<vcpu>2</vcpu><numatune><memory mode='strict'/></numatune>")), GUEST
    )
    assert binding.cells[0].memory_mode is None


# -- dedicated_cpus --------------------------------------------------------------------------------------

# intel-2s-smt2: core k of node 0 is CPUs k and k+16 (k < 8), of node 1 CPUs k and k+16 (8 <= k < 16).
SMT2 = "intel-2s-smt2"


@pytest.mark.parametrize(
    ("pinning", "cputune", "expected"),
    [
        pytest.param(None, pins(v0="3", v1="0-1", v2="17"), {3, 17}, id="hand-pinned: single-CPU pins only"),
        pytest.param("node", pins(v0="3", v1="17"), set(), id="spec pinning node: nothing held"),
        pytest.param("none", pins(v0="3"), set(), id="spec pinning none: nothing held"),
        pytest.param("thread", pins(v0="0", v1="16"), {0, 16}, id="spec thread: the pinned threads"),
        pytest.param("core", pins(v0="0", v1="1"), {0, 16, 1, 17}, id="spec core: the pinned threads' whole cores"),
        pytest.param("core", "", set(), id="spec core without pins"),
    ],
)
def test_dedicated_cpus(pinning: str | None, cputune: str, expected: set[int]) -> None:
    root = domain("<vcpu>4</vcpu>" + cputune)
    if pinning is not None:
        store_spec(root, VnumaSpec(pinning=pinning))
    assert dedicated_cpus(host(SMT2), root, GUEST) == dict.fromkeys(expected, GUEST)


# -- the layout read back from its rendered domain ------------------------------------------------------


@st.composite
def rendered_cases(draw: st.DrawFn) -> tuple[LayoutCase, str | None, int]:
    """A partitioner case, maybe a user's <vcpu cpuset> in the domain, and how many hot-add granules to plug."""
    case = draw(st.one_of(cases(), feasible_cases()))  # the latter: fewer refusals, more layouts
    memory = case.guest.memory_kib or case.options.get("memory")
    if "max_memory" not in case.options and memory and draw(sometimes(3)):
        options = {**case.options, "max_memory": 2 * memory + 8 * GIB, "memory_slots": 16}
        case = LayoutCase(case.topology, options, case.guest, case.taken)
    cpuset = None
    online = sorted(case.topology.cpu_node)
    if online and draw(sometimes(4)):
        cpuset = format_cpuset(draw(st.sets(st.sampled_from(online), min_size=1)))
    return case, cpuset, draw(st.integers(0, 5))


def template(case: LayoutCase, cpuset: str | None) -> Any:
    guest = case.guest
    memory = guest.memory_kib or case.spec.memory_kib
    current = "" if guest.current_vcpus is None else f" current='{guest.current_vcpus}'"
    vcpu = f"<vcpu placement='static'{'' if cpuset is None else f' cpuset={cpuset!r}'}{current}>{guest.vcpus}</vcpu>"
    return domain(f"{vcpu}<devices/>", memory)


@scaled(300)
@given(drawn=rendered_cases())
def test_a_rendered_layout_reads_back_as_its_binding(drawn: tuple[LayoutCase, str | None, int]) -> None:
    """The engine, vnuma_info and the capacity check read a guest's binding from its definition: for a
    rendered layout that must say what the layout itself says, down to the last KiB."""
    case, cpuset, granules = drawn
    describe(case)
    note(f"<vcpu cpuset={cpuset!r}>, {granules} hot-add granules")
    root = template(case, cpuset)
    try:
        plan = plan_domain(root, case.topology, case.spec, case.taken)
    except VnumaError as error:
        event(f"refused: {type(error).__name__}")
        return
    layout = plan.layout
    render_plan(root, plan)
    dimms: list[DimmBinding] = []
    if granules and layout.max_memory_kib is not None:
        try:
            hot_add = plan_dimms(layout, granules * dimm_granule_kib(layout))
        except VnumaError:
            hot_add = ()
        devices = root.find("devices")
        for part in hot_add:
            devices.append(parse_xml(MemoryDevice.dimm(part.cell, part.size_kib, part.host_nodes).markup(), "DIMM"))
            dimms.append(DimmBinding(part.cell, part.size_kib, part.host_nodes))
        event(f"{len(dimms)} DIMMs" if dimms else "no DIMMs")
    written = parse_xml(to_text(root), "domain XML", root_tag="domain")
    default_cpus = None if cpuset is None else tuple(sorted(parse_cpuset(cpuset)))
    from_layout = binding_from_layout(layout, GUEST, dimms=dimms, default_cpus=default_cpus)
    from_domain = binding_from_domain(DomainNuma.from_domain(written), GUEST)
    assert replace(from_layout, source="defined") == from_domain
    planned, defined = place_guest(case.topology, from_layout), place_guest(case.topology, from_domain)
    assert planned.cells == defined.cells
    assert planned.dimm_share == defined.dimm_share
    assert planned.locality == defined.locality
    for page in (None, *planned.page_sizes):
        assert memory_by_node(planned, page) == memory_by_node(defined, page)
    assert sum(sum(memory_by_node(planned, page).values()) for page in (None, *planned.page_sizes)) == (
        layout.memory_kib + sum(dimm.size_kib for dimm in dimms)
    )
