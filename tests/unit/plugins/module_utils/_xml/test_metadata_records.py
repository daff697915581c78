# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's records in ``<metadata>`` (spec, original parts, moved addresses, a move): one rule.

Each record is the child of ``<metadata>`` in a namespace of the collection's, found, put and removed by
``_xml/metadata.py``; a ``<metadata>`` the removal leaves empty goes, whichever record went last.  Before,
``unmark_moved`` alone did not drop it: ``state: absent`` of a guest that had moved with its topology kept
(``render_absent`` then ``unmark_moved``, the order ``_run/plan.py`` uses) left a ``<metadata/>`` its
definition never had.
"""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.absent import render_absent
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import plan_domain, render_plan
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import mark_moved, moved_from, unmark_moved
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import (
    read_stored_spec,
    remove_original,
    remove_stored_spec,
    store_spec,
)
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

RING = host("seed-4node-ring")
OTHER_APP = "<app:thing xmlns:app='urn:example:app'>kept</app:thing>"


def _guest(metadata: str = "") -> str:
    return f"""<domain type='kvm'>
  <name>db01</name>{metadata}
  <memory unit='GiB'>4</memory>
  <vcpu>4</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
</domain>"""


def _managed_then_moved(original: str) -> etree._Element:
    """``original`` as the collection leaves it after an apply and a move that kept its topology."""
    root = parse_xml(original, "domain", "domain")
    render_plan(root, plan_domain(root, RING, VnumaSpec(mode="host")))
    mark_moved(root, "migrate", "qemu+ssh://source/system")
    assert read_stored_spec(root) is not None and moved_from(root) is not None
    return root


def _children(root: etree._Element) -> list[str]:
    metadata = root.find("metadata")
    assert metadata is not None
    return [str(child.tag) for child in metadata]


def _metadata(root: etree._Element) -> str | None:
    element = root.find("metadata")
    return None if element is None else to_text(element)


@pytest.mark.parametrize(
    "metadata",
    [pytest.param("", id="none"), pytest.param(f"\n  <metadata>{OTHER_APP}</metadata>", id="another-apps")],
)
def test_absent_after_a_move_gives_back_the_metadata_the_definition_had(metadata: str) -> None:
    original = _guest(metadata)
    root = _managed_then_moved(original)
    render_absent(root, "db01")
    unmark_moved(root)
    assert _metadata(root) == _metadata(parse_xml(original, "domain", "domain"))


@pytest.mark.parametrize("last", ["spec", "original", "moved"])
def test_whichever_record_goes_last_takes_an_empty_metadata_with_it(last: str) -> None:
    root = _managed_then_moved(_guest())
    removals = {"spec": remove_stored_spec, "original": remove_original, "moved": unmark_moved}
    for name, remove in removals.items():
        if name != last:
            remove(root)
    assert root.find("metadata") is not None
    removals[last](root)
    assert root.find("metadata") is None


def test_a_record_is_put_in_place_of_its_own_and_nothing_else() -> None:
    root = _managed_then_moved(_guest(f"\n  <metadata>{OTHER_APP}</metadata>"))
    before = _children(root)
    store_spec(root, VnumaSpec(mode="node", nodeset="0-1"))
    mark_moved(root, "restore", "/saved")
    assert _children(root) == before
    assert read_stored_spec(root) == VnumaSpec(mode="node", nodeset="0-1")
    assert moved_from(root) == "restore from /saved"
