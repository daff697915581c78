# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""What a guest asks for (the ``<vnuma>`` spec) and the shape of the guest it applies to.

The same spec arrives as module options, as a ``<vnuma>`` element in a template, or from the
domain's ``<metadata>``; all three end as one ``VnumaSpec``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import (
    DEDICATED_PINNINGS,
    SPEC_OPTIONS,
    Kind,
    Option,
    option,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.pci_locality import (
    format_device_cells,
    parse_device_cells,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import MAX_NODE_ID, NODE_ID_REASON
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    MAX_MEMORY_KIB,
    MEMORY_LIMIT_REASON,
    check_count,
    format_kib,
    parse_size,
    shown,
)

# The option constants live with the option table (_core/options.py).  DEDICATED_PINNINGS is also
# imported from here, by the layout, the placement and the planner.
__all__ = [
    "MAX_VCPUS",
    "DEDICATED_PINNINGS",
    "GuestShape",
    "VnumaSpec",
]

# Guest vCPUs: KVM's x86 maximum per guest is 4096 (CONFIG_KVM_MAX_NR_VCPUS, capped there by the
# Hyper-V TLFS' 64 sparse banks), and so is QEMU's q35 machine since 9.0.  Checked before any list of
# vCPUs is built.
MAX_VCPUS = 4096
VCPUS_REASON = "KVM's maximum vCPUs per guest"

# Option name -> VnumaSpec field, and back.
_FIELDS = {item.name: item.field for item in SPEC_OPTIONS}
_NAMES = {item.field: item.name for item in SPEC_OPTIONS}
# The order of the checks decides which error a spec with several bad values gets: the choices, then
# the numbers, then the booleans (the nodeset is checked last, by itself).
_CHECK_ORDER = ((Kind.CHOICE,), (Kind.SIZE, Kind.COUNT), (Kind.BOOLEAN,))
_CHECKED = tuple(item for kinds in _CHECK_ORDER for item in SPEC_OPTIONS if item.kind in kinds)


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(f"{name} {shown(value)} is not one of {', '.join(choices)}")


def _positive(name: str, value: object, limit: int | None = None, why: str = "") -> None:
    if value is not None:
        check_count(name, value, limit, why)


def _size(name: str, kib: object, limit: int | None, why: str) -> None:
    """A size in KiB: a positive integer at most ``limit``, shown in a readable unit when above it."""
    _positive(name, kib)
    if isinstance(kib, int) and limit is not None and kib > limit:
        raise SpecError(f"{name} {format_kib(kib)} is above the limit of {format_kib(limit)} ({why})")


def _check(item: Option, value: object) -> None:
    """``value`` checked for the spec option ``item`` (None, unset, passes every check but a choice's)."""
    if item.kind is Kind.CHOICE:
        _choice(item.name, value, item.choices)
    elif item.kind is Kind.SIZE:
        _size(item.name, value, item.limit, item.why)
    elif item.kind is Kind.COUNT:
        _positive(item.name, value, item.limit, item.why)
    elif item.kind is Kind.BOOLEAN and not isinstance(value, bool):
        raise SpecError(f"{item.name} {shown(value)} must be true or false")


def _host_mode_refusal(option: str, value: object) -> SpecError:
    # Refused, not dropped: the user typed something host mode would ignore (docs/partitioning.md).
    return SpecError(f"{option} {shown(value)} applies to mode node only; mode host mirrors every host node with CPUs")


@dataclass(frozen=True)
class VnumaSpec:
    """A validated vNUMA request.  Sizes are KiB; ``nodeset`` is kept in canonical cpuset syntax.

    One field per row of ``_core/options.py:SPEC_OPTIONS``, in its order, with its default.
    """

    mode: str = option("mode").default
    distribution: str = option("distribution").default
    memory_kib: int | None = None
    nodeset: str | None = None
    cells: int | None = None
    pinning: str = option("pinning").default
    memory_mode: str = option("memory_mode").default
    memory_split: str = option("memory_split").default
    hugepages_kib: int | None = None
    emulator_pin: str = option("emulator_pin").default
    cpuless_cells: bool = option("cpuless_cells").default
    max_memory_kib: int | None = None
    memory_slots: int | None = None
    memory_device: str = option("memory_device").default
    hmat: str = option("hmat").default
    pci_numa_affinity: str = option("pci_numa_affinity").default
    device_locality: str = option("device_locality").default
    # Canonical text (``_core/pci_locality.py:format_device_cells``), so that specs compare as values.
    device_cells: str | None = None
    emulator_threads: str = option("emulator_threads").default
    iothreads: str = option("iothreads").default
    # Not a field: the options a user gave, when the spec is built only to check them before they are laid over a
    # stored spec (``check_given``); None for a spec a run uses.
    given: InitVar[frozenset[str] | None] = None

    def __post_init__(self, given: frozenset[str] | None) -> None:
        def decided(*names: str) -> bool:
            # A rule that ties options together holds for a spec a run uses; for the options a user gave, only when
            # it reads nothing but them: then no stored spec they are laid over (_run/guest.py:spec_for) can change
            # its verdict.
            return given is None or given.issuperset(names)

        # Every number against its limit before anything is built from it (the partitioner builds
        # one entry per cell and per vCPU).
        for item in _CHECKED:
            _check(item, getattr(self, item.field))
        if self.nodeset is not None:
            written = self.nodeset
            canonical = format_cpuset(parse_cpuset(written, "nodeset", limit=MAX_NODE_ID, why=NODE_ID_REASON))
            if self.mode == "host" and decided("mode", "nodeset"):
                raise _host_mode_refusal("nodeset", written)
            object.__setattr__(self, "nodeset", canonical)
        if self.mode == "host" and self.cells is not None and decided("mode", "cells"):
            raise _host_mode_refusal("cells", self.cells)
        if self.device_cells is not None:
            cells = format_device_cells(parse_device_cells(self.device_cells)) or None
            # With none nothing is moved: overrides would be dropped in silence.  A stored spec's overrides under a
            # new "device_locality: none" are left out before the spec is built (_run/guest.py:spec_for).
            if cells is not None and self.device_locality == "none" and decided("device_locality", "device_cells"):
                raise SpecError(
                    f"device_cells {shown(cells)} needs device_locality hostdev or all: with none no device is moved"
                )
            object.__setattr__(self, "device_cells", cells)
        if (self.max_memory_kib is None) != (self.memory_slots is None) and decided("max_memory", "memory_slots"):
            raise SpecError("max_memory and memory_slots go together: memory hotplug needs both")
        if self.isolates_emulator and self.pinning not in DEDICATED_PINNINGS and decided("emulator_threads", "pinning"):
            raise SpecError(
                f"emulator_threads isolate needs pinning core or thread, not {self.pinning}: "
                "vCPUs that float would run on the emulator's host CPU too"
            )
        if self.isolates_emulator and self.emulator_pin != "none" and decided("emulator_threads", "emulator_pin"):
            raise SpecError(
                f"emulator_threads isolate and emulator_pin {self.emulator_pin} both place the emulator threads; "
                "set emulator_pin none"
            )
        if (
            self.memory_device == "virtio-mem"
            and self.max_memory_kib is None
            and decided("memory_device", "max_memory")
        ):
            raise SpecError(
                "memory_device virtio-mem needs max_memory and memory_slots: its devices share the memory "
                "between the boot memory and max_memory"
            )

    @property
    def isolates_emulator(self) -> bool:
        """Whether the emulator threads hold a dedicated host CPU of their own (``emulator_threads: isolate``)."""
        return self.emulator_threads == "isolate"

    @property
    def nodes(self) -> frozenset[int] | None:
        """The nodeset as ids, or None when the spec leaves it to the mode's default."""
        return None if self.nodeset is None else parse_cpuset(self.nodeset, "nodeset", limit=MAX_NODE_ID)

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> VnumaSpec:
        """Build a spec from user-facing option names (``memory``, ``hugepages``, ``max_memory``...).

        Sizes accept a number of KiB or a string with a unit (``"16 GiB"``).  Unknown keys and
        ``None`` values for unknown keys are errors; ``None`` for a known key means its default.
        """
        return cls(**_field_values(options))

    @classmethod
    def check_given(cls, options: Mapping[str, Any], together: bool = True) -> None:
        """Refuse what the spec options a user gave refuse whatever stored spec they are laid over.

        ``options`` are user-facing, as ``from_mapping`` takes them (``None`` unset).  A run lays them over the
        guest's stored spec (``_run/guest.py:spec_for``), which may set what they leave unset.  So each value is
        checked against its option's limits, and (``together``) each rule that ties options together only when
        every option it reads is among them; one a stored spec could still satisfy (``max_memory`` without
        ``memory_slots``, ``nodeset`` without ``mode``) is left to the spec the plan builds.  The checks are
        ``__post_init__``'s.
        """
        values = _field_values(options)
        cls(**values, given=frozenset(_NAMES[name] for name in values) if together else frozenset())

    def to_mapping(self) -> dict[str, Any]:
        """The spec under its user-facing option names, sizes in KiB, defaults included."""
        # Every field is a scalar: asdict's deep copy of each value would cost the fleet call a tenth of a second.
        return {option_name: getattr(self, name) for name, option_name in _NAMES.items()}


def _field_values(options: Mapping[str, Any]) -> dict[str, Any]:
    """``VnumaSpec``'s fields for the user-facing ``options``: sizes in KiB (read against each option's own limit)."""
    if not isinstance(options, Mapping):
        raise SpecError(f"the vnuma spec must be a mapping, got {type(options).__name__}")
    unknown = sorted(key if isinstance(key, str) else shown(key) for key in options if key not in _FIELDS)
    if unknown:
        raise SpecError(f"unknown vnuma option(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    values: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        row = option(key)
        if row.kind is Kind.SIZE:
            value = parse_size(value, what=key, **row.limit_args)
        elif row.kind is Kind.NODESET and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        values[_FIELDS[key]] = value
    return values


@dataclass(frozen=True)
class GuestShape:
    """What the partitioner needs to know of the guest itself.

    ``vcpus`` is the maximum (``<vcpu>`` content, hot-pluggable ones included); ``current_vcpus``
    how many are online at boot (``<vcpu current>``, None for all); ``memory_kib`` the boot memory
    (the domain's ``<memory>`` less its hot-plugged DIMMs), used when the spec sets none.
    """

    vcpus: int
    memory_kib: int | None = None
    current_vcpus: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        try:
            if self.vcpus is None:
                raise SpecError("vcpus is required")
            _positive("vcpus", self.vcpus, MAX_VCPUS, VCPUS_REASON)
            _positive("current vcpus", self.current_vcpus)
            if self.current_vcpus is not None and self.current_vcpus > self.vcpus:
                raise SpecError(f"current vcpus {shown(self.current_vcpus)} is above the maximum of {self.vcpus} vCPUs")
            _size("memory", self.memory_kib, MAX_MEMORY_KIB, MEMORY_LIMIT_REASON)
        except SpecError as error:
            raise error.naming(self.name) from None
