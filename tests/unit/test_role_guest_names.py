# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vnuma_fleet role selects its guests once, by the user's names and patterns, in its first call (``fleet``).

Every later call names the guests that selection found.  Those names must be read as names
(``exact_names``): a guest named ``web[12]`` undefined in between would otherwise select ``web1`` and ``web2``,
excluded or not (tests/integration/test_concurrency.py shows it on a real daemon).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

TASKS = Path(__file__).resolve().parents[2] / "roles" / "vnuma_fleet" / "tasks"
SELECTING_MODULES = ("vnuma.libvirt.vnuma_domain", "vnuma.libvirt.vnuma_info")


def tasks(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        for key in ("block", "rescue", "always"):
            yield from tasks(item.get(key) or [])


def module_calls() -> list[tuple[str, str, dict[str, Any]]]:
    calls = []
    for path in sorted(TASKS.glob("*.yml")):
        for task in tasks(yaml.safe_load(path.read_text(encoding="utf-8")) or []):
            for module in SELECTING_MODULES:
                if module in task:
                    calls.append((path.name, task["name"], task[module]))
    return calls


def test_the_role_calls_the_modules_where_expected() -> None:
    # The walk must see the calls it checks: the fleet call, the apply, a restart batch and verify's re-read.
    assert {file for file, _name, _args in module_calls()} >= {
        "preflight.yml", "apply.yml", "restart_batch.yml", "verify.yml"
    }  # fmt: skip


def test_every_call_after_the_selection_names_its_guests_exactly() -> None:
    for file, name, args in module_calls():
        if "fleet" in args:
            # The selection itself: the user's vnuma_fleet_guests and vnuma_fleet_exclude, patterns allowed.
            assert "exact_names" not in args, (file, name)
            continue
        assert "guests" in args, (file, name)
        assert args.get("exact_names") is True, f"{file}: {name!r} passes guest names without exact_names: true"
