# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""libvirt's host capabilities XML (``virConnectGetCapabilities()``) to a ``HostTopology`` and back.

Only ``<host><topology>`` (the cells, their memory-side caches, and the HMAT ``<interconnects>``), the
host's page sizes (``<host><cpu><pages>``) and its CPU cache banks (``<host><cache>``) are read; the
rest of the document (guests, security models) is ignored.  The format is libvirt's
(https://libvirt.org/formatcaps.html); the quirks it has in the wild are handled here:

- a node without memory has no ``<memory>`` element at all (libvirt prints it only when non-zero);
- an offline CPU is a bare ``<cpu id='N'/>`` (libvirt leaves out its topology, it cannot read it);
- ``<distances>`` is absent from the test driver and from a libvirt built without numactl (with it,
  Linux always has distances: the firmware's SLIT, or 10/20 without one);
- ``<cells num>`` is a count libvirt prints, not something to rely on: the ``<cell>`` elements are.

(libvirt's formatter: virCapabilitiesHostNUMAFormat() and virCapsHostNUMACellCPUFormat() in
https://gitlab.com/libvirt/libvirt/-/blob/master/src/conf/capabilities.c)

The host's distances are checked when its ``HostTopology`` is built (``_core/topology.py``, the one
check for every way a host is read: 10 to itself, 11-255 to other existing nodes, as
the kernel requires of a SLIT before it uses one, see slit_valid() in
https://github.com/torvalds/linux/blob/master/drivers/acpi/numa/srat.c): they end up in guest
definitions, and libvirt 9.0 writes past a heap array when it rejects a bad ``<distances>`` value
instead of failing cleanly.
"""

from __future__ import annotations

import functools
import os
import stat
import threading
from collections import OrderedDict
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, TopologyError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import (
    HMAT_ACCESS_TYPES,
    HOST_CPU_ID_REASON,
    MAX_CACHE_LEVEL,
    MAX_HOST_CPU_ID,
    MAX_NODE_ID,
    NODE_ID_REASON,
    HostCache,
    HostCacheBank,
    HostCpu,
    HostInterconnect,
    HostNode,
    HostTopology,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    MAX_INTEGER,
    MAX_MEMORY_KIB,
    MAX_PAGE_KIB,
    MEMORY_LIMIT_REASON,
    PAGE_LIMIT_REASON,
    format_kib,
    parse_int,
    plain_int,
    shown,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.hmat import cache_line_bytes
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import read_size_kib, string_value

__all__ = ["MAX_CAPABILITIES_BYTES", "parse_capabilities", "read_host_capabilities"]

# The largest capabilities document read, from a file or as text: 4 MiB, libvirt's REMOTE_STRING_MAX
# (src/remote/remote_protocol.x): libvirtd hands out no longer string, so no real host's document is
# larger (a real 8-node, 448-CPU host takes 100 KiB).  Checked before anything is read or parsed, so the
# work on any input is bounded by this size (a 3.4 MiB document parses in about 0.4 s).
MAX_CAPABILITIES_BYTES = 4 * 1024 * 1024

_NO_SIBLINGS: frozenset[int] = frozenset()

# The attributes of an online CPU as libvirt writes them (virCapsHostNUMACellCPUFormat), in its order.
_CPU_ATTRIBUTES = ["id", "socket_id", "die_id", "core_id", "siblings"]

_new_tuple = tuple.__new__

# Ids below this are converted by table lookup (see _canonical_ids); larger ones still parse, more slowly.
_FAST_IDS = 4096


def _describe(element: Any) -> str:
    """``<cpu id='3' core_id='x'>``: the element as a reader would look for it in the document."""
    attrs = " ".join(f"{name}='{_short(value)}'" for name, value in element.attrib.items())
    return f"<{element.tag} {attrs}>" if attrs else f"<{element.tag}>"


def _short(value: str) -> str:
    # A hostile document's attribute may be megabytes long: the message keeps its start.
    return value if len(value) <= 40 else f"{value[:40]}..."


def _number(raw: str | None, name: str, element: Any, what: str, limit: int = MAX_INTEGER, why: str = "") -> int:
    """A non-negative decimal integer of ASCII digits, at most ``limit`` (the one parser, ``parse_int``)."""
    # Machine-written digits take the fast path; the message naming the element is built only when
    # the careful path needs it.
    value = plain_int(raw, limit)
    if value is not None:
        return value
    if raw is None:
        raise XmlError(f"{what}: {_describe(element)} has no {name}")
    return parse_int(raw, f"{what}: {_describe(element)}: {name}", limit, why, XmlError)


def _optional_number(element: Any, name: str, what: str) -> int | None:
    raw = element.get(name)
    return None if raw is None else _number(raw, name, element, what)


def _size(raw: str | None, name: str, element: Any, what: str, limit: int, why: str) -> int:
    """A size (``name`` is ``content`` or an attribute) in the element's unit, in KiB, at most ``limit``.

    The XML layer's one reader of sizes (``values.read_size_kib``); KiB is the default unit of every size here.
    """
    if raw is None:
        raise XmlError(f"{what}: {_describe(element)} has no {name}")
    return read_size_kib(raw, element.get("unit"), f"{what}: {_describe(element)} {name}", limit=limit, why=why)


def _page_size(element: Any, what: str) -> int:
    kib = _size(element.get("size"), "size", element, what, MAX_PAGE_KIB, PAGE_LIMIT_REASON)
    if kib == 0:
        raise XmlError(f"{what}: {_describe(element)}: a page size of 0 KiB is no page size")
    return kib


@functools.cache
def _canonical_ids() -> dict[str, int]:
    """``"0"`` .. ``"4095"`` to their values: what almost every id in a document looks like.

    A lookup here both checks and converts an id several times faster than ``_number``; anything not
    found (larger, padded, malformed or missing) takes the careful path and its error messages.
    """
    return {str(value): value for value in range(_FAST_IDS)}


def _siblings(raw: str, element: Any, node_id: int, what: str, ids: dict[str, int]) -> frozenset[int]:
    try:
        return frozenset(map(ids.__getitem__, raw.split(",")))
    except KeyError:
        pass
    try:
        return parse_cpuset(raw, "siblings", allow_empty=True, limit=MAX_HOST_CPU_ID, why=HOST_CPU_ID_REASON)
    except SpecError as error:
        raise XmlError(f"{what}: {_describe(element)} in host node {node_id}: {error.message}") from None


def _parse_cpus(cpus: Any, node_id: int, what: str, siblings_cache: dict[str, frozenset[int]]) -> list[HostCpu]:
    # The hot loop of a big host (1024 CPUs and more): lookups in place of calls wherever possible.
    ids = _canonical_ids()
    parsed: list[HostCpu] = []
    append = parsed.append
    for element in cpus.iterchildren("cpu"):
        if element.keys() == _CPU_ATTRIBUTES:
            # libvirt's own spelling of an online CPU: two calls read all five values, in that order.
            raw_id, raw_socket, raw_die, raw_core, raw_siblings = element.values()
        else:
            get = element.get
            raw_id, raw_socket, raw_die = get("id"), get("socket_id"), get("die_id")
            raw_core, raw_siblings = get("core_id"), get("siblings")
        try:
            cpu_id = ids[raw_id]
            socket_id = None if raw_socket is None else ids[raw_socket]
            die_id = None if raw_die is None else ids[raw_die]
            core_id = None if raw_core is None else ids[raw_core]
        except KeyError:
            cpu_id = _number(raw_id, "id", element, what, MAX_HOST_CPU_ID, HOST_CPU_ID_REASON)
            socket_id = _optional_number(element, "socket_id", what)
            die_id = _optional_number(element, "die_id", what)
            core_id = _optional_number(element, "core_id", what)
        if raw_siblings is None:
            siblings = _NO_SIBLINGS
        elif raw_siblings in siblings_cache:
            # Every thread of a core carries the same siblings text: parse each distinct one once.
            siblings = siblings_cache[raw_siblings]
        else:
            siblings = siblings_cache[raw_siblings] = _siblings(raw_siblings, element, node_id, what, ids)
        # HostCpu(...) without the keyword handling of its __new__: the fields in their order.
        append(_new_tuple(HostCpu, (cpu_id, socket_id, die_id, core_id, siblings)))
    return parsed


# libvirt's words for a memory-side cache (virNumaCacheAssociativity, virNumaCachePolicy).
_ASSOCIATIVITIES = ("none", "direct", "full")
_CACHE_POLICIES = ("none", "writeback", "writethrough")


def _word(element: Any, name: str, words: tuple[str, ...], what: str) -> str | None:
    value: str | None = element.get(name)
    if value is not None and value not in words:
        raise XmlError(f"{what}: {_describe(element)}: {name} {shown(value)} is not one of {', '.join(words)}")
    return value


def _parse_cache(element: Any, what: str) -> HostCache:
    """``<cache level associativity policy><size value unit/><line value unit/></cache>`` of a cell."""
    level = _number(element.get("level"), "level", element, what, MAX_CACHE_LEVEL, "HMAT's cache levels")
    size = element.find("size")
    if size is None:
        raise XmlError(f"{what}: {_describe(element)} has no <size>")
    size_kib = _size(size.get("value"), "value", size, what, MAX_MEMORY_KIB, MEMORY_LIMIT_REASON)
    return HostCache(
        level=level,
        size_kib=size_kib,
        line_bytes=cache_line_bytes(element.find("line"), f"{what}: {_describe(element)}") or 0,
        associativity=_word(element, "associativity", _ASSOCIATIVITIES, what),
        policy=_word(element, "policy", _CACHE_POLICIES, what),
    )


def _parse_interconnects(element: Any, what: str) -> list[HostInterconnect]:
    """``<interconnects>``: ``<latency|bandwidth initiator target [cache] type value [unit]/>``."""
    entries = []
    for entry in element.iterchildren("latency", "bandwidth"):
        kind = entry.tag
        if kind == "latency":
            value = _number(entry.get("value"), "value", entry, what)
        else:
            # A bandwidth is a size per second: KiB unless the unit says otherwise.
            value = _size(entry.get("value"), "value", entry, what, MAX_INTEGER, "")
        access = entry.get("type")
        if access not in HMAT_ACCESS_TYPES:
            raise XmlError(
                f"{what}: {_describe(entry)}: type {shown(access)} is not one of {', '.join(HMAT_ACCESS_TYPES)}"
            )
        entries.append(
            HostInterconnect(
                kind=kind,
                initiator=_number(entry.get("initiator"), "initiator", entry, what, MAX_NODE_ID, NODE_ID_REASON),
                target=_number(entry.get("target"), "target", entry, what, MAX_NODE_ID, NODE_ID_REASON),
                access=access,
                value=value,
                cache=_optional_number(entry, "cache", what) or 0,
            )
        )
    return entries


# libvirt's words for a CPU cache bank's type (virCacheType).
_BANK_TYPES = ("both", "code", "data")
# The deepest CPU cache level any CPU has (x86 and arm64 report up to L4 on a few parts).
_MAX_CPU_CACHE_LEVEL = 4


def _parse_cache_banks(element: Any, what: str) -> list[HostCacheBank]:
    """``<host><cache>``: ``<bank id level type size unit cpus>`` (its ``<control>`` children are resctrl's)."""
    banks = []
    for bank in element.iterchildren("bank"):
        kind = _word(bank, "type", _BANK_TYPES, what) or "both"
        cpus = bank.get("cpus")
        if cpus is None:
            raise XmlError(f"{what}: {_describe(bank)} has no cpus")
        try:
            cpu_ids = parse_cpuset(cpus, "cpus", limit=MAX_HOST_CPU_ID, why=HOST_CPU_ID_REASON)
        except SpecError as error:
            raise XmlError(f"{what}: {_describe(bank)}: {error.message}") from None
        banks.append(
            HostCacheBank(
                id=_number(bank.get("id"), "id", bank, what),
                level=_number(bank.get("level"), "level", bank, what, _MAX_CPU_CACHE_LEVEL, "CPU cache levels"),
                kind=kind,
                size_kib=_size(bank.get("size"), "size", bank, what, MAX_MEMORY_KIB, MEMORY_LIMIT_REASON),
                cpus=cpu_ids,
            )
        )
    return banks


def _parse_cell(cell: Any, what: str, siblings_cache: dict[str, frozenset[int]]) -> HostNode:
    node_id = _number(cell.get("id"), "id", cell, what, MAX_NODE_ID, NODE_ID_REASON)
    memory_kib = 0
    pages: list[tuple[int, int]] = []
    distances: list[tuple[int, int]] = []
    cpus: list[HostCpu] = []
    caches: list[HostCache] = []
    for child in cell.iterchildren("memory", "pages", "distances", "cpus", "cache"):
        tag = child.tag
        if tag == "cache":
            caches.append(_parse_cache(child, f"{what}: host node {node_id}"))
        elif tag == "memory":
            # Comments inside are left out, as libvirt reads the value (values.string_value).
            content = (string_value(child) or None) if len(child) else child.text
            memory_kib = _size(content, "content", child, what, MAX_MEMORY_KIB, MEMORY_LIMIT_REASON)
        elif tag == "pages":
            size = _page_size(child, what)
            # The pool's size has the node memory's limit: the count is at most that over the size.
            content = (string_value(child) or None) if len(child) else child.text
            count = plain_int(content, MAX_MEMORY_KIB // size)
            if count is None:
                count = _number(
                    content,
                    "content",
                    child,
                    what,
                    MAX_MEMORY_KIB // size,
                    f"{format_kib(MAX_MEMORY_KIB)} in {format_kib(size)} pages, {MEMORY_LIMIT_REASON}",
                )
            pages.append((size, count))
        elif tag == "distances":
            ids = _canonical_ids()
            for sibling in child.iterchildren("sibling"):
                raw_id, raw_value = sibling.get("id"), sibling.get("value")
                try:
                    distances.append((ids[raw_id], ids[raw_value]))
                except KeyError:
                    distances.append((_number(raw_id, "id", sibling, what), _number(raw_value, "value", sibling, what)))
        else:
            cpus.extend(_parse_cpus(child, node_id, what, siblings_cache))
    pages.sort()
    return HostNode(
        id=node_id,
        memory_kib=memory_kib,
        cpus=tuple(cpus),
        pages=tuple(pages),
        distances=tuple(distances),
        caches=tuple(sorted(caches)),
    )


# Linux's PATH_MAX.
_PATH_MAX = 4096

_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _file_kind(mode: int) -> str | None:
    """What a non-regular file is, for the message; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


def _read_at_most(handle: Any, limit: int) -> bytes:
    """At most ``limit`` bytes, read in pieces: ``read(limit)`` would set aside ``limit`` bytes for any file."""
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        chunk = handle.read(min(_CHUNK, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


_CHUNK = 1024 * 1024


def read_host_capabilities(value: str) -> str | bytes:
    """``host_capabilities`` is XML text (returned as it is), or the path of a file holding it.

    A file is returned as bytes, after checking that it parses: the XML parser decodes it as its own
    XML declaration or byte order mark says (UTF-8 without either), and every refusal names
    ``host_capabilities`` and the path.  (The parse is kept: ``parse_capabilities`` of the bytes
    returned costs nothing more.)  Only a regular file of at most ``MAX_CAPABILITIES_BYTES`` is read:
    a FIFO would block the run, a device such as /dev/zero never ends, and a directory is a mistake;
    each is refused before it is opened for reading.
    """
    if not isinstance(value, str):
        raise SpecError(f"host_capabilities must be XML text or a path, got {type(value).__name__}")
    if value.lstrip().lstrip("\ufeff").startswith("<"):
        return value
    path = os.path.expanduser(value)
    # The path in full (as long as a path can be), so that the user finds the file the message means.
    shown_path = repr(value) if len(value) <= _PATH_MAX else shown(value)
    what = f"host_capabilities {shown_path}"
    try:
        # stat() first: opening a FIFO blocks until a writer comes, and opening some devices acts.
        kind = _file_kind(os.stat(path).st_mode)
        if kind is not None:
            raise SpecError(f"{what} is {kind}, not a regular file of capabilities XML")
        # O_NONBLOCK: should the path have become a FIFO since, opening it still does not block.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            kind = _file_kind(status.st_mode)
            if kind is not None:
                raise SpecError(f"{what} is {kind}, not a regular file of capabilities XML")
            if status.st_size > MAX_CAPABILITIES_BYTES:
                raise SpecError(f"{what} is {status.st_size} bytes, above the limit of {MAX_CAPABILITIES_BYTES}")
            # One byte past the limit tells a file that grew since fstat() (or that lies, as /proc does).
            data = _read_at_most(handle, MAX_CAPABILITIES_BYTES + 1)
    except OSError as error:
        raise SpecError(f"host_capabilities: cannot read {shown_path}: {error.strerror}") from None
    if len(data) > MAX_CAPABILITIES_BYTES:
        raise SpecError(f"{what} holds more than {MAX_CAPABILITIES_BYTES} bytes, the limit")
    parse_capabilities(data, what)
    return data


def parse_capabilities(text: object, what: str = "host capabilities") -> HostTopology:
    """Read the host NUMA topology out of libvirt capabilities XML; ``what`` names the document in errors.

    Malformed or unsafe XML raises ``XmlError``; a document without NUMA cells, or whose cells contradict
    each other (a node or CPU twice, impossible distances), raises ``TopologyError``.

    Templating a fleet expands many guests against the same host document, so the last few parsed
    hosts are kept: a ``HostTopology`` is immutable and safe to share.  They are kept by the text
    alone: ``what`` only names the document in refusals, which are not kept.

    A document longer than ``MAX_CAPABILITIES_BYTES`` is refused before it is parsed, and anything
    but text (``str`` or ``bytes``) before that.
    """
    if not isinstance(text, str | bytes):
        raise XmlError(f"{what} must be XML text, got {type(text).__name__}")
    if len(text) > MAX_CAPABILITIES_BYTES:
        unit = "bytes" if isinstance(text, bytes) else "characters"
        raise XmlError(f"{what} is {len(text)} {unit} long, above the limit of {MAX_CAPABILITIES_BYTES}")
    with _PARSED_LOCK:
        found = _PARSED.get(text)
        if found is not None:
            _PARSED.move_to_end(text)
            return found
    topology = _parse(text, what)
    with _PARSED_LOCK:
        _PARSED[text] = topology
        while len(_PARSED) > _PARSED_KEPT:
            _PARSED.popitem(last=False)
    return topology


# The last hosts parsed, least recently used first.
_PARSED: OrderedDict[str | bytes, HostTopology] = OrderedDict()
_PARSED_KEPT = 8
_PARSED_LOCK = threading.Lock()


def _parse(text: str | bytes, what: str) -> HostTopology:
    root = parse_xml(text, what, root_tag="capabilities", keep_blank_text=False)
    host = root.find("host")
    topology = host.find("topology") if host is not None else None
    cells = topology.find("cells") if topology is not None else None
    if host is None or cells is None:
        raise TopologyError(
            f"{what}: no <host><topology><cells>, so no NUMA topology to plan with (the host or its libvirt "
            "driver reports none); give the capabilities XML of the host to plan for instead"
        )
    siblings_cache: dict[str, frozenset[int]] = {}
    nodes = [_parse_cell(cell, what, siblings_cache) for cell in cells.iterchildren("cell")]
    if not nodes:
        # What a custom test driver file (test:///path/to/file.xml) reports: <cells num='0'>.
        raise TopologyError(
            f"{what}: <cells> lists no <cell>, so no NUMA topology to plan with (the host or its libvirt "
            "driver reports none); give the capabilities XML of the host to plan for instead"
        )
    page_sizes = sorted({_page_size(pages, what) for pages in host.iterfind("cpu/pages")})
    if not page_sizes:
        page_sizes = sorted({size for node in nodes for size, _count in node.pages})
    # ``topology`` holds the cells found above, so it is there.
    interconnects = None if topology is None else topology.find("interconnects")
    caches = host.find("cache")
    banks = [] if caches is None else _parse_cache_banks(caches, what)
    try:
        return HostTopology(
            nodes=tuple(nodes),
            page_sizes_kib=tuple(page_sizes) if page_sizes else (4,),
            arch=(host.findtext("cpu/arch") or "").strip() or None,
            interconnects=() if interconnects is None else tuple(_parse_interconnects(interconnects, what)),
            cache_banks=tuple(sorted(banks, key=lambda bank: (bank.level, bank.id, bank.kind))),
        )
    except TopologyError as error:
        raise TopologyError(f"{what}: {error.message}") from None
