# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_migrate's run: the host-side diff it returns, the check after the move, and option refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError, SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.migration import plan_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtGuest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.migrate import (
    _after_the_move,
    _verify_running,
    changes,
    host_side,
    run_migrate,
    verify_placement,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import (
    moving_guest_from_xml,
    rewrite_host_bindings,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

SOURCE = (Path(__file__).parents[3] / "fixtures" / "migration" / "smt2-thread-pinning-in.xml").read_text(
    encoding="utf-8"
)


def test_the_diff_lists_only_the_host_side_values_that_change() -> None:
    plan = plan_destination(moving_guest_from_xml(SOURCE), host("smt2-far-siblings"))
    moved = rewrite_host_bindings(SOURCE, plan)
    found = changes(host_side(parse_xml(SOURCE, "x")), host_side(parse_xml(moved, "x")))
    paths = [change["path"] for change in found]
    # vCPUs 0 and 2 stay on CPUs 0 and 1; their siblings move from 16-17 to 64-65, the second socket's to 32-33, 96-97.
    assert paths == [
        "cputune/emulatorpin/cpuset",
        "cputune/vcpupin[1]/cpuset",
        "cputune/vcpupin[3]/cpuset",
        "cputune/vcpupin[4]/cpuset",
        "cputune/vcpupin[5]/cpuset",
        "cputune/vcpupin[6]/cpuset",
        "cputune/vcpupin[7]/cpuset",
    ]
    assert {"path": "cputune/vcpupin[1]/cpuset", "before": "16", "after": "64"} in found


def test_sets_compare_as_sets() -> None:
    assert changes({"numatune/memory/nodeset": "0,1"}, {"numatune/memory/nodeset": "0-1"}) == []


def test_the_check_after_the_move_names_what_differs() -> None:
    plan = plan_destination(moving_guest_from_xml(SOURCE), host("smt2-far-siblings"))
    moved = rewrite_host_bindings(SOURCE, plan)
    verify_placement("smt2-thread", moved, plan)
    wrong = moved.replace("<vcpupin vcpu='1' cpuset='64'/>", "<vcpupin vcpu='1' cpuset='65'/>").replace(
        "<memnode cellid='1' mode='strict' nodeset='1'/>", "<memnode cellid='1' mode='strict' nodeset='0'/>"
    )
    with pytest.raises(LibvirtOperationError) as caught:
        verify_placement("smt2-thread", wrong, plan)
    assert str(caught.value) == (
        "guest smt2-thread: the guest runs on the destination, but not as planned: vCPU 1 is pinned to 65, the plan "
        "says 64; cell 1's memory is bound to host nodes 0, the plan says 1"
    )


class _DiedOnArrival:
    """A domain libvirt reports shut off, crashed (virDomainState 5, virDomainShutoffReason 3)."""

    def isActive(self) -> int:
        return 0

    def state(self, flags: int = 0) -> list[int]:
        return [5, 3]


def test_a_guest_that_died_on_arrival_fails_the_run_which_says_it_moved() -> None:
    result = {"plan": {"vcpu_pins": {"0": "1"}}, "operation": "migrate"}
    with pytest.raises(LibvirtOperationError) as raised, _after_the_move(result):
        _verify_running(LibvirtGuest(_DiedOnArrival(), "g1"), "qemu+ssh://b/system")  # type: ignore[arg-type]
    assert str(raised.value) == "the guest moved but does not run at qemu+ssh://b/system: it is shutoff (crashed)"
    assert raised.value.details == {**result, "changed": True, "moved": True}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"operation": "move"}, "operation 'move' is not one of migrate, restore"),
        ({"operation": "migrate", "destination_uri": "test:///default"}, "operation migrate needs name"),
        ({"operation": "migrate", "name": "g"}, "operation migrate needs destination_uri"),
        ({"operation": "restore"}, "operation restore needs restore_from"),
        (
            {"operation": "restore", "restore_from": "/x", "destination_uri": "test:///default"},
            "operation restore brings the guest up on the host of uri; destination_uri goes with operation migrate",
        ),
        ({"operation": "migrate", "name": "g", "destination_uri": "t", "restore_from": "/x"}, "restore_from goes with"),
    ],
)
def test_option_refusals(params: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        run_migrate({"uri": "test:///default", **params})
