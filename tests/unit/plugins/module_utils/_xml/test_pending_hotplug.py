# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a running guest lacks of its definition in hot-pluggable values: pending, by ``DomainNuma.waiting_for_boot``.

The next boot brings vCPUs online and DIMMs the guest may run without: both are pending (vnuma_info), and
vnuma_domain brings them in live when the guest keeps running.  A guest running more vCPUs than its definition
brings online is pending too (only a boot lowers them).  DIMMs it runs beyond its definition (attached live only)
are not: the definition's DIMMs are matched with the running guest's whatever aliases and slots libvirt gave them.
"""

from __future__ import annotations

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import ChangeKind
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import (
    MemoryDevice,
    attachable,
    dimms_not_running,
    memory_devices_of,
    not_among,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml

CELLS = (
    "<cpu><topology sockets='2' dies='1' cores='2' threads='1'/><numa>"
    "<cell id='0' cpus='0-1' memory='1048576' unit='KiB'/><cell id='1' cpus='2-3' memory='1048576' unit='KiB'/>"
    "</numa></cpu>"
)
TWO_ONLINE = (
    "<vcpu placement='static' current='2'>4</vcpu><vcpus><vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>"
    "<vcpu id='1' enabled='no' hotpluggable='yes'/><vcpu id='2' enabled='yes' hotpluggable='yes' order='2'/>"
    "<vcpu id='3' enabled='no' hotpluggable='yes'/></vcpus>"
)
ALL_ONLINE = "<vcpu placement='static'>4</vcpu>"
# What libvirt lists for the same four vCPUs once two were brought online live: hot-pluggable, all enabled.
ALL_ONLINE_LIVE = TWO_ONLINE.replace(" current='2'", "").replace("enabled='no'", "enabled='yes'")
# A DIMM as a definition holds it, and the same DIMM as the running guest lists it (libvirt's alias and slot).
DEFINED_DIMM = (
    "<memory model='dimm'><source><nodemask>0</nodemask></source><target><size unit='KiB'>131072</size>"
    "<node>1</node></target><address type='dimm' slot='0'/></memory>"
)
RUNNING_DIMM = (
    "<memory model='dimm'><source><nodemask>0</nodemask></source><target><size unit='KiB'>131072</size>"
    "<node>1</node></target><alias name='dimm0'/><address type='dimm' slot='0' base='0x100000000'/></memory>"
)
OTHER_DIMM = "<memory model='dimm'><target><size unit='MiB'>256</size><node>0</node></target></memory>"


def domain(vcpus: str = ALL_ONLINE, devices: str = "") -> DomainNuma:
    return DomainNuma.from_domain(
        parse_xml(
            "<domain type='qemu'><name>k</name><maxMemory slots='4' unit='KiB'>4194304</maxMemory>"
            f"<memory unit='KiB'>2097152</memory>{vcpus}{CELLS}<devices>{devices}</devices></domain>",
            "test",
            "domain",
        )
    )


def test_vcpus_the_definition_brings_online_and_the_guest_runs_without_are_pending() -> None:
    running, defined = domain(TWO_ONLINE), domain(ALL_ONLINE)
    waiting = running.waiting_for_boot(defined, range(4))
    assert "vcpu/current: 2 -> None" in [str(change) for change in waiting]
    assert {change.kind for change in waiting} == {ChangeKind.HOTPLUG}
    assert defined.boots_fewer_vcpus(running.online_vcpus()) is False


def test_vcpus_the_guest_runs_beyond_its_definition_are_pending() -> None:
    running, defined = domain(ALL_ONLINE), domain(TWO_ONLINE)
    assert "vcpu/current: None -> 2" in [str(change) for change in running.waiting_for_boot(defined, range(4))]
    assert defined.boots_fewer_vcpus(running.online_vcpus()) is True


def test_as_many_vcpus_online_as_defined_are_not_pending_whichever_are_hot_pluggable() -> None:
    assert domain(ALL_ONLINE_LIVE).waiting_for_boot(domain(ALL_ONLINE), range(4)) == []


def test_a_dimm_of_the_definition_the_guest_runs_without_is_pending() -> None:
    waiting = domain().waiting_for_boot(domain(devices=DEFINED_DIMM), range(4))
    assert [str(change) for change in waiting] == [
        "devices/memory[0]: None -> 'DIMM of 128 MiB on guest cell 1 (host nodes 0)'"
    ]
    assert waiting[0].kind is ChangeKind.HOTPLUG


def test_a_dimm_is_the_same_in_the_definition_and_the_running_guest_whatever_its_alias_and_slot() -> None:
    assert domain(devices=RUNNING_DIMM).waiting_for_boot(domain(devices=DEFINED_DIMM), range(4)) == []


def test_a_dimm_attached_live_only_is_not_pending() -> None:
    running = domain(devices=RUNNING_DIMM + OTHER_DIMM)
    assert running.waiting_for_boot(domain(devices=DEFINED_DIMM), range(4)) == []


def test_equal_dimms_are_counted() -> None:
    defined = domain(devices=DEFINED_DIMM * 2 + OTHER_DIMM)
    running = domain(devices=RUNNING_DIMM)
    missing = dimms_not_running(defined.memory_devices, running.memory_devices)
    assert [(device.index, device.node, device.size_kib) for device in missing] == [(1, 1, 131072), (2, 0, 262144)]
    assert not_among(running.memory_devices, defined.memory_devices) == ()


def test_only_dimms_wait_for_the_running_guest() -> None:
    nvdimm = MemoryDevice(index=0, model="nvdimm", size_kib=131072, node=0)
    assert not_among((nvdimm,), ()) == (nvdimm,)
    assert dimms_not_running((nvdimm,), ()) == ()


def test_a_definitions_dimm_is_attached_as_defined_without_its_slot_and_libvirts_alias() -> None:
    root = parse_xml(
        "<domain><devices><memory model='dimm' access='shared'><source><nodemask>0</nodemask></source>"
        "<target><size unit='KiB'>131072</size><node>1</node></target><alias name='dimm3'/>"
        "<address type='dimm' slot='3'/></memory><memory model='dimm'><target><size unit='KiB'>131072</size>"
        "<node>0</node></target><alias name='ua-mine'/></memory></devices></domain>",
        "test",
    )
    first, second = root.findall("devices/memory")
    assert attachable(first) == (
        '<memory model="dimm" access="shared"><source><nodemask>0</nodemask></source>'
        '<target><size unit="KiB">131072</size><node>1</node></target></memory>'
    )
    # A user alias names the device for its user: kept.
    assert '<alias name="ua-mine"/>' in attachable(second)
    assert memory_devices_of(root)[0].describe() == "DIMM of 128 MiB on guest cell 1 (host nodes 0)"
