# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible._internal._templating._utils import Omit
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_layout import FilterModule, vnuma_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core import partitioner as source
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    PlacementError,
    SpecError,
    TopologyError,
    XmlError,
)

CAPABILITIES = Path(__file__).parents[2] / "fixtures" / "capabilities"
RING = (CAPABILITIES / "seed-4node-ring.xml").read_text()
SMT2 = (CAPABILITIES / "intel-2s-smt2.xml").read_text()
# What ansible-core passes for ``omit``.
OMITS: list[Any] = [Omit]


def fail_text(call: Any) -> str:
    with pytest.raises(AnsibleFilterError) as caught:
        call()
    return str(caught.value)


def test_filter_module_exposes_the_filter() -> None:
    assert FilterModule().filters() == {"vnuma_layout": vnuma_layout}


def test_node_mode_layout() -> None:
    spec = {"mode": "node", "cells": 2, "nodeset": "0-1", "pinning": "core"}
    assert vnuma_layout(RING, spec, vcpus=4, memory="4 GiB", current_vcpus=2, name="db01") == {
        "guest": "db01",
        "vcpus": 4,
        "current_vcpus": 2,
        "memory_kib": 4194304,
        "memory_mode": "strict",
        "pinning": "core",
        "distribution": "contiguous",
        "mode": "node",
        "topology": {"sockets": 2, "dies": 1, "cores": 2, "threads": 1},
        "numatune": {"mode": "strict", "nodeset": "0-1"},
        "cells": [
            {
                "id": 0,
                "vcpus": "0-1",
                "vcpu_count": 2,
                "memory_kib": 2097152,
                "host_nodes": "0",
                "memory_nodes": "0",
                "distances": [10, 21],
                "pinning": "0-1",
            },
            {
                "id": 1,
                "vcpus": "2-3",
                "vcpu_count": 2,
                "memory_kib": 2097152,
                "host_nodes": "1",
                "memory_nodes": "1",
                "distances": [21, 10],
                "pinning": "4-5",
            },
        ],
        "vcpupin": {"0": "0", "1": "1", "2": "4", "3": "5"},
        "emulatorpin": None,
        "enable_order": [0, 2, 1, 3],
        "hugepages_kib": None,
        "max_memory_kib": None,
        "memory_slots": None,
        "hmat": None,
    }


def test_host_mode_by_default_and_spec_sizes() -> None:
    layout = vnuma_layout(RING, vcpus=8, memory=8388608)
    assert [cell["host_nodes"] for cell in layout["cells"]] == ["0", "1", "2", "3"]
    assert [cell["vcpus"] for cell in layout["cells"]] == ["0-1", "2-3", "4-5", "6-7"]
    assert layout["guest"] is None
    assert layout["mode"] == "host"
    # The spec's memory wins over the guest's.
    assert vnuma_layout(RING, {"memory": "4 GiB"}, vcpus=8, memory="8 GiB")["memory_kib"] == 4194304


def test_extensions() -> None:
    spec = {
        "distribution": "siblings",
        "pinning": "thread",
        "emulator_pin": "nodes",
        "hugepages": "2 MiB",
        "max_memory": "64 GiB",
        "memory_slots": 4,
    }
    layout = vnuma_layout(SMT2, spec, vcpus=8, memory="4 GiB")
    assert layout["topology"] == {"sockets": 2, "dies": 1, "cores": 2, "threads": 2}
    assert layout["vcpupin"] == {"0": "0", "1": "16", "2": "1", "3": "17", "4": "8", "5": "24", "6": "9", "7": "25"}
    assert layout["emulatorpin"] == "2-7,10-15,18-23,26-31"
    assert (layout["hugepages_kib"], layout["max_memory_kib"], layout["memory_slots"]) == (2048, 67108864, 4)


@pytest.mark.parametrize("omit", OMITS)
def test_omitted_arguments_take_their_defaults(omit: Any) -> None:
    spec = {"mode": "node", "cells": omit, "nodeset": None, "distribution": "interleave"}
    layout = vnuma_layout(RING, spec, vcpus="8", memory="8 GiB", current_vcpus=omit, name=omit, taken_cpus=omit)
    assert layout == vnuma_layout(RING, {"mode": "node", "distribution": "interleave"}, vcpus=8, memory="8 GiB")
    assert layout["current_vcpus"] == 8
    assert vnuma_layout(RING, omit, vcpus=8, memory="8 GiB") == vnuma_layout(RING, vcpus=8, memory="8 GiB")


def test_templated_spec_values_read_as_vnuma_domain_reads_a_guests_entry() -> None:
    # -e cells=2 arrives as text, as do "yes"/"no": vnuma_domain's guests entries take them (Option.coerce).
    templated = {"mode": "node", "cells": "2", "cpuless_cells": "yes", "nodeset": 3}
    typed = {"mode": "node", "cells": 2, "cpuless_cells": True, "nodeset": "3"}
    assert vnuma_layout(RING, templated, vcpus=8, memory="8 GiB") == vnuma_layout(RING, typed, vcpus=8, memory="8 GiB")
    assert fail_text(lambda: vnuma_layout(RING, {"cpuless_cells": "maybe"}, vcpus=8, memory="8 GiB", name="db01")) == (
        "vnuma.libvirt.vnuma_layout: guest db01: cpuless_cells 'maybe' is not a boolean"
    )


@pytest.mark.parametrize(("word", "flag"), [("y", True), ("T", True), ("n", False), ("f", False)])
def test_templated_booleans_are_every_spelling_ansible_takes(word: str, flag: bool) -> None:
    # Ansible's bool (convert_bool) takes y, n, t and f; so does the spec a template gives the filter.  Two cells
    # for one vCPU need cpuless_cells: true lays them out, false refuses them.
    spec = {"mode": "node", "cells": 2, "nodeset": "0", "pinning": "none"}

    def layout(value: object) -> Any:
        try:
            return vnuma_layout(RING, {**spec, "cpuless_cells": value}, vcpus=1, memory="2 GiB")
        except AnsibleFilterError as error:
            return str(error)

    assert layout(word) == layout(flag)
    assert isinstance(layout(word), dict) is flag


@pytest.mark.parametrize(
    ("taken", "pin_of_vcpu_0"),
    [({0: "web01"}, "1"), ({"0-1": "web01"}, "2"), ([0, 1, 2], "3"), ("0-2", "3"), ({}, "0"), ("", "0")],
)
def test_taken_cpus(taken: Any, pin_of_vcpu_0: str) -> None:
    layout = vnuma_layout(RING, {"pinning": "core"}, vcpus=4, memory="4 GiB", taken_cpus=taken)
    assert layout["vcpupin"]["0"] == pin_of_vcpu_0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spec": {"mode": "nodes"}}, "guest db01: mode 'nodes' is not one of host, node, auto"),
        ({"spec": {"cells": "two"}}, "guest db01: cells 'two' must be an integer from 1 to 128 (QEMU's MAX_NODES)"),
        (
            {"spec": {"nodeset": "0-9", "mode": "node"}},
            "guest db01: nodeset '0-9' names host nodes 4-9, which the host does not have (it has nodes 0-3)",
        ),
        (
            {"spec": {"bogus": 1}},
            "guest db01: unknown vnuma option(s) bogus; known: cells, cpuless_cells, device_cells, device_locality, "
            "distribution, emulator_pin, emulator_threads, "
            "hmat, hugepages, iothreads, max_memory, memory, memory_device, memory_mode, memory_slots, memory_split, "
            "mode, "
            "nodeset, pci_numa_affinity, pinning",
        ),
        ({"memory": "64 GiB"}, "guest db01: guest cell 0 needs 16 GiB, host node 0 has 8 GiB"),
        ({"memory": None}, "guest db01: no memory size: set memory in the vnuma spec or <memory> in the domain"),
        ({"memory": "lots"}, "guest db01: memory: 'lots' is not a size such as '16 GiB' or 524288"),
        ({"vcpus": None}, "guest db01: vcpus is required"),
        ({"vcpus": 0}, "guest db01: vcpus 0 must be an integer from 1 to 4096 (KVM's maximum vCPUs per guest)"),
        ({"current_vcpus": 9}, "guest db01: current vcpus 9 is above the maximum of 8 vCPUs"),
        (
            {"spec": {"pinning": "core"}, "taken_cpus": {"0-3": "web01"}},
            "guest db01: pinning core needs 2 free host cores for guest cell 0 on host node 0, 0 are free "
            "(others are dedicated to web01)",
        ),
        (
            {"spec": {"pinning": "core"}, "taken_cpus": [0, 1, 2, 3]},
            "guest db01: pinning core needs 2 free host cores for guest cell 0 on host node 0, 0 are free "
            "(others are dedicated to other guests)",
        ),
        ({"taken_cpus": "0-x"}, "guest db01: taken_cpus '0-x': 'x' is not a non-negative integer"),
        ({"taken_cpus": {"0": 5}}, "guest db01: taken_cpus maps CPU ids to guest names; CPU 0 maps to int"),
        ({"taken_cpus": {-1: "web01"}}, "guest db01: taken_cpus: CPU id -1 is outside 0-16383"),
        ({"taken_cpus": [0, "1"]}, "guest db01: taken_cpus must hold CPU ids (integers), got str '1'"),
        (
            {"taken_cpus": 3},
            "guest db01: taken_cpus must be a dict of CPU id to guest name, a list of CPU ids or a cpuset string, "
            "got int",
        ),
        ({"spec": "host"}, "spec must be a dict of vnuma options, got str"),
        ({"name": 7}, "name must be a string, got int"),
    ],
)
def test_errors(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"spec": {}, "vcpus": 8, "memory": "8 GiB", "name": "db01", **kwargs}
    assert fail_text(lambda: vnuma_layout(RING, **arguments)) == f"vnuma.libvirt.vnuma_layout: {message}"


@pytest.mark.parametrize(
    ("capabilities", "message"),
    [
        (None, "the input (host capabilities XML) must be a string of XML, got None"),
        (b"<capabilities/>", "the input (host capabilities XML) must be a string of XML, got bytes"),
        ({"host": {}}, "the input (host capabilities XML) must be a string of XML, got dict"),
        ("<domain/>", "host capabilities must have a <capabilities> root element, found <domain>"),
    ],
)
def test_bad_capabilities(capabilities: Any, message: str) -> None:
    # Errors in the host's document are not the guest's: they are not named after it.
    text = fail_text(lambda: vnuma_layout(capabilities, vcpus=8, memory="8 GiB", name="db01"))
    assert text == f"vnuma.libvirt.vnuma_layout: {message}"


@pytest.mark.parametrize(
    ("capabilities", "error"),
    [("<capabilities>", XmlError), ("<capabilities><host/></capabilities>", TopologyError)],
)
def test_unusable_capabilities(capabilities: str, error: type[Exception]) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        vnuma_layout(capabilities, vcpus=8, memory="8 GiB", name="db01")
    assert str(caught.value).startswith("vnuma.libvirt.vnuma_layout: host capabilities")
    assert isinstance(caught.value.__cause__, error)


class LazyList(list):
    """Stands for ansible-core 2.19's lazy template list (a subclass of list)."""


class TaggedStr(str):
    """Stands for ansible-core 2.19's tagged string (a subclass of str)."""

    __slots__ = ()


def test_messages_name_plain_types() -> None:
    spec = {TaggedStr("mode"): TaggedStr("node"), "nodeset": LazyList([0, 1])}
    message = fail_text(lambda: vnuma_layout(RING, spec, vcpus=8, memory="8 GiB", name="db01"))
    assert (
        message == "vnuma.libvirt.vnuma_layout: guest db01: nodeset must be a string in libvirt cpuset syntax, got list"
    )


def test_error_chain_and_naming(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any) -> None:
        raise PlacementError("no room", guest="named-by-pure-layer")

    # The filter imports it when called (plugin_utils/_filter_glue.py, "Imports"): patched where it lives.
    monkeypatch.setattr(source, "compute_layout", refuse)
    with pytest.raises(AnsibleFilterError) as caught:
        vnuma_layout(RING, vcpus=8, memory="8 GiB", name="db01")
    assert str(caught.value) == "vnuma.libvirt.vnuma_layout: guest named-by-pure-layer: no room"
    assert isinstance(caught.value.__cause__, PlacementError)


def test_spec_error_is_chained() -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        vnuma_layout(RING, {"mode": "nodes"}, vcpus=8, memory="8 GiB")
    assert str(caught.value) == "vnuma.libvirt.vnuma_layout: mode 'nodes' is not one of host, node, auto"
    assert isinstance(caught.value.__cause__, SpecError)
