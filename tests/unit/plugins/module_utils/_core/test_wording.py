# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How messages name host nodes, guest cells and counts (``_core/wording.py``): one wording for all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.wording import cells_text, nodes_text, plural

PLUGINS = Path(__file__).resolve().parents[5] / "plugins"


@pytest.mark.parametrize(
    ("nodes", "text"),
    [
        ([2], "host node 2"),
        ((0, 1), "host nodes 0-1"),
        ([4, 0, 1], "host nodes 0-1,4"),
        # One node named twice is still one node.
        ([3, 3], "host node 3"),
    ],
)
def test_nodes_are_host_nodes_written_as_a_nodeset(nodes: list[int], text: str) -> None:
    assert nodes_text(nodes) == text


@pytest.mark.parametrize(("cells", "text"), [([1], "cell 1"), ([0, 1, 2, 3], "cells 0-3"), ({5, 0}, "cells 0,5")])
def test_cells(cells: list[int], text: str) -> None:
    assert cells_text(cells) == text


@pytest.mark.parametrize(("count", "text"), [(0, "0 memory slots"), (1, "1 memory slot"), (2, "2 memory slots")])
def test_plural(count: int, text: str) -> None:
    assert plural(count, "memory slot") == text


# Copies in files other changes are editing now; each goes when its file moves onto _core/wording.py
NOT_YET: dict[str, set[str]] = {}


def test_no_plugin_words_nodes_cells_or_counts_on_its_own() -> None:
    """Each file had its own copy, worded its own way (migration's "node 2", hmat's "0, 2")."""
    copies = {}
    for path in sorted(PLUGINS.rglob("*.py")):
        relative = path.relative_to(PLUGINS).as_posix()
        tree = ast.parse(path.read_text())
        own = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        found = own & {"_nodes_text", "_cells_text", "_plural"}
        if found - NOT_YET.get(relative, set()):
            copies[relative] = sorted(found)
    assert copies == {}
