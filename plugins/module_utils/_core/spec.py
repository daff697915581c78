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
from dataclasses import asdict, dataclass, fields
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import MAX_NODE_ID, NODE_ID_REASON
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    MAX_MEMORY_KIB,
    MAX_PAGE_KIB,
    MEMORY_LIMIT_REASON,
    PAGE_LIMIT_REASON,
    check_count,
    format_kib,
    parse_size,
    shown,
)

__all__ = [
    "DISTRIBUTIONS",
    "EMULATOR_PINS",
    "MAX_CELLS",
    "MAX_MEMORY_SLOTS",
    "MAX_VCPUS",
    "MEMORY_MODES",
    "MEMORY_SPLITS",
    "MODES",
    "PINNINGS",
    "DEDICATED_PINNINGS",
    "GuestShape",
    "VnumaSpec",
]

MODES = ("host", "node")
DISTRIBUTIONS = ("contiguous", "siblings", "round-robin", "interleave")
PINNINGS = ("node", "core", "thread", "none")
# The pinnings under which a guest holds host CPUs for itself (``_core/placement.py:held_cpus``).
DEDICATED_PINNINGS = ("core", "thread")
MEMORY_MODES = ("strict", "preferred", "interleave", "restrictive")
MEMORY_SPLITS = ("even", "vcpus")
EMULATOR_PINS = ("none", "nodes")
# QEMU's x86 machines offer at most 256 memory slots (ACPI_MAX_RAM_SLOTS); libvirt passes ours on.
MAX_MEMORY_SLOTS = 256
SLOTS_REASON = "QEMU's ACPI_MAX_RAM_SLOTS"
# Guest NUMA cells: QEMU takes at most 128 (MAX_NODES in include/sysemu/numa.h; "Max number of NUMA
# nodes reached" beyond).  Checked before any cell is built.
MAX_CELLS = 128
CELLS_REASON = "QEMU's MAX_NODES"
# Guest vCPUs: KVM's x86 maximum per guest is 4096 (CONFIG_KVM_MAX_NR_VCPUS, capped there by the
# Hyper-V TLFS' 64 sparse banks), and so is QEMU's q35 machine since 9.0.  Checked before any list of
# vCPUs is built.
MAX_VCPUS = 4096
VCPUS_REASON = "KVM's maximum vCPUs per guest"

_SIZE_FIELDS = {"memory_kib": "memory", "hugepages_kib": "hugepages", "max_memory_kib": "max_memory"}


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(f"{name} {shown(value)} is not one of {', '.join(choices)}")


def _positive(name: str, value: object, limit: int | None = None, why: str = "") -> None:
    if value is not None:
        check_count(name, value, limit, why)


def _size(name: str, kib: object, limit: int, why: str) -> None:
    """A size in KiB: a positive integer at most ``limit``, shown in a readable unit when above it."""
    _positive(name, kib)
    if isinstance(kib, int) and kib > limit:
        raise SpecError(f"{name} {format_kib(kib)} is above the limit of {format_kib(limit)} ({why})")


def _host_mode_refusal(option: str, value: object) -> SpecError:
    # Refused, not dropped: the user typed something host mode would ignore (docs/partitioning.md).
    return SpecError(f"{option} {shown(value)} applies to mode node only; mode host mirrors every host node with CPUs")


@dataclass(frozen=True)
class VnumaSpec:
    """A validated vNUMA request.  Sizes are KiB; ``nodeset`` is kept in canonical cpuset syntax."""

    mode: str = "host"
    distribution: str = "contiguous"
    memory_kib: int | None = None
    nodeset: str | None = None
    cells: int | None = None
    pinning: str = "node"
    memory_mode: str = "strict"
    memory_split: str = "even"
    hugepages_kib: int | None = None
    emulator_pin: str = "none"
    cpuless_cells: bool = False
    max_memory_kib: int | None = None
    memory_slots: int | None = None

    def __post_init__(self) -> None:
        _choice("mode", self.mode, MODES)
        _choice("distribution", self.distribution, DISTRIBUTIONS)
        _choice("pinning", self.pinning, PINNINGS)
        _choice("memory_mode", self.memory_mode, MEMORY_MODES)
        _choice("memory_split", self.memory_split, MEMORY_SPLITS)
        _choice("emulator_pin", self.emulator_pin, EMULATOR_PINS)
        # Every number against its limit before anything is built from it (the partitioner builds
        # one entry per cell and per vCPU).
        _size("memory", self.memory_kib, MAX_MEMORY_KIB, MEMORY_LIMIT_REASON)
        _positive("cells", self.cells, MAX_CELLS, CELLS_REASON)
        _size("hugepages", self.hugepages_kib, MAX_PAGE_KIB, PAGE_LIMIT_REASON)
        _size("max_memory", self.max_memory_kib, MAX_MEMORY_KIB, MEMORY_LIMIT_REASON)
        _positive("memory_slots", self.memory_slots, MAX_MEMORY_SLOTS, SLOTS_REASON)
        if not isinstance(self.cpuless_cells, bool):
            raise SpecError(f"cpuless_cells {shown(self.cpuless_cells)} must be true or false")
        if self.nodeset is not None:
            given = self.nodeset
            canonical = format_cpuset(parse_cpuset(given, "nodeset", limit=MAX_NODE_ID, why=NODE_ID_REASON))
            if self.mode == "host":
                raise _host_mode_refusal("nodeset", given)
            object.__setattr__(self, "nodeset", canonical)
        if self.mode == "host" and self.cells is not None:
            raise _host_mode_refusal("cells", self.cells)
        if (self.max_memory_kib is None) != (self.memory_slots is None):
            raise SpecError("max_memory and memory_slots go together: memory hotplug needs both")

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
        if not isinstance(options, Mapping):
            raise SpecError(f"the vnuma spec must be a mapping, got {type(options).__name__}")
        names = {_SIZE_FIELDS.get(f.name, f.name): f.name for f in fields(cls)}
        unknown = sorted(key if isinstance(key, str) else shown(key) for key in options if key not in names)
        if unknown:
            raise SpecError(f"unknown vnuma option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        values: dict[str, Any] = {}
        for key, value in options.items():
            if value is None:
                continue
            attribute = names[key]
            if attribute in _SIZE_FIELDS:
                value = parse_size(value, what=key)
            elif attribute == "nodeset" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            values[attribute] = value
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """The spec under its user-facing option names, sizes in KiB, defaults included."""
        return {_SIZE_FIELDS.get(name, name): value for name, value in asdict(self).items()}


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
