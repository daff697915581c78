# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures of the orchestration tests: the stored-spec read counter."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import vnuma

PLUGINS = "ansible_collections.vnuma.libvirt.plugins."


@pytest.fixture
def spec_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Reads of the stored spec (``_xml/vnuma.py:read_stored_spec``) by guest name, wherever they are made.

    Every collection module that imported the function gets the counting one in its place.
    """
    original = vnuma.read_stored_spec
    reads: Counter[str] = Counter()

    def counted(root: Any) -> Any:
        reads[root.findtext("name") or ""] += 1
        return original(root)

    for name, module in list(sys.modules.items()):
        if name.startswith(PLUGINS) and getattr(module, "read_stored_spec", None) is original:
            monkeypatch.setattr(module, "read_stored_spec", counted)
    return reads
