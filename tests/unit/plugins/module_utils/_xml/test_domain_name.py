# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The domain's ``<name>``, read once as libvirt reads a value (``_xml/values.py:domain_name``).

``element.text`` is only the text before the first child: ``<name>db<!-- c -->01</name>`` is guest db01
to libvirt, and was ``db`` in the messages of ``plan_domain``, ``expand_domain`` and the migration reader.
"""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import read_guest_shape
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain, plan_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import moving_guest_from_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import domain_name
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

RING = host("seed-4node-ring")


def _domain(name: str, vcpu: str = "<vcpu>4</vcpu>", vnuma: str = "") -> str:
    return f"<domain type='kvm'>{name}<memory unit='GiB'>4</memory>{vcpu}{vnuma}</domain>"


@pytest.mark.parametrize(
    ("name", "read"),
    [
        pytest.param("<name>db01</name>", "db01", id="plain"),
        pytest.param("<name> db01\n</name>", "db01", id="blanks"),
        pytest.param("<name>db<!-- c -->01</name>", "db01", id="comment-inside"),
        pytest.param("<name><!-- c -->db01</name>", "db01", id="comment-first"),
        pytest.param("<name> </name>", None, id="blank"),
        pytest.param("", None, id="none"),
    ],
)
def test_the_name_is_its_string_value(name: str, read: str | None) -> None:
    root = parse_xml(_domain(name), "domain")
    assert domain_name(root) == read
    assert read_guest_shape(root).name == read


def test_every_reader_names_the_guest_alike() -> None:
    """A refusal names the guest as libvirt does, whoever read the definition."""
    text = _domain("<name>db<!-- c -->01</name>", vcpu="<vcpu>many</vcpu>")
    root = parse_xml(text, "domain")
    refusals = []
    for call in (
        lambda: plan_domain(root, RING, VnumaSpec(mode="host")),
        lambda: expand_domain(text.replace("</domain>", "<vnuma mode='host'/></domain>"), RING),
        lambda: moving_guest_from_xml(text),
    ):
        with pytest.raises(VnumaError) as caught:
            call()
        refusals.append(caught.value)
    assert [refusal.guest for refusal in refusals] == ["db01"] * 3
