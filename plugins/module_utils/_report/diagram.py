# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""A text drawing of the host's NUMA nodes with the guests' cells placed on them.

In the spirit of the drawing in the libvirt vNUMA proposal (one box per node with its CPUs and
memory), each box also lists the guest cells that have vCPUs or memory on that node::

    +- NODE 0 -------------------+  +- NODE 1 -------------------+
    | CPUs 0-3                   |  | CPUs 4-7                   |
    | 4 CPUs, socket 0           |  | 4 CPUs, socket 1           |
    | memory 8 GiB, free 3 GiB   |  | memory 8 GiB, free 5 GiB   |
    +----------------------------+  +----------------------------+
    | app01   c0 1 vCPU 2 GiB !~ |  | app01   c0 1 vCPU     - !~ |
    | db01    c0 2 vCPU 4 GiB    |  | db01    c1 2 vCPU 4 GiB    |
    | web01   c0 1 vCPU 2 GiB !~ |  | web01   c0 1 vCPU 2 GiB !~ |
    +----------------------------+  +----------------------------+

A cell spread over several nodes appears in each, with the share it has there (``~``); a cell
whose memory is not bound to exactly the nodes its vCPUs run on is marked ``!``; a guest that is
not running is drawn where its definition places it and marked ``o``.  The boxes are laid out in
rows of 2 to 4 (a 16-node host is a 4 x 4 grid, fewer per row when the guest lines are long) and
the lines stay within ``MAX_WIDTH`` columns: long guest names are shortened in the middle, and
the summary below the boxes gives them in full; a distance table too wide for them (a 64-node host)
is cut into blocks of columns, one under the other.  The output depends on nothing but its inputs
(sorted by node id, guest name, cell id).

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import CellPlacement, GuestPlacement
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostNode, HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import format_kib_rounded

# The cell entries, node headers and the "elsewhere" lines are shared with the SVG drawing (svg.py).
__all__ = [
    "LEGEND",
    "MAX_WIDTH",
    "MISALIGNED",
    "CellEntry",
    "CellFormatter",
    "cell_entries",
    "elsewhere_lines",
    "node_header",
    "render_diagram",
    "short_size",
]

# The widest line the drawing may have (a 16-node host in rows of 4 included).
MAX_WIDTH = 132
_MIN_INNER = 24
_GAP = "  "
# Guest names in the boxes take 8 to 20 characters (the summary below gives them whole).
_MIN_NAME = 8
_MAX_NAME = 20

MISALIGNED = "!"
SPREAD = "~"
NOT_RUNNING = "o"

LEGEND = (
    "legend: NAME cN   guest NAME's cell N: its vCPUs and memory on this node (dimm: hot-plugged memory)",
    "        0.5 vCPU  vCPUs that float over several nodes count by the share of their time spent here",
    f"        {MISALIGNED}         cell not aligned: memory not bound to exactly the nodes its vCPUs run on",
    f"        {SPREAD}         cell spread over several host nodes: this node's share is shown",
    f"        {NOT_RUNNING}         guest not running: drawn where its definition places it",
)


def short_size(kib: int) -> str:
    """A size for the eye: ``8 GiB``, ``1.5 GiB``, ``512 MiB`` (one decimal at most)."""
    return format_kib_rounded(kib, 1, ("TiB", "GiB", "MiB"))


# A share this close to a whole number of vCPUs is that number: the reports round shares to 4 decimals (0.3333 x 3).
_WHOLE = 0.005


def _vcpu_amount(count: float) -> str:
    """A cell's vCPUs on a node, for the eye: ``2 vCPU``, ``1.5 vCPU``, ``0.25 vCPU``, ``0.016 vCPU``, ``-`` (none).

    A whole number as it is; any other share to two significant digits and at least one decimal, halves rounded up
    (``0.25`` stays 0.25, ``0.125`` is 0.13, ``2.6667`` is 2.7), so that a share is never shown as 0 nor rounded to
    another one-decimal figure than its own.
    """
    if count <= 0:
        return "-"
    whole = round(count)
    if whole >= 1 and abs(count - whole) < _WHOLE:
        return f"{whole} vCPU"
    places = max(1, 1 - math.floor(math.log10(count)))
    text = format(Decimal(repr(count)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP), "f")
    # Two significant digits, not more: a trailing zero goes (0.50 is 0.5), one decimal stays (0.995 is 1.0).
    if places > 1:
        text = text.rstrip("0")
        text = text + "0" if text.endswith(".") else text
    return f"{text} vCPU"


def _shorten(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters, cut in the middle (``vnuma-..-1a2b``): both ends tell guests apart."""
    if len(name) <= width:
        return name
    head = (width - 2 + 1) // 2
    tail = width - 2 - head
    return f"{name[:head]}..{name[-tail:] if tail else ''}"


@dataclass(frozen=True)
class CellEntry:
    """One line of a node box: a guest cell's (or its DIMMs') share of that node."""

    guest: str
    label: str
    vcpus: str
    memory: str
    marks: str


def _marks(cell: CellPlacement | None, spread: bool, running: bool) -> str:
    marks = ""
    if cell is not None and not cell.aligned:
        marks += MISALIGNED
    if spread:
        marks += SPREAD
    if not running:
        marks += NOT_RUNNING
    return marks


def cell_entries(guests: Sequence[GuestPlacement]) -> dict[int, list[CellEntry]]:
    """Host node id -> the lines of its box (node ids the host does not have included)."""
    by_node: dict[int, list[CellEntry]] = {}
    for placement in sorted(guests, key=lambda placement: placement.name):
        running = placement.binding.running
        for cell in sorted(placement.cells, key=lambda cell: cell.id):
            cpu_nodes = {node for node, share in cell.cpu_share.items() if share > 0}
            memory_nodes = {node for node, kib in cell.memory_share.items() if kib > 0}
            nodes = sorted(cpu_nodes | memory_nodes)
            marks = _marks(cell, len(nodes) > 1, running)
            for node in nodes:
                entry = CellEntry(
                    guest=placement.name,
                    label=f"c{cell.id}",
                    vcpus=_vcpu_amount(cell.cpu_share.get(node, 0.0) * len(cell.vcpus)),
                    memory=short_size(cell.memory_share.get(node, 0)) if cell.memory_share.get(node) else "-",
                    marks=marks,
                )
                by_node.setdefault(node, []).append(entry)
        dimm_nodes = sorted(node for node, kib in placement.dimm_share.items() if kib > 0)
        for node in dimm_nodes:
            marks = _marks(None, len(dimm_nodes) > 1, running)
            entry = CellEntry(placement.name, "dimm", "-", short_size(placement.dimm_share[node]), marks)
            by_node.setdefault(node, []).append(entry)
    return by_node


def _wrap_cpuset(prefix: str, cpus: Sequence[int], width: int) -> list[str]:
    """``CPUs 0-31,512-543`` over as many lines as ``width`` needs, broken after commas."""
    text = format_cpuset(cpus)
    lines: list[str] = []
    current = prefix
    for index, part in enumerate(text.split(",")):
        piece = part + ("," if index < text.count(",") else "")
        if len(current) + len(piece) > width and current.strip():
            lines.append(current.rstrip())
            current = " " * len(prefix)
        current += piece
    lines.append(current.rstrip())
    return lines


def node_header(
    node: HostNode,
    width: int,
    free_kib: int | None,
    free_pages: Mapping[int, int] | None,
) -> list[str]:
    lines: list[str] = []
    if node.has_cpus:
        lines.extend(_wrap_cpuset("CPUs ", node.usable_cpus, width))
        sockets = sorted(node.sockets)
        where = f"socket {sockets[0]}" if len(sockets) == 1 else f"sockets {format_cpuset(sockets)}"
        smt = f", SMT{node.threads_per_core}" if node.threads_per_core > 1 else ""
        lines.append(f"{len(node.usable_cpus)} CPUs, {where}{smt}")
    else:
        lines.append("no CPUs (memory only)")
    offline = [cpu.id for cpu in node.cpus if not cpu.online]
    if offline:
        lines.extend(_wrap_cpuset("offline CPUs ", offline, width))
    memory = f"memory {short_size(node.memory_kib)}" if node.memory_kib else "no memory"
    if free_kib is not None:
        memory += f", free {short_size(free_kib)}"
    lines.append(memory)
    pools = dict(node.pages)
    for size in node.hugepage_sizes:
        if not pools[size]:
            continue
        line = f"{short_size(size)} pages: {pools[size]}"
        free = None if free_pages is None else free_pages.get(size)
        if free is not None:
            line += f", {free} free"
        lines.append(line)
    return lines


def _fixed_header_width(
    topology: HostTopology, free_kib: Mapping[int, int], free_pages: Mapping[int, Mapping[int, int]]
) -> int:
    """The widest header line that cannot wrap (cpusets wrap to the box)."""
    widest = 0
    for node in topology.nodes:
        for line in node_header(node, 10**6, free_kib.get(node.id), free_pages.get(node.id)):
            if not line.startswith(("CPUs ", "offline CPUs ")):
                widest = max(widest, len(line))
    return widest


class CellFormatter:
    """Lays one guest entry out in columns shared by every box of the drawing."""

    def __init__(self, entries: Sequence[CellEntry], max_inner: int) -> None:
        self.label = max((len(entry.label) for entry in entries), default=0)
        self.vcpus = max((len(entry.vcpus) for entry in entries), default=0)
        self.memory = max((len(entry.memory) for entry in entries), default=0)
        self.marks = max((len(entry.marks) for entry in entries), default=0)
        # Spaces: after the label and the vCPUs, and before the marks when there are any.
        rest = self.label + self.vcpus + self.memory + self.marks + 2 + (1 if self.marks else 0)
        widest_name = max((len(entry.guest) for entry in entries), default=0)
        self.name = min(widest_name, _MAX_NAME, max(max_inner - rest - 1, _MIN_NAME))
        self.width = self.name + 1 + rest if entries else 0

    def line(self, entry: CellEntry) -> str:
        text = (
            f"{_shorten(entry.guest, self.name):<{self.name}} {entry.label:<{self.label}} "
            f"{entry.vcpus:>{self.vcpus}} {entry.memory:>{self.memory}}"
        )
        if self.marks:
            text += f" {entry.marks:<{self.marks}}"
        return text


def _grid(
    topology: HostTopology,
    by_node: Mapping[int, Sequence[CellEntry]],
    free_kib: Mapping[int, int],
    free_pages: Mapping[int, Mapping[int, int]],
) -> tuple[int, int, CellFormatter]:
    """Boxes per row, the boxes' inner width, and the guest line format.

    A square-ish grid of up to 4 columns (a 16-node host is 4 x 4), fewer when the guest lines
    would not fit ``MAX_WIDTH`` even with names shortened; never fewer than 2 unless the host has
    a single node.
    """
    entries = [entry for lines in by_node.values() for entry in lines]
    fixed = max(_MIN_INNER, _fixed_header_width(topology, free_kib, free_pages))
    node_count = len(topology.nodes)
    most = 1 if node_count == 1 else max(2, min(4, math.ceil(math.sqrt(node_count))))
    for columns in range(most, 0, -1):
        max_inner = (MAX_WIDTH - len(_GAP) * (columns - 1)) // columns - 4
        formatter = CellFormatter(entries, max_inner)
        inner = max(fixed, formatter.width)
        if inner <= max_inner or columns <= min(2, node_count):
            return columns, min(inner, max_inner), formatter
    raise AssertionError("unreachable: one column always fits")


def _box_rows(
    topology: HostTopology,
    by_node: Mapping[int, Sequence[CellEntry]],
    free_kib: Mapping[int, int],
    free_pages: Mapping[int, Mapping[int, int]],
) -> list[str]:
    columns, inner, formatter = _grid(topology, by_node, free_kib, free_pages)
    rule = "+" + "-" * (inner + 2) + "+"
    lines: list[str] = []
    nodes = list(topology.nodes)
    for start in range(0, len(nodes), columns):
        row = nodes[start : start + columns]
        headers = [node_header(node, inner, free_kib.get(node.id), free_pages.get(node.id)) for node in row]
        bodies = [[formatter.line(entry) for entry in by_node.get(node.id, ())] for node in row]
        header_height = max(len(header) for header in headers)
        body_height = max(len(body) for body in bodies)
        boxes = []
        for node, header, body in zip(row, headers, bodies, strict=True):
            title = f"+- NODE {node.id} "
            box = [title + "-" * (len(rule) - len(title) - 1) + "+"]
            box.extend(f"| {text:<{inner}} |" for text in header + [""] * (header_height - len(header)))
            if body_height:
                box.append(rule)
                box.extend(f"| {text:<{inner}} |" for text in body + [""] * (body_height - len(body)))
            box.append(rule)
            boxes.append(box)
        if lines:
            lines.append("")
        lines.extend(_GAP.join(parts).rstrip() for parts in zip(*boxes, strict=True))
    return lines


def elsewhere_lines(guests: Sequence[GuestPlacement], topology: HostTopology) -> list[str]:
    """Memory bound to nodes the host does not have (a definition written for another host)."""
    lines = []
    for placement in sorted(guests, key=lambda placement: placement.name):
        for cell in sorted(placement.cells, key=lambda cell: cell.id):
            for node, kib in sorted(cell.memory_share.items()):
                if kib > 0 and not topology.has_node(node):
                    lines.append(
                        f"{placement.name} c{cell.id}: {short_size(kib)} bound to host node {node}, "
                        "which this host does not have"
                    )
        for node, kib in sorted(placement.dimm_share.items()):
            if kib > 0 and not topology.has_node(node):
                lines.append(
                    f"{placement.name} dimm: {short_size(kib)} bound to host node {node}, which this host does not have"
                )
    return lines


def _distances(topology: HostTopology) -> list[str]:
    if len(topology.nodes) < 2:
        return []
    if not any(node.distances for node in topology.nodes):
        return ["distances: none reported by the host (libvirt assumes 10 to itself, 20 to any other node)"]
    ids = topology.node_ids
    width = max(3, *(len(str(node)) for node in ids), *(len(str(topology.distance(a, b))) for a in ids for b in ids))
    label = max(len("distances"), *(len(f"node {node}") for node in ids))
    # A table wider than MAX_WIDTH is cut into blocks of columns (a 64-node host: 3 blocks), one under the other.
    per_block = max(1, (MAX_WIDTH - label) // (width + 1))
    lines: list[str] = []
    for start in range(0, len(ids), per_block):
        columns = ids[start : start + per_block]
        if lines:
            lines.append("")
        lines.append(f"{'distances':<{label}} " + " ".join(f"{node:>{width}}" for node in columns))
        for row in ids:
            values = " ".join(f"{topology.distance(row, column):>{width}}" for column in columns)
            lines.append(f"{f'node {row}':<{label}} {values}")
    return lines


def _summary(guests: Sequence[GuestPlacement], states: Mapping[str, str]) -> list[str]:
    if not guests:
        return ["guests: none"]
    rows = [("guest", "state", "vCPUs", "memory", "cells", "aligned", "locality")]
    for placement in sorted(guests, key=lambda placement: placement.name):
        running = placement.binding.running
        memory = sum(cell.memory_kib for cell in placement.cells) + sum(placement.dimm_share.values())
        rows.append(
            (
                placement.name,
                states.get(placement.name, "running" if running else "shutoff"),
                str(sum(len(cell.vcpus) for cell in placement.cells)),
                short_size(memory),
                str(len(placement.cells)),
                "yes" if placement.aligned else "no",
                f"{placement.locality:.2f}",
            )
        )
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    # Text columns to the left, numbers to the right.
    right = {2, 3, 4, 6}
    return [
        "  ".join(
            f"{value:>{widths[index]}}" if index in right else f"{value:<{widths[index]}}"
            for index, value in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def render_diagram(
    topology: HostTopology,
    guests: Sequence[GuestPlacement] = (),
    free_kib: Mapping[int, int] | None = None,
    free_pages: Mapping[int, Mapping[int, int]] | None = None,
    states: Mapping[str, str] | None = None,
) -> list[str]:
    """The drawing's lines: the node boxes with the guests' cells, distances, a guest summary, a legend.

    ``free_kib`` and ``free_pages`` (host node -> KiB; host node -> page KiB -> pages) are shown
    where given; ``states`` names each guest's state in the summary (default: running or shutoff).
    """
    by_node = cell_entries(guests)
    lines = _box_rows(topology, by_node, free_kib or {}, free_pages or {})
    for section in (elsewhere_lines(guests, topology), _distances(topology), _summary(guests, states or {}), LEGEND):
        if section:
            lines.append("")
            lines.extend(section)
    return lines
