# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Which guests a list of names and shell patterns selects: the one rule of every module and the role.

An entry that is exactly the name of a defined guest means that guest, even when the name holds
pattern characters (a guest literally named ``web[1]``).  Any other entry is a shell pattern
(``fnmatch``, case-sensitive); an entry without pattern characters that names no defined guest
matches nothing.  ``exclude`` entries follow the same rule.

With ``exact`` (the modules' ``exact_names``) every entry is a name and never a pattern.  A list of names
computed earlier in a run (the vnuma_fleet role's apply, restart and verify calls) needs it: once a guest
named ``web[12]`` is undefined under the run, its name would otherwise select ``web1`` and ``web2``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import kind

__all__ = ["check_entries", "check_entry", "excluded", "is_pattern", "matching", "select"]

_PATTERN_CHARS = "*?["


def is_pattern(entry: str) -> bool:
    """Whether ``entry`` has shell pattern characters (it may still be a guest's exact name)."""
    return any(char in entry for char in _PATTERN_CHARS)


def check_entry(option: str, index: int, entry: Any) -> None:
    """Refuse entry ``index`` of ``option`` unless it is a non-empty string: it could only match nothing."""
    if not isinstance(entry, str):
        raise SpecError(f"{option}[{index}] {entry!r} is not a guest name or a shell pattern")
    if not entry:
        raise SpecError(f"{option}[{index}] is empty: give a guest name or a shell pattern")


def check_entries(option: str, entries: Any) -> None:
    """``check_entry`` on every entry of ``option``, which must be a list (a string would be read letter by letter)."""
    if not isinstance(entries, (list, tuple)):
        raise SpecError(f"{option} must be a list of guest names or shell patterns, got {kind(entries)}")
    for index, entry in enumerate(entries):
        check_entry(option, index, entry)


def matching(entry: str, names: Sequence[str], defined: frozenset[str] | None = None, exact: bool = False) -> list[str]:
    """The names of ``names`` that ``entry`` selects, in their order.

    ``defined`` is ``frozenset(names)`` (pass it when calling in a loop, so that it is built once).
    """
    if entry in (defined if defined is not None else names):
        return [entry]
    if exact:
        return []
    return [name for name in names if fnmatch.fnmatchcase(name, entry)]


def excluded(name: str, excludes: Sequence[str], defined: frozenset[str], exact: bool = False) -> bool:
    """Whether an entry of ``excludes`` selects ``name`` among the ``defined`` guests."""
    for entry in excludes:
        if entry == name:
            return True
        # An exclude entry that names another defined guest exactly means that guest only.
        if not exact and entry not in defined and fnmatch.fnmatchcase(name, entry):
            return True
    return False


def select(
    names: Sequence[str], includes: Sequence[str], excludes: Sequence[str], exact: bool = False
) -> tuple[list[str], list[str]]:
    """The names selected by ``includes`` less ``excludes``, in the order of ``names``; and the include
    entries that selected no name at all (before ``excludes``), for a warning."""
    defined = frozenset(names)
    chosen: set[str] = set()
    unmatched = []
    for entry in includes:
        found = matching(entry, names, defined, exact)
        if not found:
            unmatched.append(entry)
        chosen.update(found)
    selected = [name for name in names if name in chosen and not excluded(name, excludes, defined, exact)]
    return selected, unmatched
