# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain's main() against libvirt's in-process test driver (test:///default).

The test driver keeps XML as given and validates structure only, so these tests cover the
module's logic: check mode, diff, idempotence, errors that change nothing, many guests, absent,
backup.  What QEMU itself accepts is covered by tests/integration on a real libvirtd.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module

FIXTURES = Path(__file__).parents[2] / "fixtures" / "capabilities"
RING = str(FIXTURES / "seed-4node-ring.xml")


def run(args: dict[str, Any], check_mode: bool = False, diff: bool = False) -> dict[str, Any]:
    return run_module({"uri": "test:///default", **args}, check_mode=check_mode, diff=diff)


def fail(args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return fail_module({"uri": "test:///default", **args}, **kwargs)


@pytest.fixture
def conn() -> Iterator[Any]:
    connection = libvirt.open("test:///default")
    yield connection
    connection.close()


def domain_xml(name: str, vcpus: int = 8, memory_mib: int = 4096, extra: str = "") -> str:
    return (
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>{memory_mib}</memory>"
        f"<vcpu>{vcpus}</vcpu><os><type>hvm</type></os>{extra}"
        "<devices><interface type='network'><source network='default'/></interface></devices></domain>"
    )


@pytest.fixture
def guest(conn: Any) -> Iterator[str]:
    name = f"unit-{uuid.uuid4().hex[:8]}"
    conn.defineXML(domain_xml(name))
    yield name
    for domain in conn.listAllDomains():
        if domain.name().startswith(name):
            domain.undefine()


def inactive(conn: Any, name: str) -> str:
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


@pytest.mark.parametrize("distribution", ["contiguous", "siblings", "round-robin", "interleave"])
def test_four_step_rhythm(conn: Any, guest: str, distribution: str) -> None:
    args = {"name": guest, "host_capabilities": RING, "distribution": distribution}
    before = inactive(conn, guest)
    first = run(args, check_mode=True, diff=True)
    assert first["changed"]
    assert inactive(conn, guest) == before, "check mode must write nothing"
    assert first["diff"]["after"]["cpu/numa/cell[3]/memory"] == 1048576
    assert first["diff"]["before"]["cpu/numa/cell[3]/memory"] is None
    applied = run(args)
    assert applied["changed"]
    assert applied["changes"] == first["changes"]
    assert run(args, check_mode=True)["changed"] is False
    again = run(args)
    assert again["changed"] is False
    assert again["changes"] == []
    assert [cell["host_nodes"] for cell in again["layout"]["cells"]] == ["0", "1", "2", "3"]


def test_options_left_unset_keep_the_stored_spec(conn: Any, guest: str) -> None:
    run({"name": guest, "host_capabilities": RING, "mode": "node", "cells": 2, "pinning": "core"})
    kept = run({"name": guest, "host_capabilities": RING})
    assert kept["changed"] is False
    assert kept["layout"]["pinning"] == "core"
    assert len(kept["layout"]["cells"]) == 2


def test_nothing_outside_the_owned_parts_changes(conn: Any, guest: str) -> None:
    from lxml import etree

    run({"name": guest, "host_capabilities": RING})
    after = etree.fromstring(inactive(conn, guest).encode())
    assert after.find("devices/interface/source").get("network") == "default"
    assert after.find("os/type").text == "hvm"
    assert after.find("cpu/numa") is not None


def test_a_refused_guest_changes_nothing_and_names_guest_value_limit(conn: Any, guest: str) -> None:
    before = inactive(conn, guest)
    result = fail({"name": guest, "host_capabilities": RING, "memory": "64 GiB"})
    assert result["msg"] == f"guest {guest}: guest cell 0 needs 16 GiB, host node 0 has 8 GiB"
    assert result["guest"] == guest
    assert inactive(conn, guest) == before


def test_unknown_guest_and_unreachable_libvirt() -> None:
    assert fail({"name": "no-such-guest"})["msg"] == (
        "guest no-such-guest: no guest named no-such-guest is defined at test:///default"
    )
    result = fail({"name": "x", "uri": "qemu+unix:///system?socket=/nonexistent/sock", "connect_timeout": 0})
    assert result["msg"].startswith("cannot connect to libvirt at qemu+unix:///system?socket=/nonexistent/sock: ")


def test_many_guests_plan_before_anything_is_written(conn: Any, guest: str) -> None:
    other = f"{guest}-b"
    conn.defineXML(domain_xml(other, memory_mib=65536))
    before = {name: inactive(conn, name) for name in (guest, other)}
    result = fail({"guests": [f"{guest}*"], "host_capabilities": RING})
    assert f"guest {other}: guest cell 0 needs 16 GiB, host node 0 has 8 GiB" in result["msg"]
    assert {name: inactive(conn, name) for name in (guest, other)} == before, "a refusal must change no guest"

    done = run({"guests": [guest, {"name": other, "memory": "8 GiB"}], "host_capabilities": RING})
    assert [item["name"] for item in done["guests"]] == [guest, other]
    assert all(item["changed"] for item in done["guests"])
    assert done["guests"][1]["layout"]["memory_kib"] == 8 * 1024 * 1024
    excluded = run({"guests": [f"{guest}*"], "exclude": [other], "host_capabilities": RING})
    assert [item["name"] for item in excluded["guests"]] == [guest]


def test_dedicated_pinning_avoids_other_guests_cpus(conn: Any, guest: str) -> None:
    other = f"{guest}-b"
    conn.defineXML(domain_xml(other, vcpus=2, memory_mib=2048))
    run({"name": other, "host_capabilities": RING, "pinning": "thread", "mode": "node", "nodeset": "0"})
    node = {"host_capabilities": RING, "pinning": "thread", "mode": "node", "memory": "4 GiB"}
    placed = run({"name": guest, **node, "nodeset": "0-3"})
    assert placed["layout"]["cells"][0]["pinning"] == "2-3", "host CPUs 0-1 are held by the other guest"
    refused = fail({"name": guest, **node, "nodeset": "0"})
    assert refused["msg"] == (
        f"guest {guest}: pinning thread needs 8 free host threads for guest cell 0 on host node 0, "
        f"2 are free (others are dedicated to {other})"
    )


def test_absent_leaves_a_flat_guest(conn: Any, guest: str) -> None:
    run({"name": guest, "host_capabilities": RING})
    flat = run({"name": guest, "state": "absent"}, diff=True)
    assert flat["changed"]
    xml = inactive(conn, guest)
    assert "<numa>" not in xml and "<numatune>" not in xml and "vnuma" not in xml and "vcpupin" not in xml
    assert run({"name": guest, "state": "absent"})["changed"] is False


def test_backup_saves_the_previous_definition(conn: Any, guest: str, tmp_path: Path) -> None:
    before = inactive(conn, guest)
    result = run({"name": guest, "host_capabilities": RING, "backup": True, "backup_dir": str(tmp_path)})
    assert Path(result["backup_file"]).read_text() == before
    assert (
        run({"name": guest, "host_capabilities": RING, "backup": True, "backup_dir": str(tmp_path)})["backup_file"]
        is None
    )


def test_running_guest_reports_restart_required(conn: Any, guest: str) -> None:
    conn.lookupByName(guest).create()
    try:
        result = run({"name": guest, "host_capabilities": RING})
        assert result["restart_required"] and result["restart_required_guests"] == [guest]
        # The definition is converged, but the running guest still waits for its new boot.
        pending = run({"name": guest, "host_capabilities": RING})
        assert pending["changed"] is False and pending["restart_required"] is True
        domain = conn.lookupByName(guest)
        domain.destroy()
        domain.create()
        assert run({"name": guest, "host_capabilities": RING})["restart_required"] is False
    finally:
        conn.lookupByName(guest).destroy()


def test_vcpus_beyond_the_maximum_are_refused(conn: Any, guest: str) -> None:
    result = fail({"name": guest, "host_capabilities": RING, "current_vcpus": 9})
    assert result["msg"] == f"guest {guest}: current vcpus 9 is above the maximum of 8 vCPUs"


def test_current_vcpus_sets_a_balanced_boot_set(conn: Any, guest: str) -> None:
    result = run({"name": guest, "host_capabilities": RING, "current_vcpus": 4})
    assert result["layout"]["enable_order"][:4] == [0, 2, 4, 6]
    xml = inactive(conn, guest)
    assert "current='4'" in xml or 'current="4"' in xml


def test_hotplug_memory_needs_max_memory(conn: Any, guest: str) -> None:
    result = fail({"name": guest, "host_capabilities": RING, "hotplug_memory": "1 GiB"})
    assert result["msg"] == f"guest {guest}: memory hotplug needs max_memory and memory_slots in the vnuma spec"


def test_spec_options_agree_everywhere() -> None:
    """The module's argspec, its documentation and the spec name the same options with the same choices."""
    import yaml

    from ansible_collections.vnuma.libvirt.plugins.doc_fragments.spec import ModuleDocFragment
    from ansible_collections.vnuma.libvirt.plugins.module_utils._domain_run import SPEC_OPTIONS

    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(vnuma_domain.SPEC_ARGS) == set(SPEC_OPTIONS) == set(documented)
    for name, argument in vnuma_domain.SPEC_ARGS.items():
        assert argument.get("choices") == documented[name].get("choices"), name
        assert argument["type"] == documented[name]["type"], name
