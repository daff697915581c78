# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The vnuma_domain module's work, from its parameters to its result, without Ansible.

The module hands in its validated parameters and check/diff flags and gets back the result
dict; every refusal is a ``VnumaError`` for the module to turn into ``fail_json`` once.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._capabilities_xml import (
    parse_capabilities,
    read_host_capabilities,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._capacity import CapacityReport
from ansible_collections.vnuma.libvirt.plugins.module_utils._converge import Converger, GuestRequest, GuestResult
from ansible_collections.vnuma.libvirt.plugins.module_utils._errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtHost
from ansible_collections.vnuma.libvirt.plugins.module_utils._spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._units import parse_size

__all__ = ["SPEC_OPTIONS", "GUEST_OPTIONS", "run_domain", "read_host_capabilities"]

# Spec options under their user-facing names (memory, hugepages, max_memory...): the spec is the
# one list, shared by the module's top level and each entry of its guests list.
SPEC_OPTIONS = tuple(VnumaSpec().to_mapping())
# Per-guest options besides the spec.
GUEST_OPTIONS = ("state", "current_vcpus", "hotplug_memory")


_INTEGERS = ("cells", "memory_slots", "current_vcpus")
_BOOLEANS = {"yes": True, "true": True, "on": True, "1": True, "no": False, "false": False, "off": False, "0": False}


def _coerced(name: str, key: str, value: Any) -> Any:
    """Per-guest entries are raw: accept what templating yields (``"2"``, ``"yes"``) like the top level does."""
    if key in _INTEGERS and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if key == "cpuless_cells" and isinstance(value, str):
        if value.strip().lower() not in _BOOLEANS:
            raise SpecError(f"cpuless_cells {value!r} is not a boolean", guest=name)
        return _BOOLEANS[value.strip().lower()]
    return value


def _request(name: str, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> GuestRequest:
    merged = {key: defaults.get(key) for key in (*SPEC_OPTIONS, *GUEST_OPTIONS)}
    merged.update({key: _coerced(name, key, value) for key, value in values.items() if value is not None})
    hotplug = merged["hotplug_memory"]
    try:
        hotplug_kib = None if hotplug is None else parse_size(hotplug, what="hotplug_memory")
    except SpecError as error:
        raise error.naming(name) from None
    return GuestRequest(
        name=name,
        options={key: merged[key] for key in SPEC_OPTIONS if merged[key] is not None},
        state=merged["state"] or "present",
        current_vcpus=merged["current_vcpus"],
        hotplug_memory_kib=hotplug_kib,
    )


def build_requests(params: Mapping[str, Any], defined: list[str]) -> list[GuestRequest]:
    """One request per guest: ``name``, or the ``guests`` list (names, patterns, dicts) less ``exclude``."""
    excludes = params.get("exclude") or []
    if params.get("name"):
        return [_request(params["name"], {}, params)]
    requests: dict[str, GuestRequest] = {}
    for entry in params.get("guests") or []:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise SpecError(f"each entry of guests must be a name, a pattern or a dict with a name; got {entry!r}")
        unknown = sorted(set(entry) - {"name", *SPEC_OPTIONS, *GUEST_OPTIONS})
        if unknown:
            raise SpecError(f"guests entry {entry['name']!r}: unknown option(s) {', '.join(unknown)}")
        pattern = entry["name"]
        names = [name for name in defined if fnmatch.fnmatchcase(name, pattern)]
        if not names and not any(char in pattern for char in "*?["):
            names = [pattern]  # a plain name that does not exist: reported as such when planned
        for name in names:
            if any(fnmatch.fnmatchcase(name, pattern_) for pattern_ in excludes):
                continue
            requests[name] = _request(name, entry, params)
    return list(requests.values())


def run_domain(params: Mapping[str, Any], check_mode: bool, want_diff: bool) -> dict[str, Any]:
    """Converge the requested guests; the module's result dict."""
    with LibvirtHost(params["uri"], params["connect_timeout"]) as host:
        caps = params.get("host_capabilities")
        topology: HostTopology = parse_capabilities(read_host_capabilities(caps) if caps else host.capabilities_xml())
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
        requests = build_requests(params, host.guest_names())
        results = converger.converge(requests)
    return _result(params, results, want_diff, converger.capacity_report)


def _result(
    params: Mapping[str, Any], results: list[GuestResult], want_diff: bool, capacity: CapacityReport | None = None
) -> dict[str, Any]:
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
        warnings = [f"capacity: {text}" for text in (*capacity.problems, *capacity.warnings)]
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
