# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The hypervisor as the orchestration sees it, without libvirt (docs/architecture.md, Layers).

``HostConnection`` and ``GuestHandle`` are what ``_run`` asks of a hypervisor and of one guest:
``_libvirt.py:LibvirtHost`` and ``LibvirtGuest``, or a test's stand-in (tests/support/fake_libvirt.py);
mypy proves that each matches.  ``DeadlineCalls`` runs a connection's blocking calls, each within
``call_timeout`` seconds, in worker threads (``_Worker``); ``_libvirt.py:_Calls`` adds libvirt's errors.
Nothing here imports libvirt: ``_libvirt.py`` stays the one file that does.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar, TypeVarTuple

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    LibvirtDeadlineError,
    LibvirtOperationError,
)

__all__ = [
    "DeadlineCalls",
    "GuestHandle",
    "HostConnection",
]

_Result = TypeVar("_Result")
# A call's arguments, checked against the function's by mypy.
_Args = TypeVarTuple("_Args")


class GuestHandle(Protocol):
    """What the orchestration (``_run``) asks of one guest: ``LibvirtGuest``, or a test's stand-in."""

    @property
    def name(self) -> str: ...

    def is_running(self) -> bool: ...

    def memory_kib(self) -> int: ...

    def inactive_xml(self) -> str: ...

    def live_xml(self) -> str: ...

    def xml_if_defined(self, live: bool = False) -> str | None: ...

    def running_if_defined(self) -> bool | None: ...

    def ask_shutdown(self) -> str: ...

    def destroy(self) -> None: ...

    def start(self) -> None: ...

    def has_managed_save(self) -> bool: ...

    def managed_save_xml(self) -> str | None: ...

    def pin_vcpu_live(self, vcpu: int, cpus: Iterable[int], host_cpus: int) -> None: ...

    def pin_iothread_live(self, iothread: int, cpus: Iterable[int], host_cpus: int) -> None: ...

    def set_vcpus_online(self, vcpus: Iterable[int], online: bool, persistent: bool) -> None: ...

    def attach_device(self, xml: str, live: bool, persistent: bool) -> None: ...

    def update_device(self, xml: str, live: bool, persistent: bool) -> None: ...


class HostConnection(Protocol):
    """What the orchestration (``_run``) asks of a hypervisor: ``LibvirtHost``, or a test's stand-in.

    Kept to the calls ``_run/`` makes, so that a stand-in is small and mypy proves it matches.
    """

    @property
    def uri(self) -> str: ...

    def running_names(self) -> list[str]: ...

    def autostart_names(self) -> list[str]: ...

    def managed_save_names(self) -> list[str]: ...

    def definitions(self) -> Sequence[tuple[GuestHandle, str]]: ...

    def define(self, xml: str, guest: str | None = None) -> GuestHandle: ...

    def pci_device_xmls(self) -> Sequence[str]: ...


class _Worker:
    """A daemon thread that runs blocking libvirt calls one at a time, and waits in ``_IDLE`` between them.

    Starting a thread for each call cost 0.2 ms quiet and over 1 ms under load, for a few hundred calls per
    run; a free worker takes the next call.  A worker whose call outlives its deadline stays busy with it,
    and the next call gets another worker.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="libvirt calls", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            job()
            # Free before the caller learns the call ended, so that the caller's next call finds it.
            with _IDLE_LOCK:
                _IDLE.append(self)
            done.set()

    @staticmethod
    def run(job: Callable[[], None], deadline: float) -> None:
        """``job`` in a free worker (a new one if none is free), waiting for it at most ``deadline`` seconds."""
        with _IDLE_LOCK:
            worker = _IDLE.pop() if _IDLE else None
        if worker is None:
            worker = _Worker()
        done = threading.Event()
        worker._jobs.put((job, done))
        done.wait(deadline)


# Workers without a call: shared by every connection of the process (restarts call from several threads at once).
_IDLE: list[_Worker] = []
_IDLE_LOCK = threading.Lock()
# A forked child has none of its parent's threads: a worker listed there would never answer.
os.register_at_fork(after_in_child=_IDLE.clear)


class DeadlineCalls:
    """Runs one connection's blocking calls, each within ``call_timeout`` seconds.

    The call runs in a worker thread (``_Worker``) that the caller waits for.  When the wait ends first, the
    call is given up (libvirt cannot cancel it) and so is the connection: a thread still blocks inside it,
    and every later call fails at once with the reason instead of waiting again.  The process ending frees
    the thread.
    """

    def __init__(self, uri: str, call_timeout: float, bounded: bool) -> None:
        self.uri = uri
        self.call_timeout = call_timeout
        self.bounded = bounded
        # Why the connection cannot be used any more, once it cannot.
        self.lost: str | None = None

    def _where(self, what: str) -> str:
        return what if self.uri in what else f"{what} at {self.uri}"

    def raw(self, what: str, function: Callable[[*_Args], _Result], *args: *_Args, guest: str | None = None) -> _Result:
        """``function(*args)`` within the deadline; libvirt's own errors are raised as they are."""
        if self.lost is not None:
            raise LibvirtOperationError(f"{self._where(what)}: not attempted: {self.lost}", guest=guest)
        if not self.bounded:
            return function(*args)
        # The worker appends to one of them, once.
        results: list[_Result] = []
        failures: list[BaseException] = []

        def run() -> None:
            try:
                results.append(function(*args))
            except BaseException as error:  # handed over to the waiting thread as it is
                failures.append(error)

        _Worker.run(run, self.call_timeout)
        if results:
            return results[0]
        if not failures:
            self.lost = f"an earlier call ({what}) got no answer within {self.call_timeout:g} s"
            raise LibvirtDeadlineError(self._no_answer(what), guest=guest)
        value = failures[0]
        closed = self.keepalive_message(value)
        if closed is not None:
            # The daemon stopped answering even libvirt's keepalive messages: the connection is closed.
            self.lost = f"libvirtd stopped answering during an earlier call ({what})"
            raise LibvirtDeadlineError(f"{self._no_answer(what)} (libvirt: {closed})", guest=guest) from None
        raise value

    def keepalive_message(self, error: BaseException) -> str | None:
        """The library's message when ``error`` is the connection closed for want of keepalive answers, else None.

        Only the adapter knows its library's errors (``_libvirt.py:_Calls``); plain calls have none.
        """
        return None

    def _no_answer(self, what: str) -> str:
        return (
            f"{self._where(what)}: no answer within {self.call_timeout:g} s (call_timeout); "
            "libvirtd, or the guest's QEMU process it waits on, is stopped or hung"
        )
