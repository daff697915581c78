# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A planned layout's binding read straight off the model: the reference the XML path is held to.

The engine reads a planned guest's binding from the definition it is about to write
(``_xml.binding.binding_from_domain``); the tests compare that with this, which takes the cells,
pins and pages from the ``Layout`` alone, so an XML reading error cannot hide behind itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    DimmBinding,
    GuestBinding,
)


def binding_from_layout(
    layout: Layout,
    name: str,
    running: bool = False,
    autostart: bool = False,
    dedicated_cpus: Iterable[int] = (),
    dimms: Sequence[DimmBinding] = (),
    default_cpus: tuple[int, ...] | None = None,
) -> GuestBinding:
    """The binding a planned layout gives its guest once defined."""
    pins = layout.vcpu_pins
    return GuestBinding(
        name=name,
        cells=tuple(
            CellBinding(
                id=cell.id,
                vcpus=cell.vcpus,
                memory_kib=cell.memory_kib,
                memory_mode=layout.spec.memory_mode,
                memory_nodes=cell.memory_nodes,
                hugepage_kib=layout.hugepages_kib,
            )
            for cell in layout.cells
        ),
        vcpu_cpus={} if pins is None else dict(enumerate(pins)),
        default_cpus=default_cpus,
        emulator_cpus=layout.emulator_pins,
        dimms=tuple(dimms),
        dedicated_cpus=tuple(sorted(set(dedicated_cpus))),
        running=running,
        autostart=autostart,
        source="planned",
    )
