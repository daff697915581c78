# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a run asks of one guest right before its define and at its restart (``_libvirt.py:LibvirtGuest``).

``running_if_defined``: whether the guest runs, None when it is not defined any more (a running guest another
client undefined is transient, and its XML can still be read).  ``ask_shutdown``: asked, or the state that kept
it from being asked (shut off; paused, which libvirt refuses to ask).  Against a stand-in domain that answers as
the QEMU driver does and counts the calls, and against libvirt's test driver where it can show it.
"""

from __future__ import annotations

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError
from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import SHUTDOWN_ASKED, LibvirtGuest, LibvirtHost
from ansible_collections.vnuma.libvirt.tests.support.embedded_libvirt import small_test_domain

NOT_RUNNING = "Requested operation is not valid: domain is not running"


def libvirt_error(code: int, message: str, domain: int = libvirt.VIR_FROM_QEMU) -> libvirt.libvirtError:
    error = libvirt.libvirtError(message)
    # What libvirt-python fills from virGetLastError(): (code, domain, message, level, ...).
    error.err = (code, domain, message, 2, None, None, None, 0, 0)
    return error


class StandIn:
    """A domain in one state, as the QEMU driver answers for it; every call is recorded."""

    def __init__(self, state: int, persistent: bool = True, gone: bool = False) -> None:
        self.state_now = state
        self.persistent = persistent
        self.gone = gone
        self.shutdown_error: libvirt.libvirtError | None = None
        self.calls: list[str] = []

    def _called(self, method: str) -> None:
        self.calls.append(method)
        if self.gone:
            raise libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found: no domain with matching uuid")

    def isActive(self) -> int:
        self._called("isActive")
        return int(self.state_now != libvirt.VIR_DOMAIN_SHUTOFF)

    def isPersistent(self) -> int:
        self._called("isPersistent")
        return int(self.persistent)

    def state(self, flags: int = 0) -> list[int]:
        self._called("state")
        return [self.state_now, 1]

    def shutdown(self) -> int:
        self._called("shutdown")
        if self.shutdown_error is not None:
            raise self.shutdown_error
        # qemuDomainShutdownFlags asks only a guest in the running state.
        if self.state_now != libvirt.VIR_DOMAIN_RUNNING:
            raise libvirt_error(libvirt.VIR_ERR_OPERATION_INVALID, NOT_RUNNING)
        return 0


def guest(domain: StandIn) -> LibvirtGuest:
    return LibvirtGuest(domain, "db01")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "persistent", "expected", "calls"),
    [
        # A shut-off guest is persistent whenever it exists: one call.
        (libvirt.VIR_DOMAIN_SHUTOFF, True, False, ["isActive"]),
        (libvirt.VIR_DOMAIN_RUNNING, True, True, ["isActive", "isPersistent"]),
        (libvirt.VIR_DOMAIN_PAUSED, True, True, ["isActive", "isPersistent"]),
        # Undefined by another client while it runs: transient, not defined.
        (libvirt.VIR_DOMAIN_RUNNING, False, None, ["isActive", "isPersistent"]),
    ],
    ids=["shut-off", "running", "paused", "running-transient"],
)
def test_running_if_defined(state: int, persistent: bool, expected: bool | None, calls: list[str]) -> None:
    domain = StandIn(state, persistent)
    assert guest(domain).running_if_defined() is expected
    assert domain.calls == calls


def test_running_if_defined_of_a_guest_that_is_gone() -> None:
    assert guest(StandIn(libvirt.VIR_DOMAIN_SHUTOFF, gone=True)).running_if_defined() is None


def test_a_running_guest_is_asked_in_one_call() -> None:
    domain = StandIn(libvirt.VIR_DOMAIN_RUNNING)
    assert guest(domain).ask_shutdown() == SHUTDOWN_ASKED
    assert domain.calls == ["shutdown"]


@pytest.mark.parametrize(
    ("state", "answer"),
    [
        (libvirt.VIR_DOMAIN_SHUTOFF, "shutoff"),
        (libvirt.VIR_DOMAIN_PAUSED, "paused"),
        (libvirt.VIR_DOMAIN_PMSUSPENDED, "pmsuspended"),
    ],
)
def test_a_refused_request_says_the_state_the_guest_is_in(state: int, answer: str) -> None:
    domain = StandIn(state)
    assert guest(domain).ask_shutdown() == answer
    assert domain.calls == ["shutdown", "state"]


def test_any_other_refusal_stays_an_error() -> None:
    domain = StandIn(libvirt.VIR_DOMAIN_RUNNING)
    domain.shutdown_error = libvirt_error(libvirt.VIR_ERR_AGENT_UNRESPONSIVE, "Guest agent is not responding")
    with pytest.raises(LibvirtOperationError) as caught:
        guest(domain).ask_shutdown()
    assert str(caught.value) == "guest db01: asking the guest to shut down: Guest agent is not responding"


def test_a_failed_connection_is_reported_as_it_is() -> None:
    domain = StandIn(libvirt.VIR_DOMAIN_RUNNING)
    domain.shutdown_error = libvirt_error(
        libvirt.VIR_ERR_SYSTEM_ERROR, "End of file while reading data", domain=libvirt.VIR_FROM_RPC
    )
    with pytest.raises(LibvirtOperationError, match="End of file while reading data"):
        guest(domain).ask_shutdown()
    assert domain.calls == ["shutdown"]


def test_the_test_driver_agrees(host: LibvirtHost) -> None:
    conn = host.connection
    name = "libvirt-guest-state"
    dom = conn.defineXML(small_test_domain(name))
    try:
        (listed,) = [item for item in host.guests() if item.name == name]
        assert listed.running_if_defined() is False
        # The test driver refuses a shut-off guest with another code than QEMU's: the state says why.
        assert listed.ask_shutdown() == "shutoff"
        dom.create()
        assert listed.running_if_defined() is True
        dom.undefine()
        # Transient now: its XML can still be read, but it is not defined.
        assert listed.xml_if_defined() is not None
        assert listed.running_if_defined() is None
        dom.destroy()
        assert listed.running_if_defined() is None
    finally:
        if name in [domain.name() for domain in conn.listAllDomains()]:
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefine()


# -- the managed save image (virsh managedsave): whether there is one, and the XML its next start resumes --------

NO_IMAGE = "Requested operation is not valid: domain does not have managed save image"


class SavedStandIn:
    """A shut-off domain with (or without) a managed save image, as the QEMU driver answers; calls are recorded."""

    def __init__(self, image: str | None, error: libvirt.libvirtError | None = None) -> None:
        self.image = image
        self.error = error
        self.calls: list[tuple[str, int]] = []

    def hasManagedSaveImage(self, flags: int = 0) -> int:
        self.calls.append(("hasManagedSaveImage", flags))
        return int(self.image is not None)

    def managedSaveGetXMLDesc(self, flags: int = 0) -> str:
        self.calls.append(("managedSaveGetXMLDesc", flags))
        if self.error is not None:
            raise self.error
        if self.image is None:
            raise libvirt_error(libvirt.VIR_ERR_OPERATION_INVALID, NO_IMAGE)
        return self.image


def saved_guest(domain: SavedStandIn) -> LibvirtGuest:
    return LibvirtGuest(domain, "db01")  # type: ignore[arg-type]


def test_the_image_is_read_secure_as_a_definition_is() -> None:
    # A restore is given this XML back: what libvirt counts as secret (a <graphics> passwd) must be in it.
    domain = SavedStandIn("<domain/>")
    assert saved_guest(domain).has_managed_save() is True
    assert saved_guest(domain).managed_save_xml() == "<domain/>"
    assert domain.calls == [
        ("hasManagedSaveImage", 0),
        ("managedSaveGetXMLDesc", libvirt.VIR_DOMAIN_SAVE_IMAGE_XML_SECURE),
    ]


@pytest.mark.parametrize(
    "error",
    [
        None,  # no image (any more): started or managedsave-remove'd since the listing
        libvirt_error(libvirt.VIR_ERR_NO_SUPPORT, "this function is not supported by the connection driver"),
        libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found: no domain with matching uuid"),
    ],
    ids=["no-image", "driver-cannot-read-one", "undefined"],
)
def test_no_image_to_read_is_none(error: libvirt.libvirtError | None) -> None:
    domain = SavedStandIn(None if error is None else "<domain/>", error)
    assert saved_guest(domain).managed_save_xml() is None


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR, "failed to read qemu header"),
            "guest db01: reading the guest's managed save image: failed to read qemu header",
        ),
        (
            libvirt_error(
                libvirt.VIR_ERR_OPERATION_INVALID, "End of file while reading data", domain=libvirt.VIR_FROM_RPC
            ),
            "guest db01: reading the guest's managed save image at libvirt: End of file while reading data",
        ),
    ],
    ids=["unreadable-image", "connection"],
)
def test_any_other_error_reading_the_image_stays_an_error(error: libvirt.libvirtError, message: str) -> None:
    with pytest.raises(LibvirtOperationError) as caught:
        saved_guest(SavedStandIn("<domain/>", error)).managed_save_xml()
    assert str(caught.value) == message


def test_the_test_driver_has_managed_save_but_cannot_read_the_image(host: LibvirtHost) -> None:
    conn = host.connection
    name = "libvirt-guest-saved"
    dom = conn.defineXML(small_test_domain(name))
    try:
        dom.create()
        (listed,) = [item for item in host.guests() if item.name == name]
        assert listed.has_managed_save() is False
        dom.managedSave(0)
        assert listed.has_managed_save() is True
        assert listed.managed_save_xml() is None
        # Its start resumes the image, and the image is gone.
        listed.start()
        assert (listed.is_running(), listed.has_managed_save()) == (True, False)
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
