# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A size written as a number and a unit apart, in every XML the collection reads: one reader.

The domain XML (``<memory unit>``, a cell's ``memory``), a ``<vnuma>`` element and the host's capabilities
read their sizes with ``_xml/values.py:scaled_kib``.  Before, three readers disagreed: ``unit=''`` was
refused, refused, and read as KiB; ``unit=' MiB'`` refused, read as MiB, and refused.  libvirt reads an
empty unit as the element's default (virXPathString gives NULL for it, and virScaleInteger takes NULL or
"" as the default scale) and refuses ``' MiB'`` (virScaleInteger: "unknown suffix").
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cpu_numa import NumaCell
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.hmat import NumaCache
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import HugePage, Memory
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import spec_from_element


def _unit(unit: str | None) -> str:
    return "" if unit is None else f" unit='{unit}'"


def domain_memory(value: str, unit: str | None) -> int:
    return Memory.from_element(parse_xml(f"<memory{_unit(unit)}>{value}</memory>", "test")).kib


def domain_cell(value: str, unit: str | None) -> int:
    return NumaCell.from_element(parse_xml(f"<cell id='0' cpus='0' memory='{value}'{_unit(unit)}/>", "test")).memory_kib


def domain_page(value: str, unit: str | None) -> int:
    return HugePage.from_element(parse_xml(f"<page size='{value}'{_unit(unit)}/>", "test")).size_kib


def domain_cache(value: str, unit: str | None) -> int:
    text = f"<cache level='1'><size value='{value}'{_unit(unit)}/></cache>"
    return NumaCache.from_element(parse_xml(text, "test")).size_kib


def vnuma_memory(value: str, unit: str | None) -> int:
    spec = spec_from_element(parse_xml(f"<vnuma><memory{_unit(unit)}>{value}</memory></vnuma>", "test"))
    assert spec.memory_kib is not None
    return spec.memory_kib


def capabilities_memory(value: str, unit: str | None) -> int:
    cpu = "<cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0'/>"
    text = (
        "<capabilities><host><topology><cells num='1'><cell id='0'>"
        f"<memory{_unit(unit)}>{value}</memory><cpus num='1'>{cpu}</cpus></cell></cells></topology></host>"
        "</capabilities>"
    )
    return parse_capabilities(text).node(0).memory_kib


READERS = [domain_memory, domain_cell, domain_page, domain_cache, vnuma_memory, capabilities_memory]


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize(
    ("value", "unit", "kib"),
    [
        pytest.param("1024", None, 1024, id="no-unit"),
        pytest.param("1024", "", 1024, id="empty-unit-is-the-default"),
        pytest.param("1024", "KiB", 1024, id="KiB"),
        pytest.param("2", "MiB", 2048, id="MiB"),
        pytest.param("2", "m", 2048, id="one-letter-any-case"),
        pytest.param("2", "mib", 2048, id="binary-any-case"),
        pytest.param("1", "GiB", 1024**2, id="GiB"),
        pytest.param("2048", "bytes", 2, id="bytes"),
        pytest.param("1000", "KB", 977, id="decimal-rounded-up"),
        pytest.param("1000", "b", 1, id="bytes-rounded-up"),
        pytest.param(" 1024 ", "KiB", 1024, id="blanks-around-the-number"),
    ],
)
def test_every_reader_reads_a_size_alike(
    read: Callable[[str, str | None], int], value: str, unit: str, kib: int
) -> None:
    assert read(value, unit) == kib


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize(
    ("value", "unit", "named"),
    [
        pytest.param("1", " MiB", "' MiB'", id="blank-before-the-unit"),
        pytest.param("1", "MiB ", "'MiB '", id="blank-after-the-unit"),
        pytest.param("1", " ", "' '", id="blank-unit"),
        pytest.param("1", "parsec", "'parsec'", id="unknown-unit"),
        pytest.param("1_0", "KiB", "'1_0'", id="underscore"),
        pytest.param("\u0663", "KiB", "'\u0663'", id="arabic-indic-digit"),
        pytest.param("-1", "KiB", "'-1'", id="negative"),
        pytest.param("1.5", "GiB", "'1.5'", id="fraction"),
    ],
)
def test_every_reader_refuses_a_size_alike(
    read: Callable[[str, str | None], int], value: str, unit: str, named: str
) -> None:
    """Each refusal is the collection's error (a SpecError for the user's ``<vnuma>``) and quotes what is wrong."""
    expected = SpecError if read is vnuma_memory else XmlError
    with pytest.raises(expected) as caught:
        read(value, unit)
    assert named in caught.value.message
    if "unknown unit" in caught.value.message:
        assert "(use one of KiB, MiB, GiB, TiB, b, KB, MB, GB)" in caught.value.message


@pytest.mark.parametrize(
    ("read", "element"),
    [
        (domain_memory, "<memory>"),
        (domain_cell, "<numa><cell id='0'> memory"),
        (vnuma_memory, "<vnuma><memory>"),
        (capabilities_memory, "host capabilities: <memory unit='PiB'> content"),
    ],
)
def test_a_size_above_its_limit_names_the_element_the_value_and_the_limit(
    read: Callable[[str, str | None], int], element: str
) -> None:
    with pytest.raises(VnumaError) as caught:
        read("5", "PiB")
    assert caught.value.message == (
        f"{element}: 5 PiB is above the limit of 4 PiB (all a 52-bit physical address space holds)"
    )


def test_each_reader_has_its_own_limit() -> None:
    """A page is bounded by a page's limit, in ``<vnuma>`` and the host's capabilities alike."""
    page_limit = "is above the limit of 16 GiB (the largest page size Linux has)"
    with pytest.raises(SpecError) as refused:
        spec_from_element(parse_xml("<vnuma><hugepages size='32' unit='GiB'/></vnuma>", "test"))
    assert refused.value.message == f"<vnuma><hugepages> size: 32 GiB {page_limit}"

    def host(pages: str) -> str:
        cpu = "<cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0'/>"
        return (
            f"<capabilities><host><cpu>{pages}</cpu><topology><cells num='1'><cell id='0'>"
            f"<cpus num='1'>{cpu}</cpus></cell></cells></topology></host></capabilities>"
        )

    assert parse_capabilities(host("<pages unit='' size='32'/>")).page_sizes_kib == (32,)
    with pytest.raises(XmlError) as refused:
        parse_capabilities(host("<pages unit='GiB' size='32'/>"))
    assert refused.value.message == f"host capabilities: <pages unit='GiB' size='32'> size: 32 GiB {page_limit}"
