# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``<cputune>``: vCPU and emulator pins under a layout, the rest of ``<cputune>`` kept."""

from __future__ import annotations

from ansible_collections.vnuma.libvirt.tests.support.domain_cases import (
    PLAIN,
    make_layout,
    render,
)

CPUTUNE = """
  <cputune>
    <shares>2048</shares>
    <vcpupin vcpu='0' cpuset='0'/>
    <vcpupin vcpu='1' cpuset='1'/>
    <emulatorpin cpuset='0-1'/>
    <iothreadpin iothread='1' cpuset='2'/>
  </cputune>"""


def test_vcpupins_replace_old_ones_in_place_and_the_rest_stays() -> None:
    root, _unused, _unused = render(PLAIN.replace("<vcpu>8</vcpu>", "<vcpu>8</vcpu>" + CPUTUNE), make_layout())
    cputune = root.find("cputune")
    assert [child.tag for child in cputune] == ["shares"] + ["vcpupin"] * 8 + ["emulatorpin", "iothreadpin"]
    assert [pin.get("cpuset") for pin in cputune.iterfind("vcpupin")] == ["0-3"] * 4 + ["4-7"] * 4
    assert cputune.find("emulatorpin").get("cpuset") == "0-1"


def test_emulatorpin_is_replaced_when_the_layout_pins_it() -> None:
    root, _unused, _unused = render(
        PLAIN.replace("<vcpu>8</vcpu>", "<vcpu>8</vcpu>" + CPUTUNE), make_layout(emulator=(2, 3, 6))
    )
    assert root.find("cputune/emulatorpin").get("cpuset") == "2-3,6"


def test_pinning_none_removes_vcpupins_only() -> None:
    root, _unused, _unused = render(
        PLAIN.replace("<vcpu>8</vcpu>", "<vcpu>8</vcpu>" + CPUTUNE), make_layout(pins=False)
    )
    assert [child.tag for child in root.find("cputune")] == ["shares", "emulatorpin", "iothreadpin"]


def test_cputune_left_empty_is_removed() -> None:
    domain = PLAIN.replace(
        "<vcpu>8</vcpu>", "<vcpu>8</vcpu>\n  <cputune>\n    <vcpupin vcpu='0' cpuset='0'/>\n  </cputune>"
    )
    root, _unused, _unused = render(domain, make_layout(pins=False))
    assert root.find("cputune") is None
    root, _unused, _unused = render(PLAIN, make_layout(pins=False))
    assert root.find("cputune") is None
