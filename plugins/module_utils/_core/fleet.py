# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The guests a ``vnuma_domain`` result reports as failed, for the ``vnuma_fleet`` role and the filter.

``vnuma_domain`` isolates guests: one that cannot be read, parsed, planned, defined or restarted is
reported in its ``guests`` entry with ``error`` (and ``written``, what the run wrote for it before it
failed), the others go on, and the call fails.  A call that fails before any guest (a bad option, the
connection, a capacity refusal) has no ``guests``.  The role tells the two apart here: per-guest
failures leave the hypervisor going, anything else fails it.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import shown

__all__ = ["guest_failures"]


def _kind(value: Any) -> str:
    # The YAML name of a value's type, for messages (the glue's kind() is not reachable from the pure layer).
    for name, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("dict", Mapping)):
        if isinstance(value, types):
            return name
    if isinstance(value, (list, tuple)):
        return "list"
    return "None" if value is None else type(value).__name__


def _entry(index: int, entry: Any, step: str | None) -> dict[str, Any] | None:
    """One ``guests`` entry as a failure (None when it did not fail), refusing an entry of the wrong shape."""
    where = f"guests[{index}]"
    if not isinstance(entry, Mapping):
        raise SpecError(f"{where} must be a dict (one guest's result), got {_kind(entry)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where}.name must be a guest name (a non-empty string), got {_kind(name)} {shown(name)}")
    where = f"{where} ({name})"
    error = entry.get("error")
    if error is not None and not isinstance(error, str):
        raise SpecError(f"{where}.error must be a message (a string) or null, got {_kind(error)}")
    written = entry.get("written", [])
    if not isinstance(written, (list, tuple)) or not all(isinstance(item, str) for item in written):
        raise SpecError(f"{where}.written must be a list of strings (what was written), got {_kind(written)}")
    changed = entry.get("changed", bool(written))
    if not isinstance(changed, bool):
        raise SpecError(f"{where}.changed must be true or false, got {_kind(changed)} {shown(changed)}")
    if error is None:
        return None
    failure: dict[str, Any] = {"name": name}
    if step is not None:
        failure["step"] = step
    # A guest written before it failed (a define, then a refused restart) changed all the same.
    failure.update(error=error, changed=changed or bool(written), written=list(written))
    return failure


def guest_failures(result: Any, step: Any = None) -> list[dict[str, Any]]:
    """The failed guests of a ``vnuma_domain`` result: name, step (when given), error, changed, written.

    ``result`` is what the task registered.  No ``guests`` (a task that failed before any guest, or was
    skipped) gives ``[]``, as does a result where no guest has an error.  The order is the result's.
    """
    if step is not None and (not isinstance(step, str) or not step.strip()):
        raise SpecError(f"step must name the step (a non-empty string), got {_kind(step)} {shown(step)}")
    if not isinstance(result, Mapping):
        raise SpecError(f"the input must be the registered result of a vnuma_domain task (a dict), got {_kind(result)}")
    guests = result.get("guests")
    if guests is None:
        return []
    if not isinstance(guests, (list, tuple)):
        raise SpecError(f"guests must be the list of per-guest results, got {_kind(guests)}")
    failures = [_entry(index, entry, step) for index, entry in enumerate(guests)]
    return [failure for failure in failures if failure is not None]
