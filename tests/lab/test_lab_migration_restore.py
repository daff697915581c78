# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A saved guest restored on lab4 with its bindings planned again (make lab; docs/migration.md).

The cheap form of a move between hosts of different shapes: the guest (cells on nodes 1 and 2, one
dedicated host thread per vCPU) is saved, and a blocker guest then holds one of its nodes' CPUs.  Restored
through vnuma_migrate (operation restore), and later through plain ``virsh restore`` with the collection's
hook in place, it must come back on other nodes: memory there (numa_maps), vCPU threads where pinned,
nothing shared with the blocker, and what the guest sees unchanged.
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
    WaveReport,
    guest_visible,
    parse_cpuset,
    parse_wave_report,
    remove_moved,
    sections,
    share_on,
)
from touch_payload import payload

HOST = "lab4"
SAVED = "mig3-saved"
BLOCKER_2 = "mig3-block2"
BLOCKER_0 = "mig3-block0"
MEMORY_MIB = 128
PAYLOAD = "/var/lib/libvirt/images/mig3-touch.bin"


SPEC = {"name": SAVED, "mode": "node", "nodeset": "1-2", "pinning": "thread", "memory_mode": "strict"}
# The saved guest first (laid out by vnuma_domain), then the blockers, pinned by hand one CPU per vCPU:
# node 2's CPUs 4-5, then node 0's CPUs 0-1 (tests/lab/four-node.yml).
GUESTS = [
    {"name": SAVED, "memory_mib": MEMORY_MIB, "vcpus": 2, "spec": SPEC},
    {"name": BLOCKER_2, "memory_mib": 32, "vcpus": 2, "pins": [4, 5], "nodeset": "2"},
    {"name": BLOCKER_0, "memory_mib": 32, "vcpus": 2, "pins": [0, 1], "nodeset": "0"},
]


@dataclass(frozen=True)
class Stage:
    """The saved guest as the lab's kernel and libvirt showed it at one stage."""

    report: WaveReport
    xml: str

    @property
    def bindings(self) -> Bindings:
        return Bindings.of(self.xml)


def _stage(text: str) -> Stage:
    text = text.replace("\r", "")
    return Stage(parse_wave_report(text.split("\n@@ xml ")[0]), sections(text, "xml")[SAVED])


@pytest.fixture(scope="module")
def restored(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    host = lab.host(HOST)
    out = tmp_path_factory.mktemp("lab-restore")
    variables = {
        "lab_out": str(out),
        "payload": PAYLOAD,
        "payload_base64": base64.b64encode(payload()).decode(),
        "guests": GUESTS,
    }
    try:
        lab.playbook("restore.yml", "--limit", HOST, "--extra-vars", json.dumps(variables))
        result = json.loads((out / "restore.json").read_text())
        yield {**result, "stages": {key: _stage(result[key]) for key in ("before", "by_module", "by_hook")}}
    finally:
        remove_moved(host, [guest["name"] for guest in GUESTS], [PAYLOAD, f"/var/lib/libvirt/images/{SAVED}.save"])


def _check_placed(stage: Stage, avoided: int) -> None:
    """Each cell whole on one node with CPUs but ``avoided``, its memory there, each vCPU thread as pinned."""
    bindings = stage.bindings
    node_cpus = stage.report.node_cpus
    assert sorted(bindings.memnodes) == [0, 1]
    nodes = [next(iter(cell)) for cell in bindings.memnodes.values() if len(cell) == 1]
    assert len(set(nodes)) == 2 and avoided not in nodes, bindings.memnodes
    assert all(node_cpus[node] for node in nodes), (nodes, node_cpus)
    for vcpu, cpus in bindings.pins.items():
        (node,) = bindings.memnodes[bindings.cell_of[vcpu]]
        assert len(cpus) == 1 and cpus <= node_cpus[node], (vcpu, cpus, node, node_cpus)
    guest = stage.report.guests[SAVED]
    assert guest.vcpu_affinity() == bindings.pins, (guest.vcpu_affinity(), bindings.pins)
    regions = [region for region in guest.regions if region.policy == "bind"]
    for cell, cell_nodes in bindings.memnodes.items():
        (region,) = [region for region in regions if region.nodes == cell_nodes]
        assert region.kib() >= MIN_TOUCHED * MEMORY_MIB * 1024 // 2, (cell, dict(region.pages))
        assert share_on(region.pages, cell_nodes) >= MIN_ON_NODE, (cell, cell_nodes, dict(region.pages))


def test_the_guest_ran_on_nodes_1_and_2_before_it_was_saved(restored: dict[str, Any]) -> None:
    before = restored["stages"]["before"]
    assert before.bindings.memnodes == {0: frozenset({1}), 1: frozenset({2})}
    _check_placed(before, avoided=0)


def test_vnuma_migrate_restores_it_away_from_the_node_another_guest_now_holds(restored: dict[str, Any]) -> None:
    stage = restored["stages"]["by_module"]
    _check_placed(stage, avoided=2)
    # The blocker holds node 2's CPUs 4-5 for itself.
    assert not stage.bindings.held() & {4, 5}, stage.bindings.pins
    plan = restored["restored"]["plan"]
    for cell in plan["cells"]:
        assert stage.bindings.memnodes[cell["id"]] == parse_cpuset(cell["memory_nodes"]), (cell, plan)


def test_the_hook_restores_it_away_from_the_node_the_other_blocker_holds(restored: dict[str, Any]) -> None:
    saved_with = restored["stages"]["by_module"].bindings
    stage = restored["stages"]["by_hook"]
    _check_placed(stage, avoided=0)
    assert not stage.bindings.held() & {0, 1}, stage.bindings.pins
    # The saved image named node 0 for a cell: the hook, not the save file, chose where it came back.
    assert any(0 in nodes for nodes in saved_with.memnodes.values()), saved_with.memnodes
    assert stage.bindings.memnodes != saved_with.memnodes


@pytest.mark.parametrize("stage", ["by_module", "by_hook"])
def test_what_the_guest_sees_is_unchanged(restored: dict[str, Any], stage: str) -> None:
    before = restored["stages"]["before"].xml
    assert guest_visible(restored["stages"][stage].xml) == guest_visible(before)
