# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The option table and what follows it: VnumaSpec's fields, names and checks, the argspec."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest
from ansible.module_utils.parsing import convert_bool

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import (
    BOOLEANS_FALSE,
    BOOLEANS_TRUE,
    SPEC_OPTIONS,
    Kind,
    argument_spec,
    option,
    read_boolean,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec


def test_one_spec_field_per_row_in_the_table_order() -> None:
    assert [field.name for field in fields(VnumaSpec)] == [item.field for item in SPEC_OPTIONS]


@pytest.mark.parametrize("item", SPEC_OPTIONS, ids=lambda item: item.name)
def test_the_spec_defaults_are_the_table_defaults(item: Any) -> None:
    assert getattr(VnumaSpec(), item.field) == item.default
    assert VnumaSpec().to_mapping()[item.name] == item.default


@pytest.mark.parametrize("item", SPEC_OPTIONS, ids=lambda item: item.name)
def test_every_row_is_complete(item: Any) -> None:
    assert item.description and all(text.endswith(".") for text in item.description)
    if item.kind is Kind.CHOICE:
        assert item.default in item.choices
    else:
        assert not item.choices
    if item.kind in (Kind.SIZE, Kind.COUNT, Kind.NODESET):
        assert item.limit is not None and item.why
    if item.kind is Kind.SIZE:
        assert item.field == f"{item.name}_kib"
    else:
        assert item.field == item.name


def test_the_option_names_are_the_mapping_keys() -> None:
    assert list(VnumaSpec().to_mapping()) == [item.name for item in SPEC_OPTIONS]
    with pytest.raises(SpecError) as caught:
        VnumaSpec.from_mapping({"memory_kib": 1})
    assert str(caught.value) == (
        f"unknown vnuma option(s) memory_kib; known: {', '.join(sorted(item.name for item in SPEC_OPTIONS))}"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"mode": "bogus", "memory_kib": 0}, "mode 'bogus' is not one of host, node, auto", id="choices-first"
        ),
        pytest.param({"memory_kib": 0, "cells": 0}, "memory 0 must be a positive integer", id="sizes-in-order"),
        pytest.param(
            {"cells": 0, "hugepages_kib": 0},
            "cells 0 must be an integer from 1 to 128 (QEMU's MAX_NODES)",
            id="counts-in-order",
        ),
        pytest.param(
            {"memory_slots": 300, "max_memory_kib": 1, "cpuless_cells": "x"},
            "memory_slots 300 must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)",
            id="numbers-before-booleans",
        ),
        pytest.param({"cpuless_cells": "yes"}, "cpuless_cells 'yes' must be true or false", id="boolean"),
        pytest.param(
            {"hugepages_kib": 32 * 1024 * 1024},
            "hugepages 32 GiB is above the limit of 16 GiB (the largest page size Linux has)",
            id="size-limit",
        ),
    ],
)
def test_the_spec_checks_each_kind_in_a_fixed_order(values: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        VnumaSpec(**values)
    assert str(caught.value) == message


def test_the_argspec_follows_the_kinds() -> None:
    assert argument_spec() == {
        "mode": {"type": "str", "choices": ["host", "node", "auto"]},
        "distribution": {"type": "str", "choices": ["contiguous", "siblings", "round-robin", "interleave"]},
        "memory": {"type": "raw"},
        "nodeset": {"type": "str"},
        # Counts are raw: Option.coerce reads them (ansible-core's int raises OverflowError on .inf).
        "cells": {"type": "raw"},
        "pinning": {"type": "str", "choices": ["node", "core", "thread", "none"]},
        "memory_mode": {"type": "str", "choices": ["strict", "preferred", "interleave", "restrictive"]},
        "memory_split": {"type": "str", "choices": ["even", "vcpus"]},
        "hugepages": {"type": "raw"},
        "emulator_pin": {"type": "str", "choices": ["none", "nodes"]},
        "cpuless_cells": {"type": "bool"},
        "max_memory": {"type": "raw"},
        "memory_slots": {"type": "raw"},
        "hmat": {"type": "str", "choices": ["none", "host", "synthesize"]},
        "memory_device": {"type": "str", "choices": ["dimm", "virtio-mem"]},
        "pci_numa_affinity": {"type": "str", "choices": ["required", "preferred", "socket", "legacy"]},
        "device_locality": {"type": "str", "choices": ["none", "hostdev", "all"]},
        "device_cells": {"type": "raw"},
        "emulator_threads": {"type": "str", "choices": ["share", "isolate"]},
        "iothreads": {"type": "str", "choices": ["none", "per_cell", "per_disk"]},
    }
    # Each call builds its own: Ansible may change what it is given.
    assert argument_spec() is not argument_spec()
    assert argument_spec()["mode"]["choices"] is not argument_spec()["mode"]["choices"]


def test_option_looks_a_row_up_by_name() -> None:
    assert option("memory").field == "memory_kib"
    with pytest.raises(KeyError):
        option("memory_kib")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("yes", True),
        (" On ", True),
        ("TRUE", True),
        ("1", True),
        ("no", False),
        ("off", False),
        ("0", False),
        (1, True),
        (0, False),
        (2, None),
        # Ansible's bool takes 1.0 and 0.0 (convert_bool.BOOLEANS_TRUE, BOOLEANS_FALSE): so does the collection.
        (1.0, True),
        (0.0, False),
        (2.0, None),
        ("1.0", None),
        ("y", True),
        (" Y ", True),
        ("t", True),
        ("T", True),
        ("n", False),
        ("N", False),
        ("f", False),
        ("F", False),
        (b"yes", True),
        (b"n", False),
        ("maybe", None),
        ("", None),
        (None, None),
        ([True], None),
    ],
)
def test_read_boolean(value: object, expected: bool | None) -> None:
    assert read_boolean(value) is expected


def test_the_booleans_are_ansibles() -> None:
    # Copied as data (the pure core does not import Ansible): held equal to the ansible-core the tests run with.
    assert BOOLEANS_TRUE == convert_bool.BOOLEANS_TRUE
    assert BOOLEANS_FALSE == convert_bool.BOOLEANS_FALSE


@pytest.mark.parametrize("value", sorted(convert_bool.BOOLEANS, key=repr), ids=repr)
def test_read_boolean_agrees_with_ansibles_bool(value: object) -> None:
    assert read_boolean(value) is convert_bool.boolean(value)
    if isinstance(value, str):
        assert read_boolean(f" {value.upper()} ") is convert_bool.boolean(f" {value.upper()} ")
