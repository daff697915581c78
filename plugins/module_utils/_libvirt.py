# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The one place that imports libvirt: connect, read, define, and the live operations.

Every libvirt failure becomes a ``LibvirtOperationError`` that keeps libvirt's own message.
Nothing here knows about Ansible.

Deadlines.  Connecting retries only while the daemon is not up yet (its socket refuses connections)
and for ``connect_timeout`` seconds at most; every other connection error fails at once.  Every call
that can block on the daemon runs in a worker thread and is given up after ``call_timeout`` seconds
(``_hypervisor.py:DeadlineCalls``): libvirt has no timeout of its own for a call the daemon accepted, and a
stopped libvirtd (SIGSTOP), or a daemon waiting on a stopped QEMU process, would otherwise hang the run
forever.  Connections to a
daemon also use libvirt's keepalive (with libvirt's default event loop running in a daemon thread), so
that a daemon that stopped answering closes the connection and the blocked call ends on its own.
libvirt's test driver runs inside this process and needs none of this.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, TypeVarTuple

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    LibvirtOperationError,
    SpecError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    CALL_TIMEOUT_LIMITS,
    CONNECT_TIMEOUT_LIMITS,
    check_seconds,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._hypervisor import DeadlineCalls

try:
    import libvirt
except ImportError:  # pragma: no cover - exercised by the import sanity test
    libvirt = None
    LIBVIRT_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    LIBVIRT_IMPORT_ERROR = None

__all__ = [
    "CANNOT_SHUT_DOWN",
    "CONNECTION_ARGS",
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "GuestEntry",
    "HAS_LIBVIRT",
    "LIBVIRT_IMPORT_ERROR",
    "LibvirtGuest",
    "LibvirtHost",
    "SHUTDOWN_ASKED",
]

HAS_LIBVIRT = LIBVIRT_IMPORT_ERROR is None

_Result = TypeVar("_Result")
# A call's arguments, checked against the function's (the Protocols below) by mypy.
_Args = TypeVarTuple("_Args")


# The libvirt calls this adapter makes, with the types the bindings really return.  mypy does not read
# libvirt-python itself (pyproject.toml says why): its generated annotations say ``str`` for
# virDomain.info and state and for virConnect.getCellsFreeMemory and getFreePages, which return lists
# and a dict.
class _Error(Protocol):
    """``libvirt.libvirtError``: what is read of one."""

    def get_error_code(self) -> int | None: ...

    def get_error_domain(self) -> int | None: ...

    def get_error_message(self) -> str | None: ...

    def get_int1(self) -> int | None: ...


class _Domain(Protocol):
    """``libvirt.virDomain``: the calls made on one guest."""

    def name(self) -> str: ...

    def isActive(self) -> int: ...

    def isPersistent(self) -> int: ...

    # [state, maximum memory KiB, memory KiB, vCPUs, CPU time ns]
    def info(self) -> list[int]: ...

    def XMLDesc(self, flags: int = 0) -> str: ...

    # [state, reason]
    def state(self, flags: int = 0) -> list[int]: ...

    def shutdown(self) -> int: ...

    def destroy(self) -> int: ...

    def create(self) -> int: ...

    def hasManagedSaveImage(self, flags: int = 0) -> int: ...

    def managedSaveGetXMLDesc(self, flags: int = 0) -> str: ...

    def pinVcpuFlags(self, vcpu: int, cpumap: tuple[bool, ...], flags: int = 0) -> int: ...

    def pinIOThread(self, iothreads_id: int, cpumap: tuple[bool, ...], flags: int = 0) -> int: ...

    def setVcpu(self, vcpumap: str, state: int, flags: int = 0) -> int: ...

    def attachDeviceFlags(self, xml: str, flags: int = 0) -> int: ...

    def updateDeviceFlags(self, xml: str, flags: int = 0) -> int: ...

    def migrate3(self, dconn: Any, params: dict[str, Any], flags: int = 0) -> Any: ...


class _NodeDevice(Protocol):
    """``libvirt.virNodeDevice``: a host device (node-device XML)."""

    def name(self) -> str: ...

    def XMLDesc(self, flags: int = 0) -> str: ...


class _Connection(Protocol):
    """``libvirt.virConnect``: the calls made on one connection."""

    def setKeepAlive(self, interval: int, count: int) -> int: ...

    def close(self) -> int: ...

    def getCapabilities(self) -> str: ...

    def getType(self) -> str: ...

    def lookupByName(self, name: str) -> _Domain: ...

    def listAllDomains(self, flags: int = 0) -> list[_Domain]: ...

    def getAllDomainStats(self, stats: int = 0, flags: int = 0) -> list[tuple[_Domain, dict[str, Any]]]: ...

    # bytes free per cell, from startCell on
    def getCellsFreeMemory(self, startCell: int, maxCells: int) -> list[int]: ...

    # {cell: {page size KiB: free pages}}
    def getFreePages(
        self, pages: list[int], startCell: int, maxCells: int, flags: int = 0
    ) -> dict[int, dict[int, int]]: ...

    def defineXMLFlags(self, xml: str, flags: int = 0) -> _Domain: ...

    def saveImageGetXMLDesc(self, file: str, flags: int = 0) -> str: ...

    def restoreFlags(self, frm: str, dxml: str | None = None, flags: int = 0) -> int: ...

    def listAllDevices(self, flags: int = 0) -> list[_NodeDevice]: ...


# The connection options (seconds); their limits are _core/units.py's.
DEFAULT_CONNECT_TIMEOUT = 60.0
DEFAULT_CALL_TIMEOUT = 120.0
DEFAULT_URI = "qemu:///system"

# The connection options of every module, in the argument spec's terms (documented once, in
# plugins/doc_fragments/connection.py).
CONNECTION_ARGS: dict[str, dict[str, object]] = {
    "uri": {"type": "str", "default": DEFAULT_URI},
    "connect_timeout": {"type": "float", "default": DEFAULT_CONNECT_TIMEOUT},
    "call_timeout": {"type": "float", "default": DEFAULT_CALL_TIMEOUT},
    "host_capabilities": {"type": "str"},
}

# The errno values of "the daemon is not up yet", the only connection errors worth waiting for: its
# socket exists but nothing accepts on it (ECONNREFUSED: a daemon that is starting, or restarting
# over the socket file its predecessor left), or its listen backlog is full (EAGAIN).  A missing socket
# (ENOENT), an unknown URI scheme, a missing driver or a refused authentication never heal by waiting.
_NOT_UP_YET = frozenset((errno.ECONNREFUSED, errno.EAGAIN))
_RETRY_PAUSE = 0.5
# Keepalive messages libvirt may miss before it closes the connection (see _keepalive()).
_KEEPALIVE_COUNT = 3


def _is_local(uri: str) -> bool:
    """Whether the URI's driver runs inside this process (libvirt's test driver): no daemon to wait for."""
    return uri.partition(":")[0].lower() == "test"


def _keepalive(call_timeout: float) -> tuple[int, int]:
    """libvirt keepalive (interval, count) that closes a silent connection within ``call_timeout``.

    libvirt closes the connection after ``interval * (count + 1)`` seconds without an answer (3 s for
    ``(1, 2)``, measured); its interval is whole seconds.  A second before the watchdog when it can, so
    that libvirt itself ends the blocked call (120 s: after 116 s); below 3 s the watchdog may come first.
    """
    count = _KEEPALIVE_COUNT if call_timeout >= _KEEPALIVE_COUNT + 2 else 1
    return max(1, int((call_timeout - 1) // (count + 1))), count


def _local_socket(uri: str) -> str | None:
    """The socket a URI names on this machine (``?socket=``, no host), or None."""
    parts = urllib.parse.urlsplit(uri)
    if parts.hostname:
        return None  # a path on the remote host
    sockets = urllib.parse.parse_qs(parts.query, keep_blank_values=True).get("socket")
    return sockets[-1] if sockets else None


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _not_up_yet(uri: str, error: _Error) -> bool:
    """Whether a failed open is a daemon that is not up yet, worth trying again."""
    if not (
        error.get_error_domain() == libvirt.VIR_FROM_RPC
        and error.get_error_code() == libvirt.VIR_ERR_SYSTEM_ERROR
        and error.get_int1() in _NOT_UP_YET
    ):
        return False
    # libvirt reports ECONNREFUSED for a socket path that is a directory, a plain file or empty too:
    # those never become a daemon.
    socket = _local_socket(uri)
    return socket is None or _is_socket(socket)


def _keepalive_closed(error: _Error) -> bool:
    # libvirt has no error code of its own for it: "internal error: connection closed due to keepalive timeout".
    return error.get_error_domain() == libvirt.VIR_FROM_RPC and "keepalive" in (error.get_error_message() or "")


# A definition this collection may define back is read with VIR_DOMAIN_XML_SECURE: without it libvirt
# leaves out what it counts as secret (a <graphics> passwd), and defining the read back deletes it
# (https://libvirt.org/html/libvirt-libvirt-domain.html#virDomainXMLFlags).  Nothing read this way is
# shown: results carry the owned parts' changes and models, never the document; backups are mode 0600.
_DEFINITION_FLAGS = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE if HAS_LIBVIRT else 0
# The XML a save image holds (a `virsh save` file, a managed save image), read as a definition is: secure, since a
# restore is given it back (VIR_DOMAIN_SAVE_IMAGE_XML_SECURE, virDomainSaveImageXMLFlags).
_SAVE_IMAGE_FLAGS = libvirt.VIR_DOMAIN_SAVE_IMAGE_XML_SECURE if HAS_LIBVIRT else 0


# libvirt's default event loop: one per process, started before the first connection to a daemon.
_EVENT_LOOP: list[threading.Thread] = []
_EVENT_LOOP_LOCK = threading.Lock()


def _run_event_loop() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError:
            time.sleep(0.1)  # a failed iteration must not spin


def _start_event_loop() -> None:
    """Run libvirt's default event loop in a daemon thread; keepalive messages need one."""
    with _EVENT_LOOP_LOCK:
        if _EVENT_LOOP:
            return
        # Idempotent in libvirt >= 6.1 (a GLib loop registered once): safe if a caller registered it too.
        libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run_event_loop, name="libvirt-event-loop", daemon=True)
        thread.start()
        _EVENT_LOOP.append(thread)


class _Calls(DeadlineCalls):
    """``DeadlineCalls`` with libvirt's errors: a keepalive timeout gives the connection up, a failure is ours."""

    def keepalive_message(self, error: BaseException) -> str | None:
        if isinstance(error, libvirt.libvirtError) and _keepalive_closed(error):
            return str(error.get_error_message())
        return None

    def error(self, what: str, error: _Error, guest: str | None = None) -> LibvirtOperationError:
        """A libvirt error as the collection's, with libvirt's message; the URI when the connection failed."""
        where = self._where(what) if error.get_error_domain() == libvirt.VIR_FROM_RPC else what
        return LibvirtOperationError(f"{where}: {error.get_error_message()}", guest=guest)

    def run(self, what: str, function: Callable[[*_Args], _Result], *args: *_Args, guest: str | None = None) -> _Result:
        """``function(*args)`` within the deadline; every failure a LibvirtOperationError."""
        try:
            return self.raw(what, function, *args, guest=guest)
        except libvirt.libvirtError as error:
            raise self.error(what, error, guest) from None


def _unsupported(error: _Error) -> bool:
    """Whether libvirt refused a call because the connection's driver does not implement it."""
    return bool(error.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT)


# virDomainState (libvirt-domain.h): the values are libvirt's stable ABI, the names those of `virsh domstate`
# without their spaces.
_STATES = {
    0: "nostate",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}

# virDomainShutoffReason: why a guest that should run is shut off (`virsh domstate --reason`).
_SHUTOFF_REASONS = {
    1: "shut down",
    2: "destroyed",
    3: "crashed",
    4: "migrated",
    5: "saved",
    6: "failed",
    7: "from snapshot",
    8: "daemon",
}


# What ``GuestHandle.ask_shutdown`` found: the guest was asked to shut down; else its state, "shutoff" when it was not
# running, and one of CANNOT_SHUT_DOWN when it runs in a state that cannot shut down (libvirt refuses the request:
# "domain is not running"), which only a power-off ends.
SHUTDOWN_ASKED = "asked"
CANNOT_SHUT_DOWN = ("paused", "pmsuspended")


def _cpumap(cpus: set[int], host_cpus: int) -> tuple[bool, ...]:
    """libvirt's CPU map for a pin call: one flag per host CPU."""
    return tuple(cpu in cpus for cpu in range(host_cpus))


def _runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ids as (first, count) runs of consecutive ids: ``0,1,2,8`` -> ``(0, 3), (8, 1)``."""
    runs: list[tuple[int, int]] = []
    for value in sorted(set(ids)):
        if runs and runs[-1][0] + runs[-1][1] == value:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    return runs


@dataclass(frozen=True)
class GuestEntry:
    """One defined guest as listed: its state, whether it starts with the host, and its managed save image."""

    guest: LibvirtGuest
    # One of _STATES' names ("running", "paused", "shutoff"...).
    state: str
    # Whether the guest has a QEMU process (running, paused, being shut down...): what runs now.
    active: bool
    autostart: bool
    # A managed save image (virsh managedsave): its next start resumes the state saved there, not a boot.
    saved: bool = False

    @property
    def name(self) -> str:
        return self.guest.name


class LibvirtHost:
    """A connection to one hypervisor.

    ``connect_timeout``: seconds to keep retrying while the daemon is not up yet (see _NOT_UP_YET);
    ``call_timeout``: seconds any one call (opening the connection included) may take.  Both are
    checked here, the one place, before anything is attempted.
    """

    def __init__(
        self,
        uri: str,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        connect_timeout = check_seconds("connect_timeout", connect_timeout, CONNECT_TIMEOUT_LIMITS)
        call_timeout = check_seconds("call_timeout", call_timeout, CALL_TIMEOUT_LIMITS)
        if not isinstance(uri, str) or not uri:
            # libvirt would pick a URI of its own (LIBVIRT_DEFAULT_URI, or whatever driver answers first).
            raise SpecError(f"uri {uri!r} names no hypervisor: give a libvirt connection URI such as qemu:///system")
        if not HAS_LIBVIRT:
            raise LibvirtOperationError("the libvirt Python bindings are required (pip install libvirt-python)")
        self.uri = uri
        # The host's PCI node devices, read once per connection (a run): they change only with hardware.
        self._pci_devices: list[str] | None = None
        self._calls = _Calls(uri, call_timeout, bounded=not _is_local(uri))
        if self._calls.bounded:
            _start_event_loop()
        self.connection = self._open(connect_timeout)
        if self._calls.bounded:
            interval, count = _keepalive(call_timeout)
            # A driver without keepalive (no daemon behind it): the watchdog alone bounds its calls.
            with contextlib.suppress(libvirt.libvirtError):
                self._calls.raw("starting keepalive", self.connection.setKeepAlive, interval, count)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LibvirtHost:
        """The connection the modules' connection options (doc fragment ``connection``) describe."""
        return cls(
            params["uri"],
            params.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
            params.get("call_timeout", DEFAULT_CALL_TIMEOUT),
        )

    def _open(self, connect_timeout: float) -> _Connection:
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            try:
                connection: _Connection = self._calls.raw("connecting to libvirt", libvirt.open, self.uri)
                return connection
            except libvirt.libvirtError as error:
                waited = time.monotonic() - started
                # Only a daemon that is not up yet is waited for; anything else fails at once.
                if _not_up_yet(self.uri, error) and waited + _RETRY_PAUSE <= connect_timeout:
                    time.sleep(_RETRY_PAUSE)
                    continue
                how_long = (
                    f" (tried {attempts} times in {waited:.1f} s; connect_timeout is {connect_timeout:g} s)"
                    if attempts > 1
                    else ""
                )
                raise LibvirtOperationError(
                    f"cannot connect to libvirt at {self.uri}: {error.get_error_message()}{how_long}"
                ) from None

    def close(self) -> None:
        if self._calls.lost is not None:
            # A call still blocks inside the connection, or libvirt closed it: closing would wait on the
            # same silent daemon.  The process ending releases it.
            return
        # Closing a connection that already dropped has nothing left to release; the run's outcome is
        # known by now, so a close that gets no answer is not worth failing it for.
        with contextlib.suppress(libvirt.libvirtError, LibvirtOperationError):
            self._calls.raw("closing the connection", self.connection.close)

    def __enter__(self) -> LibvirtHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def capabilities_xml(self) -> str:
        return self._calls.run(f"reading the host capabilities of {self.uri}", self.connection.getCapabilities)

    def guest_names(self) -> list[str]:
        """Names of every defined guest (running or not), sorted; ``_core.names`` selects among them."""
        domains = self._calls.run(f"listing the guests of {self.uri}", self.connection.listAllDomains, 0)
        return sorted(domain.name() for domain in domains)

    def running_names(self) -> list[str]:
        """Names of the running guests, in one call (not one round trip per guest)."""
        flags = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
        return [
            domain.name()
            for domain in self._calls.run(f"listing the guests of {self.uri}", self.connection.listAllDomains, flags)
        ]

    def autostart_names(self) -> list[str]:
        """Names of the guests that start with the host, in one call (capacity counts them as running)."""
        flags = libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART
        return [
            domain.name()
            for domain in self._calls.run(f"listing the guests of {self.uri}", self.connection.listAllDomains, flags)
        ]

    def managed_save_names(self) -> list[str]:
        """Names of the guests with a managed save image (virsh managedsave), in one call.

        The list filter VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE asks what ``hasManagedSaveImage`` asks of each guest,
        for every guest at once.  The shut-off reason cannot tell: libvirt 9.0 says ``saved`` after ``virsh save``
        to a file and after ``virsh managedsave-remove`` too, where the next start boots.
        """
        flags = libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE
        return [
            domain.name()
            for domain in self._calls.run(f"listing the guests of {self.uri}", self.connection.listAllDomains, flags)
        ]

    def listing(self) -> list[GuestEntry]:
        """Every guest with its state, autostart and managed save image, sorted by name, in four calls whatever
        the guest count.

        One ``getAllDomainStats`` per activity (it gives each domain's state with the domain) and one
        ``listAllDomains`` each of the autostart guests and of those with a managed save image, instead of
        round trips per guest.  A driver without domain statistics is asked per guest instead.
        """
        what = f"listing the guests of {self.uri}"
        autostart = set(self.autostart_names())
        saved = set(self.managed_save_names())
        entries = []
        for active, flag in (
            (True, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE),
            (False, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_INACTIVE),
        ):
            for domain, state in self._states(what, active, flag):
                guest = LibvirtGuest(domain, domain.name(), self._calls)
                name = guest.name
                state_name = _STATES.get(state, "unknown")
                entries.append(GuestEntry(guest, state_name, active, name in autostart, not active and name in saved))
        return sorted(entries, key=lambda entry: entry.name)

    def _states(self, what: str, active: bool, flag: int) -> list[tuple[_Domain, int]]:
        try:
            stats = self._calls.raw(what, self.connection.getAllDomainStats, libvirt.VIR_DOMAIN_STATS_STATE, flag)
            return [(domain, values.get("state.state", 0)) for domain, values in stats]
        except libvirt.libvirtError as error:
            if not _unsupported(error):
                raise self._calls.error(what, error) from None
        list_flag = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE if active else libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE
        domains = self._calls.run(what, self.connection.listAllDomains, list_flag)
        return [(domain, self._calls.run(what, domain.state, 0, guest=domain.name())[0]) for domain in domains]

    def free_memory_kib(self, node_ids: Iterable[int]) -> dict[int, int] | None:
        """Free memory per host node in KiB (virNodeGetCellsFreeMemory), None when the driver cannot tell.

        One call per run of consecutive node ids: libvirt counts cells by id, and a host with sparse
        ids (0 and 8) has no cells in between to ask about.
        """
        # The API reports bytes; libvirt's test driver returns its cells' sizes in KiB instead
        # (testNodeGetCellsFreeMemory), which would read as 1024 times too little.
        scale = 1 if self._calls.run(f"reading the driver of {self.uri}", self.connection.getType) == "TEST" else 1024
        free: dict[int, int] = {}
        for first, count in _runs(node_ids):
            what = f"reading the free memory of host nodes {first}-{first + count - 1} at {self.uri}"
            try:
                values = self._calls.raw(what, self.connection.getCellsFreeMemory, first, count)
            except libvirt.libvirtError as error:
                if _unsupported(error):
                    return None
                raise self._calls.error(what, error) from None
            free.update({first + offset: value // scale for offset, value in enumerate(values)})
        return free

    def free_pages(self, sizes: Mapping[int, Sequence[int]]) -> dict[int, dict[int, int]] | None:
        """Free pages per host node and page size (virNodeGetFreePages), None when the driver cannot tell.

        ``sizes`` maps each node to the page sizes (KiB) of its pools; each node is asked for its own
        sizes only, as the kernel has no counter for a size a node has no pool of.  A node the driver
        leaves out of its answer (libvirt's test driver answers nothing) is left out here too.
        """
        free: dict[int, dict[int, int]] = {}
        for node, node_sizes in sorted(sizes.items()):
            if not node_sizes:
                continue
            what = f"reading the free hugepages of host node {node} at {self.uri}"
            try:
                answer = self._calls.raw(what, self.connection.getFreePages, list(node_sizes), node, 1, 0)
            except libvirt.libvirtError as error:
                if _unsupported(error):
                    return None
                raise self._calls.error(what, error) from None
            if node in answer:
                free[node] = {int(size): int(count) for size, count in answer[node].items()}
        return free

    def pci_device_xmls(self) -> list[str]:
        """The node-device XML of every host PCI device, read once per connection; empty when the driver has none.

        A device removed between the listing and its read is left out.
        """
        if self._pci_devices is not None:
            return self._pci_devices
        what = f"listing the PCI devices of {self.uri}"
        try:
            devices = self._calls.raw(
                what, self.connection.listAllDevices, libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV
            )
        except libvirt.libvirtError as error:
            if not _unsupported(error):
                raise self._calls.error(what, error) from None
            devices = []
        xmls = []
        for device in devices:
            what = f"reading the node device {device.name()} of {self.uri}"
            try:
                xmls.append(self._calls.raw(what, device.XMLDesc, 0))
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_NO_NODE_DEVICE:
                    raise self._calls.error(what, error) from None
        self._pci_devices = xmls
        return xmls

    def guests(self) -> list[LibvirtGuest]:
        domains = self._calls.run(f"listing the guests of {self.uri}", self.connection.listAllDomains, 0)
        return sorted(
            (LibvirtGuest(domain, domain.name(), self._calls) for domain in domains), key=lambda guest: guest.name
        )

    def definitions(self) -> list[tuple[LibvirtGuest, str]]:
        """Every guest with its inactive definition, sorted by name.

        A guest undefined by another client between the listing and the read is left out: it holds
        nothing on the host any more (and a guest asked for by name is then reported missing).
        """
        found = []
        for guest in self.guests():
            what = "reading the guest definition"
            try:
                xml = self._calls.raw(what, guest.domain.XMLDesc, _DEFINITION_FLAGS, guest=guest.name)
            except libvirt.libvirtError as error:
                if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue
                raise self._calls.error(what, error, guest=guest.name) from None
            found.append((guest, xml))
        return found

    def define(self, xml: str, guest: str | None = None) -> LibvirtGuest:
        """Define (or redefine) a guest, validated against libvirt's schema first."""
        flags = libvirt.VIR_DOMAIN_DEFINE_VALIDATE
        domain = self._calls.run("defining the guest", self.connection.defineXMLFlags, xml, flags, guest=guest)
        return LibvirtGuest(domain, domain.name(), self._calls)

    def guest_if_defined(self, name: str) -> LibvirtGuest | None:
        """The guest called ``name``, or None when this host has none."""
        what = "looking the guest up"
        try:
            domain = self._calls.raw(what, self.connection.lookupByName, name, guest=name)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise self._calls.error(what, error, guest=name) from None
        return LibvirtGuest(domain, name, self._calls)

    def saved_image_xml(self, path: str) -> str:
        """The domain XML stored in a save image (virDomainSaveImageGetXMLDesc), without restoring it."""
        return self._calls.run(
            f"reading the save image {path}", self.connection.saveImageGetXMLDesc, path, _SAVE_IMAGE_FLAGS
        )

    def restore(self, path: str, xml: str, guest: str | None = None) -> None:
        """Restore a save image running, with ``xml`` in place of the XML it holds (virDomainRestoreFlags).

        libvirt checks that ``xml`` changes nothing the guest sees (its ABI): only host-side parts may differ.
        """
        flags = libvirt.VIR_DOMAIN_SAVE_RUNNING
        self._calls.run(f"restoring {path}", self.connection.restoreFlags, path, xml, flags, guest=guest)


class LibvirtGuest:
    """One defined guest (a libvirt domain)."""

    def __init__(self, domain: _Domain, name: str, calls: _Calls | None = None) -> None:
        self.domain = domain
        self.name = name
        # The connection's call runner (its deadline); a guest made without one calls libvirt directly.
        self._calls = calls if calls is not None else _Calls("libvirt", DEFAULT_CALL_TIMEOUT, bounded=False)

    def _call(self, what: str, function: Callable[[*_Args], _Result], *args: *_Args) -> _Result:
        return self._calls.run(what, function, *args, guest=self.name)

    def is_running(self) -> bool:
        return bool(self._call("reading the guest state", self.domain.isActive))

    def state_text(self) -> str:
        """The guest's state and, when shut off, why: ``running``, ``shutoff (crashed)``."""
        state, reason = self._call("reading the guest state", self.domain.state)[:2]
        name = _STATES.get(state, "unknown")
        if state == libvirt.VIR_DOMAIN_SHUTOFF and reason in _SHUTOFF_REASONS:
            return f"{name} ({_SHUTOFF_REASONS[reason]})"
        return name

    def memory_kib(self) -> int:
        """The guest's maximum memory as libvirt counts it (virDomainGetInfo), without reading its XML."""
        return int(self._call("reading the guest's memory size", self.domain.info)[1])

    def inactive_xml(self) -> str:
        """The persistent definition: what the next start uses."""
        return self._call("reading the guest definition", self.domain.XMLDesc, _DEFINITION_FLAGS)

    def live_xml(self) -> str:
        return self._call("reading the running guest", self.domain.XMLDesc, 0)

    def migratable_xml(self, persistent: bool) -> str:
        """The running guest (or its definition) as libvirt wants it for a migration's destination XML.

        VIR_DOMAIN_XML_MIGRATABLE leaves out what only this host's libvirt adds (aliases of defaults,
        runtime state), as libvirt's own migration does; secure parts are kept so that nothing is lost.
        """
        flags = libvirt.VIR_DOMAIN_XML_MIGRATABLE | libvirt.VIR_DOMAIN_XML_SECURE
        if persistent:
            flags |= libvirt.VIR_DOMAIN_XML_INACTIVE
        return self._call("reading the guest for its migration", self.domain.XMLDesc, flags)

    def xml_if_defined(self, live: bool = False) -> str | None:
        """The persistent (or live) definition, or None when the guest was undefined since it was listed.

        A listing and the reads after it are not atomic: on a busy host guests come and go.
        """
        flags = 0 if live else _DEFINITION_FLAGS
        what = "reading the running guest" if live else "reading the guest definition"
        try:
            return self._calls.raw(what, self.domain.XMLDesc, flags, guest=self.name)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise self._calls.error(what, error, guest=self.name) from None

    def running_if_defined(self) -> bool | None:
        """Whether the guest runs now; None when it is not defined any more (the check right before a define).

        A running guest that another client undefined (``virsh undefine``) goes on as a transient one, and its
        inactive XML can still be read: a define would make it persistent again.  So a running guest's
        persistence is read too (virDomainIsPersistent), a second call for running guests only: a guest that is
        not running is persistent whenever it exists.
        """
        what = "reading the guest state"
        try:
            if not self._calls.raw(what, self.domain.isActive, guest=self.name):
                return False
            return True if self._calls.raw(what, self.domain.isPersistent, guest=self.name) else None
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise self._calls.error(what, error, guest=self.name) from None

    def ask_shutdown(self) -> str:
        """Ask the guest to shut down (ACPI), without waiting: ``SHUTDOWN_ASKED``, or the state it was left in.

        ``shutoff`` when it was not running; one of ``CANNOT_SHUT_DOWN`` (``paused``) when it runs but cannot
        shut down.  The state is read only when libvirt refused the request.  The caller waits: a batch of
        guests shares one deadline (``_run/restart.py:restart_together``).
        """
        what = "asking the guest to shut down"
        try:
            self._calls.raw(what, self.domain.shutdown, guest=self.name)
        except libvirt.libvirtError as error:
            # The QEMU driver's "domain is not running" (VIR_ERR_OPERATION_INVALID) is a guest shut off, or one
            # not in the running state (paused); the test driver says "not running" with another code.  A
            # connection that failed is reported as it is.
            if error.get_error_domain() != libvirt.VIR_FROM_RPC:
                state = self._call("reading the guest state", self.domain.state)[0]
                if state == libvirt.VIR_DOMAIN_SHUTOFF or _STATES.get(state) in CANNOT_SHUT_DOWN:
                    return _STATES[state]
            raise self._calls.error(what, error, guest=self.name) from None
        return SHUTDOWN_ASKED

    def destroy(self) -> None:
        """Power the guest off; a guest that stopped meanwhile is left as it is."""
        what = "powering the guest off"
        try:
            self._calls.raw(what, self.domain.destroy, guest=self.name)
        except libvirt.libvirtError as error:
            # "domain is not running": it finished its own shutdown between the last look and now.
            if error.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and not self.is_running():
                return
            raise self._calls.error(what, error, guest=self.name) from None

    def start(self) -> None:
        self._call("starting the guest", self.domain.create)

    def has_managed_save(self) -> bool:
        """Whether the guest has a managed save image (virDomainHasManagedSaveImage): its next start resumes it."""
        return bool(
            self._call("reading whether the guest has a managed save image", self.domain.hasManagedSaveImage, 0)
        )

    def managed_save_xml(self) -> str | None:
        """The XML in the guest's managed save image (virDomainManagedSaveGetXMLDesc): what its next start resumes.

        The running guest's XML as it was saved, read as a definition is (secure: ``_SAVE_IMAGE_FLAGS``).  None when
        the guest has no managed save image (any more: started or ``managedsave-remove``d since it was listed; libvirt
        says "domain does not have managed save image"), and when the driver cannot read one (libvirt's test
        driver has managed save, but not this call).
        """
        what = "reading the guest's managed save image"
        try:
            return self._calls.raw(what, self.domain.managedSaveGetXMLDesc, _SAVE_IMAGE_FLAGS, guest=self.name)
        except libvirt.libvirtError as error:
            if _unsupported(error) or (
                error.get_error_domain() != libvirt.VIR_FROM_RPC
                and error.get_error_code() in (libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_NO_DOMAIN)
            ):
                return None
            raise self._calls.error(what, error, guest=self.name) from None

    def migrate_live(self, destination: LibvirtHost, xml: str, persistent_xml: str, migration_uri: str | None) -> None:
        """Migrate the running guest live to ``destination`` (virDomainMigrate3), which keeps it defined.

        ``xml`` is what it runs with there and ``persistent_xml`` its definition there (the destination XML
        and persistent XML parameters); the source's definition goes (undefine-source).  ``migration_uri``
        is where the migration data goes (the destination's own choice when None).
        """
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
        params: dict[str, Any] = {
            libvirt.VIR_MIGRATE_PARAM_DEST_XML: xml,
            libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: persistent_xml,
        }
        if migration_uri:
            params[libvirt.VIR_MIGRATE_PARAM_URI] = migration_uri
        self._call(
            f"migrating the guest live to {destination.uri}",
            self.domain.migrate3,
            destination.connection,
            params,
            flags,
        )

    def pin_vcpu_live(self, vcpu: int, cpus: Iterable[int], host_cpus: int) -> None:
        cpu_set = set(cpus)
        self._call(
            f"pinning vCPU {vcpu} to host CPUs {format_cpuset(cpu_set)}",
            self.domain.pinVcpuFlags,
            vcpu,
            _cpumap(cpu_set, host_cpus),
            libvirt.VIR_DOMAIN_AFFECT_LIVE,
        )

    def pin_iothread_live(self, iothread: int, cpus: Iterable[int], host_cpus: int) -> None:
        cpu_set = set(cpus)
        self._call(
            f"pinning I/O thread {iothread} to host CPUs {format_cpuset(cpu_set)}",
            self.domain.pinIOThread,
            iothread,
            _cpumap(cpu_set, host_cpus),
            libvirt.VIR_DOMAIN_AFFECT_LIVE,
        )

    def set_vcpus_online(self, vcpus: Iterable[int], online: bool, persistent: bool) -> None:
        """Bring the chosen vCPU ids online (or offline): libvirt's setVcpu, not the lowest ids."""
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
        if persistent:
            flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
        chosen = sorted(set(vcpus))
        ids = format_cpuset(chosen)
        verb = "enabling" if online else "disabling"
        try:
            self._calls.raw(f"{verb} vCPUs {ids}", self.domain.setVcpu, ids, 1 if online else 0, flags, guest=self.name)
        except libvirt.libvirtError as error:
            # libvirt's QEMU driver changes one hot-pluggable entity per call ("only one hotpluggable
            # entity can be selected"): on x86 that is a single vCPU, on ppc64 a whole core of threads.
            # The request is refused before anything changes, so the vCPUs are taken one at a time.
            if len(chosen) < 2 or error.get_error_code() != libvirt.VIR_ERR_OPERATION_UNSUPPORTED:
                raise self._calls.error(f"{verb} vCPUs {ids}", error, guest=self.name) from None
            for vcpu in chosen:
                self._call(f"{verb} vCPU {vcpu}", self.domain.setVcpu, str(vcpu), 1 if online else 0, flags)

    def attach_device(self, xml: str, live: bool, persistent: bool) -> None:
        self._call("attaching a memory device", self.domain.attachDeviceFlags, xml, _affect(live, persistent))

    def update_device(self, xml: str, live: bool, persistent: bool) -> None:
        """Change a device in place (virDomainUpdateDeviceFlags): a virtio-mem device's requested size."""
        self._call("updating a memory device", self.domain.updateDeviceFlags, xml, _affect(live, persistent))


def _affect(live: bool, persistent: bool) -> int:
    """The virDomainModificationImpact flags: the running guest, its definition, or both."""
    flags = 0
    if live:
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    if persistent:
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    return flags
