# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Boot and stop the lab: nested multi-node hypervisors under QEMU TCG (docs/lab.md).

    lab.py up TOPOLOGY.yml...   boot every hypervisor of the files, wait for their libvirtd, reserve the
                                hugepages, write the inventory and the state file
    lab.py down                 stop what `up` started (pids from the state file, checked)
    lab.py status               what runs
    lab.py ssh NAME [COMMAND]   a shell or a command on one lab hypervisor, as root

The lab runs its own QEMU processes; it never talks to this machine's libvirtd.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lab_network import PeerLink, lab_address, peer_links, setup_script
from lab_qemu import PROCESS_PREFIX, BootFiles, qemu_argv
from lab_topology import Lab, LabHypervisor, TopologyError, load_topology

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / ".build" / "lab"
STATE_NAME = "state.json"
INVENTORY_NAME = "inventory.yml"
# Boot to libvirtd answering takes about a minute under TCG (92 s the very first time): leave room for a
# busy machine.
BOOT_TIMEOUT_S = 600
# What the image's lab-ready.service writes on the serial console once libvirtd answers
# (scripts/lab/rootfs/etc/systemd/system/lab-ready.service), followed by the uptime in seconds.
READY_PREFIX = "vnuma-lab: ready after "
# How often the console is read, and how long to wait between SSH tries when the console says nothing.
# The fallback is rare and slow on purpose: an SSH try before sshd listens blocks until its timeout (QEMU
# accepts the forwarded connection at once), which delayed seeing the ready line by up to a minute.
POLL_S = 0.5
SSH_FALLBACK_S = 120
STOP_TIMEOUT_S = 15
# Memory the machine keeps for itself beyond the lab's own, when the lab boots.
HOST_RESERVE_MIB = 1024
SSH_OPTIONS = (
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
    "-o",
    # A lab under TCG on a busy machine may take many seconds to answer the SSH banner.
    "ConnectTimeout=60",
)


class LabError(Exception):
    """The lab could not do what was asked; the message says why."""


@dataclass(frozen=True)
class Running:
    """One lab hypervisor that `up` started."""

    name: str
    pid: int
    port: int
    console: str


@dataclass(frozen=True)
class LabDir:
    """Where the lab keeps its image, key, state and inventory."""

    path: Path

    @property
    def image(self) -> Path:
        return self.path / "image"

    @property
    def key(self) -> Path:
        return self.image / "id_ed25519"

    @property
    def state(self) -> Path:
        return self.path / STATE_NAME

    @property
    def inventory(self) -> Path:
        return self.path / INVENTORY_NAME


def say(message: str) -> None:
    print(f"lab: {message}", flush=True)


def read_state(lab_dir: LabDir) -> tuple[list[str], list[Running]]:
    """The topology files and hypervisors of the lab that is up ([] and [] when none is)."""
    if not lab_dir.state.exists():
        return [], []
    data = json.loads(lab_dir.state.read_text(encoding="utf-8"))
    return list(data["topology"]), [Running(**entry) for entry in data["hypervisors"]]


def write_state(lab_dir: LabDir, topology: Sequence[str], running: Sequence[Running]) -> None:
    data = {"topology": list(topology), "hypervisors": [asdict(entry) for entry in running]}
    temporary = lab_dir.state.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    temporary.replace(lab_dir.state)


def is_ours(entry: Running) -> bool:
    """Whether ``entry.pid`` is still the QEMU process the lab started (a pid may have been reused)."""
    try:
        argv = Path(f"/proc/{entry.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    wanted = f"{PROCESS_PREFIX}{entry.name},process={PROCESS_PREFIX}{entry.name}".encode()
    return wanted in argv and f"hostfwd=tcp:127.0.0.1:{entry.port}-:22".encode() in b" ".join(argv)


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ssh_argv(lab_dir: LabDir, entry: Running, command: str | None = None) -> list[str]:
    argv = ["ssh", *SSH_OPTIONS, "-i", str(lab_dir.key), "-p", str(entry.port), "root@127.0.0.1"]
    return [*argv, command] if command is not None else argv


def ssh(
    lab_dir: LabDir, entry: Running, command: str, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ssh_argv(lab_dir, entry, command), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def available_mib() -> int:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise LabError("/proc/meminfo has no MemAvailable")


def start(lab_dir: LabDir, hypervisor: LabHypervisor, links: Sequence[PeerLink]) -> Running:
    port = free_port()
    console = lab_dir.path / f"{hypervisor.name}.console.log"
    log = lab_dir.path / f"{hypervisor.name}.qemu.log"
    argv = qemu_argv(hypervisor, BootFiles.under(lab_dir.image), port, console, links)
    with log.open("w", encoding="utf-8") as output:
        output.write(shlex.join(argv) + "\n")
        output.flush()
        # A session of its own: the lab outlives `make lab-up` and no terminal signal reaches it.
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    entry = Running(hypervisor.name, process.pid, port, str(console))
    # Right after the fork /proc shows the child's command line empty for a moment: wait for QEMU's.
    deadline = time.monotonic() + 10
    while not is_ours(entry) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    say(f"{hypervisor.name}: QEMU pid {process.pid}, SSH on 127.0.0.1:{port}, console {console}")
    return entry


def console_ready(console: Path) -> float | None:
    """The lab hypervisor's own uptime when it said it was ready on its console, or None before that."""
    try:
        text = console.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        # A line still being written has no " s" yet: wait for the whole of it.
        if line.startswith(READY_PREFIX) and line.rstrip().endswith(" s"):
            try:
                return float(line[len(READY_PREFIX) :].split()[0])
            except ValueError:
                return None
    return None


def wait_for_libvirtd(lab_dir: LabDir, entry: Running, started: float) -> float | None:
    """Until the lab's libvirtd answers over SSH; fails early when QEMU has exited.

    The image says on the console when libvirtd answers (lab-ready.service): SSH is tried then, since
    every SSH handshake costs the emulated machine seconds.  Without that line (a console that lost it),
    SSH is still tried every SSH_FALLBACK_S.  Returns the hypervisor's uptime from that line, if any.
    """
    console = Path(entry.console)
    last_try = time.monotonic()
    while True:
        if not is_ours(entry):
            log = lab_dir.path / f"{entry.name}.qemu.log"
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
            raise LabError(f"{entry.name}: QEMU exited during boot: " + " | ".join(tail))
        uptime = console_ready(console)
        if uptime is not None or time.monotonic() - last_try > SSH_FALLBACK_S:
            last_try = time.monotonic()
            try:
                result = ssh(lab_dir, entry, "virsh -c qemu:///system capabilities >/dev/null", timeout=60)
                if result.returncode == 0:
                    return uptime
            except subprocess.TimeoutExpired:
                pass
        if time.monotonic() - started > BOOT_TIMEOUT_S:
            raise LabError(
                f"{entry.name}: libvirtd did not answer within {BOOT_TIMEOUT_S} s (console: {entry.console})"
            )
        time.sleep(POLL_S)


def hugepages_path(node_id: int) -> str:
    return f"/sys/devices/system/node/node{node_id}/hugepages/hugepages-2048kB/nr_hugepages"


def read_pools(lab_dir: LabDir, entry: Running, hypervisor: LabHypervisor) -> dict[int, int]:
    """Every node's 2 MiB pool, in one SSH call."""
    command = " ".join(["cat", *(hugepages_path(node.id) for node in hypervisor.nodes)])
    values = ssh(lab_dir, entry, command).stdout.split()
    return {node.id: int(value) for node, value in zip(hypervisor.nodes, values, strict=False)}


def reserve_hugepages(lab_dir: LabDir, entry: Running, hypervisor: LabHypervisor) -> None:
    """Check the per-node 2 MiB pools reserved at boot; top them up through sysfs when the kernel fell short."""
    have = read_pools(lab_dir, entry, hypervisor)
    short = [node for node in hypervisor.nodes if have.get(node.id) != node.hugepages_2m]
    if short:
        ssh(lab_dir, entry, "; ".join(f"echo {node.hugepages_2m} > {hugepages_path(node.id)}" for node in short))
        have = read_pools(lab_dir, entry, hypervisor)
    for node in hypervisor.nodes:
        if have.get(node.id) != node.hugepages_2m:
            raise LabError(f"{entry.name}: node {node.id} has {have.get(node.id)} 2 MiB pages, not {node.hugepages_2m}")


def lab_links(lab: Lab) -> dict[str, list[PeerLink]]:
    """The links between every pair of the lab's hypervisors, on free UDP ports of 127.0.0.1."""
    count = len(lab.hypervisors)
    ports = {(index, other): free_port(socket.SOCK_DGRAM) for index in range(count) for other in range(count)}
    return peer_links([hypervisor.name for hypervisor in lab.hypervisors], ports)


def join_network(lab_dir: LabDir, entry: Running, lab: Lab, links: Sequence[PeerLink]) -> None:
    """Give a booted hypervisor its lab network address, routes, host names and the key to reach its peers."""
    if not links:
        return
    names = [hypervisor.name for hypervisor in lab.hypervisors]
    script = setup_script(entry.name, names, links, lab_dir.key.read_text(encoding="utf-8"))
    started = time.monotonic()
    result = ssh(lab_dir, entry, "sh -s", stdin=script)
    if result.returncode != 0:
        raise LabError(f"{entry.name}: joining the lab network failed: {result.stderr.strip()}")
    address = lab_address(names.index(entry.name))
    say(f"{entry.name}: on the lab network as {address} ({time.monotonic() - started:.1f} s)")


def write_inventory(lab_dir: LabDir, running: Sequence[Running]) -> None:
    """One host per lab hypervisor, in the group vnuma_lab (JSON is YAML: no YAML writer needed)."""
    hosts = {
        entry.name: {
            "ansible_host": "127.0.0.1",
            "ansible_port": entry.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(lab_dir.key),
            "ansible_ssh_common_args": " ".join(SSH_OPTIONS[:6]),
            "ansible_python_interpreter": "/usr/bin/python3",
            # A module run without pipelining costs seven SSH exchanges (temporary directory, upload, chmod,
            # run, clean-up), each a second or so against sshd under TCG; with it, one.  The connection is
            # kept open from one playbook run to the next.
            "ansible_pipelining": True,
            "ansible_ssh_args": "-C -o ControlMaster=auto -o ControlPersist=300s",
        }
        for entry in running
    }
    inventory = {"all": {"children": {"vnuma_lab": {"hosts": hosts}}}}
    header = "# Written by scripts/lab/lab.py up: the lab hypervisors that run now (docs/lab.md).\n"
    lab_dir.inventory.write_text(header + json.dumps(inventory, indent=2) + "\n", encoding="utf-8")


def up(lab_dir: LabDir, paths: Sequence[str]) -> int:
    lab: Lab = load_topology(paths)
    topology, running = read_state(lab_dir)
    alive = [entry for entry in running if is_ours(entry)]
    if alive:
        names = ", ".join(f"{entry.name} (127.0.0.1:{entry.port})" for entry in alive)
        say(f"the lab is already up ({names}, from {' '.join(topology)}); `make lab-down` first to change it")
        return 0
    if running:
        say("a previous lab is gone; forgetting its state")
        stop_all(lab_dir)
    files = BootFiles.under(lab_dir.image)
    missing = [str(path) for path in (files.kernel, files.rootfs, lab_dir.key) if not path.exists()]
    if missing:
        raise LabError(f"the lab image is missing ({', '.join(missing)}): run `make lab-image`")
    available = available_mib()
    if lab.memory_mib + HOST_RESERVE_MIB > available:
        raise LabError(
            f"the lab needs {lab.memory_mib} MiB plus {HOST_RESERVE_MIB} MiB for this machine, "
            f"but only {available} MiB are available"
        )
    started = time.monotonic()
    running = []
    links = lab_links(lab)
    try:
        for hypervisor in lab.hypervisors:
            running.append(start(lab_dir, hypervisor, links[hypervisor.name]))
            write_state(lab_dir, paths, running)
        for entry, hypervisor in zip(running, lab.hypervisors, strict=True):
            uptime = wait_for_libvirtd(lab_dir, entry, started)
            reserve_hugepages(lab_dir, entry, hypervisor)
            join_network(lab_dir, entry, lab, links[hypervisor.name])
            inside = f" (ready after {uptime:.0f} s of its own uptime)" if uptime is not None else ""
            say(f"{entry.name}: libvirtd answers after {time.monotonic() - started:.0f} s{inside}")
    except BaseException:
        say("boot failed; stopping what was started")
        stop_all(lab_dir)
        raise
    write_inventory(lab_dir, running)
    say(f"up in {time.monotonic() - started:.0f} s; inventory {lab_dir.inventory}")
    return 0


def stop(entry: Running) -> None:
    if not is_ours(entry):
        return
    os.kill(entry.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while is_ours(entry) and time.monotonic() < deadline:
        time.sleep(0.2)
    if is_ours(entry):
        os.kill(entry.pid, signal.SIGKILL)
    say(f"{entry.name}: stopped QEMU pid {entry.pid}")


def stop_all(lab_dir: LabDir) -> None:
    _topology, running = read_state(lab_dir)
    for entry in running:
        stop(entry)
    lab_dir.state.unlink(missing_ok=True)
    lab_dir.inventory.unlink(missing_ok=True)


def down(lab_dir: LabDir) -> int:
    if not lab_dir.state.exists():
        say("the lab is not up")
        return 0
    stop_all(lab_dir)
    say("down")
    return 0


def status(lab_dir: LabDir) -> int:
    topology, running = read_state(lab_dir)
    if not running:
        say("the lab is not up")
        return 1
    for entry in running:
        state = "running" if is_ours(entry) else "gone"
        say(f"{entry.name}: {state}, pid {entry.pid}, SSH 127.0.0.1:{entry.port} ({' '.join(topology)})")
    return 0 if all(is_ours(entry) for entry in running) else 1


def shell(lab_dir: LabDir, name: str, command: Sequence[str]) -> int:
    _topology, running = read_state(lab_dir)
    for entry in running:
        if entry.name == name:
            argv = ssh_argv(lab_dir, entry, " ".join(command) if command else None)
            return subprocess.call(argv)
    raise LabError(f"no lab hypervisor named {name!r} is up")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab.py", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the lab's directory (default .build/lab)")
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="boot the lab")
    up_parser.add_argument("topology", nargs="+", help="topology files (YAML, docs/lab.md)")
    commands.add_parser("down", help="stop what `up` started")
    commands.add_parser("status", help="what runs")
    ssh_parser = commands.add_parser("ssh", help="a shell or a command on one lab hypervisor")
    ssh_parser.add_argument("name")
    ssh_parser.add_argument("words", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    lab_dir = LabDir(args.dir.resolve())
    lab_dir.path.mkdir(parents=True, exist_ok=True)
    try:
        if args.command == "up":
            return up(lab_dir, args.topology)
        if args.command == "down":
            return down(lab_dir)
        if args.command == "status":
            return status(lab_dir)
        return shell(lab_dir, args.name, args.words)
    except (LabError, TopologyError) as error:
        print(f"lab: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
