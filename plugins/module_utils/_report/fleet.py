# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""One hypervisor's ``vnuma_fleet_result``: what the ``vnuma_fleet`` role reports for it.

The role registers the results of its steps (vnuma_info before and after, the plan, the apply, the
restart batches, verification, failed guests, where each guest's spec came from) and hands them
here in one mapping; this builds the report the role writes as JSON and HTML.  It replaces a long
Jinja ``set_fact``: the rules (which result wins for a guest, the host's status, the counts) are
the ones that expression had, key for key.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import (
    expand_fleet_result,
    report_name_problem,
    whole_number,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import MAX_MEMORY_KIB, kind, shown

__all__ = [
    "FLEET_RESULT_INPUTS",
    "MODULE_RESULT_INPUTS",
    "FLEET_VERIFY_INPUTS",
    "REGISTERED_KEYS",
    "SUMMARY_KEYS",
    "fleet_failure",
    "fleet_result",
    "fleet_summary",
    "fleet_verify",
    "RESTART_POLICIES",
    "registered_parts",
    "restart_batches",
    "restart_record",
    "restart_waiting",
    "size_text",
]

# Every key the role passes, so that a missing or misspelled one fails loudly instead of silently
# giving an empty report.
FLEET_RESULT_INPUTS = (
    "host",
    "uri",
    "check",
    "test_driver",
    "host_info",
    "before",
    "requests",
    "sources",
    "plan",
    "applied",
    "restarts",
    "after",
    "verify",
    "failed_guests",
    "failure",
    "held_back",
    "restart_required",
    "selection",
    "spec",
    "use_stored_spec",
    "restart_policy",
    "restart_batch",
    "report_dir",
    "generated",
)


FLEET_VERIFY_INPUTS = ("test_driver", "plan", "todo", "applied", "after", "restarts", "locality_tolerance")
# The inputs that are what vnuma_info and vnuma_domain returned, as registered: plain data, never a template.
MODULE_RESULT_INPUTS = ("host_info", "before", "requests", "sources", "plan", "applied", "after")
# ``registered``, which the role passes instead of the parts of its module results (``registered_parts``): what
# preflight's fleet call (compact), the apply call of plan and apply apart, and verify's re-read registered.
REGISTERED_KEYS = ("read", "applied", "reread")
# The inputs ``registered`` stands for.
_PARTS = ("host_info", "before", "requests", "sources", "plan", "applied", "after")

_VERIFY_NOTES = {
    True: (
        "the test driver forgets between tasks: checked against the apply call, which re-read every definition it wrote"
    ),
    False: "re-read with vnuma_info: every definition, and what runs for the restarted guests",
}


def _skipped(result: Any) -> bool:
    # Ansible's "is skipped" on a registered result.
    return isinstance(result, Mapping) and bool(result.get("skipped", False))


def registered_parts(registered: Any) -> dict[str, Any]:
    """What the role's steps read from its registered module results (``REGISTERED_KEYS``), by name.

    ``host_info``, ``before``, ``requests``, ``sources`` and ``plan`` are the fleet call's (its compact result
    expanded, ``_core.fleet.expand_fleet_result``).  ``apply_call`` is what the apply step's call returned: the
    fleet call's ``applied`` when it has one (it applied, or found nothing to write: skipped), else the apply
    task's own registered result (plan and apply apart).  ``applied`` is that result, or the plan when the call
    was skipped for want of anything to write.  ``after`` is how verify reads the guests: its own re-read when it
    made one (after restarts), else the read the calls made after their writes (the apply call's, or the fleet
    call's when the plan changed nothing, which may be ``before`` itself; ``known_after``, None when neither read),
    else what verify registered.  ``roles/vnuma_fleet/vars/main.yml`` says the same of ``apply_call``, ``applied``
    and whether ``known_after`` is there for the tasks' conditions (tests/unit/test_role_vars.py holds them equal).
    """
    if not isinstance(registered, Mapping) or set(registered) != set(REGISTERED_KEYS):
        raise SpecError(f"registered must be a dict with the keys {', '.join(REGISTERED_KEYS)}")
    read = expand_fleet_result(_mapping(registered["read"]))
    plan = read.get("plan", {})
    before = read.get("before", {})
    apply_call = (read["applied"] or {}) if "applied" in read else registered["applied"]
    if isinstance(apply_call, Mapping) and "after" in apply_call:
        known_after = apply_call["after"]
    else:
        known_after = before if read.get("after_is_before", False) else read.get("after")
    reread = registered["reread"]
    return {
        "host_info": read.get("host_info", {}),
        "before": before,
        "requests": read.get("requests", []),
        "sources": read.get("sources", {}),
        "plan": plan,
        "apply_call": apply_call,
        "applied": plan if _skipped(apply_call) else apply_call,
        "known_after": known_after,
        "after": known_after if _skipped(reread) and known_after is not None else reread,
    }


def _with_registered(inputs: Any, keys: tuple[str, ...], report: bool) -> Any:
    """``inputs`` with the parts of ``registered`` in its place (``registered_parts``); any other input as it is.

    ``report``: for ``fleet_result``, where a skipped apply call is left out (``applied`` empty) off the test
    driver: it stands for the plan, whose guests changed nothing and failed nowhere, and the rows are the same.
    """
    if not isinstance(inputs, Mapping) or "registered" not in inputs:
        return inputs
    parts = registered_parts(inputs["registered"])
    given = {key: value for key, value in inputs.items() if key != "registered"}
    given.update({key: parts[key] for key in _PARTS if key in keys})
    if report and _skipped(parts["apply_call"]) and not inputs.get("test_driver"):
        given["applied"] = {}
    return given


def _require(inputs: Any, keys: tuple[str, ...]) -> Mapping[str, Any]:
    """The role's inputs as a mapping with every key, or a SpecError naming what is wrong."""
    if not isinstance(inputs, Mapping):
        raise SpecError(f"the input must be a dict of the role's results, got {type(inputs).__name__}")
    missing = [key for key in keys if key not in inputs]
    if missing:
        raise SpecError(f"the input lacks {', '.join(missing)} (it needs {', '.join(keys)})")
    return inputs


def _mapping(value: Any) -> Mapping[str, Any]:
    # A registered result of a skipped or never-run task may be anything falsy; treat it as empty.
    return value if isinstance(value, Mapping) else {}


def _by_name(entries: Any) -> dict[str, Any]:
    # Later entries win, as Jinja's dict(names | zip(entries)) did.
    return {entry["name"]: entry for entry in entries or []}


def _flatten(values: Any) -> list[Any]:
    # Jinja's flatten (no depth): every nested list opened.
    flat: list[Any] = []
    for value in values:
        if isinstance(value, (list, tuple)):
            flat.extend(_flatten(value))
        else:
            flat.append(value)
    return flat


def _nodes_before(layout: Mapping[str, Any]) -> list[str]:
    """A guest's host nodes before, as vnuma_info read its layout: ``before.host_nodes`` of its row.

    Per cell of a NUMA guest, the nodes its memory is bound to (``unbound`` when it is not).  A flat guest has no
    cell: one entry, the nodes its definition binds its memory to and pins its vCPUs to, or none when it does neither
    (its memory and vCPUs may go to any node).
    """
    cells = layout.get("cells") or []
    if layout.get("numa", False):
        return [cell.get("memory_nodes") or "unbound" for cell in cells]
    nodes: set[int] = set()
    for cell in cells:
        if cell.get("memory_nodes"):
            nodes.update(parse_cpuset(cell["memory_nodes"], "a cell's memory_nodes", allow_empty=True))
        if layout.get("pinning", False) and cell.get("cpu_nodes"):
            nodes.update(parse_cpuset(cell["cpu_nodes"], "a cell's cpu_nodes", allow_empty=True))
    return [format_cpuset(nodes)] if nodes else []


def _row(guest: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
    """One guest's row: its state before, the plan, what was applied, what was read back after."""
    name = guest["name"]
    plan = ctx["planned_by"].get(name, {})
    done = ctx["applied_by"].get(name, {})
    failed = ctx["failed_by"].get(name)
    now = ctx["after_by"].get(name, {})
    layout = plan.get("layout")
    cells_before = guest["layout"]["cells"] if guest["layout"].get("numa", False) else []
    result = done if done else plan
    source = _mapping(ctx["sources"].get(name))
    if now:
        after: dict[str, Any] | None = {
            "aligned": now["defined_alignment"]["aligned"],
            "locality": now["defined_alignment"]["locality"],
            "running_aligned": now["alignment"]["aligned"] if now["running"] else None,
            "running_locality": now["alignment"]["locality"] if now["running"] else None,
            "pending": now["pending"],
            "state": now["state"],
            "read_by": "vnuma_info",
        }
    elif ctx["test_driver"] and done and ctx["verify"] and failed is None:
        # The test driver forgets between tasks: the apply's own read-back is all there is.
        after = {
            "aligned": done["alignment"]["aligned"],
            "locality": done["alignment"]["locality"],
            "running_aligned": None,
            "running_locality": None,
            "pending": None,
            "state": None,
            "read_by": "apply",
        }
    else:
        after = None
    plan_alignment = _mapping(plan.get("alignment"))
    return {
        "name": name,
        "state": guest["state"],
        "running": guest["running"],
        "autostart": guest["autostart"],
        "spec_source": source.get("spec", "vnuma_fleet_spec"),
        "override": source.get("override", False),
        "request": ctx["requests_by"].get(name, {}),
        "before": {
            "cells": len(cells_before),
            "vcpus": guest["vcpus"],
            "memory_kib": guest["memory_kib"],
            "host_nodes": _nodes_before(guest["layout"]),
            "aligned": guest["alignment"]["aligned"],
            "locality": guest["alignment"]["locality"],
        },
        "planned": None
        if layout is None
        else {
            "cells": len(layout["cells"]),
            "vcpus": layout["vcpus"],
            "memory_kib": layout["memory_kib"],
            "host_nodes": [cell["host_nodes"] for cell in layout["cells"]],
            "aligned": plan_alignment.get("aligned"),
            "locality": plan_alignment.get("locality"),
            "layout": layout,
            # mode auto: the nodes chosen or kept and why (only then, so other reports keep their shape).
            **({"auto": plan["auto"]} if plan.get("auto") else {}),
        },
        "after": after,
        "to_change": plan.get("changed", False),
        "changed": done.get("changed", False),
        "written": done.get("written", []),
        "error": failed["error"] if failed is not None else None,
        "failed_step": failed["step"] if failed is not None else None,
        "changes": result.get("changes", []),
        # The role's list is the one rule (restart_waiting in a real run; in check mode, what the real run would leave
        # waiting): the row, the count and vnuma_fleet_restart_required always agree.
        "restart_required": name in ctx["restart_required"],
        "restarted": name in ctx["restarted"],
    }


def _status(inputs: Mapping[str, Any], rows: list[dict[str, Any]]) -> str:
    if inputs["failure"] is not None:
        return "failed"
    if inputs["held_back"] is not None:
        return "held back"
    if inputs["failed_guests"]:
        return "guests failed"
    if not rows:
        return "no guests"
    if inputs["check"]:
        return "planned"
    return "converted" if any(row["changed"] for row in rows) else "unchanged"


# The role's steps after its apply step: the guests that did not fail had gone on when one of these failed.
_STEPS_AFTER_APPLY = ("restart", "verify", "migration hook")


def _others_went_on(failure: Any, held_back: Any, failed: int, selected: int) -> bool:
    """Whether the guests that did not fail went on through the role's steps: there are some, no step before the
    restarts failed, and no gate held them back.  A failure before or at the apply step changed nothing more."""
    if failed >= selected or held_back is not None:
        return False
    return failure is None or _mapping(failure).get("step") in _STEPS_AFTER_APPLY


def _drawing_after(host: Any, check: bool, rows: list[dict[str, Any]], failure: Any, held_back: Any) -> dict[str, Any]:
    """What the HTML report's diagram after draws: the guests drawn with their planned layout, its title and a note.

    In check mode, every guest with a plan: nothing was changed, the diagram shows the plan, unless the real run
    would change nothing either (a step failed, or the apply's gate would hold the hypervisor back).  Otherwise only
    the guests changed here, as applied: those whose definition was written (``changed``, failed at apply after a
    write included) and those restarted into a definition written before; the others as they were read before.  No
    guest when none was: no diagram, and the note says why.
    """
    if check and failure is None and held_back is None:
        planned = [row["name"] for row in rows if row["planned"] and row["error"] is None]
        if not planned:
            return {"guests": [], "title": None, "note": "No guest was planned (check mode: nothing was changed)."}
        return {
            "guests": planned,
            "title": f"{host} planned",
            "note": "Every guest with its planned layout in place (check mode: nothing was changed); a running guest "
            "would run it from its next boot, a guest whose plan failed is drawn as before.",
        }
    applied = [] if check else [row["name"] for row in rows if (row["changed"] or row["restarted"]) and row["planned"]]
    if applied:
        return {
            "guests": applied,
            "title": f"{host} after: as applied",
            "note": f"The {len(applied)} of {len(rows)} guests whose definition was written or that were restarted "
            "into it, with their planned layout in place, the others as before; a running guest with a restart "
            "pending runs its new layout from its next boot.",
        }
    if failure is not None:
        why = f"step {_mapping(failure).get('step')} failed"
    elif held_back is not None:
        why = "held back"
    elif not rows:
        why = "no guest selected"
    elif all(row["error"] is not None for row in rows):
        why = "every guest failed"
    else:
        why = "no guest needed a change"
    return {"guests": [], "title": None, "note": f"Nothing was changed ({why}): the host is as in the diagram before."}


def _verified(verify: Any) -> Any:
    """The report's ``verify``: the verification (``fleet_verify``), or None when nothing was verified.

    Nothing was verified when verify did not run (check mode, a step failed before it, a gate held the hypervisor
    back) and when it found no guest to check and no problem: the only guests to change failed, say.  Such a
    verification is no proof of anything, and the reports must not say "ok" for it.
    """
    if not verify:
        return None
    if isinstance(verify, Mapping) and not verify.get("checked") and not verify.get("problems"):
        return None
    return verify


def fleet_result(inputs: Any) -> dict[str, Any]:
    """``vnuma_fleet_result`` from the role's registered results (keys: ``FLEET_RESULT_INPUTS``)."""
    inputs = _require(_with_registered(inputs, FLEET_RESULT_INPUTS, True), FLEET_RESULT_INPUTS)
    before = _mapping(inputs["before"])
    plan = _mapping(inputs["plan"])
    after_result = inputs["after"]
    after = [] if inputs["test_driver"] or not isinstance(after_result, Mapping) else after_result.get("guests", [])
    restarts = inputs["restarts"] or []
    restarted = _flatten([batch["restarted"] for batch in restarts])
    failed_guests = inputs["failed_guests"] or []
    ctx = {
        "planned_by": _by_name(plan.get("guests", [])),
        "applied_by": _by_name(_mapping(inputs["applied"]).get("guests", [])),
        "after_by": _by_name(after),
        "requests_by": _by_name(inputs["requests"]),
        "failed_by": _by_name(failed_guests),
        "sources": _mapping(inputs["sources"]),
        "test_driver": inputs["test_driver"],
        "verify": inputs["verify"],
        "check": inputs["check"],
        "restart_required": inputs["restart_required"] or [],
        "restarted": restarted,
    }
    rows = [_row(guest, ctx) for guest in before.get("guests", [])]
    failure = inputs["failure"]
    if "capacity" in plan:
        capacity = plan["capacity"]
    else:
        capacity = _mapping(failure).get("capacity") if failure is not None else None
    host_info = _mapping(inputs["host_info"])
    host = inputs["host"]
    report_dir = inputs["report_dir"]
    # No report for an inventory name that cannot name its files (preflight refused it: report_name_problem).
    report = (
        None
        if report_name_problem(host) is not None
        else {"json": f"{report_dir}/{host}.json", "html": f"{report_dir}/{host}.html"}
    )
    return {
        "host": host,
        "uri": inputs["uri"],
        "mode": "check" if inputs["check"] else "apply",
        "status": _status(inputs, rows),
        "failure": failure,
        "held_back": inputs["held_back"],
        "failed_guests": failed_guests,
        "others_went_on": _others_went_on(failure, inputs["held_back"], len(failed_guests), len(rows)),
        "generated": inputs["generated"],
        "topology": host_info.get("host"),
        "selection": inputs["selection"],
        "spec": inputs["spec"],
        "use_stored_spec": inputs["use_stored_spec"],
        "guests": rows,
        "counts": {
            "selected": len(rows),
            "to_change": sum(1 for row in rows if row["to_change"]),
            "changed": sum(1 for row in rows if row["changed"]),
            "aligned_before": sum(1 for row in rows if row["before"]["aligned"]),
            "aligned_planned": sum(1 for row in rows if row["planned"] and row["planned"]["aligned"]),
            "restart_required": len(ctx["restart_required"]),
            "restarted": len(restarted),
            "failed": len(failed_guests),
        },
        "capacity": capacity,
        "restart": {"policy": inputs["restart_policy"], "batch": int(inputs["restart_batch"]), "batches": restarts},
        "restart_required": inputs["restart_required"],
        "verify": _verified(inputs["verify"]),
        "diagram_before": before["diagram"] if "diagram" in before else host_info.get("diagram"),
        "diagram_after": after_result.get("diagram") if isinstance(after_result, Mapping) else None,
        "drawing_after": _drawing_after(host, bool(inputs["check"]), rows, failure, inputs["held_back"]),
        "report": report,
    }


def _compare(
    name: str, view: str, alignment: Mapping[str, Any], planned: Mapping[str, Any], tolerance: float
) -> list[str]:
    """The ways one view of a guest (its definition, or what runs) differs from its plan."""
    problems = []
    if alignment["aligned"] != planned["aligned"]:
        problems.append(
            f"guest {name}: the {view} is {'' if alignment['aligned'] else 'not '}aligned, "
            f"the plan {'is' if planned['aligned'] else 'is not'}"
        )
    if abs(alignment["locality"] - planned["locality"]) > tolerance:
        problems.append(
            f"guest {name}: the {view} has locality {alignment['locality']}, the plan {planned['locality']}"
        )
    return problems


def fleet_verify(inputs: Any) -> dict[str, Any]:
    """Every converted guest against its plan (keys: ``FLEET_VERIFY_INPUTS``): by, note, checked, problems, ok.

    A guest is checked when its plan has a layout and it is still to do (its plan did not fail).  Its
    definition must have the alignment and (within ``locality_tolerance``) the locality its plan
    promised; a guest restarted here must also run, run its definition, and have them while running.
    On the test driver the apply call's own read-back stands in for a fresh read.
    """
    inputs = _require(_with_registered(inputs, FLEET_VERIFY_INPUTS, False), FLEET_VERIFY_INPUTS)
    test_driver = bool(inputs["test_driver"])
    restarted = _flatten([batch["restarted"] for batch in inputs["restarts"] or []])
    source = _mapping(inputs["applied"] if test_driver else inputs["after"]).get("guests", [])
    by_name = _by_name(source)
    todo = [entry["name"] for entry in inputs["todo"] or []]
    tolerance = inputs["locality_tolerance"]
    problems: list[str] = []
    checked: list[str] = []
    for planned in _mapping(inputs["plan"]).get("guests", []):
        name = planned["name"]
        if not planned.get("layout") or name not in todo:
            continue
        found = by_name.get(name)
        views: list[tuple[str, Mapping[str, Any]]] = []
        if found is None:
            problems.append(f"guest {name}: not found when re-read")
        elif test_driver:
            views.append(("definition", found["alignment"]))
        else:
            views.append(("definition", found["defined_alignment"]))
            if name in restarted:
                views.append(("running guest", found["alignment"]))
                if not found["running"]:
                    problems.append(f"guest {name}: restarted, but it is {found['state']}")
                elif found["pending"]:
                    changes = ", ".join(found["pending_changes"])
                    problems.append(f"guest {name}: restarted, but it does not run its definition: {changes}")
        if found is not None:
            checked.append(name)
        for view, alignment in views:
            problems.extend(_compare(name, view, alignment, planned["alignment"], tolerance))
    return {
        "by": "apply" if test_driver else "vnuma_info",
        "note": _VERIFY_NOTES[test_driver],
        "checked": checked,
        "problems": problems,
        "ok": not problems,
    }


_UNREACHED = {
    "step": "before the role",
    "task": "",
    "guest": None,
    "capacity": None,
    "msg": "unreachable, or failed before vnuma_fleet recorded a result",
}
_SUMMED = ("selected", "to_change", "changed", "restart_required", "restarted", "failed_guests")
# The keys of a vnuma_fleet_result that its summary row reads: a caller can hand over these alone, without the
# guests' rows and diagrams (a few hundred guests' result costs Ansible to template).
SUMMARY_KEYS = ("host", "uri", "mode", "status", "counts", "verify", "failed_guests", "failure", "held_back")


def _summary_row(name: str, result: Mapping[str, Any], uri: Any) -> dict[str, Any]:
    """One hypervisor's line of the fleet summary; a host without a result of its own failed before the role."""
    if result and result.get("host", "") == name:
        counts = result["counts"]
        return {
            "host": name,
            "uri": result["uri"],
            "mode": result["mode"],
            "status": result["status"],
            "selected": counts["selected"],
            "to_change": counts["to_change"],
            "changed": counts["changed"],
            "aligned_before": counts["aligned_before"],
            "aligned_planned": counts["aligned_planned"],
            "restart_required": counts["restart_required"],
            "restarted": counts["restarted"],
            "verified": result["verify"]["ok"] if result["verify"] else None,
            "failed_guests": counts.get("failed", 0),
            "failed_guest_names": [guest["name"] for guest in result.get("failed_guests") or []],
            "failure": result["failure"],
            "held_back": result["held_back"],
            # Preflight refused an inventory name that cannot name its reports: none was written.
            "report": None
            if report_name_problem(name) is not None
            else {"json": f"{name}.json", "html": f"{name}.html"},
        }
    return {
        "host": name,
        "uri": uri,
        "mode": None,
        "status": "failed",
        "selected": 0,
        "to_change": 0,
        "changed": 0,
        "aligned_before": 0,
        "aligned_planned": 0,
        "restart_required": 0,
        "restarted": 0,
        "verified": None,
        "failed_guests": 0,
        "failed_guest_names": [],
        "failure": dict(_UNREACHED),
        "held_back": None,
        "report": None,
    }


def fleet_summary(hosts: Any, generated: Any) -> dict[str, Any]:
    """The fleet summary: one line per host of the play, in play order, and the totals.

    ``hosts`` is a list of ``{"host": name, "result": its vnuma_fleet_result or {}, "uri": its
    vnuma_fleet_uri or None}``.
    """
    if not isinstance(hosts, (list, tuple)):
        raise SpecError(f"the input must be the list of the play's hosts, got {type(hosts).__name__}")
    rows = [_summary_row(entry["host"], _mapping(entry.get("result")), entry.get("uri")) for entry in hosts]
    totals: dict[str, Any] = {
        "hosts": len(rows),
        "failed": sum(1 for row in rows if row["status"] == "failed"),
        "held_back": sum(1 for row in rows if row["status"] == "held back"),
    }
    totals.update({key: sum(row[key] for row in rows) for key in _SUMMED})
    return {"generated": generated, "hosts": rows, "totals": totals}


def fleet_failure(result: Any, report_written: Any) -> str | None:
    """Why the role fails this hypervisor at its very end, in one line, or None when it does not.

    A step that failed, or a gate that held the hypervisor back, and the guests that failed alone, from its
    ``vnuma_fleet_result``; then where its report is, or that none was written (``report_written`` false, or no
    report for the inventory name).  "the others went on" only when they did: there are others, and neither a
    step before the restarts nor a gate stopped them.
    """
    result = _mapping(result)
    if not result or not isinstance(report_written, bool):
        raise SpecError("the input must be a vnuma_fleet_result and report_written true or false")
    parts: list[str] = []
    failure = result.get("failure")
    if failure is not None:
        parts.append(f"step {failure['step']} failed: {failure['msg']}")
    elif result.get("held_back") is not None:
        parts.append(str(result["held_back"]))
    failed_guests = result.get("failed_guests") or []
    if failed_guests:
        names = ", ".join(guest["name"] for guest in failed_guests)
        errors = "; ".join(guest["error"] for guest in failed_guests)
        selected = len(result.get("guests") or [])
        went_on = _others_went_on(failure, result.get("held_back"), len(failed_guests), selected)
        parts.append(
            f"{len(failed_guests)} of {selected} guests failed ({names}){', the others went on' if went_on else ''}: "
            f"{errors}"
        )
    if not parts:
        return None
    report = result.get("report")
    where = f" (report: {report['html']})" if report_written and report else " (no report written)"
    return f"{result['host']}: {'; '.join(parts)}{where}"


def restart_record(number: Any, guests: Any, result: Any, finished: Any) -> dict[str, Any]:
    """The report's record of one restart batch: its number (from 1), its guests, the guests that
    vnuma_domain restarted and those that still need a restart (from the batch call's ``result``), and
    when it finished."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise SpecError(f"the batch number must be an integer from 1, got {number!r}")
    if not isinstance(guests, Sequence) or isinstance(guests, str) or not all(isinstance(name, str) for name in guests):
        raise SpecError("the batch's guests must be a list of guest names")
    result = _mapping(result)
    entries = result.get("guests")
    if not isinstance(entries, Sequence) or not all(isinstance(entry, Mapping) for entry in entries):
        raise SpecError("the batch's result must be what vnuma_domain returned, with its guests")
    return {
        "batch": number,
        "guests": list(guests),
        "restarted": [str(entry["name"]) for entry in entries if entry.get("restarted")],
        "restart_required": list(result.get("restart_required_guests") or []),
        "finished": str(finished),
    }


def restart_waiting(result: Any, failed_guests: Any, held_back: bool = False) -> list[str]:
    """The guests whose new layout waits for their next boot after the apply step: ``vnuma_fleet_restart_required``.

    ``result`` is what the apply step's call returned (the plan when it wrote nothing): its ``restart_required_guests``,
    vnuma_domain's list of the guests that run (or resume) another layout than their definition.  A guest that failed
    at apply (``failed_guests``, the role's record of them: ``name``, ``written``) stays in when its definition was
    written before it failed: it runs its old layout until its next boot, like the others.  One that failed before its
    definition was written is left out, since this run changed nothing it could boot into.  The role does not restart
    a guest that failed (``restart_batches`` leaves the failed guests out), but it lists it here, and the report counts
    it, so that nobody takes its old layout for the new one.

    ``held_back``: in check mode, a step failed or the apply's gate would hold the hypervisor back, so the real run
    would write nothing and leave no guest waiting.
    """
    if not isinstance(held_back, bool):
        raise SpecError("held_back must be true or false")
    if held_back:
        return []
    result = _mapping(result)
    names = result.get("restart_required_guests") or []
    if not isinstance(names, Sequence) or isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise SpecError("the result's restart_required_guests must be a list of guest names")
    unwritten = set()
    for entry in _failed_records(failed_guests):
        written = entry.get("written") or []
        if not any(str(what).startswith("definition") for what in written):
            unwritten.add(entry["name"])
    return [name for name in names if name not in unwritten]


def _failed_records(failed_guests: Any) -> list[Mapping[str, Any]]:
    """The role's records of its failed guests (``_core.fleet.guest_failures``), each with its name, or a SpecError."""
    if not isinstance(failed_guests, Sequence) or isinstance(failed_guests, str):
        raise SpecError("failed_guests must be a list of the failed guests' records")
    for entry in failed_guests:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise SpecError("each failed guest must be a dict with its name and what was written for it")
    return list(failed_guests)


# vnuma_fleet_restart: ``never`` lists the guests that wait for a restart, ``if_needed`` restarts them in batches.
RESTART_POLICIES = ("never", "if_needed")


def restart_batches(
    waiting: Any, failed_guests: Any, policy: Any, size: Any, held_back: Any = False
) -> list[list[str]]:
    """The restart step's batches of guest names, each one ``vnuma_domain`` call that restarts its guests together.

    ``waiting`` is the list of the guests that wait for a restart (``restart_waiting``); they are restarted in its
    order, ``size`` at a time (vnuma_fleet_restart_batch, read as preflight checks it; the last batch may be smaller).
    A guest that failed (``failed_guests``) is never restarted, although it stays listed as waiting when it may run
    its old layout: it is left out of the batches (docs/fleet.md, Guests that fail).  No batch with ``policy``
    ``never``, nor when the restarts' gate held the hypervisor back (``held_back``).
    """
    if policy not in RESTART_POLICIES:
        raise SpecError(f"the restart policy must be one of {', '.join(RESTART_POLICIES)}, got {shown(policy)}")
    if not isinstance(held_back, bool):
        raise SpecError("held_back must be true or false")
    if not isinstance(waiting, Sequence) or isinstance(waiting, str) or not all(isinstance(n, str) for n in waiting):
        raise SpecError("the guests that wait for a restart must be a list of guest names")
    failed = {entry["name"] for entry in _failed_records(failed_guests)}
    count = whole_number(size)
    if not count >= 1:
        raise SpecError(f"vnuma_fleet_restart_batch must be at least 1 (got {shown(size)})")
    if policy != "if_needed" or held_back:
        return []
    names = [name for name in waiting if name not in failed]
    step = int(count)
    return [names[start : start + step] for start in range(0, len(names), step)]


def size_text(kib: Any) -> str:
    """A size in KiB as the role's HTML reports show it: ``1 GiB``, ``1.5 GiB``, ``2 TiB``, ``512 MiB``, ``-4 GiB``.

    The one rounded formatter, ``_report/diagram.py:short_size``, as the host diagram beside it shows sizes; a
    negative size (a node short of memory after the plan) with its sign.
    """
    # Here, not at the top: the role's other filters import this file in every task that calls one, and the diagram
    # (with the placement model) is for the report page alone.
    from ansible_collections.vnuma.libvirt.plugins.module_utils._report.diagram import short_size

    if isinstance(kib, bool) or not isinstance(kib, int):
        raise SpecError(f"a size must be a whole number of KiB, got {kind(kib)} {shown(kib)}")
    if abs(kib) > MAX_MEMORY_KIB:
        raise SpecError(f"a size of {shown(kib)} KiB is beyond 4 PiB, all a 52-bit physical address space holds")
    return f"-{short_size(-kib)}" if kib < 0 else short_size(kib)
