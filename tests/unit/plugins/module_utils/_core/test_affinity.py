# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PCI NUMA affinity (Nova's four policies) over a two-socket fixture host with devices on several nodes.

The host is amd-2s-nps4: nodes 0-3 on socket 0, 4-7 on socket 1.  Its node devices
(tests/unit/fixtures/nodedev/amd-2s-nps4/) put a NIC on node 2, a GPU on node 5, one virtual function
at -1 and a USB controller without any NUMA element.
"""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.affinity import admits, check_affinity, misses
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.auto import choose_nodes
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import check_capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import (
    GuestDevice,
    PciAddress,
    cell_for_host_node,
    device_report,
    devices_by_node,
    local_cell,
    with_host_nodes,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError, SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import place_guests
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.nodedev import host_pci_devices
from ansible_collections.vnuma.libvirt.tests.support.devices import node_device_xmls
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

TOPOLOGY = host("amd-2s-nps4")
HOST_PCI = host_pci_devices(node_device_xmls("amd-2s-nps4"))
GUEST = GuestShape(vcpus=4, memory_kib=4 * 1024 * 1024, name="db")
NIC = "0000:41:00.0"  # node 2, socket 0
GPU = "0000:c1:00.0"  # node 5, socket 1
VF = "0000:e1:00.2"  # numa node -1
USB = "0000:00:14.0"  # no numa element


def devices(*addresses: str) -> list[GuestDevice]:
    guest = [
        GuestDevice("hostdev", PciAddress.parse(text), alias=f"ua-{index}") for index, text in enumerate(addresses)
    ]
    return with_host_nodes(guest, HOST_PCI)


def layout(nodeset: str, policy: str, cells: int | None = None) -> Layout:
    spec = VnumaSpec(mode="node", nodeset=nodeset, cells=cells, pci_numa_affinity=policy)
    return compute_layout(TOPOLOGY, spec, GUEST)


def test_the_fixture_hosts_devices_and_their_nodes() -> None:
    assert {str(address): device.node for address, device in HOST_PCI.items()} == {
        "0000:00:14.0": None,
        "0000:01:00.0": 0,
        "0000:41:00.0": 2,
        "0000:41:00.1": 2,
        "0000:c1:00.0": 5,
        "0000:e1:00.2": None,
    }
    assert devices_by_node(list(HOST_PCI.values())) == {
        "0": ["0000:01:00.0"],
        "2": ["0000:41:00.0", "0000:41:00.1"],
        "5": ["0000:c1:00.0"],
        "unknown": ["0000:00:14.0", "0000:e1:00.2"],
    }
    nic, unknown = devices(NIC, "0000:99:00.0")
    assert (nic.host_node, nic.kind, nic.known) == (2, "network", True)
    assert (unknown.host_node, unknown.known) == (None, False)


@pytest.mark.parametrize(
    ("policy", "nodeset", "outcome"),
    [
        # The NIC on node 2 and the GPU on node 5: both local only with nodes 2 and 5.
        ("required", "2,5", "ok"),
        ("required", "2-3", "refused"),
        ("legacy", "2,5", "ok"),
        ("legacy", "0-1", "refused"),
        ("preferred", "0-1", "warned"),
        ("preferred", "2,5", "ok"),
        # socket: node 3 shares socket 0 with the NIC, node 4 socket 1 with the GPU.
        ("socket", "3-4", "ok"),
        ("socket", "0-3", "refused"),
    ],
)
def test_each_policy_on_a_layout(policy: str, nodeset: str, outcome: str) -> None:
    found = devices(NIC, GPU)
    planned = layout(nodeset, policy)
    if outcome == "refused":
        with pytest.raises(PlacementError) as error:
            check_affinity(TOPOLOGY, planned, found, "db")
        text = str(error.value)
        # The guest, a device by address, its node, the cells' nodes and the policy.
        assert text.startswith("guest db: PCI device ")
        assert f"pci_numa_affinity {policy}" in text
        assert "cell 0 on host node(s)" in text
        assert "is on host node" in text
    else:
        warnings = check_affinity(TOPOLOGY, planned, found, "db")
        assert bool(warnings) == (outcome == "warned")
        if warnings:
            assert warnings == [
                "guest db: PCI device 0000:41:00.0 (ua-0) is on host node 2; PCI device 0000:c1:00.0 (ua-1) is on "
                "host node 5; pci_numa_affinity preferred needs each device on a host node the cells use "
                "(nodes 0-1) (cell 0 on host node(s) 0; cell 1 on host node(s) 1)"
            ]


def test_the_refusal_names_what_would_do() -> None:
    with pytest.raises(PlacementError) as error:
        check_affinity(TOPOLOGY, layout("0-1", "required"), devices(NIC), "db")
    assert str(error.value) == (
        "guest db: PCI device 0000:41:00.0 (ua-0) is on host node 2; pci_numa_affinity required needs each device "
        "on a host node the cells use (nodes 0-1) (cell 0 on host node(s) 0; cell 1 on host node(s) 1); use host "
        "nodes that include node(s) 2 (mode node with nodeset, or mode auto), or pci_numa_affinity preferred to "
        "allow it with a warning"
    )


@pytest.mark.parametrize("address", [VF, USB])
def test_a_device_without_a_node(address: str) -> None:
    found = devices(address)
    # legacy and preferred: anything goes (Nova: "no information about PCI-NUMA affinity available").
    assert check_affinity(TOPOLOGY, layout("0", "legacy"), found) == []
    assert check_affinity(TOPOLOGY, layout("0", "preferred"), found) == []
    # required and socket cannot use it.
    for policy in ("required", "socket"):
        with pytest.raises(PlacementError, match=f"PCI device {address} \\(ua-0\\) reports no host node"):
            check_affinity(TOPOLOGY, layout("0", policy), found)


def test_a_device_the_host_does_not_have() -> None:
    found = devices("0000:99:00.0")
    assert check_affinity(TOPOLOGY, layout("0", "legacy"), found, "db") == [
        "guest db: PCI device 0000:99:00.0 (ua-0) is not a PCI device of the host: its host node is unknown"
    ]
    with pytest.raises(PlacementError, match="is not a PCI device of the host"):
        check_affinity(TOPOLOGY, layout("0", "required"), found, "db")


def test_admits_and_misses_for_mode_auto() -> None:
    found = devices(NIC, GPU)
    assert admits(TOPOLOGY, "required", found, (2, 5))
    assert not admits(TOPOLOGY, "required", found, (2,))
    assert admits(TOPOLOGY, "socket", found, (0, 7))
    assert not admits(TOPOLOGY, "socket", found, (0, 1))
    assert admits(TOPOLOGY, "preferred", found, (0,))
    assert (misses(found, (2, 5)), misses(found, (2,)), misses(found, (0,))) == (0, 1, 2)


def test_cell_for_host_node() -> None:
    # Two cells per node over nodes 2 and 5: a device on node 5 is local to cells 2 and 3, first 2.
    planned = layout("2,5", "legacy", cells=4)
    assert [cell.id for cell in planned.cells if 5 in cell.host_nodes] == [2, 3]
    assert cell_for_host_node(planned, 5) == 2
    assert cell_for_host_node(planned, 0) is None
    assert cell_for_host_node(planned, None) is None


def auto_choice(policy: str, found: list[GuestDevice]) -> tuple[int, ...]:
    report = check_capacity(TOPOLOGY, place_guests(TOPOLOGY, []))
    spec = VnumaSpec(mode="auto", memory_kib=4 * 1024 * 1024, pci_numa_affinity=policy)
    choice = choose_nodes(TOPOLOGY, spec, GUEST, report, {}, found)
    return choice.nodes


def test_mode_auto_is_steered_by_the_devices() -> None:
    # Without devices one node holds the guest: the lowest id wins the tie.
    assert auto_choice("legacy", []) == (0,)
    # required / legacy: only sets with the devices' nodes.
    assert auto_choice("required", devices(NIC)) == (2,)
    assert auto_choice("legacy", devices(GPU)) == (5,)
    assert auto_choice("required", devices(NIC, GPU)) == (2, 5)
    # preferred: the local node first (one node still holds the guest).
    assert auto_choice("preferred", devices(GPU)) == (5,)
    # socket: one node on the GPU's socket; local first, so node 5 itself.
    assert auto_choice("socket", devices(GPU)) == (5,)
    # A device without a node steers nothing under legacy.
    assert auto_choice("legacy", devices(VF)) == (0,)


def test_mode_auto_explains_the_devices() -> None:
    report = check_capacity(TOPOLOGY, place_guests(TOPOLOGY, []))
    spec = VnumaSpec(mode="auto", memory_kib=4 * 1024 * 1024, pci_numa_affinity="required")
    choice = choose_nodes(TOPOLOGY, spec, GUEST, report, {}, devices(NIC))
    assert "1 of 1 PCI devices local (pci_numa_affinity required)" in choice.why


def test_mode_auto_refuses_when_no_set_admits_the_devices() -> None:
    report = check_capacity(TOPOLOGY, place_guests(TOPOLOGY, []))
    spec = VnumaSpec(mode="auto", memory_kib=4 * 1024 * 1024, pci_numa_affinity="required")
    with pytest.raises(PlacementError) as error:
        choose_nodes(TOPOLOGY, spec, GUEST, report, {}, devices(VF))
    assert str(error.value).startswith(
        "guest db: mode auto finds no host nodes that hold the guest: pci_numa_affinity required admits no set of "
        "host nodes with CPUs (PCI device 0000:e1:00.2 (ua-0) reports no host node)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0000:03:00", "is not a PCI address"),
        ("zz:00.0", "is not a PCI address"),
        ("00:20.0", "PCI slot 32 is outside 0 to 0x1f"),
        (3, "is not a PCI address"),
    ],
)
def test_bad_pci_addresses_are_refused(text: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        PciAddress.parse(text)


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(SpecError, match="pci_numa_affinity 'strict' is not one of required, preferred, socket, legacy"):
        VnumaSpec.from_mapping({"pci_numa_affinity": "strict"})


def test_the_report_of_a_guests_devices() -> None:
    nic, vf, unknown = devices(NIC, VF, "0000:99:00.0")
    # (cell id, host nodes, has vCPUs): a CPU-less cell on node 2 comes after the cell with vCPUs there.
    cells = [(0, (0,), True), (1, (2,), False), (2, (2,), True)]
    assert device_report(nic, cells) == {
        "address": NIC,
        "element": "hostdev",
        "alias": "ua-0",
        "mac": None,
        "kind": "network",
        "host_node": 2,
        "known": True,
        "local": True,
        "cell": 2,
    }
    assert local_cell(2, cells[:2]) == 1
    assert (device_report(nic, cells[:1])["local"], device_report(nic, cells[:1])["cell"]) == (False, None)
    assert (device_report(vf, cells)["local"], device_report(vf, cells)["host_node"]) == (None, None)
    assert (device_report(unknown, cells)["known"], device_report(unknown, cells)["kind"]) == (False, "other")
