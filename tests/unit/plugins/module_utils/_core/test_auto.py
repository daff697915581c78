# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""mode auto: the fewest host nodes that hold a guest, nearest first, ties to the least loaded.

Each case places guests on a fixture host one after the other, the earlier ones counted by the
capacity check as running, as a run counts them; the choice is compared with the nodes expected and
the layout on them with what each node had left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.auto import (
    AutoChoice,
    AutoRequest,
    choose_nodes,
    keep_nodes,
    stored_nodes_usable,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityReport, check_capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import GuestDevice, PciAddress
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    GuestBinding,
    place_guests,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.bindings import binding_from_layout
from ansible_collections.vnuma.libvirt.tests.support.hostgen import HostShape, build_capabilities
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

MIB = 1024
GIB = 1024 * 1024
RING = "seed-4node-ring"  # 4 nodes x 4 CPUs x 8 GiB; 0-1, 1-2, 2-3, 3-0 at 21, the diagonals at 31
SNC = "intel-snc2-cxl"  # nodes 0-1 and 2-3 at 12 (one socket each), 4-5 CPU-less; 2 GiB of 2 MiB pages each


def report(topology: HostTopology, bindings: Sequence[GuestBinding], reserved: int = 0) -> CapacityReport:
    return check_capacity(topology, place_guests(topology, bindings), reserved_kib=reserved)


def auto(memory_kib: int, **options: object) -> VnumaSpec:
    return VnumaSpec.from_mapping({"mode": "auto", "memory": memory_kib, **options})


def place_series(
    topology: HostTopology,
    guests: Sequence[tuple[int, int]],
    taken: Mapping[int, str] | None = None,
    **options: object,
) -> list[AutoChoice]:
    """Choose for each (memory, vCPUs) in turn, every earlier guest running where it was placed."""
    bindings: list[GuestBinding] = []
    choices = []
    for index, (memory, vcpus) in enumerate(guests):
        name = f"g{index}"
        choice = choose_nodes(
            topology, auto(memory, **options), GuestShape(vcpus=vcpus, name=name), report(topology, bindings), taken
        )
        choices.append(choice)
        bindings.append(binding_from_layout(choice.layout, name, running=True))
    return choices


def planned_per_node(choices: Sequence[AutoChoice]) -> dict[int, int]:
    total: dict[int, int] = {}
    for choice in choices:
        for room in choice.rooms:
            total[room.id] = total.get(room.id, 0) + room.planned_kib
    return total


def test_one_node_each_while_one_holds_the_guest_least_loaded_first_then_the_lowest_id() -> None:
    topology = host(RING)
    choices = place_series(topology, [(6 * GIB, 4)] * 4)
    assert [choice.nodes for choice in choices] == [(0,), (1,), (2,), (3,)]
    assert [choice.how for choice in choices] == ["chosen"] * 4
    assert choices[0].why == (
        "host node 0 holds the guest (6 GiB) alone; of 4 equally near nodes that do, all 0 % committed, the lowest ids"
    )
    # Node 0 is loaded now: the other three are equally near and none is loaded, the lowest id wins.
    assert choices[1].why.startswith("host node 1 holds the guest (6 GiB) alone; of 3 equally near nodes")
    # What each choice saw and left: node 1 had 8 GiB free before the second guest and 2 GiB after.
    second = {room.id: room for room in choices[1].rooms}
    assert (second[0].committed_kib, second[0].planned_kib) == (6 * GIB, 0)
    assert (second[1].free_kib, second[1].planned_kib, second[1].left_kib) == (8 * GIB, 6 * GIB, 2 * GIB)
    assert second[0].load == 0.75 and second[1].load == 0.0


def test_a_guest_no_node_holds_takes_the_fewest_nearest_nodes_and_no_node_is_overcommitted() -> None:
    topology = host(RING)
    # Three 6 GiB guests leave 2 GiB on nodes 0-2 and 8 GiB on node 3; a 6 GiB guest then fits node 3 alone,
    # and a 4 GiB guest needs two nodes: the nearest pairs are 0-1 and 1-2 (21), not 0-2 (31).
    choices = place_series(topology, [(6 * GIB, 4)] * 3 + [(6 * GIB, 4), (4 * GIB, 4)])
    assert [choice.nodes for choice in choices] == [(0,), (1,), (2,), (3,), (0, 1)]
    last = choices[-1]
    assert last.why.startswith(
        "no single host node holds it (the most free: node 0, 2 GiB); host nodes 0-1 are the nearest 2 that hold the "
        "guest (4 GiB), distance 21"
    )
    assert [cell.memory_nodes for cell in last.layout.cells] == [(0,), (1,)]
    assert last.layout.spec.mode == "auto" and last.spec.nodeset == "0-1"
    # Nodes 0-1 are exactly full, none over.
    assert planned_per_node(choices) == {0: 8 * GIB, 1: 8 * GIB, 2: 6 * GIB, 3: 6 * GIB}


def test_equally_near_sets_go_to_the_least_loaded() -> None:
    topology = host(RING)
    # A 2 GiB guest on node 0 and a 1 GiB one on node 1: the equally near pairs 0-1, 1-2, 2-3 and 0-3 all hold
    # the 12 GiB guest (6 GiB a node); it goes to 2-3, the only pair with no load.
    first = place_series(topology, [(2 * GIB, 1), (1 * GIB, 1)])
    assert [choice.nodes for choice in first] == [(0,), (1,)]
    bindings = [binding_from_layout(choice.layout, f"g{i}", running=True) for i, choice in enumerate(first)]
    big = choose_nodes(topology, auto(12 * GIB), GuestShape(vcpus=4, name="big"), report(topology, bindings))
    assert big.nodes == (2, 3)
    assert big.why.endswith("of 4 equally near sets that do, the least loaded (0 % committed)")


def test_nearest_before_least_loaded_and_cpu_less_nodes_are_never_chosen() -> None:
    topology = host(SNC)
    # 48 GiB needs two of the nodes with CPUs (30 GiB of normal memory each): 0-1 (12, one socket), not 0-2
    # (21) nor a CPU-less node.
    choices = place_series(topology, [(48 * GIB, 4), (48 * GIB, 4)])
    assert [choice.nodes for choice in choices] == [(0, 1), (2, 3)]
    assert "distance 12" in choices[0].why
    # The third would need 12 GiB on each of the four (6 GiB left each); only the CPU-less nodes (64 GiB each,
    # untouched) have that: refused.
    bindings = [binding_from_layout(choice.layout, f"g{i}", running=True) for i, choice in enumerate(choices)]
    with pytest.raises(PlacementError) as caught:
        choose_nodes(topology, auto(48 * GIB), GuestShape(vcpus=4, name="g2"), report(topology, bindings))
    assert str(caught.value).startswith(
        "guest g2: mode auto finds no host nodes that hold the guest: it needs 48 GiB; the most any set of host "
        "nodes with CPUs offers (split evenly) is 24 GiB, on host nodes 0-3"
    )
    assert all(4 not in choice.nodes and 5 not in choice.nodes for choice in choices)


def test_hugepages_count_the_pools_not_the_normal_memory() -> None:
    topology = host(SNC)
    # Each node with CPUs has a 2 GiB pool of 2 MiB pages (and 30 GiB of normal memory).
    choices = place_series(topology, [(1536 * MIB, 2), (1536 * MIB, 2)], hugepages="2 MiB")
    assert [choice.nodes for choice in choices] == [(0,), (1,)]
    assert choices[0].hugepages_kib == 2048
    room = {room.id: room for room in choices[1].rooms}
    assert (room[1].capacity_kib, room[1].free_kib, room[1].planned_kib) == (2 * GIB, 2 * GIB, 1536 * MIB)
    assert room[0].committed_kib == 1536 * MIB
    # 3 GiB of hugepages: no pool holds it; 0-1 have 1 GiB left together, 2-3 hold 1.5 GiB each.
    three = place_series(topology, [(1536 * MIB, 2), (1536 * MIB, 2), (3 * GIB, 2)], hugepages="2 MiB")
    assert three[-1].nodes == (2, 3)
    with pytest.raises(PlacementError, match=r"it needs 16 GiB in 2 MiB hugepages; the most any set of host nodes"):
        place_series(topology, [(16 * GIB, 4)], hugepages="2 MiB")


def test_dedicated_pinning_needs_free_cores_on_the_chosen_nodes() -> None:
    topology = host(RING)
    # Node 0's four CPUs are held by another guest: a guest of 2 dedicated cores goes to node 1, though node 0
    # has all its memory free.
    taken = dict.fromkeys(topology.node(0).usable_cpus, "other")
    choice = choose_nodes(
        topology, auto(2 * GIB, pinning="core"), GuestShape(vcpus=2, name="db"), report(topology, []), taken
    )
    assert choice.nodes == (1,)
    assert choice.why.startswith("host node 1 holds the guest (2 GiB, 2 vCPUs on dedicated host cores) alone")
    # 6 dedicated cores: no node has them, two nodes do (3 each).
    pair = choose_nodes(
        topology, auto(2 * GIB, pinning="core"), GuestShape(vcpus=6, name="db"), report(topology, []), taken
    )
    assert pair.nodes == (1, 2)
    # 13 dedicated cores: the three free nodes have 12.
    with pytest.raises(PlacementError) as caught:
        choose_nodes(
            topology, auto(2 * GIB, pinning="thread"), GuestShape(vcpus=13, name="db"), report(topology, []), taken
        )
    message = str(caught.value)
    assert message.startswith("guest db: mode auto finds no host nodes that hold the guest: it needs 2 GiB, 13 vCPUs")
    assert "3 host cores (3 threads) are free of other guests" not in message
    assert "12 host cores (12 threads) are free of other guests" in message
    assert "pinning thread needs" in message


def test_the_refusal_says_what_the_guest_needs_and_the_most_the_host_offers() -> None:
    topology = host(RING)
    # 6 GiB on every node: 2 GiB left on each, 8 GiB over four nodes is the most.
    bindings = [
        binding_from_layout(choice.layout, f"g{i}", running=True)
        for i, choice in enumerate(place_series(topology, [(6 * GIB, 4)] * 4))
    ]
    with pytest.raises(PlacementError) as caught:
        choose_nodes(topology, auto(10 * GIB), GuestShape(vcpus=4, name="web"), report(topology, bindings))
    assert str(caught.value) == (
        "guest web: mode auto finds no host nodes that hold the guest: it needs 10 GiB; the most any set of host "
        "nodes with CPUs offers (split evenly) is 8 GiB, on host nodes 0-3; free: node 0: 2 GiB, node 1: 2 GiB, "
        "node 2: 2 GiB, node 3: 2 GiB"
    )
    # The reserve is the capacity check's: with 2 GiB kept on every node nothing is left at all.
    with pytest.raises(PlacementError, match="no host node with CPUs has any memory left"):
        choose_nodes(topology, auto(1 * GIB), GuestShape(vcpus=1, name="web"), report(topology, bindings, 2 * GIB))


def test_a_request_no_layout_can_have_is_refused_for_what_it_is() -> None:
    topology = host(RING)
    with pytest.raises(SpecError, match=r"guest web: memory 1025 KiB is not a multiple of 1 MiB"):
        choose_nodes(topology, auto(1025), GuestShape(vcpus=1, name="web"), report(topology, []))


def test_the_stored_choice_is_kept_whatever_the_load() -> None:
    topology = host(RING)
    first = place_series(topology, [(6 * GIB, 4)])[0]
    assert first.nodes == (0,)
    # Another guest took node 0 since: a new choice would go elsewhere, the stored one stays.
    crowd = [binding_from_layout(first.layout, "other", running=True)]
    guest = GuestShape(vcpus=4, name="g0")
    kept = keep_nodes(topology, first.spec, guest, report(topology, crowd))
    assert kept.nodes == (0,) and kept.how == "kept"
    assert kept.layout == compute_layout(topology, first.spec, guest)
    assert kept.why == "host node 0 stored with the spec by an earlier run: kept (replan chooses again)"
    room = {room.id: room for room in kept.rooms}
    assert room[0].left_kib == -4 * GIB
    again = choose_nodes(topology, first.spec, guest, report(topology, crowd))
    assert again.nodes == (1,)


def test_stored_nodes_are_usable_only_when_they_are_nodes_with_cpus_here() -> None:
    assert stored_nodes_usable(host(RING), VnumaSpec(mode="auto", nodeset="1-2"))
    assert not stored_nodes_usable(host(RING), VnumaSpec(mode="auto", nodeset="1,7"))
    assert not stored_nodes_usable(host(SNC), VnumaSpec(mode="auto", nodeset="4"))
    assert not stored_nodes_usable(host(RING), VnumaSpec(mode="auto"))


def test_auto_without_a_choice_is_not_laid_out() -> None:
    with pytest.raises(SpecError, match=r"guest web: mode auto chooses its host nodes from what the host's guests use"):
        compute_layout(host(RING), VnumaSpec(mode="auto", memory_kib=GIB), GuestShape(vcpus=1, name="web"))


def test_the_explanation_as_a_result() -> None:
    choice = place_series(host(RING), [(6 * GIB, 4)])[0]
    result = choice.to_dict()
    assert result["nodes"] == "0" and result["how"] == "chosen" and result["memory_kib"] == 6 * GIB
    assert result["hugepages_kib"] is None and result["considered"] >= 1
    assert result["nodes_left"][0] == {
        "id": 0,
        "capacity_kib": 8 * GIB,
        "committed_kib": 0,
        "free_kib": 8 * GIB,
        "planned_kib": 6 * GIB,
        "left_kib": 2 * GIB,
        "load": 0.0,
    }


def test_memory_bound_to_no_node_is_counted_against_every_node() -> None:
    # A guest of the host with no <numatune> holds 28 of the ring's 32 GiB somewhere: each node alone
    # still shows 8 GiB free, but a 6 GiB guest does not fit anywhere, and the refusal says why.
    ring = host(RING)
    unbound = GuestBinding("legacy", (CellBinding(0, (), 28 * GIB),), running=True)
    busy = report(ring, [unbound])
    assert all(node.demand_kib == 0 for node in busy.nodes) and busy.unbound_kib == 28 * GIB
    with pytest.raises(PlacementError, match=r"guests bound to no host node use 28 GiB of that, leaving 4 GiB"):
        choose_nodes(ring, auto(6 * GIB), GuestShape(vcpus=2, name="big"), busy)
    # 4 GiB still fits: one node, as without the unbound guest.
    choice = choose_nodes(ring, auto(4 * GIB), GuestShape(vcpus=2, name="small"), busy)
    assert len(choice.nodes) == 1


def test_a_changed_request_names_each_change() -> None:
    before = AutoRequest(memory_kib=6 * GIB, vcpus=4, hugepages_kib=None, pinning="node")
    assert before.changes_since(before) == []
    after = AutoRequest(memory_kib=10 * GIB, vcpus=8, hugepages_kib=2048, pinning="core")
    assert after.changes_since(before) == [
        "memory 6 GiB -> 10 GiB",
        "vCPUs 4 -> 8",
        "hugepages none -> 2 MiB",
        "pinning node -> core",
    ]


# Nodes 0, 2 (socket 0) and 5, 7 (socket 1), 4 CPUs and 4 GiB each; 12 within a socket, 21 across.
SPARSE = parse_capabilities(
    build_capabilities(HostShape(sockets=2, nodes_per_socket=2, memory_kib=4 * GIB, node_ids=(0, 2, 5, 7)))
)


def device(address: str, node: int | None) -> GuestDevice:
    return GuestDevice("hostdev", PciAddress.parse(address), host_node=node, known=True)


def bound(name: str, node: int, kib: int) -> GuestBinding:
    """A running guest with ``kib`` bound to host node ``node``."""
    return GuestBinding(name, (CellBinding(0, (), kib, "strict", (node,)),), running=True)


def choose(
    topology: HostTopology,
    memory_kib: int,
    devices: Sequence[GuestDevice] = (),
    bindings: Sequence[GuestBinding] = (),
    vcpus: int = 4,
    **options: object,
) -> AutoChoice:
    return choose_nodes(
        topology,
        auto(memory_kib, **options),
        GuestShape(vcpus=vcpus, name="g"),
        report(topology, bindings),
        {},
        devices,
    )


def test_the_explanation_names_the_policy_when_it_ruled_out_the_smaller_sets() -> None:
    # Every node holds the 1 GiB guest; pci_numa_affinity required with NICs on nodes 5 and 7 admits only sets
    # with both.  The explanation used to say that no single node holds it, the most free being node 0.
    nics = [device("0000:41:00.0", 5), device("0000:42:00.0", 7)]
    choice = choose(SPARSE, GIB, nics, pci_numa_affinity="required")
    assert choice.nodes == (5, 7)
    assert choice.why == (
        "no single host node is admitted by pci_numa_affinity required (its PCI devices are on host nodes 5,7); "
        "host nodes 5,7 are the nearest 2 that pci_numa_affinity required admits and that hold the guest (1 GiB), "
        "distance 12; 2 of 2 PCI devices local (pci_numa_affinity required)"
    )
    # legacy alike, with the NICs on nodes 0 and 5: host nodes 0 and 2 are nearer but not admitted.
    apart = choose(SPARSE, GIB, [device("0000:41:00.0", 0), device("0000:42:00.0", 5)])
    assert apart.nodes == (0, 5)
    assert apart.why.startswith(
        "no single host node is admitted by pci_numa_affinity legacy (its PCI devices are on host nodes 0,5); "
        "host nodes 0,5 are the nearest 2 that pci_numa_affinity legacy admits and that hold the guest"
    )
    # socket: pairs within socket 0 are not admitted and the others lack the memory; every set of three is.
    three = choose(SPARSE, 10 * GIB, [device("0000:41:00.0", 5)], pci_numa_affinity="socket")
    assert three.why.startswith(
        "no set of 2 host nodes that pci_numa_affinity socket admits holds it; host nodes 0,2,5 are the nearest 3 "
        "that hold the guest (10 GiB), distance 54"
    )
    # Devices on both sockets: no single node is admitted; the explanation names the sockets.
    both = choose(SPARSE, GIB, [device("0000:01:00.0", 0), device("0000:41:00.0", 5)], pci_numa_affinity="socket")
    assert both.nodes == (0, 5)
    assert both.why.startswith(
        "no single host node is admitted by pci_numa_affinity socket (its PCI devices are on host nodes 0,5 "
        "(socket 0, 1)); host nodes 0,5 are the nearest 2 that pci_numa_affinity socket admits and that hold"
    )


def test_the_most_free_is_of_the_nodes_the_policy_admits() -> None:
    # Node 5, the NIC's, has 1 GiB left; node 0 has 4 GiB but is not admitted: the most free is node 5's.
    choice = choose(
        SPARSE, 2 * GIB, [device("0000:41:00.0", 5)], [bound("x", 5, 3 * GIB)], pci_numa_affinity="required"
    )
    assert choice.nodes == (5, 7)
    assert choice.why.startswith(
        "no single host node that pci_numa_affinity required admits holds it (the most free: node 5, 1 GiB); "
        "host nodes 5,7 are the nearest 2 that pci_numa_affinity required admits and that hold the guest (2 GiB)"
    )
    # No policy: the most free of all the nodes, as before.
    plain = choose(SPARSE, 6 * GIB)
    assert plain.why.startswith("no single host node holds it (the most free: node 0, 4 GiB); host nodes 0,2 are")


def test_sets_with_more_devices_local_go_first_and_the_explanation_says_so() -> None:
    # preferred admits every set: nodes 0 and 2 (12) are nearer than 0 and 5 (21), but only a set with node 5
    # has the NIC local.  Node 7 is full.
    choice = choose(
        SPARSE, 6 * GIB, [device("0000:41:00.0", 5)], [bound("x", 7, 4 * GIB)], pci_numa_affinity="preferred"
    )
    assert choice.nodes == (0, 5)
    assert choice.why.startswith(
        "no single host node holds it (the most free: node 0, 4 GiB); host nodes 0,5 are the nearest 2 with the "
        "most PCI devices local that hold the guest (6 GiB), distance 21; 1 of 1 PCI devices local"
    )


def test_the_explanation_names_the_host_cpus_when_they_ruled_out_the_smaller_sets() -> None:
    # Node 0's CPUs are held by another guest and nodes 1-3 have 4 cores each: 6 dedicated cores take two
    # nodes.  The explanation used to name node 0's free memory (8 GiB, four times the guest's).
    topology = host(RING)
    taken = dict.fromkeys(topology.node(0).usable_cpus, "other")
    pair = choose_nodes(
        topology, auto(2 * GIB, pinning="core"), GuestShape(vcpus=6, name="db"), report(topology, []), taken
    )
    assert pair.nodes == (1, 2)
    assert pair.why.startswith(
        "no single host node holds it (on host node 0: pinning core needs 6 free host cores for guest cell 0 on "
        "host node 0, 0 are free (others are dedicated to other)); host nodes 1-2 are the nearest 2 that hold"
    )
    assert "the most free" not in pair.why


def test_a_policy_that_admits_no_set_is_the_refusal_s_first_reason() -> None:
    # A required device without a host node: no set can be admitted, whatever the memory.
    with pytest.raises(PlacementError) as caught:
        choose(SPARSE, GIB, [device("0000:01:00.0", None)], pci_numa_affinity="required")
    assert str(caught.value) == (
        "guest g: mode auto finds no host nodes that hold the guest: pci_numa_affinity required admits no set of "
        "host nodes with CPUs (PCI device 0000:01:00.0 reports no host node); pci_numa_affinity legacy or "
        "preferred allows devices without a host node; it needs 1 GiB; the most any set of host nodes with CPUs "
        "offers (split evenly) is 16 GiB, on host nodes 0,2,5,7; free: node 0: 4 GiB, node 2: 4 GiB, node 5: "
        "4 GiB, node 7: 4 GiB"
    )
    # A device on a CPU-less (CXL) node: mode auto never chooses that node.
    snc = host(SNC)
    with pytest.raises(PlacementError) as caught:
        choose(snc, GIB, [device("0000:41:00.0", 4)], pci_numa_affinity="required")
    assert str(caught.value).startswith(
        "guest g: mode auto finds no host nodes that hold the guest: pci_numa_affinity required admits no set of "
        "host nodes with CPUs (PCI device 0000:41:00.0 is on host node 4); mode auto chooses only host nodes with "
        "CPUs: name the devices' nodes with mode node and a nodeset, or use pci_numa_affinity preferred to allow "
        "it with a warning; it needs 1 GiB; the most any set of host nodes with CPUs offers (split evenly) is "
    )
    # Under legacy a device without a node is no obstacle: only the other is named, with its own remedy.
    with pytest.raises(PlacementError) as caught:
        choose(snc, GIB, [device("0000:01:00.0", None), device("0000:41:00.0", 4)])
    assert "(PCI device 0000:41:00.0 is on host node 4); mode auto chooses only host nodes" in str(caught.value)
    assert "0000:01:00.0" not in str(caught.value) and "without a host node" not in str(caught.value)


def test_the_refusal_counts_the_memory_of_the_sets_the_policy_admits() -> None:
    # 12 GiB on nodes 0, 2 and 7 would hold the 5 GiB guest, but every set the policy admits has node 5, with
    # 1 GiB left: four nodes offer 4 GiB.
    with pytest.raises(PlacementError) as caught:
        choose(SPARSE, 5 * GIB, [device("0000:41:00.0", 5)], [bound("x", 5, 3 * GIB)], pci_numa_affinity="required")
    assert str(caught.value) == (
        "guest g: mode auto finds no host nodes that hold the guest: it needs 5 GiB; the most any set of host "
        "nodes with CPUs that pci_numa_affinity required admits offers (split evenly) is 4 GiB, on host nodes "
        "0,2,5,7; free: node 0: 4 GiB, node 2: 4 GiB, node 5: 1 GiB, node 7: 4 GiB; pci_numa_affinity required "
        "admits only host nodes near its devices (PCI device 0000:41:00.0 on host node 5)"
    )
    # The device's node is full: no admitted set has memory on all its nodes.
    with pytest.raises(
        PlacementError,
        match="no set of host nodes with CPUs that pci_numa_affinity required admits "
        "has memory left on all its nodes; free: node 0: 4 GiB, node 2: 4 GiB, node 5: 0",
    ):
        choose(SPARSE, GIB, [device("0000:41:00.0", 5)], [bound("x", 5, 4 * GIB)], pci_numa_affinity="required")


def test_the_host_cpus_come_first_in_a_refusal_when_the_memory_is_there() -> None:
    topology = host(RING)
    taken = dict.fromkeys(topology.node(0).usable_cpus, "other")
    with pytest.raises(PlacementError) as caught:
        choose_nodes(
            topology, auto(2 * GIB, pinning="thread"), GuestShape(vcpus=13, name="db"), report(topology, []), taken
        )
    assert str(caught.value).startswith(
        "guest db: mode auto finds no host nodes that hold the guest: it needs 2 GiB, 13 vCPUs on dedicated host "
        "threads; 12 host cores (12 threads) are free of other guests; on host node 0: pinning thread needs 13 "
        "free host threads"
    )
    assert str(caught.value).endswith(
        "the most any set of host nodes with CPUs offers (split evenly) is 32 GiB, on host nodes 0-3; free: node 0: "
        "8 GiB, node 1: 8 GiB, node 2: 8 GiB, node 3: 8 GiB"
    )


def test_above_the_exhaustive_sets_the_devices_nodes_seed_a_set_of_their_own() -> None:
    # 16 nodes with 40 GiB of normal memory each (64 GiB less their hugepage pools): 96 GiB needs 3 nodes; 16 nodes
    # have 560 sets of 3, so the sets are grown nearest first.  Grown from one node, no set of 3 held both NICs
    # (nodes 0 and 15, distance 32): the guest was refused, naming a set of 9 nodes.
    large = host("large-16node-1024cpu")
    nics = [device("0000:01:00.0", 0), device("0000:81:00.0", 15)]
    choice = choose(large, 96 * GIB, nics, vcpus=8, pci_numa_affinity="required")
    assert choice.nodes == (0, 1, 15)
    assert choice.why.startswith(
        "no set of 2 host nodes that pci_numa_affinity required admits holds it; host nodes 0-1,15 are the nearest 3 "
        "that pci_numa_affinity required admits and that hold the guest (96 GiB)"
    )


# -- large hosts: the search's work grows with the nodes, not with the sets of them -----------------------------


def test_on_a_32_node_host_each_set_is_weighed_once_and_a_refusal_comes_without_a_search_per_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Growing every set from scratch weighed each node's pairs again at every step of every size: a 2,100 GiB
    # refusal on 32 nodes took a minute, one of 1,100 GiB on 64 nodes more than 15. The work is counted here, not
    # timed: the sum of host distances computed from scratch, pair by pair.
    import ansible_collections.vnuma.libvirt.plugins.module_utils._core.auto as auto_module

    topology = parse_capabilities(
        build_capabilities(HostShape(sockets=4, nodes_per_socket=8, cores_per_node=4, memory_kib=64 * GIB))
    )
    pairs = 0
    distance = auto_module._distance

    def counted(host: HostTopology, nodes: Sequence[int]) -> int:
        nonlocal pairs
        pairs += len(nodes) * (len(nodes) - 1) // 2
        return distance(host, nodes)

    monkeypatch.setattr(auto_module, "_distance", counted)
    fits = choose_nodes(topology, auto(1200 * GIB), GuestShape(vcpus=64, name="g"), report(topology, []))
    assert len(fits.nodes) == 19
    with pytest.raises(
        PlacementError, match="mode auto finds no host nodes that hold the guest: it needs 2100 GiB; the most any set"
    ):
        choose_nodes(topology, auto(2048 * GIB + 52 * GIB), GuestShape(vcpus=64, name="g"), report(topology, []))
    # 32 nodes: about 32 x 32 sets of every size, each weighed once (at most 32 x 32 x 31 / 2 pairs apiece).
    assert pairs < 2 * 32**4, pairs


def test_the_most_free_node_is_named_also_when_it_fails_for_another_reason() -> None:
    # Node 4 has 32 GiB but too few threads for the guest; the message named node 6 (4 GiB) "the most free".
    topology = parse_capabilities(
        build_capabilities(
            HostShape(
                nodes_per_socket=4,
                cores_per_node=[8, 4, 12, 8],
                memory_kib=[16 * GIB, 8 * GIB, 32 * GIB, 4 * GIB],
                node_ids=[0, 2, 4, 6],
            )
        )
    )
    choice = choose_nodes(
        topology, auto(8 * GIB, pinning="thread"), GuestShape(vcpus=16, name="g"), report(topology, [])
    )
    assert choice.why.startswith(
        "no single host node holds it (the most free: node 4, 32 GiB; on host node 4: pinning thread needs 16 free "
        "host threads for guest cell 0 on host node 4, 12 are free)"
    ), choice.why
