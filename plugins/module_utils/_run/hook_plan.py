# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""What the migration hook does with a guest that arrives: plan its host side for this host and rewrite it.

Called by ``_run/hook.py`` inside libvirtd's hook call, so it imports only the pure core, the XML layer
and the topology cache, never ``_libvirt.py`` (``_run/hook_install.py`` refuses to install a hook that
would).  The planner and the rewrite are ``vnuma_migrate``'s own (``_core/move_planner.py:plan_destination``,
``_xml/migration.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import check_capacity
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_capacity import check_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_planner import plan_destination
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import GuestBinding, place_guests
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.topology_cache import read_cache
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import binding_from_domain, dedicated_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.migration import (
    moving_guest_from_xml,
    rewrite_host_bindings,
    status_domain,
    stored_spec_of_move,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml

__all__ = ["others_running", "rebind_for_host"]


def others_running(topology: HostTopology, running: Sequence[tuple[str, str]]) -> list[GuestBinding]:
    """The other running guests where their live XML puts them.

    ``running``: (name, libvirtd status file text: ``<domstatus>`` around the live ``<domain>``).  A
    guest whose XML cannot be read is left out: it may be stopping, and it must not block a move.
    """
    bindings: list[GuestBinding] = []
    for name, text in running:
        try:
            domain = status_domain(text, f"the status of running guest {name}")
            if domain is None:
                continue
            held = dedicated_cpus(topology, domain, name)
            bindings.append(
                binding_from_domain(DomainNuma.from_domain(domain), name, running=True, dedicated_cpus=held)
            )
        except VnumaError:
            continue
    return bindings


def rebind_for_host(domain_xml: str, cache_path: str, running: Sequence[tuple[str, str]]) -> str | None:
    """``domain_xml`` with its host-side bindings planned for this host; None for a guest without a stored spec.

    The plan is checked as ``vnuma_migrate`` checks it (``_core/move_capacity.py:check_destination``): the
    guest's cells and memory devices beside the running guests, per node.  Raises the collection's error
    family when the guest cannot fit (naming the guest, cell and limit) or the topology cache is missing.
    """
    root = parse_xml(domain_xml, "the domain XML libvirt gave the hook", root_tag="domain")
    if stored_spec_of_move(root) is None:
        return None
    topology = read_cache(cache_path)
    guest = moving_guest_from_xml(domain_xml)
    others = others_running(topology, running)
    plan = plan_destination(guest, topology, check_capacity(topology, place_guests(topology, others)), others=others)
    check_destination(topology, others, plan)
    return rewrite_host_bindings(domain_xml, plan)
