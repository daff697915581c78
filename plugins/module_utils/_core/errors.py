# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The one error family raised below the Ansible glue.

Modules turn it into ``fail_json`` and filters into ``AnsibleFilterError``, once each.  Every message
names the value and the limit; when the guest is known it is named first ("guest db01: ...").
"""

from __future__ import annotations

__all__ = [
    "LibvirtDeadlineError",
    "LibvirtOperationError",
    "PlacementError",
    "SpecError",
    "TopologyError",
    "VnumaError",
    "XmlError",
]


class VnumaError(Exception):
    """Base of every error the collection raises on purpose."""

    def __init__(self, message: str, guest: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.guest = guest
        # More of the failed run's result for the module to hand back with the message (what was
        # written, per-guest results, a capacity report).
        self.details: dict[str, object] = {}

    def naming(self, guest: str | None) -> VnumaError:
        """Name ``guest`` in this error unless it already names one; return the error for ``raise``."""
        if self.guest is None:
            self.guest = guest
        return self

    def __str__(self) -> str:
        if self.guest:
            return f"guest {self.guest}: {self.message}"
        return self.message


class SpecError(VnumaError, ValueError):
    """The request is malformed: bad syntax, unknown choice, out-of-range number."""


class TopologyError(VnumaError, ValueError):
    """The host topology is malformed or contradicts itself."""


class PlacementError(VnumaError, ValueError):
    """The request is well formed but the host cannot hold it."""


class XmlError(VnumaError, ValueError):
    """An XML document is malformed, unsafe, or not of the expected kind."""


class LibvirtOperationError(VnumaError):
    """A libvirt call failed; libvirt's own message is kept."""


class LibvirtDeadlineError(LibvirtOperationError):
    """A libvirt call got no answer within call_timeout: it was sent, so it may still take effect."""
