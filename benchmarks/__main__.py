# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``python -m benchmarks``: time the filters and their parts on a 16-node, 1024-CPU host.

Prints every measurement (rounds, spread, CPU time), a table by guest size with the growth ratios,
the spec variants at 256 vCPUs, the peak memory of the largest expansion, and a PASS/FAIL line
against the target: ``vnuma_expand`` of a 256-vCPU guest on that host, XML parse and render
included, in under 10 ms.  The verdict counts instructions (valgrind's callgrind) against the
budget the 10 ms give at a stated reference speed, because this VM's wall clock changes by a factor
of two from day to day; the wall-clock figures print beside it.  Exits 1 when the target is missed
or cannot be judged.  ``--profile`` prints where the time of one expansion goes instead.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import sys
import tracemalloc
from pathlib import Path

from lxml import etree

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_expand import vnuma_expand
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.tests.support.hosts import parsed_hosts_clear

from .cases import REFERENCE, SIZES, VARIANTS, Guest, operations
from .instructions import count_expansions, valgrind_path
from .timing import Timing, measure_together

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests/unit/fixtures/capabilities/large-16node-1024cpu.xml"
TARGET_VCPUS = 256
TARGET_MS = 10.0
# The reference speed that turns the 10 ms into instructions: the rate at which this VM ran the
# slowest spec when the target was set and met (commit 1f4cad7: 67.5 M instructions counted by
# callgrind, 5.76 ms median of three runs, CPU time equal to the wall clock).  Fixed here, so that
# the verdict is on the code, whatever the machine's speed of the day.
REFERENCE_INSTRUCTIONS = 67.5e6
REFERENCE_MS = 5.76
REFERENCE_RATE = REFERENCE_INSTRUCTIONS / REFERENCE_MS  # instructions per ms
BUDGET = TARGET_MS * REFERENCE_RATE
# Calls per counted figure: a count changes little from call to call or run to run (0.3 %), so few do.
COUNT_REPETITIONS = 2
# The steps of vnuma_expand, whose sum the table compares with the filter's own figure.
EXPAND_PARTS = ("caps", "read", "compute", "plan", "write")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _header(host: Path, capabilities: str, rounds: int, round_seconds: float) -> None:
    topology = parse_capabilities(capabilities)
    cpus = sum(len(node.usable_cpus) for node in topology.nodes)
    lxml_version = ".".join(map(str, etree.LXML_VERSION[:3]))
    libxml2_version = ".".join(map(str, etree.LIBXML_VERSION))
    print("vnuma.libvirt benchmark: the partitioner and the XML layer")
    print(
        f"host:    {_relative(host)} ({len(topology.nodes)} nodes, {cpus} CPUs, "
        f"{len(capabilities.encode()) // 1024} KiB of XML)"
    )
    print(
        f"machine: {_cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"lxml {lxml_version}, libxml2 {libxml2_version}; load {_load():.2f} at the start"
    )
    print(
        f"method:  time.perf_counter, {rounds} rounds per figure, each repeating the operation for about "
        f"{round_seconds:g} s;\n"
        "         figure = the median round's ms per operation, spread = (max - min) / median, "
        "cpu = the median round's CPU time"
    )
    print()


def _line(label: str, vcpus: int, timing: Timing) -> str:
    return (
        f"{label:<24} {vcpus:>5} {timing.repetitions:>5} x {len(timing.rounds):<2} {timing.median:>10.3f} "
        f"{timing.fastest:>9.3f} {timing.slowest:>9.3f} {timing.spread:>7.0%} {timing.cpu:>9.3f}"
    )


def _table(results: dict[tuple[str, int], Timing], labels: dict[str, str]) -> None:
    small, middle, large = SIZES
    print(
        f"{'ms per operation (median)':<26} {small:>6} vCPUs {middle:>6} vCPUs {large:>6} vCPUs "
        f"{middle:>4}/{small:<3} {large:>4}/{middle}"
    )
    for key in ("layout", "expand", "expand_cold", *EXPAND_PARTS):
        _table_row(labels[key], [results[key, size].median for size in SIZES])
    _table_row("  sum of the steps", [sum(results[key, size].median for key in EXPAND_PARTS) for size in SIZES])
    for key in ("to_dict", "changes"):
        _table_row(labels[key], [results[key, size].median for size in SIZES])
    print()


def _table_row(label: str, figures: list[float]) -> None:
    small, middle, large = figures
    print(f"{label:<26} {small:>12.3f} {middle:>12.3f} {large:>12.3f} {middle / small:>7.1f}x {large / middle:>8.1f}x")


def _memory_peak(capabilities: str, guest: Guest) -> tuple[int, int]:
    """tracemalloc's peak during one expansion, and the size of the result, in bytes."""
    xml = guest.xml
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = vnuma_expand(xml, capabilities)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, len(result.encode())


def _profile(capabilities: str, vcpus: int, limit: int, new_host: bool) -> None:
    guest = Guest(vcpus, REFERENCE)
    xml = guest.xml
    vnuma_expand(xml, capabilities)
    profiler = cProfile.Profile()
    repetitions = 20 if vcpus <= TARGET_VCPUS else 3
    profiler.enable()
    for _repetition in range(repetitions):
        if new_host:
            parsed_hosts_clear()
        vnuma_expand(xml, capabilities)
    profiler.disable()
    host = "the host parsed anew each time" if new_host else "the host kept from an earlier call"
    print(f"cProfile of {repetitions} vnuma_expand calls, {vcpus} vCPUs, {REFERENCE.label}, {host}")
    print("(lxml's own functions are not profiled: their time counts in the Python function that calls them)")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)


def _variants(
    capabilities: str, results: dict[tuple[str, int], Timing], rounds: int, round_seconds: float
) -> dict[str, Timing]:
    """Time the spec variants at the target size; returns their vnuma_expand timings by label."""
    print(
        f"{'spec at ' + str(TARGET_VCPUS) + ' vCPUs':<36} {'expand, new host':>16} {'expand, same host':>17} "
        f"{'spread':>7} {'compute_layout':>15} {'vnuma_layout':>13}"
    )
    expansions: dict[str, Timing] = {}
    keys = ("expand_cold", "expand", "compute", "layout")
    for variant in VARIANTS:
        if variant is REFERENCE:
            cold, warm, compute, layout = (results[key, TARGET_VCPUS] for key in keys)
        else:
            ops = operations(capabilities, Guest(TARGET_VCPUS, variant))
            timings = measure_together({key: ops[key][1:] for key in keys}, rounds, round_seconds)
            cold, warm, compute, layout = (timings[key] for key in keys)
        expansions[variant.label] = cold
        print(
            f"{variant.label:<36} {cold.median:>16.3f} {warm.median:>17.3f} {cold.spread:>7.0%} "
            f"{compute.median:>15.3f} {layout.median:>13.3f}",
            flush=True,
        )
    print()
    return expansions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--host", type=Path, default=HOST, help="host capabilities XML (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per figure (default: %(default)s)")
    parser.add_argument(
        "--round-seconds", type=float, default=0.1, help="timed work per round, seconds (default: %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.02 s: a smoke test, not figures")
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=TARGET_VCPUS,
        metavar="VCPUS",
        help=f"print a cProfile of vnuma_expand for a guest of VCPUS vCPUs ({', '.join(map(str, SIZES))}; "
        f"default {TARGET_VCPUS}) and stop",
    )
    parser.add_argument(
        "--new-host", action="store_true", help="with --profile: parse the host anew for each call, as the target does"
    )
    args = parser.parse_args(argv)
    rounds, round_seconds = (3, 0.02) if args.quick else (args.rounds, args.round_seconds)
    capabilities = args.host.read_text(encoding="utf-8")

    if args.profile is not None:
        if args.profile not in SIZES:
            parser.error(f"--profile takes one of {', '.join(map(str, SIZES))}")
        _profile(capabilities, args.profile, limit=25, new_host=args.new_host)
        return 0

    load_start = _load()
    _header(args.host, capabilities, rounds, round_seconds)
    print(
        f"{'operation':<24} {'vCPUs':>5} {'reps x rounds':>13} {'median ms':>10} {'min ms':>9} {'max ms':>9} "
        f"{'spread':>7} {'cpu ms':>9}"
    )
    results: dict[tuple[str, int], Timing] = {}
    labels: dict[str, str] = {}
    for vcpus in SIZES:
        ops = operations(capabilities, Guest(vcpus, REFERENCE))
        timings = measure_together(
            {key: (operation, setup) for key, (_label, operation, setup) in ops.items()}, rounds, round_seconds
        )
        for key, (label, _operation, _setup) in ops.items():
            labels[key] = label
            results[key, vcpus] = timings[key]
            print(_line(label, vcpus, timings[key]), flush=True)
    print()
    _table(results, labels)
    expansions = _variants(capabilities, results, rounds, round_seconds)

    largest = Guest(SIZES[-1], REFERENCE)
    peak, size = _memory_peak(capabilities, largest)
    print(
        f"memory:  vnuma_expand of {largest.vcpus} vCPUs: tracemalloc peak {peak / 2**20:.1f} MiB of Python "
        f"allocations (libxml2's own are not traced); the result is {size / 1024:.0f} KiB of XML"
    )
    load_end = _load()
    print(f"load:    {load_start:.2f} at the start, {load_end:.2f} at the end, on {os.cpu_count()} CPUs")
    print()

    return _verdict(args.host, expansions, 1 if args.quick else COUNT_REPETITIONS, busy=max(load_start, load_end))


def _verdict(host: Path, expansions: dict[str, Timing], repetitions: int, busy: float) -> int:
    """Count the instructions of each spec's expansion, print them with the wall clock and judge."""
    print(
        f"target:  vnuma_expand of a {TARGET_VCPUS}-vCPU guest on this host, XML parse and render included, "
        f"under {TARGET_MS:g} ms, for each spec above, with the host document parsed anew"
    )
    print(
        f"rule:    instructions, not the wall clock, which follows this VM's speed of the day: PASS when the "
        f"slowest spec runs under\n         {BUDGET / 1e6:.0f} M instructions = {TARGET_MS:g} ms at the reference's "
        f"{REFERENCE_RATE / 1e6:.1f} M instructions per ms (this VM when the target was set\n         and met: "
        f"{REFERENCE_INSTRUCTIONS / 1e6:.1f} M in {REFERENCE_MS:g} ms); valgrind's callgrind counts them, "
        f"mean of {repetitions} call{'s' if repetitions > 1 else ''} per spec"
    )
    if valgrind_path() is None:
        print("FAIL: no verdict: valgrind is not installed (Debian package valgrind), so no instruction count")
        return 1
    print(flush=True)
    counts = count_expansions(host, TARGET_VCPUS, range(len(VARIANTS)), repetitions)
    print(
        f"{'spec at ' + str(TARGET_VCPUS) + ' vCPUs, new host':<36} {'M instr':>8} {'budget':>7} "
        f"{'median ms':>10} {'fastest ms':>11} {'cpu ms':>7} {'M instr per cpu ms':>19}"
    )
    for index, variant in enumerate(VARIANTS):
        timing = expansions[variant.label]
        print(
            f"{variant.label:<36} {counts[index] / 1e6:>8.1f} {counts[index] / BUDGET:>7.0%} {timing.median:>10.2f} "
            f"{timing.fastest:>11.2f} {timing.cpu:>7.2f} {counts[index] / 1e6 / timing.cpu:>19.1f}"
        )
    print()
    worst = max(range(len(VARIANTS)), key=lambda index: counts[index])
    label = VARIANTS[worst].label
    timing = expansions[label]
    passed = counts[worst] < BUDGET
    today = counts[worst] / 1e6 / timing.cpu
    print(
        f"{'PASS' if passed else 'FAIL'}: the slowest spec ({label}) runs {counts[worst] / 1e6:.1f} M instructions, "
        f"{counts[worst] / BUDGET:.0%} of the {BUDGET / 1e6:.0f} M budget"
    )
    print(
        f"wall clock: {timing.median:.2f} ms median round, {timing.fastest:.2f} ms fastest round, "
        f"{timing.cpu:.2f} ms CPU time; at this run's {today:.1f} M instructions per CPU ms\n"
        f"            {TARGET_MS:g} ms hold {today * TARGET_MS:.0f} M instructions"
    )
    if busy >= (os.cpu_count() or 1):
        print(
            "note:    the machine was busy: wall-clock figures include time spent waiting for a CPU; "
            "the CPU-time figures and the instruction counts do not"
        )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
