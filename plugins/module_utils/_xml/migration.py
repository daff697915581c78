# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""A guest that moves, in and out of its domain XML (docs/migration.md).

``moving_guest_from_xml`` reads what ``_core/move_planner.py:plan_destination`` needs from a domain XML
(the live XML of a running guest, or a saved image's XML) and the spec stored in its metadata.
``rewrite_host_bindings`` writes a ``DestinationPlan`` back: only the host side changes (``<numatune>``
nodesets, ``<vcpupin>``, ``<emulatorpin>``, ``<iothreadpin>``, ``<vcpu cpuset>``, memory devices'
``<source><nodemask>``); every other byte stays as it was, as libvirt's ABI check on a migration or a
restore wants for everything the guest sees.
"""

from __future__ import annotations

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import default_distance
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.move_models import (
    DestinationPlan,
    MovingCell,
    MovingGuest,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import holds_cpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import read_digits
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import binding_from_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cputune import Vcpupin
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import serialize_like
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import MemoryDevice
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.metadata import MetadataRecord
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.numatune import Memnode
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import insert_children
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import domain_name
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import read_stored_spec

__all__ = [
    "HOST_SIDE_PATHS",
    "MOVED_NS",
    "host_side",
    "mark_moved",
    "moved_from",
    "unmark_moved",
    "moving_guest_from_root",
    "moving_guest_from_xml",
    "rewrite_host_bindings",
    "rewrite_root",
    "status_domain",
    "stored_spec_of_move",
]

# What a move may change (docs/migration.md): the host side, nothing the guest sees.
HOST_SIDE_PATHS = (
    "numatune/memory[@nodeset]",
    "numatune/memnode[@nodeset]",
    "vcpu[@cpuset]",
    "cputune/vcpupin[@cpuset]",
    "cputune/emulatorpin[@cpuset]",
    "cputune/iothreadpin[@cpuset]",
    "devices/memory/source/nodemask",
)
# The elements of HOST_SIDE_PATHS that a domain may have several of, and the attribute that tells them apart in
# ``host_side``'s names ("": their position among the domain's elements of that path).
_REPEATED = {
    "numatune/memnode": "cellid",
    "cputune/vcpupin": "vcpu",
    "cputune/iothreadpin": "iothread",
    "devices/memory": "",
}


def _host_value(element: etree._Element | None, attribute: str) -> str | None:
    if element is None:
        return None
    if attribute:
        return element.get(attribute)
    return (element.text or "").strip()


def host_side(root: etree._Element) -> dict[str, str]:
    """The host-side values of the domain ``root`` (``HOST_SIDE_PATHS``), by path: what a move may change.

    A repeated element is named by what tells it apart (``cputune/vcpupin[3]/cpuset``,
    ``devices/memory[0]/source/nodemask``), so that the values before and after a move pair up.
    """
    values: dict[str, str] = {}
    for path in HOST_SIDE_PATHS:
        element_path, _separator, attribute = path.removesuffix("]").partition("[@")
        repeated = next((key for key in _REPEATED if f"{element_path}/".startswith(f"{key}/")), None)
        if repeated is None:
            for element in root.iterfind(element_path):
                value = _host_value(element, attribute)
                if value is not None:
                    values[f"{element_path}/{attribute}" if attribute else element_path] = value
            continue
        inner = element_path[len(repeated) + 1 :]
        for index, copy in enumerate(root.iterfind(repeated)):
            value = _host_value(copy.find(inner) if inner else copy, attribute)
            if value is not None:
                key = copy.get(_REPEATED[repeated], str(index)) if _REPEATED[repeated] else str(index)
                values["/".join(part for part in (f"{repeated}[{key}]", inner, attribute) if part)] = value
    return values


# The record that a guest moved with its topology kept (docs/migration.md): vnuma_domain keeps the topology
# of a guest that has it until asked to render the spec again (rerender: next_boot).  libvirt keeps one
# <metadata> child per namespace, so it has its own.
MOVED_NS = "urn:vnuma:libvirt:moved:1.0"
_MOVED_TAG = "moved"
_MOVED = MetadataRecord(MOVED_NS, _MOVED_TAG)


def moved_from(root: etree._Element) -> str | None:
    """How and from where the guest moved with its topology kept (``migrate from URI``), or None."""
    found = _MOVED.find(root)
    if not found:
        return None
    return f"{found[0].get('operation', 'a move')} from {found[0].get('source', 'another host')}"


def mark_moved(root: etree._Element, operation: str, source: str) -> None:
    """Record in ``<metadata>`` that the guest moved by ``operation`` from ``source``, its topology kept."""
    element = etree.Element(f"{{{MOVED_NS}}}{_MOVED_TAG}", nsmap={"vnuma-moved": MOVED_NS})
    element.set("operation", operation)
    element.set("source", source)
    _MOVED.put(root, element)


def unmark_moved(root: etree._Element) -> None:
    """Remove the record of a move (the spec is rendered for this host again), and ``<metadata>`` when that
    empties it."""
    _MOVED.remove(root)


def _name(root: etree._Element) -> str:
    return domain_name(root) or "(unnamed)"


def _pinning(numa: DomainNuma) -> str:
    """The pinning of a guest without a stored spec: dedicated (``thread``) when it holds a host CPU.

    Whether it holds one is the capacity check's rule (``_core/placement.py:held_cpus``, through
    ``holds_cpus``), so that the source's check and the planner read the guest alike.  The planner has one
    pinning per guest: a guest that holds some CPUs and floats over others (mixed pins) gets a CPU of its
    own for every vCPU on the destination.  Read as shared, its vCPUs would float over whatever the
    destination leaves, a single CPU too, which the capacity check then counts as held beside the other
    guests' pins that name it.
    """
    if not numa.vcpupins:
        return "none"
    return "thread" if holds_cpus((pin.cpuset for pin in numa.vcpupins), None) else "node"


def stored_spec_of_move(root: etree._Element) -> VnumaSpec | None:
    """The spec stored in the domain ``root``'s metadata (None when it has none), for a guest that moves.

    A stored spec this collection cannot read (corrupt, or written by a newer one) refuses the move, saying
    which part failed and how to write it again.
    """
    try:
        return read_stored_spec(root)
    except VnumaError as error:
        raise type(error)(
            f"its spec stored in <metadata> cannot be read: {error.message}; run vnuma.libvirt.vnuma_domain "
            "with the spec's options on the source to write it again, then move the guest",
            _name(root),
        ) from None


def moving_guest_from_root(root: etree._Element, source: HostTopology | None = None) -> MovingGuest:
    """What the destination planner needs of the domain ``root``: cells, distances, and how it pins and binds."""
    name = _name(root)
    try:
        numa = DomainNuma.from_domain(root)
        binding = binding_from_domain(numa, name)
        spec = stored_spec_of_move(root)
        cells = tuple(
            MovingCell(
                id=cell.id,
                vcpus=cell.vcpus,
                memory_kib=cell.memory_kib,
                hugepage_kib=cell.hugepage_kib,
                source_nodes=cell.memory_nodes if cell.memory_mode is not None else (),
            )
            for cell in binding.cells
        )
        distances: tuple[tuple[int, ...], ...] = ()
        if numa.numa is not None and any(cell.distances for cell in numa.numa.cells):
            by_cell = {cell.id: {sibling.id: sibling.value for sibling in cell.distances} for cell in numa.numa.cells}
            ids = [cell.id for cell in cells]
            distances = tuple(tuple(by_cell.get(a, {}).get(b, default_distance(a == b)) for b in ids) for a in ids)
        modes = [cell.memory_mode for cell in binding.cells if cell.memory_mode is not None]
        return MovingGuest(
            name=name,
            vcpus=numa.vcpu.count if numa.vcpu is not None else max(len(binding.vcpu_cpus), 1),
            cells=cells,
            distances=distances,
            pinning=spec.pinning if spec is not None else _pinning(numa),
            threads=numa.topology.threads if numa.topology is not None else 1,
            memory_mode=spec.memory_mode if spec is not None else (modes[0] if modes else "strict"),
            # Under emulator_threads isolate the <emulatorpin> is the emulator's own dedicated CPU, not the nodes'.
            emulator_pin="none"
            if spec is not None and spec.isolates_emulator
            else "nodes"
            if numa.emulatorpin is not None
            else "none",
            emulator_threads=spec.emulator_threads if spec is not None else "share",
            dimms=binding.dimms,
            source=source,
        )
    except VnumaError as error:
        raise error.naming(name) from None


def moving_guest_from_xml(domain_xml: str, source: HostTopology | None = None) -> MovingGuest:
    """``moving_guest_from_root`` of a domain XML text."""
    return moving_guest_from_root(parse_xml(domain_xml, "the domain XML", "domain"), source)


def status_domain(text: str, what: str) -> etree._Element | None:
    """The ``<domain>`` of a running guest's libvirtd status file (``<domstatus>`` around the live ``<domain>``).

    A bare ``<domain>`` is taken as it is; None when the text holds no domain.  ``what`` names the text in an
    error (XmlError when it does not parse).
    """
    root = parse_xml(text, what)
    return root if root.tag == "domain" else root.find("domain")


def _set(element: etree._Element, attribute: str, cpus: tuple[int, ...]) -> None:
    text = format_cpuset(cpus)
    if element.get(attribute) != text:
        element.set(attribute, text)


def _check_layout(root: etree._Element, plan: DestinationPlan, name: str) -> None:
    """Refuse a domain XML whose guest cells are not the plan's: a plan binds only the layout it was made from.

    A running guest's persistent definition may wait for its next boot with other cells (``_run/migrate.py``
    plans such a definition from itself); this says so rather than rewriting half of it.
    """
    found = [cell.get("id", "") for cell in root.iterfind("cpu/numa/cell")]
    planned = sorted(cell.id for cell in plan.cells)
    if found and sorted(found) != sorted(str(cell) for cell in planned):
        numbers = [number for number in map(read_digits, found) if number is not None]
        listed = format_cpuset(sorted(numbers)) if len(numbers) == len(found) else ",".join(found)
        raise XmlError(
            f"the domain XML has guest cells {listed}, the plan cells {format_cpuset(planned)}: a plan rewrites "
            "only the layout it was planned from (a definition with a layout waiting for the next boot needs "
            "a plan of its own)",
            name,
        )


def rewrite_root(root: etree._Element, plan: DestinationPlan) -> None:
    """Write ``plan``'s host side into the domain ``root`` in place; see ``rewrite_host_bindings``."""
    name = _name(root)
    if name != plan.guest:
        raise XmlError(f"the plan is for guest {plan.guest}, the domain XML is guest {name}")
    _check_layout(root, plan, name)
    try:
        _write_plan(root, plan)
    except VnumaError as error:
        raise error.naming(name) from None


def _write_plan(root: etree._Element, plan: DestinationPlan) -> None:
    cells = {cell.id: cell for cell in plan.cells}
    memory = root.find("numatune/memory")
    if memory is not None and memory.get("nodeset") is not None:
        _set(memory, "nodeset", plan.numatune_nodes)
    for memnode in root.iterfind("numatune/memnode"):
        cell = cells.get(Memnode.from_element(memnode).cellid)
        if cell is None:
            raise XmlError(
                f"<numatune><memnode cellid='{memnode.get('cellid')}'> names no guest cell of the plan "
                f"(cells {format_cpuset(sorted(cells))})"
            )
        _set(memnode, "nodeset", cell.memory_nodes)
    floating = tuple(sorted({*plan.shared_cpus, *plan.held_cpus}))
    vcpu = root.find("vcpu")
    if vcpu is not None and vcpu.get("cpuset") is not None and floating:
        _set(vcpu, "cpuset", floating)
    cputune = root.find("cputune")
    if cputune is not None:
        pinned = set()
        for pin in cputune.iterfind("vcpupin"):
            number = Vcpupin.from_element(pin).vcpu
            pinned.add(number)
            if number in plan.vcpu_pins:
                _set(pin, "cpuset", plan.vcpu_pins[number])
        # A vCPU the source left unpinned gets its plan's pin: a source CPU it floats over may not exist here.
        missing = [
            Vcpupin(vcpu, cpus).to_element() for vcpu, cpus in sorted(plan.vcpu_pins.items()) if vcpu not in pinned
        ]
        if missing and pinned:
            insert_children(cputune, missing)
        emulator = cputune.find("emulatorpin")
        if emulator is not None:
            _set(emulator, "cpuset", plan.emulator_pins or plan.shared_cpus or floating)
        for iothread in cputune.iterfind("iothreadpin"):
            _set(iothread, "cpuset", plan.shared_cpus or floating)
    for index, device in enumerate(root.iterfind("devices/memory")):
        nodemask = device.find("source/nodemask")
        if nodemask is None:
            continue
        node = MemoryDevice.from_element(device, index).node
        cell = None if node is None else cells.get(node)
        if cell is not None:
            nodemask.text = format_cpuset(cell.memory_nodes)


def rewrite_host_bindings(domain_xml: str, plan: DestinationPlan, moved: tuple[str, str] | None = None) -> str:
    """``domain_xml`` with ``plan``'s host-side bindings and every other part as it was, byte for byte.

    ``moved`` (operation, source) also records the move in ``<metadata>`` (``mark_moved``), which is not
    part of what the guest sees.
    """
    root = parse_xml(domain_xml, "the domain XML", "domain")
    rewrite_root(root, plan)
    if moved is not None:
        mark_moved(root, *moved)
    # Written back as expansion writes a document: the input's quotes, prolog and epilog kept.
    return serialize_like(root, domain_xml)
