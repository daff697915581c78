# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Numbers in XML, read as libvirt reads each: two readers in ``_xml/values.py``, used everywhere.

A decimal number (``attr_int``: a controller's index, a disk's ``iothread``) and a number as C's
``strtol`` reads it in base 0 (``libvirt_int``: PCI addresses, ``busNr``, a node device's fields).
Before, a third and a fourth reader disagreed with them: ``int(x, 0)`` refused ``'010'`` (libvirt's 8)
and took ``'0o10'``, ``'0b11'`` and ``'1_0'``; ``int(x)`` read ``iothread='1_0'`` as 10 and ``'٢'`` as 2;
``str.isdigit()`` without ``isascii()`` let ``ua-vnuma-pxb²`` escape as a bare ValueError.
"""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.iothreads import IoThreads
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.nodedev import parse_node_device
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_controllers import PciLocality
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_domain import PciDomain
from ansible_collections.vnuma.libvirt.tests.support.hosts import host

RING = host("seed-4node-ring")


def _domain(devices: str, vnuma: str = "") -> str:
    return f"""<domain type='kvm'>
  <name>db01</name>
  <memory unit='GiB'>4</memory>
  <vcpu>4</vcpu>
  {vnuma}
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <controller type='pci' index='0' model='pcie-root'/>
    {devices}
  </devices>
</domain>"""


def _controller(alias: str, model: str = "pcie-expander-bus") -> str:
    return (
        f"<controller type='pci' index='1' model='{model}'><target busNr='200'><node>1</node></target>"
        f"<alias name='{alias}'/></controller>"
    )


def _outcome(call: object) -> object:
    """What a call gives, or the refusal (type and message) when it refuses with the collection's error."""
    assert callable(call)
    try:
        return call()
    except VnumaError as error:
        return type(error), error.message


@pytest.mark.parametrize(
    ("alias", "like"),
    [
        pytest.param("ua-vnuma-pxb\u00b2", "ua-vnuma-pxbx", id="expander-bus"),
        pytest.param("ua-vnuma-port\u00b2-0", "ua-vnuma-portx-0", id="root-port-cell"),
        pytest.param("ua-vnuma-port1-\u00b2", "ua-vnuma-port1-x", id="root-port-number"),
        pytest.param("ua-vnuma-memport\u00b2", "ua-vnuma-memportx", id="memory-port"),
        pytest.param("ua-vnuma-pxb\u0661", "ua-vnuma-pxbx", id="arabic-indic-digit"),
    ],
)
def test_a_non_ascii_digit_in_an_alias_of_ours_reads_as_any_other_non_number(alias: str, like: str) -> None:
    """'²'.isdigit() is True and int('²') raises ValueError: that escaped the error family (and '٢' read as 2)."""
    model = "pcie-root-port" if "port" in alias else "pcie-expander-bus"
    odd = parse_xml(_domain(_controller(alias, model)), "domain")
    plain = parse_xml(_domain(_controller(like, model)), "domain")
    assert _outcome(lambda: PciLocality.of(PciDomain.read(odd))) == _outcome(
        lambda: PciLocality.of(PciDomain.read(plain))
    )
    read = _outcome(lambda: DomainNuma.from_domain(odd))
    assert not isinstance(read, tuple), read


def test_the_vnuma_expand_filter_refuses_or_expands_such_a_template_in_the_error_family() -> None:
    template = _domain(_controller("ua-vnuma-pxb\u00b2"), "<vnuma mode='host'/>")
    like = _domain(_controller("ua-vnuma-pxbx"), "<vnuma mode='host'/>")
    odd, plain = _outcome(lambda: expand_domain(template, RING)), _outcome(lambda: expand_domain(like, RING))
    assert type(odd) is type(plain)


@pytest.mark.parametrize(
    ("raw", "thread"),
    [
        pytest.param("10", 10, id="decimal"),
        pytest.param(" 2 ", 2, id="blanks"),
        pytest.param("1_0", None, id="underscore"),
        pytest.param("\u0661", None, id="arabic-indic-digit"),
        pytest.param("0x2", None, id="hexadecimal"),
        pytest.param("two", None, id="word"),
    ],
)
def test_a_disks_iothread_is_a_decimal_number_as_libvirt_reads_it(raw: str, thread: int | None) -> None:
    """libvirt reads ``<driver iothread>`` in base 10 (virXMLPropUInt): int() took '1_0' as 10 and '٢' as 2."""
    text = _domain(
        f"<disk type='file' device='disk'><driver name='qemu' iothread='{raw}'/>"
        "<source file='/a.img'/><target dev='vda' bus='virtio'/></disk>"
    )
    root = parse_xml(text, "domain")
    if thread is None:
        with pytest.raises(XmlError, match=r"<disk> vda: <driver>: attribute iothread=.* is not an integer"):
            IoThreads.of(root)
    else:
        assert dict(IoThreads.of(root).disks) == {"vda": thread}


# (written, what libvirt's strtol in base 0 reads, None: refused)
STRTOL_BASE_0 = [
    pytest.param("3", 3, id="decimal"),
    pytest.param("0x1f", 31, id="hexadecimal"),
    pytest.param("0X1F", 31, id="hexadecimal-upper"),
    pytest.param("010", 8, id="octal"),
    pytest.param("0", 0, id="zero"),
    pytest.param("00", 0, id="octal-zero"),
    pytest.param(" 0x03 ", 3, id="blanks"),
    pytest.param("0o10", None, id="python-octal"),
    pytest.param("0b11", None, id="python-binary"),
    pytest.param("1_0", None, id="underscore"),
    pytest.param("0x1_0", None, id="hexadecimal-underscore"),
    pytest.param("08", None, id="not-octal"),
    pytest.param("0x", None, id="no-hex-digits"),
    pytest.param("0x-3", None, id="sign-after-prefix"),
    pytest.param("\u0663", None, id="arabic-indic-digit"),
    pytest.param("0x\u0663", None, id="hex-arabic-indic-digit"),
    pytest.param("", None, id="empty"),
    pytest.param("three", None, id="word"),
]


def _pci_address_bus(raw: str) -> int:
    root = parse_xml(
        _domain(
            "<interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/>"
            f"<model type='virtio'/><address type='pci' domain='0x0000' bus='{raw}' slot='0x01' function='0x0'/>"
            "</interface>"
        ),
        "domain",
    )
    (owner, slot), *_rest = PciDomain.read(root).addresses
    assert owner == "devices/interface[52:54:00:00:00:01]"
    return slot.bus


def _node_device_bus(raw: str) -> int:
    device = parse_node_device(
        "<device><name>pci_0000_03_00_0</name><capability type='pci'><class>0x020000</class>"
        f"<domain>0</domain><bus>{raw}</bus><slot>0</slot><function>0</function></capability></device>"
    )
    assert device is not None
    return device.address.bus


def _expander_bus_nr(raw: str) -> int:
    root = parse_xml(
        _domain(
            f"<controller type='pci' index='1' model='pcie-expander-bus'><target busNr='{raw}'/>"
            "<alias name='ua-vnuma-pxb1'/></controller>"
        ),
        "domain",
    )
    (bus,) = PciLocality.of(PciDomain.read(root)).buses
    return bus.bus_nr


@pytest.mark.parametrize("read", [_pci_address_bus, _node_device_bus, _expander_bus_nr])
@pytest.mark.parametrize(("raw", "value"), STRTOL_BASE_0)
def test_pci_numbers_read_as_strtol_base_0_in_every_reader(read: object, raw: str, value: int | None) -> None:
    """A guest's PCI address, a node device's and a controller's busNr: one reader, libvirt's base 0."""
    assert callable(read)
    if value is None:
        with pytest.raises(XmlError, match="is not a number"):
            read(raw)
    else:
        assert read(raw) == value


@pytest.mark.parametrize(
    ("raw", "index"),
    [
        pytest.param("010", 10, id="leading-zero-is-decimal"),
        pytest.param("7", 7, id="decimal"),
        pytest.param("0x7", None, id="hexadecimal"),
        pytest.param("1_0", None, id="underscore"),
        pytest.param("\u0661", None, id="arabic-indic-digit"),
    ],
)
def test_a_controller_index_is_decimal_as_libvirt_reads_it(raw: str, index: int | None) -> None:
    """virDomainControllerDefParseXML reads ``index`` in base 10 (and ``<target busNr>`` in base 0)."""
    root = parse_xml(_domain(f"<controller type='pci' index='{raw}' model='pcie-root-port'/>"), "domain")
    if index is None:
        with pytest.raises(XmlError, match="index"):
            PciDomain.read(root)
    else:
        assert [controller.index for controller in PciDomain.read(root).controllers] == [0, index]


def test_a_controllers_node_is_decimal_and_an_empty_one_is_none() -> None:
    """``<target><node>`` is read by virXPathInt (base 10); an empty one is no node, as libvirt has it."""

    def node(text: str) -> int | None:
        root = parse_xml(
            _domain(
                "<controller type='pci' index='1' model='pcie-expander-bus'>"
                f"<target busNr='200'>{text}</target></controller>"
            ),
            "domain",
        )
        return PciDomain.read(root).controllers[1].node

    assert node("<node>010</node>") == 10
    assert node("<node>2<!-- c --></node>") == 2
    assert node("<node/>") is None
    assert node("") is None
    for bad in ("0x1", "1_0", "\u0661", "-1"):
        with pytest.raises(XmlError, match="<target><node>"):
            node(f"<node>{bad}</node>")


def test_a_node_devices_numa_node_is_a_decimal_number() -> None:
    def node(raw: str) -> int | None:
        device = parse_node_device(
            "<device><name>pci_0000_03_00_0</name><capability type='pci'><domain>0</domain><bus>3</bus>"
            f"<slot>0</slot><function>0</function><numa node='{raw}'/></capability></device>"
        )
        assert device is not None
        return device.node

    assert node("1") == 1
    assert node("-1") is None
    for bad in ("\u0661", "1_0", "0x1"):
        with pytest.raises(XmlError, match="is not a node id"):
            node(bad)


def test_a_recorded_address_that_does_not_read_as_strtol_does_is_skipped() -> None:
    """The record of moved devices' addresses is read by the same reader: an entry it refuses is left out."""
    ns = "urn:vnuma:libvirt:addresses:1.0"
    root = parse_xml(
        _domain(
            "",
            f"<metadata><a:addresses xmlns:a='{ns}'>"
            "<a:address device='devices/disk[vda]' bus='010' slot='0x01' function='0'/>"
            "<a:address device='devices/disk[vdb]' bus='1_0' slot='0x01' function='0'/>"
            "<a:address device='devices/disk[vdc]' bus='0o1' slot='0x01' function='0'/>"
            "</a:addresses></metadata>",
        ),
        "domain",
    )
    originals = dict(PciDomain.read(root).originals)
    assert list(originals) == ["devices/disk[vda]"]
    assert (originals["devices/disk[vda]"].bus, originals["devices/disk[vda]"].slot) == (8, 1)
