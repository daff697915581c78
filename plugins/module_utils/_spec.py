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

from ansible_collections.vnuma.libvirt.plugins.module_utils._cpuset import format_cpuset, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._units import parse_size

__all__ = [
    "DISTRIBUTIONS",
    "EMULATOR_PINS",
    "MAX_MEMORY_SLOTS",
    "MEMORY_MODES",
    "MEMORY_SPLITS",
    "MODES",
    "PINNINGS",
    "GuestShape",
    "VnumaSpec",
]

MODES = ("host", "node")
DISTRIBUTIONS = ("contiguous", "siblings", "round-robin", "interleave")
PINNINGS = ("node", "core", "thread", "none")
MEMORY_MODES = ("strict", "preferred", "interleave", "restrictive")
MEMORY_SPLITS = ("even", "vcpus")
EMULATOR_PINS = ("none", "nodes")
# QEMU's x86 machines offer at most 256 memory slots (ACPI_MAX_RAM_SLOTS); libvirt passes ours on.
MAX_MEMORY_SLOTS = 256

_SIZE_FIELDS = {"memory_kib": "memory", "hugepages_kib": "hugepages", "max_memory_kib": "max_memory"}


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(f"{name} {value!r} is not one of {', '.join(choices)}")


def _positive(name: str, value: object, limit: int | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{name} {value!r} must be a positive integer")
    if limit is not None and value > limit:
        raise SpecError(f"{name} {value} is above the limit {limit}")


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
        _positive("memory", self.memory_kib)
        _positive("cells", self.cells)
        _positive("hugepages", self.hugepages_kib)
        _positive("max_memory", self.max_memory_kib)
        _positive("memory_slots", self.memory_slots, MAX_MEMORY_SLOTS)
        if not isinstance(self.cpuless_cells, bool):
            raise SpecError(f"cpuless_cells {self.cpuless_cells!r} must be true or false")
        if self.nodeset is not None:
            object.__setattr__(self, "nodeset", format_cpuset(parse_cpuset(self.nodeset, "nodeset")))
        if (self.max_memory_kib is None) != (self.memory_slots is None):
            raise SpecError("max_memory and memory_slots go together: memory hotplug needs both")

    @property
    def nodes(self) -> frozenset[int] | None:
        """The nodeset as ids, or None when the spec leaves it to the mode's default."""
        return None if self.nodeset is None else parse_cpuset(self.nodeset, "nodeset")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> VnumaSpec:
        """Build a spec from user-facing option names (``memory``, ``hugepages``, ``max_memory``...).

        Sizes accept a number of KiB or a string with a unit (``"16 GiB"``).  Unknown keys and
        ``None`` values for unknown keys are errors; ``None`` for a known key means its default.
        """
        if not isinstance(options, Mapping):
            raise SpecError(f"the vnuma spec must be a mapping, got {type(options).__name__}")
        names = {_SIZE_FIELDS.get(f.name, f.name): f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in options if key not in names)
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
            _positive("vcpus", self.vcpus)
            _positive("current vcpus", self.current_vcpus)
            if self.current_vcpus is not None and self.current_vcpus > self.vcpus:
                raise SpecError(f"current vcpus {self.current_vcpus} is above the maximum of {self.vcpus} vCPUs")
            _positive("memory", self.memory_kib)
        except SpecError as error:
            raise error.naming(self.name) from None
