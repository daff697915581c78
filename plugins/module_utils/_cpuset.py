# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""libvirt's cpuset / nodeset syntax: ``0-3,8,^2``.

The grammar is libvirt's (https://libvirt.org/formatdomain.html#cpu-allocation): comma separated
items, each a number, an inclusive range ``a-b``, or an exclusion ``^n``.  Items apply left to
right as in libvirt's virBitmapParse: ``1-4,^3`` is 1,2,4 but ``^3,1-4`` is 1-4.
Formatting is canonical: ascending, every run of two or more consecutive ids written as a range
(``0-3,5,7-8``), no exclusions, no spaces.  ``format_cpuset(parse_cpuset(x))`` is the canonical form of ``x``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ansible_collections.vnuma.libvirt.plugins.module_utils._errors import SpecError

__all__ = ["MAX_CPU_ID", "format_cpuset", "parse_cpuset"]

# libvirt's own bitmap limit for cpusets and nodesets (VIR_DOMAIN_CPUMASK_LEN).
MAX_CPU_ID = 16383


def _parse_id(item: str, text: str, what: str) -> int:
    token = item.strip()
    if not token.isdigit() or not token.isascii():
        raise SpecError(f"{what} {text!r}: {token!r} is not a non-negative integer")
    value = int(token)
    if value > MAX_CPU_ID:
        raise SpecError(f"{what} {text!r}: id {value} is above the limit {MAX_CPU_ID}")
    return value


def parse_cpuset(text: str, what: str = "cpuset", allow_empty: bool = False) -> frozenset[int]:
    """Parse libvirt cpuset syntax into a set of ids.

    ``what`` names the value in error messages (``nodeset``, ``cpuset``).  An empty result is an
    error unless ``allow_empty``: a set that selects nothing is almost always a mistake.
    """
    if not isinstance(text, str):
        raise SpecError(f"{what} must be a string in libvirt cpuset syntax, got {type(text).__name__}")
    selected: set[int] = set()
    if text.strip():
        items = text.split(",")
        if len(items) > 1 and not items[-1].strip():
            items.pop()  # libvirt tolerates one trailing comma
        for item in items:
            part = item.strip()
            if not part:
                raise SpecError(f"{what} {text!r}: empty item between commas")
            if part.startswith("^"):
                if "-" in part:
                    raise SpecError(f"{what} {text!r}: an exclusion takes one id, not the range {part[1:]!r}")
                selected.discard(_parse_id(part[1:], text, what))
                continue
            if "-" in part:
                low_text, _dash, high_text = part.partition("-")
                low = _parse_id(low_text, text, what)
                high = _parse_id(high_text, text, what)
                if high < low:
                    raise SpecError(f"{what} {text!r}: range {low}-{high} runs backwards")
                selected.update(range(low, high + 1))
            else:
                selected.add(_parse_id(part, text, what))
    result = frozenset(selected)
    if not result and not allow_empty:
        raise SpecError(f"{what} {text!r} selects nothing")
    return result


def format_cpuset(ids: Iterable[int]) -> str:
    """Format ids canonically: ascending, consecutive runs as ``a-b``."""
    unique = set(ids)
    # bool is an int subclass, and True is not CPU 1.
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in unique):
        bad = next(value for value in unique if not isinstance(value, int) or isinstance(value, bool))
        raise SpecError(f"cpuset ids must be integers from 0 to {MAX_CPU_ID}, got {bad!r}")
    ordered = sorted(unique)
    if ordered and (ordered[0] < 0 or ordered[-1] > MAX_CPU_ID):
        bad = ordered[0] if ordered[0] < 0 else ordered[-1]
        raise SpecError(f"cpuset ids must be integers from 0 to {MAX_CPU_ID}, got {bad!r}")
    parts: list[str] = []
    index = 0
    while index < len(ordered):
        start = ordered[index]
        while index + 1 < len(ordered) and ordered[index + 1] == ordered[index] + 1:
            index += 1
        end = ordered[index]
        parts.append(str(start) if start == end else f"{start}-{end}")
        index += 1
    return ",".join(parts)
