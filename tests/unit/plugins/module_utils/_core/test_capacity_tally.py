# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""CapacityTally: mode auto's room kept guest by guest, as a whole capacity check would give it, at a cost per guest.

The host is intel-snc2-cxl: nodes 0-3 with CPUs, 4-5 without, 2 GiB of 2 MiB pages on each; it has no
1 GiB pool, and no node 9.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vnuma.libvirt.plugins.module_utils._core import capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import (
    CapacityTally,
    MemoryRoom,
    check_capacity,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    DimmBinding,
    GuestBinding,
    place_guests,
)
from ansible_collections.vnuma.libvirt.tests.support.call_count import calls_into
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

TOPOLOGY = host("intel-snc2-cxl")
MIB = 1024
NAMES = ("a", "b", "c", "d", "e")


@st.composite
def cells(draw: st.DrawFn, index: int) -> CellBinding:
    """A cell bound to some nodes (one the host lacks among them, at times) or to none, in normal or huge pages."""
    nodes = draw(st.one_of(st.none(), st.lists(st.sampled_from((0, 1, 2, 3, 4, 5, 9)), min_size=1, max_size=3)))
    page = draw(st.sampled_from((None, 4, 2048, 1048576)))
    return CellBinding(
        id=index,
        vcpus=(index,),
        memory_kib=draw(st.integers(min_value=0, max_value=4096)) * 2 * MIB,
        memory_mode=None if nodes is None else "strict",
        memory_nodes=tuple(nodes or ()),
        hugepage_kib=page,
    )


@st.composite
def guests(draw: st.DrawFn) -> GuestBinding:
    count = draw(st.integers(min_value=1, max_value=3))
    dimms = draw(
        st.lists(
            st.builds(
                DimmBinding,
                cell=st.sampled_from((None, 0)),
                size_kib=st.sampled_from((256 * MIB, 1024 * MIB)),
                host_nodes=st.sampled_from(((), (1,), (2, 3))),
            ),
            max_size=2,
        )
    )
    running = draw(st.booleans())
    return GuestBinding(
        name=draw(st.sampled_from(NAMES)),
        cells=tuple(draw(cells(index)) for index in range(count)),
        dimms=tuple(dimms),
        running=running,
        autostart=not running,
    )


def room_checked(guests: dict[str, GuestBinding], reserved: int) -> MemoryRoom:
    return MemoryRoom.of(check_capacity(TOPOLOGY, place_guests(TOPOLOGY, guests.values()), reserved_kib=reserved))


@given(
    st.lists(guests(), max_size=4),
    st.lists(guests(), min_size=1, max_size=6),
    st.sampled_from((0, 512 * MIB)),
)
def test_the_room_kept_guest_by_guest_is_the_room_checked_again(
    first: Sequence[GuestBinding], then: Sequence[GuestBinding], reserved: int
) -> None:
    """After each guest added (a new one, or one placed again in place of what it counted), the room with every
    guest and without each one is what a whole check of those guests gives."""
    now = {guest.name: guest for guest in first}
    tally = CapacityTally(check_capacity(TOPOLOGY, place_guests(TOPOLOGY, now.values()), reserved_kib=reserved))
    for guest in then:
        tally.add(TOPOLOGY, place_guests(TOPOLOGY, [guest])[0])
        now[guest.name] = guest
        assert tally.room() == room_checked(now, reserved)
        for name in NAMES:
            others = {other: binding for other, binding in now.items() if other != name}
            assert tally.room(without=name) == room_checked(others, reserved), name


def bookkeeping_calls(count: int) -> int:
    """Calls into ``_core/capacity.py`` for one guest placed in a tally that holds ``count`` guests, and its room."""
    held = [
        GuestBinding(f"g{index}", (CellBinding(0, (0,), 256 * MIB, "strict", (index % 4,)),), running=True)
        for index in range(count)
    ]
    tally = CapacityTally(check_capacity(TOPOLOGY, place_guests(TOPOLOGY, held)))
    guest = GuestBinding("new", (CellBinding(0, (0,), 512 * MIB, "strict", (1, 2)), CellBinding(1, (1,), 256 * MIB)))
    (placement,) = place_guests(TOPOLOGY, [guest])
    with calls_into(capacity) as counted:
        tally.room(without="new")
        tally.add(TOPOLOGY, placement)
        tally.room(without="g0")
    return counted.calls


def test_a_guest_costs_the_same_whatever_the_guests_already_counted() -> None:
    assert bookkeeping_calls(1000) == bookkeeping_calls(10) > 0
