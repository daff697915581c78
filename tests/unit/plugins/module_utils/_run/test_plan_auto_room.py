# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The room each mode auto guest of a call is chosen in, kept up to date guest by guest (``Planner.plan_all``).

The host as the choice sees it is checked once, before the first mode auto guest; then each guest placed
adds its shares to it.  Worked out again for each guest, a call of N guests cost O(N^2): these tests count
the capacity bookkeeping's work, and compare every choice with one made in a room checked from scratch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core import capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.auto import AutoChoice, node_rooms
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import check_capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    GuestBinding,
    GuestPlacement,
    place_guests,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._run import plan
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.auto import placed_for_room, resolve_auto
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest, Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.plan import Planner
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import binding_from_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.tests.support.call_count import calls_into
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import FakeHost, domain_xml
from ansible_collections.vnuma.libvirt.tests.support.hostgen import GIB, HostShape, build_capabilities

# Two sockets of three nodes, of uneven memory, with 2 GiB of 2 MiB pages each: the choice weighs distance,
# load, the normal memory and the pools.
TOPOLOGY = parse_capabilities(
    build_capabilities(
        HostShape(
            sockets=2,
            nodes_per_socket=3,
            cores_per_node=4,
            threads=2,
            memory_kib=(24 * GIB, 16 * GIB, 24 * GIB, 12 * GIB, 24 * GIB, 16 * GIB),
            hugepages={2048: 1024},
        )
    )
)
# Eight nodes of plenty: every guest of the counting test fits, so each is placed (the case that cost O(N^2)).
ROOMY = parse_capabilities(
    build_capabilities(HostShape(sockets=2, nodes_per_socket=4, cores_per_node=4, threads=2, memory_kib=256 * GIB))
)
PAGE = 2048


def capacity_calls(count: int) -> int:
    """Calls into the capacity bookkeeping (``_core/capacity.py``) while a call of ``count`` auto guests is planned.

    A profile hook counts every Python function entered there (generators resumed and sort keys included):
    the work of summing and sorting guests' shares, whichever function does it.
    """
    names = [f"g{index}" for index in range(count)]
    hypervisor = FakeHost({name: domain_xml(name, vcpus=1, memory_mib=256) for name in names})
    planner = Planner(hypervisor.connection(), ROOMY)
    with calls_into(capacity) as counted:
        results = planner.plan_all([GuestRequest(name, {"mode": "auto"}) for name in names])
    assert all(isinstance(result, Planned) and result.auto is not None for result in results)
    return counted.calls


def test_the_bookkeeping_of_a_call_grows_linearly_with_its_mode_auto_guests() -> None:
    calls = {count: capacity_calls(count) for count in (30, 60, 120)}
    per_guest = [(calls[60] - calls[30]) / 30, (calls[120] - calls[60]) / 60]
    # Each further guest costs the same, whatever the guests before it.  With the report rebuilt for each guest,
    # a guest cost more the more guests the call had placed (one and a half times as much here).
    assert per_guest[1] <= 1.1 * per_guest[0], calls


@dataclass(frozen=True)
class Fleet:
    hypervisor: FakeHost
    requests: list[GuestRequest]


def fleet(seed: int) -> Fleet:
    """Guests outside the call (bound, unbound, shut off) and a call of mode auto and mode node guests mixed.

    Some of the call's guests count before they are planned (running, autostart), some use hugepages, some are
    too large for any set of nodes.
    """
    rng = random.Random(seed)
    domains: dict[str, str] = {}
    running: list[str] = []
    autostart: list[str] = []
    for index in range(6):
        name = f"out{index}"
        numatune = f"<numatune><memory mode='strict' nodeset='{index}'/></numatune>" if index < 4 else ""
        domains[name] = domain_xml(name, vcpus=2, memory_mib=rng.choice((1024, 2048, 3072)), extra=numatune)
        if index < 3:
            running.append(name)
        elif index < 5:
            autostart.append(name)
    requests = []
    for index in range(40):
        name = f"g{index}"
        memory = rng.choice((512, 1024, 1536, 2048, 3072, 4096))
        domains[name] = domain_xml(name, vcpus=rng.choice((1, 2, 4)), memory_mib=memory)
        if rng.random() < 0.25:
            running.append(name)
        elif rng.random() < 0.2:
            autostart.append(name)
        options: dict[str, Any]
        if rng.random() < 0.35:
            options = {"mode": "node", "nodeset": str(rng.randrange(6))}
        else:
            options = {"mode": "auto"}
            if rng.random() < 0.2:
                options["hugepages"] = "2 MiB"
            if index % 8 == 5:
                # More than a node holds (several are chosen), or more than the host has (refused).
                options["memory"] = rng.choice(("20 GiB", "40 GiB"))
        requests.append(GuestRequest(name, options))
    return Fleet(FakeHost(domains, running=running, autostart=autostart), requests)


@dataclass(frozen=True)
class Choice:
    """One call of ``resolve_auto`` by the planner: what it was given and what came of it."""

    name: str
    args: tuple[Any, ...]
    outcome: AutoChoice | VnumaError


@pytest.fixture
def choices(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Choice]]:
    """The planner's mode auto choices, in the order it makes them."""
    made: list[Choice] = []

    def recorded(*args: Any) -> AutoChoice:
        request: GuestRequest = args[1]
        try:
            choice = resolve_auto(*args)
        except VnumaError as error:
            made.append(Choice(request.name, args, error))
            raise
        made.append(Choice(request.name, args, choice))
        return choice

    monkeypatch.setattr(plan, "resolve_auto", recorded)
    yield made


def current_binding(hypervisor: FakeHost, name: str) -> GuestBinding:
    """A guest where its definition puts it now."""
    root = parse_xml(hypervisor.guests[name].xml, name, root_tag="domain")
    running, autostart = set(hypervisor.running_names()), hypervisor.autostart
    return binding_from_domain(DomainNuma.from_domain(root), name, name in running, name in autostart)


def room_from_scratch(
    topology: HostTopology, hypervisor: FakeHost, planned: Sequence[Planned], leaving: str
) -> capacity.CapacityReport:
    """The host checked whole without guest ``leaving``: the call's ``planned`` guests at their plans, every
    other guest that counts as it is defined."""
    counting = set(hypervisor.running_names()) | hypervisor.autostart
    done = {item.request.name for item in planned}
    defined = [current_binding(hypervisor, name) for name in hypervisor.guests if name in counting - done - {leaving}]
    placements: list[GuestPlacement] = place_guests(topology, defined)
    placements.extend(placed_for_room(topology, item, hypervisor.autostart) for item in planned)
    return check_capacity(topology, placements)


def figures(topology: HostTopology, room: Any) -> Any:
    """What a mode auto choice reads of a room: each node's normal memory and pool, and the unbound remainder."""
    rooms = [node_rooms(topology, room, page) for page in (None, PAGE)]
    return rooms, room.unbound_kib, room.unbound_available_kib


def outcome(found: AutoChoice | VnumaError) -> Any:
    return str(found) if isinstance(found, VnumaError) else found.to_dict()


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_each_guest_is_chosen_as_in_a_room_checked_from_scratch(seed: int, choices: list[Choice]) -> None:
    setup = fleet(seed)
    # capacity: report: a node guest that over-commits its node is the check's to report, not a reason to stop here.
    planner = Planner(setup.hypervisor.connection(), TOPOLOGY, capacity="report")
    results = planner.plan_all(setup.requests)
    planned = {result.request.name: result for result in results if isinstance(result, Planned)}
    autos = [request.name for request in setup.requests if request.options["mode"] == "auto"]
    assert [choice.name for choice in choices] == autos, "each auto guest chosen once, after every node guest"
    chosen = [choice.outcome.nodes for choice in choices if isinstance(choice.outcome, AutoChoice)]
    assert len(chosen) > 15 and any(len(nodes) > 1 for nodes in chosen), "guests placed, some on several nodes"
    assert any(isinstance(choice.outcome, VnumaError) for choice in choices), "the fleet has a refusal"
    # The node guests are planned first; then each auto guest sees those placed before it.
    before = [planned[request.name] for request in setup.requests if request.options["mode"] != "auto"]
    for choice in choices:
        fresh = room_from_scratch(TOPOLOGY, setup.hypervisor, before, choice.name)
        given = choice.args[5]
        assert figures(TOPOLOGY, given) == figures(TOPOLOGY, fresh), choice.name
        args = list(choice.args)
        args[5] = fresh
        try:
            again: AutoChoice | VnumaError = resolve_auto(*args)
        except VnumaError as error:
            again = error
        assert outcome(choice.outcome) == outcome(again), choice.name
        result = planned.get(choice.name)
        if result is not None:
            assert isinstance(choice.outcome, AutoChoice) and result.auto == choice.outcome
            before.append(result)
