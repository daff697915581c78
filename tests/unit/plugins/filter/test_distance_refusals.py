# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The filters refuse a host 10 apart between distinct nodes with the pure layer's message, after their name."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_host_svg import vnuma_host_svg
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_layout import vnuma_layout
from ansible_collections.vnuma.libvirt.tests.support.distance_cases import REFUSAL, TEN_APART, report_ten_apart
from ansible_collections.vnuma.libvirt.tests.support.hostgen import build_capabilities


def _through_capabilities() -> None:
    vnuma_layout(build_capabilities(TEN_APART), {"mode": "host"}, vcpus=2, memory="1 GiB", name="db01")


def _through_a_report() -> None:
    vnuma_host_svg({"host": report_ten_apart(), "guests": []})


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        (_through_capabilities, "vnuma.libvirt.vnuma_layout: host capabilities: "),
        (_through_a_report, "vnuma.libvirt.vnuma_host_svg: the host report does not describe a host: "),
    ],
    ids=["vnuma_layout", "vnuma_host_svg"],
)
def test_ten_between_distinct_nodes_is_refused_by_the_filters(path: Callable[[], None], prefix: str) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        path()
    assert str(caught.value) == prefix + REFUSAL
