# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Writing one planned guest: the re-read before the define, the define, and the read-back.

The definition and the guest's running state are read again right before its define (``fresh``): when
another client changed either since the plan, the guest is planned again from what is there now
(``REPLANS`` times at most), so their change is kept, never overwritten.  After the define the
definition is read back and its owned parts compared with the plan as models
(``define_and_verify``): libvirt may drop or rewrite what it does not accept, and that must not pass
silently.
"""

from __future__ import annotations

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    LibvirtDeadlineError,
    LibvirtOperationError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._hypervisor import HostConnection
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.plan import Planner
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import GuestResult
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml

__all__ = ["REPLANS", "define_and_verify", "describe", "fresh"]

# Times a guest is planned again when another client keeps changing its definition under this run.
REPLANS = 3


def fresh(planner: Planner, item: Planned) -> Planned:
    """``item`` planned on the definition and the running state as they are now (the same item when neither changed).

    The running state is read here too (``running_if_defined``): a guest another client started since the plan is
    planned as running (it needs a restart), one it shut off as shut off, and one it started and saved (``virsh
    managedsave``) as saved.  A running guest that another client
    undefined is transient, its XML still readable: it counts as undefined, and stays transient.
    """
    name = item.request.name
    for _attempt in range(REPLANS):
        xml = item.guest.xml_if_defined()
        running = None if xml is None else item.guest.running_if_defined()
        if xml is None or running is None:
            raise LibvirtOperationError(
                "was undefined by another client after this run read it; nothing was written for it", guest=name
            )
        saved = None
        if xml == item.original_xml and running == item.running:
            # Shut off then and now, it may have run and been saved in between (virsh start, virsh managedsave):
            # its next start would resume the old layout.  One call for each shut-off guest about to be written.
            if running or item.saved or not item.guest.has_managed_save():
                return item
            saved = True
        item = planner.replan(item, xml, running, saved)
        if not item.changes:
            return item
    raise LibvirtOperationError(
        f"its definition changed {REPLANS} times while this run planned it (another client is editing it); "
        "nothing was written for it",
        guest=name,
    )


def describe(item: Planned, result: GuestResult) -> None:
    """Put what the plan changes, and where it puts the guest, into ``result``."""
    result.changes = list(item.changes)
    result.layout = item.plan.layout if item.plan is not None else None
    result.changed = bool(item.changes)
    result.running = item.running
    result.restart_required = item.needs_restart()
    result.definition = item.original_xml
    if item.placement is not None:
        result.alignment = {key: value for key, value in item.placement.to_dict().items() if key != "name"}
    if item.before is not None:
        result.locality_before = round(item.before.locality, 4)
    result.auto = item.auto.to_dict() if item.auto is not None else None


def define_and_verify(host: HostConnection, item: Planned, result: GuestResult) -> None:
    """Define the planned definition, then read it back and check that libvirt kept every owned part."""
    name = item.request.name
    if item.new_xml is None:
        return
    try:
        guest = host.define(item.new_xml, guest=name)
    except LibvirtDeadlineError:
        # The define was sent: libvirtd may yet carry it out, so it counts as written.
        result.wrote("definition (unconfirmed: no answer within call_timeout)")
        raise
    result.wrote("definition")
    result.definition = guest.inactive_xml()
    reread = parse_xml(result.definition, f"the definition of guest {name}", root_tag="domain")
    kept = DomainNuma.from_domain(reread)
    lost = kept.changes(item.target)
    if lost:
        detail = "; ".join(str(change) for change in lost[:5])
        raise LibvirtOperationError(
            f"libvirt did not keep the layout as defined ({detail}); the definition was saved as libvirt rewrote it",
            guest=name,
        )
