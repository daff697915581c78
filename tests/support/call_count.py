# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Counting the work done in one module, for tests that hold a cost without timing it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, ModuleType
from typing import Any


class CallCount:
    """How many Python functions of a module were entered (generators resumed and sort keys included)."""

    def __init__(self) -> None:
        self.calls = 0


@contextmanager
def calls_into(module: ModuleType) -> Iterator[CallCount]:
    """Count every Python function of ``module`` entered inside the block (a profile hook; no timing)."""
    count = CallCount()
    counted = vars(module)

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_globals is counted:
            count.calls += 1

    sys.setprofile(profile)
    try:
        yield count
    finally:
        sys.setprofile(None)
