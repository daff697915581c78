# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fleet_requests: which options the vnuma_fleet role sends for each guest, and where its spec comes from."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import fleet_requests

SPEC = {"mode": "host", "distribution": "siblings", "pinning": None}
UNREADABLE = "<vnuma>: mode 'bogus' is not one of host, node, auto"


def guest(name: str, spec: dict[str, Any] | None = None, spec_error: str | None = None) -> dict[str, Any]:
    """A guest as vnuma_info returns it (the keys that matter here, and one it always has)."""
    return {"name": name, "spec": spec, "spec_error": spec_error, "running": False}


FLAT = guest("flat01")
STORED = guest("hpc01", {"mode": "node", "nodeset": "2-3", "distribution": None, "pinning": "thread"})
BROKEN = guest("db02", spec_error=UNREADABLE)


# (guests, spec, overrides, use_stored_spec, expected requests, expected sources as (spec, override))
CASES = [
    pytest.param([FLAT], SPEC, {}, True, [{"mode": "host", "distribution": "siblings", "name": "flat01"}],
                 [("vnuma_fleet_spec", False)], id="no-stored-spec"),
    pytest.param([STORED], SPEC, {}, True, [{"distribution": "siblings", "name": "hpc01"}],
                 [("stored", False)], id="kept-stored-spec-filled-where-unset"),
    pytest.param([STORED], SPEC, {}, False, [{"mode": "host", "distribution": "siblings", "name": "hpc01"}],
                 [("vnuma_fleet_spec, over the stored spec", False)], id="stored-spec-not-kept"),
    pytest.param([BROKEN], SPEC, {}, True, [{"name": "db02"}],
                 [("stored, unreadable", False)], id="unreadable-stored-spec-kept"),
    pytest.param([BROKEN], SPEC, {}, False, [{"mode": "host", "distribution": "siblings", "name": "db02"}],
                 [("vnuma_fleet_spec, over the stored spec", False)], id="unreadable-stored-spec-replaced"),
    pytest.param([BROKEN], SPEC, {"db02": {"mode": "host"}}, True, [{"mode": "host", "name": "db02"}],
                 [("stored, unreadable", True)], id="override-repairs-unreadable"),
    pytest.param([STORED], SPEC, {"hpc01": {"mode": "host", "pinning": None}}, True,
                 [{"distribution": "siblings", "mode": "host", "pinning": None, "name": "hpc01"}],
                 [("stored", True)], id="override-wins-none-values-kept"),
    pytest.param([FLAT], {"mode": None, "cells": None}, {}, True, [{"name": "flat01"}],
                 [("vnuma_fleet_spec", False)], id="spec-none-values-unset"),
    pytest.param([FLAT], None, None, True, [{"name": "flat01"}], [("vnuma_fleet_spec", False)], id="no-spec-at-all"),
    pytest.param([FLAT], SPEC, {"other01": {"mode": "node"}}, True,
                 [{"mode": "host", "distribution": "siblings", "name": "flat01"}],
                 [("vnuma_fleet_spec", False)], id="override-of-another-guest-ignored"),
    pytest.param([], SPEC, {}, True, [], [], id="no-guests"),
]  # fmt: skip


@pytest.mark.parametrize(("guests", "spec", "overrides", "use_stored", "requests", "sources"), CASES)
def test_requests_and_sources(
    guests: list[dict[str, Any]],
    spec: Any,
    overrides: Any,
    use_stored: bool,
    requests: list[dict[str, Any]],
    sources: list[tuple[str, bool]],
) -> None:
    built = fleet_requests(guests, spec, overrides, use_stored)
    assert built["requests"] == requests
    # The entry's key order is the Jinja expression's: the spec's, the override's, then name.
    assert [list(entry) for entry in built["requests"]] == [list(entry) for entry in requests]
    expected = {
        g["name"]: {"spec": source, "override": override} for g, (source, override) in zip(guests, sources, strict=True)
    }
    assert built["sources"] == expected


def test_guests_keep_their_order_and_inputs_are_not_changed() -> None:
    guests = [STORED, FLAT, BROKEN]
    spec = dict(SPEC)
    built = fleet_requests(guests, spec, {}, True)
    assert [entry["name"] for entry in built["requests"]] == ["hpc01", "flat01", "db02"]
    assert list(built["sources"]) == ["hpc01", "flat01", "db02"]
    assert spec == SPEC
    assert STORED["spec"] == {"mode": "node", "nodeset": "2-3", "distribution": None, "pinning": "thread"}


@pytest.mark.parametrize(
    ("guests", "spec", "overrides", "use_stored", "message"),
    [
        ({"name": "x"}, {}, {}, True, "the input must be the guests vnuma_info read (a list), got dict"),
        ([FLAT], [], {}, True, "spec must be a dict of vnuma_domain options, got list"),
        ([FLAT], {}, "x", True, "overrides must be a dict of vnuma_domain options, got str"),
        ([FLAT], {}, {"flat01": 5}, True, "overrides[flat01] must be a dict of vnuma_domain options, got int"),
        ([FLAT], {}, {}, "yes", "use_stored_spec must be true or false, got str 'yes'"),
        (["flat01"], {}, {}, True, "guests[0] must be a dict (one guest vnuma_info read), got str"),
        ([{"spec": None}], {}, {}, True, "guests[0].name must be a guest name (a non-empty string), got None"),
    ],
)
def test_bad_inputs_are_refused(guests: Any, spec: Any, overrides: Any, use_stored: Any, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        fleet_requests(guests, spec, overrides, use_stored)
    assert str(raised.value) == message
