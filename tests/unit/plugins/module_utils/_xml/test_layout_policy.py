# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Layout -> domain policy (``_xml/layout_policy.py``): rules that take more than one element's tests.

- ``vcpus_for``: the ``<vcpus>`` it writes satisfies libvirt's rules for every layout the partitioner makes
  and every ``current_vcpus``, and the online hot-pluggable vCPUs keep their places in the enable order.
- ``numa_for``: the user's ``memAccess`` and ``discard`` reach every new cell, and a second run changes nothing.
- ``memory_for``: a balloon target is kept, up to the new ``<memory>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.hotplug import vcpus_to_enable
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import DISTRIBUTIONS
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.layout_policy import vcpus_for
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vcpus import Vcpus
from ansible_collections.vnuma.libvirt.tests.support.domain_cases import GIB, PLAIN, make_layout, render, xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

# --------------------------------------------------------------------------------------------------
# <vcpus>: libvirt's rules
# --------------------------------------------------------------------------------------------------


def libvirt_refusal(vcpus: Vcpus, count: int, current: int) -> str | None:
    """What libvirt's QEMU driver says of this ``<vcpus>``, or None when it takes it.

    Transcribed from libvirt (src/qemu/qemu_domain.c ``qemuDomainDefVcpusPostParse``, run by every define,
    and src/qemu/qemu_process.c ``qemuProcessValidateHotpluggableVcpus``, run at start; x86, where every
    vCPU is its own hot-plug entity), and https://libvirt.org/formatdomain.html#cpu-allocation ("all
    disabled vCPUs must be hotpluggable").  Absent ``order`` is libvirt's 0.
    """
    states = vcpus.vcpus
    if [state.id for state in states] != list(range(count)):
        return f"vCPU ids {[state.id for state in states]} are not 0-{count - 1}"
    if sum(state.enabled for state in states) != current:
        return "the enabled vCPUs are not <vcpu current>"
    first = states[0]
    if not first.enabled:
        return "vcpu 0 can't be offline"
    if first.hotpluggable:
        return "vcpu0 can't be hotpluggable"
    if (first.order or 0) not in (0, 1):
        return "vcpu0 must be enabled first"
    has_order = bool(first.order)
    previous = first
    for state in states[1:]:
        if state.enabled and bool(state.order) != has_order:
            return "all vcpus must have either set or unset order"
        if state.hotpluggable is False:
            if previous.hotpluggable is True:
                return "online non-hotpluggable vcpus need to be ordered prior to hotpluggable vcpus"
            if (previous.order or 0) > (state.order or 0):
                return "online non-hotpluggable vcpus must be ordered in ascending order"
        previous = state
    seen: set[int] = set()
    for state in states:
        if not state.enabled and state.hotpluggable is False:
            return f"vCPU {state.id} is disabled and not hotpluggable"
        if state.order:
            if state.order in seen:
                return f"duplicate vcpu order '{state.order}'"
            if state.order > count:
                return f"vcpu order '{state.order}' exceeds vcpu count"
            seen.add(state.order)
    return None


def check_vcpus(layout: Layout) -> None:
    """``vcpus_for(layout)`` is taken by libvirt and keeps what the enable order says."""
    vcpus = vcpus_for(layout)
    if layout.current_vcpus == layout.vcpus:
        assert vcpus is None
        return
    assert vcpus is not None
    refusal = libvirt_refusal(vcpus, layout.vcpus, layout.current_vcpus)
    assert refusal is None, f"{refusal}: enable order {layout.enable_order}, current {layout.current_vcpus}"
    online_order = layout.enable_order[: layout.current_vcpus]
    states = {state.id: state for state in vcpus.vcpus}
    # Online at boot: the first current_vcpus of the enable order.
    assert {vcpu for vcpu, state in states.items() if state.enabled} == set(online_order)
    # The boot set (hotpluggable='no') is the longest run of online ids from 0, as before.
    boot = [vcpu for vcpu, state in states.items() if state.hotpluggable is False]
    assert boot == list(range(len(boot)))
    assert len(boot) == layout.vcpus or not states[len(boot)].enabled
    # libvirt hot-plugs the online hot-pluggable vCPUs at start by order: the enable order's sequence,
    # each at its own place in it.
    plugged = [vcpu for vcpu in online_order if states[vcpu].hotpluggable]
    assert all(states[vcpu].order == online_order.index(vcpu) + 1 for vcpu in plugged)
    # The orders are 1..current_vcpus; the boot set holds its own places in the enable order.
    assert sorted(state.order or 0 for state in states.values() if state.enabled) == list(
        range(1, layout.current_vcpus + 1)
    )
    assert sorted(states[vcpu].order or 0 for vcpu in boot) == sorted(online_order.index(vcpu) + 1 for vcpu in boot)


def order_of(root: Any) -> list[tuple[int, str, str, str | None]]:
    return [
        (int(v.get("id")), v.get("enabled"), v.get("hotpluggable"), v.get("order")) for v in root.iterfind("vcpus/vcpu")
    ]


def plan(topology: str, vcpus: int, current: int | None, **spec: Any) -> Layout:
    guest = GuestShape(vcpus=vcpus, memory_kib=4 * GIB, current_vcpus=current, name="fix-b")
    return compute_layout(host(topology), VnumaSpec.from_mapping(spec), guest)


def test_boot_vcpus_out_of_enable_order_are_numbered_ascending() -> None:
    # 4 vCPUs in 2 cells, 3 online: the enable order 0, 2, 1, 3 brings 0-2 online, all boot vCPUs.
    # Their places in it are 1, 3, 2; libvirt wants them ascending by id: 1, 2, 3.
    root, _unused, _unused = render(PLAIN, make_layout(vcpus=4, current=3, enable_order=(0, 2, 1, 3)))
    assert order_of(root) == [
        (0, "yes", "no", "1"),
        (1, "yes", "no", "2"),
        (2, "yes", "no", "3"),
        (3, "no", "yes", None),
    ]


def test_the_reported_shapes_on_a_one_node_host() -> None:
    # The report: mode node, nodeset 0, cells 2, 4 vCPUs, current_vcpus 3 on a one-node host.
    layout = plan("single-node", 4, 3, mode="node", nodeset="0", cells=2)
    assert layout.enable_order == (0, 2, 1, 3)
    check_vcpus(layout)
    # 4 cells of 4 vCPUs, 13 online: 0-6 are boot vCPUs at places 1, 5, 9, 13, 2, 6, 10 of the enable
    # order (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, ...); they take 1, 2, 5, 6, 9, 10, 13 in id order.
    layout = plan("single-node", 16, 13, mode="node", nodeset="0", cells=4)
    check_vcpus(layout)
    vcpus = vcpus_for(layout)
    assert vcpus is not None
    assert [(s.id, s.hotpluggable, s.order) for s in vcpus.vcpus if s.enabled] == [
        (0, False, 1),
        (1, False, 2),
        (2, False, 5),
        (3, False, 6),
        (4, False, 9),
        (5, False, 10),
        (6, False, 13),
        # Hot-pluggable: their own places, so libvirt plugs 8, 12, 9, 13, 10, 14 at start, as before.
        (8, True, 3),
        (9, True, 7),
        (10, True, 11),
        (12, True, 4),
        (13, True, 8),
        (14, True, 12),
    ]


def test_hot_pluggable_online_vcpus_keep_their_places() -> None:
    # Online: 0, 4, 2, 1, 6; boot set 0-2 at places 1, 4, 3 -> 1, 3, 4 by id; 4 and 6 keep 2 and 5.
    layout = make_layout(vcpus=8, current=5, enable_order=(0, 4, 2, 1, 6, 3, 5, 7))
    root, _unused, _unused = render(PLAIN, layout)
    assert order_of(root) == [
        (0, "yes", "no", "1"),
        (1, "yes", "no", "3"),
        (2, "yes", "no", "4"),
        (3, "no", "yes", None),
        (4, "yes", "yes", "2"),
        (5, "no", "yes", None),
        (6, "yes", "yes", "5"),
        (7, "no", "yes", None),
    ]
    check_vcpus(layout)


def test_vcpu_0_must_come_first_in_the_enable_order() -> None:
    # libvirt: "vcpu0 must be enabled first".
    with pytest.raises(SpecError, match="vCPU 0 must come first"):
        render(PLAIN, make_layout(vcpus=4, current=2, enable_order=(1, 0, 2, 3)))


@given(st.data())
def test_any_enable_order_gives_what_libvirt_takes(data: st.DataObject) -> None:
    vcpus = data.draw(st.integers(min_value=2, max_value=24), label="vcpus")
    rest = data.draw(st.permutations(range(1, vcpus)), label="enable order after vCPU 0")
    current = data.draw(st.integers(min_value=1, max_value=vcpus), label="current")
    check_vcpus(make_layout(cells=1, vcpus=vcpus, current=current, enable_order=(0, *rest)))


def partitioned_shapes() -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(host fixture, vCPUs, spec) over cells, distributions and SMT widths; refused shapes are left out."""
    for distribution in DISTRIBUTIONS:
        for cells in range(1, 7):
            for vcpus in (cells, 2 * cells, 3 * cells + 1, 16):
                yield (
                    "single-node",
                    vcpus,
                    {"mode": "node", "nodeset": "0", "cells": cells, "distribution": distribution},
                )
        for vcpus in (4, 6, 9, 16):
            yield "seed-4node-ring", vcpus, {"mode": "host", "distribution": distribution}
            yield "seed-4node-ring", vcpus, {"mode": "node", "cells": 3, "distribution": distribution}
    for vcpus in (4, 8, 12):
        yield "intel-2s-smt2", vcpus, {"mode": "host", "distribution": "siblings"}
        yield "intel-2s-smt2", vcpus, {"mode": "node", "cells": 4, "distribution": "siblings"}
    yield "smt4-power", 16, {"mode": "host", "distribution": "siblings"}
    for vcpus in (4, 6, 8):
        # A CPU-less cell (the CXL node) at the end: a cell of size 0 in the enable order.
        yield "intel-snc2-cxl", vcpus, {"mode": "node", "nodeset": "0-4", "cells": 5, "cpuless_cells": True}


def test_every_partitioned_shape_and_current_vcpus_gives_what_libvirt_takes() -> None:
    """Each layout the partitioner makes, at every current_vcpus, and a running guest's hot-add from each."""
    checked = 0
    for topology, vcpus, spec in partitioned_shapes():
        try:
            full = plan(topology, vcpus, None, **spec)
        except VnumaError:
            continue
        threads = full.topology.threads
        for current in range(threads, vcpus + 1, threads):
            layout = plan(topology, vcpus, current, **spec)
            assert layout.enable_order == full.enable_order
            check_vcpus(layout)
            checked += 1
            # A running guest going from `current` to `target` online: the vCPUs enabled live are the next
            # ones of the enable order, so the definition written for `target` describes the guest after.
            online = set(layout.enable_order[:current])
            for target in range(current + threads, vcpus + 1, threads):
                enabled = vcpus_to_enable(layout, online, target)
                assert enabled == layout.enable_order[current:target], (topology, spec, current, target)
    assert checked > 500


# --------------------------------------------------------------------------------------------------
# <cpu><numa>: memAccess and discard
# --------------------------------------------------------------------------------------------------


def with_cells(*cells: str) -> str:
    return PLAIN.replace("</os>", "</os>\n  <cpu>\n    <numa>\n" + "".join(cells) + "    </numa>\n  </cpu>")


def backing(root: Any) -> list[tuple[str | None, str | None]]:
    return [(cell.get("memAccess"), cell.get("discard")) for cell in root.iterfind("cpu/numa/cell")]


def converged(domain: str, cells: int) -> tuple[Any, DomainNuma]:
    """The domain after one run with ``cells`` cells, checked to be a fixed point: a second run changes nothing."""
    root, _before, _target = render(domain, make_layout(cells=cells))
    again = DomainNuma.from_domain(root)
    assert again.changes(DomainNuma.from_layout(make_layout(cells=cells), again)) == []
    return root, again


def test_one_shared_cell_makes_every_new_cell_shared() -> None:
    # virtiofs and vhost-user need every cell's memory shared: one cell of 8 vCPUs becomes 2, 4 or 8.
    domain = with_cells("      <cell id='0' cpus='0-7' memory='2' unit='GiB' memAccess='shared' discard='yes'/>\n")
    for cells in (2, 4, 8):
        root, _unused = converged(domain, cells)
        assert backing(root) == [("shared", "yes")] * cells


def test_each_cell_keeps_its_own_and_new_ones_take_what_all_agree_on() -> None:
    # Two cells agree on shared memory and differ on discard: 2 -> 4 cells.
    domain = with_cells(
        "      <cell id='0' cpus='0-3' memory='1' unit='GiB' memAccess='shared' discard='yes'/>\n",
        "      <cell id='1' cpus='4-7' memory='1' unit='GiB' memAccess='shared'/>\n",
    )
    root, _unused = converged(domain, 4)
    assert backing(root) == [("shared", "yes"), ("shared", None), ("shared", None), ("shared", None)]


def test_cells_that_disagree_leave_new_cells_to_the_guest_wide_backing() -> None:
    domain = with_cells(
        "      <cell id='0' cpus='0-3' memory='1' unit='GiB' memAccess='shared'/>\n",
        "      <cell id='1' cpus='4-7' memory='1' unit='GiB' memAccess='private'/>\n",
    )
    root, _unused = converged(domain, 4)
    assert backing(root) == [("shared", None), ("private", None), (None, None), (None, None)]
    # A cell without the attribute counts: shared and unset disagree.
    domain = with_cells(
        "      <cell id='0' cpus='0-3' memory='1' unit='GiB' memAccess='shared'/>\n",
        "      <cell id='1' cpus='4-7' memory='1' unit='GiB'/>\n",
    )
    root, _unused = converged(domain, 4)
    assert backing(root) == [("shared", None), (None, None), (None, None), (None, None)]


def test_fewer_cells_keep_theirs_by_id() -> None:
    domain = with_cells(
        "      <cell id='0' cpus='0-1' memory='512' unit='MiB' memAccess='private'/>\n",
        "      <cell id='1' cpus='2-3' memory='512' unit='MiB' memAccess='shared' discard='no'/>\n",
        "      <cell id='2' cpus='4-5' memory='512' unit='MiB' memAccess='shared'/>\n",
        "      <cell id='3' cpus='6-7' memory='512' unit='MiB' memAccess='shared'/>\n",
    )
    root, _unused = converged(domain, 2)
    assert backing(root) == [("private", None), ("shared", "no")]


def test_no_backing_before_means_none_after() -> None:
    root, _unused = converged(PLAIN, 4)
    assert backing(root) == [(None, None)] * 4
    root, _unused = converged(with_cells("      <cell id='0' cpus='0-7' memory='2' unit='GiB'/>\n"), 2)
    assert backing(root) == [(None, None)] * 2


def test_the_reported_virtiofs_guest() -> None:
    # The report: one memAccess='shared' cell, a virtiofs <filesystem>; mode node, nodeset 0, cells 2.
    domain = (
        "<domain type='qemu'><name>fix-b-1</name><memory unit='MiB'>512</memory><vcpu>4</vcpu>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
        "<cpu><numa><cell id='0' cpus='0-3' memory='512' unit='MiB' memAccess='shared'/></numa></cpu>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
        "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/tmp'/>"
        "<target dir='share'/></filesystem></devices></domain>"
    )
    layout = plan("single-node", 4, None, mode="node", nodeset="0", cells=2)
    root = xml(domain)
    before = DomainNuma.from_domain(root)
    DomainNuma.from_layout(layout, before).apply(root)
    assert backing(root) == [("shared", None), ("shared", None)]
    again = DomainNuma.from_domain(root)
    assert again.changes(DomainNuma.from_layout(layout, again)) == []


# --------------------------------------------------------------------------------------------------
# <memory> and <currentMemory>
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell_kib", "current_kib"),
    [
        (4 * GIB, 6 * GIB),  # 8 GiB as before: the balloon target of 6 GiB stays
        (2 * GIB, 4 * GIB),  # 4 GiB: 6 GiB would be above it, libvirt would clamp it on define
        (GIB // 2, GIB),
    ],
)
def test_a_balloon_target_is_kept_up_to_the_new_memory(cell_kib: int, current_kib: int) -> None:
    domain = PLAIN.replace("<memory unit='GiB'>2</memory>", "<memory unit='GiB'>8</memory>").replace(
        "<currentMemory unit='GiB'>2</currentMemory>", "<currentMemory unit='GiB'>6</currentMemory>"
    )
    _root, before, target = render(domain, make_layout(cells=2, memory_kib=cell_kib))
    assert (before.memory_kib, before.current_memory_kib) == (8 * GIB, 6 * GIB)
    assert (target.memory_kib, target.current_memory_kib) == (2 * cell_kib, current_kib)
