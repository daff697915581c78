# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The benchmark's guests and the operations timed on them.

Every guest is a realistic domain XML (disk, network, console) with a ``<vnuma>`` element; its
memory grows with its vCPUs and always fits the large host's 64 GiB nodes.  The operations are the
two filters as a playbook calls them, and the steps of ``expand_domain`` one by one:

- *caps parse*: capabilities XML -> ``HostTopology``;
- *domain read*: domain XML -> element tree, its ``<vnuma>`` spec, the guest's shape and the owned
  parts as they are;
- *compute_layout*: the partitioner alone, on a freshly parsed host (its per-node caches cold, as
  in a filter call);
- *plan*: the layout as models of the owned parts;
- *write + serialise*: the models written into the tree, the spec stored in ``<metadata>``, and the
  document back to text;
- *Layout.to_dict*: the ``vnuma_layout`` filter's answer (not a step of the expansion);
- *change list*: the differences of the models from the domain's, value by value, which
  ``vnuma_domain`` reports (not a step of the expansion: the filter does not ask for them).

The steps call what ``_xml.expand.expand_domain`` calls; their sum is compared with the filter's figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_expand import vnuma_expand
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_layout import vnuma_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma, read_guest_shape
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import plan_domain, render_plan, serialize_like
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import take_vnuma_element
from ansible_collections.vnuma.libvirt.tests.support.hosts import parsed_hosts_clear

__all__ = ["SIZES", "VARIANTS", "Guest", "Variant", "domain_xml", "expand_new_host", "operations"]

# Guest sizes in vCPUs: a small guest, the target's 256, and one as large as the host.
SIZES = (16, 256, 1024)
# Memory per guest size, GiB: 16 cells of at most 32 GiB on 64 GiB host nodes.
_MEMORY_GIB = {16: 32, 256: 256, 1024: 512}


@dataclass(frozen=True)
class Variant:
    """A vNUMA spec, as ``<vnuma>`` attributes and children and as ``vnuma_layout`` options."""

    label: str
    options: dict[str, Any]

    def element(self) -> str:
        attributes = " ".join(
            f"{name}='{value}'"
            for name, value in self.options.items()
            if name in ("mode", "distribution", "pinning", "memory_mode")
        )
        cells = self.options.get("cells")
        if cells is None:
            return f"<vnuma {attributes}/>"
        return f"<vnuma {attributes}>\n    <partition cells='{cells}'/>\n  </vnuma>"


REFERENCE = Variant("host mode, contiguous, pinning node", {"mode": "host", "distribution": "contiguous"})
VARIANTS = (
    REFERENCE,
    Variant("node mode, 4 cells, round-robin", {"mode": "node", "distribution": "round-robin", "cells": 4}),
    Variant("host mode, siblings, pinning thread", {"mode": "host", "distribution": "siblings", "pinning": "thread"}),
    Variant("host mode, interleave, pinning node", {"mode": "host", "distribution": "interleave", "pinning": "node"}),
)


def domain_xml(name: str, vcpus: int, variant: Variant) -> str:
    """A domain as a user would template it, with the ``<vnuma>`` request of ``variant``."""
    return f"""<domain type='kvm'>
  <name>{name}</name>
  <uuid>6f1c2b9e-3d4a-4e5f-8a7b-{vcpus:012d}</uuid>
  <memory unit='GiB'>{_MEMORY_GIB[vcpus]}</memory>
  <vcpu>{vcpus}</vcpu>
  {variant.element()}
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode='host-passthrough' check='none' migratable='on'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' io='native'/>
      <source file='/var/lib/libvirt/images/{name}.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <console type='pty'/>
    <memballoon model='virtio'/>
  </devices>
</domain>
"""


@dataclass(frozen=True)
class Guest:
    """One guest of the benchmark: its size, its spec and its domain XML."""

    vcpus: int
    variant: Variant

    @property
    def name(self) -> str:
        return f"bench{self.vcpus}"

    @property
    def memory(self) -> str:
        return f"{_MEMORY_GIB[self.vcpus]} GiB"

    @property
    def xml(self) -> str:
        return domain_xml(self.name, self.vcpus, self.variant)


# An operation to time: (label, operation, untimed setup or None).
Operation = tuple[str, Callable[[Any], object], Callable[[], Any] | None]


def _cold(operation: Callable[[], object]) -> object:
    """Run ``operation`` with no parsed host kept from earlier calls."""
    parsed_hosts_clear()
    return operation()


def expand_new_host(capabilities: str, guest: Guest) -> Callable[[], object]:
    """``vnuma_expand`` of ``guest`` with the host document parsed anew: the operation the target is for."""
    text = guest.xml
    return lambda: _cold(lambda: vnuma_expand(text, capabilities))


def operations(capabilities: str, guest: Guest) -> dict[str, Operation]:
    """The timed operations for ``guest`` on the host of ``capabilities``, by key, in table order."""
    text = guest.xml
    spec = VnumaSpec.from_mapping(guest.variant.options)
    host = parse_capabilities(capabilities)

    def read_domain() -> tuple[Any, Any, Any, DomainNuma]:
        root = parse_xml(text, "domain XML", root_tag="domain")
        request = take_vnuma_element(root)
        return root, request, read_guest_shape(root), DomainNuma.from_domain(root)

    _root, _request, shape, current = read_domain()
    expand_cold = expand_new_host(capabilities, guest)
    layout = compute_layout(host, spec, shape)

    target = DomainNuma.from_layout(layout, current)

    def plan(_state: None) -> object:
        return DomainNuma.from_layout(layout, current)

    def planned() -> tuple[Any, Any]:
        root = read_domain()[0]
        return root, plan_domain(root, host, spec)

    def write(state: tuple[Any, Any]) -> str:
        root, domain_plan = state
        render_plan(root, domain_plan)
        return serialize_like(root, text)

    return {
        "layout": (
            "vnuma_layout filter",
            lambda _state: vnuma_layout(capabilities, guest.variant.options, vcpus=guest.vcpus, memory=guest.memory),
            None,
        ),
        # The host document parsed anew (the first guest of a host), then kept (every further guest).
        "expand_cold": ("vnuma_expand, new host", lambda _state: expand_cold(), None),
        "expand": ("vnuma_expand, same host", lambda _state: vnuma_expand(text, capabilities), None),
        "caps": ("  caps parse", lambda _state: _cold(lambda: parse_capabilities(capabilities)), None),
        "read": ("  domain read", lambda _state: read_domain(), None),
        "compute": (
            "  compute_layout",
            lambda fresh: compute_layout(fresh, spec, shape),
            lambda: parse_capabilities(capabilities),
        ),
        "plan": ("  plan: target models", plan, None),
        "write": ("  write + serialise", write, planned),
        "to_dict": ("Layout.to_dict", lambda _state: layout.to_dict(), None),
        "changes": ("change list", lambda _state: current.changes(target), None),
    }
