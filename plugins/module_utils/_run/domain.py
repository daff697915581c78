# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The vnuma_domain module's work, from its parameters to its result, without Ansible.

The module hands in its validated parameters and check/diff flags and gets back the result
dict; every refusal is a ``VnumaError`` for the module to turn into ``fail_json`` once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityReport
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.names import (
    check_entries,
    check_entry,
    excluded,
    is_pattern,
    matching,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import (
    GUEST_OPTIONS,
    SPEC_OPTIONS,
    Kind,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.pci_locality import (
    format_device_cells,
    parse_device_cells,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    SHUTDOWN_TIMEOUT_LIMITS,
    check_seconds,
    parse_size,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtHost
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.backup import check_backup_dir
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import (
    DEFAULT_LOCK_TIMEOUT,
    check_lock_timeout,
    host_lock,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import BatchError, GuestResult
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.topology_cache import refresh_if_installed
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import (
    parse_capabilities,
    read_host_capabilities,
)

__all__ = [
    "GUEST_OPTION_NAMES",
    "SPEC_OPTION_NAMES",
    "build_requests",
    "converging",
    "domain_result",
    "run_domain",
    "validate_run_options",
]

# The options of a ``guests`` entry by name: the spec's (memory, hugepages, max_memory...) and the other per-guest
# ones (state, current_vcpus...), both from the option table, shared by the module's top level and each entry.
SPEC_OPTION_NAMES = tuple(item.name for item in SPEC_OPTIONS)
GUEST_OPTION_NAMES = tuple(item.name for item in GUEST_OPTIONS)
# Seconds.  A day is far more than any graceful shutdown takes: a larger (or negative) value is a
# mistake, and refused before anything is read, since the restart comes after the definitions changed.

_ENTRY_OPTIONS = (*SPEC_OPTION_NAMES, *GUEST_OPTION_NAMES)
_ENTRY_ROWS = {item.name: item for item in (*SPEC_OPTIONS, *GUEST_OPTIONS)}


def _coerced(name: str | None, key: str, value: Any) -> Any:
    """``value`` of a ``guests`` entry read for option ``key`` (``Option.coerce``), a refusal naming ``name``."""
    try:
        return _ENTRY_ROWS[key].coerce(value)
    except SpecError as error:
        raise error.naming(name) from None


def _spec_given(options: Mapping[str, Any]) -> dict[str, Any]:
    """The spec options that ``options`` set (None is unset)."""
    return {key: options[key] for key in SPEC_OPTION_NAMES if options.get(key) is not None}


def _check_values(name: str | None, options: Mapping[str, Any]) -> None:
    """Each spec option of ``options`` (read) against its limits, alone (``VnumaSpec.check_given``), naming ``name``."""
    given = _spec_given(options)
    if given:
        try:
            VnumaSpec.check_given(given, together=False)
        except SpecError as error:
            raise error.naming(name) from None


def _check_together(options: Mapping[str, Any], where: str) -> None:
    """The spec options of one request checked together (``VnumaSpec.check_given``), a refusal naming ``where``.

    Only what they refuse whatever stored spec the plan lays them over; ``where`` names the ``guests`` entry.
    """
    try:
        VnumaSpec.check_given(_spec_given(options))
    except SpecError as error:
        raise SpecError(f"{where}: {error.message}", guest=error.guest) from None


def _comparable(key: str, value: Any) -> Any:
    """``value`` as compared between two entries for one guest: sizes in KiB, node sets as sets."""
    kind = _ENTRY_ROWS[key].kind
    if kind is Kind.SIZE:
        return parse_size(value, what=key)
    if kind is Kind.NODESET:
        return parse_cpuset(value, key)
    if kind is Kind.DEVICE_CELLS:
        return format_device_cells(parse_device_cells(value))
    return value


def _entries(params: Mapping[str, Any]) -> list[tuple[int, str, dict[str, Any]]]:
    """The ``guests`` entries as (index, name or pattern, checked options), refusing malformed ones."""
    entries: list[tuple[int, str, dict[str, Any]]] = []
    for index, entry in enumerate(params.get("guests") or []):
        if isinstance(entry, str):
            check_entry("guests", index, entry)
            entries.append((index, entry, {}))
            continue
        if not isinstance(entry, Mapping):
            raise SpecError(f"guests[{index}] {entry!r} is not a guest name, a shell pattern or a dict with a name")
        pattern = entry.get("name")
        if pattern is None:
            raise SpecError(f"guests[{index}] has no name: a dict entry needs one (a guest name or a shell pattern)")
        if not isinstance(pattern, str):
            raise SpecError(f"guests[{index}].name {pattern!r} is not a guest name or a shell pattern")
        if not pattern:
            raise SpecError(f"guests[{index}].name is empty: give a guest name or a shell pattern")
        unknown = sorted(str(key) for key in entry if key not in ("name", *_ENTRY_OPTIONS))
        if unknown:
            raise SpecError(
                f"guests[{index}] ({pattern}): unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_ENTRY_OPTIONS))}"
            )
        # None is unset: the top-level value, or the default, applies (as for the top-level options).
        options = {
            key: _coerced(pattern, key, value) for key, value in entry.items() if key != "name" and value is not None
        }
        entries.append((index, pattern, options))
    return entries


def validate_run_options(params: Mapping[str, Any]) -> None:
    """Refuse, before anything is read or written, every module option that could only fail later.

    Covers what Ansible's own type checks leave open: ``name``, ``guests`` and ``exclude`` entries,
    the per-guest options' types and values, the raw sizes, ``shutdown_timeout``, the backup
    directory and ``lock_timeout``.  The guest is named when ``name`` gives it.

    The spec options too, as far as they need neither the host nor a guest's definition
    (``VnumaSpec.check_given``): each value against its limits, then the top-level options with each
    ``guests`` entry's over them, as the guests it selects get them, against the rules that tie options
    together, where the options given decide them whatever the guest's stored spec.  Such a refusal
    names the entry (``guests[0] (db*)``).
    """
    name = params.get("name")
    if name is not None:
        if not isinstance(name, str) or not name:
            raise SpecError("name is empty: give the name of a defined guest")
        if params.get("exclude"):
            raise SpecError("exclude leaves guests out of guests; it does not go with name")
    entries = _entries(params)
    for _index, pattern, values in entries:
        _check_values(pattern, values)
    check_entries("exclude", params.get("exclude") or [])
    top = {key: _coerced(name, key, params[key]) for key in _ENTRY_OPTIONS if params.get(key) is not None}
    _check_values(name, top)
    if name is not None:
        try:
            VnumaSpec.check_given(_spec_given(top))
        except SpecError as error:
            raise error.naming(name) from None
    for index, pattern, values in entries:
        _check_together({**top, **values}, f"guests[{index}] ({pattern})")
    if params.get("shutdown_timeout") is not None:
        check_seconds("shutdown_timeout", params["shutdown_timeout"], SHUTDOWN_TIMEOUT_LIMITS)
    parse_size(params.get("reserved_memory") or 0, what="reserved_memory")
    if params.get("backup"):
        check_backup_dir(params.get("backup_dir"))
    check_lock_timeout(params.get("lock_timeout", DEFAULT_LOCK_TIMEOUT))


def _request(name: str, values: Mapping[str, Any], defaults: Mapping[str, Any], merged_entries: bool) -> GuestRequest:
    """``name``'s request: the top-level options (``defaults``) with its entries' ``values`` over them.

    ``merged_entries``: several entries selected the guest, so their options are checked together here (one entry's
    were, with the top-level ones, by ``validate_run_options``), before anything is written.
    """
    # The top-level counts come raw (the argspec leaves them to Option.coerce): read as an entry's are.
    merged = {key: None if defaults.get(key) is None else _coerced(name, key, defaults[key]) for key in _ENTRY_OPTIONS}
    merged.update(values)
    hotplug, total = merged["hotplug_memory"], merged["total_memory"]
    try:
        hotplug_kib = None if hotplug is None else parse_size(hotplug, what="hotplug_memory")
        total_kib = None if total is None else parse_size(total, what="total_memory")
        if merged_entries:
            VnumaSpec.check_given(_spec_given(merged))
    except SpecError as error:
        raise error.naming(name) from None
    return GuestRequest(
        name=name,
        options={key: merged[key] for key in SPEC_OPTION_NAMES if merged[key] is not None},
        state=merged["state"] or "present",
        current_vcpus=merged["current_vcpus"],
        hotplug_memory_kib=hotplug_kib,
        total_memory_kib=total_kib,
        replan=bool(merged["replan"]),
        # For the whole call, not per entry: a move is undone for the guests it names.
        rerender=defaults.get("rerender") or "keep",
    )


def build_requests(
    params: Mapping[str, Any], defined: list[str], warnings: list[str] | None = None
) -> list[GuestRequest]:
    """One request per guest: ``name``, or what the ``guests`` entries select less ``exclude``.

    Selection follows ``_core.names``: an entry that is exactly a defined guest's name is that guest,
    anything else a shell pattern; with ``exact_names`` every entry is a name, and one that names no defined guest
    stays, so that the plan fails it as not defined.  Entries that select the same guest are merged; two that set one
    option to different values are refused, naming the guest and both entries.  A pattern that
    matches nothing, and an empty selection, are appended to ``warnings``.
    """
    notes = warnings if warnings is not None else []
    if params.get("name") is not None:
        return [_request(params["name"], {}, params, False)]
    excludes = params.get("exclude") or []
    check_entries("exclude", excludes)
    exact = bool(params.get("exact_names"))
    known = frozenset(defined)
    chosen: dict[str, dict[str, tuple[int, str, Any]]] = {}
    entry_count: dict[str, int] = {}
    matched_any = False
    for index, pattern, values in _entries(params):
        names = matching(pattern, defined, known, exact)
        if not names and is_pattern(pattern) and not exact:
            notes.append(f"guests[{index}] {pattern!r} matches no defined guest")
            continue
        matched_any = True
        # A plain name that is not defined stays: the plan reports it as not defined.
        for guest in names or [pattern]:
            if excluded(guest, excludes, known, exact):
                continue
            merged = chosen.setdefault(guest, {})
            entry_count[guest] = entry_count.get(guest, 0) + 1
            for key, value in values.items():
                earlier = merged.setdefault(key, (index, pattern, value))
                if _comparable(key, earlier[2]) != _comparable(key, value):
                    raise SpecError(
                        f"guests[{earlier[0]}] ({earlier[1]}) and guests[{index}] ({pattern}) set {key} "
                        f"differently: {earlier[2]!r} and {value!r}",
                        guest=guest,
                    )
    if not chosen:
        if not params.get("guests"):
            notes.append("no guest selected: guests is empty")
        elif matched_any:
            notes.append("no guest selected: exclude leaves out every guest that guests selects")
        else:
            notes.append("no guest selected: no entry of guests matches a defined guest")
    return [
        _request(guest, {key: item[2] for key, item in merged.items()}, params, entry_count[guest] > 1)
        for guest, merged in chosen.items()
    ]


@contextlib.contextmanager
def converging(
    params: Mapping[str, Any], check_mode: bool
) -> Iterator[tuple[Converger, list[GuestRequest], list[str]]]:
    """A run's ``Converger`` on its open connection, its requests, and what the selection warned about.

    The options are checked before anything is read.  A run that writes (not ``check_mode``) then takes the
    hypervisor's lock (``_run.lock``), before it connects, reads the host or lists the guests to select, and
    holds it to the end of the block: the guests are selected from what is defined once no other run can
    change it, and a lock timeout fails before anything is read.  ``run_domain`` converges with it; the fleet's
    plan-and-apply call (``_run/fleet.py``) takes the lock itself before its first read, plans here in check
    mode, and then applies the same plans.
    """
    validate_run_options(params)
    selection_warnings: list[str] = []
    with contextlib.ExitStack() as held:
        if not check_mode:
            held.enter_context(host_lock(params["uri"], float(params.get("lock_timeout", DEFAULT_LOCK_TIMEOUT))))
        host = held.enter_context(LibvirtHost.from_params(params))
        caps = params.get("host_capabilities")
        own_xml = None if caps else host.capabilities_xml()
        topology: HostTopology = parse_capabilities(read_host_capabilities(caps) if caps else own_xml)
        if own_xml is not None and not check_mode:
            # The migration hook plans with this host's topology (docs/migration.md): keep its cache current.
            refresh_if_installed(params["uri"], own_xml)
        backup_dir = params["backup_dir"] if params.get("backup") else None
        converger = Converger(
            host,
            topology,
            check_mode=check_mode,
            restart=params["restart"],
            force=params["force"],
            shutdown_timeout=params["shutdown_timeout"],
            backup_dir=backup_dir,
            capacity=params.get("capacity") or "fail",
            reserved_kib=parse_size(params.get("reserved_memory") or 0, what="reserved_memory"),
        )
        requests = build_requests(params, host.guest_names(), selection_warnings)
        yield converger, requests, selection_warnings


def run_domain(params: Mapping[str, Any], check_mode: bool, want_diff: bool) -> dict[str, Any]:
    """Converge the requested guests; the module's result dict.

    A run that writes holds the hypervisor's lock (``_run.lock``) from before its first read to its last
    write (``converging``); check mode writes nothing and takes no lock.  When guests failed, the
    ``BatchError`` raised carries the whole result in ``details`` (``changed``, and per guest what was
    written and the error).
    """
    with converging(params, check_mode) as (converger, requests, selection_warnings):
        try:
            results = converger.converge(requests)
        except BatchError as error:
            error.details = domain_result(
                params, error.results, want_diff, converger.capacity_report, selection_warnings
            )
            raise
    return domain_result(params, results, want_diff, converger.capacity_report, selection_warnings)


def domain_result(
    params: Mapping[str, Any],
    results: list[GuestResult],
    want_diff: bool,
    capacity: CapacityReport | None = None,
    selection_warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The module's result for ``results``: the guests, restarts, capacity report, warnings and diff."""
    # What the guests and exclude entries selected (a pattern matching nothing, no guest at all) comes first.
    warnings = [*selection_warnings, *(warning for item in results for warning in item.warnings)]
    result: dict[str, Any] = {
        "changed": any(item.changed for item in results),
        "guests": [item.as_dict() for item in results],
        "restart_required": any(item.restart_required for item in results),
        "restart_required_guests": [item.name for item in results if item.restart_required],
    }
    if capacity is not None:
        result["capacity"] = capacity.to_dict()
        # Shown by Ansible: what the report found that did not stop the call (with capacity: fail, the
        # problems among the other guests alone; with report, every problem).
        warnings.extend(f"capacity: {text}" for text in (*capacity.problems, *capacity.warnings))
    if warnings:
        result["warnings"] = warnings
    if params.get("name") and results:
        single = results[0]
        result.update(
            layout=single.as_dict()["layout"],
            changes=single.as_dict()["changes"],
            restarted=single.restarted,
            backup_file=single.backup_file,
            live=single.live,
            alignment=single.alignment,
            locality_before=single.locality_before,
            auto=single.auto,
        )
        if want_diff:
            result["diff"] = single.diff()
    elif want_diff:
        diffs = {item.name: item.diff() for item in results if item.changes}
        result["diff"] = {
            "before": {name: diff["before"] for name, diff in diffs.items()},
            "after": {name: diff["after"] for name, diff in diffs.items()},
        }
    return result
