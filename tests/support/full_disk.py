# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A file system that fills up, for tests that cannot mount a small tmpfs (that needs root)."""

from __future__ import annotations

import errno
import os

import pytest

# What a tmpfs with one page left takes before it says ENOSPC.
ROOM = 4096


def fill_after(monkeypatch: pytest.MonkeyPatch, room: int = ROOM) -> None:
    """Every ``os.write`` takes what fits in ``room`` bytes of its file, then fails with ENOSPC."""
    real_write = os.write

    def write(handle: int, data: bytes | memoryview) -> int:
        if os.fstat(handle).st_size >= room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(handle, bytes(data[:room]))

    monkeypatch.setattr(os, "write", write)
