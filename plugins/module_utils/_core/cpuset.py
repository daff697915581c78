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

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import parse_int, shown

__all__ = ["MAX_CPUSET_CHARS", "MAX_CPUSET_SPAN", "MAX_CPU_ID", "format_cpuset", "parse_cpuset"]

# libvirt's own bitmap limit for cpusets and nodesets (VIR_DOMAIN_CPUMASK_LEN).
MAX_CPU_ID = 16383
CPU_ID_REASON = "libvirt's cpuset bitmap holds 16384 ids"
# The longest cpuset text read: every id from 0 to 16383 written out one by one takes 81,918
# characters.  Checked before the text is split, so a huge string costs nothing.
MAX_CPUSET_CHARS = 131072
# The most ids the ranges of one cpuset may cover together (overlaps counted again): each range
# costs work in its length, and without this "0-16383," repeated 16,000 times would fill the set
# 16,000 times over.  A cpuset that writes each id once covers at most 16384.
MAX_CPUSET_SPAN = 4 * (MAX_CPU_ID + 1)


def parse_cpuset(
    text: str,
    what: str = "cpuset",
    allow_empty: bool = False,
    limit: int = MAX_CPU_ID,
    why: str = CPU_ID_REASON,
) -> frozenset[int]:
    """Parse libvirt cpuset syntax into a set of ids, each at most ``limit`` (``why`` says whose limit).

    ``what`` names the value in error messages (``nodeset``, ``cpuset``).  An empty result is an
    error unless ``allow_empty``: a set that selects nothing is almost always a mistake.  The work is
    bounded by construction: the text's length is checked first, each id against ``limit`` before
    any range is expanded, and the ranges' total length against ``MAX_CPUSET_SPAN``.
    """
    if not isinstance(text, str):
        raise SpecError(f"{what} must be a string in libvirt cpuset syntax, got {type(text).__name__}")
    if len(text) > MAX_CPUSET_CHARS:
        raise SpecError(f"{what} {shown(text)} is {len(text)} characters long, above the limit of {MAX_CPUSET_CHARS}")
    prefix = f"{what} {shown(text)}:"
    selected: set[int] = set()
    span = 0
    if text.strip():
        items = text.split(",")
        if len(items) > 1 and not items[-1].strip():
            items.pop()  # libvirt tolerates one trailing comma
        for item in items:
            part = item.strip()
            if not part:
                raise SpecError(f"{what} {shown(text)}: empty item between commas")
            if part.startswith("^"):
                if "-" in part:
                    raise SpecError(f"{what} {shown(text)}: an exclusion takes one id, not the range {shown(part[1:])}")
                selected.discard(parse_int(part[1:], prefix, limit, why))
                continue
            if "-" in part:
                low_text, _dash, high_text = part.partition("-")
                low = parse_int(low_text, prefix, limit, why)
                high = parse_int(high_text, prefix, limit, why)
                if high < low:
                    raise SpecError(f"{what} {shown(text)}: range {low}-{high} runs backwards")
                span += high - low + 1
                if span > MAX_CPUSET_SPAN:
                    raise SpecError(
                        f"{what} {shown(text)}: its ranges cover more than {MAX_CPUSET_SPAN} ids in total, "
                        "the limit; write each id once"
                    )
                selected.update(range(low, high + 1))
            else:
                selected.add(parse_int(part, prefix, limit, why))
    result = frozenset(selected)
    if not result and not allow_empty:
        raise SpecError(f"{what} {shown(text)} selects nothing")
    return result


def format_cpuset(ids: Iterable[int]) -> str:
    """Format ids canonically: ascending, consecutive runs as ``a-b``."""
    unique = set(ids)
    # bool is an int subclass, and True is not CPU 1.
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in unique):
        wrong = next(value for value in unique if not isinstance(value, int) or isinstance(value, bool))
        raise SpecError(f"cpuset ids must be integers from 0 to {MAX_CPU_ID}, got {shown(wrong)}")
    ordered = sorted(unique)
    if ordered and (ordered[0] < 0 or ordered[-1] > MAX_CPU_ID):
        bad = ordered[0] if ordered[0] < 0 else ordered[-1]
        raise SpecError(f"cpuset ids must be integers from 0 to {MAX_CPU_ID}, got {shown(bad)}")
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
