# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The libvirt connection shared by the modules.  Keep the requirements in sync with
    # plugins/module_utils/_libvirt.py and requirements.txt.
    DOCUMENTATION = r"""
options:
  uri:
    description:
      - The libvirt connection URI of the hypervisor.
      - V(test:///default) is libvirt's in-process test driver; it needs no daemon and is handy for trying
        things out.
    type: str
    default: qemu:///system
  connect_timeout:
    description:
      - Seconds to keep retrying while a freshly started libvirtd is still probing QEMU and refuses
        connections.
    type: float
    default: 60
  host_capabilities:
    description:
      - Host capabilities XML to plan against instead of the connection's own, as XML text or as the path of a
        file on the managed node.
      - Use it to plan a layout for another host, or with the test driver, whose own host is fixed.
    type: str
requirements:
  - python >= 3.11
  - libvirt-python
  - lxml
"""
