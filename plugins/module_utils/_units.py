# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Memory sizes: libvirt's unit names to KiB, and KiB to a human-readable size."""

from __future__ import annotations

import re

from ansible_collections.vnuma.libvirt.plugins.module_utils._errors import SpecError

__all__ = ["format_kib", "parse_size", "to_kib", "unit_bytes"]

_POWERS = "kmgtpe"


def unit_bytes(unit: str) -> int | None:
    """Bytes in one ``unit``, read as libvirt does, or None when libvirt would reject it.

    libvirt (https://libvirt.org/formatdomain.html#memory-allocation) ignores case: ``b`` or
    ``bytes``; a letter of KMGTPE alone or followed by ``iB`` is a power of 1024, followed by ``B``
    a power of 1000.
    """
    lowered = unit.lower()
    if lowered in ("b", "byte", "bytes"):  # virScaleInteger() takes all three
        return 1
    if not lowered or lowered[0] not in _POWERS:
        return None
    power = _POWERS.index(lowered[0]) + 1
    if lowered[1:] in ("", "ib"):
        return 1024**power
    if lowered[1:] == "b":
        return 1000**power
    return None


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")


def to_kib(value: int, unit: str = "KiB", what: str = "memory") -> int:
    """Convert ``value`` in ``unit`` to KiB, rounding up as libvirt does."""
    scale = unit_bytes(unit) if isinstance(unit, str) else None
    if scale is None:
        raise SpecError(f"{what}: unknown unit {unit!r} (use one of KiB, MiB, GiB, TiB, b, KB, MB, GB)")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{what}: {value!r} is not a non-negative integer")
    return -(-value * scale // 1024)


def parse_size(text: str | int, default_unit: str = "KiB", what: str = "memory") -> int:
    """Parse ``"16 GiB"``, ``"512M"`` or a bare number (in ``default_unit``) into KiB."""
    if isinstance(text, int) and not isinstance(text, bool):
        return to_kib(text, default_unit, what)
    if not isinstance(text, str):
        raise SpecError(f"{what}: {text!r} is not a size such as '16 GiB' or 524288")
    match = _SIZE_RE.match(text)
    if not match:
        raise SpecError(f"{what}: {text!r} is not a size such as '16 GiB' or 524288")
    return to_kib(int(match.group(1)), match.group(2) or default_unit, what)


def format_kib(kib: int) -> str:
    """Render KiB in the largest binary unit that keeps it whole: ``16 GiB``, ``1536 MiB``, ``4 KiB``."""
    for unit, scale in (("TiB", 1024**3), ("GiB", 1024**2), ("MiB", 1024)):
        if kib and kib % scale == 0:
            return f"{kib // scale} {unit}"
    return f"{kib} KiB"
