# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Live migration between lab hypervisors of different shapes (make lab-migration-test, docs/migration.md).

Two guests laid out on lab4's nodes 1 and 2 (CPUs 2-3 and 4-5, distance 21) move live to lab2 (nodes 0
and 1, CPUs 0-1 and 2-3, distance 12) over the lab network: one through vnuma_migrate, one through plain
``virsh migrate`` with the collection's hook on lab2.  On lab2 the kernel must show each cell's memory on
the node its binding names and each vCPU thread on its pinned CPU, the bindings must be lab2's (its nodes,
each cell whole on a node of its own, no CPU held twice), and what the guest sees must be the same as on
lab4.  Without the hook, the same virsh move fails: the bindings name lab4's nodes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Lab
from lab_checks import (
    MIN_ON_NODE,
    MIN_TOUCHED,
    Bindings,
    GuestReport,
    WaveReport,
    guest_visible,
    parse_cpuset,
    parse_wave_report,
    remove_moved,
    sections,
    share_on,
)
from touch_payload import payload

pytestmark = pytest.mark.lab_migration

SOURCE = "lab4"
DESTINATION = "lab2"
PREFIX = "mig3-"
BY_MODULE = PREFIX + "module"
BY_HOOK = PREFIX + "hook"
MEMORY_MIB = 128
PAYLOAD = f"/var/lib/libvirt/images/{PREFIX}touch.bin"


# The module's guest holds one host thread per vCPU; the hook's floats over its cells' nodes (lab4 has one
# SMT2 core per node, and a dedicated thread keeps its core's sibling from other dedicated guests), so on
# lab2 the hook must keep it off the CPUs the first guest holds.
PINNING = {BY_MODULE: "thread", BY_HOOK: "node"}
GUESTS = [
    {
        "name": name,
        "memory_mib": MEMORY_MIB,
        "vcpus": 2,
        "spec": {"name": name, "mode": "node", "nodeset": "1-2", "pinning": pinning, "memory_mode": "strict"},
    }
    for name, pinning in PINNING.items()
]


@dataclass(frozen=True)
class Moved:
    """What the migration playbook read: lab4 before, lab2 after, and the module's results."""

    result: dict[str, Any]
    source_xml: dict[str, str]
    destination: WaveReport
    destination_xml: dict[str, str]
    persistent_xml: dict[str, str]


@pytest.fixture(scope="module")
def moved(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moved]:
    source = lab.host(SOURCE)
    lab.host(DESTINATION)
    reach = source.run(f"ssh {DESTINATION} hostname 2>&1 || echo unreachable", timeout=120).strip()
    if reach != DESTINATION:
        pytest.fail(f"{SOURCE} cannot reach {DESTINATION} over the lab network ({reach}): boot the lab with lab.py up")
    out = tmp_path_factory.mktemp("lab-migration")
    variables = {
        "lab_out": str(out),
        "source": SOURCE,
        "destination": DESTINATION,
        "payload": PAYLOAD,
        "payload_base64": base64.b64encode(payload()).decode(),
        "guests": GUESTS,
    }
    try:
        lab.playbook("migration.yml", "--extra-vars", json.dumps(variables))
        result = json.loads((out / "migration.json").read_text())
        text = result["destination"].replace("\r", "")
        yield Moved(
            result,
            sections(result["source_xml"], "xml"),
            parse_wave_report(text.split("\n@@ xml ")[0]),
            sections(text, "xml"),
            sections(text, "persistent"),
        )
    finally:
        for name in (SOURCE, DESTINATION):
            remove_moved(lab.host(name), [BY_MODULE, BY_HOOK], [PAYLOAD])


def _guest(moved: Moved, name: str) -> GuestReport:
    assert name in moved.destination.guests, f"{name} does not run on {DESTINATION}: {moved.result['by_virsh']}"
    return moved.destination.guests[name]


def test_without_the_hook_a_plain_virsh_move_fails_and_the_guest_stays(moved: Moved) -> None:
    text = moved.result["without_hook"].replace("\r", "")
    assert "@@ rc 0" not in text, text
    # lab4's node 2 does not exist on lab2.
    assert "NUMA node 2 is unavailable" in text, text
    assert text.rstrip().endswith("running"), text


def test_check_mode_plans_the_move_and_moves_nothing(moved: Moved) -> None:
    planned = moved.result["planned"]
    assert planned.get("failed") is not True, planned
    assert moved.result["after_check"] == "running", moved.result["after_check"]
    assert moved.result["moved"]["changed"] is True


def test_the_source_keeps_neither_guest(moved: Moved) -> None:
    left = moved.result["by_virsh"].replace("\r", "").split("@@ left")[1].split()
    assert not [name for name in left if name.startswith(PREFIX)], left


@pytest.mark.parametrize("name", [BY_MODULE, BY_HOOK])
def test_the_bindings_are_the_destinations_own_with_each_cell_whole_on_a_node(moved: Moved, name: str) -> None:
    assert Bindings.of(moved.source_xml[name]).memnodes == {0: frozenset({1}), 1: frozenset({2})}
    after = Bindings.of(moved.destination_xml[name])
    node_cpus = moved.destination.node_cpus
    # Two cells, two nodes on lab2, each cell fits one: one node each.
    assert sorted(after.memnodes) == [0, 1]
    assert {len(nodes) for nodes in after.memnodes.values()} == {1}
    assert after.memnodes[0] != after.memnodes[1]
    assert set().union(*after.memnodes.values()) <= set(node_cpus), (after.memnodes, node_cpus)
    assert sorted(after.pins) == [0, 1], after.pins
    for vcpu, cpus in after.pins.items():
        (node,) = after.memnodes[after.cell_of[vcpu]]
        # On its cell's node: one host thread under pinning thread, the node's CPUs it may share under node.
        assert cpus and cpus <= node_cpus[node], (vcpu, cpus, node, node_cpus)
        assert len(cpus) == 1 or PINNING[name] == "node", (vcpu, cpus)


def test_the_modules_guest_is_defined_on_the_destination_with_the_same_bindings(moved: Moved) -> None:
    # vnuma_migrate sends the persistent XML planned too, so the guest starts on lab2 again.  (The hook
    # sees only the live XML of an incoming migration: docs/migration.md.)
    after = Bindings.of(moved.destination_xml[BY_MODULE])
    persistent = Bindings.of(moved.persistent_xml[BY_MODULE])
    assert (persistent.memnodes, persistent.pins) == (after.memnodes, after.pins)


def test_the_module_moved_its_guest_as_it_planned(moved: Moved) -> None:
    after = Bindings.of(moved.destination_xml[BY_MODULE])
    plan = moved.result["moved"]["plan"]
    for cell in plan["cells"]:
        assert after.memnodes[cell["id"]] == parse_cpuset(cell["memory_nodes"]), (cell, after.memnodes)
    assert len(plan["vcpu_pins"]) == len(after.pins) == 2, (plan, after.pins)
    for vcpu, cpus in plan["vcpu_pins"].items():
        assert after.pins[int(vcpu)] == parse_cpuset(cpus), (vcpu, cpus, after.pins)


def test_the_hook_keeps_the_second_guest_off_the_cpus_the_first_holds(moved: Moved) -> None:
    held = Bindings.of(moved.destination_xml[BY_MODULE]).held()
    floating = Bindings.of(moved.destination_xml[BY_HOOK]).held()
    assert len(held) == 2 and floating and not held & floating, (held, floating)


@pytest.mark.parametrize("name", [BY_MODULE, BY_HOOK])
def test_each_cells_memory_is_on_its_destination_node(moved: Moved, name: str) -> None:
    memnodes = Bindings.of(moved.destination_xml[name]).memnodes
    regions = [region for region in _guest(moved, name).regions if region.policy == "bind"]
    for cell, nodes in memnodes.items():
        bound = [region for region in regions if region.nodes == nodes]
        assert len(bound) == 1, (cell, nodes, regions)
        (region,) = bound
        assert region.kib() >= MIN_TOUCHED * MEMORY_MIB * 1024 // 2, (cell, dict(region.pages))
        assert share_on(region.pages, nodes) >= MIN_ON_NODE, (cell, nodes, dict(region.pages))


@pytest.mark.parametrize("name", [BY_MODULE, BY_HOOK])
def test_each_vcpu_thread_runs_where_it_is_pinned(moved: Moved, name: str) -> None:
    pins = Bindings.of(moved.destination_xml[name]).pins
    assert _guest(moved, name).vcpu_affinity() == pins, pins


@pytest.mark.parametrize("name", [BY_MODULE, BY_HOOK])
def test_what_the_guest_sees_is_unchanged(moved: Moved, name: str) -> None:
    assert guest_visible(moved.destination_xml[name]) == guest_visible(moved.source_xml[name])
