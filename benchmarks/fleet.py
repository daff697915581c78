# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Converging a fleet of 200 guests on qemu:///system with the vnuma_fleet role, as an operator runs it.

200 flat guests (diskless, shut off, not autostart, 4 vCPUs, 256 MiB), defined afresh before each
variant, converged to one spec (node mode, 2 cells, interleave) by:
- the role: ``ansible-playbook`` of a play applying vnuma.libvirt.vnuma_fleet to them (restart never,
  the reports written to a temporary directory);
- the role again on the converged guests: the no-change rerun;
- the role with ``vnuma_fleet_plan_and_apply: apart``: a plan call, then an apply call, as on a play of
  several hypervisors (one hypervisor makes them one call by default);
- one vnuma_domain task per guest: ``ansible-playbook`` of a play with one vnuma_domain task looping
  over the 200 names, 200 module runs;
- the floor: plain libvirt-python that reads each guest's inactive XML and defines the final XML (the
  role's result) with VIR_DOMAIN_DEFINE_VALIDATE; its read-only loop (the same reads, no define) is the
  floor of the no-change rerun;
- the skeleton: Ansible's fixed per-task cost, a play with one task for each task the no-change rerun ran,
  in the same order, each doing nothing (``ping`` where the rerun started a module, ``set_fact``
  elsewhere);
- a fleet of 20 hypervisors on libvirt's test driver (the demo's hypervisor, one copy each, local
  connection) converted by one play with forks 5: the time per hypervisor.

The playbooks run through scripts/playbook.sh: the venv's ansible-playbook, the venv's Python on the
managed node (ansible_python_interpreter), the collection from .build/collections.  A callback
(benchmarks/callback_plugins/task_times.py) times each task, to show where the role's time goes.
Every guest is removed at the end, also after a failure or an interrupt.  Run with libvirtd up
(make libvirtd); ``make bench`` does that.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

from .converge import URI, Fleet

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = ROOT / "scripts/playbook.sh"
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
COUNT = 200
# What benchmarks/converge.py converges to: two cells on this one-node host, memory interleaved.
SPEC = {"mode": "node", "cells": 2, "distribution": "interleave"}
# The target, explained in docs/benchmarks.md ("Converging a fleet with the role"): the role at least this
# many times faster than one vnuma_domain task per guest, for 200 guests.
PER_TASK_RATIO_TARGET = 5.0
# The speed targets (docs/benchmarks.md): the role within this many times the floor, and the no-change
# rerun within this many times the floor's read-only loop plus the skeleton (Ansible's fixed per-task cost).
FLOOR_RATIO_TARGET = 2.5
RERUN_READ_RATIO_TARGET = 2.0
# The fleet of test-driver hypervisors: how many, and Ansible's forks.
HYPERVISORS = 20
FORKS = 5
DEMO = ROOT / "demo"
# Tasks that start a module process on the managed node (or a process on the controller); every other task
# the role runs is handled inside ansible-playbook (set_fact, include_tasks, assert, fail, debug, the
# vnuma_fleet_report action).
MODULE_STARTS = frozenset({"vnuma_info", "vnuma_domain", "file", "copy", "template", "tempfile", "raw", "ping"})


# The daemon the guests are converged on (--uri).
_URI = [URI]


def _uri() -> str:
    return _URI[0]


class BenchError(Exception):
    """A variant did not do what it should (a failed run, guests left unconverted)."""


@dataclass(frozen=True)
class Run:
    """One ansible-playbook run: its wall clock and what the task_times callback recorded."""

    seconds: float
    # From the process's launch to the playbook's start: the interpreter, Ansible's imports, the inventory and
    # the playbook file read.
    startup: float
    tasks: list[dict[str, Any]]
    stats: dict[str, dict[str, int]]

    def task_seconds(self, keep: Callable[[dict[str, Any]], bool]) -> tuple[float, int]:
        """Seconds and count of the tasks that ``keep`` selects."""
        chosen = [task for task in self.tasks if keep(task)]
        return sum(task["seconds"] for task in chosen), len(chosen)


def _terminate(signum: int, _frame: object) -> None:
    # SIGTERM (a CI timeout, kill) takes the same way out as Ctrl-C: the finally blocks remove the guests.
    raise KeyboardInterrupt(f"signal {signum}")


def _playbook(workdir: Path, name: str, plays: list[dict[str, Any]], options: tuple[str, ...] = ()) -> Run:
    """Run ``plays`` (written as JSON, which YAML reads) with scripts/playbook.sh; raises BenchError on failure."""
    playbook = workdir / f"{name}.yml"
    playbook.write_text(json.dumps(plays, indent=2), encoding="utf-8")
    times, log = workdir / f"{name}.times.json", workdir / f"{name}.log"
    # PYTHONPATH (make bench's, for this process) stays out: the playbooks see the collection as a user's would.
    env = {
        **{key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "task_times",
        "VNUMA_BENCH_TASK_TIMES": str(times),
        "ANSIBLE_NOCOLOR": "1",
    }
    launched = time.time()
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as output:
        # In a session of its own, so that an interrupt here can stop it with every module process it started
        # before the guests are removed: a module still running could define a guest again afterwards.
        process = subprocess.Popen(
            [str(PLAYBOOK), str(playbook), *options],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = process.wait()
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    seconds = time.perf_counter() - start
    if returncode != 0 or not times.exists():
        tail = "\n".join(log.read_text(encoding="utf-8").splitlines()[-40:])
        raise BenchError(f"{name}: ansible-playbook exited with {returncode}; the end of its output:\n{tail}")
    recorded = json.loads(times.read_text(encoding="utf-8"))
    return Run(seconds, recorded["start"] - launched, recorded["tasks"], recorded["stats"])


def _role_plays(fleet: Fleet, report_dir: Path, plan_and_apply: str = "auto") -> list[dict[str, Any]]:
    variables = {
        "vnuma_fleet_uri": _uri(),
        "vnuma_fleet_guests": [f"{fleet.prefix}*"],
        "vnuma_fleet_spec": SPEC,
        "vnuma_fleet_restart": "never",
        "vnuma_fleet_report_dir": str(report_dir),
        "vnuma_fleet_plan_and_apply": plan_and_apply,
    }
    return [
        {
            "name": "Converge the benchmark's guests with the vnuma_fleet role",
            "hosts": "localhost",
            "gather_facts": False,
            "roles": [{"role": "vnuma.libvirt.vnuma_fleet", "vars": variables}],
        }
    ]


def _per_task_plays(fleet: Fleet) -> list[dict[str, Any]]:
    return [
        {
            "name": "Converge the benchmark's guests with one vnuma_domain task per guest",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Converge one guest",
                    "vnuma.libvirt.vnuma_domain": {"uri": _uri(), "name": "{{ item }}", "restart": "never", **SPEC},
                    "loop": fleet.names,
                }
            ],
        }
    ]


def _floor(fleet: Fleet, final: dict[str, str]) -> float:
    """Plain libvirt-python: connect, then read each guest's inactive XML and define its final XML validated."""
    start = time.perf_counter()
    conn = libvirt.open(_uri())
    try:
        for name in fleet.names:
            conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            conn.defineXMLFlags(final[name], libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    finally:
        conn.close()
    return time.perf_counter() - start


def _floor_read(fleet: Fleet) -> float:
    """The floor's read-only loop: connect, then read each guest's inactive XML (what a no-change rerun must do)."""
    start = time.perf_counter()
    conn = libvirt.open(_uri())
    try:
        for name in fleet.names:
            conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()
    return time.perf_counter() - start


def _starts_module(task: dict[str, Any]) -> bool:
    return task["action"].rsplit(".", 1)[-1] in MODULE_STARTS and not task.get("skipped", False)


def _skeleton_plays(rerun: Run) -> list[dict[str, Any]]:
    """One task per task of ``rerun``, in its order, each doing nothing: Ansible's fixed cost of that run."""
    tasks: list[dict[str, Any]] = [
        {"name": f"Start a module in place of {task['name']}", "ansible.builtin.ping": {}}
        if _starts_module(task)
        else {"name": f"Do nothing in place of {task['name']}", "ansible.builtin.set_fact": {"skeleton_step": index}}
        for index, task in enumerate(rerun.tasks)
    ]
    # A task the rerun skipped is skipped here too: it templated its condition and started nothing.
    for task, mirror in zip(rerun.tasks, tasks, strict=True):
        if task.get("skipped", False):
            mirror["when"] = False
    return [{"name": "The no-change rerun's tasks, each doing nothing", "hosts": "localhost", "gather_facts": False,
             "tasks": tasks}]  # fmt: skip


def _hypervisor_plays(workdir: Path, report_dir: Path) -> tuple[list[dict[str, Any]], Path]:
    """The role over HYPERVISORS test-driver hypervisors (copies of the demo's), and their inventory."""
    hosts = {}
    for index in range(1, HYPERVISORS + 1):
        name = f"hv{index:02d}"
        driver = workdir / f"{name}.xml"
        shutil.copyfile(DEMO / "fleet" / "hypervisor.xml", driver)
        hosts[name] = {"vnuma_fleet_uri": f"test://{driver}"}
    inventory = workdir / "hypervisors.json"
    common = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"hypervisors": {"hosts": hosts, "vars": common}}), encoding="utf-8")
    variables = {
        "vnuma_fleet_host_capabilities": str(DEMO / "host.xml"),
        "vnuma_fleet_exclude": ["legacy-*"],
        "vnuma_fleet_spec": {"mode": "host"},
        "vnuma_fleet_overrides": {
            "web01": {"mode": "node", "nodeset": "1"},
            "cache01": {"mode": "node", "nodeset": "0"},
        },
        "vnuma_fleet_restart": "never",
        "vnuma_fleet_report_dir": str(report_dir),
    }
    plays = [{"name": "Convert the test-driver hypervisors", "hosts": "hypervisors", "gather_facts": False,
              "roles": [{"role": "vnuma.libvirt.vnuma_fleet", "vars": variables}]}]  # fmt: skip
    return plays, inventory


def _hypervisors(workdir: Path) -> Run:
    """The role over the test-driver hypervisors with forks FORKS, checked: every hypervisor converted."""
    report_dir = workdir / "report-hypervisors"
    plays, inventory = _hypervisor_plays(workdir, report_dir)
    run = _playbook(workdir, "hypervisors", plays, ("-i", str(inventory), "--forks", str(FORKS)))
    summary = json.loads((report_dir / "fleet.json").read_text(encoding="utf-8"))
    statuses = {row["host"]: row["status"] for row in summary["hosts"]}
    if len(statuses) != HYPERVISORS or set(statuses.values()) != {"converted"}:
        raise BenchError(f"hypervisors: expected {HYPERVISORS} converted hypervisors, got {statuses}")
    return run


@dataclass(frozen=True)
class Results:
    count: int
    # The role for one guest (the faster of two runs): its fixed cost.
    role_one: Run
    role: Run
    rerun: Run
    # The role with its plan and apply in two calls (vnuma_fleet_plan_and_apply: apart).
    role_apart: Run
    # None with --no-per-task.
    per_task: Run | None
    floor: float
    floor_read: float
    skeleton: Run
    hypervisors: Run
    # Guests whose definition after the per-task run differs from the role's.
    per_task_differs: int
    # The whole benchmark, guests defined and removed included, and the load average before and after.
    elapsed: float
    load: tuple[float, float]


def _role(fleet: Fleet, workdir: Path, name: str, changed: int, plan_and_apply: str = "auto") -> Run:
    """The role over ``fleet``, checked: every guest selected, ``changed`` of them converted, all verified."""
    report_dir = workdir / f"report-{len(fleet.names)}"
    run = _playbook(workdir, name, _role_plays(fleet, report_dir, plan_and_apply))
    report = json.loads((report_dir / "localhost.json").read_text(encoding="utf-8"))
    counts, verify = report["counts"], report["verify"] or {"ok": changed == 0}
    if counts["selected"] != len(fleet.names) or counts["changed"] != changed or not verify["ok"]:
        raise BenchError(
            f"{name}: the role selected {counts['selected']} guests and changed {counts['changed']} "
            f"(expected {len(fleet.names)} and {changed}); status {report['status']}, verify {verify}, "
            f"failure {report['failure']}"
        )
    if changed == 0 and run.stats["localhost"]["changed"] != 0:
        raise BenchError(f"{name}: the play reported changed={run.stats['localhost']['changed']}, expected 0")
    return run


def measure(conn: libvirt.virConnect, workdir: Path, count: int, per_task_run: bool = True) -> Results:
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    single, fleet = Fleet(conn, 1), Fleet(conn, count)
    try:
        # The role's fixed cost: the same run for one guest, the faster of two (the first also warms up).
        role_ones = []
        for attempt in range(2):
            single.reset()
            role_ones.append(_role(single, workdir, f"role-1-{attempt}", changed=1))
        role_one = min(role_ones, key=lambda run: run.seconds)

        fleet.reset()
        role = _role(fleet, workdir, "role", changed=count)
        final = fleet.inactive()
        rerun = _role(fleet, workdir, "rerun", changed=0)
        fleet.reset()
        role_apart = _role(fleet, workdir, "role-apart", changed=count, plan_and_apply="apart")
        if fleet.inactive() != final:
            raise BenchError("the role with its plan and apply apart left other definitions")

        per_task, differs = None, 0
        if per_task_run:
            fleet.reset()
            per_task = _playbook(workdir, "per-task", _per_task_plays(fleet))
            differs = sum(xml != final[name] for name, xml in fleet.inactive().items())

        fleet.reset()
        floor = _floor(fleet, final)
        if fleet.inactive() != final:
            raise BenchError("the floor did not leave the role's definitions")
        floor_read = _floor_read(fleet)
    finally:
        single.remove()
        fleet.remove()
    skeleton = _playbook(workdir, "skeleton", _skeleton_plays(rerun))
    hypervisors = _hypervisors(workdir)
    load = (load_start, os.getloadavg()[0])
    return Results(
        count, role_one, role, rerun, role_apart, per_task, floor, floor_read, skeleton, hypervisors, differs,
        time.perf_counter() - started, load,
    )  # fmt: skip


def _ms(seconds: float, count: int) -> float:
    return seconds / count * 1000


def _breakdown(run: Run) -> list[tuple[str, float, int]]:
    """The role's run in parts: (label, seconds, tasks), which add up to its wall clock."""

    def module(name: str) -> Callable[[dict[str, Any]], bool]:
        return lambda task: task["action"].endswith(f".{name}")

    def report(task: dict[str, Any]) -> bool:
        return task["file"] == "report.yml"

    def other(task: dict[str, Any]) -> bool:
        return not (report(task) or module("vnuma_info")(task) or module("vnuma_domain")(task))

    parts = [
        ("vnuma_domain tasks (preflight's plan call, apply)", *run.task_seconds(module("vnuma_domain"))),
        ("vnuma_info tasks (verify's re-read)", *run.task_seconds(module("vnuma_info"))),
        ("report: result, JSON, HTML, fleet summary", *run.task_seconds(report)),
        ("every other task (set_fact, include, assert...)", *run.task_seconds(other)),
    ]
    counted = sum(seconds for _label, seconds, _count in parts)
    parts.append(("ansible-playbook start, reading the playbook", run.startup, 0))
    parts.append(("reading the role, recap, exit", run.seconds - counted - run.startup, 0))
    return parts


def _print(results: Results) -> bool:
    count, role, rerun, per_task, floor = results.count, results.role, results.rerun, results.per_task, results.floor
    fixed = results.role_one.seconds
    spec = ", ".join(f"{key} {value}" for key, value in SPEC.items())
    print(f"converging {count} guests on {_uri()} ({spec}; restart never), wall clock of each run")
    print(f"{'':<44} {'s':>8} {'per guest ms':>13}")
    per_task_row = (
        [] if per_task is None else [(f"one vnuma_domain task per guest ({count} runs)", per_task.seconds, count)]
    )
    for label, seconds, guests in (
        ("role, 1 guest (its fixed cost)", fixed, 1),
        (f"role, {count} guests", role.seconds, count),
        ("role, no-change rerun", rerun.seconds, count),
        (f"role, {count} guests, plan and apply apart", results.role_apart.seconds, count),
        *per_task_row,
        ("floor: read + define validated", floor, count),
        ("floor, read only (the rerun's floor)", results.floor_read, count),
        (f"skeleton: the rerun's {len(rerun.tasks)} tasks, doing nothing", results.skeleton.seconds, count),
        (f"role over {HYPERVISORS} test-driver hypervisors, forks {FORKS}", results.hypervisors.seconds, HYPERVISORS),
    ):
        print(f"{label:<44} {seconds:>8.2f} {_ms(seconds, guests):>13.1f}")
    print()

    # Beyond the fixed cost, from the 1-guest run: what each further guest adds.
    marginal = (role.seconds - fixed) / (count - 1)
    rerun_marginal = (rerun.seconds - fixed) / (count - 1)
    print(
        f"role, per further guest: {marginal * 1000:.1f} ms, {marginal / (floor / count):.1f}x the floor's "
        f"{_ms(floor, count):.1f} ms; no-change rerun: {rerun_marginal * 1000:.1f} ms"
    )
    per_run = per_task.seconds / count if per_task is not None else 0.0
    if 0 < marginal < per_run:
        # role(N) = fixed + (N - 1) * marginal against N * per_run.
        break_even = (fixed - marginal) / (per_run - marginal)
        print(
            f"one task per guest: {per_run * 1000:.0f} ms a guest; the role is faster from {break_even:.0f} guests on"
        )
    breakdowns = (("role's", role), ("no-change rerun's", rerun), ("role's, plan and apply apart,", results.role_apart))
    for what, run in breakdowns:
        print(f"where the {what} {run.seconds:.1f} s for {count} guests go ({len(run.tasks)} tasks):")
        for label, seconds, tasks_count in _breakdown(run):
            tasks = f"{tasks_count:>3} tasks" if tasks_count else " " * 9
            print(f"  {label:<48} {seconds:>6.2f} s {tasks} {seconds / run.seconds:>5.0%}")
    print()

    print(
        f"took {results.elapsed:.0f} s in all; load {results.load[0]:.2f} at the start, "
        f"{results.load[1]:.2f} at the end, on {os.cpu_count()} CPUs"
    )
    modules = sum(1 for task in rerun.tasks if _starts_module(task))
    rerun_bound = RERUN_READ_RATIO_TARGET * results.floor_read + results.skeleton.seconds
    print(f"skeleton: {len(rerun.tasks)} tasks, {modules} of them start a module (ping)")
    print(f"role / floor:      {role.seconds / floor:.1f}x (target <= {FLOOR_RATIO_TARGET:g}x)")
    print(f"role apart / role: {results.role_apart.seconds / role.seconds:.2f}x (two calls against one)")
    print(
        f"rerun / ({RERUN_READ_RATIO_TARGET:g} x floor read + skeleton): {rerun.seconds:.2f} / {rerun_bound:.2f} s = "
        f"{rerun.seconds / rerun_bound:.2f} (target <= 1)"
    )
    print(f"rerun / role:      {rerun.seconds / role.seconds:.2f}x")
    print(f"{HYPERVISORS} hypervisors, forks {FORKS}: {results.hypervisors.seconds / HYPERVISORS:.2f} s per hypervisor")
    for label, met in (
        (f"role within {FLOOR_RATIO_TARGET:g}x the floor", role.seconds <= FLOOR_RATIO_TARGET * floor),
        ("no-change rerun within 2x the floor's reads plus the skeleton", rerun.seconds <= rerun_bound),
    ):
        print(f"{'PASS' if met else 'MISS'}: {label}")
    if per_task is None:
        print("one task per guest not run (--no-per-task): no verdict on the per-task target")
        return True
    ratio = per_task.seconds / role.seconds
    print(f"per-task / role:   {ratio:.1f}x (target >= {PER_TASK_RATIO_TARGET:g}x)")
    if results.per_task_differs:
        print(f"FAIL: {results.per_task_differs} guests differ from the role's result after one task per guest")
        return False
    passed = ratio >= PER_TASK_RATIO_TARGET
    print(
        f"{'PASS' if passed else 'FAIL'}: the role converges {count} guests in {role.seconds:.1f} s, "
        f"{ratio:.1f}x faster than one vnuma_domain task per guest ({per_task.seconds:.1f} s)"
    )
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=COUNT, help="guests, at least 2 (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the playbooks, logs and reports (printed path)")
    parser.add_argument(
        "--no-per-task",
        action="store_true",
        help="skip one vnuma_domain task per guest (minutes of module starts): the role, floor and skeleton only",
    )
    parser.add_argument(
        "--uri",
        default=URI,
        help="the libvirt daemon to converge on (default: %(default)s); a private one keeps other clients' guests, "
        "which change the plans between runs, out of the figures",
    )
    args = parser.parse_args(argv)
    if args.count < 2:
        parser.error("--count must be at least 2")
    signal.signal(signal.SIGTERM, _terminate)
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    workdir = Path(tempfile.mkdtemp(prefix="vnuma-bench-fleet-"))
    _URI[0] = args.uri
    conn = libvirt.open(args.uri)
    try:
        results = measure(conn, workdir, args.count, per_task_run=not args.no_per_task)
    except BenchError as error:
        print(f"FAIL: {error}")
        return 1
    except KeyboardInterrupt:
        print("interrupted: the benchmark's guests were removed")
        return 130
    finally:
        conn.close()
        if args.keep:
            print(f"playbooks, logs and reports kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if _print(results) else 1


if __name__ == "__main__":
    sys.exit(main())
