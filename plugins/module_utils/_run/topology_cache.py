# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The host topology cache that the migration hook plans with (docs/migration.md).

The hook runs inside libvirtd's own call and must never call libvirt back, so it reads the host's
capabilities XML from a file the collection keeps on the hypervisor.  The file holds what libvirt's
capabilities say and nothing else: nodes, CPUs, distances, node sizes and hugepage pool sizes.  Free
memory is not in it, so the hook never plans with a figure that goes stale in seconds.

Who writes it: ``vnuma_hook`` (``state: present``) every time it runs, and each ``vnuma_domain`` run
on a local URI while the file is there (the hook is installed), when the host's capabilities changed
since (a node grew, hugepages were reserved).  A write replaces the file atomically, so the hook never
reads half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import urllib.parse

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import TopologyError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import (
    parse_capabilities,
    read_host_capabilities,
)

__all__ = [
    "DEFAULT_CACHE_PATH",
    "is_local_uri",
    "read_cache",
    "read_file",
    "refresh_if_installed",
    "write_cache",
    "write_file",
]

DEFAULT_CACHE_PATH = "/var/lib/vnuma-libvirt/host-capabilities.xml"


def is_local_uri(uri: str) -> bool:
    """Whether ``uri`` reaches a daemon on this machine: the cache must describe the host the hook runs on.

    ``qemu:///system`` and ``qemu+unix:///system?socket=...`` are local; a URI with a host part
    (``qemu+ssh://hv1/system``) is another machine, and the test driver is no host at all.
    """
    parts = urllib.parse.urlsplit(uri)
    driver = parts.scheme.partition("+")[0].lower()
    transport = parts.scheme.partition("+")[2].lower()
    return driver != "test" and not parts.hostname and transport in ("", "unix")


def read_file(path: str) -> bytes | None:
    """The file's bytes, or None when it cannot be read."""
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        return handle.read()
    return None


def write_file(path: str, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` in one step (a reader sees the old file or the new one), parents made."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".vnuma-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_cache(path: str, capabilities_xml: str | bytes, check_mode: bool = False) -> bool:
    """Write ``capabilities_xml`` to ``path`` when it differs from what is there; whether it did (or would).

    The XML must parse as a host topology first: a cache the hook cannot read would refuse every move.
    """
    parse_capabilities(capabilities_xml, "the host capabilities to cache")
    data = capabilities_xml.encode() if isinstance(capabilities_xml, str) else capabilities_xml
    if read_file(path) == data:
        return False
    if not check_mode:
        write_file(path, data, 0o644)
    return True


def read_cache(path: str) -> HostTopology:
    """The topology in the cache at ``path``; a ``TopologyError`` naming the path when it is missing or bad."""
    if not os.path.exists(path):
        raise TopologyError(
            f"no host topology cache at {path}: run vnuma.libvirt.vnuma_hook (state present) on this host"
        )
    return parse_capabilities(read_host_capabilities(path), f"the host topology cache {path}")


def refresh_if_installed(uri: str, capabilities_xml: str, path: str | None = None) -> bool:
    """Bring the cache up to date after a run read the host's capabilities; whether it wrote.

    Only where the hook is installed (the file exists) and only for a daemon on this machine.  A cache
    that cannot be written stays as it was: the run's own work does not depend on it, and
    ``vnuma_hook`` reports the error when it runs.
    """
    # The default is read at each call, not bound at import: the integration test points it elsewhere.
    path = path or DEFAULT_CACHE_PATH
    if not is_local_uri(uri) or not os.path.isfile(path):
        return False
    try:
        return write_cache(path, capabilities_xml)
    except (OSError, VnumaError):
        return False
