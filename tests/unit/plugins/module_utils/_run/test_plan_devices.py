# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""pci_numa_affinity in a run: the host's devices read once, a refusal changes nothing, auto follows the devices.

The host is the amd-2s-nps4 fixture (nodes 0-3 on socket 0, 4-7 on socket 1) with its node devices:
a NIC on node 2, a GPU on node 5.
"""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import PlacementError
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.converge import Converger
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.guest import GuestRequest
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.results import BatchError
from ansible_collections.vnuma.libvirt.tests.support.devices import hostdev, node_device_xmls, passthrough_domain
from ansible_collections.vnuma.libvirt.tests.support.fake_libvirt import FakeHost, domain_xml
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

TOPOLOGY = host("amd-2s-nps4")
NIC = hostdev("0000:41:00.0", alias="ua-nic0")  # node 2
GPU = hostdev("0000:c1:00.0", alias="ua-gpu0")  # node 5


def fake(**guests: str) -> FakeHost:
    hypervisor = FakeHost({name: passthrough_domain(name, devices) for name, devices in guests.items()})
    hypervisor.node_devices = node_device_xmls("amd-2s-nps4")
    return hypervisor


def test_a_layout_the_policy_refuses_changes_nothing() -> None:
    hypervisor = fake(db=NIC + GPU, web="")
    before = {name: guest.xml for name, guest in hypervisor.guests.items()}
    with pytest.raises(BatchError) as error:
        Converger(hypervisor, TOPOLOGY).converge(
            [
                GuestRequest("db", {"mode": "node", "nodeset": "0-1", "pci_numa_affinity": "required"}),
                GuestRequest("web", {"mode": "node", "nodeset": "0-1"}),
            ]
        )
    db, web = error.value.results
    assert isinstance(db.error, PlacementError)
    assert str(db.error).startswith(
        "guest db: PCI device 0000:41:00.0 (ua-nic0) is on host node 2; PCI device 0000:c1:00.0 (ua-gpu0) is on "
        "host node 5; pci_numa_affinity required needs each device on a host node the cells use (nodes 0-1)"
    )
    assert db.written == []
    # The other guest of the call goes on; the refused one is left exactly as it was.
    assert web.error is None and web.written == ["definition"]
    assert hypervisor.guests["db"].xml == before["db"]
    assert [call.guest for call in hypervisor.called("define")] == ["web"]


def test_the_default_legacy_refuses_a_device_elsewhere_and_accepts_it_at_home() -> None:
    hypervisor = fake(db=NIC)
    with pytest.raises(BatchError, match="pci_numa_affinity legacy needs each device that reports its node"):
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest("db", {"mode": "node", "nodeset": "0"})])
    results = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("db", {"mode": "node", "nodeset": "2"})])
    assert results[0].written == ["definition"] and results[0].warnings == []


def test_preferred_warns_and_writes() -> None:
    hypervisor = fake(db=GPU)
    request = GuestRequest("db", {"mode": "node", "nodeset": "0", "pci_numa_affinity": "preferred"})
    result = Converger(hypervisor, TOPOLOGY).converge([request])[0]
    assert result.written == ["definition"]
    assert result.warnings == [
        "guest db: PCI device 0000:c1:00.0 (ua-gpu0) is on host node 5; pci_numa_affinity preferred needs each "
        "device on a host node the cells use (node 0) (cell 0 on host node(s) 0)"
    ]
    # The policy is stored with the spec, so the next run without the option keeps it.
    again = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("db")])[0]
    assert again.changed is False and again.warnings == result.warnings


def test_socket_accepts_a_node_of_the_devices_socket() -> None:
    hypervisor = fake(db=GPU)
    request = GuestRequest("db", {"mode": "node", "nodeset": "7", "pci_numa_affinity": "socket"})
    assert Converger(hypervisor, TOPOLOGY).converge([request])[0].written == ["definition"]
    with pytest.raises(BatchError, match=r"is on host node 5 \(socket 1\)"):
        Converger(hypervisor, TOPOLOGY).converge([GuestRequest("db", {"mode": "node", "nodeset": "3"})])


def test_mode_auto_chooses_the_devices_nodes() -> None:
    hypervisor = fake(db=GPU, web=NIC + GPU)
    results = Converger(hypervisor, TOPOLOGY).converge(
        [
            GuestRequest("db", {"mode": "auto", "pci_numa_affinity": "required"}),
            GuestRequest("web", {"mode": "auto"}),
        ]
    )
    assert [result.auto["nodes"] for result in results if result.auto] == ["5", "2,5"]


def test_the_host_devices_are_read_once_and_only_when_a_guest_has_one() -> None:
    plain = FakeHost({"a": domain_xml("a"), "b": domain_xml("b")})
    Converger(plain, TOPOLOGY).converge([GuestRequest(name, {"mode": "node", "nodeset": "0"}) for name in ("a", "b")])
    assert plain.called("pci_device_xmls") == []
    hypervisor = fake(db=NIC, web=NIC)
    Converger(hypervisor, TOPOLOGY).converge(
        [GuestRequest(name, {"mode": "node", "nodeset": "2"}) for name in ("db", "web")]
    )
    assert len(hypervisor.called("pci_device_xmls")) == 1


def test_absent_passes_on_the_warning_of_a_device_that_cannot_go_back() -> None:
    disk = (
        "<disk type='file' device='disk'><source file='/var/lib/a.img'/><target dev='vda' bus='virtio'/>"
        "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></disk>"
        "<controller type='pci' index='0' model='pcie-root'/>"
        "<controller type='pci' index='1' model='pcie-root-port'>"
        "<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></controller>"
    )
    hypervisor = FakeHost({"db": passthrough_domain("db", disk)})
    [moved] = Converger(hypervisor, TOPOLOGY).converge(
        [GuestRequest("db", {"mode": "node", "nodeset": "2", "device_locality": "all"})]
    )
    assert moved.written == ["definition"] and moved.warnings == []
    # Another tool added a disk since, which libvirt put where vda was before the move.
    guest = hypervisor.guests["db"]
    guest.xml = guest.xml.replace(
        "<disk",
        "<disk type='file' device='disk'><source file='/var/lib/c.img'/><target dev='vdc' bus='virtio'/>"
        "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></disk><disk",
        1,
    )
    [absent] = Converger(hypervisor, TOPOLOGY).converge([GuestRequest("db", state="absent")])
    assert absent.written == ["definition"]
    assert absent.warnings == [
        "guest db: devices/disk[vda] cannot go back to its address from before the move, 0000:01:00.0 "
        "(devices/disk[vdc] has it now): libvirt places it"
    ]


def test_a_call_of_state_absent_alone_checks_no_capacity() -> None:
    # db holds dedicated CPUs, web runs unpinned: the capacity check warns about web in every call that checks.
    hypervisor = FakeHost(
        {name: passthrough_domain(name, "") for name in ("db", "web", "plain")}, running=("db", "web")
    )
    Converger(hypervisor, TOPOLOGY).converge([GuestRequest("db", {"mode": "node", "nodeset": "0", "pinning": "core"})])
    present = Converger(hypervisor, TOPOLOGY, check_mode=True)
    present.converge([GuestRequest("plain", {"mode": "node", "nodeset": "1"})])
    assert present.capacity_report is not None
    assert any(
        warning.startswith("guest web (running) has unpinned vCPUs") for warning in present.capacity_report.warnings
    )
    # Absent places nothing and is never refused for capacity: a guest the collection never managed is left
    # alone, without a word about the others.
    for check_mode in (True, False):
        absent = Converger(hypervisor, TOPOLOGY, check_mode=check_mode)
        [result] = absent.converge([GuestRequest("plain", state="absent")])
        assert (result.changed, result.warnings, absent.capacity_report) == (False, [], None)
    # A call of no guest at all reports the host (guests [] with capacity report: what is left on each node).
    empty = Converger(hypervisor, TOPOLOGY, check_mode=True)
    assert empty.converge([]) == []
    report = empty.capacity_report
    assert report is not None
    assert [node.id for node in report.nodes] == [node.id for node in TOPOLOGY.nodes]
    # The running guests as defined: db's dedicated CPUs, web's warning; plain is shut off and holds nothing.
    assert set(report.dedicated.values()) == {"db"}
    assert {share.name for node in report.nodes for share in node.guests} <= {"db", "web"}
    assert any(warning.startswith("guest web (running) has unpinned vCPUs") for warning in report.warnings)
    # With a guest of the call that is not absent, the call checks as before: web planned onto node 1 counts there.
    mixed = Converger(hypervisor, TOPOLOGY, check_mode=True)
    mixed.converge([GuestRequest("plain", state="absent"), GuestRequest("web", {"mode": "node", "nodeset": "1"})])
    assert mixed.capacity_report is not None
    web_nodes = {node.id for node in mixed.capacity_report.nodes for share in node.guests if share.name == "web"}
    assert web_nodes == {1}
    assert set(mixed.capacity_report.dedicated.values()) == {"db"}
