# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain on a guest that vnuma_migrate moved: its topology is kept until rerender: next_boot.

The guest was laid out on the 4-node ring (4 cells, mode host) and moved to an AMD host of 8 nodes; its
spec (mode host) rendered there would give 8 cells.  libvirt's test driver holds the definition; the
module plans against the AMD host's capabilities.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_planner import plan_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import (
    moved_from,
    moving_guest_from_xml,
    rewrite_host_bindings,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host
from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module

FIXTURES = Path(__file__).parents[2] / "fixtures"
AMD = str(FIXTURES / "capabilities" / "amd-2s-nps4.xml")


def run(args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    return run_module({"uri": "test:///default", "host_capabilities": AMD, **args}, check_mode=check_mode)


def cell_count(xml: str) -> int:
    return len(parse_xml(xml, "domain").findall("cpu/numa/cell"))


@pytest.fixture
def moved() -> Iterator[tuple[Any, str]]:
    """The ring guest as the move left it on the AMD host: its host side planned there, the move recorded."""
    name = f"moved-{uuid.uuid4().hex[:8]}"
    text = (FIXTURES / "migration" / "host-ring-contiguous-in.xml").read_text(encoding="utf-8")
    text = text.replace("<name>ring-contiguous</name>", f"<name>{name}</name>")
    plan = plan_destination(moving_guest_from_xml(text), host("amd-2s-nps4"))
    xml = rewrite_host_bindings(text, plan, ("migrate", "qemu+ssh://hv1/system"))
    conn = libvirt.open("test:///default")
    domain = conn.defineXML(xml)
    yield domain, name
    domain.undefine()
    conn.close()


def test_a_moved_guest_keeps_its_topology(moved: tuple[Any, str]) -> None:
    domain, name = moved
    before = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert cell_count(before) == 4
    for check_mode in (True, False):
        result = run({"name": name}, check_mode=check_mode)
        assert result["changed"] is False
        assert any(
            "came here by migrate from qemu+ssh://hv1/system and keeps its topology" in w for w in result["warnings"]
        )
        assert domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before


def test_rerender_next_boot_renders_the_spec_for_this_host(moved: tuple[Any, str]) -> None:
    domain, name = moved
    before = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    planned = run({"name": name, "rerender": "next_boot"}, check_mode=True)
    assert planned["changed"] is True
    assert domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before
    run({"name": name, "rerender": "next_boot"})
    after = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    # mode host mirrors the AMD host's 8 nodes; the record of the move is gone, so the next run renders as usual.
    assert cell_count(after) == 8
    assert moved_from(parse_xml(after, "domain")) is None
    assert run({"name": name})["changed"] is False
