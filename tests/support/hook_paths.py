# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The migration hook's paths under a test's own directory, never the host's /etc/libvirt/hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES

# The host the hook's topology cache is written from, unless a test says otherwise.
HOOK_HOST = CAPABILITIES / "seed-4node-ring.xml"


def hook_params(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """vnuma_hook's path options, each under ``tmp_path``, and ``HOOK_HOST``'s capabilities; ``extra`` on top."""
    return {
        "hooks_dir": str(tmp_path / "hooks"),
        "lib_dir": str(tmp_path / "lib"),
        "cache_path": str(tmp_path / "cache" / "host-capabilities.xml"),
        "state_dir": str(tmp_path / "state"),
        "host_capabilities": str(HOOK_HOST),
        **extra,
    }
