# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""I/O threads the collection does not own stay, on the real libvirtd (shut-off guests, a second or two).

A guest whose virtio-scsi controller uses I/O thread 3 takes ``iothreads: per_cell``: check mode and the real
run agree, libvirt's QEMU driver defines the result (before, it refused it: "controller iothread '3' not
defined in iothreadid"), VIR_DOMAIN_DEFINE_VALIDATE takes it, and a rerun changes nothing.  The collection's
threads are 1 and 2, the controller keeps 3 with its pin.  A second guest has its controller on thread 9
and an ``<iothreadsched>`` naming thread 9: ``per_disk`` writes ``<iothreadids>`` 1 and 9, thread 9 as written.
"""

from __future__ import annotations

from pathlib import Path

import libvirt
from vnuma_domain_support import domain_root, inactive_xml

from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module
from ansible_collections.vnuma.libvirt.tests.support.realguest import GuestFactory

CAPABILITIES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "capabilities"
# A host of the fixtures, not this one: nothing runs, and other tests' dedicated CPUs here do not matter.
SMT2 = {"host_capabilities": str(CAPABILITIES / "intel-2s-smt2.xml"), "capacity": "ignore"}


def devices(tmp_path: Path, thread: int) -> str:
    # The images are never opened: the guests stay shut off.
    return (
        f"<controller type='scsi' index='0' model='virtio-scsi'><driver iothread='{thread}'/></controller>"
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{tmp_path / 'sda.img'}'/>"
        "<target dev='sda' bus='scsi'/></disk>"
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{tmp_path / 'vda.img'}'/>"
        "<target dev='vda' bus='virtio'/></disk>"
    )


def threads_of(xml: str) -> tuple[str | None, list[str], dict[str, str | None], dict[str, str | None]]:
    """<iothreads>, the <iothreadids> ids, each <iothreadpin>'s cpuset and each I/O thread user's thread."""
    root = domain_root(xml)
    pins = {pin.get("iothread"): pin.get("cpuset") for pin in root.iterfind("cputune/iothreadpin")}
    vda = next(disk for disk in root.iterfind("devices/disk") if disk.find("target").get("dev") == "vda")
    users = {
        "controller": root.find("devices/controller[@type='scsi']/driver").get("iothread"),
        "vda": vda.find("driver").get("iothread"),
    }
    return (
        root.findtext("iothreads"),
        [thread.get("id") for thread in root.iterfind("iothreadids/iothread")],
        pins,
        users,
    )


def test_a_thread_a_virtio_scsi_controller_uses_stays_and_libvirt_defines_the_result(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    guest = make_guest(
        "vit-iothread-scsi",
        2,
        256,
        start=False,
        extra_xml="<iothreads>3</iothreads><cputune><iothreadpin iothread='3' cpuset='0'/></cputune>",
        devices_xml=devices(tmp_path, 3),
    )
    options = {"name": guest.name, **SMT2, "mode": "node", "nodeset": "0", "cells": 2, "iothreads": "per_cell"}
    before = inactive_xml(qemu_conn, guest.name)
    plan = run_module(options, check_mode=True, diff=True)
    assert plan["changed"] is True
    assert plan["diff"]["after"]["devices/disk[vda]/driver/iothread"] == 1, plan["diff"]["after"]
    assert inactive_xml(qemu_conn, guest.name) == before, "check mode wrote to the definition"

    applied = run_module(options)
    assert applied["changed"] is True, applied
    defined = inactive_xml(qemu_conn, guest.name)
    count, listed, pins, users = threads_of(defined)
    assert (count, listed) == ("3", []), defined
    assert pins["3"] == "0" and set(pins) == {"1", "2", "3"}, pins
    assert users == {"controller": "3", "vda": "1"}, defined
    qemu_conn.defineXMLFlags(defined, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    rerun = run_module(options)
    assert rerun["changed"] is False, rerun.get("changes")
    assert inactive_xml(qemu_conn, guest.name) == defined


def test_a_kept_thread_above_the_collections_is_listed_by_id(
    make_guest: GuestFactory, qemu_conn: libvirt.virConnect, tmp_path: Path
) -> None:
    guest = make_guest(
        "vit-iothread-nine",
        2,
        256,
        start=False,
        extra_xml=(
            "<iothreads>1</iothreads><iothreadids><iothread id='9' thread_pool_max='4'/></iothreadids>"
            "<cputune><iothreadsched iothreads='9' scheduler='batch'/></cputune>"
        ),
        devices_xml=devices(tmp_path, 9),
    )
    options = {"name": guest.name, **SMT2, "mode": "node", "nodeset": "0", "iothreads": "per_disk"}
    applied = run_module(options)
    assert applied["changed"] is True, applied
    defined = inactive_xml(qemu_conn, guest.name)
    count, listed, _pins, users = threads_of(defined)
    assert (count, sorted(listed)) == ("2", ["1", "9"]), defined
    assert users == {"controller": "9", "vda": "1"}, defined
    nine = domain_root(defined).find("iothreadids/iothread[@id='9']")
    assert nine is not None and nine.get("thread_pool_max") == "4", defined
    qemu_conn.defineXMLFlags(defined, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    assert run_module(options)["changed"] is False
