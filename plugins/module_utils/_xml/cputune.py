# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""``<cputune>`` pins: where each vCPU and QEMU's own threads run.

https://libvirt.org/formatdomain.html#cpu-tuning
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel, make_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_cpuset,
    pin_text,
    require_tag,
    required_int,
)

__all__ = ["Emulatorpin", "Vcpupin", "pin_texts"]


@dataclass(frozen=True)
class Vcpupin(ElementModel):
    """``<cputune><vcpupin vcpu cpuset/>``."""

    TAG: ClassVar[str] = "vcpupin"
    KIND: ClassVar[ChangeKind] = ChangeKind.LIVE

    vcpu: int
    cpuset: tuple[int, ...]

    @classmethod
    def from_element(cls, element: etree._Element) -> Vcpupin:
        require_tag(element, cls.TAG)
        vcpu = required_int(element, "vcpu", "<cputune><vcpupin>")
        cpuset = attr_cpuset(element, "cpuset", f"<cputune><vcpupin vcpu='{vcpu}'>")
        if cpuset is None:
            raise XmlError(f"<cputune><vcpupin vcpu='{vcpu}'>: attribute cpuset is missing")
        return cls(vcpu=vcpu, cpuset=cpuset)

    def markup(self, cpuset_text: str | None = None) -> str:
        """The pin as text; ``cpuset_text`` is its cpuset's text when the caller has it already."""
        if cpuset_text is None:
            cpuset_text = pin_text(self.cpuset)
        if isinstance(self.vcpu, int):
            # Written out rather than through make_markup: there is one per vCPU.  A cpuset text is
            # digits, ',' and '-', nothing to escape.
            return f'<vcpupin vcpu="{self.vcpu}" cpuset="{cpuset_text}"/>'
        # Only a model built from other values than the typed ints (not by this collection) gets here.
        return make_markup(self.TAG, (("vcpu", self.vcpu), ("cpuset", cpuset_text)))  # type: ignore[unreachable]

    def items(self, cpuset_text: str | None = None) -> Items:
        return [(f"cputune/vcpupin[{self.vcpu}]", pin_text(self.cpuset) if cpuset_text is None else cpuset_text)]


def pin_texts(pins: Sequence[Vcpupin]) -> list[str]:
    """``pin_text`` of each pin's cpuset.

    The pins of one cell share one cpuset tuple (``DomainNuma.from_layout`` makes them so): a run of
    pins with the same tuple takes its text once, instead of hashing the tuple again for each vCPU.
    """
    texts: list[str] = []
    last: tuple[int, ...] | None = None
    text = ""
    for pin in pins:
        if pin.cpuset is not last:
            last = pin.cpuset
            text = pin_text(last)
        texts.append(text)
    return texts


@dataclass(frozen=True)
class Emulatorpin(ElementModel):
    """``<cputune><emulatorpin cpuset/>``: where QEMU's own threads run."""

    TAG: ClassVar[str] = "emulatorpin"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT

    cpuset: tuple[int, ...]

    @classmethod
    def from_element(cls, element: etree._Element) -> Emulatorpin:
        require_tag(element, cls.TAG)
        cpuset = attr_cpuset(element, "cpuset", "<cputune><emulatorpin>")
        if cpuset is None:
            raise XmlError("<cputune><emulatorpin>: attribute cpuset is missing")
        return cls(cpuset)

    def markup(self) -> str:
        return make_markup(self.TAG, (("cpuset", format_cpuset(self.cpuset)),))

    def items(self) -> Items:
        return [("cputune/emulatorpin", format_cpuset(self.cpuset))]
