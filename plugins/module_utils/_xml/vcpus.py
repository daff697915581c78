# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""``<vcpu>`` and ``<vcpus>``: how many vCPUs, and each one's boot state.

https://libvirt.org/formatdomain.html#cpu-allocation
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind, Items
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel, make_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import (
    attr_cpuset,
    attr_int,
    format_ids,
    require_tag,
    required_int,
    text_int,
    yes_no,
    yes_no_text,
)

__all__ = ["Vcpu", "VcpuState", "Vcpus"]


@dataclass(frozen=True)
class Vcpu(ElementModel):
    """``<vcpu placement cpuset current>N</vcpu>``: N is the maximum, ``current`` those online at boot.

    ``current`` is None when every vCPU is online (libvirt writes the attribute only then); an
    absent ``placement`` is libvirt's ``static``.
    """

    TAG: ClassVar[str] = "vcpu"
    KIND: ClassVar[ChangeKind] = ChangeKind.NEEDS_BOOT
    # vCPUs online at boot: brought online live when vCPUs are being added.
    ITEM_KINDS: ClassVar[dict[str, ChangeKind]] = {"vcpu/current": ChangeKind.HOTPLUG}

    count: int
    placement: str = "static"
    cpuset: tuple[int, ...] | None = None
    current: int | None = None

    @classmethod
    def from_element(cls, element: etree._Element) -> Vcpu:
        require_tag(element, cls.TAG)
        count = text_int(element, "<vcpu>")
        current = attr_int(element, "current", "<vcpu>")
        return cls(
            count=count,
            placement=(element.get("placement") or "static").strip(),
            cpuset=attr_cpuset(element, "cpuset", "<vcpu>"),
            current=None if current == count else current,
        )

    def markup(self) -> str:
        attributes = (("placement", self.placement), ("cpuset", format_ids(self.cpuset)), ("current", self.current))
        return make_markup(self.TAG, attributes, str(self.count))

    def update(self, element: etree._Element) -> None:
        """Write this model into an existing ``<vcpu>``, keeping its other attributes and their order."""
        self.overwrite(element, ("placement", "cpuset", "current"))

    def items(self) -> Items:
        return [
            ("vcpu", self.count),
            ("vcpu/placement", self.placement),
            ("vcpu/cpuset", format_ids(self.cpuset)),
            ("vcpu/current", self.current),
        ]


@dataclass(frozen=True)
class VcpuState(ElementModel):
    """``<vcpus><vcpu id enabled hotpluggable order/>``: one vCPU's boot state."""

    TAG: ClassVar[str] = "vcpu"

    id: int
    enabled: bool
    hotpluggable: bool | None = None
    order: int | None = None

    @classmethod
    def from_element(cls, element: etree._Element) -> VcpuState:
        require_tag(element, cls.TAG)
        what = "<vcpus><vcpu>"
        enabled = yes_no(element, "enabled", what)
        if enabled is None:
            raise XmlError(f"{what}: attribute enabled is missing")
        return cls(
            id=required_int(element, "id", what),
            enabled=enabled,
            hotpluggable=yes_no(element, "hotpluggable", what),
            order=attr_int(element, "order", what),
        )

    def markup(self) -> str:
        hotpluggable = None if self.hotpluggable is None else yes_no_text(self.hotpluggable)
        return make_markup(
            self.TAG,
            (
                ("id", self.id),
                ("enabled", yes_no_text(self.enabled)),
                ("hotpluggable", hotpluggable),
                ("order", self.order),
            ),
        )

    def items(self) -> Items:
        prefix = f"vcpus/vcpu[{self.id}]"
        return [
            (f"{prefix}/enabled", yes_no_text(self.enabled)),
            (f"{prefix}/hotpluggable", None if self.hotpluggable is None else yes_no_text(self.hotpluggable)),
            (f"{prefix}/order", self.order),
        ]


@dataclass(frozen=True)
class Vcpus(ElementModel):
    """``<vcpus>``: the state of every vCPU, by id."""

    TAG: ClassVar[str] = "vcpus"
    KIND: ClassVar[ChangeKind] = ChangeKind.HOTPLUG

    vcpus: tuple[VcpuState, ...]

    @classmethod
    def from_element(cls, element: etree._Element) -> Vcpus:
        require_tag(element, cls.TAG)
        states = [VcpuState.from_element(child) for child in element.iterchildren(VcpuState.TAG)]
        return cls(tuple(sorted(states, key=lambda state: state.id)))

    def markup(self) -> str:
        return make_markup(self.TAG, (), "".join([state.markup() for state in self.vcpus]))

    def items(self) -> Items:
        return [item for state in self.vcpus for item in state.items()]
