# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The restart rule (issue 9): every owned element's change kind, set by its model, and what it means."""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import Change, ChangeKind
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml

BASE = {
    "memory": "<memory unit='KiB'>4194304</memory>",
    "currentMemory": "<currentMemory unit='KiB'>4194304</currentMemory>",
    "maxMemory": "",
    "hugepages": "",
    "vcpu": "<vcpu placement='static' current='2'>4</vcpu>",
    "vcpus": (
        "<vcpus><vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>"
        "<vcpu id='1' enabled='yes' hotpluggable='yes' order='2'/>"
        "<vcpu id='2' enabled='no' hotpluggable='yes'/><vcpu id='3' enabled='no' hotpluggable='yes'/></vcpus>"
    ),
    "cputune": "<cputune><vcpupin vcpu='0' cpuset='0-1'/><emulatorpin cpuset='0'/></cputune>",
    "numatune": "<numatune><memory mode='strict' nodeset='0'/></numatune>",
    "cpu": (
        "<cpu><topology sockets='1' dies='1' cores='4' threads='1'/><numa>"
        "<cell id='0' cpus='0-3' memory='4194304' unit='KiB'/></numa></cpu>"
    ),
    "iothreads": "",
    "devices": "",
}


def domain(**parts: str) -> DomainNuma:
    text = "".join({**BASE, **parts}.values())
    return DomainNuma.from_domain(parse_xml(f"<domain type='kvm'><name>k</name>{text}</domain>", "test", "domain"))


# One changed owned element each: the kind every listed change must have.
CASES = [
    pytest.param({"vcpu": "<vcpu placement='static' current='2'>8</vcpu>"}, ChangeKind.NEEDS_BOOT, id="vcpu-count"),
    pytest.param({"vcpu": "<vcpu placement='static' current='3'>4</vcpu>"}, ChangeKind.HOTPLUG, id="vcpu-current"),
    pytest.param(
        {"vcpu": "<vcpu placement='static' cpuset='0-1' current='2'>4</vcpu>"},
        ChangeKind.NEEDS_BOOT,
        id="vcpu-cpuset",
    ),
    pytest.param(
        {"vcpus": BASE["vcpus"].replace("id='2' enabled='no'", "id='2' enabled='yes'")},
        ChangeKind.HOTPLUG,
        id="vcpus-enabled",
    ),
    pytest.param(
        {"cpu": BASE["cpu"].replace("cores='4' threads='1'", "cores='2' threads='2'")},
        ChangeKind.NEEDS_BOOT,
        id="cpu-topology",
    ),
    pytest.param({"cpu": BASE["cpu"].replace("cpus='0-3'", "cpus='0-2'")}, ChangeKind.NEEDS_BOOT, id="numa-cell"),
    pytest.param(
        {"numatune": "<numatune><memory mode='preferred' nodeset='0'/></numatune>"},
        ChangeKind.NEEDS_BOOT,
        id="numatune",
    ),
    pytest.param(
        {"cputune": "<cputune><vcpupin vcpu='0' cpuset='2-3'/><emulatorpin cpuset='0'/></cputune>"},
        ChangeKind.LIVE,
        id="vcpupin",
    ),
    pytest.param(
        {"cputune": "<cputune><vcpupin vcpu='0' cpuset='0-1'/><emulatorpin cpuset='1'/></cputune>"},
        ChangeKind.NEEDS_BOOT,
        id="emulatorpin",
    ),
    pytest.param(
        {"maxMemory": "<maxMemory slots='16' unit='KiB'>8388608</maxMemory>"}, ChangeKind.NEEDS_BOOT, id="maxMemory"
    ),
    pytest.param(
        {"hugepages": "<memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>"},
        ChangeKind.NEEDS_BOOT,
        id="hugepages",
    ),
    pytest.param({"iothreads": "<iothreads>2</iothreads>"}, ChangeKind.NEEDS_BOOT, id="iothreads"),
    pytest.param(
        {"cputune": BASE["cputune"].replace("</cputune>", "<iothreadpin iothread='1' cpuset='1'/></cputune>")},
        ChangeKind.LIVE,
        id="iothreadpin",
    ),
    pytest.param(
        {
            "devices": (
                "<devices><disk type='file'><driver iothread='1'/><target dev='vda' bus='virtio'/></disk></devices>"
            )
        },
        ChangeKind.NEEDS_BOOT,
        id="disk-iothread",
    ),
    pytest.param({"memory": "<memory unit='KiB'>5242880</memory>"}, ChangeKind.RUNTIME, id="memory"),
    pytest.param(
        {"currentMemory": "<currentMemory unit='KiB'>2097152</currentMemory>"}, ChangeKind.RUNTIME, id="currentMemory"
    ),
]


@pytest.mark.parametrize(("parts", "kind"), CASES)
def test_each_owned_element_has_its_change_kind(parts: dict[str, str], kind: ChangeKind) -> None:
    changes = domain().changes(domain(**parts))
    assert changes
    assert {change.kind for change in changes} == {kind}, [str(change) for change in changes]


def test_a_new_vcpu_count_with_current_mixes_kinds() -> None:
    changes = domain().changes(domain(vcpu="<vcpu placement='static' current='3'>8</vcpu>"))
    assert {
        change.path: change.kind for change in changes if change.path.startswith("vcpu/") or change.path == "vcpu"
    } == {
        "vcpu": ChangeKind.NEEDS_BOOT,
        "vcpu/current": ChangeKind.HOTPLUG,
    }


@pytest.mark.parametrize(
    ("kind", "hotplugging", "waits", "pending"),
    [
        (ChangeKind.LIVE, False, False, True),
        (ChangeKind.LIVE, True, False, True),
        (ChangeKind.HOTPLUG, False, True, False),
        (ChangeKind.HOTPLUG, True, False, False),
        (ChangeKind.RUNTIME, False, False, False),
        (ChangeKind.RUNTIME, True, False, False),
        (ChangeKind.NEEDS_BOOT, False, True, True),
        (ChangeKind.NEEDS_BOOT, True, True, True),
    ],
)
def test_what_each_kind_means(kind: ChangeKind, hotplugging: bool, waits: bool, pending: bool) -> None:
    assert kind.waits_for_boot(hotplugging) is waits
    assert kind.pending_in_live() is pending


def test_vcpu_differences_are_pending_only_when_fewer_are_defined_than_run() -> None:
    assert ChangeKind.HOTPLUG.pending_in_live(vcpus_lowered=True) is True
    assert ChangeKind.RUNTIME.pending_in_live(vcpus_lowered=True) is False
    assert ChangeKind.NEEDS_BOOT.pending_in_live(vcpus_lowered=True) is True


def test_kind_is_not_part_of_equality() -> None:
    assert Change("vcpu", 1, 2, ChangeKind.LIVE) == Change("vcpu", 1, 2)
    assert Change("vcpu", 1, 2).kind is ChangeKind.NEEDS_BOOT


# -- a running guest against its definition: a pin to the default affinity is no pin ---------------------

NO_PINS = "<cputune><emulatorpin cpuset='0'/></cputune>"
ALL_PINNED = (
    "<cputune><vcpupin vcpu='0' cpuset='0-3'/><vcpupin vcpu='1' cpuset='0-3'/><emulatorpin cpuset='0'/>"
    "<iothreadpin iothread='1' cpuset='0-3'/></cputune>"
)
IOTHREAD = "<iothreads>1</iothreads>"


def test_the_default_affinity_is_the_vcpu_cpuset_else_every_host_cpu() -> None:
    assert domain().default_affinity({3, 1, 0, 2}) == (0, 1, 2, 3)
    with_cpuset = domain(vcpu="<vcpu placement='static' cpuset='2-3' current='2'>4</vcpu>")
    assert with_cpuset.default_affinity(range(8)) == (2, 3)


def test_pins_to_every_host_cpu_are_not_pending() -> None:
    """What libvirt lists after pinning: none lifted a running guest's pins live (every host CPU)."""
    running = domain(cputune=ALL_PINNED, iothreads=IOTHREAD)
    defined = domain(cputune=NO_PINS, iothreads=IOTHREAD)
    assert running.waiting_for_boot(defined, range(4)) == []
    # Either way round: a definition that pins to the default affinity confines nothing either.
    assert defined.waiting_for_boot(running, range(4)) == []
    # On a host with more CPUs they confine the guest: a live difference, pending.
    assert running.waiting_for_boot(defined, range(8)) == [
        Change("cputune/vcpupin[0]", "0-3", None),
        Change("cputune/vcpupin[1]", "0-3", None),
        Change("cputune/iothreadpin[1]", "0-3", None),
    ]
    assert {change.kind for change in running.waiting_for_boot(defined, range(8))} == {ChangeKind.LIVE}


def test_with_a_vcpu_cpuset_a_pin_to_it_is_no_pin() -> None:
    vcpu = "<vcpu placement='static' cpuset='2-3' current='2'>4</vcpu>"
    defined = domain(vcpu=vcpu, cputune=NO_PINS)
    to_cpuset = domain(
        vcpu=vcpu, cputune="<cputune><vcpupin vcpu='0' cpuset='2-3'/><emulatorpin cpuset='0'/></cputune>"
    )
    assert to_cpuset.waiting_for_boot(defined, range(4)) == []
    # Every host CPU is more than <vcpu cpuset> lets an unpinned vCPU use.
    everywhere = domain(
        vcpu=vcpu, cputune="<cputune><vcpupin vcpu='0' cpuset='0-3'/><emulatorpin cpuset='0'/></cputune>"
    )
    assert everywhere.waiting_for_boot(defined, range(4)) == [Change("cputune/vcpupin[0]", "0-3", None)]


def test_a_pin_that_differs_from_the_definition_stays_pending() -> None:
    running = domain(cputune="<cputune><vcpupin vcpu='0' cpuset='2'/><emulatorpin cpuset='0'/></cputune>")
    assert running.waiting_for_boot(domain(), range(4)) == [Change("cputune/vcpupin[0]", "2", "0-1")]
    # Equal pins, a pin to the default affinity among them: nothing.
    assert domain(cputune=ALL_PINNED).waiting_for_boot(domain(cputune=ALL_PINNED), range(4)) == []
