# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a domain definition holds besides the parts the collection owns: nothing of it may change."""

from __future__ import annotations

import copy
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree

# Where the owned parts live (DESIGN.md, "What a layout renders").
OWNED = (
    "vcpu",
    "vcpus",
    "cpu/topology",
    "cpu/numa",
    "numatune",
    "cputune/vcpupin",
    "cputune/emulatorpin",
    "maxMemory",
    "memoryBacking/hugepages",
    "memory",
    "currentMemory",
)


def without_owned_parts(root: Any) -> str:
    root = copy.deepcopy(root)
    for path in OWNED:
        for element in root.findall(path):
            element.getparent().remove(element)
    for path in ("cpu", "cputune", "memoryBacking"):
        element = root.find(path)
        if element is not None and len(element) == 0 and not element.attrib:
            root.remove(element)
    # Whitespace around removed elements differs; every other character must not.
    for element in root.iter():
        if element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    return etree.tostring(root, method="c14n").decode()
