# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Domains and layouts built by hand for the tests of the owned domain parts (the partitioner is tested on its own)."""

from __future__ import annotations

from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import GuestCell, GuestTopology, Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml

__all__ = ["DIMMS", "GIB", "PLAIN", "RING", "c14n", "make_layout", "render", "same_xml", "with_dimms", "xml"]

GIB = 1024 * 1024


def xml(text: str) -> Any:
    return parse_xml(text, "test XML")


def c14n(element: Any) -> str:
    return etree.tostring(element, method="c14n").decode()


def same_xml(element: Any, text: str) -> bool:
    return c14n(element) == c14n(xml(text))


# --------------------------------------------------------------------------------------------------
# Layouts built by hand (the partitioner is tested on its own)
# --------------------------------------------------------------------------------------------------

RING = ((10, 21, 31, 21), (21, 10, 21, 31), (31, 21, 10, 21), (21, 31, 21, 10))


def make_layout(
    cells: int = 2,
    vcpus: int = 8,
    current: int | None = None,
    memory_kib: int = GIB,
    pins: bool = True,
    emulator: tuple[int, ...] | None = None,
    enable_order: tuple[int, ...] | None = None,
    distances: tuple[tuple[int, ...], ...] | None = None,
    spec: VnumaSpec | None = None,
    **extra: Any,
) -> Layout:
    per_cell = vcpus // cells
    matrix = distances or tuple(
        tuple(RING[i][j] if cells <= 4 else (10 if i == j else 20) for j in range(cells)) for i in range(cells)
    )
    guest_cells = tuple(
        GuestCell(
            id=cell,
            vcpus=tuple(range(cell * per_cell, (cell + 1) * per_cell)),
            memory_kib=memory_kib,
            host_nodes=(cell,),
            memory_nodes=(cell,),
            distances=matrix[cell],
        )
        for cell in range(cells)
    )
    vcpu_pins = (
        tuple(tuple(range(4 * (v // per_cell), 4 * (v // per_cell) + 4)) for v in range(vcpus)) if pins else None
    )
    return Layout(
        spec=spec or VnumaSpec(),
        vcpus=vcpus,
        current_vcpus=vcpus if current is None else current,
        cells=guest_cells,
        topology=GuestTopology(sockets=cells, dies=1, cores=per_cell, threads=1),
        numatune_mode="strict",
        numatune_nodes=tuple(range(cells)),
        vcpu_pins=vcpu_pins,
        emulator_pins=emulator,
        enable_order=enable_order or tuple(range(vcpus)),
        **extra,
    )


PLAIN = """<domain type='kvm'>
  <name>g1</name>
  <memory unit='GiB'>2</memory>
  <currentMemory unit='GiB'>2</currentMemory>
  <vcpu>8</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
  </devices>
</domain>"""


def render(domain: str, layout: Layout) -> tuple[Any, DomainNuma, DomainNuma]:
    """Apply ``layout`` to ``domain``: (new root, model before, model after)."""
    root = xml(domain)
    before = DomainNuma.from_domain(root)
    target = DomainNuma.from_layout(layout, before)
    target.apply(root)
    return root, before, target


DIMMS = """
    <memory model='dimm'>
      <target>
        <size unit='MiB'>512</size>
        <node>1</node>
      </target>
    </memory>
    <memory model='dimm'>
      <target>
        <size unit='MiB'>256</size>
        <node>0</node>
      </target>
    </memory>"""


def with_dimms(domain: str = PLAIN) -> str:
    """``domain`` with two DIMMs (512 MiB on cell 1, 256 MiB on cell 0) and the memory that counts them."""
    domain = domain.replace(
        "<memory unit='GiB'>2</memory>",
        "<maxMemory slots='8' unit='GiB'>32</maxMemory>\n  <memory unit='MiB'>2816</memory>",
    )
    domain = domain.replace(
        "<currentMemory unit='GiB'>2</currentMemory>", "<currentMemory unit='MiB'>2816</currentMemory>"
    )
    return domain.replace("</emulator>", "</emulator>" + DIMMS)
