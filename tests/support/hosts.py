# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The host capabilities fixtures of the tests, by name, each parsed once."""

from __future__ import annotations

import functools
from pathlib import Path

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities

CAPABILITIES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "capabilities"


@functools.cache
def host(name: str) -> HostTopology:
    """The parsed fixture ``tests/unit/fixtures/capabilities/<name>.xml``."""
    return parse_capabilities((CAPABILITIES / f"{name}.xml").read_text(encoding="utf-8"))


def parsed_hosts_clear() -> None:
    """Forget the hosts ``parse_capabilities`` keeps: the next parse of any text is a first one (a test that
    counts a parse's work, a benchmark's cold run).  Nothing in the collection forgets them."""
    with capabilities._PARSED_LOCK:
        capabilities._PARSED.clear()
