# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The libvirt hook for moves the collection does not start (docs/migration.md).

libvirtd runs its qemu hooks as ``<guest> <operation> <sub-operation> <extra>`` with the domain XML
on stdin.  For ``migrate begin`` (on the destination, before QEMU starts) and ``restore begin``
(``virsh restore``, managed save) a hook is a filter: what it prints replaces the XML, an empty
output keeps it, and a non-zero exit cancels the move with the hook's stderr in libvirt's error.

This hook rewrites only the host-side bindings of a guest that carries a spec stored by the
collection: the same planner and XML rewrite as ``vnuma_migrate`` (``_core/move_planner.py``,
``_xml/migration.py``), against the host topology cache (``_run/topology_cache.py``).  A guest
without a stored spec, and every other operation, passes through: nothing printed, exit 0.

It never calls libvirt (libvirtd waits for the hook: a call back would deadlock).  What other
guests hold on this host comes from the status files libvirtd keeps for its running guests
(``/run/libvirt/qemu/<name>.xml``), read as plain files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

__all__ = ["DEFAULT_STATE_DIR", "FILTER_OPERATIONS", "HookOutcome", "main", "run_hook"]

# Where libvirtd's QEMU driver keeps the live XML of each running guest (qemu:///system).
DEFAULT_STATE_DIR = "/run/libvirt/qemu"
# The operations whose output replaces the domain XML (libvirt's hooks page); only with sub-operation begin.
FILTER_OPERATIONS = ("migrate", "restore")
# Each status file is one guest's live XML; a larger one is not libvirt's.
_MAX_STATUS_BYTES = 16 * 1024 * 1024
PREFIX = "vnuma.libvirt hook"


@dataclass(frozen=True)
class HookOutcome:
    """What the hook process does: its exit status, what it prints on stdout and on stderr."""

    status: int
    stdout: str = ""
    stderr: str = ""


def running_guests(state_dir: str, skip: str) -> list[tuple[str, str]]:
    """(name, live domain XML) of the guests running on this host, but ``skip``, from libvirtd's status files.

    A file that cannot be read is left out: libvirtd writes them while guests start and stop.
    """
    found: list[tuple[str, str]] = []
    try:
        names = sorted(os.listdir(state_dir))
    except OSError:
        return found
    for entry in names:
        if not entry.endswith(".xml") or entry[: -len(".xml")] == skip:
            continue
        path = os.path.join(state_dir, entry)
        try:
            if os.path.getsize(path) > _MAX_STATUS_BYTES:
                continue
            with open(path, encoding="utf-8") as handle:
                found.append((entry[: -len(".xml")], handle.read()))
        except (OSError, UnicodeDecodeError):
            continue
    return found


def run_hook(argv: Sequence[str], domain_xml: str, cache_path: str, state_dir: str = DEFAULT_STATE_DIR) -> HookOutcome:
    """The hook's answer to one call: ``argv`` are libvirt's arguments, ``domain_xml`` its stdin."""
    if len(argv) < 3 or argv[1] not in FILTER_OPERATIONS or argv[2] != "begin":
        return HookOutcome(0)
    guest = argv[0]
    # Imported here: libvirtd runs the hook for every start and stop of every guest, and only these two
    # operations need the XML layer and the planner (lxml and most of the collection).
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
    from ansible_collections.vnuma.libvirt.plugins.module_utils._run.hook_plan import rebind_for_host

    try:
        rewritten = rebind_for_host(domain_xml, cache_path, running_guests(state_dir, guest))
    except VnumaError as error:
        return HookOutcome(1, stderr=f"{PREFIX}: {argv[1]} refused: {error.naming(guest)}\n")
    if rewritten is None:
        return HookOutcome(0)
    return HookOutcome(0, stdout=rewritten)


def main(
    argv: Sequence[str] | None = None,
    *,
    cache_path: str,
    state_dir: str = DEFAULT_STATE_DIR,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """The installed hook script's entry point; returns the exit status.

    ``cache_path`` is the installer's (the script passes it): this file imports nothing of the collection
    at its top, so that the calls that only pass through stay as quick as Python's start.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # Read all of stdin whatever the operation: libvirtd writes the whole XML to the pipe.
    domain_xml = (stdin or sys.stdin).read()
    try:
        outcome = run_hook(args, domain_xml, cache_path, state_dir)
    except Exception as error:  # any failure refuses the move with a message, never a traceback
        outcome = HookOutcome(2, stderr=f"{PREFIX}: {' '.join(args[:3])}: unexpected {type(error).__name__}: {error}\n")
    if outcome.stdout:
        (stdout or sys.stdout).write(outcome.stdout)
    if outcome.stderr:
        (stderr or sys.stderr).write(outcome.stderr)
    return outcome.status
