# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad input to the filters, the ``<vnuma>`` element, spec options and host capabilities documents, one table.

Each case is refused with its exact message (or a precise pattern where a figure comes from libxml2 or a
temporary path), with the collection's own error (``AnsibleFilterError`` from a filter, a ``VnumaError``
below), and leaves its input as it was.  The refusals are bounded by construction: each case runs under
``tracemalloc`` and may allocate at most ``_PEAK_BYTES`` while it is refused, so nothing in proportion to a
huge number (a billion cells, a billion vCPUs) is ever built before the check (issue 8, points 3, 6 and 8).
"""

from __future__ import annotations

import copy
import os
import re
import socket
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.cpuset_format import cpuset_format
from ansible_collections.vnuma.libvirt.plugins.filter.cpuset_parse import cpuset_parse
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_distribute import vnuma_distribute
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_expand import vnuma_expand
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_layout import vnuma_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import (
    SpecError,
    TopologyError,
    VnumaError,
    XmlError,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape, VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import parse_int, parse_size
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.vcpu_distribution import distribute_vcpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import (
    MAX_CAPABILITIES_BYTES,
    parse_capabilities,
    read_host_capabilities,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import spec_from_element

FIXTURES = Path(__file__).parents[1] / "fixtures" / "capabilities"
RING = (FIXTURES / "seed-4node-ring.xml").read_text(encoding="utf-8")
GIB = 1024 * 1024  # KiB
PIB = 1024**4  # KiB
HUGE = 10**5000  # more digits than Python will even write out (4300)
DIGITS = "9" * 5000

# What a refusal may allocate (Python objects, measured by tracemalloc).  A billion cells or vCPUs built
# before the check took gigabytes; a refusal that checks first stays far below this.
_PEAK_BYTES = 4 * 1024 * 1024

LAYOUT = "vnuma.libvirt.vnuma_layout: "
DISTRIBUTE = "vnuma.libvirt.vnuma_distribute: "
EXPAND = "vnuma.libvirt.vnuma_expand: "
PARSE = "vnuma.libvirt.cpuset_parse: "
FORMAT = "vnuma.libvirt.cpuset_format: "
HOST_MODE = "applies to mode node only; mode host mirrors every host node with CPUs"
CELLS_LIMIT = "is above the limit of 128 (QEMU's MAX_NODES)"
MEMORY_LIMIT = "is above the limit of 4 PiB (all a 52-bit physical address space holds)"
PAGE_LIMIT = "is above the limit of 16 GiB (the largest page size Linux has)"
NODE_LIMIT = "is above the limit of 1023 (Linux has at most 1024 NUMA nodes (MAX_NUMNODES))"
CPU_LIMIT = "is above the limit of 8191 (Linux has at most 8192 CPUs (NR_CPUS))"
CPUSET_LIMIT = "is above the limit of 16383 (libvirt's cpuset bitmap holds 16384 ids)"
# A count with a limit: one message for every refusal, with the whole range (units.check_count).
CELLS_RANGE = "must be an integer from 1 to 128 (QEMU's MAX_NODES)"
VCPUS_RANGE = "must be an integer from 1 to 4096 (KVM's maximum vCPUs per guest)"
SLOTS_RANGE = "must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)"
NOT_INT = "is not a non-negative integer"
DECODE = "; its bytes must be in the encoding its XML declaration names (UTF-8 when it names none)"


def domain(vnuma: str = "<vnuma/>", vcpu: str = "8", memory: str = "<memory unit='GiB'>4</memory>") -> str:
    return f"<domain type='qemu'><name>g1</name>{memory}<vcpu>{vcpu}</vcpu>{vnuma}</domain>"


def caps(cells: str, host_cpu: str = "") -> str:
    return f"<capabilities><host>{host_cpu}<topology><cells num='1'>{cells}</cells></topology></host></capabilities>"


def cell(
    node: object = 0, body: str = "<cpus num='1'><cpu id='0' socket_id='0' core_id='0' siblings='0'/></cpus>"
) -> str:
    return f"<cell id='{node}'>{body}</cell>"


def cpu(ident: object, siblings: object = None) -> str:
    thread = f"<cpu id='{ident}' socket_id='0' core_id='0' siblings='{ident if siblings is None else siblings}'/>"
    return f"<cpus num='1'>{thread}</cpus>"


def element(text: str) -> Any:
    return spec_from_element(parse_xml(text, "test XML"))


def nodes_with_cpus(count: int) -> str:
    """Capabilities of ``count`` nodes of 1 GiB and one CPU each: more nodes than QEMU takes guest cells."""
    return caps("".join(cell(node, f"<memory unit='KiB'>{GIB}</memory>{cpu(node)}") for node in range(count)))


@dataclass(frozen=True)
class File:
    """A path the test makes in its tmp_path: ``kind`` is file, fifo, dir, socket, sparse or missing."""

    kind: str
    content: bytes = b""
    size: int = 0

    def make(self, directory: Path) -> str:
        path = directory / "caps.xml"
        if self.kind == "file":
            path.write_bytes(self.content)
        elif self.kind == "fifo":
            os.mkfifo(path)
        elif self.kind == "dir":
            path.mkdir()
        elif self.kind == "socket":
            server = socket.socket(socket.AF_UNIX)
            server.bind(str(path))
            server.close()
        elif self.kind == "sparse":
            with path.open("wb") as handle:
                handle.truncate(self.size)
        return str(path)


@dataclass(frozen=True)
class Case:
    call: Callable[..., Any]
    args: tuple[Any, ...]
    error: type[Exception]
    # The exact message, or a pattern (re.Pattern) that must match all of it; "{path}" is the file made.
    message: str | re.Pattern[str]
    kwargs: dict[str, Any] = field(default_factory=dict)


def case(
    call: Callable[..., Any],
    args: tuple[Any, ...],
    error: type[Exception],
    message: str | re.Pattern[str],
    id: str,  # pytest's own name for it
    marks: Any = (),
    **kwargs: Any,
) -> Any:
    return pytest.param(Case(call, args, error, message, kwargs), id=id, marks=marks)


F = AnsibleFilterError

CASES = [
    # -- vnuma_layout: the guest shape ----------------------------------------------------------------------------
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}vcpus 1000000000 {VCPUS_RANGE}",
        "layout-vcpus-billion",
        vcpus=10**9,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}vcpus 4097 {VCPUS_RANGE}",
        "layout-vcpus-one-above-limit",
        vcpus=4097,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}vcpus about 10^5000 {VCPUS_RANGE}",
        "layout-vcpus-5000-digit-int",
        vcpus=HUGE,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}vcpus '{'9' * 80}'... (5000 characters) {VCPUS_RANGE}",
        "layout-vcpus-5000-digit-text",
        vcpus=DIGITS,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}vcpus 0 {VCPUS_RANGE}",
        "layout-vcpus-zero",
        vcpus=0,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}vcpus 2.0 {VCPUS_RANGE}",
        "layout-vcpus-float",
        vcpus=2.0,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}vcpus '\u0668' {VCPUS_RANGE}",
        "layout-vcpus-arabic-digit",
        vcpus="\u0668",
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}guest db01: current vcpus 9 is above the maximum of 8 vCPUs",
        "layout-current-above-max",
        vcpus=8,
        current_vcpus=9,
        memory="4 GiB",
        name="db01",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}memory: '\u0662\u0665\u0666 MiB' is not a size such as '16 GiB' or 524288",
        "layout-memory-arabic-digits",
        vcpus=4,
        memory="\u0662\u0665\u0666 MiB",
    ),
    case(
        vnuma_layout,
        (RING, {"memory": "\uff12\uff15\uff16 MiB"}),
        F,
        f"{LAYOUT}memory: '\uff12\uff15\uff16 MiB' is not a size such as '16 GiB' or 524288",
        "layout-memory-fullwidth-digits",
        vcpus=4,
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}memory '5 PiB' {MEMORY_LIMIT}",
        "layout-memory-above-limit",
        vcpus=4,
        memory="5 PiB",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}memory '{DIGITS[:80]}'... (5004 characters) {MEMORY_LIMIT}",
        "layout-memory-5000-digits",
        vcpus=4,
        memory=f"{DIGITS} KiB",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}memory about 10^5000 KiB {MEMORY_LIMIT}",
        "layout-memory-huge-int",
        vcpus=4,
        memory=HUGE,
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}memory: -1 is not a non-negative integer",
        "layout-memory-negative",
        vcpus=4,
        memory=-1,
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}memory: '1e9' is not a size such as '16 GiB' or 524288",
        "layout-memory-exponent",
        vcpus=4,
        memory="1e9",
    ),
    # -- vnuma_layout: the spec ----------------------------------------------------------------------------------
    case(
        vnuma_layout,
        (RING, {"mode": "host", "nodeset": "0-1"}),
        F,
        f"{LAYOUT}nodeset '0-1' {HOST_MODE}",
        "layout-host-mode-nodeset",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"cells": 2}),
        F,
        f"{LAYOUT}cells 2 {HOST_MODE}",
        "layout-default-mode-cells",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"mode": "node", "cells": 1000000000}),
        F,
        f"{LAYOUT}cells 1000000000 {CELLS_RANGE}",
        "layout-cells-billion",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"mode": "node", "cells": 100000}),
        F,
        f"{LAYOUT}cells 100000 {CELLS_RANGE}",
        "layout-cells-100000",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"mode": "node", "nodeset": "0,1024"}),
        F,
        f"{LAYOUT}nodeset '0,1024': 1024 {NODE_LIMIT}",
        "layout-nodeset-node-id-above-limit",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"mode": "node", "nodeset": "0," * 70000}),
        F,
        f"{LAYOUT}nodeset '{('0,' * 40)}'... (140000 characters) is 140000 characters long, above the limit of 131072",
        "layout-nodeset-too-long",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"mode": "node", "nodeset": "0-1023," * 100}),
        F,
        f"{LAYOUT}nodeset '{('0-1023,' * 12)[:80]}'... (700 characters): its ranges cover more than 65536 ids in "
        "total, the limit; write each id once",
        "layout-nodeset-ranges-overlap",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"hugepages": "32 GiB"}),
        F,
        # Read against the page size's own limit, and quoted as written, as max_memory '8 PiB' below.
        f"{LAYOUT}hugepages '32 GiB' {PAGE_LIMIT}",
        "layout-hugepages-above-limit",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"hugepages": "10 PB"}),
        F,
        # Above the memory limit too: the page size's limit and reason are named, not the memory's.
        f"{LAYOUT}hugepages '10 PB' {PAGE_LIMIT}",
        "layout-hugepages-above-the-memory-limit",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"mode": "node", "nodeset": "0-20000"}),
        F,
        # Above libvirt's cpuset limit too: the node ids' own limit and reason are named, as for 0-2000.
        f"{LAYOUT}nodeset '0-20000': 20000 {NODE_LIMIT}",
        "layout-nodeset-above-the-cpuset-limit",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"max_memory": "8 PiB", "memory_slots": 4}),
        F,
        f"{LAYOUT}max_memory '8 PiB' {MEMORY_LIMIT}",
        "layout-max-memory-above-limit",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {"max_memory": "8 GiB", "memory_slots": 257}),
        F,
        f"{LAYOUT}memory_slots 257 {SLOTS_RANGE}",
        "layout-slots-above-limit",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, ["mode", "node"]),
        F,
        f"{LAYOUT}spec must be a dict of vnuma options, got list",
        "layout-spec-not-a-dict",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {HUGE: 1}),
        F,
        f"{LAYOUT}unknown vnuma option(s) about 10^5000; known: cells, cpuless_cells, device_cells, device_locality, "
        "distribution, emulator_pin, emulator_threads, "
        "hmat, hugepages, iothreads, max_memory, memory, memory_device, memory_mode, memory_slots, memory_split, "
        "mode, nodeset, "
        "pci_numa_affinity, pinning",
        "layout-spec-huge-int-key",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}taken_cpus: CPU id about 10^5000 is outside 0-16383",
        "layout-taken-cpus-huge-int",
        vcpus=4,
        memory="4 GiB",
        taken_cpus=[HUGE],
    ),
    case(
        vnuma_layout,
        (RING, {}),
        F,
        f"{LAYOUT}taken_cpus '0-99999': 99999 {CPUSET_LIMIT}",
        "layout-taken-cpus-cpuset-above-limit",
        vcpus=4,
        memory="4 GiB",
        taken_cpus="0-99999",
    ),
    case(
        vnuma_layout,
        ({"xml": RING}, {}),
        F,
        f"{LAYOUT}the input (host capabilities XML) must be a string of XML, got dict",
        "layout-capabilities-not-text",
        vcpus=4,
        memory="4 GiB",
    ),
    case(
        vnuma_layout,
        (RING.replace("<cell id='3'>", "<cell id='2000'>"), {}),
        F,
        f"{LAYOUT}host capabilities: <cell id='2000'>: id 2000 {NODE_LIMIT}",
        "layout-capabilities-node-id-above-limit",
        vcpus=4,
        memory="4 GiB",
    ),
    # -- vnuma_distribute --------------------------------------------------------------------------------------------
    case(
        vnuma_distribute,
        (8,),
        F,
        f"{DISTRIBUTE}cells 1000000000 {CELLS_RANGE}",
        "distribute-cells-billion",
        cells=1000000000,
    ),
    case(
        vnuma_distribute,
        (8,),
        F,
        f"{DISTRIBUTE}cells 1000000000 {CELLS_RANGE}",
        "distribute-cells-billion-on-host",
        cells=1000000000,
        capabilities=RING,
    ),
    case(
        vnuma_distribute,
        (8,),
        F,
        f"{DISTRIBUTE}cells 100000 {CELLS_RANGE}",
        "distribute-cells-100000-on-host",
        cells=100000,
        capabilities=RING,
    ),
    case(
        vnuma_distribute,
        (10**9,),
        F,
        f"{DISTRIBUTE}vcpus 1000000000 {VCPUS_RANGE}",
        "distribute-vcpus-billion",
        cells=2,
    ),
    case(
        vnuma_distribute,
        (10**9,),
        F,
        f"{DISTRIBUTE}vcpus 1000000000 {VCPUS_RANGE}",
        "distribute-vcpus-billion-on-host",
        capabilities=RING,
    ),
    case(
        vnuma_distribute,
        (DIGITS,),
        F,
        f"{DISTRIBUTE}vcpus '{'9' * 80}'... (5000 characters) {VCPUS_RANGE}",
        "distribute-vcpus-5000-digit-text",
        cells=2,
    ),
    case(
        vnuma_distribute,
        (8,),
        F,
        f"{DISTRIBUTE}8 vCPUs cannot be cut into guest cores of about 10^5000 threads",
        "distribute-threads-huge",
        cells=2,
        threads=HUGE,
    ),
    case(vnuma_distribute, (8,), F, f"{DISTRIBUTE}cells is required without capabilities", "distribute-no-cells"),
    case(
        vnuma_distribute,
        (8,),
        F,
        f"{DISTRIBUTE}nodeset selects host nodes and needs capabilities",
        "distribute-nodeset-without-host",
        cells=2,
        nodeset="0",
    ),
    case(
        vnuma_distribute,
        (8,),
        F,
        f"{DISTRIBUTE}nodeset '2000': 2000 {NODE_LIMIT}",
        "distribute-nodeset-above-limit",
        capabilities=RING,
        nodeset="2000",
    ),
    case(
        vnuma_distribute,
        (8,),
        F,
        f"{DISTRIBUTE}nodeset '0-20000': 20000 {NODE_LIMIT}",
        "distribute-nodeset-above-the-cpuset-limit",
        capabilities=RING,
        nodeset="0-20000",
    ),
    case(
        vnuma_distribute,
        (8,),
        F,
        f"{DISTRIBUTE}give threads or capabilities, not both (the host sets it)",
        "distribute-threads-and-host",
        threads=2,
        capabilities=RING,
    ),
    case(
        vnuma_distribute,
        (8,),
        F,
        f"{DISTRIBUTE}distribution 'zigzag' is not one of contiguous, siblings, round-robin, interleave",
        "distribute-unknown-distribution",
        cells=2,
        distribution="zigzag",
    ),
    # -- vnuma_expand: the <vnuma> element of a template ---------------------------------------------------------------
    case(
        vnuma_expand,
        (domain("<vnuma mode='node'><partition cells='1000000000'/></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma><partition>: cells 1000000000 {CELLS_RANGE}",
        "expand-partition-cells-billion",
    ),
    case(
        vnuma_expand,
        (domain(f"<vnuma mode='node'><partition cells='{DIGITS}'/></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma><partition>: cells '{DIGITS[:80]}'... (5000 characters) {CELLS_RANGE}",
        "expand-partition-cells-5000-digits",
    ),
    case(
        vnuma_expand,
        (domain("<vnuma><partition nodeset='0-1'/></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma>: nodeset '0-1' {HOST_MODE}",
        "expand-host-mode-partition",
    ),
    case(
        vnuma_expand,
        (domain("<vnuma mode='node'><partition nodeset='0,5000'/></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma>: nodeset '0,5000': 5000 {NODE_LIMIT}",
        "expand-partition-nodeset-above-limit",
    ),
    case(
        vnuma_expand,
        (domain(f"<vnuma><memory>{DIGITS}</memory></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma><memory>: {DIGITS[:80]}... (5000 digits) KiB {MEMORY_LIMIT}",
        "expand-vnuma-memory-5000-digits",
    ),
    case(
        vnuma_expand,
        (domain("<vnuma><memory unit='EiB'>1</memory></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma><memory>: 1 EiB {MEMORY_LIMIT}",
        "expand-vnuma-memory-exbibyte",
    ),
    case(
        vnuma_expand,
        (domain("<vnuma><memory>\u0662\u0665\u0666</memory></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma><memory>: '\u0662\u0665\u0666' {NOT_INT}",
        "expand-vnuma-memory-arabic-digits",
    ),
    case(
        vnuma_expand,
        (domain("<vnuma><hugepages size='32' unit='GiB'/></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma><hugepages> size: 32 GiB {PAGE_LIMIT}",
        "expand-vnuma-hugepages-above-limit",
    ),
    case(
        vnuma_expand,
        (domain("<vnuma><maxMemory slots='1000' unit='GiB'>64</maxMemory></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma><maxMemory>: memory_slots 1000 {SLOTS_RANGE}",
        "expand-vnuma-slots-above-limit",
    ),
    case(
        vnuma_expand,
        (domain("<vnuma><maxMemory slots='8' unit='PiB'>5</maxMemory></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma><maxMemory>: 5 PiB {MEMORY_LIMIT}",
        "expand-vnuma-max-memory-above-limit",
    ),
    case(
        vnuma_expand,
        (domain("<vnuma><memory unit='parsec'>1</memory></vnuma>"), RING),
        F,
        f"{EXPAND}guest g1: <vnuma><memory>: unknown unit 'parsec' (use one of KiB, MiB, GiB, TiB, b, KB, MB, GB)",
        "expand-vnuma-memory-unknown-unit",
    ),
    case(
        vnuma_expand,
        (domain(vcpu="5000"), RING),
        F,
        f"{EXPAND}guest g1: vcpus 5000 {VCPUS_RANGE}",
        "expand-domain-vcpus-above-limit",
    ),
    case(
        vnuma_expand,
        (domain(memory="<memory unit='PiB'>5</memory>"), RING),
        F,
        f"{EXPAND}guest g1: <memory>: 5 PiB {MEMORY_LIMIT}",
        "expand-domain-memory-above-limit",
    ),
    case(
        vnuma_expand,
        (domain(vcpu=DIGITS), RING),
        F,
        re.compile(
            rf"{EXPAND}guest g1: <vcpu>: 9{{80}}\.\.\. \(5000 digits\) is above the limit of 18446744073709551615"
        ),
        "expand-domain-vcpus-5000-digits",
    ),
    case(
        vnuma_expand,
        (domain(memory=f"<memory>{DIGITS}</memory>"), RING),
        F,
        re.compile(rf"{EXPAND}guest g1: <memory>: 9{{80}}\.\.\. \(5000 digits\) KiB is above the limit of 4 PiB .*"),
        "expand-domain-memory-5000-digits",
    ),
    case(
        vnuma_expand,
        (domain("<vnuma mode='node'><partition cells='2'/></vnuma>"), caps(cell(0)) * 2),
        F,
        re.compile(rf"{EXPAND}guest g1: host capabilities is not well-formed XML: Extra content at the end of .+"),
        "expand-capabilities-two-documents",
    ),
    # -- cpuset_parse --------------------------------------------------------------------------------
    case(
        cpuset_parse,
        ("0," * 70000,),
        F,
        f"{PARSE}cpuset '{('0,' * 40)}'... (140000 characters) is 140000 characters long, above the limit of 131072",
        "cpuset-parse-too-long",
    ),
    case(
        cpuset_parse,
        ("0-16383," * 5,),
        F,
        f"{PARSE}cpuset '{'0-16383,' * 5}': its ranges cover more than 65536 ids in total, the limit; "
        "write each id once",
        "cpuset-parse-ranges-overlap",
    ),
    case(
        cpuset_parse,
        ("0-99999999",),
        F,
        f"{PARSE}cpuset '0-99999999': 99999999 {CPUSET_LIMIT}",
        "cpuset-parse-range-above-limit",
    ),
    case(
        cpuset_parse,
        (DIGITS,),
        F,
        f"{PARSE}cpuset '{DIGITS[:80]}'... (5000 characters): {DIGITS[:80]}... (5000 digits) {CPUSET_LIMIT}",
        "cpuset-parse-5000-digits",
    ),
    case(cpuset_parse, ("\u0663",), F, f"{PARSE}cpuset '\u0663': '\u0663' {NOT_INT}", "cpuset-parse-arabic-digit"),
    case(cpuset_parse, ("+1",), F, f"{PARSE}cpuset '+1': '+1' {NOT_INT}", "cpuset-parse-plus-sign"),
    case(cpuset_parse, ("1_0",), F, f"{PARSE}cpuset '1_0': '1_0' {NOT_INT}", "cpuset-parse-underscore"),
    case(
        cpuset_parse,
        ("^0-3",),
        F,
        f"{PARSE}cpuset '^0-3': an exclusion takes one id, not the range '0-3'",
        "cpuset-parse-exclusion-range",
    ),
    case(cpuset_parse, (HUGE,), F, f"{PARSE}the input about 10^5000 is outside 0-16383", "cpuset-parse-huge-int"),
    case(cpuset_parse, (-1,), F, f"{PARSE}the input -1 is outside 0-16383", "cpuset-parse-negative-int"),
    case(
        cpuset_parse,
        ("0",),
        F,
        f"{PARSE}allow_empty must be true or false, got int",
        "cpuset-parse-allow-empty-int",
        allow_empty=1,
    ),
    # -- cpuset_format --------------------------------------------------------------------------------
    case(
        cpuset_format,
        ([0, HUGE],),
        F,
        f"{FORMAT}the input: CPU id about 10^5000 is outside 0-16383",
        "cpuset-format-huge-int",
    ),
    case(cpuset_format, ([-1],), F, f"{FORMAT}the input: CPU id -1 is outside 0-16383", "cpuset-format-negative"),
    case(
        cpuset_format,
        ([True],),
        F,
        f"{FORMAT}the input must hold CPU ids (integers), got bool True",
        "cpuset-format-bool",
    ),
    case(
        cpuset_format,
        (["1"],),
        F,
        f"{FORMAT}the input must hold CPU ids (integers), got str '1'",
        "cpuset-format-text-id",
    ),
    case(
        cpuset_format, ("0-3",), F, f"{FORMAT}the input must be a list of CPU ids, got str", "cpuset-format-not-a-list"
    ),
    # -- spec options and the guest shape, below the filters -------------------------------------------------------
    case(
        VnumaSpec.from_mapping,
        ({"mode": "node", "cells": 10**9},),
        SpecError,
        f"cells 1000000000 {CELLS_RANGE}",
        "spec-cells-billion",
    ),
    case(
        VnumaSpec.from_mapping,
        ({"mode": "host", "cells": 2},),
        SpecError,
        f"cells 2 {HOST_MODE}",
        "spec-host-mode-cells",
    ),
    case(VnumaSpec.from_mapping, ({"nodeset": 3},), SpecError, f"nodeset '3' {HOST_MODE}", "spec-default-mode-nodeset"),
    case(
        VnumaSpec.from_mapping,
        ({"memory": 2**43},),
        SpecError,
        f"memory 8796093022208 KiB {MEMORY_LIMIT}",
        "spec-memory-int-above-limit",
    ),
    case(
        VnumaSpec.from_mapping,
        ({"memory": "\u0662\u0665\u0666"},),
        SpecError,
        "memory: '\u0662\u0665\u0666' is not a size such as '16 GiB' or 524288",
        "spec-memory-arabic-digits-no-unit",
    ),
    case(
        VnumaSpec.from_mapping,
        ({"hugepages": 0},),
        SpecError,
        "hugepages 0 must be a positive integer",
        "spec-hugepages-zero",
    ),
    case(
        VnumaSpec.from_mapping,
        ({"max_memory": "8 GiB", "memory_slots": True},),
        SpecError,
        f"memory_slots True {SLOTS_RANGE}",
        "spec-slots-bool",
    ),
    case(
        VnumaSpec.from_mapping,
        ({"cpuless_cells": "yes"},),
        SpecError,
        "cpuless_cells 'yes' must be true or false",
        "spec-cpuless-cells-text",
    ),
    case(
        VnumaSpec.from_mapping,
        ({"mode": "node", "nodeset": [0, 1]},),
        SpecError,
        "nodeset must be a string in libvirt cpuset syntax, got list",
        "spec-nodeset-list",
    ),
    case(
        VnumaSpec,
        (),
        SpecError,
        f"cells 129 {CELLS_RANGE}",
        "spec-direct-cells-one-above-limit",
        mode="node",
        cells=129,
    ),
    case(
        VnumaSpec, (), SpecError, f"memory 5 PiB {MEMORY_LIMIT}", "spec-direct-memory-above-limit", memory_kib=5 * PIB
    ),
    case(
        GuestShape,
        (),
        SpecError,
        f"guest g1: vcpus 4097 {VCPUS_RANGE}",
        "shape-vcpus-one-above-limit",
        vcpus=4097,
        name="g1",
    ),
    case(
        GuestShape,
        (),
        SpecError,
        f"memory 5 PiB {MEMORY_LIMIT}",
        "shape-memory-above-limit",
        vcpus=4,
        memory_kib=5 * PIB,
    ),
    case(
        distribute_vcpus,
        (10**9, 2, "contiguous"),
        SpecError,
        f"vcpus 1000000000 {VCPUS_RANGE}",
        "distribute-vcpus-pure-billion",
    ),
    case(
        distribute_vcpus,
        (8, 10**9, "interleave"),
        SpecError,
        f"cells 1000000000 {CELLS_RANGE}",
        "distribute-cells-pure-billion",
    ),
    case(
        parse_size,
        ("16 \uff27iB",),
        SpecError,
        "memory: '16 \uff27iB' is not a size such as '16 GiB' or 524288",
        "size-fullwidth-unit-letter",
    ),
    case(
        parse_size,
        ("16 GiB",),
        SpecError,
        "hotplug_memory '16 GiB' is above the limit of 8 GiB",
        "size-above-caller-limit",
        what="hotplug_memory",
        limit=8 * GIB,
        why="",
    ),
    case(parse_int, ("\u0660",), SpecError, f"count '\u0660' {NOT_INT}", "int-arabic-zero", what="count"),
    case(parse_int, ("0x10",), SpecError, f"count '0x10' {NOT_INT}", "int-hex", what="count"),
    case(
        parse_int,
        ("18446744073709551616",),
        SpecError,
        "count 18446744073709551616 is above the limit of 18446744073709551615",
        "int-above-unsigned-long-long",
        what="count",
    ),
    case(spec_from_element, (None,), XmlError, "expected a <vnuma> element, got nothing", "vnuma-element-missing"),
    case(
        element,
        ("<vnuma mode='host'><partition cells='2'/></vnuma>",),
        SpecError,
        f"<vnuma>: cells 2 {HOST_MODE}",
        "vnuma-element-host-mode-cells",
    ),
    case(
        element,
        ("<vnuma cpuless_cells='\uff11'/>",),
        SpecError,
        "<vnuma cpuless_cells='\uff11'> must be yes or no",
        "vnuma-element-fullwidth-boolean",
    ),
    # -- host capabilities documents ----------------------------------------------------------------------
    case(
        parse_capabilities,
        ("<capabilities><host>",),
        XmlError,
        re.compile(r"host capabilities is not well-formed XML: .+"),
        "caps-malformed",
    ),
    case(
        parse_capabilities,
        ("<domain/>",),
        XmlError,
        "host capabilities must have a <capabilities> root element, found <domain>",
        "caps-wrong-root",
    ),
    case(
        parse_capabilities,
        ("<capabilities/>",),
        TopologyError,
        re.compile(r"host capabilities: no <host><topology><cells>, so no NUMA topology to plan with .*"),
        "caps-no-cells",
    ),
    case(
        parse_capabilities,
        (caps(""),),
        TopologyError,
        re.compile(r"host capabilities: <cells> lists no <cell>, .*"),
        "caps-empty-cells",
    ),
    case(
        parse_capabilities,
        (caps(cell(1024)),),
        XmlError,
        f"host capabilities: <cell id='1024'>: id 1024 {NODE_LIMIT}",
        "caps-node-id-above-limit",
    ),
    case(
        parse_capabilities,
        (caps(cell(DIGITS)),),
        XmlError,
        f"host capabilities: <cell id='{DIGITS[:40]}...'>: id {DIGITS[:80]}... (5000 digits) {NODE_LIMIT}",
        "caps-node-id-5000-digits",
    ),
    case(
        parse_capabilities,
        (caps(cell(-1)),),
        XmlError,
        f"host capabilities: <cell id='-1'>: id '-1' {NOT_INT}",
        "caps-node-id-negative",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, cpu(99999999))),),
        XmlError,
        "host capabilities: <cpu id='99999999' socket_id='0' core_id='0' siblings='99999999'>: id 99999999 "
        f"{CPU_LIMIT}",
        "caps-cpu-id-above-limit",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, cpu(0, "0,9000"))),),
        XmlError,
        f"host capabilities: <cpu id='0' socket_id='0' core_id='0' siblings='0,9000'> in host node 0: siblings "
        f"'0,9000': 9000 {CPU_LIMIT}",
        "caps-siblings-above-limit",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, "<memory unit='KiB'>" + "1" + "0" * 30 + "</memory>")),),
        XmlError,
        f"host capabilities: <memory unit='KiB'> content: 1{'0' * 30} KiB {MEMORY_LIMIT}",
        "caps-memory-10-to-the-30",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, "<memory unit='EiB'>1</memory>")),),
        XmlError,
        f"host capabilities: <memory unit='EiB'> content: 1 EiB {MEMORY_LIMIT}",
        "caps-memory-exbibyte",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, "<memory unit='KiB'>" + DIGITS + "</memory>")),),
        XmlError,
        f"host capabilities: <memory unit='KiB'> content: {DIGITS[:80]}... (5000 digits) KiB {MEMORY_LIMIT}",
        "caps-memory-5000-digits",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, "<pages unit='KiB' size='2048'>4294967296</pages>")),),
        XmlError,
        "host capabilities: <pages unit='KiB' size='2048'>: content 4294967296 is above the limit of 2147483648 "
        "(4 PiB in 2 MiB pages, all a 52-bit physical address space holds)",
        "caps-page-pool-above-limit",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, "<pages unit='GiB' size='32'>1</pages>")),),
        XmlError,
        f"host capabilities: <pages unit='GiB' size='32'> size: 32 GiB {PAGE_LIMIT}",
        "caps-page-size-above-limit",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, "<pages unit='KiB' size='0'>1</pages>")),),
        XmlError,
        "host capabilities: <pages unit='KiB' size='0'>: a page size of 0 KiB is no page size",
        "caps-page-size-zero",
    ),
    case(
        parse_capabilities,
        (caps(cell(0), "<cpu><pages unit='TiB' size='1'/></cpu>"),),
        XmlError,
        f"host capabilities: <pages unit='TiB' size='1'> size: 1 TiB {PAGE_LIMIT}",
        "caps-host-page-size-above-limit",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, "<memory unit='parsec'>1</memory>")),),
        XmlError,
        "host capabilities: <memory unit='parsec'> content: unknown unit 'parsec' "
        "(use one of KiB, MiB, GiB, TiB, b, KB, MB, GB)",
        "caps-memory-unknown-unit",
    ),
    case(
        parse_capabilities,
        (caps(cell(0) + cell(0)),),
        TopologyError,
        "host capabilities: host node 0 is reported twice",
        "caps-duplicate-node",
    ),
    case(
        parse_capabilities,
        (caps(cell(0) + cell(1)),),
        TopologyError,
        "host capabilities: host CPU 0 is reported in host nodes 0 and 1",
        "caps-duplicate-cpu",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, "<distances><sibling id='0' value='20'/></distances>")),),
        TopologyError,
        "host capabilities: host node 0 reports distance 20 to itself; it must be 10",
        "caps-distance-to-self",
    ),
    case(
        parse_capabilities,
        (
            caps(
                cell(0, "<distances><sibling id='0' value='10'/><sibling id='1' value='256'/></distances>")
                + cell(1, cpu(1))
            ),
        ),
        TopologyError,
        "host capabilities: host node 0 reports distance 256 to node 1; distances between two nodes must be 11-255",
        "caps-distance-above-255",
    ),
    case(
        parse_capabilities,
        (caps(cell(0, "<distances><sibling id='7' value='20'/></distances>")),),
        TopologyError,
        "host capabilities: host node 0 reports a distance to node 7, which is not a host node",
        "caps-distance-to-unknown-node",
    ),
    case(
        parse_capabilities,
        (caps(cell("\u0663")),),
        XmlError,
        f"host capabilities: <cell id='\u0663'>: id '\u0663' {NOT_INT}",
        "caps-node-id-arabic-digit",
    ),
    case(
        parse_capabilities,
        ("<!DOCTYPE capabilities [<!ENTITY a 'b'>]><capabilities>&a;</capabilities>",),
        XmlError,
        "host capabilities declares a DTD or entity, which is refused",
        "caps-entity",
    ),
    case(
        parse_capabilities,
        ("<x/>" * (MAX_CAPABILITIES_BYTES // 4 + 1),),
        XmlError,
        f"host capabilities is {MAX_CAPABILITIES_BYTES + 4} characters long, "
        f"above the limit of {MAX_CAPABILITIES_BYTES}",
        "caps-text-above-size-limit",
    ),
    case(
        parse_capabilities,
        (b"<?xml version='1.0' encoding='bogus'?><capabilities/>",),
        XmlError,
        re.compile(r"host capabilities cannot be decoded: Unsupported encoding: bogus.*" + re.escape(DECODE)),
        "caps-bytes-unknown-encoding",
    ),
    case(
        vnuma_layout,
        (nodes_with_cpus(130), {}),
        F,
        f"{LAYOUT}mode host mirrors the host's 130 nodes with CPUs: 130 guest cells {CELLS_LIMIT}; use mode node "
        "with fewer cells",
        "layout-host-mode-130-nodes",
        vcpus=256,
        memory="130 GiB",
    ),
    # -- host_capabilities as a file ---------------------------------------------------------------------------------
    case(
        read_host_capabilities,
        (File("fifo"),),
        SpecError,
        "host_capabilities {path} is a FIFO, not a regular file of capabilities XML",
        "file-fifo",
    ),
    case(
        read_host_capabilities,
        ("/dev/zero",),
        SpecError,
        "host_capabilities '/dev/zero' is a character device, not a regular file of capabilities XML",
        "file-dev-zero",
    ),
    case(
        read_host_capabilities,
        (File("dir"),),
        SpecError,
        "host_capabilities {path} is a directory, not a regular file of capabilities XML",
        "file-directory",
    ),
    case(
        read_host_capabilities,
        (File("socket"),),
        SpecError,
        "host_capabilities {path} is a socket, not a regular file of capabilities XML",
        "file-socket",
    ),
    case(
        read_host_capabilities,
        (File("missing"),),
        SpecError,
        "host_capabilities: cannot read {path}: No such file or directory",
        "file-missing",
    ),
    case(
        read_host_capabilities,
        (File("sparse", size=MAX_CAPABILITIES_BYTES + 1),),
        SpecError,
        f"host_capabilities {{path}} is {MAX_CAPABILITIES_BYTES + 1} bytes, "
        f"above the limit of {MAX_CAPABILITIES_BYTES}",
        "file-above-size-limit",
    ),
    case(
        read_host_capabilities,
        (File("file", RING.replace("<capabilities>", "<capabilities><!-- \u00e9 -->").encode("latin-1")),),
        XmlError,
        re.compile(
            r"host_capabilities {path} cannot be decoded: Invalid bytes in character encoding.*" + re.escape(DECODE)
        ),
        "file-latin1-undeclared",
    ),
    case(
        read_host_capabilities,
        (
            File(
                "file",
                (
                    "<?xml version='1.0' encoding='UTF-8'?>"
                    + RING.replace("</capabilities>", "<!-- \u00e9 --></capabilities>")
                ).encode("latin-1"),
            ),
        ),
        XmlError,
        re.compile(
            r"host_capabilities {path} cannot be decoded: Invalid bytes in character encoding.*" + re.escape(DECODE)
        ),
        "file-declared-utf8-holds-latin1",
    ),
    case(
        read_host_capabilities,
        (File("file", RING.encode("utf-16-le")),),
        XmlError,
        re.compile(r"host_capabilities {path} is not well-formed XML: .+"),
        "file-utf16-without-bom-or-declaration",
    ),
    case(
        read_host_capabilities,
        (File("file", b""),),
        XmlError,
        re.compile(r"host_capabilities {path} is not well-formed XML: Document is empty.*"),
        "file-empty",
    ),
    case(
        read_host_capabilities,
        (File("file", b"\0" * 4096),),
        XmlError,
        re.compile(r"host_capabilities {path} is not well-formed XML: .+"),
        "file-nul-bytes",
    ),
    case(
        read_host_capabilities,
        (File("file", b"<domain/>"),),
        XmlError,
        "host_capabilities {path} must have a <capabilities> root element, found <domain>",
        "file-wrong-root",
    ),
    case(
        read_host_capabilities,
        (File("file", caps(cell(0, cpu(99999999))).encode()),),
        XmlError,
        "host_capabilities {path}: <cpu id='99999999' socket_id='0' core_id='0' siblings='99999999'>: id 99999999 "
        f"{CPU_LIMIT}",
        "file-cpu-id-above-limit",
    ),
    case(
        read_host_capabilities,
        (42,),
        SpecError,
        "host_capabilities must be XML text or a path, got int",
        "file-not-a-string",
    ),
]


def _resolve(value: Any, directory: Path) -> Any:
    return value.make(directory) if isinstance(value, File) else value


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_is_refused_clearly_and_changes_nothing(bad: Case, tmp_path: Path) -> None:
    args = tuple(_resolve(arg, tmp_path) for arg in bad.args)
    paths = [arg for arg, given in zip(args, bad.args, strict=True) if isinstance(given, File)]
    before_args, before_kwargs = copy.deepcopy(args), copy.deepcopy(bad.kwargs)
    before_files = {path: Path(path).read_bytes() for path in paths if Path(path).is_file()}
    tracemalloc.start()
    try:
        with pytest.raises(bad.error) as caught:
            bad.call(*args, **bad.kwargs)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    expected = bad.message
    if paths:
        path = repr(paths[0])
        expected = (
            re.compile(expected.pattern.replace("{path}", re.escape(path)))
            if isinstance(expected, re.Pattern)
            else expected.replace("{path}", path)
        )
    if isinstance(expected, re.Pattern):
        assert re.fullmatch(expected.pattern, message, re.DOTALL), message
    else:
        assert message == expected
    # The collection's own error: a VnumaError below the glue; a filter's error is raised by the glue itself
    # or keeps the VnumaError it turned into a filter error as its cause.
    if bad.error is F:
        assert caught.value.__cause__ is None or isinstance(caught.value.__cause__, VnumaError)
    else:
        assert isinstance(caught.value, VnumaError)
    # Nothing changed: the input structures and files are as they were.
    assert args == before_args
    assert bad.kwargs == before_kwargs
    assert {path: Path(path).read_bytes() for path in before_files} == before_files
    # Bounded: nothing was built in proportion to a huge number before the refusal.
    assert peak < _PEAK_BYTES, f"{peak} bytes allocated before the refusal"


def test_the_table_covers_at_least_60_kinds() -> None:
    ids = [param.id for param in CASES]
    assert len(ids) == len(set(ids)) >= 60
