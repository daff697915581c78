# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""I/O threads per cell or per disk, and the emulator's isolated host CPU (``_core/iothreads.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.iothreads import IothreadPlan, plan_iothreads
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import held_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.capacity import layout_held
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import dedicated_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

GIB = 1 << 20
# intel-2s-smt2: node 0 holds cores (k, k+16) for k < 8, node 1 cores (k, k+16) for 8 <= k < 16.
SMT2 = host("intel-2s-smt2")
# intel-snc2-cxl: two nodes with CPUs per socket and CPU-less CXL memory nodes.
CXL = host("intel-snc2-cxl")


def layout(vcpus: int, topology: Any = SMT2, taken: dict[int, str] | None = None, **spec: Any) -> Layout:
    guest = GuestShape(vcpus=vcpus, memory_kib=2 * GIB, name="db01")
    return compute_layout(topology, VnumaSpec.from_mapping(spec), guest, taken)


# -- I/O threads ---------------------------------------------------------------------------------------


def test_none_plans_nothing() -> None:
    assert plan_iothreads(layout(4, mode="host"), [("vda", None)]) == IothreadPlan()


def test_per_cell_one_thread_per_cell_pinned_to_its_vcpus_host_cpus() -> None:
    planned = plan_iothreads(
        layout(4, mode="host", iothreads="per_cell"), [("vda", None), ("vdb", 1), ("vdc", 0), ("vdd", 1)]
    )
    # pinning node: each cell's vCPUs float over their whole node.
    assert planned.pins == (tuple(range(8)) + tuple(range(16, 24)), tuple(range(8, 16)) + tuple(range(24, 32)))
    # A disk on the root bus (None) goes with cell 0.
    assert planned.disks == (("vda", 1), ("vdb", 2), ("vdc", 1), ("vdd", 2))
    assert planned.count == 2


def test_per_cell_under_dedicated_pinning_uses_the_cells_dedicated_cpus() -> None:
    planned = plan_iothreads(layout(4, mode="host", pinning="core", iothreads="per_cell"), [])
    assert planned.pins == ((0, 1), (8, 9))
    assert planned.disks == ()


def test_per_disk_one_thread_per_disk_pinned_like_its_cell() -> None:
    base = layout(4, mode="host", pinning="thread", iothreads="per_disk")
    planned = plan_iothreads(base, [("vda", 1), ("vdb", None), ("vdc", 1)])
    cell1 = tuple(sorted({cpu for vcpu in base.cells[1].vcpus for cpu in (base.vcpu_pins or ())[vcpu]}))
    cell0 = tuple(sorted({cpu for vcpu in base.cells[0].vcpus for cpu in (base.vcpu_pins or ())[vcpu]}))
    assert planned.pins == (cell1, cell0, cell1)
    assert planned.disks == (("vda", 1), ("vdb", 2), ("vdc", 3))


def test_per_disk_without_disks_has_no_thread() -> None:
    assert plan_iothreads(layout(4, mode="host", iothreads="per_disk"), []) == IothreadPlan()


def test_pinning_none_leaves_the_threads_unpinned() -> None:
    planned = plan_iothreads(layout(4, mode="host", pinning="none", iothreads="per_cell"), [("vda", 1)])
    assert planned.pins == (None, None)
    assert planned.disks == (("vda", 2),)


def test_a_disk_near_a_cell_without_vcpus_uses_the_nearest_cell_with_vcpus() -> None:
    base = layout(4, CXL, mode="node", nodeset="0-4", iothreads="per_cell", cpuless_cells=True)
    cpuless = [cell.id for cell in base.cells if not cell.vcpus]
    with_vcpus = [cell.id for cell in base.cells if cell.vcpus]
    assert cpuless and with_vcpus
    planned = plan_iothreads(base, [("vda", cpuless[0])])
    distances = base.cells[cpuless[0]].distances
    nearest = min(with_vcpus, key=lambda cell: (distances[cell], cell))
    # One thread per cell with vCPUs only.
    assert planned.count == len(with_vcpus)
    assert planned.disks == (("vda", with_vcpus.index(nearest) + 1),)


@pytest.mark.parametrize("mode", ["per_cell", "per_disk"])
def test_a_disk_near_a_cell_the_layout_lacks_is_refused_not_an_index_error(mode: str) -> None:
    base = layout(4, mode="host", iothreads=mode)
    with pytest.raises(SpecError) as caught:
        plan_iothreads(base, [("vda", None), ("vdb", 3)])
    # The guest is named by whoever plans it (DomainNuma.from_layout's callers); pci_locality_for refuses
    # a user's expander bus on a missing cell before this, naming the controller.
    assert str(caught.value) == (
        f"iothreads {mode}: disk vdb sits near guest cell 3, but the layout has 2 cells (0-1); "
        "move its expander bus to one of those cells"
    )


# -- emulator_threads ----------------------------------------------------------------------------------


def test_share_keeps_todays_emulator() -> None:
    assert layout(4, mode="host", pinning="core").emulator_pins is None
    assert VnumaSpec().emulator_threads == "share"


@pytest.mark.parametrize(
    ("pinning", "emulator", "held"),
    [
        # A whole free core of node 0 (its sibling 18 stays idle), after the vCPUs' cores 0 and 1.
        ("core", (2,), (0, 1, 2, 8, 9, 16, 17, 18, 24, 25)),
        # The next free thread of node 0 after the vCPUs' threads 0 and 16.
        ("thread", (1,), (0, 1, 8, 16, 24)),
    ],
)
def test_isolate_takes_one_more_dedicated_cpu_on_cell_0s_node(
    pinning: str, emulator: tuple[int, ...], held: tuple[int, ...]
) -> None:
    planned = layout(4, mode="host", pinning=pinning, emulator_threads="isolate")
    assert planned.emulator_pins == emulator
    assert not set(emulator) & {cpu for cpus in planned.vcpu_pins or () for cpu in cpus}
    assert SMT2.cpu_node[emulator[0]] == planned.cells[0].host_nodes[0]
    # The one dedicated-CPU rule counts it, as the capacity check and other guests' plans see it.
    assert layout_held(SMT2, planned) == held
    assert held_cpus(planned.vcpu_pins or (), pinning, SMT2) != held


def test_isolate_avoids_cores_other_guests_hold() -> None:
    planned = layout(4, mode="host", pinning="core", emulator_threads="isolate", taken={2: "web1", 3: "web1"})
    assert planned.emulator_pins == (4,)


def test_isolate_is_refused_when_cell_0s_node_is_full() -> None:
    with pytest.raises(PlacementError) as caught:
        layout(8, mode="node", nodeset="0", pinning="core", emulator_threads="isolate")
    assert str(caught.value) == (
        "guest db01: emulator_threads isolate needs one more free host core on host node 0 (guest cell 0's) for "
        "the emulator threads; node 0 has 8 cores and none is free; its vCPUs hold 0-7,16-23"
    )


def test_isolate_refusal_names_the_other_guests() -> None:
    with pytest.raises(PlacementError) as caught:
        layout(14, mode="node", nodeset="0", pinning="thread", emulator_threads="isolate", taken={23: "web1"})
    assert str(caught.value) == (
        "guest db01: emulator_threads isolate needs one more free host thread on host node 0 (guest cell 0's) for "
        "the emulator threads; node 0 has 16 threads and none is free; its vCPUs hold 0-6,16-22, other guests "
        "(web1) hold the rest"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"emulator_threads": "isolate"},
            "emulator_threads isolate needs pinning core or thread, not node: vCPUs that float would run on the "
            "emulator's host CPU too",
        ),
        (
            {"emulator_threads": "isolate", "pinning": "core", "emulator_pin": "nodes"},
            "emulator_threads isolate and emulator_pin nodes both place the emulator threads; set emulator_pin none",
        ),
        ({"emulator_threads": "dedicated"}, "emulator_threads 'dedicated' is not one of share, isolate"),
        ({"iothreads": "per_vcpu"}, "iothreads 'per_vcpu' is not one of none, per_cell, per_disk"),
    ],
)
def test_bad_combinations_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        VnumaSpec.from_mapping(spec)
    assert str(caught.value) == message


DOMAIN = """<domain type='kvm'>
  <name>{name}</name>
  <memory unit='GiB'>2</memory>
  <vcpu>{vcpus}</vcpu>
  <vnuma mode='node' pinning='core' emulator_threads='{emulator}'><partition nodeset='0'/></vnuma>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
</domain>"""


def test_another_guest_does_not_get_the_isolated_cpu() -> None:
    first = expand_domain(DOMAIN.format(name="web1", vcpus=6, emulator="isolate"), SMT2)
    assert first.layout is not None and first.layout.emulator_pins == (6,)
    taken = dedicated_cpus(SMT2, parse_xml(first.xml, "domain", root_tag="domain"), "web1")
    # Six vCPU cores and the emulator's core, siblings included.
    assert sorted(taken) == [0, 1, 2, 3, 4, 5, 6, 16, 17, 18, 19, 20, 21, 22]
    second = expand_domain(DOMAIN.format(name="db01", vcpus=1, emulator="share"), SMT2, taken)
    assert second.layout is not None and second.layout.vcpu_pins == ((7,),)
    with pytest.raises(PlacementError) as caught:
        expand_domain(DOMAIN.format(name="db02", vcpus=1, emulator="isolate"), SMT2, {**taken, 7: "db01", 23: "db01"})
    assert "guest db02: pinning core needs 1 free host cores for guest cell 0 on host node 0, 0 are free" in str(
        caught.value
    )
