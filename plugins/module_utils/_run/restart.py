# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Restarting the guests a new definition waits for, as one batch: N guests are down once, together.

Every guest of the batch is asked to shut down at once, all are waited for against one deadline, the
ones still running are powered off (with ``force``, in parallel) and then every guest that stopped is
started again, one after the other.

Only a guest this batch brought down is started.  A guest another client shut off since the plan needs no
restart: it stays off, and its next boot takes the new definition.  A paused guest cannot shut down
(libvirt refuses to ask it): with ``force`` it is powered off with the others, without it fails alone.

A guest with a managed save image (``virsh managedsave``) is never started nor its image discarded: a start
would resume the saved state, with the layout saved in it, and a boot would need the image removed, losing what
ran.  It stays saved and keeps ``restart_required``, whether it was saved when planned (``Planned.saved``), saved
by another client instead of shutting down (found shut off), or saved while this batch waited for it to stop
(asked once, right before its start).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._hypervisor import GuestHandle
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import SHUTDOWN_ASKED
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import Planned
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import GuestResult

__all__ = ["restart_together"]

# Seconds between looks at guests asked to shut down.
_SHUTDOWN_POLL = 0.25
# Guests powered off at once (libvirtd's default max_workers is 20: leave it room for other clients).
_PARALLEL = 8


def restart_together(
    batch: Sequence[tuple[Planned, GuestResult]], shutdown_timeout: float, force: bool, check_mode: bool
) -> None:
    """Shut every guest of ``batch`` down at once, wait for all against one deadline, then start them again.

    After the deadline the guests still running are powered off with ``force``, and so are the paused
    ones; without it they are left running, the others are started again, and each guest that did not
    stop or start gets its error in its result.  A guest found shut off is left off, with a warning.  A guest
    with a managed save image is left saved (in check mode too), with a warning.
    """
    restarting = []
    for item, result in batch:
        if item.saved:
            _left_saved(result)
        else:
            restarting.append((item, result))
    batch = restarting
    for _item, result in batch:
        # A restart changes the running guest even when the definition was changed by an earlier run.
        result.restarted = True
        result.changed = True
        result.restart_required = False
    if check_mode or not batch:
        return
    by_name = {item.guest.name: result for item, result in batch}
    waiting: list[GuestHandle] = []
    # Running guests that cannot shut down (paused): only a power-off brings them down.
    stuck: list[GuestHandle] = []
    for item, result in batch:
        try:
            answer = item.guest.ask_shutdown()
        except VnumaError as error:
            _failed(result, error)
            continue
        if answer == SHUTDOWN_ASKED:
            result.wrote("shutdown requested")
            waiting.append(item.guest)
        elif answer == "shutoff":
            try:
                saved = item.guest.has_managed_save()
            except VnumaError as error:
                _failed(result, error)
                continue
            if saved:
                _saved_by_another_client(item, result, "before its restart")
            else:
                _left_off(item, result)
        elif force:
            stuck.append(item.guest)
        else:
            _failed(result, _cannot_shut_down(item.guest.name, answer))
    # What this batch brings down, and so starts again.
    down = [guest.name for guest in (*waiting, *stuck)]
    deadline = time.monotonic() + shutdown_timeout
    while waiting:
        waiting = [guest for guest in waiting if _still_running(guest, by_name[guest.name])]
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(min(_SHUTDOWN_POLL, max(deadline - time.monotonic(), 0.0)))
    if force:
        # libvirtd takes a second or two to power a QEMU off (SIGTERM, then it waits for the exit): in
        # parallel, the batch is down for the slowest one, not for the sum.
        powered = [*waiting, *stuck]
        failed = _each(powered, lambda guest: guest.destroy())
        for guest in powered:
            if guest.name in failed:
                _failed(by_name[guest.name], failed[guest.name])
            else:
                by_name[guest.name].wrote("powered off")
    else:
        for guest in waiting:
            _failed(by_name[guest.name], _not_stopped(guest.name, shutdown_timeout))
    # The others are down with their new definition: started again even when some did not stop.
    # One after the other: starting QEMUs at once only makes them compete for the host's CPUs.
    for item, result in batch:
        if result.error is not None or item.guest.name not in down:
            continue
        try:
            # Another client may have saved it (virsh managedsave) while it was shutting down: a start would
            # resume that state, with the layout it ran.
            if item.guest.has_managed_save():
                _saved_by_another_client(item, result, "while it shut down for its restart")
                continue
            item.guest.start()
        except VnumaError as error:
            _failed(result, error)
            continue
        result.wrote("started")


def _left_saved(result: GuestResult) -> None:
    """A guest planned with a managed save image: not restarted (a start resumes the image), and still to restart."""
    result.restarted = False
    result.restart_required = True
    result.warnings.append(
        f"guest {result.name}: restart if_needed leaves a guest with a managed save image as it is: neither started "
        "nor its saved state discarded; restart_required stays true"
    )


def _saved_by_another_client(item: Planned, result: GuestResult, when: str) -> None:
    """A guest another client saved (virsh managedsave) instead of letting it restart: left saved, still to restart.

    Its image holds the state it ran, planned as needing a restart; a rerun compares the image itself
    (``Planner.plan_one``).
    """
    item.running = result.running = False
    item.saved = True
    result.restarted = False
    result.restart_required = True
    result.changed = bool(result.written)
    result.warnings.append(
        f"guest {result.name}: was saved by another client {when} (virsh managedsave); left saved, neither started "
        "nor its saved state discarded: its next start resumes the saved state, which runs the layout saved with "
        "it; the new layout takes effect when the guest boots after a shutdown. virsh managedsave-remove "
        f"{result.name} discards the saved state (what runs in it is lost)"
    )


def _left_off(item: Planned, result: GuestResult) -> None:
    """A guest that another client shut off since the plan: no restart, its next boot takes the new definition.

    It is planned as shut off from here on: the live changes (``_run/live.py``) leave it alone.
    """
    item.running = result.running = False
    result.restarted = False
    result.changed = bool(result.written)
    result.warnings.append(
        f"guest {result.name}: was shut off by another client before its restart; left shut off, "
        "its next boot takes the new definition"
    )


def _still_running(guest: GuestHandle, result: GuestResult) -> bool:
    try:
        return guest.is_running()
    except VnumaError as error:
        _failed(result, error)
        return False


def _failed(result: GuestResult, error: VnumaError) -> None:
    result.error = error.naming(result.name)
    result.restarted = False
    result.restart_required = True
    result.changed = bool(result.written)


def _each(guests: Sequence[GuestHandle], action: Callable[[GuestHandle], None]) -> dict[str, VnumaError]:
    """Run ``action`` on every guest at once (a thread each; libvirt connections are thread-safe).

    The errors by guest name; the guests without one succeeded.
    """
    if not guests:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(guests), _PARALLEL)) as pool:
        futures = {guest.name: pool.submit(action, guest) for guest in guests}
    errors: dict[str, VnumaError] = {}
    for name, future in futures.items():
        error = future.exception()
        if isinstance(error, VnumaError):
            errors[name] = error
        elif error is not None:
            raise error
    return errors


def _not_stopped(name: str, timeout: float) -> LibvirtOperationError:
    return LibvirtOperationError(
        f"did not shut down within {timeout:g} seconds; set force to power it off",
        guest=name,
    )


def _cannot_shut_down(name: str, state: str) -> LibvirtOperationError:
    how = "resume it" if state == "paused" else "wake it up"
    return LibvirtOperationError(
        f"is {state} and cannot shut down; set force to power it off, or {how} first",
        guest=name,
    )
