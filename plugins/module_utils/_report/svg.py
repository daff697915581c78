# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The host diagram as SVG: the text drawing of ``diagram.py``, drawn for the HTML report.

The same model and the same lines as the text drawing: one box per host node with its header
(CPUs, memory, free memory, hugepage pools) and one line per guest cell on that node
(``NAME cN vCPUs memory marks``, columns and markers as in ``diagram.py``).  On top of the text,
each box draws its CPUs as small squares (a core's threads side by side; a CPU a guest holds for
itself in that guest's colour, an offline CPU hollow) and the guests' memory on the node as a bar.
The bar counts what the capacity check counts (``_core/capacity.py:counts``): the memory of the guests that run
or start with the host, red when it is more than the node has; a shut-off guest's memory is drawn after it, pale,
and said apart ("+1 GiB shut off, not counted").  A node without CPUs has a dashed box and says "memory only".

Sizes are fixed and computed from the topology: boxes of ``BOX_WIDTH`` pixels in rows of 1 to 4
(the text drawing's rule: a 16-node host is a 4 x 4 grid), each as tall as its row needs.  What a
box draws is capped so that a large host stays readable: ``MAX_CPUS`` squares, ``MAX_CELLS`` guest
lines, ``MAX_CPUSET_LINES`` lines of CPU list, ``MAX_NODES`` boxes; each cap says "+N more".
Every text is escaped, and characters XML cannot carry are replaced, so that any guest name gives
well-formed XML.  The result is an ``<svg>`` element without an XML declaration, to be inlined in
HTML or written to a file as it is.  It depends on nothing but its inputs.

Pure: no Ansible, libvirt or lxml.
"""

from __future__ import annotations

import html
import math
import re
import textwrap
from collections.abc import Mapping, Sequence

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import counts
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import GuestPlacement
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostNode, HostTopology

# The text drawing's own rules and lines: one drawing, two renderings.
from ansible_collections.vnuma.libvirt.plugins.module_utils._report.diagram import (
    LEGEND,
    MISALIGNED,
    CellEntry,
    CellFormatter,
    cell_entries,
    elsewhere_lines,
    node_header,
    short_size,
)

__all__ = ["BOX_WIDTH", "MAX_CELLS", "MAX_CPUS", "MAX_CPUSET_LINES", "MAX_NODES", "render_svg"]

BOX_WIDTH = 300
MAX_NODES = 32
MAX_CPUS = 78
MAX_CELLS = 12
MAX_CPUSET_LINES = 3

_MARGIN = 12
_GAP = 16
_PAD = 8
_LINE = 16
# A generous advance for a 12 px monospace glyph (0.6 em in most fonts): text never leaves its box.
_CHAR = 7.5
_TITLE = 22
_SQUARE = 8
_SQUARE_STEP = 10
_BAR = 10
_SWATCH = 10
_INNER = BOX_WIDTH - 2 * _PAD
_TEXT_CHARS = int(_INNER / _CHAR)
# Guest lines start after their colour swatch.
_ENTRY_CHARS = int((_INNER - _SWATCH - 4) / _CHAR)
_SQUARES_PER_ROW = (_INNER + _SQUARE_STEP - _SQUARE) // _SQUARE_STEP

# Guests' colours (Tableau 10), given in guest name order.
_COLOURS = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
_STYLE = (
    "text{font:12px ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,monospace;fill:#1d2430;white-space:pre}"
    ".vn-title{font-weight:700;font-size:14px}"
    ".vn-node{fill:#fff;stroke:#8a94a3}"
    ".vn-memonly{fill:#f6f8fa;stroke:#8a94a3;stroke-dasharray:5 3}"
    ".vn-head{fill:#1d4f91}.vn-memonly-head{fill:#d5dbe3}"
    ".vn-headtext{fill:#fff;font-weight:700}.vn-memonly-headtext{fill:#1d2430;font-weight:700}"
    ".vn-cpu{fill:#dfe7f1;stroke:#8a94a3;stroke-width:.5}"
    ".vn-offline{fill:none;stroke:#8a94a3;stroke-width:.5;stroke-dasharray:2 1}"
    ".vn-bar{fill:#f1f4f8;stroke:#8a94a3;stroke-width:.5}.vn-over{fill:none;stroke:#9b1c1c;stroke-width:2}"
    ".vn-idle{fill-opacity:.3;stroke:#8a94a3;stroke-width:.5;stroke-dasharray:2 1}"
    ".vn-muted{fill:#5a6473}.vn-bad{fill:#9b1c1c;font-weight:700}.vn-rule{stroke:#d5dbe3}"
)

# Where the text of each legend line starts ("legend: NAME cN   guest NAME's...").
_LEGEND_TEXT = len(LEGEND[0]) - len(LEGEND[0].split("   ", 1)[1])
# The SVG's own legend line, for its memory bar, under the text drawing's.
_BAR_LEGEND = (
    f"{'':8}{'bar':<{_LEGEND_TEXT - 8}}memory the guests take on the node, as the capacity check counts it: running "
    "and autostart guests (red past the node's memory); shut-off guests pale after them, not counted"
)
_XMLNS = ' xmlns="http://www.w3.org/2000/svg"'
# Characters XML 1.0 cannot carry at all, escaped or not.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape(text: str) -> str:
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 0)] + "\u2026"


def _text(x: int, y: int, text: str, css: str = "", anchor: str = "") -> str:
    attributes = f' class="{css}"' if css else ""
    if anchor:
        attributes += f' text-anchor="{anchor}"'
    return f'<text x="{x}" y="{y}"{attributes}>{_escape(text)}</text>'


def _columns(count: int) -> int:
    # The text drawing's grid: square-ish, 2 to 4 per row, a single node alone.
    return 1 if count == 1 else max(2, min(4, math.ceil(math.sqrt(count))))


def _cpu_order(node: HostNode) -> list[tuple[int, bool]]:
    """(CPU id, online) in drawing order: core by core, so that a core's threads sit side by side."""
    order = [(cpu, True) for core in node.cores for cpu in core]
    order.extend((cpu.id, False) for cpu in sorted(node.cpus, key=lambda cpu: cpu.id) if not cpu.online)
    return order


def _cap_lists(header: Sequence[str]) -> list[str]:
    """The header with each wrapped CPU list (continuation lines are indented) cut to ``MAX_CPUSET_LINES``."""
    groups: list[list[str]] = []
    for line in header:
        if line.startswith(" ") and groups:
            groups[-1].append(line)
        else:
            groups.append([line])
    lines = []
    for group in groups:
        if len(group) > MAX_CPUSET_LINES:
            group = [*group[: MAX_CPUSET_LINES - 1], group[MAX_CPUSET_LINES - 1].rstrip(",") + " \u2026"]
        lines.extend(group)
    return lines


class _Box:
    """One node's box: its parts' text and figures, and its height."""

    def __init__(
        self,
        node: HostNode,
        entries: Sequence[CellEntry],
        memory: Mapping[str, int],
        idle: Mapping[str, int],
        free_kib: int | None,
        free_pages: Mapping[int, int] | None,
    ) -> None:
        self.node = node
        header = node_header(node, _TEXT_CHARS, free_kib, free_pages)
        self.header = [_fit(line, _TEXT_CHARS) for line in _cap_lists(header)]
        cpus = _cpu_order(node)
        self.cpus = cpus[:MAX_CPUS]
        self.more_cpus = len(cpus) - len(self.cpus)
        # Guest -> KiB on the node: of the guests the capacity check counts, and of the others (shut off).
        self.memory = memory
        self.idle = idle
        if len(entries) > MAX_CELLS:
            self.entries, self.more_cells = list(entries[: MAX_CELLS - 1]), len(entries) - (MAX_CELLS - 1)
        else:
            self.entries, self.more_cells = list(entries), 0

    @property
    def cpu_rows(self) -> int:
        return math.ceil(len(self.cpus) / _SQUARES_PER_ROW)

    @property
    def height(self) -> int:
        height = _TITLE + _PAD + _LINE * len(self.header)
        if self.cpus:
            height += self.cpu_rows * _SQUARE_STEP + 4 + (_LINE if self.more_cpus else 0)
        if self.node.memory_kib:
            height += _BAR + 4 + _LINE * (2 if self.idle else 1)
        lines = len(self.entries) + (1 if self.more_cells else 0)
        if lines:
            height += 6 + _LINE * lines
        return height + _PAD


class _Drawing:
    """The SVG elements of one drawing, and what every box shares: the guests' colours, who holds which CPU."""

    def __init__(self, guests: Sequence[GuestPlacement]) -> None:
        names = sorted({placement.name for placement in guests})
        self.colour = {name: _COLOURS[index % len(_COLOURS)] for index, name in enumerate(names)}
        # Host CPU -> the guest that holds it for itself (dedicated pinning).
        self.holder = {cpu: placement.name for placement in guests for cpu in placement.binding.dedicated_cpus}
        self.parts: list[str] = []

    def box(self, box: _Box, x: int, y: int, height: int, formatter: CellFormatter) -> None:
        node = box.node
        cpu_less = not node.has_cpus
        out = self.parts
        out.append(f'<g aria-label="{_escape(f"host node {node.id}")}">')
        css = "vn-memonly" if cpu_less else "vn-node"
        out.append(f'<rect class="{css}" x="{x}" y="{y}" width="{BOX_WIDTH}" height="{height}" rx="4"/>')
        head = "vn-memonly-head" if cpu_less else "vn-head"
        out.append(f'<rect class="{head}" x="{x}" y="{y}" width="{BOX_WIDTH}" height="{_TITLE}" rx="4"/>')
        head_css = "vn-memonly-headtext" if cpu_less else "vn-headtext"
        out.append(_text(x + _PAD, y + 16, f"NODE {node.id}", head_css))
        sockets = sorted(node.sockets)
        where = "memory only" if cpu_less else ", ".join(f"socket {socket}" for socket in sockets)
        out.append(_text(x + BOX_WIDTH - _PAD, y + 16, _fit(where, 24), head_css, "end"))
        top = y + _TITLE + _PAD
        for line in box.header:
            top += _LINE
            out.append(_text(x + _PAD, top - 4, line))
        if box.cpus:
            top += 2
            for index, (cpu, online) in enumerate(box.cpus):
                cx = x + _PAD + (index % _SQUARES_PER_ROW) * _SQUARE_STEP
                cy = top + (index // _SQUARES_PER_ROW) * _SQUARE_STEP
                holder = self.holder.get(cpu)
                if not online:
                    fill = 'class="vn-offline"'
                elif holder is not None:
                    fill = f'class="vn-cpu" style="fill:{self.colour[holder]}"'
                else:
                    fill = 'class="vn-cpu"'
                tip = f"CPU {cpu}" + ("" if online else " (offline)") + (f", held by {holder}" if holder else "")
                out.append(
                    f'<rect {fill} x="{cx}" y="{cy}" width="{_SQUARE}" height="{_SQUARE}">'
                    f"<title>{_escape(tip)}</title></rect>"
                )
            top += box.cpu_rows * _SQUARE_STEP + 2
            if box.more_cpus:
                top += _LINE
                out.append(_text(x + _PAD, top - 4, f"+{box.more_cpus} more CPUs", "vn-muted"))
        if node.memory_kib:
            self.memory_bar(box, x + _PAD, top + 2)
            top += _BAR + 4 + _LINE * (2 if box.idle else 1)
        if box.entries or box.more_cells:
            out.append(f'<line class="vn-rule" x1="{x}" y1="{top + 2}" x2="{x + BOX_WIDTH}" y2="{top + 2}"/>')
            top += 6
        for entry in box.entries:
            top += _LINE
            self.entry(entry, x + _PAD, top, formatter)
        if box.more_cells:
            top += _LINE
            out.append(_text(x + _PAD, top - 4, f"+{box.more_cells} more cells", "vn-muted"))
        out.append("</g>")

    def memory_bar(self, box: _Box, x: int, y: int) -> None:
        """The node's memory as a bar: the counted guests' memory, then the shut-off guests' (pale), and the figures.

        Red (and "over") only when the counted guests take more than the node has: a shut-off guest takes nothing
        until it starts, as the capacity check counts (``_core/capacity.py:counts``).
        """
        total = sum(box.memory.values())
        idle = sum(box.idle.values())
        scale = max(box.node.memory_kib, total + idle)
        out = self.parts
        out.append(f'<rect class="vn-bar" x="{x}" y="{y}" width="{_INNER}" height="{_BAR}"/>')
        left = 0.0
        segments = [(name, kib, False) for name, kib in sorted(box.memory.items())]
        segments.extend((name, kib, True) for name, kib in sorted(box.idle.items()))
        for name, kib, shut_off in segments:
            width = _INNER * kib / scale
            tip = f"{name}: {short_size(kib)}" + (" (shut off, not counted)" if shut_off else "")
            css = ' class="vn-idle"' if shut_off else ""
            out.append(
                f'<rect{css} x="{x + left:.1f}" y="{y}" width="{width:.1f}" height="{_BAR}" '
                f'style="fill:{self.colour[name]}">'
                f"<title>{_escape(tip)}</title></rect>"
            )
            left += width
        text, css = f"guests {short_size(total)} of {short_size(box.node.memory_kib)}", "vn-muted"
        if total > box.node.memory_kib:
            out.append(f'<rect class="vn-over" x="{x}" y="{y}" width="{_INNER}" height="{_BAR}"/>')
            text, css = f"{text}, {short_size(total - box.node.memory_kib)} over", "vn-bad"
        out.append(_text(x, y + _BAR + _LINE - 2, _fit(text, _TEXT_CHARS), css))
        if idle:
            note = f"+{short_size(idle)} shut off, not counted"
            out.append(_text(x, y + _BAR + 2 * _LINE - 2, _fit(note, _TEXT_CHARS), "vn-muted"))

    def entry(self, entry: CellEntry, x: int, bottom: int, formatter: CellFormatter) -> None:
        line = formatter.line(entry)
        marks = line[len(line) - formatter.marks :] if formatter.marks else ""
        body = _fit(line[: len(line) - len(marks)].rstrip(), _ENTRY_CHARS - len(marks) - 1)
        tip = f"{entry.guest} {entry.label}: {entry.vcpus}, {entry.memory}" + (
            f" [{entry.marks}]" if entry.marks else ""
        )
        text_x = x + _SWATCH + 4
        parts = [
            f"<g><title>{_escape(tip)}</title>",
            f'<rect x="{x}" y="{bottom - 13}" width="{_SWATCH}" height="{_SWATCH}" '
            f'style="fill:{self.colour[entry.guest]}"/>',
            f'<text x="{text_x}" y="{bottom - 4}">{_escape(body)}',
        ]
        if marks.strip():
            css = "vn-bad" if MISALIGNED in marks else "vn-muted"
            parts.append(f' <tspan class="{css}">{_escape(marks.strip())}</tspan>')
        parts.append("</text></g>")
        self.parts.append("".join(parts))


def _memory_by_node(guests: Sequence[GuestPlacement], counted: bool) -> dict[int, dict[str, int]]:
    """Host node -> guest -> KiB of its cells and DIMMs there, of the guests the capacity check counts or of the others.

    ``counted``: the guests that run or start with the host (``_core/capacity.py:counts``); else the shut-off ones.
    """
    memory: dict[int, dict[str, int]] = {}
    for placement in guests:
        if counts(placement.binding) != counted:
            continue
        shares = [cell.memory_share for cell in placement.cells]
        shares.append(placement.dimm_share)
        for share in shares:
            for node, kib in share.items():
                if kib > 0:
                    memory.setdefault(node, {})[placement.name] = memory.get(node, {}).get(placement.name, 0) + kib
    return memory


def render_svg(
    topology: HostTopology,
    guests: Sequence[GuestPlacement] = (),
    free_kib: Mapping[int, int] | None = None,
    free_pages: Mapping[int, Mapping[int, int]] | None = None,
    title: str = "",
    standalone: bool = True,
) -> str:
    """The host diagram as an ``<svg>`` element: ``title`` on top, the node boxes, the legend.

    The arguments are ``diagram.py:render_diagram``'s (``free_kib``: host node -> KiB;
    ``free_pages``: host node -> page KiB -> pages).  ``standalone``: with the SVG namespace, as an
    ``.svg`` file needs it; without, HTML's parser puts an inline ``<svg>`` in it by itself (and the
    page names no URL at all).
    """
    free_kib = free_kib or {}
    free_pages = free_pages or {}
    by_node = cell_entries(guests)
    memory, idle = _memory_by_node(guests, True), _memory_by_node(guests, False)
    nodes = list(topology.nodes)
    drawn = nodes[:MAX_NODES]
    boxes = [
        _Box(
            node,
            by_node.get(node.id, ()),
            memory.get(node.id, {}),
            idle.get(node.id, {}),
            free_kib.get(node.id),
            free_pages.get(node.id),
        )
        for node in drawn
    ]
    # One column layout for every box (as in the text drawing), fitted to the space beside the swatch.
    formatter = CellFormatter([entry for box in boxes for entry in box.entries], _ENTRY_CHARS)
    columns = _columns(len(drawn))
    width = 2 * _MARGIN + columns * BOX_WIDTH + (columns - 1) * _GAP
    drawing = _Drawing(guests)
    y = _MARGIN
    if title:
        y += 18
        drawing.parts.append(_text(_MARGIN, y - 4, _fit(title, int((width - 2 * _MARGIN) / 8.5)), "vn-title"))
        y += 6
    for start in range(0, len(boxes), columns):
        row = boxes[start : start + columns]
        height = max(box.height for box in row)
        for index, box in enumerate(row):
            drawing.box(box, _MARGIN + index * (BOX_WIDTH + _GAP), y, height, formatter)
        y += height + _GAP
    notes = []
    if len(nodes) > len(drawn):
        notes.append(f"+{len(nodes) - len(drawn)} more host nodes not drawn (nodes {nodes[len(drawn)].id} and up)")
    notes.extend(elsewhere_lines(guests, topology))
    legend = (*LEGEND, _BAR_LEGEND)
    notes.extend(legend)
    chars = int((width - 2 * _MARGIN) / _CHAR)
    for note in notes:
        # Wrapped, not cut: a legend line goes on under its text column, other notes indented.
        indent = " " * (_LEGEND_TEXT if note in legend else 2)
        for line in textwrap.wrap(note, chars, subsequent_indent=indent, break_on_hyphens=False) or [""]:
            y += _LINE
            drawing.parts.append(_text(_MARGIN, y - 4, _fit(line, chars), "vn-muted"))
    height = y + _MARGIN
    label = title or "host diagram"
    return "\n".join(
        [
            f'<svg{_XMLNS if standalone else ""} xml:space="preserve" class="vn-diagram" '
            f'width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_escape(label)}">',
            f"<title>{_escape(label)}</title>",
            f"<style>{_STYLE}</style>",
            *drawing.parts,
            "</svg>",
        ]
    )
