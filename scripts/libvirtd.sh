#!/usr/bin/env bash
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Starts and stops a real libvirtd with the QEMU driver by hand, for the integration tests: no systemd,
# no D-Bus, no libvirt-daemon-system package (see scripts/install-system-deps.sh, group `integration`).
#
# Usage: scripts/libvirtd.sh start|stop|restart|status|wait
#   start    configure (user libvirt-qemu, /etc/libvirt/qemu.conf, log directories), start virtlogd and
#            libvirtd unless they run already, then wait until qemu:///system answers
#   stop     stop libvirtd, then virtlogd (TERM, then KILL after a grace period); running guests are
#            left alone (their QEMU processes outlive libvirtd)
#   restart  stop, then start
#   status   one line per daemon; exit status 0 when qemu:///system answers, 3 otherwise
#   wait     wait until qemu:///system answers (LIBVIRTD_WAIT_TIMEOUT seconds, default 90)
#
# Every command is idempotent: starting a running daemon, stopping a stopped one, or finding a stale
# pid file is fine.  The daemons log to /var/log/libvirt/{libvirtd,virtlogd}.log.
set -euo pipefail

readonly URI="qemu:///system"
readonly RUN_DIR=/run
readonly LIBVIRTD_PID="$RUN_DIR/libvirtd.pid"
readonly VIRTLOGD_PID="$RUN_DIR/virtlogd.pid"
readonly LOG_DIR=/var/log/libvirt
readonly QEMU_CONF=/etc/libvirt/qemu.conf
readonly WAIT_TIMEOUT="${LIBVIRTD_WAIT_TIMEOUT:-90}"
readonly STOP_TIMEOUT=30

say() {
    echo "libvirtd.sh: $*"
}

die() {
    echo "libvirtd.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop|restart|status|wait" >&2
    exit 2
}

need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        die "must run as root (the QEMU driver of qemu:///system runs guests as root here)"
    fi
}

need_binaries() {
    local binary
    for binary in libvirtd virtlogd virsh taskset; do
        if ! command -v "$binary" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$binary ]]; then
            die "$binary not found: run scripts/install-system-deps.sh integration (or make system-deps)"
        fi
    done
}

# The pid of the running daemon NAME from PIDFILE, or nothing (no file, a stale file, or another process).
daemon_pid() {
    local name=$1 pidfile=$2 pid comm
    [[ -r $pidfile ]] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n $pid ]] || return 0
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    if [[ $comm == "$name" ]]; then
        echo "$pid"
    fi
}

answers() {
    timeout 30 virsh -c "$URI" version >/dev/null 2>&1
}

# Sets KEY = VALUE in qemu.conf: replaces an active setting, else appends one; other lines stay as they are.
# Prints the key when the file changed.
conf_set() {
    local key=$1 value=$2 line
    line="$key = $value"
    if grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$QEMU_CONF"; then
        if ! grep -Fxq "$line" "$QEMU_CONF" || [[ $(grep -Ec "^[[:space:]]*${key}[[:space:]]*=" "$QEMU_CONF") -ne 1 ]]; then
            sed -i -E "s|^[[:space:]]*${key}[[:space:]]*=.*$|${line}|" "$QEMU_CONF"
            echo "$key"
        fi
    else
        printf '%s\n' "$line" >>"$QEMU_CONF"
        echo "$key"
    fi
}

configure() {
    if ! getent group libvirt-qemu >/dev/null; then
        groupadd --system libvirt-qemu
        say "created group libvirt-qemu"
    fi
    if ! getent passwd libvirt-qemu >/dev/null; then
        useradd --system --gid libvirt-qemu --no-create-home --home-dir /var/lib/libvirt \
            --shell /usr/sbin/nologin libvirt-qemu
        say "created user libvirt-qemu"
    fi
    mkdir -p "$(dirname "$QEMU_CONF")" "$LOG_DIR/qemu"
    if [[ ! -e $QEMU_CONF ]]; then
        printf '# Written by scripts/libvirtd.sh of vnuma.libvirt: QEMU runs as root, without a security driver.\n' \
            >"$QEMU_CONF"
    fi
    local changed
    changed=$(
        conf_set user '"root"'
        conf_set group '"root"'
        conf_set dynamic_ownership 0
        conf_set security_driver '"none"'
    )
    if [[ -n $changed ]]; then
        say "$QEMU_CONF: set $(echo "$changed" | paste -sd, -)"
        if [[ -n $(daemon_pid libvirtd "$LIBVIRTD_PID") ]]; then
            say "libvirtd runs with the old configuration: restarting it"
            stop_daemon libvirtd "$LIBVIRTD_PID"
        fi
    fi
}

start_daemon() {
    local name=$1 pidfile=$2 log=$3 pid
    shift 3
    pid=$(daemon_pid "$name" "$pidfile")
    if [[ -n $pid ]]; then
        say "$name already running (pid $pid)"
        return 0
    fi
    if [[ -e $pidfile ]]; then
        say "removing stale $pidfile"
        rm -f "$pidfile"
    fi
    LIBVIRT_LOG_OUTPUTS="3:file:$log" "$@" --daemon --pid-file "$pidfile"
    # --daemon returns once the pid file is written, or the daemon has failed.
    pid=$(daemon_pid "$name" "$pidfile")
    if [[ -z $pid ]]; then
        tail -n 20 "$log" >&2 2>/dev/null || true
        die "$name did not start (log: $log)"
    fi
    say "$name started (pid $pid, log $log)"
}

stop_daemon() {
    local name=$1 pidfile=$2 pid waited=0
    pid=$(daemon_pid "$name" "$pidfile")
    if [[ -z $pid ]]; then
        if [[ -e $pidfile ]]; then
            rm -f "$pidfile"
            say "$name not running (removed stale $pidfile)"
        else
            say "$name not running"
        fi
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT * 10)); then
            say "$name (pid $pid) did not stop after ${STOP_TIMEOUT}s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    rm -f "$pidfile"
    say "$name stopped (pid $pid)"
}

wait_ready() {
    local start=$SECONDS pid
    while ! answers; do
        pid=$(daemon_pid libvirtd "$LIBVIRTD_PID")
        if [[ -z $pid ]] && ! answers; then
            tail -n 20 "$LOG_DIR/libvirtd.log" >&2 2>/dev/null || true
            die "libvirtd is not running (log: $LOG_DIR/libvirtd.log)"
        fi
        if ((SECONDS - start >= WAIT_TIMEOUT)); then
            die "$URI did not answer within ${WAIT_TIMEOUT}s (log: $LOG_DIR/libvirtd.log)"
        fi
        sleep 0.5
    done
    say "$URI answers ($(virsh -c "$URI" version 2>/dev/null | sed -n 's/^Running hypervisor: //p'), waited $((SECONDS - start))s)"
}

cmd_start() {
    need_root
    need_binaries
    configure
    start_daemon virtlogd "$VIRTLOGD_PID" "$LOG_DIR/virtlogd.log" virtlogd
    # Pinned to one CPU: the two vCPUs of the CI machines report slightly different CPUID, which makes
    # libvirt probe QEMU's capabilities again on each start when the daemon lands on the other CPU.
    start_daemon libvirtd "$LIBVIRTD_PID" "$LOG_DIR/libvirtd.log" taskset -c 0 libvirtd
    wait_ready
}

cmd_stop() {
    need_root
    stop_daemon libvirtd "$LIBVIRTD_PID"
    stop_daemon virtlogd "$VIRTLOGD_PID"
}

cmd_status() {
    local name pidfile pid
    for name in virtlogd libvirtd; do
        pidfile="$RUN_DIR/$name.pid"
        pid=$(daemon_pid "$name" "$pidfile")
        if [[ -n $pid ]]; then
            say "$name running (pid $pid)"
        else
            say "$name not running"
        fi
    done
    if answers; then
        say "$URI answers"
    else
        say "$URI does not answer"
        return 3
    fi
}

[[ $# -eq 1 ]] || usage
case $1 in
start) cmd_start ;;
stop) cmd_stop ;;
restart)
    cmd_stop
    cmd_start
    ;;
status) cmd_status ;;
wait) wait_ready ;;
*) usage ;;
esac
