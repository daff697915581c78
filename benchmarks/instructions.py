# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Instructions per operation, counted by valgrind's callgrind.

A count does not depend on how fast the machine is today or on what else runs on it: the same code,
Python and libraries give the same count on a quiet machine and on a busy one, where the wall clock
of this VM changes by a factor of two from one day to the next.

The operations run in a child process under ``valgrind --tool=callgrind --dump-before=getppid``:
callgrind writes its counters out, and starts them from zero, each time the process calls libc's
``getppid``, which nothing else here calls.  The child calls ``os.getppid()`` around each stretch of
work, so each dump holds one stretch: the operation called ``repetitions`` times.  A stretch of as
many calls of a function that does nothing is counted too and taken off, so a figure is the
operation's own instructions.  ``PYTHONHASHSEED`` is fixed so that two runs do the same work.

Callgrind counts the instructions the process runs in user space (Python, lxml, libxml2, the C
library), not the kernel's work for it (system calls, page faults).
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["VALGRIND", "count_expansions", "valgrind_path"]

VALGRIND = "valgrind"
# libc's function the child calls between stretches of work; callgrind dumps its counters before each call.
_MARKER = "getppid"
# Untimed calls before counting: imports done inside functions, caches filled on a first call.
_WARM_UP = 1


def valgrind_path() -> str | None:
    return shutil.which(VALGRIND)


def count_expansions(host: Path, vcpus: int, variants: Sequence[int], repetitions: int) -> dict[int, float]:
    """Instructions of one ``vnuma_expand`` with the host document parsed anew, by variant index.

    ``variants`` are indexes into ``cases.VARIANTS``; each figure is the mean over ``repetitions``
    calls.  Raises RuntimeError when valgrind is missing or the child fails.
    """
    valgrind = valgrind_path()
    if valgrind is None:
        raise RuntimeError("valgrind is not installed")
    with tempfile.TemporaryDirectory(prefix="vnuma-callgrind-") as directory:
        out = Path(directory) / "callgrind.out"
        command = [
            valgrind,
            "--tool=callgrind",
            f"--dump-before={_MARKER}",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            str(host),
            str(vcpus),
            str(repetitions),
            *map(str, variants),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"the counting child failed ({completed.returncode}): {completed.stderr[-2000:]}")
        parts = _parts(out)
    # Dumps: 1 the start, the warm-up and a garbage collection; 2 the first stretch; 3 a garbage
    # collection; 4 the second stretch...; the last stretch is the empty one.
    # The dump at the exit is written to ``out`` itself, without a number: not read.
    expected = 2 * (len(variants) + 1)
    if sorted(parts) != list(range(1, expected + 1)):
        raise RuntimeError(f"callgrind wrote dumps {sorted(parts)}, expected 1 to {expected}")
    stretches = [parts[index] for index in range(2, expected + 1, 2)]
    empty = stretches[-1]
    return {variant: (count - empty) / repetitions for variant, count in zip(variants, stretches[:-1], strict=True)}


def _parts(out: Path) -> dict[int, int]:
    """The instruction total of each numbered dump callgrind wrote next to ``out``."""
    parts: dict[int, int] = {}
    for path in out.parent.glob(out.name + ".*"):
        number = total = None
        with path.open(encoding="utf-8", errors="replace") as dump:
            for line in dump:
                if line.startswith("part:"):
                    number = int(line.split()[1])
                elif line.startswith("summary:"):
                    total = int(line.split()[1])
                if number is not None and total is not None:
                    break
        if number is None or total is None:
            raise RuntimeError(f"{path.name}: no part number or summary line")
        parts[number] = total
    return parts


def _stretch(operation: Callable[[], object], repetitions: int) -> None:
    # The collection of earlier garbage is a dump of its own, not a cost of the stretch.
    gc.collect()
    os.getppid()
    for _repetition in range(repetitions):
        operation()
    os.getppid()


def _child(argv: list[str]) -> None:
    # Imported here: the parent needs none of the collection to start valgrind.
    from .cases import VARIANTS, Guest, expand_new_host

    host, vcpus, repetitions, *indexes = argv
    capabilities = Path(host).read_text(encoding="utf-8")
    operations = [expand_new_host(capabilities, Guest(int(vcpus), VARIANTS[int(index)])) for index in indexes]
    for operation in operations:
        for _call in range(_WARM_UP):
            operation()
    for operation in operations:
        _stretch(operation, int(repetitions))
    _stretch(lambda: None, int(repetitions))


if __name__ == "__main__":
    _child(sys.argv[1:])
