# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The indices of the collection's PCI controllers, and the controllers libvirt fills the gaps below them with.

libvirt gives every index below the highest in use a controller (``fillers``), so the collection's take the
lowest indices nothing else uses (``numbered``) and a warning names those its controllers leave unused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import count, islice

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_domain import PCI_BRIDGE, ROOT_PORT, PciDomain

__all__ = ["filler_warning", "fillers", "numbered", "other_models"]


def other_models(domain: PciDomain) -> tuple[tuple[int, str], ...]:
    return tuple(
        sorted((controller.index, controller.model) for controller in domain.controllers if not controller.owned)
    )


def fillers(in_use: Iterable[int], pcie: bool) -> tuple[tuple[int, str], ...]:
    """The controllers libvirt adds for the indices below the highest in use that nothing uses (qemuDomain-
    PCIAddressSetCreate gives every bus up to the highest a controller): root ports on q35, PCI bridges else."""
    used = set(in_use)
    model = ROOT_PORT if pcie else PCI_BRIDGE
    return tuple((index, model) for index in range(1, max(used, default=0)) if index not in used)


def numbered(
    wanted: list[tuple[str, str | None]], had: Mapping[str, int], fixed: set[int], pinned: Mapping[str, int]
) -> dict[str, int]:
    """The index of each of the collection's controllers ``wanted`` (alias, the alias of the expander bus it
    plugs into), in order, each expander bus before its root ports.

    ``pinned`` keep theirs (something else sits on them).  The others take the lowest indices not in ``fixed``
    (the indices that stay in use), as many as they are, so that no index is left unused below them; one that
    already has one of those keeps it (a rerun writes nothing).  A root port's index must be above its expander
    bus's (libvirt: "index must be larger than bus"); when keeping breaks that, they are numbered in order.
    """
    taken = set(fixed) | set(pinned.values())
    rest = [(alias, parent) for alias, parent in wanted if alias not in pinned]
    free = list(islice((index for index in count(1) if index not in taken), len(rest)))
    result = dict(pinned)
    for alias, _parent in rest:
        index = had.get(alias)
        if index in free and index not in result.values():
            result[alias] = index
    left = iter(sorted(set(free) - set(result.values())))
    for alias, _parent in rest:
        if alias not in result:
            result[alias] = next(left)
    if any(parent is not None and result[alias] <= result[parent] for alias, parent in wanted):
        result = dict(pinned)
        used = set(taken)
        for alias, parent in rest:
            floor = 0 if parent is None else result[parent]
            index = next(index for index in count(floor + 1) if index not in used)
            used.add(index)
            result[alias] = index
    return result


def filler_warning(fillers: tuple[tuple[int, str], ...], freed: set[int], top: int) -> list[str]:
    """A warning for the unused indices the collection's controllers leave: libvirt's controllers there stay."""
    left = sorted(index for index, _model in fillers if index in freed)
    if not left:
        return []
    model = fillers[0][1]
    several = len(left) > 1
    return [
        f"PCI controller {'indices' if several else 'index'} {format_cpuset(left)} of the collection's controllers "
        f"{'are' if several else 'is'} left unused below index {top}, which stays in use: libvirt adds a {model} "
        f"at {'each' if several else 'it'}, which is not the collection's and stays when its controllers go"
    ]
