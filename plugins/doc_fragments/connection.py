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
      - Seconds to keep retrying while libvirtd is not up yet, that is while its socket refuses connections (a
        daemon that is starting or restarting). From 0 to 3600.
      - Every other connection error fails at once with libvirt's message and the URI, for example a missing
        socket file, an unknown URI scheme, a missing driver or a refused authentication.
    type: float
    default: 60
  call_timeout:
    description:
      - Seconds any one libvirt call may take, opening the connection included. From 1 to 3600.
      - A call that gets no answer in time fails the run with an error naming the call and the URI, and the
        connection is given up. This bounds the wait on a stopped or hung libvirtd, or on a guest's stopped QEMU
        process that libvirtd waits on.
      - Connections to a daemon also use libvirt's keepalive, so a daemon that stops answering closes the
        connection within this time.
    type: float
    default: 120
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
