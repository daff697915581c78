# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""``state: absent`` as the inverse of apply: the owned parts go back to what they were.

The first apply that writes to a guest with neither a stored spec nor a record records the guest's
owned parts as they were (``before``) in ``<metadata>`` (``_xml.vnuma.store_original``); every apply
that writes also records the parts a user may change by hand as the collection wrote them
(``written``).  Absent then, per part:

- the layout proper (``<cpu><numa>``, ``<numatune>``, ``<cputune><vcpupin>``) goes back to ``before``;
- ``<memory>`` with ``<currentMemory>``, ``<cpu><topology>``, ``<cpu><cache>``, ``<emulatorpin>``,
  ``<maxMemory>`` and ``<hugepages>`` go back to ``before`` when they still read as ``written``; one changed since (by
  hand, another tool) is kept as it is now;
- ``<vcpu>`` goes field by field (count, placement, cpuset, current) by the same rule; ``<vcpus>``
  goes back with it when ``<vcpu>`` is entirely back to ``before``, and is dropped otherwise
  (libvirt then brings the first ``current`` vCPUs online);
- a part put back is the recorded element itself, attributes and their order included; a part
  that already reads as wanted is left exactly as it is.

A later apply keeps ``before`` but first takes into it the parts changed by hand since the last
apply (the same rule), so that they survive a later absent too.  When the record cannot be read, or
what it gives contradicts itself (a part kept against a part put back), the layout is removed as
for a guest without a record and a warning says why: absent always repairs a guest.  A guest
without a record but with a stored spec (an older version of the collection managed it) loses the
layout and keeps its sizes (``flat_target``); a guest with neither is not the collection's: absent
leaves it alone.  Hot-plugged memory devices need cells: absent is refused when the cells it
leaves do not hold them.  The collection's PCI expander buses go in every case, and the devices moved behind them
go back to their addresses from before the move (none: libvirt places them again; ``_xml/pci_locality.py``), with
the same warnings as ``device_locality: none`` gives (a device that cannot go back to its address).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import Hugepages, VirtioMemCells
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_domain import PciDomain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_locality import restored_locality
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import (
    insert_child,
    insert_children,
    remove_child,
    remove_if_empty,
    replace_child,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vcpus import Vcpu
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import (
    ORIGINAL_WHAT,
    OWNED_PARTS,
    WRITTEN_PARTS,
    has_original,
    has_stored_spec,
    owned_parts,
    read_original,
    remove_original,
    remove_stored_spec,
    store_original,
    stripped_copy,
)

__all__ = ["flat_target", "merged_parts", "put_parts", "record_after_apply", "record_before_apply", "render_absent"]

_CONTAINERS = ("memoryBacking", "cputune", "cpu")
# Parts kept when changed since the last apply: DomainNuma field, (container, tag).
_KEPT_IF_CHANGED = (
    ("topology", ("cpu", "topology")),
    ("cache", ("cpu", "cache")),
    ("emulatorpin", ("cputune", "emulatorpin")),
    ("max_memory", (None, "maxMemory")),
    ("hugepages", ("memoryBacking", "hugepages")),
)
# The layout proper: always put back.
_LAYOUT = (("cpu", "numa"), (None, "numatune"), ("cputune", "vcpupin"))


def _elements(domain: Any, container: str | None, tag: str) -> list[Any]:
    parent = domain if container is None else domain.find(container)
    return [] if parent is None else list(parent.iterchildren(tag))


def _merged_vcpu(was: Vcpu | None, wrote: Vcpu | None, now: Vcpu | None) -> Vcpu | None:
    """``<vcpu>`` field by field: each field back to ``was`` unless changed since it was written."""
    if was is None or wrote is None or now is None:
        return was if now == wrote else now
    values = {}
    for item in fields(Vcpu):
        mine = getattr(now, item.name)
        values[item.name] = getattr(was, item.name) if mine == getattr(wrote, item.name) else mine
    merged = Vcpu(**values)
    if merged.current is not None and merged.current == merged.count:
        # libvirt writes current only when some vCPUs are offline at boot (Vcpu.from_element reads so).
        merged = replace(merged, current=None)
    return merged


def merged_parts(before: Any, written: Any, root: Any, now: DomainNuma) -> tuple[Any, list[str]]:
    """What the owned parts become: ``before`` where the collection's writing still stands, ``root``'s
    own parts where they changed since ``written``.

    ``before`` and ``written`` are the record's sections (``read_original``), ``now`` is ``root``
    read as models.  Returns a ``<domain>`` of the parts, as ``owned_parts`` lays them out (so that
    a record taken in again unchanged is the same text), and the parts kept because they changed
    since the last apply.
    """
    was = DomainNuma.from_domain(before)
    wrote = DomainNuma.from_domain(written)
    kept: list[str] = []
    # (container, tag) -> the domain the part is taken from; the layout proper always from before.
    source: dict[tuple[str | None, str], Any] = dict.fromkeys(_LAYOUT, before)
    memory = before
    if (now.memory_kib, now.current_memory_kib) != (wrote.memory_kib, wrote.current_memory_kib):
        memory = root
        kept.append("<memory>")
    source[(None, "memory")] = source[(None, "currentMemory")] = memory
    for name, part in _KEPT_IF_CHANGED:
        if getattr(now, name) == getattr(wrote, name):
            source[part] = before
        else:
            source[part] = root
            kept.append(f"<{part[1]}>")
    vcpu = _merged_vcpu(was.vcpu, wrote.vcpu, now.vcpu)
    vcpu_element = None
    if vcpu == was.vcpu:
        source[(None, "vcpu")] = source[(None, "vcpus")] = before
    else:
        kept.append("<vcpu>")
        if vcpu == now.vcpu:
            source[(None, "vcpu")] = root
        elif vcpu is not None:
            # Some fields back, some kept: the recorded element, with its attribute order, updated.
            vcpu_element = stripped_copy((before if before.find("vcpu") is not None else root).find("vcpu"))
            vcpu.update(vcpu_element)
    result = etree.Element("domain")
    containers: dict[str, Any] = {}
    for container, tag in OWNED_PARTS:
        found = _elements(source[(container, tag)], container, tag) if (container, tag) in source else []
        if (container, tag) == (None, "vcpu") and vcpu_element is not None:
            found = [vcpu_element]
        parent = result
        if container is not None:
            if container not in containers:
                if not found and before.find(container) is None:
                    continue
                containers[container] = etree.SubElement(result, container)
            parent = containers[container]
        for element in found:
            parent.append(stripped_copy(element))
    return result, kept


def _check(parts: Any) -> None:
    """What libvirt would refuse in the parts put together (SpecError/XmlError naming it)."""
    model = DomainNuma.from_domain(parts)
    model.validate()
    if model.vcpu is not None and model.vcpu.current is not None and model.vcpu.current > model.vcpu.count:
        raise SpecError(f"<vcpu current='{model.vcpu.current}'> is above its {model.vcpu.count} vCPUs")
    if model.numa is None and model.max_memory is not None:
        # The QEMU driver: "At least one numa node has to be configured when enabling memory hotplug".
        raise SpecError("<maxMemory> needs NUMA cells, and there would be none")
    if model.numa is None and model.hugepages is not None:
        for page in model.hugepages.pages:
            if page.nodeset:
                raise SpecError(
                    f"<hugepages><page nodeset='{format_cpuset(page.nodeset)}'> names guest cells, "
                    "and there would be none"
                )


def _check_memory_devices(current: DomainNuma, parts: Any, name: str) -> None:
    """Refuse when the cells put back do not hold the guest's hot-plugged memory devices."""
    if not current.memory_devices:
        return
    numa = DomainNuma.from_domain(parts).numa
    if numa is None:
        raise _devices_need_cells(current, name)
    for device in current.memory_devices:
        if device.node is not None and device.node >= len(numa.cells):
            raise SpecError(
                f"memory device {device.index} ({device.model}) targets guest cell {device.node}, but the guest "
                f"had {len(numa.cells)} cells before the collection; detach it before removing the layout",
                guest=name,
            )


def _without_virtio_mem(current: DomainNuma) -> DomainNuma:
    """``current`` without the collection's virtio-mem devices: they go with the layout that made them.

    The memory they held leaves ``<memory>`` with them; the user's own devices stay and are checked.
    """
    owned = sum(device.size_kib for device in current.memory_devices if device.cell_owned is not None)
    if not owned:
        return current
    memory = None if current.memory_kib is None else current.memory_kib - owned
    balloon = current.current_memory_kib
    return replace(
        current,
        memory_kib=memory,
        current_memory_kib=None if balloon is None or memory is None else min(balloon, memory),
        memory_devices=tuple(device for device in current.memory_devices if device.cell_owned is None),
        virtio_mem=VirtioMemCells(),
    )


def _devices_need_cells(current: DomainNuma, name: str) -> SpecError:
    return SpecError(
        f"has {len(current.memory_devices)} hot-plugged memory device(s), which need NUMA cells; "
        "detach them before removing the layout",
        guest=name,
    )


def flat_target(current: DomainNuma, name: str) -> DomainNuma:
    """A guest without a record: the layout goes, the rest stays.

    Gone: cells, ``<numatune>``, ``<vcpupin>``s, the ``<vcpus>`` hotplug order, ``<maxMemory>`` and the
    hugepage entries of single cells (``<page nodeset>``; entries for the whole guest stay).  Kept:
    ``<vcpu>`` (count and current), ``<cpu><topology>``, ``<emulatorpin>``, the memory sizes.
    """
    if current.memory_devices:
        raise _devices_need_cells(current, name)
    hugepages = current.hugepages
    if hugepages is not None and hugepages.pages:
        whole_guest = tuple(page for page in hugepages.pages if not page.nodeset)
        hugepages = Hugepages(whole_guest) if whole_guest else None
    return replace(
        current,
        vcpus=None,
        numa=None,
        numatune=None,
        vcpupins=(),
        max_memory=None,
        hugepages=hugepages,
    )


def _key(element: Any) -> bytes:
    return etree.tostring(stripped_copy(element), with_tail=False)


def put_parts(root: Any, parts: Any) -> None:
    """Make ``root``'s owned parts those of ``parts``, in place; a part already equal stays as written.

    A part put back is a copy of the one in ``parts``, indented like the document, where libvirt
    writes it; a container (``<cpu>``, ``<cputune>``, ``<memoryBacking>``) ``parts`` does not have
    is removed when that leaves it empty.
    """
    for container, tag in OWNED_PARTS:
        wanted = _elements(parts, container, tag)
        existing = _elements(root, container, tag)
        if [_key(element) for element in existing] == [_key(element) for element in wanted]:
            continue
        copies = [stripped_copy(element) for element in wanted]
        if tag == "memory" and existing and copies:
            # <memory dumpCore> is not the collection's: it stays as it is now.
            dump_core = existing[0].get("dumpCore")
            if dump_core is None:
                copies[0].attrib.pop("dumpCore", None)
            else:
                copies[0].set("dumpCore", dump_core)
        if len(existing) == 1 and len(copies) == 1:
            replace_child(existing[0], copies[0])
            continue
        for element in existing:
            remove_child(element)
        if not copies:
            continue
        parent = root
        if container is not None:
            parent = root.find(container)
            if parent is None:
                parent = etree.Element(container)
                insert_child(root, parent)
        insert_children(parent, copies)
    for container in _CONTAINERS:
        element = root.find(container)
        if element is not None and parts.find(container) is None:
            remove_if_empty(element)


def render_absent(root: Any, name: str) -> list[str]:
    """Apply ``state: absent`` to the parsed domain ``root`` in place; the warnings for the user.

    Refuses (SpecError, before any change) only when hot-plugged memory devices would be left
    without their cells.
    """
    warnings: list[str] = []
    read = DomainNuma.from_domain(root)
    current = _without_virtio_mem(read)
    parts = None
    try:
        record = read_original(root)
        if record is not None:
            # The record alone must hold together; then with the parts kept since the last apply.
            try:
                _check(record[0])
            except VnumaError as error:
                raise XmlError(f"{ORIGINAL_WHAT}: {error.message}") from None
    except VnumaError as error:
        record = None
        warnings.append(f"guest {name}: {error.message}; the layout was removed without restoring it")
    if record is not None:
        parts, kept = merged_parts(record[0], record[1], root, read)
        try:
            _check(parts)
        except VnumaError as error:
            parts = None
            # The record holds together alone (checked above): the parts kept are what contradicts it.
            verb = "stays" if len(kept) == 1 else "stay"
            warnings.append(
                f"guest {name}: the definition before the collection cannot be restored: {error.message} "
                f"({', '.join(kept) or 'nothing'} changed since the last apply and {verb}); "
                "the layout was removed instead"
            )
    if parts is not None:
        _check_memory_devices(current, parts, name)
        put_parts(root, parts)
        # The record has the sizes from before the collection; its virtio-mem devices go too.
        replace(DomainNuma.from_domain(root), virtio_mem=VirtioMemCells()).apply(root)
    elif has_original(root) or has_stored_spec(root):
        if not warnings:
            # A spec without a record (the record removed by hand, or never written): nothing to restore from.
            warnings.append(
                f"guest {name}: has no record of its definition before the collection; the layout was removed "
                "without restoring it"
            )
        flat_target(current, name).apply(root)
    if parts is not None or has_original(root) or has_stored_spec(root):
        # The collection's expander buses go, and the devices behind them go back to where they were; what
        # cannot go back, and the controllers libvirt adds in the indices they leave, are said as apply says them.
        locality = restored_locality(PciDomain.read(root))
        warnings.extend(f"guest {name}: {warning}" for warning in locality.warnings)
        locality.apply(root)
    remove_original(root)
    remove_stored_spec(root)
    return warnings


def record_before_apply(root: Any, current: DomainNuma) -> Any | None:
    """The ``before`` to record when an apply writes ``root`` (read as ``current``); None: leave the record.

    A guest with a record keeps its ``before``, with the parts changed by hand since the last apply
    taken in (``merged_parts``); an unreadable record is left for absent to report.  A guest with a
    stored spec and no record was managed by an older version: what it had before is not known.
    """
    if has_original(root):
        try:
            record = read_original(root)
            if record is None:
                return None
            parts, _kept = merged_parts(record[0], record[1], root, current)
        except VnumaError:
            return None
        return parts
    if has_stored_spec(root):
        return None
    return owned_parts(root)


def record_after_apply(root: Any, before: Any) -> None:
    """Store the record: ``before``, and the parts a user may change by hand as ``root`` has them now."""
    store_original(root, before, owned_parts(root, WRITTEN_PARTS))
