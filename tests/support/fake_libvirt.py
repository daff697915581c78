# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An in-memory hypervisor for the orchestration's unit tests (``_run``), no libvirt needed.

``FakeHost`` and ``FakeGuest`` implement what ``_run`` asks of a connection
(``_hypervisor.py:HostConnection`` and ``GuestHandle``: mypy checks that they match).  Definitions are
XML strings held in memory; every call is recorded in ``FakeHost.calls``; faults are injected per
guest and call.  What a define refuses is kept to what the tests need: XML that does not parse, a
domain without a name, and a cell or pin naming a vCPU the domain does not have (libvirt's
VIR_DOMAIN_DEFINE_VALIDATE refuses much more).

Live calls (pinning, vCPU enable) are recorded only; a device attached ``persistent`` is added to the
definition and one attached ``live`` to the running guest's XML, so a second run sees the DIMMs.  An attach
that would give either more memory devices than ``<maxMemory slots>`` is refused, as libvirt refuses it.

Another client: ``FakeGuest.concurrent_edits`` change the definition right before each re-read ahead of
a define; ``FakeHost.meanwhile`` runs an action (``boot``, ``shut_off``, ``suspend``, ``managed_save``,
``undefine``) right before a given call of the run.  ``undefine`` leaves a running guest transient (it goes when
it stops), as libvirt does; a suspended guest cannot be asked to shut down, only powered off.

Managed save (``virsh managedsave``): ``FakeHost.managed_save`` stops a running guest and keeps its running XML
as the image (``FakeGuest.saved``); the next ``start`` resumes that XML, not the definition, and drops the
image.  ``FakeGuest.saved_unreadable`` stands for a driver that has managed save but cannot read an image's XML
(libvirt's test driver).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from lxml import etree

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    LibvirtOperationError,
    VnumaError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._hypervisor import HostConnection
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import SHUTDOWN_ASKED

URI = "fake:///vnuma"

_KIB = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "m": 1024, "mib": 1024, "g": 1024**2, "gib": 1024**2}


class Call(NamedTuple):
    """One call made on the fake: the guest ("" for the host), the method and its arguments."""

    guest: str
    method: str
    args: tuple[Any, ...] = ()


def _root(xml: str) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(xml.encode(), parser)


def _refusal(xml: str) -> str | None:
    """Why the fake's define refuses ``xml`` (a small part of libvirt's validation), or None."""
    try:
        root = _root(xml)
    except etree.XMLSyntaxError as error:
        return f"XML error: {error}"
    name = root.findtext("name")
    if not name:
        return "missing name information"
    vcpus = int(root.findtext("vcpu") or "1")
    for cell in root.iterfind("cpu/numa/cell"):
        cpus = cell.get("cpus")
        if cpus and max(int(part.split("-")[-1]) for part in cpus.split(",")) >= vcpus:
            return f"CPUs in <cell> exceed the <vcpu> count {vcpus}"
    for pin in root.iterfind("cputune/vcpupin"):
        if int(pin.get("vcpu", "0")) >= vcpus:
            return f"vcpupin for vcpu {pin.get('vcpu')} is out of range of {vcpus} vCPUs"
    return None


def _kib(element: Any) -> int:
    return int(int(element.text) * _KIB[(element.get("unit") or "KiB").lower()])


def _with_device(xml: str, device: str) -> str:
    """``xml`` with ``device`` attached; libvirt counts a memory device in ``<memory>``."""
    root = _root(xml)
    devices = root.find("devices")
    if devices is None:
        devices = etree.SubElement(root, "devices")
    element = _root(device)
    devices.append(element)
    memory, size = root.find("memory"), element.find("target/size")
    if element.tag == "memory" and memory is not None and size is not None:
        memory.text = str(_kib(memory) + _kib(size))
        memory.set("unit", "KiB")
    return etree.tostring(root, encoding="unicode")


def _check_slots(xml: str) -> None:
    """libvirt's refusal of more memory devices than ``<maxMemory slots>`` (an attach, live or persistent)."""
    root = _root(xml)
    max_memory = root.find("maxMemory")
    count = len(root.findall("devices/memory"))
    if max_memory is not None and max_memory.get("slots") is not None and count > int(max_memory.get("slots")):
        raise LibvirtOperationError(
            "attaching a memory device: unsupported configuration: memory device count "
            f"'{count}' exceeds slots count '{max_memory.get('slots')}'"
        )


def _with_updated_device(xml: str, device: str) -> str:
    """``xml`` with the device of the same alias replaced by ``device`` (libvirt's device update)."""
    root = _root(xml)
    new = _root(device)
    alias = new.find("alias")
    for element in root.iterfind(f"devices/{new.tag}"):
        found = element.find("alias")
        if alias is not None and found is not None and found.get("name") == alias.get("name"):
            element.getparent().replace(element, new)
            return etree.tostring(root, encoding="unicode")
    raise LibvirtOperationError("updating a memory device: device not found")


class FakeGuest:
    """One defined guest: its definition, its running XML (None when shut off), and its behaviour."""

    def __init__(self, host: FakeHost, name: str, xml: str, running: bool = False) -> None:
        self.host = host
        self.name = name
        self.xml = xml
        self.live: str | None = xml if running else None
        # A guest that ignores the ACPI shutdown request (no OS, or one that does not listen).
        self.ignores_shutdown = False
        # Another client's edits of the definition, one applied right before each re-read (xml_if_defined).
        self.concurrent_edits: list[Callable[[str], str]] = []
        # False once undefined while running: libvirt keeps it as a transient guest until it stops.
        self.persistent = True
        # Running, but paused (virsh suspend): libvirt refuses to ask it to shut down.
        self.paused = False
        # The XML of its managed save image (virsh managedsave), None without one: the next start resumes it.
        self.saved: str | None = None
        # A driver that cannot read the image's XML (virDomainManagedSaveGetXMLDesc unsupported).
        self.saved_unreadable = False

    def _call(self, method: str, *args: Any) -> None:
        self.host.record(self.name, method, args)

    def _require_running(self, what: str) -> str:
        if self.live is None:
            raise LibvirtOperationError(f"{what}: Requested operation is not valid: domain is not running", self.name)
        return self.live

    def stopped(self) -> None:
        """The guest is down (shut down, powered off); a transient one is gone."""
        self.live = None
        self.paused = False
        if not self.persistent and self.host.guests.get(self.name) is self:
            # A transient guest is gone once it stops.
            del self.host.guests[self.name]

    def is_running(self) -> bool:
        self._call("is_running")
        return self.live is not None

    def running_if_defined(self) -> bool | None:
        self._call("running_if_defined")
        if self.host.guests.get(self.name) is not self or not self.persistent:
            return None
        return self.live is not None

    def memory_kib(self) -> int:
        self._call("memory_kib")
        memory = _root(self.xml).find("memory")
        return 0 if memory is None or memory.text is None else _kib(memory)

    def inactive_xml(self) -> str:
        self._call("inactive_xml")
        return self.xml

    def live_xml(self) -> str:
        self._call("live_xml")
        return self._require_running("reading the running guest")

    def xml_if_defined(self, live: bool = False) -> str | None:
        self._call("xml_if_defined", live)
        if self.host.guests.get(self.name) is not self:
            return None
        if live:
            return self.live
        if self.concurrent_edits:
            self.xml = self.concurrent_edits.pop(0)(self.xml)
        return self.xml

    def ask_shutdown(self) -> str:
        self._call("ask_shutdown")
        if self.live is None:
            return "shutoff"
        if self.paused:
            return "paused"
        if not self.ignores_shutdown:
            self.stopped()
        return SHUTDOWN_ASKED

    def destroy(self) -> None:
        self._call("destroy")
        self.stopped()

    def start(self) -> None:
        self._call("start")
        if self.live is not None:
            raise LibvirtOperationError(
                "starting the guest: Requested operation is not valid: already running", self.name
            )
        self.resume_or_boot()

    def resume_or_boot(self) -> None:
        """libvirt's start: a managed save image is resumed (and removed), else the definition boots."""
        self.live, self.saved = (self.saved, None) if self.saved is not None else (self.xml, None)

    def has_managed_save(self) -> bool:
        self._call("has_managed_save")
        return self.saved is not None

    def managed_save_xml(self) -> str | None:
        self._call("managed_save_xml")
        if self.host.guests.get(self.name) is not self or self.saved_unreadable:
            return None
        return self.saved

    def pin_vcpu_live(self, vcpu: int, cpus: Iterable[int], host_cpus: int) -> None:
        self._call("pin_vcpu_live", vcpu, tuple(sorted(cpus)), host_cpus)
        self._require_running(f"pinning vCPU {vcpu}")

    def pin_iothread_live(self, iothread: int, cpus: Iterable[int], host_cpus: int) -> None:
        self._call("pin_iothread_live", iothread, tuple(sorted(cpus)), host_cpus)
        self._require_running(f"pinning I/O thread {iothread}")

    def set_vcpus_online(self, vcpus: Iterable[int], online: bool, persistent: bool) -> None:
        self._call("set_vcpus_online", tuple(sorted(vcpus)), online, persistent)
        self._require_running("enabling vCPUs")

    def attach_device(self, xml: str, live: bool, persistent: bool) -> None:
        self._call("attach_device", xml, live, persistent)
        # Both checked before either is changed, as libvirt refuses the whole attach.
        running = _with_device(self._require_running("attaching a memory device"), xml) if live else None
        defined = _with_device(self.xml, xml) if persistent else None
        for changed in (running, defined):
            if changed is not None:
                _check_slots(changed)
        if running is not None:
            self.live = running
        if defined is not None:
            self.xml = defined

    def update_device(self, xml: str, live: bool, persistent: bool) -> None:
        self._call("update_device", xml, live, persistent)
        if live:
            self.live = _with_updated_device(self._require_running("updating a memory device"), xml)
        if persistent:
            self.xml = _with_updated_device(self.xml, xml)


class FakeHost:
    """A hypervisor holding guests in memory; ``calls`` records every call, ``faults`` injects failures.

    ``faults[(guest, method)]`` is raised by that guest's (or, for ``define``, that guest name's) call
    instead of doing it, every time.  ``rewrites[name]`` changes what a define of ``name`` stores, as
    libvirt does when it drops or rewrites what it does not keep.
    """

    def __init__(
        self,
        domains: Mapping[str, str] | None = None,
        running: Iterable[str] = (),
        autostart: Iterable[str] = (),
    ) -> None:
        self.uri = URI
        self.calls: list[Call] = []
        self.faults: dict[tuple[str, str], VnumaError] = {}
        # Another client's actions, by (guest, method): each run once, right before that call (``meanwhile``).
        self.actions: dict[tuple[str, str], list[Callable[[], None]]] = {}
        self.rewrites: dict[str, Callable[[str], str]] = {}
        self.autostart = set(autostart)
        # The host's PCI node-device XML documents (pci_device_xmls).
        self.node_devices: list[str] = []
        up = set(running)
        self.guests: dict[str, FakeGuest] = {
            name: FakeGuest(self, name, xml, running=name in up) for name, xml in (domains or {}).items()
        }

    def record(self, guest: str, method: str, args: tuple[Any, ...] = ()) -> None:
        self.calls.append(Call(guest, method, args))
        actions = self.actions.get((guest, method))
        if actions:
            actions.pop(0)()
        fault = self.faults.get((guest, method))
        if fault is not None:
            raise fault

    def fail(self, guest: str, method: str, message: str = "injected failure") -> None:
        """Make every ``method`` call on ``guest`` fail with a LibvirtOperationError."""
        self.faults[(guest, method)] = LibvirtOperationError(message, guest=guest)

    def meanwhile(self, guest: str, method: str, action: Callable[[], None]) -> None:
        """Run ``action`` (another client's) once, right before the next ``method`` call on ``guest`` does anything."""
        self.actions.setdefault((guest, method), []).append(action)

    def boot(self, name: str) -> None:
        """Another client starts ``name`` (virsh start): it resumes its managed save image when it has one."""
        self.guests[name].resume_or_boot()

    def managed_save(self, name: str) -> None:
        """Another client saves the running ``name`` and stops it (virsh managedsave): its next start resumes it."""
        guest = self.guests[name]
        assert guest.live is not None, f"{name} is not running"
        guest.saved = guest.live
        guest.stopped()

    def shut_off(self, name: str) -> None:
        """Another client powers ``name`` off (virsh destroy)."""
        self.guests[name].stopped()

    def suspend(self, name: str) -> None:
        """Another client pauses the running ``name`` (virsh suspend)."""
        self.guests[name].paused = True

    def called(self, method: str, guest: str | None = None) -> list[Call]:
        """The calls of ``method`` (on ``guest`` only when given), in order."""
        return [call for call in self.calls if call.method == method and (guest is None or call.guest == guest)]

    def writes(self) -> list[Call]:
        """Every call that changes a guest or a definition."""
        reads = {
            "is_running",
            "running_if_defined",
            "memory_kib",
            "inactive_xml",
            "live_xml",
            "xml_if_defined",
            "has_managed_save",
            "managed_save_xml",
        }
        return [call for call in self.calls if call.guest and call.method not in reads]

    def guest_names(self) -> list[str]:
        self.record("", "guest_names")
        return sorted(self.guests)

    def running_names(self) -> list[str]:
        self.record("", "running_names")
        return [name for name, guest in sorted(self.guests.items()) if guest.live is not None]

    def autostart_names(self) -> list[str]:
        self.record("", "autostart_names")
        return sorted(self.autostart & set(self.guests))

    def managed_save_names(self) -> list[str]:
        self.record("", "managed_save_names")
        return [name for name, guest in sorted(self.guests.items()) if guest.saved is not None]

    def definitions(self) -> list[tuple[FakeGuest, str]]:
        self.record("", "definitions")
        return [(guest, guest.xml) for _name, guest in sorted(self.guests.items())]

    def define(self, xml: str, guest: str | None = None) -> FakeGuest:
        name = guest or ""
        self.record(name, "define", (xml,))
        refusal = _refusal(xml)
        if refusal is not None:
            raise LibvirtOperationError(f"defining the guest: {refusal}", guest=guest)
        name = _root(xml).findtext("name") or name
        rewrite = self.rewrites.get(name)
        stored = xml if rewrite is None else rewrite(xml)
        existing = self.guests.get(name)
        if existing is None:
            existing = self.guests[name] = FakeGuest(self, name, stored)
        existing.xml = stored
        # Defining a transient guest makes it persistent again.
        existing.persistent = True
        return existing

    def pci_device_xmls(self) -> list[str]:
        self.record("", "pci_device_xmls")
        return list(self.node_devices)

    def undefine(self, name: str) -> None:
        """Another client undefines ``name``: gone when shut off; a running one stays, transient, until it stops.

        libvirt still lists a transient guest and gives its inactive XML (its running definition).
        """
        guest = self.guests[name]
        if guest.live is None:
            del self.guests[name]
        else:
            guest.persistent = False

    def close(self) -> None:
        self.record("", "close")

    def __enter__(self) -> FakeHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connection(self) -> HostConnection:
        """This host as the orchestration types it: mypy proves here that the fake keeps to the Protocol."""
        return self


def domain_xml(name: str, vcpus: int = 4, memory_mib: int = 1024, current: int | None = None, extra: str = "") -> str:
    """A small x86 guest definition as libvirt would hold it; ``extra`` goes inside ``<domain>``."""
    vcpu = f"<vcpu current='{current}'>{vcpus}</vcpu>" if current is not None else f"<vcpu>{vcpus}</vcpu>"
    return (
        f"<domain type='kvm'>\n  <name>{name}</name>\n  <memory unit='MiB'>{memory_mib}</memory>\n  {vcpu}\n"
        "  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>\n"
        "  <features><acpi/><apic/></features>\n"
        f"  <cpu mode='host-passthrough'/>{extra}\n"
        "  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>\n</domain>\n"
    )
