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
from collections.abc import Callable, Iterable
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

__all__ = ["LIBVIRT_IMPORT_ERROR", "HAS_LIBVIRT", "LibvirtHost", "LibvirtGuest"]

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

    def guests(self) -> list[LibvirtGuest]:
        domains = _call(f"listing the guests of {self.uri}", self.connection.listAllDomains, 0)
        return sorted((LibvirtGuest(domain, domain.name()) for domain in domains), key=lambda guest: guest.name)

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

    def shutdown(self, timeout: float, force: bool) -> None:
        """Shut down gracefully within ``timeout`` seconds; destroy after that only when ``force``."""
        if not self.is_running():
            return
        self._call("asking the guest to shut down", self.domain.shutdown)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                return
            time.sleep(0.5)
        if not force:
            raise LibvirtOperationError(
                f"did not shut down within {timeout:g} seconds; set force to power it off", guest=self.name
            )
        self._call("powering the guest off", self.domain.destroy)

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
