# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Milliseconds per operation: rounds of repetitions timed with ``time.perf_counter``.

Each figure is the median over several rounds of the mean time of one operation in that round;
the spread between the fastest and the slowest round shows how much the machine disturbed it.
The process's CPU time (``time.process_time``) is taken alongside: on a busy machine the wall
clock also counts the time spent waiting for a CPU, the CPU time does not.  An operation may have
an untimed setup (a fresh parsed document for a step that edits it in place): each repetition
then times only the operation itself.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Timing", "measure", "measure_together"]

# Repetitions per round are capped: the slowest operations need one, the fastest a few hundred.
_MAX_REPETITIONS = 2000


@dataclass(frozen=True)
class Timing:
    """The rounds of one measurement, in milliseconds per operation."""

    rounds: tuple[float, ...]
    repetitions: int
    # CPU time per operation in each round, milliseconds.
    cpu_rounds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def fastest(self) -> float:
        return min(self.rounds)

    @property
    def slowest(self) -> float:
        return max(self.rounds)

    @property
    def cpu(self) -> float:
        """The median round's CPU time per operation."""
        return statistics.median(self.cpu_rounds)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median: 0.05 means the rounds agree within 5 %."""
        return (self.slowest - self.fastest) / self.median if self.median else 0.0


def _run(operation: Callable[[Any], object], setup: Callable[[], Any] | None, repetitions: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds spent in ``operation`` over ``repetitions`` calls, its setup left out."""
    clock, cpu_clock = time.perf_counter, time.process_time
    wall = cpu = 0.0
    for _repetition in range(repetitions):
        argument = setup() if setup is not None else None
        start, cpu_start = clock(), cpu_clock()
        operation(argument)
        wall += clock() - start
        cpu += cpu_clock() - cpu_start
    return wall, cpu


def _calibrate(operation: Callable[[Any], object], setup: Callable[[], Any] | None, round_seconds: float) -> int:
    """Repetitions for a round of about ``round_seconds``, from one untimed call (which also warms caches)."""
    first, _cpu = _run(operation, setup, 1)
    return max(1, min(_MAX_REPETITIONS, math.ceil(round_seconds / max(first, 1e-9))))


def measure(
    operation: Callable[[Any], object],
    setup: Callable[[], Any] | None = None,
    rounds: int = 7,
    round_seconds: float = 0.1,
) -> Timing:
    """Time ``operation(setup())`` (``operation(None)`` without a setup).

    One untimed call warms the caches and calibrates: each round repeats the operation enough
    times to last about ``round_seconds`` of timed work (at least once).  The garbage collector
    stays on, as in real use; it is emptied before each round so that one round does not pay for
    the garbage of another.
    """
    return measure_together({None: (operation, setup)}, rounds, round_seconds)[None]


def measure_together(
    operations: Mapping[Hashable, tuple[Callable[[Any], object], Callable[[], Any] | None]],
    rounds: int = 7,
    round_seconds: float = 0.1,
) -> dict[Hashable, Timing]:
    """Time several operations as ``measure`` does, their rounds interleaved.

    Round 1 of every operation, then round 2 of every operation, and so on: when the machine slows
    down or speeds up for a while, all of them see it alike, and figures that should add up do.
    """
    repetitions = {key: _calibrate(operation, setup, round_seconds) for key, (operation, setup) in operations.items()}
    walls: dict[Hashable, list[float]] = {key: [] for key in operations}
    cpus: dict[Hashable, list[float]] = {key: [] for key in operations}
    for _round in range(rounds):
        for key, (operation, setup) in operations.items():
            gc.collect()
            wall, cpu = _run(operation, setup, repetitions[key])
            walls[key].append(wall / repetitions[key] * 1000.0)
            cpus[key].append(cpu / repetitions[key] * 1000.0)
    return {
        key: Timing(rounds=tuple(walls[key]), repetitions=repetitions[key], cpu_rounds=tuple(cpus[key]))
        for key in operations
    }
