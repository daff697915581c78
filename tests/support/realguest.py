# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Real guests under a real libvirtd, for the integration tests (``tests/integration``).

A guest is a diskless ``type='qemu'`` (TCG) domain that boots the image of
``scripts/build-guest-image.sh`` straight from its kernel and initramfs, with its serial console
written to a file.  The guest's ``/init`` prints what the guest kernel sees of its NUMA topology
(``/sys/devices/system/node``, per-CPU topology) between ``VNUMA-REPORT-BEGIN`` and
``VNUMA-REPORT-END`` lines; ``read_guest_report()`` waits for such a report and parses it.

Every guest made here carries an owner element in its ``<metadata>`` (this process's pid and start
time), so that a later run can remove what a killed run left behind without touching the guests of
runs still going on the same libvirtd.
"""

from __future__ import annotations

import os
import re
import secrets
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import escape, quoteattr

import libvirt
import libvirt_qemu

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import GuestTopology, Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import ExpandResult, expand_domain

__all__ = [
    "URI",
    "IMAGE_DIR",
    "QEMU_LOG_DIR",
    "BASE_CMDLINE",
    "OWNER_NS",
    "GuestAccess",
    "GuestCache",
    "GuestCpu",
    "GuestNode",
    "GuestPci",
    "GuestReport",
    "ReportError",
    "Guest",
    "GuestFactory",
    "connect",
    "domain_xml",
    "parse_reports",
    "read_guest_report",
    "vcpu_position",
    "remove_stale_guests",
    "describe",
]

URI = "qemu:///system"

ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = Path(os.environ.get("VNUMA_GUEST_IMAGE", str(ROOT / ".build" / "guest-image")))
QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")

# Always on the guest's kernel command line:
# - console=ttyS0: the serial console carries the report;
# - memhp_default_state=online: hot-added memory comes online by itself;
# - panic=-1: a panic ends the guest at once (on_reboot is destroy) instead of hanging until the timeout;
# - nokaslr: the kernel image (~30 MiB, reserved at boot) always lands in the first cell, so the memory
#   each node reports does not change from one boot to the next;
# - lpj=: a preset delay-loop calibration.  Under TCG the calibration of every CPU brought up after boot
#   fails ("calibrate_delay_direct() failed") after seconds to minutes: a hot-added vCPU came online only
#   after 20 s to over 80 s without it.  The value (BogoMIPS 4000) only matters for that skipped loop;
# - swiotlb=noforce: with <maxMemory> the hotplug area lies above 4 GiB and the kernel would then set
#   64 MiB of bounce buffers aside in the last cell below 4 GiB; these guests have no DMA devices;
# - tsc=reliable: the kernel then skips the TSC synchronisation check that a CPU brought online runs
#   against the boot CPU ("Skipped synchronization checks as TSC is reliable"), a busy wait that needs
#   both vCPUs to run at once, which a loaded 2-core machine under TCG does not grant for minutes (a
#   hot-added vCPU's report once came after more than 300 s); no_timer_check skips the boot's timer IRQ
#   check, which TCG's timing fails at random.  The lab's guests and hypervisors have both too.
BASE_CMDLINE = (
    "console=ttyS0 memhp_default_state=online panic=-1 nokaslr lpj=8000000 swiotlb=noforce tsc=reliable no_timer_check"
)

# The harness's own <metadata> element: who made the guest.
OWNER_NS = "urn:vnuma:libvirt:integration-test"
OWNER_XML = "<owner xmlns={ns} pid='{pid}' start='{start}'/>"

# The guest image's /init prints this first; the kernel prints BOOT_BEGINS at the start of every boot.
INIT_BEGINS = "VNUMA-INIT "
BOOT_BEGINS = "Linux version "
# A kernel that printed nothing for this long before running /init has stalled: its init never waits
# that long (3-10 s in all to /init under TCG on a loaded machine).  What was seen stalling: QEMU 7.2's
# multi-threaded TCG can translate a block of kernel code on one vCPU while another vCPU patches those
# bytes (a static key: int3 over the first byte, then the rest, then the first byte), and keep the stale
# translation.  A vCPU running it traps on an int3 that memory no longer holds; the kernel, seeing no int3
# there ("removed right after we hit it"), returns to the same address, and it traps again, for ever:
# every vCPU cycling through sched_clock_tick and asm_exc_int3 right after "sched_clock: Marking stable",
# about once in 50-100 boots of a 2-vCPU guest with four such guests on two CPUs (docs/development.md).
# TCG's single-threaded mode has no such race, but libvirt then refuses every vCPU pin ("cpu affinity is
# not supported"), and pins are what these tests check.
KERNEL_STALL_SECONDS = 30.0

BEGIN = "VNUMA-REPORT-BEGIN"
END = "VNUMA-REPORT-END"
# Lines after which no further report will come.
_FINAL = ("VNUMA-POWEROFF", "Kernel panic - not syncing", "reboot: Power down")

_REPORT = re.compile(
    rf"^{BEGIN} seq=(?P<seq>\d+) uptime=(?P<uptime>[\d.]+)\s*$(?P<body>.*?)^{END} seq=(?P=seq)\s*$",
    re.MULTILINE | re.DOTALL,
)


class GuestKernelStall(UserWarning):
    """A guest's kernel stalled before ``/init`` and the guest was started again (see KERNEL_STALL_SECONDS)."""


class ReportError(AssertionError):
    """No (matching) report came from the guest in time; the message has the end of its console."""


class KernelStallError(ReportError):
    """The guest's kernel stalled before it ran ``/init`` (see KERNEL_STALL_SECONDS)."""


class GuestCpu(NamedTuple):
    """Where the guest kernel puts one of its online CPUs."""

    package: int
    die: int
    core: int
    node: int
    # The CPUs sharing its level 3 cache (shared_cpu_list); empty when it has none or the report predates it.
    l3: frozenset[int] = frozenset()


def _figure(text: str) -> int | None:
    return None if text == "-" else int(text)


class GuestAccess(NamedTuple):
    """A node's HMAT as the guest kernel applied it (access0): its initiators, ns and MiB/s (None: absent)."""

    initiators: frozenset[int]
    read_latency: int | None
    write_latency: int | None
    read_bandwidth: int | None
    write_bandwidth: int | None


class GuestCache(NamedTuple):
    """A memory-side cache of a node as the guest kernel sees it (sizes in bytes)."""

    level: int
    size: int | None
    line: int | None


class GuestPci(NamedTuple):
    """A PCI function as the guest kernel sees it: its ids and its node (-1: none)."""

    vendor: str
    device: str
    pci_class: str
    node: int


@dataclass(frozen=True)
class GuestNode:
    """One NUMA node as the guest kernel sees it."""

    cpus: frozenset[int]
    distances: tuple[int, ...]
    # MemTotal of the node: its present memory less what the kernel reserved at boot.
    mem_kib: int
    # Present memory of the node (/proc/zoneinfo): the cell's size less the firmware's holes.
    present_kib: int


@dataclass(frozen=True)
class GuestReport:
    """One report of the guest's /init (see scripts/build-guest-image.sh for the format)."""

    seq: int
    uptime: float
    online: frozenset[int]
    present: frozenset[int]
    possible: frozenset[int]
    nodes: dict[int, GuestNode]
    cpus: dict[int, GuestCpu]
    # HMAT: node -> its access0 figures, node -> its memory-side caches (only nodes that have them).
    access: dict[int, GuestAccess] = field(default_factory=dict)
    caches: dict[int, tuple[GuestCache, ...]] = field(default_factory=dict)
    # The kernel's messages that a CPU's SMT, L2 or LLC sibling lies in another node, as logged.
    sibling_warnings: tuple[str, ...] = ()
    # PCI address (0000:ff:00.0) -> the function's ids and node.
    pci: dict[str, GuestPci] = field(default_factory=dict)

    @property
    def distance_matrix(self) -> list[list[int]]:
        return [list(self.nodes[node].distances) for node in sorted(self.nodes)]

    def cpu_at(self, package: int, core: int) -> int | None:
        """The guest CPU number of the online CPU with this package and core id, if there is one.

        Guest CPU numbers follow the order CPUs came online, not libvirt's vCPU ids: after a
        hot-add they differ, while package and core ids stay those of QEMU's topology.
        """
        found = [cpu for cpu, where in self.cpus.items() if (where.package, where.core) == (package, core)]
        if len(found) > 1:
            raise AssertionError(f"guest CPUs {found} all have package {package} core {core}")
        return found[0] if found else None

    def node_of_vcpu(self, topology: GuestTopology, vcpu: int) -> int | None:
        """The guest node of libvirt vCPU ``vcpu`` (None when it is offline), found by its topology ids."""
        socket, _die, core, _thread = vcpu_position(topology, vcpu)
        cpu = self.cpu_at(socket, core)
        return None if cpu is None else self.cpus[cpu].node


def vcpu_position(topology: GuestTopology, vcpu: int) -> tuple[int, int, int, int]:
    """(socket, die, core, thread) of a vCPU id: QEMU numbers threads fastest, then cores, dies, sockets."""
    thread = vcpu % topology.threads
    core = vcpu // topology.threads % topology.cores
    die = vcpu // (topology.threads * topology.cores) % topology.dies
    socket = vcpu // (topology.threads * topology.cores * topology.dies)
    return socket, die, core, thread


def _l3(text: str) -> frozenset[int]:
    return frozenset() if text == "-" else parse_cpuset(text, "l3 shared_cpu_list")


def _fields(line: str) -> tuple[str, dict[str, str]]:
    kind, *pairs = line.split()
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"not key=value: {pair!r} in {line!r}")
        values[key] = value
    return kind, values


def _parse_report(seq: int, uptime: float, body: str) -> GuestReport:
    system: dict[str, str] = {}
    nodes: dict[int, GuestNode] = {}
    cpus: dict[int, GuestCpu] = {}
    access: dict[int, GuestAccess] = {}
    caches: dict[int, tuple[GuestCache, ...]] = {}
    warnings: list[str] = []
    pci: dict[str, GuestPci] = {}
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("dmesg "):
            # Free text: the kernel's own words.
            warnings.append(line.removeprefix("dmesg "))
            continue
        kind, values = _fields(line)
        if kind == "system":
            system = values
        elif kind == "node":
            nodes[int(values["id"])] = GuestNode(
                cpus=parse_cpuset(values["cpulist"], "node cpulist", allow_empty=True),
                distances=tuple(int(value) for value in values["distance"].split(",")),
                mem_kib=int(values["mem_kib"]),
                present_kib=int(values["present_kib"]),
            )
        elif kind == "access":
            initiators = values["initiators"]
            access[int(values["node"])] = GuestAccess(
                initiators=frozenset() if initiators == "-" else parse_cpuset(initiators, "initiators"),
                read_latency=_figure(values["read_latency"]),
                write_latency=_figure(values["write_latency"]),
                read_bandwidth=_figure(values["read_bandwidth"]),
                write_bandwidth=_figure(values["write_bandwidth"]),
            )
        elif kind == "cache":
            cache = GuestCache(int(values["level"]), _figure(values["size"]), _figure(values["line"]))
            caches[int(values["node"])] = (*caches.get(int(values["node"]), ()), cache)
        elif kind == "cpu":
            cpus[int(values["id"])] = GuestCpu(
                package=int(values["package"]),
                die=int(values["die"]),
                core=int(values["core"]),
                node=int(values["node"]),
                l3=_l3(values.get("l3", "-")),
            )
        elif kind == "pci":
            pci[values["address"]] = GuestPci(values["vendor"], values["device"], values["class"], int(values["node"]))
        else:
            raise ValueError(f"unknown report line {line!r}")
    if not system:
        raise ValueError("report without a system line")
    return GuestReport(
        seq=seq,
        uptime=uptime,
        online=parse_cpuset(system["online"], "online CPUs"),
        present=parse_cpuset(system["present"], "present CPUs"),
        possible=parse_cpuset(system["possible"], "possible CPUs"),
        nodes=nodes,
        cpus=cpus,
        access=access,
        caches=caches,
        sibling_warnings=tuple(warnings),
        pci=pci,
    )


def parse_reports(text: str) -> list[GuestReport]:
    """Every complete report in a console log, in order."""
    text = text.replace("\r", "")
    reports = []
    for match in _REPORT.finditer(text):
        try:
            reports.append(_parse_report(int(match["seq"]), float(match["uptime"]), match["body"]))
        except (KeyError, ValueError) as error:
            raise ReportError(f"malformed report seq={match['seq']}: {error}\n{match.group(0)}") from None
    return reports


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").replace("\r", "")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def read_guest_report(
    logfile: Path | str,
    timeout: float,
    seq: int | None = None,
    *,
    after: int | None = None,
    until: Callable[[GuestReport], bool] | None = None,
    alive: Callable[[], bool] | None = None,
    stalled: Callable[[str], bool] | None = None,
) -> GuestReport:
    """Wait for a report in the guest's console log and return it, parsed.

    Without arguments: the first report.  ``seq``: the report with that sequence number.  ``after``:
    the first report numbered above it.  ``until``: the first (of those) that satisfies it.
    ``alive`` tells whether the guest still runs: when it does not, or the guest has said its last
    word, the wait ends early.  ``stalled`` tells from the console's text whether the guest is stuck: the
    wait then ends with ``KernelStallError``.  Raises ``ReportError`` with the end of the log on failure.
    """
    path = Path(logfile)
    wanted = f"seq={seq}" if seq is not None else f"after seq {after}" if after is not None else "the first"
    if until is not None:
        wanted += ", satisfying the condition"

    def find() -> tuple[GuestReport | None, str]:
        text = path.read_text(errors="replace") if path.exists() else ""
        for report in parse_reports(text):
            if seq is not None and report.seq != seq:
                continue
            if after is not None and report.seq <= after:
                continue
            if until is not None and not until(report):
                continue
            return report, text
        return None, text

    deadline = time.monotonic() + timeout
    while True:
        running = alive is None or alive()
        report, text = find()
        if report is not None:
            return report
        ended = next((marker for marker in _FINAL if marker in text), None)
        if ended is None and not running:
            ended = "the guest is not running"
        if ended is not None:
            raise ReportError(f"no report ({wanted}) in {path}: {ended}\n--- end of the console:\n{_tail(path)}")
        if stalled is not None and stalled(text):
            raise KernelStallError(
                f"no report ({wanted}) in {path}: the kernel stalled before /init (its console silent for"
                f" {KERNEL_STALL_SECONDS:g}s)\n--- end of the console:\n{_tail(path)}"
            )
        if time.monotonic() >= deadline:
            raise ReportError(
                f"no report ({wanted}) in {path} after {timeout:g}s\n--- end of the console:\n{_tail(path)}"
            )
        time.sleep(0.1)


def domain_xml(
    name: str,
    vcpus: int,
    memory_mib: int,
    console_log: Path | str,
    current_vcpus: int | None = None,
    extra_xml: str = "",
    devices_xml: str = "",
    cmdline: str = "",
    image_dir: Path | str = IMAGE_DIR,
    machine: str = "q35",
    cpu_xml: str = "<cpu mode='maximum' check='none'/>",
    owner_xml: str = "",
    console_append: bool = False,
) -> str:
    """A diskless TCG domain that boots the guest image, without NUMA (a template, before expansion).

    ``extra_xml`` goes into ``<domain>`` (a ``<vnuma>`` element, ``<maxMemory>``...), ``devices_xml``
    into ``<devices>``.  No disk, no network, no graphics, no USB, no balloon: the fewer devices, the
    faster TCG boots.  ``console_append``: libvirt appends to the console file instead of truncating it at
    each start, as it does on a migration's destination too (for tests that move a running guest).
    """
    image = Path(image_dir)
    current = "" if current_vcpus is None else f" current='{current_vcpus}'"
    full_cmdline = f"{BASE_CMDLINE} {cmdline}".strip()
    metadata = f"<metadata>{owner_xml}</metadata>" if owner_xml else ""
    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>
  {metadata}
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu{current}>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine={quoteattr(machine)}>hvm</type>
    <kernel>{escape(str(image / "vmlinuz"))}</kernel>
    <initrd>{escape(str(image / "initrd.img"))}</initrd>
    <cmdline>{escape(full_cmdline)}</cmdline>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  {cpu_xml}
  {extra_xml}
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'>
      <source path={quoteattr(str(console_log))}{" append='on'" if console_append else ""}/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    {devices_xml}
  </devices>
</domain>
"""


def _ignore_libvirt_errors(_context: object, _error: object) -> None:
    """libvirt-python prints every error to stderr by default; the exceptions carry them already."""


def connect(uri: str = URI) -> libvirt.virConnect:
    libvirt.registerErrorHandler(_ignore_libvirt_errors, None)
    return libvirt.open(uri)


def _process_start(pid: int) -> str | None:
    """The start time of a process (field 22 of /proc/PID/stat), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_xml() -> str:
    pid = os.getpid()
    return OWNER_XML.format(ns=quoteattr(OWNER_NS), pid=pid, start=_process_start(pid))


def _destroy_and_undefine(dom: libvirt.virDomain) -> None:
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError as error:
        if error.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
            raise
    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    )
    try:
        dom.undefineFlags(flags)
    except libvirt.libvirtError as error:
        if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise


def remove_stale_guests(conn: libvirt.virConnect) -> list[str]:
    """Destroy and undefine the guests of earlier harness runs whose process is gone; their names."""
    removed = []
    for dom in conn.listAllDomains():
        try:
            owner = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, OWNER_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        except libvirt.libvirtError:
            continue  # not ours, or gone meanwhile
        pid = re.search(r"pid=['\"](\d+)['\"]", owner)
        start = re.search(r"start=['\"](\d+)['\"]", owner)
        if pid is None or start is None or _process_start(int(pid[1])) == start[1]:
            continue
        name = dom.name()
        _destroy_and_undefine(dom)
        removed.append(name)
    return removed


@dataclass
class Guest:
    """A defined guest of the harness, with its console log and, when expanded, its layout."""

    conn: libvirt.virConnect
    dom: libvirt.virDomain
    name: str
    console_log: Path
    # The XML given to libvirt (after expansion when there was a <vnuma> request).
    xml: str
    expanded: ExpandResult | None = None
    started_at: float | None = None

    @property
    def layout(self) -> Layout:
        if self.expanded is None or self.expanded.layout is None:
            raise AssertionError(f"guest {self.name} has no vNUMA layout")
        return self.expanded.layout

    def start(self) -> None:
        self.dom.create()
        self.started_at = time.monotonic()

    def is_active(self) -> bool:
        try:
            return bool(self.dom.isActive())
        except libvirt.libvirtError:
            return False

    def report(
        self,
        timeout: float = 60.0,
        seq: int | None = None,
        *,
        after: int | None = None,
        until: Callable[[GuestReport], bool] | None = None,
    ) -> GuestReport:
        """Wait for a report of this guest (see ``read_guest_report``); a failure adds QEMU's log and where
        the vCPUs are.  A guest whose kernel stalls before it runs ``/init`` is started once more, and a
        ``GuestKernelStall`` warning quotes the stall (``KERNEL_STALL_SECONDS`` says why)."""
        try:
            return self._report(timeout, seq, after, until)
        except KernelStallError as error:
            warnings.warn(f"{self.name} started again\n{error}", GuestKernelStall, stacklevel=2)
        self.dom.destroy()
        self.start()
        return self._report(timeout, seq, after, until)

    def _report(
        self, timeout: float, seq: int | None, after: int | None, until: Callable[[GuestReport], bool] | None
    ) -> GuestReport:
        try:
            return read_guest_report(
                self.console_log, timeout, seq, after=after, until=until, alive=self.is_active, stalled=self.stalled
            )
        except ReportError as error:
            qemu_log = QEMU_LOG_DIR / f"{self.name}.log"
            raise type(error)(
                f"{error}\n--- end of {qemu_log}:\n{_tail(qemu_log, 15)}\n--- {self.vcpu_state()}"
            ) from None

    def stalled(self, console: str) -> bool:
        """Whether the kernel never ran ``/init`` since it last began (``console``: the console's text) and
        the console has been silent for ``KERNEL_STALL_SECONDS``."""
        if INIT_BEGINS in console[max(console.rfind(BOOT_BEGINS), 0) :]:
            return False
        try:
            return time.time() - self.console_log.stat().st_mtime >= KERNEL_STALL_SECONDS
        except FileNotFoundError:
            return False

    def vcpu_state(self) -> str:
        """Where each vCPU is, for a guest that printed nothing for too long: QEMU's ``info cpus`` and, from
        ``info registers -a``, each vCPU's instruction pointer and halt state (QEMU 7.2's ``info cpus`` shows
        neither).  A stall then shows which vCPU waits, and where: the guests boot with nokaslr, so RIP is an
        address of the kernel's own System.map.  Libvirt marks the guest tainted (custom-monitor): it is on
        its way out."""
        parts = []
        for command in ("info cpus", "info registers -a"):
            try:
                text = libvirt_qemu.qemuMonitorCommand(
                    self.dom, command, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
                )
            except libvirt.libvirtError as error:
                text = str(error)
            if command == "info registers -a":
                wanted = ("CPU#", "RIP=", "RSI=", "CR0=")  # RSP is on the RSI= line, HLT on the RIP= one
                text = "\n".join(line for line in text.splitlines() if line.lstrip().startswith(wanted))
            parts.append(f"{command}:\n{text}")
        return "\n".join(parts)

    def reports(self) -> list[GuestReport]:
        text = self.console_log.read_text(errors="replace") if self.console_log.exists() else ""
        return parse_reports(text)

    def inactive_xml(self) -> str:
        return self.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)

    def live_xml(self) -> str:
        return self.dom.XMLDesc(0)


@dataclass
class GuestFactory:
    """Makes guests on ``conn`` and removes every one of them in ``cleanup()``."""

    conn: libvirt.virConnect
    host_caps: str
    workdir: Path
    image_dir: Path = IMAGE_DIR
    guests: list[Guest] = field(default_factory=list)

    def __call__(
        self,
        name_prefix: str,
        vcpus: int,
        memory_mib: int,
        current_vcpus: int | None = None,
        extra_xml: str = "",
        vnuma: str | None = None,
        *,
        devices_xml: str = "",
        cmdline: str = "",
        wait: bool = False,
        guest_timeout: int = 300,
        start: bool = True,
        console_append: bool = False,
        **template: str,
    ) -> Guest:
        """Define (and by default start) a guest named ``name_prefix`` plus a random suffix.

        ``vnuma``: a ``<vnuma>`` element; the domain is then expanded with ``expand_domain`` for the
        connection's host.  ``wait``: the guest stays up, re-reporting on every change, for
        ``guest_timeout`` seconds.  ``console_append``: see ``domain_xml``.  ``template``: further ``domain_xml``
        options (machine, cpu_xml).
        """
        name = f"{name_prefix}-{secrets.token_hex(4)}"
        console_log = self.workdir / f"{name}.console.log"
        options = [cmdline] if cmdline else []
        if wait:
            options.append(f"vnuma.wait=1 vnuma.timeout={guest_timeout}")
        xml = domain_xml(
            name,
            vcpus,
            memory_mib,
            console_log,
            current_vcpus=current_vcpus,
            extra_xml=extra_xml + (vnuma or ""),
            devices_xml=devices_xml,
            cmdline=" ".join(options),
            image_dir=self.image_dir,
            owner_xml=_owner_xml(),
            console_append=console_append,
            **template,
        )
        expanded = None
        if vnuma is not None:
            expanded = expand_domain(xml, self.host_caps)
            xml = expanded.xml
        dom = self.conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        guest = Guest(conn=self.conn, dom=dom, name=name, console_log=console_log, xml=xml, expanded=expanded)
        self.guests.append(guest)
        if start:
            guest.start()
        return guest

    def cleanup(self) -> list[str]:
        """Destroy and undefine every guest made here; the problems met (each guest is tried)."""
        problems = []
        for guest in self.guests:
            try:
                _destroy_and_undefine(guest.dom)
            except libvirt.libvirtError as error:
                problems.append(f"{guest.name}: {error}")
                continue
            # libvirt keeps QEMU's log of every domain name ever started; a failed report quoted its end.
            (QEMU_LOG_DIR / f"{guest.name}.log").unlink(missing_ok=True)
        self.guests.clear()
        return problems


def describe(reports: Iterable[GuestReport]) -> str:
    """Reports as short text, for assertion messages."""
    return "\n".join(
        f"seq={report.seq} online={sorted(report.online)} nodes="
        + ", ".join(f"{node}:{sorted(info.cpus)}/{info.mem_kib}KiB" for node, info in sorted(report.nodes.items()))
        for report in reports
    )
