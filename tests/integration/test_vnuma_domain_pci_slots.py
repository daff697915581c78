# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PCI locality's limits on the real libvirtd, refused when planned rather than by libvirt's define.

Shut-off guests only, nothing boots (a few seconds).  Root bus slots: a q35 and an i440fx guest with one
virtio disk per cell, at the largest cell count libvirt's QEMU driver defines and at one more.  The first is
written (VIR_DOMAIN_DEFINE_VALIDATE takes it, a rerun changes nothing); the second is refused by
vnuma_domain, in check mode and in a real run, with the definition unchanged; and with that check taken
out, libvirt itself refuses it ("a PCI slot is needed to connect a PCI controller model='pcie-expander-bus',
but none is available"): the count is libvirt's, exactly.  A user's expander bus on a guest cell the new
layout does not have is refused the same way, instead of libvirt's "configured for a NUMA node (3) not
present in the domain's <cpu><numa> array (2)".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
import pytest
from vnuma_domain_support import domain_root, inactive_xml

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import pci_locality
from ansible_collections.vnuma.libvirt.tests.support.module_run import ModuleExit, fail_module, run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import GuestFactory

CAPABILITIES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "capabilities"
# Two host nodes with 16 CPUs each: the guest's cells split them; nothing runs, so their size does not matter.
SMT2 = str(CAPABILITIES / "intel-2s-smt2.xml")

# The largest count of cells with a device each that libvirt 9.0 defines for the harness's guest (no USB,
# no balloon, one virtio disk per cell): q35 keeps slot 0x1f and four slots of root ports for the disks;
# i440fx keeps slot 1, and one free slot for a PCI bridge while it places the expander buses.
MOST = {"q35": 26, "pc": 29}


def targets(count: int) -> list[str]:
    return [f"vd{chr(97 + number)}" if number < 26 else f"vda{chr(97 + number - 26)}" for number in range(count)]


def disks_xml(tmp_path: Path, count: int) -> str:
    # The images are never opened: the guests stay shut off.
    return "".join(
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{tmp_path / target}.img'/>"
        f"<target dev='{target}' bus='virtio'/></disk>"
        for target in targets(count)
    )


def options(name: str, count: int) -> dict[str, Any]:
    return {
        "name": name,
        "host_capabilities": SMT2,
        "capacity": "ignore",
        "mode": "node",
        "cells": count,
        "device_locality": "all",
        "device_cells": ",".join(f"{target}={cell}" for cell, target in enumerate(targets(count))),
    }


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_expander_buses_fill_the_root_bus_and_one_more_is_refused_before_libvirt(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path, machine: str
) -> None:
    most = MOST[machine]
    fits = make_guest(
        f"vit-slots-{machine}", most, 16 * most, machine=machine, start=False, devices_xml=disks_xml(tmp_path, most)
    )
    applied = run_module(options(fits.name, most))
    assert applied["changed"] is True, applied
    defined = inactive_xml(qemu_conn, fits.name)
    expanders = [
        element
        for element in domain_root(defined).iterfind("devices/controller[@type='pci']")
        if element.get("model", "").endswith("expander-bus")
    ]
    assert len(expanders) == most, defined
    qemu_conn.defineXMLFlags(defined, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    assert run_module(options(fits.name, most))["changed"] is False

    over = make_guest(
        f"vit-slots-{machine}-over",
        most + 1,
        16 * (most + 1),
        machine=machine,
        start=False,
        devices_xml=disks_xml(tmp_path, most + 1),
    )
    before = inactive_xml(qemu_conn, over.name)
    for check_mode in (True, False):
        refused = fail_module(options(over.name, most + 1), check_mode=check_mode)
        assert f"the expander buses of {most + 1} cells need " in refused["msg"], refused["msg"]
        assert "slots on the root bus" in refused["msg"], refused["msg"]
        assert refused["msg"].startswith(f"guest {over.name}: "), refused["msg"]
        assert inactive_xml(qemu_conn, over.name) == before
    # Without the check, libvirt refuses the same definition: the collection's count is libvirt's.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pci_locality, "check_root_slots", lambda *_args: None)
        with pytest.raises(ModuleExit) as caught:
            run_module(options(over.name, most + 1))
    assert "a PCI slot is needed to connect a PCI controller" in caught.value.result["msg"], caught.value.result
    assert inactive_xml(qemu_conn, over.name) == before


def test_a_users_expander_bus_on_a_cell_that_goes_is_refused_when_planned(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    four_cells = (
        "<cpu mode='maximum' check='none'><numa>"
        + "".join(f"<cell id='{cell}' cpus='{cell}' memory='64' unit='MiB'/>" for cell in range(4))
        + "</numa></cpu>"
    )
    guest = make_guest(
        "vit-users-pxb",
        4,
        256,
        start=False,
        cpu_xml=four_cells,
        devices_xml=(
            "<controller type='pci' index='1' model='pcie-expander-bus'><target busNr='200'><node>3</node></target>"
            "</controller><controller type='pci' index='2' model='pcie-root-port'>"
            "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></controller>"
            f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{tmp_path / 'vdb.img'}'/>"
            "<target dev='vdb' bus='virtio'/>"
            "<address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></disk>"
        ),
    )
    before = inactive_xml(qemu_conn, guest.name)
    for extra in ({}, {"iothreads": "per_cell"}):
        for check_mode in (True, False):
            refused = fail_module(
                {"name": guest.name, "host_capabilities": SMT2, "capacity": "ignore", "mode": "host", **extra},
                check_mode=check_mode,
            )
            assert refused["msg"] == (
                f"guest {guest.name}: <controller type='pci' index='1' model='pcie-expander-bus'> has "
                "<target><node>3</node>, a guest cell the new layout does not have: it has 2 cells (0-1); move the "
                "expander bus to one of them, remove its <node>, or choose at least 4 cells"
            ), refused["msg"]
    assert inactive_xml(qemu_conn, guest.name) == before
