# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""What a domain's ``<os>`` and ``<features>`` allow a running guest: DIMM hot-plug needs ACPI on x86.

https://libvirt.org/formatdomain.html#hypervisor-features
"""

from __future__ import annotations

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree

__all__ = ["dimms_need_acpi"]

# The architectures whose DIMM hot-plug goes through ACPI; None: an <os><type> without arch, which libvirt
# gives the host's (the collection's hosts are x86).
_ACPI_HOTPLUG_ARCHES = (None, "x86_64", "i686")


def dimms_need_acpi(root: etree._Element) -> bool:
    """Whether the domain ``root`` cannot take a DIMM live for want of ACPI.

    QEMU's device_add of a pc-dimm on x86 needs the guest's ACPI memory hotplug controller ("memory hotplug
    is not enabled: ... ACPI"), which libvirt only gives a guest with ``<features><acpi/>``.
    """
    os_type = root.find("os/type")
    arch = os_type.get("arch") if os_type is not None else None
    return arch in _ACPI_HOTPLUG_ARCHES and root.find("features/acpi") is None
