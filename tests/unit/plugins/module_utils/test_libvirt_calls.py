# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_libvirt._Calls (over _hypervisor.DeadlineCalls): each call within call_timeout, in reused worker threads.

tests/integration/test_connections.py holds the deadlines against a stopped libvirtd; these hold the worker
threads themselves with plain functions standing in for libvirt's calls.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    LibvirtDeadlineError,
    LibvirtOperationError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import _Calls

URI = "qemu+ssh://hv01/system"


def test_calls_reuse_their_worker() -> None:
    calls = _Calls(URI, 30.0, bounded=True)
    calls.raw("warm up", int)
    before = threading.active_count()
    assert [calls.raw("adding", lambda value: value + 1, index) for index in range(200)] == list(range(1, 201))
    # One call at a time: the worker of the first is free for the next.
    assert threading.active_count() == before
    first = calls.raw("who", threading.current_thread)
    assert calls.raw("who again", threading.current_thread) is first
    assert first is not threading.current_thread()


def test_an_error_is_raised_as_it_is() -> None:
    calls = _Calls(URI, 30.0, bounded=True)
    with pytest.raises(ZeroDivisionError):
        calls.raw("dividing", lambda: 1 // 0)
    assert calls.raw("after an error", int, "7") == 7
    assert calls.lost is None


def test_a_call_past_its_deadline_gives_up_the_connection() -> None:
    calls = _Calls(URI, 0.2, bounded=True)
    release = threading.Event()
    try:
        with pytest.raises(
            LibvirtDeadlineError, match=rf"^reading at {re.escape(URI)}: no answer within 0.2 s \(call_timeout\)"
        ):
            calls.raw("reading", release.wait, 60)
        with pytest.raises(LibvirtOperationError, match=r"not attempted: an earlier call \(reading\) got no answer"):
            calls.raw("writing", int)
        # Another connection still works while the stuck call holds its worker.
        assert _Calls(URI, 30.0, bounded=True).raw("elsewhere", int, "3") == 3
    finally:
        release.set()


def test_calls_from_several_threads_run_at_once() -> None:
    # Restarts ask several guests to shut down from a thread pool: no call waits for another's worker.
    calls = _Calls(URI, 30.0, bounded=True)
    together = threading.Barrier(4, timeout=20)
    with ThreadPoolExecutor(max_workers=4) as pool:
        waited = list(pool.map(lambda _index: calls.raw("waiting", together.wait), range(4)))
    assert sorted(waited) == [0, 1, 2, 3]


def test_unbounded_calls_run_in_the_caller() -> None:
    # The test driver lives in the process: no worker, no deadline.
    calls = _Calls("test:///default", 0.001, bounded=False)
    assert calls.raw("where", threading.get_ident) == threading.get_ident()
