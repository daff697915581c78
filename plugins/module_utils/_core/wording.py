# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""How messages name host nodes, guest cells and counts: one wording for every message.

``nodes_text`` (``host node 2``, ``host nodes 0-1,4``), ``cells_text`` (``cell 1``, ``cells 0-3``) and
``plural`` (``1 memory slot``, ``2 memory slots``).  A set is written as libvirt writes a nodeset
(``_core/cpuset.py:format_cpuset``), so a message names nodes the way the domain XML does.  How a bad
value is quoted is ``_core/units.py:shown``, not here: cpuset.py quotes with it, and this file imports
cpuset.py.

Pure: the standard library and ``_core`` only.
"""

from __future__ import annotations

from collections.abc import Iterable

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset

__all__ = ["cells_text", "nodes_text", "plural"]


def plural(count: int, what: str) -> str:
    """``count`` and ``what``, with an ``s`` unless ``count`` is 1: ``1 DIMM``, ``0 DIMMs``, ``3 DIMMs``."""
    return f"{count} {what}" if count == 1 else f"{count} {what}s"


def _numbered(what: str, ids: Iterable[int]) -> str:
    unique = set(ids)
    return f"{what}{'' if len(unique) == 1 else 's'} {format_cpuset(unique)}"


def nodes_text(nodes: Iterable[int]) -> str:
    """Host nodes in a message: ``host node 2``, ``host nodes 0-1,4``."""
    return _numbered("host node", nodes)


def cells_text(cells: Iterable[int]) -> str:
    """Guest cells in a message: ``cell 1``, ``cells 0-3``."""
    return _numbered("cell", cells)
