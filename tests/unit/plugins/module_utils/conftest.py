# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The libvirt adapter's tests: a connection to libvirt's test driver, in this process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._libvirt import LibvirtHost


@pytest.fixture
def host() -> Iterator[LibvirtHost]:
    with LibvirtHost("test:///default") as connected:
        yield connected
