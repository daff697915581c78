# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A vnuma_domain run that writes takes the hypervisor's lock before it connects, lists or selects any guest.

``run_domain`` against the in-memory hypervisor, with a stand-in lock that records when it is taken and lets
another client act while the run waits for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError
from ansible_collections.vnuma.libvirt.plugins.module_utils._run import domain
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import URI, Call, FakeHost, domain_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import CAPABILITIES

NAMES = [f"r{index:02}" for index in range(1, 21)]


def params(**extra: Any) -> dict[str, Any]:
    """vnuma_domain's parameters as the module hands them over (its defaults), for the guests ``r*``."""
    return {
        "uri": URI,
        "guests": ["r*"],
        "exclude": [],
        "restart": "never",
        "force": False,
        "shutdown_timeout": 0,
        "lock_timeout": 300,
        "host_capabilities": str(CAPABILITIES / "testdriver-default.xml"),
        "backup": False,
        "capacity": "fail",
        "reserved_memory": 0,
        "mode": "host",
        **extra,
    }


class Connections:
    """Stands in for ``LibvirtHost`` in ``_run/domain.py``: every connection is the in-memory hypervisor."""

    def __init__(self, hypervisor: FakeHost) -> None:
        self.hypervisor = hypervisor

    def from_params(self, _params: Any) -> FakeHost:
        self.hypervisor.calls.append(Call("", "connect"))
        return self.hypervisor


@pytest.fixture
def hypervisor(monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    fake = FakeHost({name: domain_xml(name) for name in NAMES})
    monkeypatch.setattr(domain, "LibvirtHost", Connections(fake))
    return fake


def lock(monkeypatch: pytest.MonkeyPatch, hypervisor: FakeHost, while_waiting: Callable[[], None]) -> None:
    """The hypervisor's lock, held by another run until ``while_waiting()`` (another client's action) is done."""

    @contextlib.contextmanager
    def host_lock(uri: str, timeout: float) -> Iterator[str]:
        assert (uri, timeout) == (URI, 300)
        while_waiting()
        hypervisor.calls.append(Call("", "locked"))
        yield "/run/lock/vnuma.libvirt/fake_vnuma.lock"
        hypervisor.calls.append(Call("", "unlocked"))

    monkeypatch.setattr(domain, "host_lock", host_lock)


def methods(hypervisor: FakeHost) -> list[str]:
    return [call.method for call in hypervisor.calls if not call.guest]


def test_the_guests_are_selected_once_the_lock_is_held(monkeypatch: pytest.MonkeyPatch, hypervisor: FakeHost) -> None:
    # Another client undefines a guest while the run waits for the lock: the run selects from what is left.
    lock(monkeypatch, hypervisor, lambda: hypervisor.undefine("r05"))
    result = domain.run_domain(params(), check_mode=False, want_diff=False)
    assert [guest["name"] for guest in result["guests"]] == [name for name in NAMES if name != "r05"]
    assert all(guest["error"] is None and guest["written"] == ["definition"] for guest in result["guests"])
    done = methods(hypervisor)
    assert done[:3] == ["locked", "connect", "guest_names"]
    assert done[-2:] == ["close", "unlocked"]


def test_a_lock_timeout_fails_before_anything_is_read(monkeypatch: pytest.MonkeyPatch, hypervisor: FakeHost) -> None:
    def held_elsewhere() -> None:
        raise LibvirtOperationError(f"another vnuma.libvirt run is changing the guests of {URI}")

    lock(monkeypatch, hypervisor, held_elsewhere)
    with pytest.raises(LibvirtOperationError, match=r"^another vnuma\.libvirt run"):
        domain.run_domain(params(), check_mode=False, want_diff=False)
    assert hypervisor.calls == []


def test_check_mode_takes_no_lock(monkeypatch: pytest.MonkeyPatch, hypervisor: FakeHost) -> None:
    lock(monkeypatch, hypervisor, lambda: pytest.fail("check mode took the lock"))
    result = domain.run_domain(params(), check_mode=True, want_diff=False)
    assert len(result["guests"]) == len(NAMES) and result["changed"]
    assert "locked" not in methods(hypervisor) and hypervisor.writes() == []
