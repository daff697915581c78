# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_distribute import FilterModule, vnuma_distribute
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_layout import vnuma_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError

CAPABILITIES = Path(__file__).parents[2] / "fixtures" / "capabilities"
RING = (CAPABILITIES / "seed-4node-ring.xml").read_text()
SMT2 = (CAPABILITIES / "intel-2s-smt2.xml").read_text()
FAR_SIBLINGS = (CAPABILITIES / "smt2-far-siblings.xml").read_text()
# ppc64le: every cell a whole 256 MiB block.
POWER = (CAPABILITIES / "smt4-power.xml").read_text()


def fail_text(call: Any) -> str:
    with pytest.raises(AnsibleFilterError) as caught:
        call()
    return str(caught.value)


def test_filter_module_exposes_the_filter() -> None:
    assert FilterModule().filters() == {"vnuma_distribute": vnuma_distribute}


@pytest.mark.parametrize(
    ("vcpus", "kwargs", "expected"),
    [
        (16, {"cells": 4}, ["0-3", "4-7", "8-11", "12-15"]),
        (10, {"cells": 4}, ["0-2", "3-5", "6-7", "8-9"]),
        (8, {"cells": 4, "distribution": "interleave"}, ["0,4", "1,5", "2,6", "3,7"]),
        (12, {"cells": 3, "distribution": "siblings", "threads": 2}, ["0-3", "4-7", "8-11"]),
        (10, {"cells": 3, "distribution": "contiguous", "threads": 2}, ["0-3", "4-7", "8-9"]),
        (3, {"cells": 4}, ["0", "1", "2", ""]),
        ("16", {"cells": "2"}, ["0-7", "8-15"]),
    ],
)
def test_by_count(vcpus: Any, kwargs: dict[str, Any], expected: list[str]) -> None:
    assert vnuma_distribute(vcpus, **kwargs) == expected


@pytest.mark.parametrize(
    ("vcpus", "kwargs", "expected"),
    [
        (8, {"distribution": "round-robin"}, ["0-1", "2-3", "4-5", "6-7"]),
        (8, {"distribution": "round-robin", "nodeset": "0-1"}, ["0-3", "4-7"]),
        (8, {"distribution": "round-robin", "nodeset": "0-1", "cells": 4}, ["0-1", "2-3", "4-5", "6-7"]),
        (6, {"distribution": "round-robin", "cells": 8}, ["0", "1", "2", "", "3", "4", "5", ""]),
        (8, {"distribution": "interleave", "nodeset": "1-2"}, ["0,2,4,6", "1,3,5,7"]),
        (8, {"cells": 3}, ["0-2", "3-5", "6-7"]),
    ],
)
def test_on_a_host(vcpus: int, kwargs: dict[str, Any], expected: list[str]) -> None:
    assert vnuma_distribute(vcpus, capabilities=RING, **kwargs) == expected


def test_host_sets_the_sibling_width() -> None:
    assert vnuma_distribute(16, distribution="siblings", capabilities=SMT2) == ["0-7", "8-15"]
    message = fail_text(lambda: vnuma_distribute(15, distribution="siblings", capabilities=SMT2))
    assert message == (
        "vnuma.libvirt.vnuma_distribute: distribution siblings builds guest cores of 2 threads like the host; "
        "15 vCPUs is not a multiple of 2"
    )


@pytest.mark.parametrize("capabilities", [RING, SMT2, FAR_SIBLINGS, POWER])
@pytest.mark.parametrize("distribution", ["contiguous", "siblings", "round-robin", "interleave"])
def test_same_as_the_layout(capabilities: str, distribution: str) -> None:
    spec = {"mode": "node", "distribution": distribution, "cells": 3, "pinning": "none"}
    layout = vnuma_layout(capabilities, spec, vcpus=12, memory="3 GiB")
    expected = [cell["vcpus"] for cell in layout["cells"]]
    assert vnuma_distribute(12, cells=3, distribution=distribution, capabilities=capabilities) == expected


@pytest.mark.parametrize(
    ("vcpus", "kwargs", "message"),
    [
        (
            8,
            {"cells": 2, "distribution": "round-robin"},
            "distribution round-robin follows the host's CPU numbering and needs the host topology",
        ),
        (7, {"cells": 2, "threads": 2}, "7 vCPUs cannot be cut into guest cores of 2 threads"),
        (8, {"cells": 2, "threads": 0}, "8 vCPUs cannot be cut into guest cores of 0 threads"),
        # Named as an option, as vcpus and cells are (it said "8 vCPUs cannot be cut into guest cores of 1.5 threads").
        (8, {"cells": 2, "threads": 1.5}, "threads 1.5 must be a positive integer"),
        (8, {"cells": 2, "threads": "two"}, "threads 'two' must be a positive integer"),
        ("x", {"cells": 2}, "vcpus 'x' must be an integer from 1 to 4096 (KVM's maximum vCPUs per guest)"),
        (0, {"cells": 2}, "vcpus 0 must be an integer from 1 to 4096 (KVM's maximum vCPUs per guest)"),
        (8, {"cells": 0}, "cells 0 must be an integer from 1 to 128 (QEMU's MAX_NODES)"),
        (
            8,
            {"cells": 2, "distribution": "bogus"},
            "distribution 'bogus' is not one of contiguous, siblings, round-robin, interleave",
        ),
        (8, {}, "cells is required without capabilities"),
        (8, {"cells": 2, "nodeset": "0"}, "nodeset selects host nodes and needs capabilities"),
        (8, {"capabilities": RING, "threads": 2}, "give threads or capabilities, not both (the host sets it)"),
        (8, {"capabilities": 5}, "capabilities (host capabilities XML) must be a string of XML, got int"),
        (
            8,
            {"capabilities": RING, "nodeset": "7"},
            "nodeset '7' names host node 7, which the host does not have (it has nodes 0-3)",
        ),
        (
            8,
            {"capabilities": RING, "distribution": "bogus"},
            "distribution 'bogus' is not one of contiguous, siblings, round-robin, interleave",
        ),
        (8, {"capabilities": RING, "cells": "x"}, "cells 'x' must be an integer from 1 to 128 (QEMU's MAX_NODES)"),
        (8, {"capabilities": RING, "nodeset": "0-"}, "nodeset '0-': '' is not a non-negative integer"),
    ],
)
def test_errors(vcpus: Any, kwargs: dict[str, Any], message: str) -> None:
    assert fail_text(lambda: vnuma_distribute(vcpus, **kwargs)) == f"vnuma.libvirt.vnuma_distribute: {message}"


def test_error_is_chained() -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        vnuma_distribute(7, cells=2, threads=2)
    assert isinstance(caught.value.__cause__, SpecError)
