# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures of the integration tests: a real libvirtd and real guests booting a real Linux kernel.

``make integration`` starts libvirtd (``scripts/libvirtd.sh start``) and builds the guest image
(``scripts/build-guest-image.sh``) first; a missing daemon or image fails the tests, it never skips
them.  The helpers live in ``tests/support/realguest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.tests.support.private_libvirtd import PrivateLibvirtd
from ansible_collections.vnuma.libvirt.tests.support.realguest import (
    IMAGE_DIR,
    URI,
    GuestFactory,
    connect,
    remove_stale_guests,
)


@pytest.fixture(scope="session")
def qemu_conn() -> Iterator[libvirt.virConnect]:
    """A connection to the real libvirtd's QEMU driver; guests left behind by killed runs are removed."""
    try:
        conn = connect(URI)
    except libvirt.libvirtError as error:
        pytest.fail(
            f"libvirtd does not answer at {URI}: {error}\nStart it with `make libvirtd` (scripts/libvirtd.sh start).",
            pytrace=False,
        )
    removed = remove_stale_guests(conn)
    if removed:
        print(f"removed guests left behind by earlier runs: {', '.join(removed)}")
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def host_caps(qemu_conn: libvirt.virConnect) -> str:
    """The capabilities XML of the host libvirtd runs on."""
    return qemu_conn.getCapabilities()


@pytest.fixture(scope="session")
def guest_image() -> Path:
    """The directory of the guest's kernel and initramfs."""
    missing = [name for name in ("vmlinuz", "initrd.img") if not (IMAGE_DIR / name).is_file()]
    if missing:
        pytest.fail(
            f"the guest image is incomplete ({', '.join(missing)} missing in {IMAGE_DIR}): "
            "build it with `make guest-image` (scripts/build-guest-image.sh)",
            pytrace=False,
        )
    return IMAGE_DIR


@pytest.fixture
def make_guest(
    qemu_conn: libvirt.virConnect, host_caps: str, guest_image: Path, tmp_path: Path
) -> Iterator[GuestFactory]:
    """``make_guest(name_prefix, vcpus, memory_mib, current_vcpus=None, extra_xml='', vnuma=None, ...)``.

    Defines and starts a guest (see ``GuestFactory.__call__``); every guest made is destroyed and
    undefined when the test ends, whatever its outcome.
    """
    factory = GuestFactory(conn=qemu_conn, host_caps=host_caps, workdir=tmp_path, image_dir=guest_image)
    try:
        yield factory
    finally:
        problems = factory.cleanup()
        if problems:
            pytest.fail("could not remove every guest: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def private_libvirtd() -> Iterator[PrivateLibvirtd]:
    """A libvirtd of the test's own, never the shared one (tests/support/private_libvirtd.py).

    The test may kill, stop and restart it (``.kill()``, ``.stop()``, ``.restart()``); its URI is
    ``.uri``, its pid ``.pid``.  At the end everything it ran is killed (its QEMU processes too), also
    when the test killed or stopped it, and its private directories are removed.
    """
    daemon = PrivateLibvirtd()
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.close()
