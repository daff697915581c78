# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab's topology files: the schema, and the refusals of what QEMU cannot build (scripts/lab)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts" / "lab"))

from lab_topology import TopologyError, load_topology, parse_topology  # noqa: E402

BASE: dict[str, Any] = {
    "hypervisors": [
        {
            "name": "lab4",
            "sockets": 3,
            "threads_per_core": 2,
            "hmat": True,
            "nodes": [
                {"id": 0, "cpus": 2, "memory": "1 GiB", "hugepages_2m": 32},
                {"id": 1, "cpus": 2, "memory": 1024, "hugepages_2m": 32},
                {"id": 2, "cpus": 2, "memory": "1G"},
                {"id": 3, "memory": "512 MiB", "hugepages_2m": 16},
            ],
            "distances": [[10, 21, 31, 41], [21, 10, 21, 31], [31, 21, 10, 21], [41, 31, 21, 10]],
        }
    ]
}


def changed(path: str, value: object) -> dict[str, Any]:
    """BASE with the value at a dotted path (list indexes as numbers) replaced, or removed for ``...``."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return data


def test_the_base_topology_is_modelled() -> None:
    lab = parse_topology(BASE, "lab.yml")
    (hypervisor,) = lab.hypervisors
    assert hypervisor.cpus == 6
    assert hypervisor.cores == 3
    assert hypervisor.cores_per_socket == 1
    assert hypervisor.memory_mib == 3584
    assert [node.memory_mib for node in hypervisor.nodes] == [1024, 1024, 1024, 512]
    assert [node.hugepages_2m for node in hypervisor.nodes] == [32, 32, 0, 16]
    assert [node.id for node in hypervisor.cpu_nodes] == [0, 1, 2]
    assert hypervisor.distances[0][3] == 41


def test_a_cpu_less_node_is_initiated_by_its_nearest_cpu_node() -> None:
    (hypervisor,) = parse_topology(BASE, "lab.yml").hypervisors
    assert [hypervisor.initiator(node) for node in hypervisor.nodes] == [0, 1, 2, 2]


def test_nodes_may_be_listed_in_any_order_and_default_distances_are_20() -> None:
    data = changed("hypervisors.0.distances", ...)
    data["hypervisors"][0]["nodes"].reverse()
    (hypervisor,) = parse_topology(data, "lab.yml").hypervisors
    assert [node.id for node in hypervisor.nodes] == [0, 1, 2, 3]
    assert hypervisor.distances[1] == (20, 10, 20, 20)


def test_cores_are_dealt_to_nodes_in_id_order_within_sockets() -> None:
    data = {
        "hypervisors": [
            {
                "name": "snc",
                "sockets": 1,
                "nodes": [{"id": 0, "cpus": 2, "memory": 512}, {"id": 1, "cpus": 2, "memory": 512}],
            }
        ]
    }
    (hypervisor,) = parse_topology(data, "lab.yml").hypervisors
    assert hypervisor.core_positions(hypervisor.nodes[0]) == [(0, 0), (0, 1)]
    assert hypervisor.core_positions(hypervisor.nodes[1]) == [(0, 2), (0, 3)]


def test_the_topology_files_the_lab_tests_use_are_valid() -> None:
    lab = load_topology([ROOT / "tests" / "lab" / "four-node.yml", ROOT / "tests" / "lab" / "two-node.yml"])
    assert [hypervisor.name for hypervisor in lab.hypervisors] == ["lab4", "lab2"]
    four, two = lab.hypervisors
    assert (len(four.nodes), four.threads_per_core, four.hmat) == (4, 2, True)
    assert [node.cpus for node in four.nodes] == [2, 2, 2, 0]
    assert (len(two.nodes), two.threads_per_core) == (2, 1)
    # Sized for a 24 GiB machine: about 4 GiB per hypervisor at most.
    assert all(hypervisor.memory_mib <= 4096 for hypervisor in lab.hypervisors)


REFUSED = [
    pytest.param(changed("hypervisors.0.name", "Lab_4"), "hypervisors[0].name: 'Lab_4' must match", id="name"),
    pytest.param(changed("hypervisors.0.color", "red"), "unknown field(s) color", id="unknown-field"),
    pytest.param(
        changed("hypervisors.0.threads_per_core", 3), "hypervisor 'lab4': threads_per_core: 3 must be one of", id="smt"
    ),
    pytest.param(
        changed("hypervisors.0.nodes.0.cpus", 3),
        "nodes[0].cpus: 3 is not a multiple of threads_per_core 2",
        id="cpus-not-whole-cores",
    ),
    pytest.param(
        changed("hypervisors.0.nodes.1.memory", "101 MiB"),
        "nodes[1].memory: '101 MiB' is not a multiple of 2 MiB",
        id="memory-alignment",
    ),
    pytest.param(
        changed("hypervisors.0.nodes.1.memory", 32),
        "nodes[1].memory: 32 is below the minimum of 64 MiB",
        id="memory-min",
    ),
    pytest.param(
        changed("hypervisors.0.nodes.1.memory", "1 parsec"), "nodes[1].memory: memory: unknown unit", id="memory-unit"
    ),
    pytest.param(
        changed("hypervisors.0.nodes.3.hugepages_2m", 200),
        "nodes[3].hugepages_2m: 200 is outside 0..128 (at most half of the node's 512 MiB in 2 MiB pages)",
        id="hugepages",
    ),
    pytest.param(changed("hypervisors.0.nodes.3.id", 5), "ids [0, 1, 2, 5] must be 0..3", id="sparse-ids"),
    pytest.param(changed("hypervisors.0.nodes.0.cpus", 0), "nodes[0].cpus: 0: node 0 must have CPUs", id="node0"),
    pytest.param(
        changed("hypervisors.0.nodes.0.cpus", 40), "nodes[0].cpus: 40 is outside 0..32", id="too-many-cpus-on-a-node"
    ),
    pytest.param(
        changed("hypervisors.0.nodes.0.cpus", 30), "34 CPUs in all is above the limit of 32", id="too-many-cpus"
    ),
    pytest.param(
        changed("hypervisors.0.nodes.0.memory", "15 GiB"),
        "17920 MiB of memory in all is above the limit of 16384 MiB",
        id="too-much-memory",
    ),
    pytest.param(
        changed("hypervisors.0.sockets", 2),
        "sockets: 2 sockets do not divide the 3 cores evenly",
        id="sockets-uneven",
    ),
    pytest.param(changed("hypervisors.0.sockets", 4), "sockets: 4 is outside 1..3", id="sockets-above-cores"),
    pytest.param(
        changed("hypervisors.0.distances.0.1", 9),
        "distances[0][1]: 9 must be 11..255",
        id="distance-remote",
    ),
    pytest.param(changed("hypervisors.0.distances.2.2", 11), "distances[2][2]: 11 must be 10", id="distance-local"),
    pytest.param(
        changed("hypervisors.0.distances.0.1", 22),
        "distances[0][1]: 22 but distances[1][0] is 21",
        id="distance-asymmetric",
    ),
    pytest.param(changed("hypervisors.0.distances.3", [41, 31]), "distances[3]: expected 4 distances", id="row"),
    pytest.param(changed("hypervisors.0.hmat", "yes"), "hmat: 'yes' must be true or false", id="hmat"),
    pytest.param(changed("hypervisors.0.nodes", []), "nodes: expected a non-empty list", id="no-nodes"),
    pytest.param({"hypervisors": []}, "lab.yml: hypervisors: expected a non-empty list", id="no-hypervisors"),
]


@pytest.mark.parametrize(("data", "message"), REFUSED)
def test_what_qemu_cannot_build_is_refused_naming_file_hypervisor_field_value_and_limit(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(TopologyError) as raised:
        parse_topology(data, "lab.yml")
    assert str(raised.value).startswith("lab.yml: ")
    assert message in str(raised.value)


def test_a_node_spanning_two_sockets_is_refused() -> None:
    data = {
        "hypervisors": [
            {
                "name": "odd",
                "sockets": 2,
                "nodes": [
                    {"id": 0, "cpus": 1, "memory": 512},
                    {"id": 1, "cpus": 2, "memory": 512},
                    {"id": 2, "cpus": 1, "memory": 512},
                ],
            }
        ]
    }
    with pytest.raises(TopologyError, match=r"nodes\[1\]\.cpus: node 1's 2 CPUs would span sockets \[0, 1\]"):
        parse_topology(data, "lab.yml")


def test_hypervisor_names_are_unique_across_files(tmp_path: Path) -> None:
    first = tmp_path / "a.yml"
    second = tmp_path / "b.yml"
    text = "hypervisors:\n  - name: one\n    nodes: [{id: 0, cpus: 1, memory: 256}]\n"
    first.write_text(text)
    second.write_text(text)
    with pytest.raises(TopologyError, match=rf"{second}: hypervisor 'one': name: already used by a hypervisor of"):
        load_topology([first, second])


def test_a_file_that_is_not_yaml_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("hypervisors: [\n")
    with pytest.raises(TopologyError, match=rf"^{path}: not valid YAML"):
        load_topology([path])
