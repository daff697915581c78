# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The ``vnuma_fleet`` role's rules over guests: which options each guest is sent, and which guests failed.

``fleet_requests`` decides, per selected guest, which spec options the role sends to ``vnuma_domain``
(the fleet's spec, less what a kept stored spec already sets, then the guest's override) and says where
the guest's spec comes from.  ``vnuma_domain`` then lays those options over the stored spec
(``_run/guest.py:spec_for``): the role chooses what to send, the module how it combines.

``vnuma_domain`` isolates guests: one that cannot be read, parsed, planned, defined or restarted is
reported in its ``guests`` entry with ``error`` (and ``written``, what the run wrote for it before it
failed), the others go on, and the call fails.  A call that fails before any guest (a bad option, the
connection, a capacity refusal) has no ``guests``.  The role tells the two apart here: per-guest
failures leave the hypervisor going, anything else fails it.

``fleet_input_problem`` checks what the role's argument spec cannot say, before anything is read, and
``report_name_problem`` whether a hypervisor's inventory name can name its report files.  ``gate_held_back``
is the gate before the apply step and the restarts (vnuma_fleet_max_fail_percentage); it reads the numbers
as preflight checks them (``whole_number``).

``compact_fleet_result`` and ``expand_fleet_result`` are the two halves of the fleet call's compact result
(vnuma_domain's ``fleet.compact``): the guests' results, a few kilobytes per guest, travel as one JSON text
that only the role's Python reads.  Ansible copies every value of a nested result several times (the
module's output filter, the controller's decoding, each template that reads it), a text once.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.names import check_entries
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import coerce_options
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    CALL_TIMEOUT_LIMITS,
    CONNECT_TIMEOUT_LIMITS,
    SHUTDOWN_TIMEOUT_LIMITS,
    check_seconds,
    kind,
    parse_size,
    read_digits,
    shown,
)

__all__ = [
    "REPORT_NAME_MAX_BYTES",
    "SPEC_SOURCES",
    "SUMMARY_REPORT_NAME",
    "compact_fleet_result",
    "expand_fleet_result",
    "fleet_input_problem",
    "fleet_requests",
    "gate_held_back",
    "guest_failures",
    "report_name_problem",
    "whole_number",
]

# Where a guest's spec comes from, as the report's ``spec_source`` says it.
SPEC_SOURCES = ("stored", "stored, unreadable", "vnuma_fleet_spec, over the stored spec", "vnuma_fleet_spec")


def _entry(index: int, entry: Any, step: str | None) -> dict[str, Any] | None:
    """One ``guests`` entry as a failure (None when it did not fail), refusing an entry of the wrong shape."""
    where = f"guests[{index}]"
    if not isinstance(entry, Mapping):
        raise SpecError(f"{where} must be a dict (one guest's result), got {kind(entry)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where}.name must be a guest name (a non-empty string), got {kind(name)} {shown(name)}")
    where = f"{where} ({name})"
    error = entry.get("error")
    if error is not None and not isinstance(error, str):
        raise SpecError(f"{where}.error must be a message (a string) or null, got {kind(error)}")
    written = entry.get("written", [])
    if not isinstance(written, (list, tuple)) or not all(isinstance(item, str) for item in written):
        raise SpecError(f"{where}.written must be a list of strings (what was written), got {kind(written)}")
    changed = entry.get("changed", bool(written))
    if not isinstance(changed, bool):
        raise SpecError(f"{where}.changed must be true or false, got {kind(changed)} {shown(changed)}")
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
        raise SpecError(f"step must name the step (a non-empty string), got {kind(step)} {shown(step)}")
    if not isinstance(result, Mapping):
        raise SpecError(f"the input must be the registered result of a vnuma_domain task (a dict), got {kind(result)}")
    guests = result.get("guests")
    if guests is None:
        return []
    if not isinstance(guests, (list, tuple)):
        raise SpecError(f"guests must be the list of per-guest results, got {kind(guests)}")
    failures = [_entry(index, entry, step) for index, entry in enumerate(guests)]
    return [failure for failure in failures if failure is not None]


def _options(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be a dict of vnuma_domain options, got {kind(value)}")
    return value


def _spec_source(stored: bool, unreadable: bool, use_stored: bool) -> str:
    if use_stored and stored:
        return SPEC_SOURCES[0]
    if use_stored and unreadable:
        return SPEC_SOURCES[1]
    return SPEC_SOURCES[2] if stored or unreadable else SPEC_SOURCES[3]


def fleet_requests(guests: Any, spec: Any, overrides: Any, use_stored_spec: Any) -> dict[str, Any]:
    """One ``vnuma_domain`` guests entry per guest, and where each guest's spec comes from.

    ``guests`` are ``vnuma_info``'s guests (``name``, ``spec``: the stored spec as a mapping or None,
    ``spec_error``: why it cannot be read).  With ``use_stored_spec`` a guest that has a stored spec
    keeps it: ``spec`` fills only the options it leaves unset.  A stored spec that cannot be read is kept
    too: nothing of ``spec`` is sent, since ``vnuma_domain`` would replace the unknown spec with the
    fleet's default; without options it fails that guest alone, saying how to repair it.  The guest's
    override (``overrides[name]``, None values included) is an explicit request and goes on top.
    ``spec``'s None values are unset options.  Returns ``{"requests": [entry...], "sources": {name:
    {"spec": one of SPEC_SOURCES, "override": bool}}}``, in the order of ``guests``.
    """
    if not isinstance(guests, (list, tuple)):
        raise SpecError(f"the input must be the guests vnuma_info read (a list), got {kind(guests)}")
    if not isinstance(use_stored_spec, bool):
        raise SpecError(f"use_stored_spec must be true or false, got {kind(use_stored_spec)} {shown(use_stored_spec)}")
    defaults = {key: value for key, value in _options(spec, "spec").items() if value is not None}
    overrides = _options(overrides, "overrides")
    requests: list[dict[str, Any]] = []
    sources: dict[str, Any] = {}
    for index, guest in enumerate(guests):
        if not isinstance(guest, Mapping):
            raise SpecError(f"guests[{index}] must be a dict (one guest vnuma_info read), got {kind(guest)}")
        name = guest.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError(f"guests[{index}].name must be a guest name (a non-empty string), got {kind(name)}")
        stored = guest.get("spec")
        stored_spec: Mapping[str, Any] | None = stored if isinstance(stored, Mapping) else None
        has_stored = stored_spec is not None
        unreadable = guest.get("spec_error") is not None
        if use_stored_spec and stored_spec is not None:
            options = {key: value for key, value in defaults.items() if stored_spec.get(key) is None}
        elif use_stored_spec and unreadable:
            options = {}
        else:
            options = dict(defaults)
        options.update(_options(overrides.get(name), f"overrides[{name}]"))
        options["name"] = name
        requests.append(options)
        sources[name] = {"spec": _spec_source(has_stored, unreadable, use_stored_spec), "override": name in overrides}
    return {"requests": requests, "sources": sources}


# The compact result's JSON text, and what it holds: the per-guest parts of the fleet call's result.
GUESTS_JSON = "guests_json"


def compact_fleet_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The fleet call's ``result`` with its per-guest parts moved into one JSON text, ``guests_json``.

    Moved: ``before`` (vnuma_info of the selection, whole), the ``guests`` of ``plan`` and of ``applied``,
    ``applied.after`` and ``after``.  What the role's tasks read stays as it was: the failure, the plan's and the
    apply's summaries (capacity, the guests that need a restart, the failed guests), the requests.  Added, for
    the tasks that no longer see the guests: ``laid_out`` (the planned guests with a layout, the ones verify
    reads again) and ``after_read`` (whether the call read the guests after its writes, or knows them unchanged).
    ``expand_fleet_result`` gives ``result`` back.
    """
    compact = dict(result)
    plan = dict(compact.get("plan") or {})
    applied = compact.get("applied")
    moved: dict[str, Any] = {
        "before": compact.pop("before", None),
        "plan": plan.pop("guests", None),
        "after": compact.pop("after", None),
    }
    if isinstance(applied, Mapping):
        applied = dict(applied)
        moved["applied"] = applied.pop("guests", None)
        moved["applied_after"] = applied.pop("after", None)
        compact["applied"] = applied
    if "plan" in compact:
        compact["plan"] = plan
    compact["laid_out"] = [entry["name"] for entry in moved["plan"] or [] if entry.get("layout")]
    compact["after_read"] = bool(
        compact.get("after_is_before") or moved["after"] is not None or moved.get("applied_after") is not None
    )
    compact[GUESTS_JSON] = json.dumps({key: value for key, value in moved.items() if value is not None})
    return compact


def expand_fleet_result(compact: Mapping[str, Any]) -> dict[str, Any]:
    """The fleet call's result as it is without ``compact``, from a compact one (any other result as it is)."""
    if GUESTS_JSON not in compact:
        return dict(compact)
    text = compact[GUESTS_JSON]
    if not isinstance(text, str):
        raise SpecError(f"{GUESTS_JSON} must be the JSON text of a compact fleet result, got {kind(text)}")
    try:
        moved = json.loads(text)
    except ValueError as error:
        raise SpecError(f"{GUESTS_JSON} is not JSON: {error}") from None
    result = {key: value for key, value in compact.items() if key not in (GUESTS_JSON, "laid_out", "after_read")}
    result["before"] = moved.get("before") or {}
    result["after"] = moved.get("after")
    if isinstance(result.get("plan"), Mapping) and "plan" in moved:
        result["plan"] = {**result["plan"], "guests": moved["plan"]}
    if isinstance(result.get("applied"), Mapping):
        applied = dict(result["applied"])
        if "applied" in moved:
            applied["guests"] = moved["applied"]
        if "applied_after" in moved:
            applied["after"] = moved["applied_after"]
        result["applied"] = applied
    return result


# The fleet summary's name in the report directory (fleet.json, fleet.html): no hypervisor's report may take it.
SUMMARY_REPORT_NAME = "fleet"
# The longest inventory name (in UTF-8 bytes) that names a hypervisor's report files: 255 bytes, the longest file
# name of Linux's and macOS's file systems, less what the report writer adds for the temporary file it writes first
# and renames (plugins/action/vnuma_fleet_report.py:write_file): "." before, ".html." and 8 characters after.
REPORT_NAME_MAX_BYTES = 240


def report_name_problem(host: Any) -> str | None:
    """Why the inventory name ``host`` cannot name its report files in the report directory; None when it can.

    A hypervisor's reports are ``<report dir>/<host>.json`` and ``<host>.html``.  Refused: an empty name, ``.`` and
    ``..`` (path components, not names), a name with ``/`` (the report would go to another directory, or out of
    the report directory) or NUL (no file name holds it), the fleet summary's name in any case (a file system that
    ignores case, such as macOS's, takes ``Fleet.json`` for ``fleet.json``), and a name longer than
    ``REPORT_NAME_MAX_BYTES``.
    """
    if not isinstance(host, str):
        why = f"is not a string but {kind(host)}"
    elif not host:
        why = "is empty"
    elif host in (".", ".."):
        why = f"is {host!r}, which names a directory in a path"
    elif "/" in host:
        why = "contains '/', which would put the reports in another directory or outside vnuma_fleet_report_dir"
    elif "\0" in host:
        why = "contains a NUL character, which no file name can hold"
    elif host.casefold() == SUMMARY_REPORT_NAME:
        why = (
            f"would be the fleet summary's name ({SUMMARY_REPORT_NAME}.json, {SUMMARY_REPORT_NAME}.html; compared "
            "without case, as macOS's file system compares names)"
        )
    else:
        size = len(host.encode("utf-8", "surrogateescape"))
        if size <= REPORT_NAME_MAX_BYTES:
            return None
        why = f"is {size} bytes long, more than {REPORT_NAME_MAX_BYTES} (a file name has at most 255 bytes)"
    return (
        f"inventory_hostname {shown(host)} cannot name this hypervisor's reports (<name>.json, <name>.html in "
        f"vnuma_fleet_report_dir): it {why}; give the host another name in the inventory"
    )


def fleet_input_problem(inputs: Mapping[str, Any], entry_options: Any) -> str | None:
    """What is wrong with the ``vnuma_fleet`` role's inputs, before anything is read; None when nothing is.

    ``inputs``: ``host`` (the inventory name), ``restart_batch``, ``shutdown_timeout``, ``max_fail_percentage``,
    ``plan_and_apply``, ``hypervisors`` (the play's) and ``overrides``; ``entry_options``: the keys a ``vnuma_domain``
    guests entry takes.  The first kind of problem, in this order: the inventory name (``report_name_problem``), the
    numbers (each number out of its range, with its value and its limit, separated by ``; ``; with ``plan_and_apply``
    together, the apply gate needs every hypervisor's plan before any apply, so several hypervisors need
    ``max_fail_percentage`` 100), an override that is not a mapping, overrides with unknown options.
    """
    name_problem = report_name_problem(inputs["host"])
    if name_problem is not None:
        return name_problem
    problems = _number_problems(inputs)
    if problems:
        return "; ".join(problems)
    settings = _settings_problem(inputs)
    if settings is not None:
        return settings
    overrides = _options(inputs["overrides"], "vnuma_fleet_overrides")
    not_mappings = [str(name) for name, value in overrides.items() if not isinstance(value, Mapping)]
    if not_mappings:
        return (
            "vnuma_fleet_overrides maps guest names to mappings of vnuma_domain options; not a mapping: "
            + ", ".join(not_mappings)
        )
    known = {str(option) for option in entry_options}
    odd = [str(name) for name, value in overrides.items() if not set(map(str, value)) <= known]
    if odd:
        unknown = sorted({str(key) for value in overrides.values() for key in value} - known)
        return (
            f"vnuma_fleet_overrides of {', '.join(odd)}: unknown option(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return None


def _number_problems(inputs: Mapping[str, Any]) -> list[str]:
    """Each of the role's numbers that is out of its range, with its value and its limit (in the inputs' order)."""
    batch, timeout, percent = (inputs[key] for key in ("restart_batch", "shutdown_timeout", "max_fail_percentage"))
    # A value that is no whole number (the argument spec lets none through) is out of every range.
    problems = []
    if not whole_number(batch) >= 1:
        problems.append(f"vnuma_fleet_restart_batch must be at least 1 (got {shown(batch)})")
    low, high = SHUTDOWN_TIMEOUT_LIMITS
    if not low <= whole_number(timeout) <= high:
        problems.append(f"vnuma_fleet_shutdown_timeout must be from {low:g} to {high:g} (got {shown(timeout)})")
    if not 0 <= whole_number(percent) <= 100:
        problems.append(f"vnuma_fleet_max_fail_percentage must be from 0 to 100 (got {shown(percent)})")
    elif (
        inputs["plan_and_apply"] == "together"
        and whole_number(percent) != 100
        and whole_number(inputs["hypervisors"]) != 1
    ):
        problems.append(
            f"vnuma_fleet_max_fail_percentage must be 100 with vnuma_fleet_plan_and_apply together on several "
            f"hypervisors (got {shown(percent)}; the play has {shown(inputs['hypervisors'])} hypervisors)"
        )
    return problems


def _settings_problem(inputs: Mapping[str, Any]) -> str | None:
    """The first of the role's settings that ``vnuma_domain`` would refuse, named as the role's input.

    The fleet call would refuse them too, but under its own option names, and a bad ``vnuma_fleet_spec`` under
    the first guest's name although it fails every guest.  The same readers as the module's: ``check_seconds``,
    ``parse_size``, ``check_entries``, and ``Option.coerce`` then ``VnumaSpec`` for the spec (a templated ``"2"``
    is read as the module reads it).  What depends on a guest (its vCPUs, its memory) stays the plan's to check.
    """
    try:
        for name, limits in (("connect_timeout", CONNECT_TIMEOUT_LIMITS), ("call_timeout", CALL_TIMEOUT_LIMITS)):
            value = inputs[name]
            # -e passes text; the module's argument spec reads it as a float.
            check_seconds(f"vnuma_fleet_{name}", _float_text(value) if isinstance(value, str) else value, limits)
        parse_size(inputs["reserved_memory"], what="vnuma_fleet_reserved_memory")
        for name in ("guests", "exclude"):
            check_entries(f"vnuma_fleet_{name}", inputs[name])
    except SpecError as error:
        return error.message
    spec = inputs["spec"]
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        return f"vnuma_fleet_spec must be a dict of vnuma_domain spec options, got {kind(spec)}"
    try:
        VnumaSpec.from_mapping(coerce_options(spec))
    except SpecError as error:
        return f"vnuma_fleet_spec: {error.message}"
    return None


def _float_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def whole_number(value: Any) -> float:
    """One of the role's numbers as a whole number (an int, or a string of digits as ``-e`` passes it); NaN, outside
    every range, for anything else.  Preflight checks each number read so (``fleet_input_problem``), and the steps
    read it so again (``gate_held_back``, ``_report/fleet.py:restart_batches``)."""
    if isinstance(value, str):
        digits = read_digits(value.strip())
        return float("nan") if digits is None else digits
    if isinstance(value, bool) or not isinstance(value, int):
        return float("nan")
    return value


def _host_names(value: Any, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(name, str) for name in value):
        raise SpecError(f"{what} must be a list of inventory names, got {kind(value)}")
    return list(value)


def gate_held_back(
    step: Any, hosts_all: Any, hosts: Any, failures: Any, host: Any, max_fail_percentage: Any, check: Any
) -> str | None:
    """Why the gate before the role's ``step`` holds ``host`` back; None when it lets the hypervisor go on.

    vnuma_fleet_max_fail_percentage, before the apply step and again before the restarts.  The failed hypervisors are
    the play's hosts that Ansible dropped (``hosts_all``, ``ansible_play_hosts_all``, less ``hosts``,
    ``ansible_play_hosts``: unreachable, or failed outside the role), then the hosts of ``hosts`` whose failure the
    role recorded (``failures``: each one's ``__vnuma_fleet_failure``, None or absent when it has none; a hypervisor
    a gate held back did not fail).  When they are more than ``max_fail_percentage`` percent of ``hosts_all``, every
    hypervisor that did not fail itself is held back: each computes the same count, so all of them agree.  One that
    failed is not held back: its own failure is what it reports.

    ``check``: the message says what the real run would do.  Check mode runs the apply's gate too: what it counts
    (failures up to the plan) is what the real run would count there.
    """
    if not isinstance(step, str) or not step:
        raise SpecError(f"step must name the step the gate comes before, got {kind(step)} {shown(step)}")
    everyone = _host_names(hosts_all, "the play's hosts")
    remaining = _host_names(hosts, "the play's remaining hosts")
    if not isinstance(failures, Mapping):
        raise SpecError(f"failures must map the play's hosts to their recorded failure, got {kind(failures)}")
    if not isinstance(host, str) or not isinstance(check, bool):
        raise SpecError("host must be an inventory name and check true or false")
    if failures.get(host) is not None:
        return None
    percent = whole_number(max_fail_percentage)
    if not 0 <= percent <= 100:
        raise SpecError(f"vnuma_fleet_max_fail_percentage must be from 0 to 100 (got {shown(max_fail_percentage)})")
    dropped = [name for name in dict.fromkeys(everyone) if name not in remaining]
    failed = dropped + [name for name in remaining if failures.get(name) is not None]
    # Whole numbers on both sides: a share exactly at the percentage does not hold anything back.
    if len(failed) * 100 <= percent * len(everyone):
        return None
    held = "would be held back" if check else "held back"
    return (
        f"{step} {held}: {len(failed)} of {len(everyone)} hypervisors failed ({', '.join(failed)}), "
        f"more than vnuma_fleet_max_fail_percentage {int(percent)}%"
    )
