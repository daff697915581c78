# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The destination planner on big hosts (16 to 64 nodes): the documented rules hold, and the work stays bounded.

A guest laid out by the partitioner on a host built by ``tests/support/hostgen.py`` is planned onto the
same host (a restore), an identical one, or one of another shape.  The work is counted, never timed: the
calls of the pair error (the key's distance term), of the host distance, and the sets tried.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from functools import cache
from itertools import combinations, product
from math import prod

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core import move_planner
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_models import (
    DestinationPlan,
    MovingCell,
    MovingGuest,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_planner import plan_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.hostgen import GIB, HostShape, build_capabilities
from ansible_collections.vnuma.libvirt.tests.unit.plugins.module_utils._core.test_migration import moving


@cache
def big_host(sockets: int, nodes_per_socket: int, first_id: int = 0) -> HostTopology:
    """8 SMT2 cores and 512 GiB a node; ``first_id`` numbers the nodes from there (another host's ids)."""
    count = sockets * nodes_per_socket
    shape = HostShape(
        sockets=sockets,
        nodes_per_socket=nodes_per_socket,
        cores_per_node=8,
        threads=2,
        memory_kib=512 * GIB,
        node_ids=range(first_id, first_id + count) if first_id else None,
    )
    return parse_capabilities(build_capabilities(shape))


def laid_out(source: HostTopology, cells: int | str, vcpus: int, memory_gib: int, **options: object) -> Layout:
    mode: dict[str, object] = {"mode": "host"} if cells == "host" else {"mode": "node", "cells": cells}
    spec = VnumaSpec.from_mapping({**mode, "memory": memory_gib * GIB, **options})
    return compute_layout(source, spec, GuestShape(vcpus=vcpus, name="db01"))


def own_nodes(plan: DestinationPlan) -> bool:
    """No two cells on one destination node (every cell here had source nodes of its own)."""
    nodes = [node for cell in plan.cells for node in cell.host_nodes]
    return len(nodes) == len(set(nodes))


class Counter:
    """Counts the calls of a method, and passes them on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        self.calls = 0
        original = getattr(owner, name)

        def counted(*args: object) -> object:
            self.calls += 1
            return original(*args)

        monkeypatch.setattr(owner, name, counted)


# -- the rules hold on big hosts (issue: cells squeezed onto nodes 0-7) ---------------------------------


@pytest.mark.parametrize("memory_gib", [16, 6000])
@pytest.mark.parametrize("with_source", [False, True])
def test_a_restore_on_a_16_node_host_keeps_each_cell_on_its_own_nodes(memory_gib: int, with_source: bool) -> None:
    """Two cells on nodes 0-7 and 8-15; back on the same, empty host, each stays where it was.

    Both cells came back on nodes 0-7 (16 GiB), or the restore was refused as if the cells fitted only
    alone (6000 GiB): no candidate set was 8-15.
    """
    host = big_host(4, 4)
    layout = laid_out(host, 2, 64, memory_gib)
    assert [cell.memory_nodes for cell in layout.cells] == [tuple(range(8)), tuple(range(8, 16))]
    plan = plan_destination(moving(layout, host if with_source else None), host)
    assert [cell.host_nodes for cell in plan.cells] == [cell.memory_nodes for cell in layout.cells]
    assert [cell.memory_nodes for cell in plan.cells] == [cell.memory_nodes for cell in layout.cells]
    assert plan.distance_error == 0
    assert "kept exactly" in plan.why


@pytest.mark.parametrize("shape", [(4, 16), (8, 8)])
@pytest.mark.parametrize("cells", [2, 4, 16, 32])
def test_a_restore_on_a_64_node_host_keeps_every_cell(
    monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int], cells: int
) -> None:
    """64 nodes: 2 cells of 32 nodes, 4 of 16, 16 of 4, 32 of 2; each cell keeps its nodes (identity).

    Before, cell 1 of 2 went from 32-63 to 0-31, 4 cells all went to 0-15, and 16 cells had distance error 152.
    The work stays bounded: at most G^2 x K pair errors for G groups of at most K candidate sets.
    """
    host = big_host(*shape)
    layout = laid_out(host, cells, 64, 64)
    pairs = Counter(monkeypatch, move_planner._Planner, "pair_error")
    plan = plan_destination(moving(layout), host)
    assert [cell.host_nodes for cell in plan.cells] == [cell.memory_nodes for cell in layout.cells]
    assert plan.distance_error == 0
    width = 64 // cells
    # Candidate sets of a width: one grown from each node, a tiling, the group's own nodes.
    candidates = 64 + 64 // width + 1
    assert pairs.calls <= cells * cells * candidates


@pytest.mark.parametrize(("shape", "cells"), [((4, 4), 2), ((4, 4), 4), ((4, 16), 2), ((8, 8), 16)])
def test_an_identical_host_gives_the_identity_placement(shape: tuple[int, int], cells: int) -> None:
    """Another host of the same shape and numbering (its own capabilities, parsed apart): the same nodes."""
    source = big_host(*shape)
    twin = parse_capabilities(
        build_capabilities(
            HostShape(sockets=shape[0], nodes_per_socket=shape[1], cores_per_node=8, threads=2, memory_kib=512 * GIB)
        )
    )
    layout = laid_out(source, cells, 64, 64)
    plan = plan_destination(moving(layout, source), twin)
    assert [cell.host_nodes for cell in plan.cells] == [cell.memory_nodes for cell in layout.cells]
    assert plan.distance_error == 0


@pytest.mark.parametrize(
    ("source", "destination", "cells"),
    [
        ((4, 4), (4, 4, 100), 2),  # the same shape, other node ids: no source node exists there
        ((4, 4), (4, 4, 100), 4),
        ((4, 16), (8, 8, 100), 2),
        ((4, 16), (8, 8, 100), 16),
        ((8, 8), (16, 4, 200), 4),
        ((4, 4), (16, 4), 2),  # the source's ids exist, in another shape
    ],
)
def test_groups_with_nodes_of_their_own_keep_disjoint_nodes_on_another_host(
    source: tuple[int, int], destination: tuple[int, ...], cells: int
) -> None:
    """Cells with nodes of their own get disjoint destination nodes when the destination has enough.

    The sets grown nearest first all took the lowest node ids on ties, so no two of them were disjoint:
    the cells shared nodes although the destination had room for each.
    """
    host = big_host(*source)
    target = big_host(*destination)
    layout = laid_out(host, cells, 64, 64)
    plan = plan_destination(moving(layout, host), target)
    assert own_nodes(plan), [cell.host_nodes for cell in plan.cells]
    assert all(len(cell.host_nodes) == len(cell.source_nodes) for cell in plan.cells)
    if destination[:2] == source:
        # The same shape numbered otherwise: the guest's distances are kept.
        assert plan.distance_error == 0


def test_growing_the_candidate_sets_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two cells of 32 nodes on 64: growing a set from each node costs N per member, not N x members.

    The old grower summed the distances to every member again for every node at every step: 2.7 million
    host distances for this plan.
    """
    host = big_host(4, 16)
    layout = laid_out(host, 2, 64, 64)
    distances = Counter(monkeypatch, HostTopology, "distance")
    plan = plan_destination(moving(layout), host)
    assert distances.calls <= 2 * 64 * 64 * 32
    assert own_nodes(plan)


# -- the work the search does (issue: time as nodes^4 inside libvirtd's hook) -----------------------------


def test_the_one_at_a_time_search_adds_each_sets_error_to_the_groups_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    """One cell a node on 32 nodes (mode host, 4 vCPUs a cell) onto the identical host: 32 groups, 32 sets each.

    Each set tried costs its pair errors against the groups already placed: at most G^2 x K = 32768 in all
    (about K x G^2 / 2).  The key recomputed every pair for every set tried: 174592 calls, and at 64 nodes
    2.8 million (5 s), 128 nodes 76 s.
    """
    host = big_host(4, 8)
    layout = laid_out(host, "host", 128, 32)
    pairs = Counter(monkeypatch, move_planner._Planner, "pair_error")
    plan = plan_destination(moving(layout), host)
    assert [cell.host_nodes for cell in plan.cells] == [(node,) for node in range(32)]
    assert plan.distance_error == 0
    assert "backtracking, 1024 sets tried" in plan.why
    assert pairs.calls <= 32 * 32 * 32


def test_the_exhaustive_search_counts_each_pair_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fourteen one-node cells onto a two-node host: 16384 choices, each examined.

    The pair errors of two groups on two sets each are 4: 91 pairs of groups give 364.  Computing the key of
    every choice from scratch took 1.5 million calls (5 s), for the same choice: seven cells a node (the
    fewest pairs sharing one, 42), cells 0 and 1 on their own node ids, then the lowest ids.  The distance
    error is 42 pairs x |20 - 11| on one node and 49 x |20 - 12| across.
    """
    host = big_host(1, 2)
    cells = tuple(MovingCell(i, (i,), GIB, None, (i,)) for i in range(14))
    guest = MovingGuest(name="db01", vcpus=14, cells=cells, pinning="node")
    pairs = Counter(monkeypatch, move_planner._Planner, "pair_error")
    plan = plan_destination(guest, host)
    assert plan.considered == 2**14
    assert "exhaustive over 16384 choices" in plan.why
    assert pairs.calls <= 91 * 4
    assert [cell.host_nodes for cell in plan.cells] == [(0,), (1,)] + [(0,)] * 6 + [(1,)] * 6
    assert plan.distance_error == 42 * 9 + 49 * 8


# -- the same order and results as the key computed from scratch ------------------------------------------


def reference_key(planner: move_planner._Planner, sets: dict[int, tuple[int, ...]]) -> tuple[object, ...]:
    """The key of docs/migration.md (Choice) computed from scratch over every pair, as it was before."""
    placed = sorted(sets)
    groups = [planner.groups[i] for i in placed]
    choice = [sets[i] for i in placed]
    pairs = list(combinations(list(zip(groups, choice, strict=True)), 2))
    shared = sum(1 for (_a, first), (_b, second) in pairs if set(first) & set(second))
    error = sum(planner.inner_error(group) for group in groups)
    error += sum(planner.pair_error(a, first, b, second) for (a, first), (b, second) in pairs)
    load: dict[int, float] = {}
    moved = kind = 0
    for group, nodes in zip(groups, choice, strict=True):
        for node in nodes:
            load[node] = load.get(node, 0.0) + group.vcpus / len(nodes)
        moved += 0 if nodes == group.source_nodes else 1
        kind += 1 if group.cpuless_source and any(planner.topology.node(n).has_cpus for n in nodes) else 0
    crowded = sum(1 for node, vcpus in load.items() if vcpus > planner.free_threads(node))
    return (shared, crowded, error, kind, moved, tuple(choice))


def reference_memory_fits(planner: move_planner._Planner, sets: dict[int, tuple[int, ...]]) -> bool:
    """Every group's memory split evenly over its nodes (the remainder to the first), shared nodes summed."""
    memory: dict[tuple[int | None, int], int] = {}
    for index, nodes in sets.items():
        for page, need in planner.groups[index].demand:
            share, extra = divmod(need, len(nodes))
            for position, node in enumerate(nodes):
                memory[page, node] = memory.get((page, node), 0) + share + (1 if position < extra else 0)
    return all(kib <= planner.room(page).get(node, 0) for (page, node), kib in memory.items())


def reference_fits(planner: move_planner._Planner, sets: dict[int, tuple[int, ...]]) -> bool:
    """Memory, then dedicated CPUs: each group in group order takes what its nodes have left."""
    if not reference_memory_fits(planner, sets):
        return False
    if not planner.guest.dedicated:
        return True
    used: dict[tuple[str, int], int] = {}
    for index in sorted(sets):
        group = planner.groups[index]
        if not group.vcpus:
            continue
        unit, need, supply = planner.cpu_units(group, sets[index])
        for node in sets[index]:
            take = min(need, supply[node] - used.get((unit, node), 0))
            if take > 0:
                used[unit, node] = used.get((unit, node), 0) + take
                need -= take
        if need > 0:
            return False
    return True


def brute_force(
    planner: move_planner._Planner, options: Sequence[Sequence[tuple[int, ...]]]
) -> tuple[tuple[int, ...], ...] | None:
    """The choice of the smallest key from scratch among every choice that fits; None when none fits."""
    best: tuple[object, ...] | None = None
    for choice in product(*options):
        sets = dict(enumerate(choice))
        if reference_fits(planner, sets):
            key = reference_key(planner, sets)
            if best is None or key < best:  # type: ignore[operator]  # tuples of ints and tuples compare
                best = key
    if best is None:
        return None
    found = best[-1]
    assert isinstance(found, tuple)
    return found


def small_guests(seed: int) -> Iterator[tuple[MovingGuest, HostTopology]]:
    """Guests of 2 to 6 cells (some sharing source nodes, some CPU-less) onto hosts of 4 to 8 nodes."""
    rng = random.Random(seed)
    for _case in range(12):
        host = parse_capabilities(
            build_capabilities(
                HostShape(
                    sockets=rng.choice([1, 2]),
                    nodes_per_socket=rng.choice([2, 3, 4]),
                    cores_per_node=rng.choice([1, 2]),
                    threads=rng.choice([1, 2]),
                    memory_kib=rng.choice([2, 4]) * GIB,
                    memory_nodes=rng.choice([(), (4 * GIB,)]),
                )
            )
        )
        count = rng.randint(2, 6)
        sources = [(i,) for i in range(count)] + [(0, 1), (2,)]
        cells = []
        vcpu = 0
        for i in range(count):
            vcpus = tuple(range(vcpu, vcpu + rng.choice([1, 1, 2, 3])))
            vcpu += len(vcpus)
            cells.append(MovingCell(i, vcpus, rng.choice([256, 512, 1024, 1536]) * 1024, None, rng.choice(sources)))
        matrix = [[10 if a == b else 0 for b in range(count)] for a in range(count)]
        for a, b in combinations(range(count), 2):
            matrix[a][b] = matrix[b][a] = rng.choice([11, 12, 20, 21, 31])
        guest = MovingGuest(
            name="db01",
            vcpus=vcpu,
            cells=tuple(cells),
            distances=tuple(tuple(row) for row in matrix),
            pinning=rng.choice(["node", "thread", "core", "none"]),
        )
        yield guest, host


@pytest.mark.parametrize("seed", range(4))
def test_the_exhaustive_search_finds_the_brute_forces_choice(seed: int) -> None:
    """The walk with its key kept as it grows chooses what every choice's key from scratch chooses."""
    examined = 0
    for guest, host in small_guests(seed):
        planner = move_planner._Planner(guest, host, None, {})
        options = [planner.candidates(group) for group in planner.groups]
        if not all(options) or prod(len(sets) for sets in options) > move_planner.EXHAUSTIVE_CHOICES:
            continue
        examined += 1
        expected = brute_force(planner, options)
        if expected is None:
            with pytest.raises(move_planner.PlacementError):
                planner.search(options)
            continue
        chosen, considered, _how = planner.search(options)
        assert tuple(chosen) == expected
        assert considered == prod(len(sets) for sets in options)
    assert examined >= 6


@pytest.mark.parametrize("seed", range(4))
def test_the_key_kept_as_sets_are_added_is_the_key_from_scratch(seed: int) -> None:
    """Sets pushed in any order, and taken back: the key equals the one computed over every pair."""
    rng = random.Random(seed)
    for guest, host in small_guests(seed):
        planner = move_planner._Planner(guest, host, None, {})
        options = [planner.candidates(group) for group in planner.groups]
        if not all(options):
            continue
        choice = move_planner._Choice(planner)
        order = list(range(len(planner.groups)))
        rng.shuffle(order)
        for depth, index in enumerate(order):
            fits = choice.push(index, rng.choice(options[index]))
            assert choice.key() == reference_key(planner, choice.sets)
            assert fits == reference_memory_fits(planner, choice.sets)
            # A set tried beside them and taken back leaves the key as it was.
            before = choice.key()
            for later in order[depth + 1 :]:
                choice.push(later, rng.choice(options[later]))
                choice.pop()
                assert choice.key() == before
        for _index in order:
            choice.pop()
        assert choice.key() == (0, 0, 0, 0, 0, ())
        assert choice.over == 0
        assert not any(choice.load.values()) and not any(choice.memory.values())
