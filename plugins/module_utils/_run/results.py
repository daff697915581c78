# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""What a run tells about each guest: ``GuestResult``, and ``BatchError`` when some of them failed.

``error_result`` is what every module hands to ``fail_json`` for a ``VnumaError``: one shape for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import Change, changes_as_diff

__all__ = ["BatchError", "GuestResult", "error_result"]


@dataclass
class GuestResult:
    """What happened (or, in check mode, would happen) to one guest."""

    name: str
    changed: bool = False
    changes: list[Change] = field(default_factory=list)
    layout: Layout | None = None
    running: bool = False
    restart_required: bool = False
    restarted: bool = False
    backup_file: str | None = None
    live: list[str] = field(default_factory=list)
    # The planned definition's alignment ({aligned, locality, cells}) and the current one's locality.
    alignment: dict[str, Any] | None = None
    locality_before: float | None = None
    # What this run wrote for the guest, in order ("definition", "shutdown requested", ...): also when
    # it then failed.  Empty in check mode.
    written: list[str] = field(default_factory=list)
    # Why the guest failed, or None; a failed guest never stops the others.
    error: VnumaError | None = None
    warnings: list[str] = field(default_factory=list)
    # mode auto: the host nodes chosen or kept, why, and what is left on each node (AutoChoice.to_dict).
    auto: dict[str, Any] | None = None
    # The inactive definition as this run last read it: the read-back after its define, else the plan's read.
    # Not in the result: a caller that reports the guest after the run reads it from here, not from libvirt.
    definition: str | None = None

    def wrote(self, what: str) -> None:
        self.written.append(what)
        self.changed = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "changed": self.changed,
            "written": list(self.written),
            "error": None if self.error is None else str(self.error),
            "changes": [str(change) for change in self.changes],
            "layout": None if self.layout is None else self.layout.to_dict(),
            "running": self.running,
            "restart_required": self.restart_required,
            "restarted": self.restarted,
            "backup_file": self.backup_file,
            "live": list(self.live),
            "alignment": self.alignment,
            "locality_before": self.locality_before,
            "auto": self.auto,
        }

    def diff(self) -> dict[str, dict[str, object]]:
        return changes_as_diff(self.changes)


class BatchError(VnumaError):
    """Some guests of a call failed; ``results`` holds every guest's result, what was written included."""

    def __init__(self, results: Sequence[GuestResult]) -> None:
        failed = [result for result in results if result.error is not None]
        written = [f"guest {result.name}: {', '.join(result.written)}" for result in results if result.written]
        if len(failed) == 1 and failed[0].error is not None:
            message, guest = failed[0].error.message, failed[0].error.guest
        else:
            message, guest = (
                f"{len(failed)} of {len(results)} guests failed: " + "; ".join(str(result.error) for result in failed),
                None,
            )
        if written:
            message += f" (written before the failure: {'; '.join(written)})"
        super().__init__(message, guest=guest)
        self.results = list(results)


def error_result(error: VnumaError) -> dict[str, Any]:
    """What a module hands to ``fail_json`` for ``error``: ``failed``, ``msg``, ``guest`` (null when none is
    known), ``changed`` and the error's ``details``.

    A capacity refusal also carries the report (which nodes, which guests, how much); a run where guests
    failed, every guest's result with what was written; a failure after a write, ``changed`` true and
    what was written.  Details the error carries win over the report made here.  ``warnings`` stay in
    the dict, for the module to hand to ``warn()``.
    """
    extra: dict[str, Any] = {"capacity": error.report.to_dict()} if isinstance(error, CapacityError) else {}
    extra.update(error.details)
    extra.setdefault("changed", False)
    return {"failed": True, "msg": str(error), "guest": error.guest, **extra}
