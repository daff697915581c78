# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Converging guests on qemu:///system with one vnuma_domain call, against plain libvirt-python.

For N = 1 and N = 200 guests (diskless, shut off):
- converge: ``run_domain`` (the body of one vnuma_domain call: connect, read the host, plan every
  guest, define with validation, read back and verify) against the floor, a plain loop that reads
  each guest's inactive XML and defines the same final XML with validation;
- no-change rerun: the same call on converged guests against a plain loop that only reads the XMLs.

The marginal cost per guest is (T(200) - T(1)) / 199, which cancels the fixed costs (connecting,
reading the capabilities).  Run with libvirtd up (make libvirtd); ``make bench`` does that.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable

import libvirt

from ansible_collections.vnuma.libvirt.plugins.module_utils._run.domain import (
    GUEST_OPTION_NAMES,
    SPEC_OPTION_NAMES,
    run_domain,
)

URI = "qemu:///system"
COUNTS = (1, 200)
# Targets from the project's issue: converging within 2x the floor per guest, a no-change rerun
# within 2 ms per guest.
CONVERGE_RATIO_TARGET = 2.0
RERUN_MS_TARGET = 2.0

FLAT = """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>4</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>"""


def _params(prefix: str) -> dict[str, object]:
    """The module's parameters as AnsibleModule would hand them over: every option present."""
    return {
        **dict.fromkeys((*SPEC_OPTION_NAMES, *GUEST_OPTION_NAMES)),
        "uri": URI,
        "connect_timeout": 60.0,
        "host_capabilities": None,
        "name": None,
        "guests": [f"{prefix}*"],
        "exclude": [],
        "state": "present",
        "restart": "never",
        "force": False,
        "shutdown_timeout": 120,
        # The module's defaults: the capacity check is part of every call (the guests here are shut off and
        # not autostart, so they do not count, but they are placed and checked all the same).
        "capacity": "fail",
        "reserved_memory": 0,
        "backup": False,
        "backup_dir": "/tmp",
        "mode": "node",
        "cells": 2,
        "distribution": "interleave",
    }


def _timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


class Fleet:
    """N flat guests with a common prefix, removed again at the end."""

    def __init__(self, conn: libvirt.virConnect, count: int) -> None:
        self.conn = conn
        self.prefix = f"vnuma-bench-{uuid.uuid4().hex[:6]}-"
        self.names = [f"{self.prefix}{index:03d}" for index in range(count)]
        # Redefining an existing name needs its uuid, so each guest keeps one across resets.
        self.flat = {name: FLAT.format(name=name, uuid=uuid.uuid4()) for name in self.names}

    def reset(self) -> None:
        for name in self.names:
            self.conn.defineXML(self.flat[name])

    def inactive(self) -> dict[str, str]:
        return {name: self.conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for name in self.names}

    def remove(self) -> None:
        for name in self.names:
            try:
                self.conn.lookupByName(name).undefine()
            except libvirt.libvirtError:
                continue


def measure(conn: libvirt.virConnect, count: int) -> dict[str, float]:
    fleet = Fleet(conn, count)
    try:
        fleet.reset()
        params = _params(fleet.prefix)
        converge = _timed(lambda: run_domain(params, check_mode=False, want_diff=False))
        final = fleet.inactive()
        rerun = _timed(lambda: run_domain(params, check_mode=False, want_diff=False))
        fleet.reset()

        def floor_define() -> None:
            for name in fleet.names:
                conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                conn.defineXMLFlags(final[name], libvirt.VIR_DOMAIN_DEFINE_VALIDATE)

        def floor_read() -> None:
            for name in fleet.names:
                conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)

        floor = _timed(floor_define)
        floor_rerun = _timed(floor_read)
        return {"converge": converge, "floor": floor, "rerun": rerun, "floor_rerun": floor_rerun}
    finally:
        fleet.remove()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.converge", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per count; the fastest is kept")
    args = parser.parse_args(argv)
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(URI)
    try:
        results: dict[int, dict[str, float]] = {}
        for count in COUNTS:
            runs = [measure(conn, count) for _run in range(args.repeat)]
            results[count] = {key: min(run[key] for run in runs) for key in runs[0]}
    finally:
        conn.close()
    print(f"converging guests on {URI} with one vnuma_domain call (fastest of {args.repeat} runs)")
    print(f"{'':<34} {'N=1 s':>8} {'N=200 s':>9} {'per guest ms':>13}")
    marginal: dict[str, float] = {}
    for key, label in (
        ("converge", "vnuma_domain, converging"),
        ("floor", "floor: read + define validated"),
        ("rerun", "vnuma_domain, no change"),
        ("floor_rerun", "floor: read only"),
    ):
        small, large = results[COUNTS[0]][key], results[COUNTS[1]][key]
        marginal[key] = (large - small) / (COUNTS[1] - COUNTS[0]) * 1000
        print(f"{label:<34} {small:>8.3f} {large:>9.3f} {marginal[key]:>13.3f}")
    ratio = marginal["converge"] / marginal["floor"]
    rerun_ratio = marginal["rerun"] / marginal["floor_rerun"]
    print()
    print(f"converging:      {ratio:.2f}x the floor per guest (target <= {CONVERGE_RATIO_TARGET:g}x)")
    print(
        f"no-change rerun: {marginal['rerun']:.3f} ms per guest, {rerun_ratio:.1f}x the raw read "
        f"(target <= {RERUN_MS_TARGET:g} ms per guest)"
    )
    passed = ratio <= CONVERGE_RATIO_TARGET and marginal["rerun"] <= RERUN_MS_TARGET
    print(f"{'PASS' if passed else 'FAIL'}: converge {ratio:.2f}x floor, rerun {marginal['rerun']:.2f} ms per guest")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
