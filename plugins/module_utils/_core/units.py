# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Numbers and memory sizes as users and libvirt write them, each checked against its limit.

The one place where text becomes a number: ``parse_int`` for counts and ids, ``parse_size`` (and
``size_kib`` for a number and a unit given apart) for sizes.  Both take ASCII digits only (Python's
``int()`` also takes ``'٢٥٦'``, ``'1_0'`` and ``'+1'``; libvirt takes none of them), and compare a
number's length with its limit's before converting it: no input makes them do work out of proportion
to the limit, and Python's own refusal of numbers over 4300 digits never escapes as a ValueError.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError

__all__ = [
    "CALL_TIMEOUT_LIMITS",
    "CONNECT_TIMEOUT_LIMITS",
    "LOCK_TIMEOUT_LIMITS",
    "MAX_INTEGER",
    "MAX_MEMORY_KIB",
    "SHUTDOWN_TIMEOUT_LIMITS",
    "MAX_PAGE_KIB",
    "check_count",
    "check_seconds",
    "format_kib",
    "kind",
    "parse_int",
    "read_digits",
    "format_kib_rounded",
    "MAX_DIGITS",
    "parse_size",
    "plain_int",
    "shown",
    "size_kib",
    "to_kib",
    "unit_bytes",
]

# The largest number libvirt reads anywhere (virStrToLong_ull: an unsigned long long).  A number with
# more digits is no count or id of anything, and is refused before it is converted.
MAX_INTEGER = 2**64 - 1
# Guest memory, and a host node's memory: 4 PiB, all a 52-bit physical address space holds.  52 bits is
# the widest any host or guest CPU addresses: x86_64 with 5-level paging (MAX_PHYSMEM_BITS 52, and
# QEMU's phys-bits at most 52), arm64 with 52-bit PAs; ppc64 addresses 51 bits.
MAX_MEMORY_KIB = 4 * 1024**4
MEMORY_LIMIT_REASON = "all a 52-bit physical address space holds"
# The largest page size Linux offers anywhere: 16 GiB (ppc64 16 GiB pages; arm64 with 64 KiB granules).
# x86_64's largest is 1 GiB.
MAX_PAGE_KIB = 16 * 1024**2
PAGE_LIMIT_REASON = "the largest page size Linux has"

_POWERS = "kmgtpe"
# Bytes in one unit of each power's letter: 1024**n (KiB, k, K) and 1000**n (KB).
_BINARY_SCALES: dict[str, int] = {letter: 1024 ** (index + 1) for index, letter in enumerate(_POWERS)}
_DECIMAL_SCALES: dict[str, int] = {letter: 1000 ** (index + 1) for index, letter in enumerate(_POWERS)}

# Characters shown of a long string (or digits of a long number) in a message.
_SHOWN_CHARS = 80


def shown(value: object) -> str:
    """``value`` for an error message: its repr, cut short when long.

    A message must stay readable whatever was given, and Python refuses to write an int of more than
    4300 digits at all: such an int is shown as its order of magnitude.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() <= 128:
            return str(value)
        # The power of ten at or below it: (bits - 1) * log10(2) is that or one less, which one
        # comparison settles (big-integer powers and comparisons are fast; only str() is refused).
        exponent = int((value.bit_length() - 1) * 0.30102999566398)
        if abs(value) >= 10 ** (exponent + 1):
            exponent += 1
        return f"{'-' if value < 0 else ''}about 10^{exponent}"
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= 2 * _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({type(value).__name__})"


def kind(value: object) -> str:
    """The YAML/Jinja name of ``value``'s type, for messages (ansible-core 2.19 passes tagged builtin subclasses)."""
    if value is None:
        return "None"
    for name, types in (
        ("bool", bool),
        ("int", int),
        ("float", float),
        ("str", str),
        ("bytes", bytes),
        ("dict", Mapping),
        ("list", (list, tuple, set, frozenset)),
    ):
        if isinstance(value, types):
            return name
    return type(value).__name__


def _reason(why: str) -> str:
    return f" ({why})" if why else ""


def _digits(token: str) -> str | None:
    """The significant digits of a plain decimal number (``"007"`` -> ``"7"``), None for anything else."""
    if not (token.isascii() and token.isdigit()):
        return None
    return token.lstrip("0") or "0"


# The most significant digits read as a number from text with no limit of its own: far above any
# limit here (MAX_INTEGER has 20 digits), and int() of a longer string costs time quadratic in its
# length (Python refuses past 4300 digits).
MAX_DIGITS = 100


def read_digits(token: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The int a token of ASCII decimal digits writes, None for anything else.

    No sign, no blanks, no ``_`` (``int()`` takes ``'+1'``, ``' 1'``, ``'1_0'`` and ``'٢'``; libvirt
    none of them), and at most ``max_digits`` significant digits.  The one reader of digit text:
    ``parse_int`` adds a limit and a message; callers that pass other values on use this.
    """
    digits = _digits(token)
    if digits is None or len(digits) > max_digits:
        return None
    return int(digits)


# The most digits a number may have to take ``plain_int``'s fast path: any such number is below 2**64,
# so int() of it is cheap and its comparison with any limit here is exact.
_PLAIN_DIGITS = 19


def plain_int(raw: object, limit: int = MAX_INTEGER) -> int | None:
    """``raw`` as an int when it is bare ASCII digits (at most 19) no larger than ``limit``; else None.

    The fast path of readers of many machine-written numbers (a host's capabilities): it builds no
    text.  None sends the caller to ``parse_int`` or ``size_kib``, which refuse with a message, or
    accept what this leaves to them (blanks around the digits, more than 19 digits of leading zeros).
    """
    if isinstance(raw, str) and len(raw) <= _PLAIN_DIGITS and raw.isdigit() and raw.isascii():
        value = int(raw)
        if value <= limit:
            return value
    return None


def _shown_digits(digits: str) -> str:
    if len(digits) <= _SHOWN_CHARS:
        return digits
    return f"{digits[:_SHOWN_CHARS]}... ({len(digits)} digits)"


def parse_int(
    raw: object,
    what: str,
    limit: int = MAX_INTEGER,
    why: str = "",
    error: type[VnumaError] = SpecError,
) -> int:
    """A non-negative integer written in ASCII digits (blanks around allowed), at most ``limit``.

    ``what`` starts every message: ``"{what} 'x' is not a non-negative integer"``,
    ``"{what} 5000 is above the limit of 1023 ({why})"``.  ``error`` is the error class to raise
    (an ``XmlError`` for a document, a ``SpecError`` for a request).
    """
    value = plain_int(raw, limit)
    if value is not None:
        return value
    if not isinstance(raw, str):
        raise error(f"{what} {shown(raw)} is not a non-negative integer")
    digits = _digits(raw.strip())
    if digits is None:
        raise error(f"{what} {shown(raw)} is not a non-negative integer")
    # Lengths first: int() of a long string costs time quadratic in its length.
    if len(digits) > len(str(limit)) or int(digits) > limit:
        raise error(f"{what} {_shown_digits(digits)} is above the limit of {limit}{_reason(why)}")
    return int(digits)


def check_count(name: str, value: object, limit: int | None = None, why: str = "", minimum: int = 1) -> int:
    """``value`` itself when it is an int (not a bool) from ``minimum`` to ``limit``, else a SpecError.

    For numbers that arrive typed (module options, filter arguments, dataclass fields): the check comes
    before anything is built in proportion to the number.  With a limit every refusal is one message that
    gives the whole range, ``"cells 1.5 must be an integer from 1 to 128 (QEMU's MAX_NODES)"``, whichever
    way the value came (a ``<vnuma>`` attribute, a module option, a filter's spec).
    """
    if limit is not None:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= limit:
            raise SpecError(f"{name} {shown(value)} must be an integer from {minimum} to {limit}{_reason(why)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise SpecError(f"{name} {shown(value)} must be {wanted}")
    return value


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
    if lowered[1:] in ("", "ib"):
        return _BINARY_SCALES[lowered[0]]
    if lowered[1:] == "b":
        return _DECIMAL_SCALES[lowered[0]]
    return None


# [0-9], not \d: \d also matches other scripts' digits ('٢٥٦'), which int() would then read.
_SIZE_RE = re.compile(r"^\s*([0-9]+)\s*([A-Za-z]*)\s*$")
# Digits a size may have before it is refused unread: 4 PiB in bytes has 16.
_SIZE_DIGITS = 24


def to_kib(value: int, unit: str = "KiB", what: str = "memory") -> int:
    """Convert ``value`` in ``unit`` to KiB, rounding up as libvirt does (no limit: see ``size_kib``)."""
    scale = unit_bytes(unit) if isinstance(unit, str) else None
    if scale is None:
        raise SpecError(f"{what}: unknown unit {shown(unit)} (use one of KiB, MiB, GiB, TiB, b, KB, MB, GB)")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{what}: {shown(value)} is not a non-negative integer")
    return -(-value * scale // 1024)


def _check_size(kib: int, what: str, given: str, limit: int, why: str, error: type[VnumaError] = SpecError) -> int:
    if kib > limit:
        raise error(f"{what} {given} is above the limit of {format_kib(limit)}{_reason(why)}")
    return kib


def size_kib(
    number: str,
    unit: str,
    what: str,
    limit: int = MAX_MEMORY_KIB,
    why: str = MEMORY_LIMIT_REASON,
    error: type[VnumaError] = SpecError,
) -> int:
    """A size written as a number and a unit apart (``<memory unit='GiB'>16</memory>``), in KiB, at most ``limit``.

    ``unit`` must be one libvirt knows (the caller checks it, to name it its own way).
    """
    if not isinstance(number, str) or _digits(number.strip()) is None:
        raise error(f"{what} {shown(number)} is not a non-negative integer")
    digits = _digits(number.strip()) or "0"
    given = f"{_shown_digits(digits)} {unit}"
    if len(digits) > _SIZE_DIGITS:
        raise error(f"{what} {given} is above the limit of {format_kib(limit)}{_reason(why)}")
    return _check_size(to_kib(int(digits), unit, what), what, given, limit, why, error)


def parse_size(
    text: str | int,
    default_unit: str = "KiB",
    what: str = "memory",
    limit: int = MAX_MEMORY_KIB,
    why: str = MEMORY_LIMIT_REASON,
) -> int:
    """Parse ``"16 GiB"``, ``"512M"`` or a bare number (in ``default_unit``) into KiB, at most ``limit``."""
    if isinstance(text, int) and not isinstance(text, bool):
        return _check_size(to_kib(text, default_unit, what), what, f"{shown(text)} {default_unit}", limit, why)
    if not isinstance(text, str):
        raise SpecError(f"{what}: {shown(text)} is not a size such as '16 GiB' or 524288")
    match = _SIZE_RE.match(text)
    if not match:
        raise SpecError(f"{what}: {shown(text)} is not a size such as '16 GiB' or 524288")
    digits = match.group(1).lstrip("0") or "0"
    unit = match.group(2) or default_unit
    if len(digits) > _SIZE_DIGITS:
        # Refused unread (an unknown unit is still named first, as for a short number).
        to_kib(0, unit, what)
        raise SpecError(f"{what} {shown(text.strip())} is above the limit of {format_kib(limit)}{_reason(why)}")
    return _check_size(to_kib(int(digits), unit, what), what, shown(text.strip()), limit, why)


_BINARY_UNITS = (("EiB", 1024**5), ("PiB", 1024**4), ("TiB", 1024**3), ("GiB", 1024**2), ("MiB", 1024))


def format_kib(kib: int) -> str:
    """Render KiB in the largest binary unit that keeps it whole: ``16 GiB``, ``1536 MiB``, ``4 KiB``."""
    for unit, scale in _BINARY_UNITS:
        if kib and kib % scale == 0:
            return f"{shown(kib // scale)} {unit}"
    return f"{shown(kib)} KiB"


_SCALES = {"TiB": 1024**3, "GiB": 1024**2, "MiB": 1024}


def format_kib_rounded(kib: int, decimals: int, units: tuple[str, ...] = ("GiB", "MiB")) -> str:
    """KiB in the first of ``units`` it reaches, to at most ``decimals`` places: ``4.34 GiB``, ``512 MiB``.

    For the eye (messages, diagrams) where ``format_kib``'s exact figure is long; below every unit, KiB.
    """
    for unit in units:
        scale = _SCALES[unit]
        if kib >= scale:
            return f"{kib / scale:.{decimals}f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{kib} KiB"


# The connection options' limits (seconds): finite, and an hour at most.  A single libvirt call that takes
# longer than an hour (the longest is starting a guest that preallocates its memory) is a hung one.
CONNECT_TIMEOUT_LIMITS = (0.0, 3600.0)
CALL_TIMEOUT_LIMITS = (1.0, 3600.0)
# Waits for other guests or runs: a shutdown (shutdown_timeout, the role's vnuma_fleet_shutdown_timeout) and the
# hypervisor's lock (lock_timeout): a day at most.
SHUTDOWN_TIMEOUT_LIMITS = (0.0, 86400.0)
LOCK_TIMEOUT_LIMITS = (0.0, 86400.0)


def check_seconds(option: str, value: object, limits: tuple[float, float]) -> float:
    """``value`` as seconds within ``limits``, or a SpecError naming the option, the value and the limits."""
    low, high = limits
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{option} {shown(value)} is not a number of seconds from {low:g} to {high:g}")
    if math.isnan(value):
        raise SpecError(f"{option} nan is not a number of seconds from {low:g} to {high:g}")
    if not low <= value <= high:
        # An int is shown as it is: :g of one past a float's range raises OverflowError.
        given = f"{value:g}" if isinstance(value, float) else shown(value)
        raise SpecError(f"{option} {given} is outside {low:g} to {high:g} seconds")
    return float(value)
