# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PCI locality the guest can see: expander buses per cell, devices moved behind them, and nothing else.

The golden cases (``pci-q35``, ``pci-i440fx``) are in test_expand_golden.py, with libvirt's own parser.
Here: which devices move under each ``device_locality``, what stays (the user's controllers, addresses,
expander buses), a rerun after libvirt added controllers of its own, removal, and bad input refused with
nothing changed (the parsed domain, and through the module a test-driver guest's definition).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.pci_locality import (
    bus_numbers,
    format_device_cells,
    parse_device_cells,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain, plan_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml, to_text
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
RING = FIXTURES / "capabilities" / "seed-4node-ring.xml"
Q35 = (FIXTURES / "domains" / "pci-q35-in.xml").read_text(encoding="utf-8")
I440FX = (FIXTURES / "domains" / "pci-i440fx-in.xml").read_text(encoding="utf-8")
Q35_OUT = (FIXTURES / "domains" / "pci-q35-out.xml").read_text(encoding="utf-8")
SPEC_ELEMENT = "<vnuma mode='host' device_locality='all'><devices cells='vdb=1,ua-nic0=2,ua-rng1=3'/></vnuma>"


def _host() -> str:
    return RING.read_text(encoding="utf-8")


def _with_spec(text: str, element: str) -> str:
    assert SPEC_ELEMENT in text
    return text.replace(SPEC_ELEMENT, element)


def _addresses(text: str) -> dict[str, str | None]:
    """Each device's PCI address as bus:slot, by its target dev, MAC, or tag."""
    root = parse_xml(text, "domain")
    found: dict[str, str | None] = {}
    for element in root.iterfind("devices/*"):
        if element.tag in ("emulator", "controller"):
            continue
        target = element.find("target")
        mac = element.find("mac")
        key = (
            target.get("dev")
            if element.tag == "disk" and target is not None
            else mac.get("address")
            if mac is not None
            else element.tag
        )
        address = element.find("address")
        found[key] = None if address is None else f"{address.get('bus')}:{address.get('slot')}"
    return found


def _controllers(text: str) -> list[tuple[str, str, str | None, str | None]]:
    """The PCI controllers: (index, model, busNr, alias)."""
    root = parse_xml(text, "domain")
    result = []
    for element in root.iterfind("devices/controller[@type='pci']"):
        target = element.find("target")
        alias = element.find("alias")
        result.append(
            (
                element.get("index") or "",
                element.get("model") or "",
                None if target is None else target.get("busNr"),
                None if alias is None else alias.get("name"),
            )
        )
    return result


# ------------------------------------------------------------------------------------------ the pure rules


def test_overrides_read_as_text_or_mappings_into_one_canonical_text() -> None:
    text = parse_device_cells("vda=1, ua-nic0=0 52:54:00:AB:CD:EF=2")
    mappings = parse_device_cells(
        [{"target": "vda", "cell": 1}, {"alias": "ua-nic0", "cell": "0"}, {"mac": "52:54:00:ab:cd:ef", "cell": 2}]
    )
    assert text == mappings
    assert format_device_cells(text) == "vda=1,ua-nic0=0,52:54:00:ab:cd:ef=2"
    assert [item.key for item in text] == ["target", "alias", "mac"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("vda", "must read DEVICE=CELL"),
        ("vda=-1", "which is not a cell id"),
        ("vda=1,vda=2", "names device vda more than once"),
        ("VDA=1", "neither a user alias"),
        ([{"target": "vda"}], "must hold one of alias, target, mac and a cell"),
        ([{"alias": "nic0", "cell": 1}], "'nic0' is not a alias"),
        ([{"target": "vda", "alias": "ua-x", "cell": 1}], "must hold one of"),
        (5, "must be a list of devices and cells"),
    ],
)
def test_bad_overrides_are_refused(value: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_device_cells(value)


def test_bus_numbers_go_down_from_the_top_below_the_users_own() -> None:
    assert bus_numbers([(0, 2), (1, 3)], 256, 4) == {0: 254, 1: 251}
    assert bus_numbers([(0, 2)], 200, 0) == {0: 198}
    with pytest.raises(SpecError, match="need 8 PCI bus numbers, but only 7 are free"):
        bus_numbers([(cell, 2) for cell in range(4)], 8, 0)


def test_device_cells_without_device_locality_are_refused_not_dropped() -> None:
    # They were dropped in silence (the stored spec then had none): a <vnuma><devices cells='vda=1'/>, or
    # device_cells alone on a guest without device_locality, did nothing and said nothing.
    for spec in ({"device_locality": "none", "device_cells": "vda=1"}, {"device_cells": "vda=1"}):
        with pytest.raises(SpecError, match=r"device_cells 'vda=1' needs device_locality hostdev or all"):
            VnumaSpec.from_mapping(spec)
    assert VnumaSpec(device_locality="all", device_cells=[{"target": "vda", "cell": 1}]).device_cells == "vda=1"


# ------------------------------------------------------------------------------------------ rendering


def test_hostdev_mode_moves_only_the_named_device_and_keeps_every_other_address() -> None:
    given = _with_spec(Q35, "<vnuma mode='host' device_locality='hostdev'><devices cells='ua-rng1=3'/></vnuma>")
    result = expand_domain(given, _host())
    assert _addresses(result.xml) == {
        "vda": "0x01:0x00",
        "vdb": None,
        "sda": None,
        "52:54:00:12:34:56": "0x02:0x00",
        "rng": "0x04:0x00",
        "memballoon": None,
    }
    # The user's controllers first, as written; one expander bus for cell 3 with one root port.
    assert _controllers(result.xml) == [
        ("0", "pcie-root", None, None),
        ("1", "pcie-root-port", None, None),
        ("2", "pcie-root-port", None, None),
        ("3", "pcie-expander-bus", "254", "ua-vnuma-pxb3"),
        ("4", "pcie-root-port", None, "ua-vnuma-port3-0"),
    ]
    paths = {change.path: change.after for change in result.changes if change.path.startswith("devices/")}
    assert paths["devices/rng[ua-rng1]/address"] == "0000:04:00.0"
    assert paths["devices/controller[ua-vnuma-pxb3]/node"] == 3


def test_all_mode_puts_unnamed_devices_near_cell_0() -> None:
    result = expand_domain(_with_spec(Q35, "<vnuma mode='host' device_locality='all'/>"), _host())
    controllers = _controllers(result.xml)
    assert [entry[3] for entry in controllers if entry[3]] == [
        "ua-vnuma-pxb0",
        "ua-vnuma-port0-0",
        "ua-vnuma-port0-1",
        "ua-vnuma-port0-2",
        "ua-vnuma-port0-3",
    ]
    # One bus number for the expander bus and one per root port, from 255 down.
    assert ("3", "pcie-expander-bus", "251", "ua-vnuma-pxb0") in controllers
    addresses = _addresses(result.xml)
    assert [addresses[key] for key in ("vda", "vdb", "52:54:00:12:34:56", "rng")] == [
        "0x04:0x00",
        "0x05:0x00",
        "0x06:0x00",
        "0x07:0x00",
    ]
    assert addresses["sda"] is None and addresses["memballoon"] is None


def test_the_users_own_expander_bus_keeps_its_numbers_and_ours_go_below() -> None:
    users = (
        "<controller type='pci' index='3' model='pcie-expander-bus'><target busNr='200'><node>0</node></target>"
        "</controller>\n    <controller type='usb'"
    )
    given = Q35.replace("<controller type='usb'", users, 1)
    result = expand_domain(given, _host())
    controllers = _controllers(result.xml)
    assert ("3", "pcie-expander-bus", "200", None) in controllers
    ours = {alias: bus for _index, model, bus, alias in controllers if model == "pcie-expander-bus" and alias}
    # Four cells with one device each: two bus numbers per cell, from 199 down.
    assert ours == {"ua-vnuma-pxb0": "198", "ua-vnuma-pxb1": "196", "ua-vnuma-pxb2": "194", "ua-vnuma-pxb3": "192"}


def test_a_rerun_after_libvirt_added_its_own_root_port_changes_nothing() -> None:
    # libvirt adds a root port (after every index in use) for a device without an address.
    added = (
        "<controller type='pci' index='11' model='pcie-root-port'><model name='pcie-root-port'/>"
        "<target chassis='11' port='0x10'/>"
        "<address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></controller>\n"
        "    <controller type='usb'"
    )
    text = Q35_OUT.replace("<controller type='usb'", added, 1)
    again = expand_domain(text, _host())
    assert again.changes == []
    assert again.xml == text


def test_device_locality_none_removes_the_buses_and_puts_each_device_back() -> None:
    # The stored spec as a run with device_locality none leaves it: its overrides go with the locality
    # (_run/guest.py:spec_for), and a spec with both is refused (test_device_cells_without_device_locality_...).
    none = Q35_OUT.replace("device_locality='all'", "device_locality='none'").replace(
        "      <vnuma:devices cells='vdb=1,ua-nic0=2,ua-rng1=3'/>\n", ""
    )
    assert none != Q35_OUT and "vnuma:devices" not in none
    result = expand_domain(none, _host())
    assert [entry for entry in _controllers(result.xml) if entry[3]] == []
    # The user's controllers stay; each moved device goes back to its address from before (none: libvirt
    # places it again), and the record of those addresses goes.
    assert _controllers(result.xml) == _controllers(Q35)
    assert _addresses(result.xml) == _addresses(Q35)
    assert "vnuma-addresses" not in result.xml
    changes = {change.path: (change.before, change.after) for change in result.changes}
    assert changes["devices/disk[vda]/address"] == ("0000:04:00.0", "0000:01:00.0")
    assert changes["devices/rng[ua-rng1]/address"] == ("0000:0a:00.0", None)
    assert changes["devices/controller[ua-vnuma-pxb1]/busNr"] == (252, None)
    assert expand_domain(result.xml, _host()).changes == []


# A q35 guest as libvirt's QEMU driver keeps it: every device has an address, on root ports libvirt added.
FILLED = """<domain type='kvm'>
  <name>pci-filled</name>
  <memory unit='GiB'>4</memory>
  <vcpu>8</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
  </os>
  <devices>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='1' port='0x10'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' multifunction='on'/>
    </controller>
    <controller type='pci' index='2' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='2' port='0x11'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x1'/>
    </controller>
    <controller type='pci' index='3' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='3' port='0x12'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x2'/>
    </controller>
    <disk type='file' device='disk'>
      <source file='/var/lib/a.img'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </disk>
    <interface type='user'>
      <mac address='52:54:00:12:34:56'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </interface>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
      <alias name='ua-rng1'/>
      <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>
    </rng>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </memballoon>
  </devices>
</domain>
"""


def _devices_model(text: str) -> list[tuple[str, dict[str, str], dict[str, str] | None]]:
    """Every device of a domain as (tag, attributes, its guest address's attributes): a model, not text."""
    root = parse_xml(text, "domain")
    result = []
    for element in root.iterfind("devices/*"):
        address = element.find("address")
        result.append((element.tag, dict(element.attrib), None if address is None else dict(address.attrib)))
    return result


def _spec(text: str, element: str) -> str:
    return text.replace("<os>", f"{element}\n  <os>", 1)


def test_the_first_move_shows_each_address_libvirt_gave_and_the_new_one() -> None:
    result = expand_domain(_spec(FILLED, "<vnuma mode='host' device_locality='all'/>"), _host())
    moves = {change.path: (change.before, change.after) for change in result.changes if change.path.endswith("address")}
    assert moves == {
        "devices/disk[vda]/address": ("0000:01:00.0", "0000:05:00.0"),
        "devices/interface[52:54:00:12:34:56]/address": ("0000:02:00.0", "0000:06:00.0"),
        "devices/rng[ua-rng1]/address": ("0000:03:00.0", "0000:07:00.0"),
        # The expander bus's root ports, named by the collection's aliases.
        "devices/controller[ua-vnuma-port0-0]/address": (None, "0000:04:00.0"),
        "devices/controller[ua-vnuma-port0-1]/address": (None, "0000:04:01.0"),
        "devices/controller[ua-vnuma-port0-2]/address": (None, "0000:04:02.0"),
    }


@pytest.mark.parametrize("undo", ["none", "absent"])
def test_move_then_unmove_gives_back_the_definition_from_before(undo: str) -> None:
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.absent import render_absent

    moved = expand_domain(_spec(FILLED, "<vnuma mode='host' device_locality='all'/>"), _host()).xml
    assert _devices_model(moved) != _devices_model(FILLED)
    if undo == "none":
        result = expand_domain(moved.replace("device_locality='all'", "device_locality='none'"), _host())
        back = result.xml
        assert result.plan is not None and result.plan.target.pci.warnings == ()
        assert expand_domain(back, _host()).changes == []
    else:
        root = parse_xml(moved, "domain")
        assert render_absent(root, "pci-filled") == []
        back = to_text(root)
        assert parse_xml(back, "domain").find("metadata") is None
    # Every device, controller and address as before: multifunction='on' of root port 1 included.
    assert _devices_model(back) == _devices_model(FILLED)
    assert "vnuma-addresses" not in back


def test_a_device_no_longer_named_goes_back_and_the_others_stay() -> None:
    named = "<vnuma mode='host' device_locality='hostdev'><devices cells='ua-rng1=3,vda=1'/></vnuma>"
    moved = expand_domain(_spec(FILLED, named), _host()).xml
    assert _addresses(moved)["rng"] != "0x03:0x00" and _addresses(moved)["vda"] != "0x01:0x00"
    result = expand_domain(moved.replace("cells='ua-rng1=3,vda=1'", "cells='vda=1'"), _host())
    assert _addresses(result.xml)["rng"] == "0x03:0x00"
    assert _addresses(result.xml)["vda"] == _addresses(moved)["vda"]
    assert [entry[3] for entry in _controllers(result.xml) if entry[3]] == ["ua-vnuma-pxb1", "ua-vnuma-port1-0"]
    # vda's address from before is still kept, for when it goes back too.
    assert "device='devices/disk[vda]' bus='0x01'" in result.xml
    assert "devices/rng" not in result.xml.split("<vnuma-addresses:addresses", 1)[1].split("</metadata>")[0]


def test_an_address_taken_since_the_move_is_left_to_libvirt_with_a_warning() -> None:
    moved = expand_domain(_spec(FILLED, "<vnuma mode='host' device_locality='all'/>"), _host()).xml
    # A disk the user added since, at the rng's old address.
    added = (
        "<disk type='file' device='disk'><source file='/var/lib/d.img'/><target dev='vdd' bus='virtio'/>"
        "<address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></disk>\n    <rng"
    )
    result = expand_domain(
        moved.replace("device_locality='all'", "device_locality='none'").replace("<rng", added, 1), _host()
    )
    assert result.plan is not None
    assert result.plan.target.pci.warnings == (
        "devices/rng[ua-rng1] cannot go back to its address from before the move, 0000:03:00.0 "
        "(devices/disk[vdd] has it now): libvirt places it",
    )
    addresses = _addresses(result.xml)
    assert addresses["rng"] is None and addresses["vdd"] == "0x03:0x00" and addresses["vda"] == "0x01:0x00"


def test_the_collections_controllers_stay_while_something_else_uses_them() -> None:
    moved = expand_domain(_spec(FILLED, "<vnuma mode='host' device_locality='all'/>"), _host()).xml
    pxb = next(entry for entry in _controllers(moved) if entry[3] == "ua-vnuma-pxb0")
    # The user's own root port, plugged into the collection's expander bus since.
    users = (
        f"<controller type='pci' index='9' model='pcie-root-port'><address type='pci' domain='0x0000' "
        f"bus='{int(pxb[0]):#04x}' slot='0x07' function='0x0'/></controller>\n    <disk"
    )
    given = moved.replace("<disk", users, 1).replace("device_locality='all'", "device_locality='none'")
    result = expand_domain(given, _host())
    # The expander bus stays, with the user's port on it; the collection's own ports go.
    assert [entry[3] for entry in _controllers(result.xml) if entry[3]] == ["ua-vnuma-pxb0"]
    assert ("9", "pcie-root-port", None, None) in _controllers(result.xml)
    assert [_addresses(result.xml)[key] for key in ("vda", "52:54:00:12:34:56", "rng")] == [
        "0x01:0x00",
        "0x02:0x00",
        "0x03:0x00",
    ]
    assert expand_domain(result.xml, _host()).changes == []


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("text", "element", "message"),
    [
        (
            Q35,
            "<vnuma mode='host' device_locality='all'><devices cells='ua-rng1=4'/></vnuma>",
            "device_cells puts device ua-rng1 near cell 4, but the guest has 4 cells (0-3)",
        ),
        (
            Q35,
            "<vnuma mode='host' device_locality='all'><devices cells='vdz=1'/></vnuma>",
            "device_cells names target vdz, but the guest has no PCI device of that target "
            "(its movable PCI devices: vda, vdb, 52:54:00:12:34:56, ua-rng1)",
        ),
        (
            I440FX.replace(
                "<controller type='usb'",
                "<controller type='pci' index='3' model='pci-expander-bus'><target busNr='9'/></controller>\n"
                "    <controller type='usb'",
                1,
            ),
            SPEC_ELEMENT,
            "the expander buses of 4 cells need 8 PCI bus numbers, but only 6 are free (bus numbers 1-255: "
            "2 used behind the root bus, 9-255 by the domain's own expander buses); give fewer devices their own cell",
        ),
        (
            Q35.replace("pc-q35-7.2", "virt"),
            SPEC_ELEMENT,
            "device_locality needs a q35 or i440fx (pc) machine, the guest's is virt: "
            "its PCI expander buses are QEMU's pxb-pcie and pxb",
        ),
    ],
    ids=["cell-out-of-range", "override-naming-no-device", "i440fx-out-of-bus-numbers", "not-x86"],
)
def test_bad_input_is_refused_naming_the_guest_with_nothing_changed(text: str, element: str, message: str) -> None:
    given = _with_spec(text, element)
    root = parse_xml(given, "domain")
    spec_element = root.find("vnuma")
    assert spec_element is not None
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import spec_from_element

    spec = spec_from_element(spec_element)
    root.remove(spec_element)
    before = to_text(root)
    with pytest.raises(VnumaError) as caught:
        plan_domain(root, parse_capabilities(_host()), spec)
    name = parse_xml(text, "domain").findtext("name")
    assert str(caught.value) == f"guest {name}: {message}"
    assert to_text(root) == before


@pytest.fixture
def test_guest() -> Iterator[tuple[Any, str]]:
    """A q35 guest of the in-process test driver with a virtio disk and an aliased virtio-rng."""
    conn = libvirt.open("test:///default")
    name = f"h5-pci-{uuid.uuid4().hex[:8]}"
    xml = (
        f"<domain type='test'><name>{name}</name><memory unit='GiB'>4</memory><vcpu>8</vcpu>"
        "<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os><devices>"
        "<disk type='file' device='disk'><source file='/tmp/a.img'/><target dev='vda' bus='virtio'/></disk>"
        "<rng model='virtio'><backend model='random'>/dev/urandom</backend><alias name='ua-rng0'/></rng>"
        "</devices></domain>"
    )
    dom = conn.defineXML(xml)
    try:
        yield conn, name
    finally:
        dom.undefine()
        conn.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device_cells": [{"alias": "ua-rng0", "cell": 9}]}, "near cell 9, but the guest has 4 cells (0-3)"),
        ({"device_cells": [{"target": "vdq", "cell": 1}]}, "names target vdq, but the guest has no PCI device"),
        ({"device_cells": "nonsense"}, "must read DEVICE=CELL"),
    ],
)
def test_the_module_refuses_bad_overrides_and_leaves_the_definition(
    test_guest: tuple[Any, str], options: dict[str, Any], message: str
) -> None:
    conn, name = test_guest
    before = conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    result = fail_module(
        {
            "uri": "test:///default",
            "host_capabilities": str(RING),
            "name": name,
            "mode": "host",
            "device_locality": "all",
            **options,
        }
    )
    assert message in result["msg"], result["msg"]
    assert conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before


def test_state_absent_removes_the_buses_and_puts_the_moved_devices_back() -> None:
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.absent import render_absent

    root = parse_xml(Q35_OUT, "domain")
    assert render_absent(root, "pci-q35") == []
    text = to_text(root)
    assert _controllers(text) == _controllers(Q35)
    assert _addresses(text) == _addresses(Q35)


HOSTDEVS = """<domain type='kvm'>
  <name>pci-hostdev</name>
  <memory unit='GiB'>4</memory>
  <vcpu>8</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
  </os>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x41' slot='0x00' function='0x0'/></source>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </hostdev>
    <interface type='hostdev' managed='yes'>
      <mac address='52:54:00:00:00:02'/>
      <source><address type='pci' domain='0x0000' bus='0xc1' slot='0x00' function='0x0'/></source>
    </interface>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></source>
    </hostdev>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
"""


def test_passthrough_devices_go_near_the_cell_of_their_host_node_and_unknown_ones_stay() -> None:
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import PciAddress
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import render_plan

    root = parse_xml(HOSTDEVS, "domain")
    nodes = {PciAddress.parse("0000:41:00.0"): 2, PciAddress.parse("0000:c1:00.0"): 1}
    # 0000:03:00.0 reports no node; the virtio-rng is not moved under hostdev.
    plan = plan_domain(root, parse_capabilities(_host()), VnumaSpec(device_locality="hostdev"), host_nodes=nodes)
    assert plan.target.pci.warnings == (
        "PCI device 0000:03:00.0 (devices/hostdev[0000:03:00.0]) reports no host node: it stays where it is",
    )
    render_plan(root, plan)
    text = to_text(root)
    assert [entry[3] for entry in _controllers(text)] == [
        "ua-vnuma-pxb1",
        "ua-vnuma-port1-0",
        "ua-vnuma-pxb2",
        "ua-vnuma-port2-0",
    ]
    placed = dict(plan.target.pci.placements)
    # Index 1 is named only by the first device's own address, which the move replaces: nothing uses it
    # after the move, so ours start at 1 (from 2, libvirt would fill index 1 with a root port of its own).
    assert {path: str(slot) for path, slot in placed.items()} == {
        "devices/hostdev[0000:41:00.0]": "0000:04:00.0",
        "devices/interface[52:54:00:00:00:02]": "0000:02:00.0",
    }
    assert plan.target.pci.fillers == ()
    # The device with no known node and the rng keep what they had (none: libvirt places them).
    assert [element.find("address") for element in root.iterfind("devices/hostdev")][1] is None
    assert root.find("devices/rng/address") is None
    # A node no guest cell uses: the device stays, named in the warning.
    spec = VnumaSpec(mode="node", nodeset="0-1", device_locality="hostdev")
    again = plan_domain(parse_xml(HOSTDEVS, "domain"), parse_capabilities(_host()), spec, host_nodes=nodes)
    assert (
        "PCI device 0000:41:00.0 (devices/hostdev[0000:41:00.0]) is on host node 2, which no guest cell uses: "
        "it stays where it is"
    ) in again.target.pci.warnings


def test_a_run_places_each_passthrough_device_near_the_cell_of_its_host_node() -> None:
    # The amd-2s-nps4 fixture host with its node devices: 0000:41:00.0 on node 2, 0000:c1:00.0 on node 5,
    # 0000:e1:00.2 reporting -1.
    from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
    from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest
    from ansible_collections.vnuma.libvirt.tests.support.devices import hostdev, node_device_xmls, passthrough_domain
    from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import FakeHost
    from ansible_collections.vnuma.libvirt.tests.support.hosts import host

    devices = hostdev("0000:41:00.0", "ua-nic0") + hostdev("0000:c1:00.0", "ua-gpu0") + hostdev("0000:e1:00.2")
    hypervisor = FakeHost({"db": passthrough_domain("db", devices)})
    hypervisor.node_devices = node_device_xmls("amd-2s-nps4")
    request = GuestRequest("db", {"mode": "node", "nodeset": "2,5", "device_locality": "hostdev"})
    [result] = Converger(hypervisor, host("amd-2s-nps4")).converge([request])
    assert result.error is None and result.written == ["definition"]
    assert result.warnings == [
        "guest db: PCI device 0000:e1:00.2 (devices/hostdev[0000:e1:00.2]) reports no host node: it stays where it is"
    ]
    text = hypervisor.guests["db"].xml
    root = parse_xml(text, "db")
    nodes = {
        element.find("alias").get("name"): element.findtext("target/node")
        for element in root.iterfind("devices/controller[@model='pcie-expander-bus']")
    }
    # Cell 0 mirrors node 2, cell 1 node 5.
    assert nodes == {"ua-vnuma-pxb0": "0", "ua-vnuma-pxb1": "1"}
    ports = {
        element.find("alias").get("name"): int(element.get("index"), 0)
        for element in root.iterfind("devices/controller[@model='pcie-root-port']")
    }
    buses = [
        None if element.find("address") is None else int(element.find("address").get("bus"), 0)
        for element in root.iterfind("devices/hostdev")
    ]
    assert buses == [ports["ua-vnuma-port0-0"], ports["ua-vnuma-port1-0"], None]
    [again] = Converger(hypervisor, host("amd-2s-nps4")).converge([request])
    assert again.changed is False and again.written == []


def test_on_i440fx_a_move_and_its_undo_give_back_every_address() -> None:
    # Devices in slots of the pci-expander-bus, then back behind the user's pci-bridges.
    i440fx_in = _with_spec(I440FX, "<vnuma mode='host' device_locality='all'/>")
    moved = expand_domain(i440fx_in, _host()).xml
    assert [entry[3] for entry in _controllers(moved) if entry[3]] == ["ua-vnuma-pxb0"]
    back = expand_domain(moved.replace("device_locality='all'", "device_locality='none'"), _host()).xml
    assert _devices_model(back) == _devices_model(_with_spec(I440FX, ""))
    assert "vnuma-addresses" not in back


# ------------------------------------------------------------------------------ expander buses on cells that go

# The user's own expander bus on cell 3 with a root port and a virtio disk behind it, as libvirt keeps them.
USERS_PXB = """<controller type='pci' index='9' model='pcie-expander-bus'>
      <model name='pxb-pcie'/>
      <target busNr='200'><node>3</node></target>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/>
    </controller>
    <controller type='pci' index='10' model='pcie-root-port'>
      <address type='pci' domain='0x0000' bus='0x09' slot='0x00' function='0x0'/>
    </controller>
    <disk type='file' device='disk'>
      <source file='/var/lib/b.img'/>
      <target dev='vdb' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x0a' slot='0x00' function='0x0'/>
    </disk>
    <disk"""


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"iothreads": "per_cell"},
        {"iothreads": "per_disk"},
        {"device_locality": "all"},
        {"device_locality": "hostdev", "iothreads": "per_cell"},
    ],
    ids=["plain", "iothreads-per-cell", "iothreads-per-disk", "locality-all", "locality-hostdev"],
)
def test_a_users_expander_bus_on_a_cell_the_new_layout_lacks_is_refused_in_every_mode(options: dict[str, Any]) -> None:
    text = FILLED.replace("<disk", USERS_PXB, 1)
    root = parse_xml(text, "domain")
    before = to_text(root)
    with pytest.raises(SpecError) as caught:
        plan_domain(
            root, parse_capabilities(_host()), VnumaSpec.from_mapping({"mode": "node", "nodeset": "0-1", **options})
        )
    # libvirt refuses the define ("pcie-expander-bus with index 9 is configured for a NUMA node (3) not
    # present in the domain's <cpu><numa> array (2)"): planning says so first, naming the bus.
    assert str(caught.value) == (
        "guest pci-filled: <controller type='pci' index='9' model='pcie-expander-bus'> has <target><node>3</node>, "
        "a guest cell the new layout does not have: it has 2 cells (0-1); move the expander bus to one of them, "
        "remove its <node>, or choose at least 4 cells"
    )
    assert to_text(root) == before
    # With four cells the bus is the user's, left as written; under per_cell its disk gets cell 3's thread.
    attributes = "".join(f" {name}='{value}'" for name, value in options.items())
    result = expand_domain(_spec(text, f"<vnuma mode='host'{attributes}/>"), _host())
    assert ("9", "pcie-expander-bus", "200", None) in _controllers(result.xml)
    if options.get("iothreads") == "per_cell" and options.get("device_locality", "none") != "all":
        assert result.plan is not None and dict(result.plan.target.iothreads.disks)["vdb"] == 4


def test_the_collections_bus_that_stays_on_a_cell_the_new_layout_lacks_is_refused() -> None:
    near = "<vnuma mode='host' device_locality='all'><devices cells='ua-rng1=3'/></vnuma>"
    moved = expand_domain(_spec(FILLED, near), _host()).xml
    pxb = next(entry for entry in _controllers(moved) if entry[3] == "ua-vnuma-pxb3")
    # The user's own root port, plugged into the collection's expander bus of cell 3 since.
    users = (
        f"<controller type='pci' index='20' model='pcie-root-port'><address type='pci' domain='0x0000' "
        f"bus='{int(pxb[0]):#04x}' slot='0x07' function='0x0'/></controller>\n    <disk"
    )
    fewer = "<vnuma mode='node' device_locality='none'><partition nodeset='0-1'/></vnuma>"
    given = _spec(moved.replace("<disk", users, 1), fewer)
    with pytest.raises(SpecError) as caught:
        expand_domain(given, _host())
    assert str(caught.value) == (
        f"guest pci-filled: the expander bus ua-vnuma-pxb3 (controller index {pxb[0]}, <target><node>3</node>) "
        "stays, as a device the collection does not move sits behind it, but the new layout has 2 cells (0-1); "
        "move that device off the bus, or choose at least 4 cells"
    )


# ------------------------------------------------------------------------------------------ root bus slots


def _root_ports(slots: range | list[int]) -> str:
    """The user's empty root ports, one in function 0 of each slot of the root bus."""
    return "".join(
        f"<controller type='pci' index='{20 + number}' model='pcie-root-port'>"
        f"<address type='pci' domain='0x0000' bus='0x00' slot='{slot:#04x}' function='0x0'/></controller>\n    "
        for number, slot in enumerate(slots)
    )


THREE_CELLS = "<vnuma mode='host' device_locality='all'><devices cells='vda=0,52:54:00:12:34:56=1,ua-rng1=2'/></vnuma>"


def test_expander_buses_take_the_last_free_root_bus_slots_and_one_more_is_refused() -> None:
    # FILLED holds slot 2 (three root ports) and slot 5 (the balloon); 0x1f is the chipset's.  With the
    # user's root ports in slots 6-0x1e, three slots are left (1, 3, 4): three cells' buses fit.
    three_free = FILLED.replace("<disk", _root_ports(range(6, 0x1F)) + "<disk", 1)
    result = expand_domain(_spec(three_free, THREE_CELLS), _host())
    assert [entry[3] for entry in _controllers(result.xml) if entry[3] and "pxb" in entry[3]] == [
        "ua-vnuma-pxb0",
        "ua-vnuma-pxb1",
        "ua-vnuma-pxb2",
    ]
    two_free = three_free.replace("<disk", _root_ports([3]).replace("index='20'", "index='60'") + "<disk", 1)
    with pytest.raises(SpecError) as caught:
        expand_domain(_spec(two_free, THREE_CELLS), _host())
    assert str(caught.value) == (
        "guest pci-filled: the expander buses of 3 cells need 3 slots on the root bus (pcie-root), but only 2 are "
        "free (slots 1-31: 0x1f is the chipset's, 28 held by the guest's other devices and controllers); give "
        "fewer devices their own cell, or free root bus slots"
    )


def test_a_slot_the_collections_bus_already_has_counts_for_it_and_a_moved_devices_slot_is_free() -> None:
    # A rerun: the buses libvirt addressed keep their slots, so a full root bus refuses nothing new.
    three_free = FILLED.replace("<disk", _root_ports(range(6, 0x1F)) + "<disk", 1)
    moved = expand_domain(_spec(three_free, THREE_CELLS), _host()).xml
    addressed = moved
    for number, alias in enumerate(("ua-vnuma-pxb0", "ua-vnuma-pxb1", "ua-vnuma-pxb2")):
        slot = (1, 3, 4)[number]
        address = f"<address type='pci' domain='0x0000' bus='0x00' slot='{slot:#04x}' function='0x0'/>"
        addressed = addressed.replace(f"<alias name='{alias}'/>", f"<alias name='{alias}'/>{address}")
    assert addressed != moved
    assert expand_domain(addressed, _host()).changes == []


def test_a_device_that_moves_off_the_root_bus_leaves_its_slot_to_an_expander_bus() -> None:
    # Slots 2, 4-0x1e held; the rng sits directly in slot 3, so slot 1 is the only free one before the move.
    one_free = FILLED.replace("<disk", _root_ports([4, *range(6, 0x1F)]) + "<disk", 1).replace(
        "bus='0x03' slot='0x00' function='0x0'/>\n    </rng>", "bus='0x00' slot='0x03' function='0x0'/>\n    </rng>"
    )
    assert "bus='0x00' slot='0x03'" in one_free
    two_cells = "<vnuma mode='host' device_locality='all'><devices cells='ua-rng1=1'/></vnuma>"
    result = expand_domain(_spec(one_free, two_cells), _host())
    assert [entry[3] for entry in _controllers(result.xml) if entry[3] and "pxb" in entry[3]] == [
        "ua-vnuma-pxb0",
        "ua-vnuma-pxb1",
    ]
    assert _addresses(result.xml)["rng"] != "0x00:0x03"
    # Not moved (hostdev moves only the devices named), the rng keeps its slot: two buses, one free slot.
    stays = "<vnuma mode='host' device_locality='hostdev'><devices cells='vda=0,52:54:00:12:34:56=1'/></vnuma>"
    with pytest.raises(SpecError, match=r"need 2 slots on the root bus \(pcie-root\), but only 1 is free"):
        expand_domain(_spec(one_free, stays), _host())


def test_a_video_device_libvirt_has_not_placed_yet_takes_its_slot() -> None:
    three_free = FILLED.replace("<disk", _root_ports(range(6, 0x1F)) + "<disk", 1)
    with_video = three_free.replace("<memballoon", "<video><model type='vga'/></video>\n    <memballoon", 1)
    with pytest.raises(SpecError, match="need 3 slots on the root bus \\(pcie-root\\), but only 2 are free"):
        expand_domain(_spec(with_video, THREE_CELLS), _host())
    # Placed (slot 1, as libvirt puts it), the same video holds the same slot; without a model of its
    # own ('none') it holds none.
    none = three_free.replace("<memballoon", "<video><model type='none'/></video>\n    <memballoon", 1)
    assert expand_domain(_spec(none, THREE_CELLS), _host()).xml


def test_a_cell_in_non_ascii_digits_is_refused_by_the_expand_filter_as_a_spec_error() -> None:
    for digits in ("\u00b2", "\u0661"):
        given = _with_spec(Q35, f"<vnuma mode='host' device_locality='all'><devices cells='vda={digits}'/></vnuma>")
        with pytest.raises(
            SpecError, match=f"device_cells gives device vda the cell '{digits}', which is not a cell id"
        ):
            expand_domain(given, _host())
