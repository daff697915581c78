# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A private libvirtd for tests that kill, stop and restart it: never the shared one at /run/libvirt.

The daemon runs in its own mount and PID namespaces (``unshare --mount --pid --fork --mount-proc``).
A small init (this file run as a script) is PID 1 there: it bind-mounts private directories over
/run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /etc/libvirt and /var/log/libvirt, then reaps
whatever is reparented to it (libvirtd and the QEMU processes it starts) until it is killed.
Killing that init kills every process of the namespace (the kernel does it), so nothing a test
started can outlive the fixture, and the bind mounts go away with the namespace.

The configuration is the shared daemon's (``scripts/libvirtd.sh``: QEMU as root, no security
driver, no dynamic ownership, pinned to CPU 0 so the QEMU capability cache stays valid), plus
``stdio_handler = "file"`` so that no virtlogd is needed.  The shared daemon's QEMU capability cache
is copied in, which spares the ~8 s probe at each start when it is still valid.

Clients connect with ``qemu+unix:///system?socket=<root>/run/libvirt-sock``.  Run as a script
(``python -m ...private_libvirtd start``) it starts one and prints its URI, for trying things by hand.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import libvirt

from ansible_collections.vnuma.libvirt.plugins.module_utils._run.lock import lock_path

__all__ = ["PrivateLibvirtd", "user_domain_xml"]

# Inside the namespace -> the private directory (under the instance's root) mounted over it.
_MOUNTS = {
    "/run/libvirt": "run",
    "/var/lib/libvirt": "lib",
    "/var/cache/libvirt": "cache",
    "/etc/libvirt": "etc",
    "/var/log/libvirt": "log",
}
_SHARED_CAPS_CACHE = Path("/var/cache/libvirt/qemu/capabilities")
_QEMU_CONF = """\
# Written by tests/support/private_libvirtd.py: the settings of scripts/libvirtd.sh, and QEMU's
# output straight to files so that no virtlogd is needed.
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
"""
_LIBVIRTD_CONF = """\
# Written by tests/support/private_libvirtd.py.
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""
# Inside the namespace: not the shared daemon's /run/libvirtd.pid.
_PID_FILE = "/run/libvirt/libvirtd.pid"
# New mount and PID namespaces; the init (this file) is PID 1 and dies with unshare.
_UNSHARE = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "--kill-child"]
# As scripts/libvirtd.sh starts the shared one: pinned to CPU 0, so that the QEMU capability cache stays valid.
_LIBVIRTD = ["taskset", "-c", "0", "libvirtd", "--daemon", "--pid-file", _PID_FILE]


def _quiet_libvirt() -> None:
    # libvirt prints every error to stderr by default; the tests look at the exceptions instead.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def _ns_pids(ns_link: str, comm: Callable[[str], bool]) -> list[int]:
    """Host pids of the live processes of PID namespace ``ns_link`` whose command name passes ``comm``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != ns_link:
                continue
            name = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue  # gone meanwhile
        # A zombie is dead; whoever inherited it reaps it in its own time.
        if comm(name) and _state(int(entry)) not in ("Z", "X", ""):
            found.append(int(entry))
    return sorted(found)


def _state(pid: int) -> str:
    """The process state letter (R, S, T, Z...), or "" when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _make_root(prefix: str) -> Path:
    while True:
        root = Path("/tmp") / f"{prefix}-{secrets.token_hex(4)}"
        try:
            root.mkdir(mode=0o700)
            return root
        except FileExistsError:
            continue


class PrivateLibvirtd:
    """One private libvirtd: ``start()``, ``kill()``, ``stop()``/``cont()``, ``restart()``, ``close()``."""

    def __init__(self, name_prefix: str = "vnuma-pl") -> None:
        # Short, since the socket path must fit a sockaddr_un (108 bytes), and of letters and digits only:
        # libvirt drops other characters from the guest names it names cgroups after (see _remove_cgroups).
        self.root = _make_root(name_prefix)
        self.socket = self.root / "run" / "libvirt-sock"
        self.uri = f"qemu+unix:///system?socket={self.socket}"
        self.log = self.root / "log" / "libvirtd.log"
        self._init: subprocess.Popen[bytes] | None = None
        self.init_pid = 0
        self._ns_link = ""
        self.pid = 0  # libvirtd's pid as seen from here

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Make the namespace and start libvirtd in it; returns once the URI answers."""
        for name in _MOUNTS.values():
            (self.root / name).mkdir(parents=True, exist_ok=True)
        (self.root / "log" / "qemu").mkdir(exist_ok=True)
        (self.root / "etc" / "qemu.conf").write_text(_QEMU_CONF)
        (self.root / "etc" / "libvirtd.conf").write_text(_LIBVIRTD_CONF)
        if _SHARED_CAPS_CACHE.is_dir():
            shutil.copytree(_SHARED_CAPS_CACHE, self.root / "cache" / "qemu" / "capabilities", dirs_exist_ok=True)
        self._init = subprocess.Popen(
            [*_UNSHARE, sys.executable, __file__, "--init", str(self.root)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self._init.stdout is not None
        ready = self._init.stdout.readline().decode().strip()
        if ready != "ready":
            self.close()
            raise RuntimeError(f"the private libvirtd's namespace did not come up: {ready!r}")
        # The init's pid as seen from here: unshare's one child.
        children = Path(f"/proc/{self._init.pid}/task/{self._init.pid}/children").read_text().split()
        self.init_pid = int(children[0])
        self._ns_link = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        self.start_daemon(timeout)

    def start_daemon(self, timeout: float = 60.0) -> None:
        """Start libvirtd in the namespace (after a kill); returns once the URI answers."""
        assert self._init is not None, "start() first"
        if self.daemon_pids():
            raise RuntimeError(f"libvirtd already runs in {self.root} (pids {self.daemon_pids()})")
        subprocess.run(
            ["nsenter", "--target", str(self.init_pid), "--mount", "--pid", "--", *_LIBVIRTD],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        pids = self.daemon_pids()
        if len(pids) != 1:
            raise RuntimeError(f"expected one private libvirtd, found {pids} (log: {self.log})")
        self.pid = pids[0]
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        _quiet_libvirt()
        deadline = time.monotonic() + timeout
        while True:
            try:
                libvirt.open(self.uri).close()
                return
            except libvirt.libvirtError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.uri} did not answer within {timeout} s: {error} (log: {self.log})"
                    ) from None
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL libvirtd (stopped or not) and wait until it is gone; its QEMU processes live on."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        # Until the namespace's init reaped it: a killed thread-group leader shows as a zombie while its
        # other threads still hold its sockets open.
        self._wait(lambda: not Path(f"/proc/{self.pid}").exists(), f"libvirtd {self.pid} to die")

    def stop(self) -> None:
        """SIGSTOP libvirtd: its sockets stay open and accept connections, nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)
        self._wait(lambda: _state(self.pid) == "T", f"libvirtd {self.pid} to stop")

    def cont(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def restart(self, timeout: float = 60.0) -> None:
        """Kill libvirtd whatever its state and start it again (it finds its running guests back)."""
        self.kill()
        self.start_daemon(timeout)

    def close(self) -> None:
        """Kill the whole namespace (libvirtd, QEMU, anything else) and remove the private files."""
        if self._init is not None:
            if self._init.poll() is None and self.init_pid:
                with contextlib.suppress(ProcessLookupError):
                    # PID 1 of the namespace: the kernel kills every other process in it.
                    os.kill(self.init_pid, signal.SIGKILL)
                self._init.kill()
            self._init.wait(timeout=30)
            if self._init.stdout is not None:
                self._init.stdout.close()
            if self._ns_link:
                self._wait(lambda: not _ns_pids(self._ns_link, lambda _name: True), "the namespace to empty")
        self._remove_cgroups()
        shutil.rmtree(self.root, ignore_errors=True)
        # The lock file the collection's runs took for this URI (named after it, never reused).
        with contextlib.suppress(OSError):
            os.unlink(lock_path(self.uri))

    def __enter__(self) -> PrivateLibvirtd:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what runs ---------------------------------------------------------------------------------

    def daemon_pids(self) -> list[int]:
        return _ns_pids(self._ns_link, lambda name: name == "libvirtd") if self._ns_link else []

    def qemu_pids(self) -> list[int]:
        return _ns_pids(self._ns_link, lambda name: name.startswith("qemu-system")) if self._ns_link else []

    def _wait(self, done: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"waited {timeout} s for {what}")
            time.sleep(0.02)

    def _remove_cgroups(self) -> None:
        # libvirtd removes a guest's cgroups when the guest stops; the ones of guests killed with the
        # namespace stay behind, empty.  They are named after the guest, and the guests' names are
        # made of the instance's unique prefix.
        marker = self.root.name
        for controller in Path("/sys/fs/cgroup").glob("*/machine"):
            for group in sorted(controller.glob(f"*{marker}*"), reverse=True):
                for path in sorted(group.rglob("*"), key=lambda item: len(item.parts), reverse=True):
                    if path.is_dir():
                        with contextlib.suppress(OSError):
                            path.rmdir()
                with contextlib.suppress(OSError):
                    group.rmdir()

    def guest_prefix(self) -> str:
        """A prefix for guest names that ties the guests to this instance (and its cgroups)."""
        return self.root.name


def user_domain_xml(name: str, vcpus: int = 4, memory_mib: int = 256) -> str:
    """A diskless TCG guest with parts of its user's own, which the collection must keep as they are.

    It starts in well under a second and runs SeaBIOS with nothing to boot (ACPI shutdowns go unheard).
    """
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <title>fault-injection guest</title>
  <description>the user's own words &amp; markup</description>
  <metadata><app:owner xmlns:app='http://example.org/app'>team-a</app:owner></metadata>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{vcpus}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>
  <features><acpi/><apic/></features>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <clock offset='utc'><timer name='rtc' tickpolicy='catchup'/></clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def _init_main(root: str) -> None:
    """PID 1 of the namespace: mount the private directories, report, then reap children forever."""
    for target, name in _MOUNTS.items():
        subprocess.run(["mount", "--bind", os.path.join(root, name), target], check=True)
    print("ready", flush=True)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(0.5)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--init":
        _init_main(sys.argv[2])
    elif sys.argv[1:] == ["start"]:
        instance = PrivateLibvirtd()
        instance.start()
        print(f"{instance.uri} (libvirtd pid {instance.pid}; stop it all with: kill -9 {instance.init_pid})")
    else:
        sys.exit("usage: private_libvirtd.py start")
