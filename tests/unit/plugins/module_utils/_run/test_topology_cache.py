# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The migration hook's host topology cache (_run/topology_cache.py): who may write it, and when."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import TopologyError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.topology_cache import (
    is_local_uri,
    read_cache,
    refresh_if_installed,
    write_cache,
)
from tests.support.hosts import CAPABILITIES, host

RING = (CAPABILITIES / "seed-4node-ring.xml").read_text()
SMT2 = (CAPABILITIES / "intel-2s-smt2.xml").read_text()


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("qemu+unix:///system?socket=/tmp/x/libvirt-sock", True),
        ("qemu+ssh://hv1/system", False),
        ("qemu+tcp://127.0.0.1:16509/system", False),
        ("test:///default", False),
    ],
)
def test_only_a_daemon_on_this_machine_describes_the_host_the_hook_runs_on(uri: str, local: bool) -> None:
    assert is_local_uri(uri) is local


def test_write_replaces_only_what_changed_and_refuses_what_the_hook_could_not_read(tmp_path: Path) -> None:
    path = str(tmp_path / "var" / "host-capabilities.xml")
    assert write_cache(path, RING, check_mode=True) is True
    assert not (tmp_path / "var").exists()
    assert write_cache(path, RING) is True
    assert write_cache(path, RING) is False
    assert read_cache(path) == host("seed-4node-ring")
    with pytest.raises(XmlError):
        write_cache(path, "<capabilities>")
    assert read_cache(path) == host("seed-4node-ring")
    assert sorted(item.name for item in (tmp_path / "var").iterdir()) == ["host-capabilities.xml"]


def test_runs_refresh_the_cache_only_where_the_hook_is_installed(tmp_path: Path) -> None:
    path = str(tmp_path / "host-capabilities.xml")
    assert refresh_if_installed("qemu:///system", RING, path) is False
    assert not (tmp_path / "host-capabilities.xml").exists()
    write_cache(path, RING)
    assert refresh_if_installed("qemu+ssh://hv1/system", SMT2, path) is False
    assert refresh_if_installed("qemu:///system", SMT2, path) is True
    assert read_cache(path) == host("intel-2s-smt2")
    # A run never fails for the cache: what cannot be cached leaves the old file.
    assert refresh_if_installed("qemu:///system", "<capabilities/>", path) is False
    assert read_cache(path) == host("intel-2s-smt2")


def test_a_missing_cache_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match=r"no host topology cache at .*: run vnuma.libvirt.vnuma_hook"):
        read_cache(str(tmp_path / "missing.xml"))
