# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``<numatune>``: one ``<memnode>`` per cell under a layout."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.tests.support.domain_cases import (
    PLAIN,
    make_layout,
    render,
    same_xml,
)

# --------------------------------------------------------------------------------------------------
# <numatune>, <cputune>
# --------------------------------------------------------------------------------------------------


def test_numatune_is_rendered_from_the_layout() -> None:
    domain = PLAIN.replace(
        "<vcpu>8</vcpu>", "<vcpu>8</vcpu>\n  <numatune>\n    <memory placement='auto'/>\n  </numatune>"
    )
    spec = VnumaSpec(memory_mode="preferred")
    root, _unused, _unused = render(domain, make_layout(spec=spec))
    assert same_xml(
        root.find("numatune"),
        "<numatune>\n    <memory mode='strict' nodeset='0-1'/>\n"
        "    <memnode cellid='0' mode='preferred' nodeset='0'/>\n"
        "    <memnode cellid='1' mode='preferred' nodeset='1'/>\n  </numatune>",
    )


def test_cell_without_memory_nodes_is_refused() -> None:
    layout = make_layout()
    layout = replace(layout, cells=(layout.cells[0], replace(layout.cells[1], memory_nodes=())))
    with pytest.raises(SpecError, match="guest cell 1 has no host node"):
        render(PLAIN, layout)
