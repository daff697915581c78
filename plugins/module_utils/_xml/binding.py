# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""A domain definition as a ``GuestBinding``: its cells, memory binding and pins, hand-written ones too.

Also the host CPUs a definition holds for itself (``dedicated_cpus``): the converge engine avoids
them when it places other guests, and vnuma_info reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import (
    CellBinding,
    DimmBinding,
    GuestBinding,
    held_cpus,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import read_stored_spec

__all__ = ["binding_from_domain", "dedicated_cpus"]


def _cell_page_sizes(numa: DomainNuma) -> dict[int | None, int]:
    """Guest cell id -> hugepage size; key None for pages without a nodeset (every cell)."""
    sizes: dict[int | None, int] = {}
    if numa.hugepages is None:
        return sizes
    for page in numa.hugepages.pages:
        for cell in page.nodeset or (None,):
            sizes[cell] = page.size_kib
    return sizes


def binding_from_domain(
    numa: DomainNuma,
    name: str,
    running: bool = False,
    autostart: bool = False,
    dedicated_cpus: Iterable[int] = (),
    plugged: Mapping[str, int] | None = None,
) -> GuestBinding:
    """What a definition says about where the guest runs and where its memory lives.

    https://libvirt.org/formatdomain.html#numa-node-tuning: a ``<memnode cellid>`` binds one cell;
    cells without one follow ``<numatune><memory>``; ``placement='auto'`` leaves the nodes to numad,
    which the definition cannot tell, so such memory counts as unbound.  A guest without ``<numa>``
    is one cell holding every vCPU and all its memory.  ``plugged`` maps a device's alias to what the
    running guest's device has plugged (its live ``<current>``), for a definition read inactive; a live
    definition states it itself.
    """
    memory = numa.numatune.memory if numa.numatune is not None else None
    guest_mode = None
    guest_nodes: tuple[int, ...] = ()
    if memory is not None and memory.placement != "auto" and memory.nodeset:
        guest_mode, guest_nodes = memory.mode, memory.nodeset
    memnodes = {node.cellid: node for node in numa.numatune.memnodes} if numa.numatune is not None else {}
    pages = _cell_page_sizes(numa)
    vcpu_count = numa.vcpu.count if numa.vcpu is not None else 1
    if numa.numa is not None and numa.numa.cells:
        shapes = [(cell.id, cell.cpus, cell.memory_kib) for cell in numa.numa.cells]
    else:
        boot_kib = (numa.memory_kib or 0) - numa.device_memory_kib
        shapes = [(0, tuple(range(vcpu_count)), max(boot_kib, 0))]
    cells = []
    for cell_id, vcpus, memory_kib in shapes:
        memnode = memnodes.get(cell_id)
        mode, nodes = (memnode.mode, memnode.nodeset) if memnode is not None else (guest_mode, guest_nodes)
        cells.append(
            CellBinding(
                id=cell_id,
                vcpus=tuple(vcpus),
                memory_kib=memory_kib,
                memory_mode=mode,
                memory_nodes=tuple(nodes),
                hugepage_kib=pages.get(cell_id, pages.get(None)),
            )
        )
    return GuestBinding(
        name=name,
        cells=tuple(cells),
        vcpu_cpus={pin.vcpu: pin.cpuset for pin in numa.vcpupins},
        # placement='auto' runs the vCPUs where numad advises and ignores the cpuset (formatdomain.html#cpu-allocation).
        default_cpus=numa.vcpu.cpuset if numa.vcpu is not None and numa.vcpu.placement != "auto" else None,
        emulator_cpus=numa.emulatorpin.cpuset if numa.emulatorpin is not None else None,
        dimms=tuple(
            # A virtio-mem device holds host memory for what it is asked to plug, not for its whole size.
            DimmBinding(
                cell=device.node,
                size_kib=device.committed_kib,
                host_nodes=device.nodemask,
                hugepage_kib=device.pagesize_kib,
                plugged_kib=device.current_kib or (plugged or {}).get(device.alias or "", 0),
            )
            for device in numa.memory_devices
        ),
        dedicated_cpus=tuple(sorted(set(dedicated_cpus))),
        running=running,
        autostart=autostart,
    )


def dedicated_cpus(topology: HostTopology, root: etree._Element, name: str) -> dict[int, str]:
    """Host CPUs a definition holds for itself (``_core/placement.py:held_cpus``), each to ``name``.

    A guest the collection placed says its pinning in its stored spec; a hand-pinned guest has none.
    """
    try:
        spec = read_stored_spec(root)
    except VnumaError:
        # A stored spec that cannot be read says nothing: count the pins as a hand-pinned guest's, the
        # conservative reading (vnuma_info reports the spec's error; it must not block other guests).
        spec = None
    pins: list[frozenset[int]] = []
    for element in root.iterfind("cputune/vcpupin"):
        try:
            pins.append(parse_cpuset(element.get("cpuset", ""), "<vcpupin cpuset>"))
        except VnumaError:
            # A pin libvirt would not have stored holds nothing; reading the domain reports it.
            continue
    emulator = None
    if spec is not None and spec.isolates_emulator:
        pin = root.find("cputune/emulatorpin")
        try:
            emulator = None if pin is None else parse_cpuset(pin.get("cpuset", ""), "<emulatorpin cpuset>")
        except VnumaError:
            emulator = None
    return dict.fromkeys(held_cpus(pins, None if spec is None else spec.pinning, topology, emulator), name)
