# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""One guest through a run: what it asks for, its definition as read, the spec they make, and its plan.

The stored spec (``<metadata>``) is read once per definition read (``Reading.of``); everything after
works on that reading.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.auto import AutoChoice
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import GuestPlacement
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._hypervisor import GuestHandle
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import Change
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import DomainPlan
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import read_stored_spec

__all__ = ["GuestRequest", "Planned", "Reading", "RunningState", "saved_state_warning", "spec_for"]


@dataclass(frozen=True)
class GuestRequest:
    """What one guest should become.  ``options`` are user-facing spec options given explicitly."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    state: str = "present"
    current_vcpus: int | None = None
    hotplug_memory_kib: int | None = None
    # memory_device virtio-mem: the guest's memory in total, set through the devices' requested sizes.
    total_memory_kib: int | None = None
    # mode auto: choose the host nodes again instead of keeping the stored choice.
    replan: bool = False
    # A guest that moved keeps its topology (keep) until asked to render the spec again (next_boot).
    rerender: str = "keep"


@dataclass(frozen=True)
class Reading:
    """A requested guest's definition as read, parsed, and its stored spec.

    ``root`` is the error when the definition does not parse; ``stored`` the error when the stored
    spec cannot be read (``spec_for`` decides what that means).
    """

    guest: GuestHandle
    xml: str
    root: etree._Element | VnumaError
    stored: VnumaSpec | VnumaError | None = None

    @classmethod
    def of(cls, guest: GuestHandle, xml: str, root: etree._Element | VnumaError) -> Reading:
        if isinstance(root, VnumaError):
            return cls(guest, xml, root)
        try:
            return cls(guest, xml, root, read_stored_spec(root))
        except VnumaError as error:
            return cls(guest, xml, root, error)


def spec_for(
    request: GuestRequest, stored: VnumaSpec | VnumaError | None, warnings: list[str] | None = None
) -> VnumaSpec:
    """The stored spec with the explicitly given options on top (defaults when nothing is stored).

    ``stored`` is the guest's stored spec as read (``Reading.stored``), the error when it cannot be read.
    A stored spec that cannot be read (edited by hand, written by another tool) is replaced by the
    options given, with a warning; without any it is an error that says how to repair the guest.
    """
    if isinstance(stored, VnumaError):
        if not request.options:
            raise SpecError(
                f"its stored vnuma spec cannot be read ({stored.message}); give the spec's options (at least "
                "mode) to replace it, or state: absent to remove the layout",
                guest=request.name,
            )
        if warnings is not None:
            warnings.append(
                f"guest {request.name}: its stored vnuma spec cannot be read ({stored.message}); "
                "replaced by the options given"
            )
        stored = None
    base = {} if stored is None else {k: v for k, v in stored.to_mapping().items() if v is not None}
    base.update({key: value for key, value in request.options.items() if value is not None})
    if request.options.get("mode") == "host":
        # Partition options of a stored node-mode spec mean nothing once the mode is host; given now
        # together with mode host, the spec refuses them.
        for key in ("nodeset", "cells"):
            if key not in request.options:
                base.pop(key, None)
    if request.options.get("device_locality") == "none" and "device_cells" not in request.options:
        # Likewise a stored spec's device overrides once no device is moved; given with none, they are refused.
        base.pop("device_cells", None)
    return VnumaSpec.from_mapping(base)


@dataclass(frozen=True)
class RunningState:
    """What a guest runs now (its live XML) or resumes at its next start (a managed save image's XML).

    ``numa`` is None when neither is known: a guest that is shut off without an image (or whose image cannot
    be read) boots its definition, so nothing of it is pending.
    """

    numa: DomainNuma | None = None
    # The live XML, parsed; None for a saved image (its devices are not what runs).
    live_root: etree._Element | None = None

    @classmethod
    def read(cls, guest: GuestHandle, name: str, live_xml: str | None, saved: bool) -> RunningState:
        """``live_xml`` when the guest runs (None: it does not, or it stopped since), else with ``saved`` the
        XML of its managed save image, read now (None when gone since the listing or the driver cannot read it)."""
        if live_xml is not None:
            root = parse_xml(live_xml, f"the running guest {name}", root_tag="domain")
            return cls(DomainNuma.from_domain(root), root)
        if saved:
            image_xml = guest.managed_save_xml()
            if image_xml is not None:
                what = f"the managed save image of guest {name}"
                return cls(DomainNuma.from_domain(parse_xml(image_xml, what, root_tag="domain")))
        return cls()

    @property
    def live(self) -> DomainNuma | None:
        """What runs now; None for a guest that does not run."""
        return self.numa if self.live_root is not None else None

    @property
    def online(self) -> set[int] | None:
        """The vCPUs online in what runs or resumes (they count for a hot-add); None when neither is known."""
        return None if self.numa is None else self.numa.online_vcpus()

    def pending(self, definition: DomainNuma, host_cpus: Collection[int]) -> list[Change]:
        """Where what runs or resumes differs from ``definition`` in what only a boot brings (``waiting_for_boot``)."""
        return [] if self.numa is None else self.numa.waiting_for_boot(definition, host_cpus)


@dataclass
class Planned:
    """One guest planned: its definition as read, the plan, and the definition to write (None: no change)."""

    request: GuestRequest
    guest: GuestHandle
    original_xml: str
    root: etree._Element
    running: bool
    plan: DomainPlan | None  # None for state=absent
    target: DomainNuma
    changes: list[Change]
    new_xml: str | None
    # The vCPUs online in what runs (or, for a saved guest, in what its next start resumes).
    online: set[int] | None = None
    # Owned values where the running guest (or the saved one: ``saved``) differs from the target: what only a new
    # boot brings.
    pending: list[Change] = field(default_factory=list)
    # The definition as it is, parsed (for its locality before the change).
    current: DomainNuma | None = None
    # Where the planned and the current definitions put the guest on the host (set by capacity.place).
    placement: GuestPlacement | None = None
    before: GuestPlacement | None = None
    warnings: list[str] = field(default_factory=list)
    # mode auto: the host nodes chosen or kept, and why.
    auto: AutoChoice | None = None
    # A running guest's memory devices by alias -> what each has plugged now (live <current>).
    plugged: dict[str, int] = field(default_factory=dict)
    # Shut off with a managed save image (virsh managedsave): its next start resumes the saved state, which runs
    # the layout saved with it (``pending`` compares that with the target), not a boot of the definition.
    saved: bool = False

    def needs_restart(self) -> bool:
        """Whether the guest needs a boot to run as defined: a running guest, or a saved one (``saved``).

        Both are compared as they run or will resume (``pending``), and with the definition's own changes, by their
        change kinds (``ChangeKind.waits_for_boot``).  Hot-plug values (vCPUs online, DIMMs) wait for a boot only when
        the new definition brings fewer vCPUs online than run (``DomainNuma.boots_fewer_vcpus``, the rule vnuma_info's
        ``pending`` follows): vCPUs are never taken offline live.  Otherwise what the definition brings at boot and the
        guest runs without is brought in live when it keeps running (``_run/live.py``), whether or not
        ``current_vcpus`` is given, so that two runs with nothing changed between them give the same answer.  A saved
        guest is not started by a restart (``_run/restart.py``): it says so and keeps ``restart_required``.
        """
        if not (self.running or self.saved):
            return False
        adding = self.plan is not None and self.online is not None and not self.target.boots_fewer_vcpus(self.online)
        # A definition changed by an earlier run (restart: never) still waits for its boot: the running
        # guest is compared too, not just the definition.
        return any(change.kind.waits_for_boot(adding) for change in [*self.changes, *self.pending])


def saved_state_warning(name: str) -> str:
    """What a guest whose managed save image holds a layout the definition changes must be told (``Planned.saved``)."""
    return (
        f"guest {name}: has a managed save image (virsh managedsave): its next start resumes the saved state, "
        "which runs the layout saved with it, not this definition; the new layout takes effect when the guest boots "
        f"after a shutdown. virsh managedsave-remove {name} discards the saved state (what runs in it is lost)"
    )
