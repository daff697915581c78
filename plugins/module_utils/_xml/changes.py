# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The change model: one difference between two domains' owned parts, and how a running guest takes it.

``DomainNuma.changes`` (``domain.py``) lists them from the element models' ``items``; each element
model says its ``ChangeKind``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["Change", "ChangeKind", "Items", "changes_as_diff", "new_change"]


class ChangeKind(Enum):
    """How a running guest takes one change: the one restart rule (issue 9).

    Each element model says its own kind (``KIND``, and ``ITEM_KINDS`` for a value of another kind),
    so the rule depends on which model changed, never on a display path.
    """

    #: taken live by this collection: vCPU pins (``virDomainPinVcpu``), the stored spec (metadata).
    LIVE = "live"
    #: taken live when vCPUs or memory are being added: vCPUs brought online, DIMMs attached.
    HOTPLUG = "hotplug"
    #: differs in a running guest by nature, nothing waits for a boot: the balloon, ``<memory>``
    #: grown by live DIMMs.
    RUNTIME = "runtime"
    #: takes effect at the next boot only.
    NEEDS_BOOT = "needs_boot"

    def waits_for_boot(self, hotplugging: bool) -> bool:
        """Whether a running guest must restart for this change; ``hotplugging``: vCPUs are being added."""
        if self is ChangeKind.HOTPLUG:
            return not hotplugging
        return self is ChangeKind.NEEDS_BOOT

    def pending_in_live(self, vcpus_lowered: bool = False) -> bool:
        """Whether a difference between a running guest and its definition is waiting for a boot.

        Hot-plugged and runtime values make the running guest differ from its definition by nature;
        anything else (pins included: a pin changed in the definition only) is reported as pending.
        ``vcpus_lowered``: the guest runs more vCPUs than its definition brings online, which only a boot
        lowers, so the vCPU (hot-plug) differences wait for it too.
        """
        if self is ChangeKind.HOTPLUG:
            return vcpus_lowered
        return self is not ChangeKind.RUNTIME


@dataclass(frozen=True)
class Change:
    """One difference between two domains' owned parts, for check mode and diff.

    ``path`` names the value the way the XML does, ``/``-separated from the domain root, with
    attributes as the last step: ``cpu/numa/cell[1]/memory``.  A bracket holds the element's own
    id (cell id, vCPU id, memnode cellid, sibling id), not an XPath position; ``page[i]`` is the
    position of a hugepage size.  Values are plain: integers (sizes in KiB), canonical cpuset
    strings, ``yes``/``no``; None when absent on that side.  ``kind`` is set by the element model
    that lists the value; it is left out of equality (two equal differences are equal whoever
    classified them).
    """

    path: str
    before: object
    after: object
    kind: ChangeKind = field(default=ChangeKind.NEEDS_BOOT, compare=False)

    def __str__(self) -> str:
        return f"{self.path}: {self.before!r} -> {self.after!r}"


def new_change(
    path: str,
    before: object,
    after: object,
    kind: ChangeKind = ChangeKind.NEEDS_BOOT,
    _new: Any = object.__new__,
    _cls: type = Change,
) -> Change:
    """``Change(path, before, after, kind)``, built in half the time.

    A frozen dataclass sets each field through ``object.__setattr__``; filling the instance's
    dictionary at once gives an equal, as immutable object (``Change`` has no ``__post_init__``).
    A new 1024-vCPU layout lists over two thousand changes.  (The defaults bind names once, for
    speed: they are not parameters.)
    """
    change: Change = _new(_cls)
    change.__dict__.update(path=path, before=before, after=after, kind=kind)
    return change


def changes_as_diff(changes: Iterable[Change]) -> dict[str, dict[str, object]]:
    """Ansible's ``diff`` form of a change list: ``{"before": {path: value}, "after": {path: value}}``."""
    before: dict[str, object] = {}
    after: dict[str, object] = {}
    for change in changes:
        before[change.path] = change.before
        after[change.path] = change.after
    return {"before": before, "after": after}


Items = list[tuple[str, object]]
