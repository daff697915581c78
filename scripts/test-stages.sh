#!/usr/bin/env bash
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The stages of `make test` (each a make target), in three steps:
#
# 1. SETUP, one after the other, output as it comes; a failure stops the run (nothing else can work).
# 2. Two chains side by side: DAEMON (the stages with guests on this machine's libvirtd, one after the
#    other, never beside each other: their guests would take each other's CPUs and memory) and OFFLINE
#    (linters, unit tests, ansible-test, the build: no daemon). Measured in a clean clone's run, the
#    daemon stages keep the machine's two CPUs 40 % busy (they wait for TCG guests, which mostly idle),
#    so the offline chain's CPU work fits in beside them.  Each stage's output goes to its own file,
#    printed whole when the stage ends, so that two stages never interleave.
# 3. LAST (the lab: nested TCG, CPU-bound), alone, output as it comes.
#
# Every stage of steps 2 and 3 runs even after another failed; the run fails at the end when any did.
# Then the stage times and the pytest summary lines of the unit, integration and lab logs.
#
# Usage: scripts/test-stages.sh SETUP DAEMON OFFLINE LAST   (each a space-separated list of make targets)
# Environment: MAKE (the make to call), UNIT_LOG, INTEGRATION_LOG, LAB_LOG (the stages' pytest logs),
# STAGE_LOGS (where the side-by-side stages' output goes; default .build/stages), CLEANUP (make targets run
# when the run ends, however it ends: a stage may leave something running for a later one, as the lab).
set -uo pipefail

if [[ $# -ne 4 ]]; then
    echo "usage: $0 SETUP DAEMON OFFLINE LAST" >&2
    exit 2
fi
read -r -a setup <<<"$1"
read -r -a daemon <<<"$2"
read -r -a offline <<<"$3"
read -r -a last <<<"$4"

make=${MAKE:-make}
read -r -a cleanup <<<"${CLEANUP:-}"
clean_up() {
    local target
    for target in "${cleanup[@]}"; do
        "$make" --no-print-directory "$target" || echo "make test: cleanup $target failed" >&2
    done
}
trap clean_up EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
logs=${STAGE_LOGS:-.build/stages}
rm -rf "$logs"
mkdir -p "$logs"
start=$SECONDS

# One line per stage, "<name> <seconds> <status>", appended as stages end (both chains write here).
times=$logs/times

run_live() {
    local stage=$1 t0=$SECONDS status=ok
    echo
    echo "=== make $stage"
    "$make" --no-print-directory "$stage" || status=FAILED
    echo "$stage $((SECONDS - t0)) $status" >>"$times"
    [[ $status == ok ]]
}

run_logged() {
    local stage=$1 t0=$SECONDS status=ok
    "$make" --no-print-directory "$stage" >"$logs/$stage.log" 2>&1 </dev/null || status=FAILED
    echo "$stage $((SECONDS - t0)) $status" >>"$times"
    {
        flock 9
        echo
        echo "=== make $stage ($status after $((SECONDS - t0)) s; run beside the other chain)"
        cat "$logs/$stage.log"
    } 9>"$logs/print.lock"
}

run_chain() {
    local stage
    for stage in "$@"; do
        run_logged "$stage"
    done
}

setup_failed=
for stage in "${setup[@]}"; do
    if ! run_live "$stage"; then
        setup_failed=$stage
        break
    fi
done

if [[ -z $setup_failed ]]; then
    run_chain "${daemon[@]}" &
    daemon_pid=$!
    run_chain "${offline[@]}" &
    offline_pid=$!
    wait "$daemon_pid" "$offline_pid"
    for stage in "${last[@]}"; do
        run_live "$stage"
    done
fi

echo
echo "=== make test: stage times"
failed=()
for stage in "${setup[@]}" "${daemon[@]}" "${offline[@]}" "${last[@]}"; do
    line=$(grep -E "^$stage [0-9]+ " "$times" 2>/dev/null | tail -n 1)
    if [[ -z $line ]]; then
        printf '%-16s %6s  %s\n' "$stage" "-" "not run"
        continue
    fi
    read -r _name seconds status <<<"$line"
    printf '%-16s %5ss  %s\n' "$stage" "$seconds" "$status"
    [[ $status == ok ]] || failed+=("$stage")
done
printf '%-16s %5ss  (%s and %s side by side)\n' total $((SECONDS - start)) "${daemon[*]}" "${offline[*]}"
if [[ -n $setup_failed ]]; then
    echo "make test: FAILED in setup: $setup_failed; nothing else ran"
    exit 1
fi
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "make test: FAILED stages: ${failed[*]}"
else
    echo "make test: all stages passed"
fi
summary() {
    local what=$1 log=$2 lines=$3 found
    echo "make test: $what:"
    found=$(grep -E '[0-9]+ (passed|failed|errors?)|no tests ran' "$log" 2>/dev/null | tail -n "$lines" || true)
    echo "${found:-no pytest summary: the stage did not run}"
}
summary "integration tests (pytest tests/integration)" "${INTEGRATION_LOG:-.build/integration.log}" 2
summary "lab tests (pytest tests/lab)" "${LAB_LOG:-.build/lab.log}" 1
summary "unit tests (pytest tests/unit)" "${UNIT_LOG:-.build/unit.log}" 1
[[ ${#failed[@]} -eq 0 ]]
