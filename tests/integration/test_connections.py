# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Connections and deadlines, on a private libvirtd (tests/support/private_libvirtd.py).

Which connection errors are waited for (only a daemon that is not up yet), the limits of
``connect_timeout`` and ``call_timeout``, and that a stopped libvirtd or a stopped QEMU process ends a
run with an error naming the call and the URI instead of hanging it.  The waits are bounded by the
options the tests give (1 to 3 s), never judged by a clock.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils import _libvirt
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    LibvirtDeadlineError,
    LibvirtOperationError,
)
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain, vnuma_info
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.private_libvirtd import PrivateLibvirtd, user_domain_xml

MODULES = {"vnuma_domain": vnuma_domain, "vnuma_info": vnuma_info}
# What a guest-changing run would do to the table's guest: a spec its definition does not have yet.
SPEC = {"mode": "node", "nodeset": "0", "cells": 2}
NO_ANSWER = "libvirtd, or the guest's QEMU process it waits on, is stopped or hung"
KEEPALIVE = " (libvirt: internal error: connection closed due to keepalive timeout)"


@pytest.fixture(scope="module")
def table_daemon() -> Iterator[PrivateLibvirtd]:
    """One private libvirtd for the whole table (nothing in it stops or kills the daemon)."""
    with PrivateLibvirtd() as daemon:
        yield daemon


@pytest.fixture(scope="module")
def table_guest(table_daemon: PrivateLibvirtd) -> str:
    name = f"{table_daemon.guest_prefix()}-table"
    conn = libvirt.open(table_daemon.uri)
    try:
        conn.defineXML(user_domain_xml(name))
    finally:
        conn.close()
    return name


@pytest.fixture(scope="module")
def odd_paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A socket that refuses (bound, never listening), a directory, a plain file."""
    base = tmp_path_factory.mktemp("sockets")
    refusing = socket.socket(socket.AF_UNIX)
    refusing.bind(str(base / "refusing-sock"))
    (base / "plain-file").write_text("")
    try:
        yield {"refused": str(base / "refusing-sock"), "dir": str(base), "file": str(base / "plain-file")}
    finally:
        refusing.close()


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every libvirt.open() the collection makes, by URI: 0 means refused before connecting."""
    made: list[str] = []

    def counting(uri: str) -> Any:
        made.append(uri)
        return _OPEN(uri)

    monkeypatch.setattr(libvirt, "open", counting)
    return made


# The tests' own connections, not counted by ``opens``.
_OPEN = libvirt.open


def definition(uri: str, name: str) -> str:
    conn = _OPEN(uri)
    try:
        return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()


def _socket_uri(path: str) -> str:
    return f"qemu+unix:///system?socket={path}"


def _refused(path: str) -> str:
    return f"cannot connect to libvirt at {_socket_uri(path)}: Failed to connect socket to '{path}': Connection refused"


def _ansible_float(option: str) -> re.Pattern[str]:
    return re.compile(
        rf"argument '{option}' is of type str and we were unable to convert to float: .*cannot be converted to a float"
    )


def _outside(option: str, text: str) -> str:
    low = 0 if option == "connect_timeout" else 1
    return f"{option} {text} is outside {low} to 3600 seconds"


def _nan(option: str) -> str:
    low = 0 if option == "connect_timeout" else 1
    return f"{option} nan is not a number of seconds from {low} to 3600"


def _cannot(uri: str, message: str) -> str:
    return f"cannot connect to libvirt at {uri}: {message}"


MISSING = "/nonexistent/libvirt-sock"
NO_DRIVER = "no connection driver available for"

# (options, expected message or pattern, libvirt.open() calls expected: 0 is refused before any
# connection attempt, 1 failed at the first one, never retried).  "{dir}", "{file}" and "{refused}" are
# the paths of odd_paths.  Every case runs with both modules, against the table's private daemon.
CASES = [
    # connect_timeout: a finite number of seconds from 0 to 3600.
    pytest.param({"connect_timeout": float("nan")}, _nan("connect_timeout"), 0, id="connect-nan"),
    pytest.param({"connect_timeout": "nan"}, _nan("connect_timeout"), 0, id="connect-nan-text"),
    pytest.param({"connect_timeout": float("inf")}, _outside("connect_timeout", "inf"), 0, id="connect-inf"),
    pytest.param({"connect_timeout": "-inf"}, _outside("connect_timeout", "-inf"), 0, id="connect-minus-inf"),
    pytest.param({"connect_timeout": -1}, _outside("connect_timeout", "-1"), 0, id="connect-negative"),
    pytest.param({"connect_timeout": -0.001}, _outside("connect_timeout", "-0.001"), 0, id="connect-just-negative"),
    pytest.param({"connect_timeout": 3600.5}, _outside("connect_timeout", "3600.5"), 0, id="connect-over-an-hour"),
    pytest.param({"connect_timeout": 1e300}, _outside("connect_timeout", "1e+300"), 0, id="connect-huge"),
    pytest.param({"connect_timeout": "soon"}, _ansible_float("connect_timeout"), 0, id="connect-not-a-number"),
    pytest.param(
        {"connect_timeout": float("nan"), "uri": "test:///default"}, _nan("connect_timeout"), 0, id="connect-nan-local"
    ),
    # call_timeout: from 1 to 3600 seconds.
    pytest.param({"call_timeout": 0}, _outside("call_timeout", "0"), 0, id="call-zero"),
    pytest.param({"call_timeout": 0.5}, _outside("call_timeout", "0.5"), 0, id="call-under-a-second"),
    pytest.param({"call_timeout": -30}, _outside("call_timeout", "-30"), 0, id="call-negative"),
    pytest.param({"call_timeout": float("nan")}, _nan("call_timeout"), 0, id="call-nan"),
    pytest.param({"call_timeout": float("inf")}, _outside("call_timeout", "inf"), 0, id="call-inf"),
    pytest.param({"call_timeout": 3601}, _outside("call_timeout", "3601"), 0, id="call-over-an-hour"),
    pytest.param({"call_timeout": "never"}, _ansible_float("call_timeout"), 0, id="call-not-a-number"),
    pytest.param({"call_timeout": 0, "uri": "test:///default"}, _outside("call_timeout", "0"), 0, id="call-zero-local"),
    # uri: permanent errors fail at the first attempt, whatever connect_timeout (60 s here) allows.
    pytest.param(
        {"uri": ""},
        "uri '' names no hypervisor: give a libvirt connection URI such as qemu:///system",
        0,
        id="uri-empty",
    ),
    pytest.param({"uri": "bogus://"}, _cannot("bogus://", f"{NO_DRIVER} bogus://"), 1, id="uri-unknown-scheme"),
    pytest.param(
        {"uri": "xen:///system"}, _cannot("xen:///system", f"{NO_DRIVER} xen:///system"), 1, id="uri-missing-driver"
    ),
    pytest.param(
        {"uri": "qemu:///bogus"},
        _cannot("qemu:///bogus", "internal error: unexpected qemu URI path '/bogus', try qemu:///system"),
        1,
        id="uri-bad-path",
    ),
    pytest.param(
        {"uri": " qemu:///system"},
        _cannot(" qemu:///system", "internal error: Unable to parse URI  qemu:///system"),
        1,
        id="uri-leading-space",
    ),
    pytest.param(
        {"uri": "qemu"},
        _cannot("qemu", f"{NO_DRIVER} URI 'qemu' does not include a driver name"),
        1,
        id="uri-no-scheme",
    ),
    pytest.param(
        {"uri": _socket_uri(MISSING)},
        _cannot(_socket_uri(MISSING), f"Failed to connect socket to '{MISSING}': No such file or directory"),
        1,
        id="uri-missing-socket",
    ),
    pytest.param({"uri": _socket_uri("{dir}")}, _refused("{dir}"), 1, id="uri-socket-is-a-directory"),
    pytest.param({"uri": _socket_uri("{file}")}, _refused("{file}"), 1, id="uri-socket-is-a-file"),
    pytest.param({"uri": _socket_uri("")}, _refused(""), 1, id="uri-socket-empty"),
    pytest.param(
        {"uri": _socket_uri("{refused}"), "connect_timeout": 0}, _refused("{refused}"), 1, id="uri-refused-no-wait"
    ),
    pytest.param(
        {"uri": "qemu+tcp://127.0.0.1:1/system", "connect_timeout": 0},
        _cannot("qemu+tcp://127.0.0.1:1/system", "unable to connect to server at '127.0.0.1:1': Connection refused"),
        1,
        id="uri-tcp-refused-no-wait",
    ),
    pytest.param(
        {"uri": "test:///nonexistent/driver.xml"},
        _cannot("test:///nonexistent/driver.xml", "XML error: failed to parse xml document '/nonexistent/driver.xml'"),
        1,
        id="uri-test-driver-file-missing",
    ),
]


@pytest.mark.parametrize("module_name", sorted(MODULES))
@pytest.mark.parametrize(("options", "expected", "attempts"), CASES)
def test_bad_connection_inputs_are_refused_and_change_nothing(
    table_daemon: PrivateLibvirtd,
    table_guest: str,
    odd_paths: dict[str, str],
    opens: list[str],
    module_name: str,
    options: dict[str, Any],
    expected: str | re.Pattern[str],
    attempts: int,
) -> None:
    module = MODULES[module_name]
    paths = {"private": table_daemon.uri, **odd_paths}
    args: dict[str, Any] = {"uri": table_daemon.uri, "connect_timeout": 60}
    args.update({key: value.format(**paths) if isinstance(value, str) else value for key, value in options.items()})
    if module is vnuma_domain:
        args.update(name=table_guest, **SPEC)
    before = definition(table_daemon.uri, table_guest)
    failed = fail_module(args, module=module)
    if isinstance(expected, re.Pattern):
        assert expected.fullmatch(failed["msg"]), failed["msg"]
    else:
        assert failed["msg"] == expected.format(**paths)
    # Refused before any connection attempt, or after exactly one: never retried.
    assert len(opens) == attempts, opens
    assert failed.get("changed", False) is False
    assert definition(table_daemon.uri, table_guest) == before


# -- waiting for a daemon that is not up yet -------------------------------------------------------


def test_a_daemon_that_is_not_up_yet_is_waited_for(private_libvirtd: PrivateLibvirtd, opens: list[str]) -> None:
    # Killed, libvirtd leaves its socket file behind: connections are refused until a new daemon
    # listens on it, as while a daemon (re)starts.
    private_libvirtd.kill()
    starter = threading.Timer(1.0, private_libvirtd.start_daemon)
    starter.start()
    try:
        result = run_module({"uri": private_libvirtd.uri, "connect_timeout": 60}, module=vnuma_info)
    finally:
        starter.join()
    assert result["guest_count"] == 0
    assert len(opens) >= 2, opens


@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_waiting_ends_at_connect_timeout_and_says_how_long(
    private_libvirtd: PrivateLibvirtd, opens: list[str], module_name: str
) -> None:
    private_libvirtd.kill()
    args: dict[str, Any] = {"uri": private_libvirtd.uri, "connect_timeout": 1}
    if module_name == "vnuma_domain":
        args["name"] = "anything"
    failed = fail_module(args, module=MODULES[module_name])
    expected = re.escape(_refused(str(private_libvirtd.socket))) + (
        r" \(tried (\d+) times in \d+\.\d s; connect_timeout is 1 s\)"
    )
    match = re.fullmatch(expected, failed["msg"])
    assert match, failed["msg"]
    # One try, then one every half second while a next one still fits in the second: two.
    assert int(match.group(1)) == len(opens) == 2


# -- deadlines ---------------------------------------------------------------------------------------


def test_a_stopped_daemon_fails_the_connection_within_call_timeout(private_libvirtd: PrivateLibvirtd) -> None:
    # A stopped daemon's socket still accepts connections (the kernel queues them): libvirt.open()
    # would wait forever for the daemon's answer.
    private_libvirtd.stop()
    failed = fail_module({"uri": private_libvirtd.uri, "call_timeout": 1}, module=vnuma_info)
    assert (
        failed["msg"]
        == f"connecting to libvirt at {private_libvirtd.uri}: no answer within 1 s (call_timeout); {NO_ANSWER}"
    )


def _stop_before(monkeypatch: pytest.MonkeyPatch, cls: type, method: str, action: Callable[[], None]) -> None:
    real = getattr(cls, method)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        action()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, wrapper)


@pytest.mark.parametrize("module", [vnuma_info, vnuma_domain], ids=["vnuma_info", "vnuma_domain"])
def test_a_daemon_stopped_during_a_run_ends_it_by_keepalive(
    private_libvirtd: PrivateLibvirtd, monkeypatch: pytest.MonkeyPatch, module: ModuleType
) -> None:
    # libvirt's keepalive closes the connection of a daemon that stopped answering (here after 2 s,
    # within the call_timeout of 3 s): the blocked call ends with libvirt's own error.
    _stop_before(monkeypatch, _libvirt.LibvirtHost, "capabilities_xml", private_libvirtd.stop)
    args: dict[str, Any] = {"uri": private_libvirtd.uri, "call_timeout": 3}
    if module is vnuma_domain:
        args["name"] = "anything"
    failed = fail_module(args, module=module)
    assert failed["msg"] == (
        f"reading the host capabilities of {private_libvirtd.uri}: no answer within 3 s (call_timeout); "
        f"{NO_ANSWER}{KEEPALIVE}"
    )


def test_a_stopped_guest_process_is_bounded_by_the_watchdog(private_libvirtd: PrivateLibvirtd) -> None:
    # libvirtd answers its keepalive messages but waits forever on the stopped QEMU's monitor: only
    # the collection's own deadline ends the call.
    name = f"{private_libvirtd.guest_prefix()}-frozen"
    conn = libvirt.open(private_libvirtd.uri)
    try:
        conn.defineXML(user_domain_xml(name)).create()
    finally:
        conn.close()
    (qemu,) = private_libvirtd.qemu_pids()
    os.kill(qemu, signal.SIGSTOP)
    try:
        failed = fail_module(
            {"uri": private_libvirtd.uri, "call_timeout": 5, "name": name, "restart": "if_needed", **SPEC}
        )
    finally:
        os.kill(qemu, signal.SIGCONT)
    deadline = (
        f"guest {name}: asking the guest to shut down at {private_libvirtd.uri}: no answer within 5 s (call_timeout); "
        f"{NO_ANSWER}"
    )
    assert failed["msg"].startswith(deadline), failed["msg"]
    # The definition was written before the restart: the failed run says so.
    assert failed["changed"] is True
    (guest,) = failed["guests"]
    assert (guest["name"], guest["written"][:1]) == (name, ["definition"])
    assert guest["error"].startswith(deadline)


def test_every_later_call_of_a_given_up_connection_fails_at_once(private_libvirtd: PrivateLibvirtd) -> None:
    host = _libvirt.LibvirtHost(private_libvirtd.uri, 0, 1)
    private_libvirtd.stop()
    # A deadline error of its own kind: the call was sent and may still take effect.
    with pytest.raises(LibvirtDeadlineError) as first:
        host.capabilities_xml()
    assert str(first.value).startswith(f"reading the host capabilities of {private_libvirtd.uri}: no answer within 1 s")
    private_libvirtd.cont()
    with pytest.raises(LibvirtOperationError) as later:
        host.guest_names()
    assert not isinstance(later.value, LibvirtDeadlineError)
    assert str(later.value) == (
        f"listing the guests of {private_libvirtd.uri}: not attempted: an earlier call "
        f"(reading the host capabilities of {private_libvirtd.uri}) got no answer within 1 s"
    )
    host.close()  # returns at once: the connection is given up, not closed over the wire


def test_the_test_driver_needs_no_deadline_machinery() -> None:
    with _libvirt.LibvirtHost("test:///default") as host:
        assert host._calls.bounded is False
        assert host.guest_names() == ["test"]
