# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vnuma_auto_nodes filter: the choice of mode auto for templating, from a vnuma_domain capacity result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_auto_nodes import FilterModule, vnuma_auto_nodes
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_layout import vnuma_layout

CAPABILITIES = Path(__file__).parents[2] / "fixtures" / "capabilities"
RING = (CAPABILITIES / "seed-4node-ring.xml").read_text()
SNC = (CAPABILITIES / "intel-snc2-cxl.xml").read_text()
GIB = 1024 * 1024


def node(node_id: int, demand_kib: int = 0, reserved_kib: int = 0, pools: tuple[Any, ...] = ()) -> dict[str, Any]:
    """A node of vnuma_domain's capacity result, with only what the filter reads."""
    return {"id": node_id, "demand_kib": demand_kib, "reserved_kib": reserved_kib, "hugepages": list(pools)}


def fail_text(**kwargs: Any) -> str:
    with pytest.raises(AnsibleFilterError) as caught:
        vnuma_auto_nodes(RING, **kwargs)
    return str(caught.value)


def test_filter_module_exposes_the_filter() -> None:
    assert FilterModule().filters() == {"vnuma_auto_nodes": vnuma_auto_nodes}


def test_an_empty_host_takes_the_first_node_and_the_layout_is_node_mode_on_it() -> None:
    choice = vnuma_auto_nodes(RING, {}, vcpus=4, memory="6 GiB", name="web03")
    assert choice["nodes"] == "0" and choice["how"] == "chosen"
    assert choice["layout"] == vnuma_layout(
        RING, {"mode": "node", "nodeset": "0"}, vcpus=4, memory="6 GiB", name="web03"
    ) | {"mode": "auto"}


def test_the_capacity_result_of_vnuma_domain_is_the_load() -> None:
    # Nodes 0-2 hold 6 GiB each and node 3 keeps 4 GiB for the host: 2 GiB left on 0-2, 4 GiB on node 3. 6 GiB
    # fits no node nor pair (3 GiB each); every set of three is as near (73) and holds it (2 GiB each): those with
    # the unloaded node 3 are less loaded in sum, and 0-1,3 has the lowest ids.
    capacity = {"nodes": [node(0, 6 * GIB), node(1, 6 * GIB), node(2, 6 * GIB), node(3, 0, 4 * GIB)], "dedicated": {}}
    choice = vnuma_auto_nodes(RING, {}, vcpus=4, memory="6 GiB", capacity=capacity)
    assert choice["nodes"] == "0-1,3"
    left = {room["id"]: room for room in choice["nodes_left"]}
    assert (left[3]["capacity_kib"], left[3]["committed_kib"]) == (4 * GIB, 0)
    assert left[0]["committed_kib"] == 6 * GIB and left[0]["left_kib"] == 0
    # Dedicated CPUs of the capacity result are avoided by dedicated pinning.
    held = {"nodes": [node(n) for n in range(4)], "dedicated": {"0": "db", "1": "db", "2": "db", "3": "db"}}
    dedicated = vnuma_auto_nodes(RING, {"pinning": "core"}, vcpus=2, memory="1 GiB", capacity=held)
    assert dedicated["nodes"] == "1"


def test_hugepage_pools_in_use_count() -> None:
    pools = ({"size_kib": 2048, "pool_kib": 2 * GIB, "demand_kib": 2 * GIB},)
    capacity = {"nodes": [node(0, pools=pools), node(1), node(2), node(3)]}
    choice = vnuma_auto_nodes(SNC, {"hugepages": "2 MiB"}, vcpus=2, memory="1 GiB", capacity=capacity)
    assert choice["nodes"] == "1" and choice["hugepages_kib"] == 2048


def test_bad_input_is_refused_clearly() -> None:
    assert fail_text(spec={"mode": "node"}, vcpus=2, memory="1 GiB") == (
        "vnuma.libvirt.vnuma_auto_nodes: mode 'node': vnuma_auto_nodes chooses nodes for mode auto only"
    )
    assert fail_text(spec={"nodeset": "1"}, vcpus=2, memory="1 GiB", name="web") == (
        "vnuma.libvirt.vnuma_auto_nodes: guest web: nodeset '1' is what mode auto chooses; leave it out, or use mode "
        "node to name the host nodes"
    )
    assert "capacity must be the capacity result of vnuma_domain (a dict), got list" in fail_text(
        vcpus=2, memory="1 GiB", capacity=[1]
    )
    assert "capacity: node 0's demand_kib 'lots' must be an integer of at least 0" in fail_text(
        vcpus=2, memory="1 GiB", capacity={"nodes": [{"id": 0, "demand_kib": "lots"}]}
    )
    assert fail_text(vcpus=2, memory="40 GiB", name="web").startswith(
        "vnuma.libvirt.vnuma_auto_nodes: guest web: mode auto finds no host nodes that hold the guest: it needs 40 GiB"
    )
    with pytest.raises(AnsibleFilterError, match="must be a string of XML"):
        vnuma_auto_nodes(None, vcpus=2)


@pytest.mark.parametrize(
    ("capacity", "message"),
    [
        # The module's whole result, or a misspelt key: read as empty, node 0 would look free.
        (
            {"changed": False, "capacity": {"nodes": [node(0, 6 * GIB)]}},
            "guest web: capacity is not a capacity result (it has capacity, changed): give the capacity of "
            "vnuma_domain's result (its keys are fits, problems, blocking, warnings, nodes, unbound_kib, "
            "unbound_available_kib, unbound_guests, dedicated)",
        ),
        ({"Nodes": [node(0, 6 * GIB)]}, "capacity is not a capacity result (it has Nodes)"),
        ({"dedicated": {}}, "capacity is not a capacity result (it has no nodes)"),
        ({"nodes": 5}, "capacity: nodes must be a list of dicts, got 5"),
        ({"nodes": [{"id": 0, "hugepages": ["x"]}]}, "capacity: node 0's hugepages must be a list of dicts, got ['x']"),
        ({"nodes": [], "dedicated": "x"}, "capacity: dedicated must be a dict of host CPU to guest name, got 'x'"),
        ({"nodes": [], "dedicated": {"0-3": "db"}}, "capacity: dedicated CPU '0-3' is not a non-negative integer"),
        (
            {"nodes": [], "dedicated": {9000: "db"}},
            "capacity: dedicated CPU 9000 must be an integer from 0 to 8191 (Linux has at most 8192 CPUs (NR_CPUS))",
        ),
    ],
)
def test_what_is_not_a_capacity_result_is_refused(capacity: dict[str, Any], message: str) -> None:
    assert message in fail_text(vcpus=2, memory="6 GiB", name="web", capacity=capacity)
