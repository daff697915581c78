# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab's costs: building its image, booting it, and converging 50 guests on lab4 through SSH.

- Image build: scripts/lab/build-image.sh from scratch into a temporary directory (mmdebstrap downloads
  every package again); ``--no-build`` leaves it out.
- Boot: ``lab.py up tests/lab/four-node.yml`` in a directory of the benchmark's own, from that fresh image
  (or from .build/lab/image with ``--no-build``), until libvirtd answers.  When a lab with ``lab4`` is
  already up in .build/lab (or VNUMA_LAB_DIR), it is used as it is and the boot is not measured.
- Converging: N flat guests (diskless, shut off, 4 vCPUs, 256 MiB) defined inside lab4, then converged by
  one ``vnuma_domain`` task (``guests: [PREFIX*]``, host mode: one cell per CPU node) run by
  ansible-playbook through SSH, for N = 1 and N = 50.  The floor is a plain libvirt-python loop run inside
  the lab with its own python3-libvirt: the same guests flat again, then for each one its inactive XML
  read and the converged XML defined with VIR_DOMAIN_DEFINE_VALIDATE.  The floor is timed inside the lab
  (no SSH), the module from the controller (SSH and the module's transfer included): the marginal cost
  per guest, (T(50) - T(1)) / 49, cancels those fixed costs, as in benchmarks/converge.py.

Every guest is removed at the end, and a lab the benchmark booted is stopped, also after a failure or an
interrupt.  ``make bench`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .converge import FLAT
from .fleet import BenchError, _playbook, _terminate

ROOT = Path(__file__).resolve().parent.parent
LAB_SCRIPT = ROOT / "scripts/lab/lab.py"
BUILD_SCRIPT = ROOT / "scripts/lab/build-image.sh"
TOPOLOGY = ROOT / "tests/lab/four-node.yml"
SHARED_LAB = Path(os.environ.get("VNUMA_LAB_DIR", ROOT / ".build/lab"))
HYPERVISOR = "lab4"
COUNTS = (1, 50)
SPEC = {"mode": "host", "distribution": "interleave"}
# The target: converging through SSH within this many times the in-lab floor per guest.  One call plans
# and defines every guest in one module run, so SSH and the module's transfer are paid once; per guest
# it does what the floor does plus planning, rendering and the read-back check.
RATIO_TARGET = 3.0

# Run inside the lab with its python3 and python3-libvirt: `define PREFIX N`, `floor PREFIX`, `remove PREFIX`.
# Its guests are the converge benchmark's flat domain, so both floors define the same XML.
IN_LAB = r"""
import json, sys, time, uuid
import libvirt

FLAT = @FLAT@

command, prefix = sys.argv[1], sys.argv[2]
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
conn = libvirt.open("qemu:///system")


def ours():
    return sorted((d for d in conn.listAllDomains() if d.name().startswith(prefix)), key=lambda d: d.name())


def flat(domain):
    # Redefining an existing name needs its uuid.
    conn.defineXML(FLAT.format(name=domain.name(), uuid=domain.UUIDString()))


if command == "define":
    for index in range(int(sys.argv[3])):
        conn.defineXML(FLAT.format(name=f"{prefix}{index:03d}", uuid=uuid.uuid4()))
elif command == "floor":
    domains = ours()
    final = {d.name(): d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for d in domains}
    for domain in domains:
        flat(domain)
    start = time.perf_counter()
    for name in final:
        conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        conn.defineXMLFlags(final[name], libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    seconds = time.perf_counter() - start
    cells = [conn.lookupByName(name).XMLDesc(0).count("<cell ") for name in final]
    print(json.dumps({"seconds": seconds, "guests": len(final), "cells": cells}))
elif command == "remove":
    for domain in ours():
        domain.undefine()
""".replace("@FLAT@", repr(FLAT))


@dataclass(frozen=True)
class Host:
    """How to reach one lab hypervisor, from the lab's inventory."""

    inventory: Path
    port: int
    key: str

    def python(self, *args: str) -> str:
        """Run IN_LAB inside the lab with ``args``; its standard output."""
        argv = [
            "ssh",
            *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"),
            *("-o", "BatchMode=yes", "-i", self.key, "-p", str(self.port), "root@127.0.0.1"),
            "python3 - " + " ".join(args),
        ]
        result = subprocess.run(argv, input=IN_LAB, capture_output=True, text=True, timeout=900, check=False)
        if result.returncode != 0:
            raise BenchError(f"in the lab: {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout


def lab_cli(lab_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / ".build/collections")}
    return subprocess.run(
        [sys.executable, str(LAB_SCRIPT), "--dir", str(lab_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def lab_host(lab_dir: Path) -> Host | None:
    """lab4 of the lab in ``lab_dir`` when that lab is up, else None."""
    inventory = lab_dir / "inventory.yml"
    if lab_cli(lab_dir, "status").returncode != 0 or not inventory.exists():
        return None
    # The inventory is JSON under one comment line (scripts/lab/lab.py write_inventory).
    text = "\n".join(line for line in inventory.read_text(encoding="utf-8").splitlines() if not line.startswith("#"))
    hosts = json.loads(text)["all"]["children"]["vnuma_lab"]["hosts"]
    if HYPERVISOR not in hosts:
        return None
    entry = hosts[HYPERVISOR]
    return Host(inventory, int(entry["ansible_port"]), str(entry["ansible_ssh_private_key_file"]))


def build(image: Path) -> str:
    """Run build-image.sh into ``image``; what it did and how long it took."""
    start = time.perf_counter()
    result = subprocess.run([str(BUILD_SCRIPT), str(image)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"build-image.sh failed:\n{result.stdout}\n{result.stderr}")
    seconds = time.perf_counter() - start
    if "is up to date" in result.stdout:
        return f"image: {image} up to date, nothing built"
    return f"image build from scratch: {seconds:.0f} s"


def boot(lab_dir: Path) -> float:
    start = time.perf_counter()
    result = lab_cli(lab_dir, "up", str(TOPOLOGY))
    if result.returncode != 0:
        raise BenchError(f"lab.py up failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - start


def converge(host: Host, workdir: Path, count: int) -> tuple[float, float, float]:
    """Seconds of the ansible-playbook run, of its vnuma_domain task, and of the in-lab floor, for ``count`` guests."""
    prefix = f"vnuma-bench-lab-{uuid.uuid4().hex[:6]}-"
    try:
        host.python("define", prefix, str(count))
        plays = [
            {
                "name": "Converge the benchmark's guests in the lab with one vnuma_domain call",
                "hosts": HYPERVISOR,
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "Converge every guest",
                        "vnuma.libvirt.vnuma_domain": {"guests": [f"{prefix}*"], "restart": "never", **SPEC},
                    }
                ],
            }
        ]
        run = _playbook(workdir, f"lab-{count}", plays, ("-i", str(host.inventory)))
        task, _count = run.task_seconds(lambda task: task["action"].endswith("vnuma_domain"))
        floor = json.loads(host.python("floor", prefix))
        if floor["guests"] != count or any(cells != 3 for cells in floor["cells"]):
            raise BenchError(f"{count} guests: not all converged to 3 cells: {floor}")
        return run.seconds, task, float(floor["seconds"])
    finally:
        host.python("remove", prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lab", description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true", help="do not time an image build from scratch")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="vnuma-bench-lab-"))
    own_dir: Path | None = None
    figures: list[str] = []
    try:
        host = lab_host(SHARED_LAB)
        if host is None:
            own_dir = workdir / "lab"
            image = own_dir / "image"
            if args.no_build:
                # The lab's own image, as `make lab-image` keeps it (built only when missing or out of date).
                shared_image = SHARED_LAB / "image"
                figures.append(build(shared_image))
                image.parent.mkdir(parents=True)
                image.symlink_to(shared_image)
            else:
                figures.append(build(image))
            figures.append(f"boot {TOPOLOGY.name} until libvirtd answers: {boot(own_dir):.0f} s")
            host = lab_host(own_dir)
            if host is None:
                raise BenchError(f"the lab booted in {own_dir} has no {HYPERVISOR}")
        else:
            if not args.no_build:
                figures.append(build(workdir / "image"))
            figures.append(f"boot: not measured (a lab was already up in {SHARED_LAB}; used as it is)")
        results = {count: converge(host, workdir, count) for count in COUNTS}
    except BenchError as error:
        print(f"FAIL: {error}")
        return 1
    finally:
        if own_dir is not None:
            lab_cli(own_dir, "down")
        shutil.rmtree(workdir, ignore_errors=True)
    small, large = COUNTS
    print(f"the lab: {HYPERVISOR} of {TOPOLOGY.relative_to(ROOT)} (4 nodes under TCG)")
    for figure in figures:
        print(f"  {figure}")
    print(f"converging guests on {HYPERVISOR} through SSH with one vnuma_domain call")
    print(f"{'':<40} {f'N={small} s':>8} {f'N={large} s':>9} {'per guest ms':>13}")
    marginal: dict[str, float] = {}
    for index, label in enumerate(
        ("ansible-playbook, whole run", "the vnuma_domain task", "floor: in-lab read + define")
    ):
        first, last = results[small][index], results[large][index]
        marginal[label] = (last - first) / (large - small) * 1000
        print(f"{label:<40} {first:>8.2f} {last:>9.2f} {marginal[label]:>13.1f}")
    ratio = marginal["the vnuma_domain task"] / marginal["floor: in-lab read + define"]
    passed = ratio <= RATIO_TARGET
    verdict = "PASS" if passed else "FAIL"
    print(f"{verdict}: one vnuma_domain call {ratio:.2f}x the in-lab floor per guest (target <= {RATIO_TARGET:g}x)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
