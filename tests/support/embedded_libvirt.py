# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""libvirt's own parser on a domain, without a daemon: the embedded test driver (``test:///default``)."""

from __future__ import annotations

import uuid

import libvirt

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text

__all__ = ["read_back"]


def _ignore_libvirt_errors(_context: object, _error: object) -> None:
    """libvirt prints every error to stderr by default; the exception carries it already."""


def read_back(root: etree._Element, what: str) -> etree._Element:
    """The domain as libvirt reads it after ``VIR_DOMAIN_DEFINE_VALIDATE``; a refusal raises libvirtError.

    ``root`` gets a unique name (and uuid, when it has one): the test driver keeps its domains for the
    life of the process.
    """
    name = root.find("name")
    if name is None:
        raise ValueError(f"{what}: the domain has no <name>")
    name.text = f"vnuma-{what}-{uuid.uuid4().hex[:8]}"
    uuid_element = root.find("uuid")
    if uuid_element is not None:
        uuid_element.text = str(uuid.uuid4())
    libvirt.registerErrorHandler(_ignore_libvirt_errors, None)
    conn = libvirt.open("test:///default")
    try:
        domain = conn.defineXMLFlags(to_text(root), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        try:
            return parse_xml(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), f"{what} as libvirt reads it")
        finally:
            domain.undefine()
    finally:
        conn.close()


def small_test_domain(name: str) -> str:
    """The smallest guest libvirt's test driver defines: one vCPU, 128 MiB."""
    return (
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
        "<os><type>hvm</type></os></domain>"
    )
