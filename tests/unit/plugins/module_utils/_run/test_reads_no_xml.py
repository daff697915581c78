# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The orchestration layer reads and writes no XML itself: that is the XML layer's (docs/architecture.md).

A walk of element paths (``find``, ``findall``, ``iterfind``, ``findtext``, ``xpath``...) or a check of an
element's tag in ``_run`` is a rule about libvirt's XML kept outside ``_xml``, where a second copy of it
grows (``_run/migrate.py`` walked the host side that ``_xml/migration.py:HOST_SIDE_PATHS`` lists, and
``_run/plan.py`` listed the changes of ``state: absent`` to the collection's records in ``<metadata>``).  Parsing
text with ``_xml/parse.py:parse_xml`` and handing the tree to the XML layer is allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

RUN = Path(__file__).resolve().parents[5] / "plugins" / "module_utils" / "_run"

_WALKS = {"find", "findall", "iterfind", "findtext", "xpath", "iterchildren", "iterdescendants", "getparent"}


def xml_reads(source: str) -> list[str]:
    """The calls of element walks, the reads of ``.tag`` and the ``<metadata>`` change paths in ``source``, by line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _WALKS:
            found.append(f"line {node.lineno}: .{node.func.attr}()")
        elif isinstance(node, ast.Attribute) and node.attr == "tag" and isinstance(node.ctx, ast.Load):
            found.append(f"line {node.lineno}: .tag")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("metadata/"):
            # A change path of the collection's records: the XML layer lists those changes (_xml/definition.py).
            found.append(f"line {node.lineno}: {node.value!r}")
    return found


def test_no_run_file_walks_xml() -> None:
    found = {
        path.name: reads for path in sorted(RUN.glob("*.py")) if (reads := xml_reads(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_checker_finds_a_walk_and_a_tag() -> None:
    source = (
        'root.find("os/type")\nfor e in root.iterfind("devices/memory"):\n    pass\nx = root.tag == "domain"\n'
        'Change("metadata/vnuma", "stored", None)\n'
    )
    assert xml_reads(source) == ["line 1: .find()", "line 2: .iterfind()", "line 4: .tag", "line 5: 'metadata/vnuma'"]
    assert xml_reads('text = ", ".join(words)\nguest.attach_device(markup)\n') == []
