# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The definition ``vnuma_domain`` writes for one guest: its new text and what changes, before anything is written.

``plan_written`` gives it for a guest planned with a spec (``expand.py:plan_domain``), ``plan_absent`` for
``state: absent`` (``absent.py:render_absent``).  Both also drop the record of a move (``migration.py:moved_from``):
a guest rendered again here, or given back, no longer keeps the topology it came with.  This file sits above
``expand.py``, ``absent.py`` and ``migration.py``, which cannot import one another this way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.absent import render_absent
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import Change, ChangeKind
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import DomainPlan, render_plan, serialize_like
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import moved_from, unmark_moved
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import has_original, has_stored_spec

__all__ = ["NewDefinition", "plan_absent", "plan_written"]


@dataclass(frozen=True)
class NewDefinition:
    """A guest's definition as a run would write it: the owned parts now and then, what changes, the new text."""

    current: DomainNuma
    target: DomainNuma
    changes: tuple[Change, ...]
    # The definition to write; None when nothing changes.
    xml: str | None
    # What the user is told (absent: a record that cannot be used).
    warnings: tuple[str, ...] = ()


def _parsed(xml: str, name: str) -> etree._Element:
    return parse_xml(xml, f"the definition of guest {name}", root_tag="domain")


def _move_record(root: etree._Element) -> list[Change]:
    """The record of a move, which goes with the kept topology when the guest is rendered again or given back."""
    return [] if moved_from(root) is None else [Change("metadata/vnuma-moved", "kept", None, ChangeKind.LIVE)]


def _text(written: etree._Element, xml: str) -> str:
    unmark_moved(written)
    return serialize_like(written, xml)


def plan_written(root: etree._Element, xml: str, plan: DomainPlan, name: str) -> NewDefinition:
    """``plan`` written into the definition ``xml`` (parsed as ``root``) of guest ``name``: the changes and text."""
    changes = [*plan.changes, *_move_record(root)]
    text = None
    if changes:
        written = _parsed(xml, name)
        render_plan(written, plan)
        text = _text(written, xml)
    return NewDefinition(plan.current, plan.target, tuple(changes), text)


def plan_absent(root: etree._Element, xml: str, name: str) -> NewDefinition:
    """``state: absent`` for the definition ``xml`` (parsed as ``root``) of guest ``name``: what ``plan_written``
    gives a planned guest, and the warnings of ``render_absent`` (which refuses, SpecError, before any change).

    The collection's records in ``<metadata>`` (the stored spec, the record of the definition before it, a move)
    are changes of their own: each goes.  A stored spec that cannot be read does not matter: it goes whatever it
    says.
    """
    current = DomainNuma.from_domain(root)
    written = _parsed(xml, name)
    warnings = render_absent(written, name)
    target = DomainNuma.from_domain(written)
    changes = current.changes(target)
    if has_stored_spec(root):
        changes.append(Change("metadata/vnuma", "stored", None, ChangeKind.LIVE))
    if has_original(root):
        changes.append(Change("metadata/vnuma-original", "recorded", None, ChangeKind.LIVE))
    changes.extend(_move_record(root))
    text = _text(written, xml) if changes else None
    return NewDefinition(current, target, tuple(changes), text, tuple(warnings))
