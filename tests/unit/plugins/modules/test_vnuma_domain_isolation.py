# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One broken guest never blocks the others, and a run says what it wrote (test:///default).

A guest whose stored spec is corrupt (``<vnuma mode="bogus">`` in its metadata, as a hand edit or
another tool leaves it) used to make every call on the host fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtHost
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.tests.unit.plugins.modules.test_vnuma_domain import (
    RING,
    domain_xml,
    fail,
    inactive,
    run,
)

BOGUS = "<metadata><vnuma:vnuma xmlns:vnuma='urn:vnuma:libvirt:1.0' mode='bogus'/></metadata>"
BOGUS_MESSAGE = "<vnuma>: mode 'bogus' is not one of host, node, auto"


@pytest.fixture
def conn() -> Iterator[Any]:
    connection = libvirt.open("test:///default")
    yield connection
    connection.close()


@pytest.fixture
def names(conn: Any) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for domain in conn.listAllDomains():
        if domain.name() in made:
            if domain.isActive():
                domain.destroy()
            domain.undefine()


def define(conn: Any, names: list[str], extra: str = "", memory_mib: int = 4096, vcpus: int = 8) -> str:
    name = f"iso-{uuid.uuid4().hex[:8]}"
    conn.defineXML(domain_xml(name, vcpus=vcpus, memory_mib=memory_mib, extra=extra))
    names.append(name)
    return name


@pytest.mark.parametrize("state", ["shutoff", "running", "autostart"])
def test_a_corrupt_stored_spec_on_another_guest_blocks_nothing(conn: Any, names: list[str], state: str) -> None:
    broken = define(conn, names, BOGUS)
    if state == "running":
        conn.lookupByName(broken).create()
    elif state == "autostart":
        conn.lookupByName(broken).setAutostart(1)
    broken_before = inactive(conn, broken)
    good = define(conn, names)
    result = run({"name": good, "host_capabilities": RING})
    assert result["changed"] is True
    assert [item["name"] for item in result["guests"]] == [good]
    assert result["guests"][0]["error"] is None
    assert inactive(conn, broken) == broken_before
    # Still counted by its definition (one 4 GiB cell, unbound) when it runs or starts with the host.
    counted = {guest["name"] for guest in result["capacity"]["unbound_guests"]}
    assert (broken in counted) == (state != "shutoff")


def test_a_corrupt_stored_spec_is_an_error_of_its_own_guest_only(conn: Any, names: list[str]) -> None:
    broken = define(conn, names, BOGUS)
    good = define(conn, names)
    before = inactive(conn, broken)
    result = fail({"guests": [broken, good], "host_capabilities": RING})
    message = (
        f"guest {broken}: its stored vnuma spec cannot be read ({BOGUS_MESSAGE}); give the spec's options "
        "(at least mode) to replace it, or state: absent to remove the layout"
    )
    assert result["msg"] == f"{message} (written before the failure: guest {good}: definition)"
    assert result["guest"] == broken
    assert result["changed"] is True
    by_name = {item["name"]: item for item in result["guests"]}
    assert by_name[broken] | {"written": [], "error": message} == by_name[broken]
    assert by_name[good]["written"] == ["definition"]
    assert inactive(conn, broken) == before


def test_explicit_options_repair_a_corrupt_stored_spec(conn: Any, names: list[str]) -> None:
    broken = define(conn, names, BOGUS)
    repaired = run({"name": broken, "host_capabilities": RING, "mode": "node", "cells": 2})
    assert repaired["changed"] is True
    assert repaired["warnings"] == [
        f"guest {broken}: its stored vnuma spec cannot be read ({BOGUS_MESSAGE}); replaced by the options given"
    ]
    assert "bogus" not in inactive(conn, broken)
    assert len(repaired["layout"]["cells"]) == 2
    # The spec stored now is the one given: a rerun without options keeps it and changes nothing.
    again = run({"name": broken, "host_capabilities": RING})
    assert again["changed"] is False
    assert "warnings" not in again


def test_hotplug_memory_without_acpi_is_refused_before_anything_is_written(conn: Any, names: list[str]) -> None:
    guest = define(conn, names)
    before = inactive(conn, guest)
    args = {"name": guest, "host_capabilities": RING, "max_memory": "8 GiB", "memory_slots": 4}
    result = fail({**args, "hotplug_memory": "1 GiB"})
    assert result["msg"] == (
        f"guest {guest}: hotplug_memory 1 GiB needs ACPI: the guest's <features> has no <acpi/>, and QEMU "
        "hot-adds DIMMs on x86 only through ACPI; add <acpi/> first"
    )
    assert result["changed"] is False
    assert inactive(conn, guest) == before


def test_hotplug_memory_with_acpi_is_planned(conn: Any, names: list[str]) -> None:
    guest = define(conn, names, "<features><acpi/></features>")
    args = {"name": guest, "host_capabilities": RING, "max_memory": "8 GiB", "memory_slots": 4}
    result = run({**args, "hotplug_memory": "1 GiB"}, check_mode=True)
    assert result["changed"] is True
    assert any(change.startswith("devices/memory[0]") for change in result["changes"])


def test_a_counted_guest_that_cannot_be_read_counts_as_its_whole_memory(
    conn: Any, names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unreadable = define(conn, names, memory_mib=3072)
    conn.lookupByName(unreadable).create()
    good = define(conn, names)
    original = DomainNuma.from_domain

    def from_domain(root: Any) -> DomainNuma:
        # As a definition from a newer libvirt with a form of an owned element this version cannot read.
        if root.findtext("name") == unreadable:
            raise XmlError("<numatune>: a form this version cannot read")
        return original(root)

    monkeypatch.setattr(DomainNuma, "from_domain", staticmethod(from_domain))
    result = run({"name": good, "host_capabilities": RING})
    assert result["guests"][0]["error"] is None
    assert (
        f"guest {unreadable} is counted as 3 GiB of memory on any host node: its definition cannot be read "
        "(<numatune>: a form this version cannot read)"
    ) in result["capacity"]["warnings"]
    counted = {guest["name"]: guest["kib"] for guest in result["capacity"]["unbound_guests"]}
    assert counted[unreadable] == 3 * 1024 * 1024


def test_a_define_libvirt_refuses_after_another_guest_was_written_is_reported_as_such(
    conn: Any, names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = define(conn, names), define(conn, names), define(conn, names)
    before = {name: inactive(conn, name) for name in (first, second, third)}
    original = LibvirtHost.define

    def refuse_second(self: LibvirtHost, xml: str, guest: str | None = None) -> Any:
        # libvirt's own refusal of one definition (a check only libvirt makes), between two that it takes.
        if guest == second:
            raise LibvirtOperationError("defining the guest: unsupported configuration: a refusal", guest=guest)
        return original(self, xml, guest=guest)

    monkeypatch.setattr(LibvirtHost, "define", refuse_second)
    result = fail({"guests": [first, second, third], "host_capabilities": RING})
    assert result["msg"] == (
        f"guest {second}: defining the guest: unsupported configuration: a refusal (written before the failure: "
        f"guest {first}: "
        f"definition; guest {third}: definition)"
    )
    assert result["guest"] == second
    assert result["changed"] is True
    assert [(item["name"], item["written"], item["changed"]) for item in result["guests"]] == [
        (first, ["definition"], True),
        (second, [], False),
        (third, ["definition"], True),
    ]
    assert inactive(conn, second) == before[second]
    assert inactive(conn, first) != before[first] and inactive(conn, third) != before[third]


def test_a_guest_that_fails_keeps_its_dedicated_cpus_for_the_others_plans() -> None:
    # The demo's cache01 dedicates host CPUs 0-3 (one vCPU pinned to each). Asked in the same call for a layout that
    # fails, it keeps them: db01 must plan as it would alone. It was planned onto cache01's CPUs, so check mode
    # promised a layout that the next run (or the role's apply call, without cache01) refused.
    demo_dir = Path(__file__).resolve().parents[4] / "demo"
    demo = {"uri": f"test://{demo_dir}/fleet/hypervisor.xml", "host_capabilities": str(demo_dir / "host.xml")}
    cache01 = {"name": "cache01", "mode": "node", "nodeset": "0", "memory": "9 GiB"}
    together = fail({**demo, "guests": [{"name": "db01", "mode": "host"}, cache01]}, check_mode=True)
    alone = fail({**demo, "guests": [{"name": "db01", "mode": "host"}]}, check_mode=True)
    errors = {guest["name"]: guest["error"] for guest in together["guests"]}
    assert errors["cache01"] == "guest cache01: guest cell 0 needs 9 GiB, host node 0 has 8 GiB"
    assert errors["db01"] == alone["guests"][0]["error"]
    assert errors["db01"] == (
        "guest db01: every host CPU of host node 0 is dedicated to other guests (cache01); "
        "guest cell 0 has nowhere to run"
    )
