# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Converge guests on one hypervisor to their vNUMA layouts: plan every guest, then apply, in phases.

Plan -> compare -> apply, as models.  The phases, each in its own module of this package:

1. plan (``plan.py``): read every definition once, plan each requested guest (``guest.py``), and
   check the host's capacity across all its guests (``capacity.py``).  libvirt is called only for
   guests that differ, and only after every guest of the call has planned without error and the
   capacity check passed, so a refused request changes nothing.
2. define (``apply.py``), guest by guest: read the definition and the running state again and plan
   it anew when another client changed either, write a backup when asked (``backup.py``), define, read
   back and compare.
3. restart (``restart.py``): the guests that need it, as one batch: all shut down together against
   one deadline, then all that went down started.
4. live (``live.py``): re-pinning and hot-plug, guest by guest.

A guest that fails at any step keeps its error in its result (``results.py``) and drops out of the
later steps; the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._hypervisor import HostConnection
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.apply import define_and_verify, describe, fresh
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.backup import write_backup
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest, Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.live import live_changes
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.plan import Planner
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.restart import restart_together
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import BatchError, GuestResult

__all__ = ["Converger"]


class Converger(Planner):
    """Plans and applies a batch of guest requests on one host."""

    def __init__(
        self,
        host: HostConnection,
        topology: HostTopology,
        check_mode: bool = False,
        restart: str = "never",
        force: bool = False,
        shutdown_timeout: float = 120.0,
        backup_dir: str | None = None,
        capacity: str = "fail",
        reserved_kib: int = 0,
    ) -> None:
        super().__init__(host, topology, capacity=capacity, reserved_kib=reserved_kib)
        self.check_mode = check_mode
        self.restart = restart
        self.force = force
        self.shutdown_timeout = shutdown_timeout
        self.backup_dir = backup_dir

    def converge(self, requests: Sequence[GuestRequest]) -> list[GuestResult]:
        """Plan everything, then define every guest, restart those that need it together, then the live changes.

        When any guest failed, a ``BatchError`` carries every result, with what was written for each,
        after all the others are done.
        """
        return self.apply_plans(requests, self.plan_all(requests))

    def apply_plans(
        self, requests: Sequence[GuestRequest], outcome: Sequence[Planned | VnumaError]
    ) -> list[GuestResult]:
        """``converge`` after its plan: ``outcome`` is what ``plan_all`` returned for ``requests``.

        The plans are used as they are (a guest is planned again only when its definition changed since,
        ``fresh``), so a caller that showed the plan first applies exactly that plan without reading and
        planning every guest a second time.
        """
        results: list[GuestResult] = []
        planned: list[tuple[Planned, GuestResult]] = []
        for request, item in zip(requests, outcome, strict=True):
            if isinstance(item, VnumaError):
                results.append(GuestResult(name=request.name, running=request.name in self.running, error=item))
                continue
            result = self.define_one(item)
            results.append(result)
            if result.error is None:
                planned.append((self.replanned.pop(item.request.name, item), result))
        if self.restart == "if_needed":
            batch = [(item, result) for item, result in planned if result.restart_required]
            restart_together(batch, self.shutdown_timeout, self.force, self.check_mode)
        for item, result in planned:
            if result.error is None:
                live_changes(self.topology, item, result, self.check_mode)
        if any(result.error is not None for result in results):
            raise BatchError(results)
        return results

    def define_one(self, item: Planned) -> GuestResult:
        """The result of one guest, and its new definition written (after a backup when asked)."""
        name = item.request.name
        result = GuestResult(name=name, running=item.running)
        result.warnings.extend(item.warnings)
        try:
            if item.changes and not self.check_mode:
                item = self.fresh(item)
                result.warnings.extend(warning for warning in item.warnings if warning not in result.warnings)
            describe(item, result)
            if item.changes and not self.check_mode:
                if self.backup_dir is not None:
                    result.backup_file = write_backup(self.backup_dir, name, item.original_xml)
                    result.wrote(f"backup {result.backup_file}")
                define_and_verify(self.host, item, result)
        except VnumaError as error:
            result.error = error.naming(name)
            # In a real run only what was written counts as changed; in check mode what would be.
            result.changed = bool(result.written) if not self.check_mode else result.changed
        return result

    def fresh(self, item: Planned) -> Planned:
        """``item`` planned on its definition as it is now, right before its define (``_run/apply.py:fresh``)."""
        return fresh(self, item)
