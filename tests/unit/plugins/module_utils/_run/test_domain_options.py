# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain's options checked before anything is read: the option table's kinds, lock_timeout."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import GUEST_OPTIONS, SPEC_OPTIONS
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import CONNECT_TIMEOUT_LIMITS, check_seconds
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.domain import (
    GUEST_OPTION_NAMES,
    SPEC_OPTION_NAMES,
    build_requests,
    validate_run_options,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest, spec_for
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import check_lock_timeout


def test_the_entry_options_are_the_table_and_the_guest_options() -> None:
    assert tuple(item.name for item in SPEC_OPTIONS) == SPEC_OPTION_NAMES
    assert tuple(item.name for item in GUEST_OPTIONS) == GUEST_OPTION_NAMES
    assert GUEST_OPTION_NAMES == ("state", "current_vcpus", "hotplug_memory", "total_memory", "replan")


def entry_options(**options: Any) -> dict[str, Any]:
    """The options of one ``guests`` entry as the request for its guest gets them."""
    [request] = build_requests({"guests": [{"name": "g", **options}]}, ["g"])
    return {**request.options, "state": request.state, "current_vcpus": request.current_vcpus}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param({"cpuless_cells": "on"}, {"cpuless_cells": True}, id="boolean-word"),
        pytest.param({"cpuless_cells": 0}, {"cpuless_cells": False}, id="boolean-number"),
        pytest.param({"cells": " 4 ", "mode": "node"}, {"cells": 4, "mode": "node"}, id="count-text"),
        pytest.param({"nodeset": 1, "mode": "node"}, {"nodeset": "1", "mode": "node"}, id="nodeset-number"),
        pytest.param({"memory": "1 GiB"}, {"memory": "1 GiB"}, id="size-kept-as-given"),
        pytest.param({"state": "absent"}, {"state": "absent"}, id="guest-choice"),
        pytest.param({"current_vcpus": "2"}, {"current_vcpus": 2}, id="guest-count"),
    ],
)
def test_entry_values_are_read_by_their_kind(given: dict[str, Any], expected: dict[str, Any]) -> None:
    options = entry_options(**given)
    assert {key: options[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param({"cpuless_cells": "maybe"}, "guest g: cpuless_cells 'maybe' is not a boolean", id="boolean"),
        pytest.param(
            {"pinning": "socket"}, "guest g: pinning 'socket' is not one of node, core, thread, none", id="choice"
        ),
        pytest.param(
            {"memory_slots": "many"},
            "guest g: memory_slots 'many' must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)",
            id="count",
        ),
        pytest.param({"nodeset": "4-1"}, "guest g: nodeset", id="nodeset"),
        pytest.param({"hugepages": "huge"}, "guest g: hugepages: 'huge' is not a size such as", id="size"),
        pytest.param({"state": "gone"}, "guest g: state 'gone' is not one of present, absent", id="guest-choice"),
    ],
)
def test_entry_values_of_the_wrong_kind_are_refused(given: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_run_options({"guests": [{"name": "g", **given}]})
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        (-1, "lock_timeout -1 is outside 0 to 86400 seconds"),
        (86401.5, "lock_timeout 86401.5 is outside 0 to 86400 seconds"),
        (float("inf"), "lock_timeout inf is outside 0 to 86400 seconds"),
        # These two gave no range ("lock_timeout nan is not a number of seconds"): the connection's deadlines did.
        ("soon", "lock_timeout 'soon' is not a number of seconds from 0 to 86400"),
        (float("nan"), "lock_timeout nan is not a number of seconds from 0 to 86400"),
    ],
)
def test_lock_timeout_is_checked_with_the_other_options(timeout: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_run_options({"name": "g", "lock_timeout": timeout})
    assert str(caught.value) == message


@pytest.mark.parametrize("timeout", [float("nan"), "soon", None, True, float("inf"), -0.5])
def test_lock_timeout_is_read_as_the_connection_deadlines_are(timeout: Any) -> None:
    """One reader of seconds (units.check_seconds): lock_timeout's message is connect_timeout's, under its name."""
    with pytest.raises(SpecError) as lock:
        check_lock_timeout(timeout)
    with pytest.raises(SpecError) as connect:
        check_seconds("connect_timeout", timeout, CONNECT_TIMEOUT_LIMITS)
    high = CONNECT_TIMEOUT_LIMITS[1]
    expected = connect.value.message.replace("connect_timeout", "lock_timeout").replace(f"{high:g}", "86400")
    assert lock.value.message == expected
    assert "86400" in lock.value.message


def test_lock_timeout_comes_after_the_other_checks() -> None:
    with pytest.raises(SpecError) as caught:
        validate_run_options({"name": "g", "shutdown_timeout": -1, "lock_timeout": -1})
    assert str(caught.value) == "shutdown_timeout -1 is outside 0 to 86400 seconds"


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        (float("inf"), "shutdown_timeout inf is outside 0 to 86400 seconds"),
        (float("nan"), "shutdown_timeout nan is not a number of seconds from 0 to 86400"),
        (86401, "shutdown_timeout 86401 is outside 0 to 86400 seconds"),
    ],
)
def test_shutdown_timeout_is_read_as_the_other_seconds_are(timeout: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_run_options({"name": "g", "shutdown_timeout": timeout})
    assert str(caught.value) == message


def test_top_level_counts_reach_the_request_as_numbers() -> None:
    """The argspec leaves the counts raw (Ansible's int fails on .inf with an OverflowError): digit text given at
    the top level is read as a guests entry's is, not handed on as text."""
    params = {"name": "g", "mode": "node", "cells": " 4 ", "current_vcpus": "2", "memory_slots": "8"}
    validate_run_options({**params, "max_memory": "8 GiB"})
    [request] = build_requests({**params, "max_memory": "8 GiB"}, ["g"])
    assert (request.options["cells"], request.options["memory_slots"], request.current_vcpus) == (4, 8, 2)


def test_a_valid_lock_timeout_passes() -> None:
    validate_run_options({"name": "g", "lock_timeout": 0})
    validate_run_options({"name": "g"})


# -- the spec options the call gives, checked before anything is read (docs/guarantees.md, "Checked before the first
# write"): each value against its limits, and each entry with the top-level options, as its guests get them.

HOST_MODE = "applies to mode node only; mode host mirrors every host node with CPUs"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # A value above its limit, in an entry: named as the entry's other values are (the guest or pattern).
        pytest.param(
            {"guests": [{"name": "A", "mode": "node", "cells": 200}, "B"]},
            "guest A: cells 200 must be an integer from 1 to 128 (QEMU's MAX_NODES)",
            id="entry-cells-above-limit",
        ),
        pytest.param(
            {"guests": [{"name": "A", "hugepages": "32 GiB"}]},
            "guest A: hugepages '32 GiB' is above the limit of 16 GiB (the largest page size Linux has)",
            id="entry-hugepages-above-limit",
        ),
        pytest.param(
            {"guests": [{"name": "A", "mode": "node", "nodeset": "1024"}]},
            "guest A: nodeset '1024': 1024 is above the limit of 1023 (Linux has at most 1024 NUMA nodes "
            "(MAX_NUMNODES))",
            id="entry-nodeset-above-limit",
        ),
        pytest.param(
            {"guests": [{"name": "A", "memory": 0}]},
            "guest A: memory 0 must be a positive integer",
            id="entry-memory-0",
        ),
        pytest.param(
            {"guests": [{"name": "A", "hugepages": 0}]},
            "guest A: hugepages 0 must be a positive integer",
            id="entry-hugepages-0",
        ),
        pytest.param(
            {"guests": [{"name": "A", "max_memory": "1 GiB", "memory_slots": 300}]},
            "guest A: memory_slots 300 must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)",
            id="entry-slots-above-limit",
        ),
        # A top-level value above its limit: named by the option, or with name by the guest.
        pytest.param(
            {"guests": ["A", "B"], "max_memory": "1 GiB", "memory_slots": 300},
            "memory_slots 300 must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)",
            id="top-level-slots-above-limit",
        ),
        pytest.param(
            {"name": "A", "max_memory": "1 GiB", "memory_slots": 300},
            "guest A: memory_slots 300 must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)",
            id="name-slots-above-limit",
        ),
        pytest.param(
            {"name": "A", "hugepages": "32 GiB"},
            "guest A: hugepages '32 GiB' is above the limit of 16 GiB (the largest page size Linux has)",
            id="name-hugepages-above-limit",
        ),
        # Options that contradict each other whatever the stored spec: the entry is named, with the top-level ones.
        pytest.param(
            {"guests": ["B", {"name": "A", "emulator_threads": "isolate", "pinning": "node"}]},
            "guests[1] (A): emulator_threads isolate needs pinning core or thread, not node: vCPUs that float would "
            "run on the emulator's host CPU too",
            id="entry-isolate-floating",
        ),
        pytest.param(
            {"guests": ["B", {"name": "web*", "nodeset": "0"}], "mode": "host"},
            f"guests[1] (web*): nodeset '0' {HOST_MODE}",
            id="top-level-host-mode-and-entry-nodeset",
        ),
        pytest.param(
            {"guests": ["B"], "mode": "host", "cells": 2},
            f"guests[0] (B): cells 2 {HOST_MODE}",
            id="top-level-host-mode-and-cells",
        ),
        pytest.param(
            {"name": "A", "mode": "host", "cells": 2},
            f"guest A: cells 2 {HOST_MODE}",
            id="name-host-mode-and-cells",
        ),
        pytest.param(
            {"guests": [{"name": "A", "pinning": "core", "emulator_threads": "isolate", "emulator_pin": "nodes"}]},
            "guests[0] (A): emulator_threads isolate and emulator_pin nodes both place the emulator threads; set "
            "emulator_pin none",
            id="entry-isolate-and-emulator-pin",
        ),
    ],
)
def test_spec_mistakes_that_need_no_guest_refuse_the_call(params: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_run_options(params)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "options",
    [
        # Each could be completed or allowed by the guest's stored spec: the plan decides, for that guest alone.
        pytest.param({"nodeset": "0-1"}, id="nodeset-without-mode"),
        pytest.param({"cells": 2}, id="cells-without-mode"),
        pytest.param({"max_memory": "1 GiB"}, id="max-memory-without-slots"),
        pytest.param({"memory_slots": 4}, id="slots-without-max-memory"),
        pytest.param({"emulator_threads": "isolate"}, id="isolate-without-pinning"),
        pytest.param({"pinning": "node"}, id="floating-without-emulator-threads"),
        pytest.param({"memory_device": "virtio-mem"}, id="virtio-mem-without-max-memory"),
        pytest.param({"device_cells": "vda=1"}, id="device-cells-without-locality"),
        pytest.param({"mode": "host"}, id="host-mode-over-a-stored-nodeset"),
    ],
)
def test_what_a_stored_spec_may_complete_is_left_to_the_plan(options: dict[str, Any]) -> None:
    validate_run_options({"guests": [{"name": "A", **options}]})
    validate_run_options({"name": "A", **options})
    [request] = build_requests({"guests": [{"name": "A", **options}]}, ["A"])
    assert request.options == options


def test_an_entry_overrides_the_top_level_options_it_is_checked_with() -> None:
    # Top-level mode host, but the entry asks for node mode: its cells are fine; a bare entry gets mode host alone.
    validate_run_options({"guests": ["B", {"name": "A", "mode": "node", "cells": 2}], "mode": "host"})


def test_entries_for_one_guest_are_checked_together_before_anything_is_written() -> None:
    # Each entry alone is fine; together they give guest A cells with mode host.
    params = {"guests": [{"name": "A", "mode": "host"}, {"name": "A*", "cells": 2}]}
    validate_run_options(params)
    with pytest.raises(SpecError) as caught:
        build_requests(params, ["A", "B"])
    assert str(caught.value) == f"guest A: cells 2 {HOST_MODE}"


def test_device_cells_with_device_locality_none_are_refused() -> None:
    with pytest.raises(SpecError) as caught:
        validate_run_options({"guests": [{"name": "A", "device_cells": "vda=1", "device_locality": "none"}]})
    assert str(caught.value) == (
        "guests[0] (A): device_cells 'vda=1' needs device_locality hostdev or all: with none no device is moved"
    )
    with pytest.raises(SpecError) as caught:
        validate_run_options({"name": "A", "device_cells": [{"target": "vda", "cell": 1}], "device_locality": "none"})
    assert str(caught.value) == (
        "guest A: device_cells 'vda=1' needs device_locality hostdev or all: with none no device is moved"
    )


# -- null in a guests entry: unset, as at the top level


@pytest.mark.parametrize("key", ["cells", "memory", "state", "cpuless_cells", "nodeset", "current_vcpus", "replan"])
def test_null_in_an_entry_is_unset(key: str) -> None:
    params = {"guests": [{"name": "g", key: None}]}
    validate_run_options(params)
    [request] = build_requests(params, ["g"])
    assert request.options == {} and request.state == "present" and request.current_vcpus is None


def test_null_in_an_entry_leaves_the_top_level_value() -> None:
    params = {"guests": [{"name": "g", "cells": None, "state": None, "memory": None}], "mode": "node", "cells": 4}
    validate_run_options({**params, "state": "present"})
    [request] = build_requests({**params, "state": "absent"}, ["g"])
    assert request.options == {"mode": "node", "cells": 4}
    assert request.state == "absent"
    # A null does not disagree with another entry's value for the same guest.
    [request] = build_requests({"guests": [{"name": "g", "cells": None}, {"name": "g", "cells": 2}]}, ["g"])
    assert request.options == {"cells": 2}


@pytest.mark.parametrize(("word", "flag"), [("y", True), ("T", True), ("n", False), ("F", False), (1.0, True)])
def test_an_entry_takes_every_boolean_ansible_takes(word: Any, flag: bool) -> None:
    assert entry_options(cpuless_cells=word)["cpuless_cells"] is flag


def test_device_locality_none_drops_stored_overrides() -> None:
    # A stored {hostdev, vda=1} run with device_locality none alone: the locality goes, the overrides with it
    # (the spec itself now refuses device_cells under none: _core/spec.py).
    stored = VnumaSpec(mode="host", device_locality="hostdev", device_cells="vda=1")
    spec = spec_for(GuestRequest("g", {"device_locality": "none"}), stored)
    assert (spec.device_locality, spec.device_cells) == ("none", None)
