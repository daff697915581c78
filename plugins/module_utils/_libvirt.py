# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The one place that imports libvirt: connect, read, define, and the live operations.

Every libvirt failure becomes a ``LibvirtOperationError`` that keeps libvirt's own message.
Nothing here knows about Ansible.
"""

from __future__ import annotations

import contextlib
import fnmatch
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._errors import LibvirtOperationError

try:
    import libvirt
except ImportError:  # pragma: no cover - exercised by the import sanity test
    libvirt = None
    LIBVIRT_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    LIBVIRT_IMPORT_ERROR = None

__all__ = ["LIBVIRT_IMPORT_ERROR", "HAS_LIBVIRT", "LibvirtHost", "LibvirtGuest", "GuestEntry"]

HAS_LIBVIRT = LIBVIRT_IMPORT_ERROR is None

_Result = TypeVar("_Result")

# libvirt reports these while a freshly started libvirtd is still probing QEMU or not yet listening.
_RETRYABLE_CODES = ("VIR_ERR_SYSTEM_ERROR", "VIR_ERR_NO_CONNECT", "VIR_ERR_INTERNAL_ERROR", "VIR_ERR_RPC")


def _call(what: str, function: Callable[..., _Result], *args: Any, guest: str | None = None) -> _Result:
    try:
        return function(*args)
    except libvirt.libvirtError as error:
        raise LibvirtOperationError(f"{what}: {error.get_error_message()}", guest=guest) from None


def _error_code(name: str) -> int | None:
    return getattr(libvirt, name, None)


def _unsupported(error: Any) -> bool:
    """Whether libvirt refused a call because the connection's driver does not implement it."""
    return error.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT


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
    """One defined guest as listed: its state and whether it starts with the host."""

    guest: LibvirtGuest
    # One of _STATES' names ("running", "paused", "shutoff"...).
    state: str
    # Whether the guest has a QEMU process (running, paused, being shut down...): what runs now.
    active: bool
    autostart: bool

    @property
    def name(self) -> str:
        return self.guest.name


class LibvirtHost:
    """A connection to one hypervisor."""

    def __init__(self, uri: str, wait_seconds: float = 60.0) -> None:
        if not HAS_LIBVIRT:
            raise LibvirtOperationError("the libvirt Python bindings are required (pip install libvirt-python)")
        self.uri = uri
        self.connection = self._open(uri, wait_seconds)

    @staticmethod
    def _open(uri: str, wait_seconds: float) -> Any:
        retryable = {code for code in map(_error_code, _RETRYABLE_CODES) if code is not None}
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        while True:
            try:
                return libvirt.open(uri)
            except libvirt.libvirtError as error:
                # The first libvirt.open() after libvirtd starts waits on, or fails during, its QEMU
                # capability probe (several seconds); keep trying until the deadline.
                if error.get_error_code() not in retryable or time.monotonic() >= deadline:
                    raise LibvirtOperationError(
                        f"cannot connect to libvirt at {uri}: {error.get_error_message()}"
                    ) from None
            time.sleep(0.5)

    def close(self) -> None:
        # Closing a connection that already dropped has nothing left to release.
        with contextlib.suppress(libvirt.libvirtError):
            self.connection.close()

    def __enter__(self) -> LibvirtHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def capabilities_xml(self) -> str:
        return _call(f"reading the host capabilities of {self.uri}", self.connection.getCapabilities)

    def guest(self, name: str) -> LibvirtGuest:
        try:
            domain = self.connection.lookupByName(name)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise LibvirtOperationError(f"no guest named {name!r} is defined at {self.uri}", guest=name) from None
            raise LibvirtOperationError(f"looking up guest: {error.get_error_message()}", guest=name) from None
        return LibvirtGuest(domain, name)

    def guest_names(self, patterns: Iterable[str] = ("*",)) -> list[str]:
        """Names of every defined guest (running or not) matching one of the shell patterns, sorted."""
        domains = _call(f"listing the guests of {self.uri}", self.connection.listAllDomains, 0)
        names = [domain.name() for domain in domains]
        wanted = list(patterns)
        return sorted(name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in wanted))

    def running_names(self) -> list[str]:
        """Names of the running guests, in one call (not one round trip per guest)."""
        flags = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
        return [
            domain.name()
            for domain in _call(f"listing the guests of {self.uri}", self.connection.listAllDomains, flags)
        ]

    def autostart_names(self) -> list[str]:
        """Names of the guests that start with the host, in one call (capacity counts them as running)."""
        flags = libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART
        return [
            domain.name()
            for domain in _call(f"listing the guests of {self.uri}", self.connection.listAllDomains, flags)
        ]

    def listing(self) -> list[GuestEntry]:
        """Every guest with its state and autostart, sorted by name, in three calls whatever the guest count.

        One ``getAllDomainStats`` per activity (it gives each domain's state with the domain) and one
        ``listAllDomains`` of the autostart guests, instead of two round trips per guest.  A driver
        without domain statistics is asked per guest instead.
        """
        what = f"listing the guests of {self.uri}"
        autostart = set(self.autostart_names())
        entries = []
        for active, flag in (
            (True, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE),
            (False, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_INACTIVE),
        ):
            for domain, state in self._states(what, active, flag):
                guest = LibvirtGuest(domain, domain.name())
                entries.append(GuestEntry(guest, _STATES.get(state, "unknown"), active, guest.name in autostart))
        return sorted(entries, key=lambda entry: entry.name)

    def _states(self, what: str, active: bool, flag: int) -> list[tuple[Any, int]]:
        try:
            stats = self.connection.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, flag)
            return [(domain, values.get("state.state", 0)) for domain, values in stats]
        except libvirt.libvirtError as error:
            if not _unsupported(error):
                raise LibvirtOperationError(f"{what}: {error.get_error_message()}") from None
        list_flag = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE if active else libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE
        domains = _call(what, self.connection.listAllDomains, list_flag)
        return [(domain, _call(what, domain.state, 0, guest=domain.name())[0]) for domain in domains]

    def free_memory_kib(self, node_ids: Iterable[int]) -> dict[int, int] | None:
        """Free memory per host node in KiB (virNodeGetCellsFreeMemory), None when the driver cannot tell.

        One call per run of consecutive node ids: libvirt counts cells by id, and a host with sparse
        ids (0 and 8) has no cells in between to ask about.
        """
        # The API reports bytes; libvirt's test driver returns its cells' sizes in KiB instead
        # (testNodeGetCellsFreeMemory), which would read as 1024 times too little.
        scale = 1 if _call(f"reading the driver of {self.uri}", self.connection.getType) == "TEST" else 1024
        free: dict[int, int] = {}
        for first, count in _runs(node_ids):
            try:
                values = self.connection.getCellsFreeMemory(first, count)
            except libvirt.libvirtError as error:
                if _unsupported(error):
                    return None
                raise LibvirtOperationError(
                    f"reading the free memory of host nodes {first}-{first + count - 1} at {self.uri}: "
                    f"{error.get_error_message()}"
                ) from None
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
            try:
                answer = self.connection.getFreePages(list(node_sizes), node, 1, 0)
            except libvirt.libvirtError as error:
                if _unsupported(error):
                    return None
                raise LibvirtOperationError(
                    f"reading the free hugepages of host node {node} at {self.uri}: {error.get_error_message()}"
                ) from None
            if node in answer:
                free[node] = {int(size): int(count) for size, count in answer[node].items()}
        return free

    def guests(self) -> list[LibvirtGuest]:
        domains = _call(f"listing the guests of {self.uri}", self.connection.listAllDomains, 0)
        return sorted((LibvirtGuest(domain, domain.name()) for domain in domains), key=lambda guest: guest.name)

    def definitions(self) -> list[tuple[LibvirtGuest, str]]:
        """Every guest with its inactive definition, sorted by name.

        A guest undefined by another client between the listing and the read is left out: it holds
        nothing on the host any more (and a guest asked for by name is then reported missing).
        """
        found = []
        for guest in self.guests():
            try:
                xml = guest.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            except libvirt.libvirtError as error:
                if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue
                raise LibvirtOperationError(
                    f"reading the guest definition: {error.get_error_message()}", guest=guest.name
                ) from None
            found.append((guest, xml))
        return found

    def define(self, xml: str, guest: str | None = None) -> LibvirtGuest:
        """Define (or redefine) a guest, validated against libvirt's schema first."""
        flags = libvirt.VIR_DOMAIN_DEFINE_VALIDATE
        domain = _call("defining the guest", self.connection.defineXMLFlags, xml, flags, guest=guest)
        return LibvirtGuest(domain, domain.name())


class LibvirtGuest:
    """One defined guest (a libvirt domain)."""

    def __init__(self, domain: Any, name: str) -> None:
        self.domain = domain
        self.name = name

    def _call(self, what: str, function: Callable[..., _Result], *args: Any) -> _Result:
        return _call(what, function, *args, guest=self.name)

    def is_running(self) -> bool:
        return bool(self._call("reading the guest state", self.domain.isActive))

    def inactive_xml(self) -> str:
        """The persistent definition: what the next start uses."""
        return self._call("reading the guest definition", self.domain.XMLDesc, libvirt.VIR_DOMAIN_XML_INACTIVE)

    def live_xml(self) -> str:
        return self._call("reading the running guest", self.domain.XMLDesc, 0)

    def xml_if_defined(self, live: bool = False) -> str | None:
        """The persistent (or live) definition, or None when the guest was undefined since it was listed.

        A listing and the reads after it are not atomic: on a busy host guests come and go.
        """
        flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
        try:
            return self.domain.XMLDesc(flags)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            what = "reading the running guest" if live else "reading the guest definition"
            raise LibvirtOperationError(f"{what}: {error.get_error_message()}", guest=self.name) from None

    def ask_shutdown(self) -> bool:
        """Ask a running guest to shut down (ACPI), without waiting; False when it was not running.

        The caller waits: a batch of guests shares one deadline (``Converger.restart_together``).
        """
        if not self.is_running():
            return False
        self._call("asking the guest to shut down", self.domain.shutdown)
        return True

    def destroy(self) -> None:
        """Power the guest off; a guest that stopped meanwhile is left as it is."""
        try:
            self.domain.destroy()
        except libvirt.libvirtError as error:
            # "domain is not running": it finished its own shutdown between the last look and now.
            if error.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and not self.is_running():
                return
            raise LibvirtOperationError(
                f"powering the guest off: {error.get_error_message()}", guest=self.name
            ) from None

    def start(self) -> None:
        self._call("starting the guest", self.domain.create)

    def pin_vcpu_live(self, vcpu: int, cpus: Iterable[int], host_cpus: int) -> None:
        cpu_set = set(cpus)
        cpumap = tuple(cpu in cpu_set for cpu in range(host_cpus))
        self._call(
            f"pinning vCPU {vcpu} to host CPUs {format_cpuset(cpu_set)}",
            self.domain.pinVcpuFlags,
            vcpu,
            cpumap,
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
            self.domain.setVcpu(ids, 1 if online else 0, flags)
        except libvirt.libvirtError as error:
            # libvirt's QEMU driver changes one hot-pluggable entity per call ("only one hotpluggable
            # entity can be selected"): on x86 that is a single vCPU, on ppc64 a whole core of threads.
            # The request is refused before anything changes, so the vCPUs are taken one at a time.
            if len(chosen) < 2 or error.get_error_code() != libvirt.VIR_ERR_OPERATION_UNSUPPORTED:
                raise LibvirtOperationError(
                    f"{verb} vCPUs {ids}: {error.get_error_message()}", guest=self.name
                ) from None
            for vcpu in chosen:
                self._call(f"{verb} vCPU {vcpu}", self.domain.setVcpu, str(vcpu), 1 if online else 0, flags)

    def attach_device(self, xml: str, live: bool, persistent: bool) -> None:
        flags = 0
        if live:
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        if persistent:
            flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
        self._call("attaching a memory device", self.domain.attachDeviceFlags, xml, flags)
