# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Domain XML <-> layout: the parts of a libvirt domain the collection owns, and nothing else.

``DomainNuma`` gathers the owned parts of one domain as element models (one small file per group:
``vcpus.py``, ``cpu_numa.py``, ``numatune.py``, ``cputune.py``, ``memory.py``).  It reads them from
any domain (``from_domain``, hand-written XML included), says what a layout makes of them
(``from_layout``, rules in ``layout_policy.py``), checks them (``validate``), lists the differences
(``changes``, see ``changes.py``) and writes them back in place (``apply``, through ``tree.py``),
leaving every other element, attribute, comment and whitespace of the document as it was.

Elements are documented at https://libvirt.org/formatdomain.html (anchors named where used).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, Union

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import format_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import PciAddress
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import layout_policy as policy
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import Change, ChangeKind, Items, new_change
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cpu_numa import CpuCache, CpuTopology, Numa
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cputune import Emulatorpin, Vcpupin, pin_texts
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.iothreads import IothreadPins, IoThreads, iothreads_for
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel, parse_markup, parse_markups
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import (
    CurrentMemory,
    Hugepages,
    MaxMemory,
    Memory,
    MemoryDevice,
    VirtioMemCells,
    VirtioMemRequests,
    dimms_not_running,
    memory_devices_of,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.numatune import Numatune
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_controllers import PciLocality
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_domain import PciDomain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.pci_locality import pci_locality_for
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.tree import (
    CPU_ORDER,
    CPUTUNE_ORDER,
    DOMAIN_ORDER,
    MEMORY_BACKING_ORDER,
    child_or_insert,
    detached_copy,
    insert_at,
    insert_ordered,
    insert_run,
    put_model,
    remove_child,
    remove_children,
    remove_if_empty,
    replace_child,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import domain_name, require_tag
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vcpus import Vcpu, Vcpus

__all__ = ["DomainNuma", "read_guest_shape"]

_Model = TypeVar("_Model", bound=ElementModel)
# What lists an owned part's values and says their ChangeKind: an element model, or the virtio-mem devices.
# Union rather than |: ansible-test's pylint refuses | between type[...] aliases at runtime.
_Section = Union[  # noqa: UP007
    type[ElementModel],
    type[VirtioMemCells],
    type[VirtioMemRequests],
    type[PciLocality],
    type[IoThreads],
    type[IothreadPins],
]


def _find_parse(root: etree._Element, path: str, kind: type[_Model]) -> _Model | None:
    element = root.find(path)
    return None if element is None else kind.from_element(element)


@dataclass(frozen=True)
class DomainNuma:
    """The parts of one domain the collection owns, as models.

    ``memory_devices`` are read for the arithmetic of ``<memory>`` and the cell-count check but
    are never written (hot-plugging them is the libvirt layer's business).
    """

    vcpu: Vcpu | None = None
    vcpus: Vcpus | None = None
    topology: CpuTopology | None = None
    # <cpu><cache> (docs/cache-locality.md): written when the host's L3 banks shape the cells, else kept.
    cache: CpuCache | None = None
    numa: Numa | None = None
    numatune: Numatune | None = None
    vcpupins: tuple[Vcpupin, ...] = ()
    emulatorpin: Emulatorpin | None = None
    max_memory: MaxMemory | None = None
    hugepages: Hugepages | None = None
    memory_kib: int | None = None
    # None only when <memory> is absent too: an absent <currentMemory> is libvirt's "same as <memory>".
    current_memory_kib: int | None = None
    memory_devices: tuple[MemoryDevice, ...] = field(default=(), compare=False)
    # The collection's own virtio-mem devices (one per cell, ``memory_device: virtio-mem``): written.
    virtio_mem: VirtioMemCells = field(default_factory=VirtioMemCells)
    # The collection's PCI expander buses and the devices it moved behind them (``pci_locality.py``).
    pci: PciLocality = field(default_factory=PciLocality)
    # What the PCI locality is worked out from (machine, controllers, devices): read, never written.
    pci_domain: PciDomain = field(default_factory=PciDomain, compare=False)
    # I/O threads and the virtio disks' threads, and their pins (``iothreads.py``): owned unless iothreads none.
    iothreads: IoThreads = field(default_factory=IoThreads)
    iothreadpins: IothreadPins = field(default_factory=IothreadPins)

    # ----------------------------------------------------------------------------------- reading

    @classmethod
    def from_domain(cls, root: etree._Element) -> DomainNuma:
        """Read the owned parts of any domain, hand-written ones included."""
        require_tag(root, "domain")
        memory = _find_parse(root, Memory.TAG, Memory)
        current = _find_parse(root, CurrentMemory.TAG, CurrentMemory)
        pins = [Vcpupin.from_element(element) for element in root.iterfind("cputune/vcpupin")]
        memory_kib = None if memory is None else memory.kib
        devices = memory_devices_of(root)
        pci_domain = PciDomain.read(root)
        return cls(
            vcpu=_find_parse(root, Vcpu.TAG, Vcpu),
            vcpus=_find_parse(root, Vcpus.TAG, Vcpus),
            topology=_find_parse(root, "cpu/topology", CpuTopology),
            cache=_find_parse(root, "cpu/cache", CpuCache),
            numa=_find_parse(root, "cpu/numa", Numa),
            numatune=_find_parse(root, Numatune.TAG, Numatune),
            vcpupins=tuple(sorted(pins, key=lambda pin: pin.vcpu)),
            emulatorpin=_find_parse(root, "cputune/emulatorpin", Emulatorpin),
            max_memory=_find_parse(root, MaxMemory.TAG, MaxMemory),
            hugepages=_find_parse(root, "memoryBacking/hugepages", Hugepages),
            memory_kib=memory_kib,
            current_memory_kib=memory_kib if current is None else current.kib,
            memory_devices=devices,
            virtio_mem=VirtioMemCells.of(devices),
            pci=PciLocality.of(pci_domain),
            pci_domain=pci_domain,
            iothreads=IoThreads.of(root),
            iothreadpins=IothreadPins.of(root),
        )

    @property
    def device_memory_kib(self) -> int:
        """Memory held by memory devices, which libvirt counts in ``<memory>``."""
        return sum(device.size_kib for device in self.memory_devices)

    # ----------------------------------------------------------------------------------- target

    @classmethod
    def from_layout(
        cls,
        layout: Layout,
        current: DomainNuma,
        total_memory_kib: int | None = None,
        host_nodes: Mapping[PciAddress, int | None] | None = None,
    ) -> DomainNuma:
        """What the owned parts of the domain read as ``current`` must become under ``layout``.

        Each element's rule is in ``layout_policy.py``; the result is checked as a whole.
        ``total_memory_kib`` asks for a new total of a guest with virtio-mem cells (``virtio_mem_for``).
        ``host_nodes`` gives the host node of each passthrough device (``pci_locality_for``).
        """
        vcpu = policy.vcpu_for(layout, current.vcpu)
        numa = policy.numa_for(layout, current.numa)
        numatune = policy.numatune_for(layout)
        vcpupins = policy.vcpupins_for(layout)
        emulatorpin = policy.emulatorpin_for(layout, current.emulatorpin)
        hugepages = policy.hugepages_for(layout, current.hugepages)
        max_memory = policy.max_memory_for(layout, current.max_memory)
        virtio_mem = policy.virtio_mem_for(layout, current.memory_devices, total_memory_kib)
        devices = (*_others(current.memory_devices), *virtio_mem.devices)
        memory_kib, current_memory_kib = policy.memory_for(
            layout, current.memory_kib, current.current_memory_kib, sum(device.size_kib for device in devices)
        )
        pci = pci_locality_for(layout, current.pci_domain, host_nodes)
        iothreads, iothreadpins = iothreads_for(
            layout, current.pci_domain, pci, current.iothreads, current.iothreadpins
        )
        target = cls(
            vcpu=vcpu,
            vcpus=policy.vcpus_for(layout),
            topology=policy.topology_for(layout),
            cache=policy.cache_for(layout, current.cache),
            numa=numa,
            numatune=numatune,
            vcpupins=vcpupins,
            emulatorpin=emulatorpin,
            max_memory=max_memory,
            hugepages=hugepages,
            memory_kib=memory_kib,
            current_memory_kib=current_memory_kib,
            memory_devices=devices,
            virtio_mem=virtio_mem,
            pci=pci,
            pci_domain=current.pci_domain,
            iothreads=iothreads,
            iothreadpins=iothreadpins,
        )
        target.validate()
        return target

    # ----------------------------------------------------------------------------------- checks

    def validate(self) -> None:
        """Everything libvirt would refuse in these parts, checked before a single element is written."""
        vcpus = None if self.vcpu is None else self.vcpu.count
        if self.numa is not None:
            self.numa.validate(vcpus)
        if self.topology is not None and vcpus is not None and self.topology.vcpus != vcpus:
            raise SpecError(
                f"<cpu><topology> gives {self.topology.vcpus} vCPUs (sockets x dies x cores x threads), "
                f"<vcpu> says {vcpus}"
            )
        if vcpus is not None:
            for pin in self.vcpupins:
                if pin.vcpu >= vcpus:
                    raise SpecError(f"<vcpupin> for vCPU {pin.vcpu}, but the guest has {vcpus} vCPUs")
        cell_count = 0 if self.numa is None else len(self.numa.cells)
        for device in self.memory_devices:
            if device.node is not None and device.node >= cell_count:
                cells = f"{cell_count} cells (0-{cell_count - 1})" if cell_count else "no cells"
                raise SpecError(
                    f"memory device {device.index} ({device.model}) targets guest cell {device.node}, "
                    f"but the new layout has {cells}; detach it or choose at least {device.node + 1} cells"
                )
        if self.hugepages is not None and self.numa is not None:
            for page in self.hugepages.pages:
                beyond = [node for node in page.nodeset or () if node >= cell_count]
                if beyond:
                    raise SpecError(
                        f"<hugepages><page size='{page.size_kib}' nodeset='{format_cpuset(page.nodeset or ())}'> "
                        f"names guest cells {format_cpuset(beyond)}, but the layout has {cell_count} cells; "
                        "set hugepages in the vnuma spec or fix the page nodeset"
                    )
        if self.max_memory is not None and self.memory_kib is not None and self.max_memory.kib < self.memory_kib:
            raise SpecError(f"<maxMemory> {self.max_memory.kib} KiB is below the guest's memory {self.memory_kib} KiB")
        if self.vcpus is not None and vcpus is not None and [s.id for s in self.vcpus.vcpus] != list(range(vcpus)):
            raise SpecError(f"<vcpus> must list vCPUs 0-{vcpus - 1} once each")

    # ----------------------------------------------------------------------------------- compare

    def _sections(self) -> list[tuple[object, Callable[[], Items], _Section]]:
        """The owned parts in domain order: each as a value, how to list it path by path, and its model.

        The model class says each value's ``ChangeKind`` (``KIND``, ``ITEM_KINDS``).
        """

        def of(part: Any, model: _Section) -> tuple[object, Callable[[], Items], _Section]:
            return part, (list if part is None else part.items), model

        return [
            of(self.vcpu, Vcpu),
            of(self.vcpus, Vcpus),
            of(self.iothreads, IoThreads),
            of(self.topology, CpuTopology),
            of(self.cache, CpuCache),
            of(self.numa, Numa),
            of(self.numatune, Numatune),
            (
                self.vcpupins,
                lambda: [
                    item
                    for pin, text in zip(self.vcpupins, pin_texts(self.vcpupins), strict=True)
                    for item in pin.items(text)
                ],
                Vcpupin,
            ),
            of(self.emulatorpin, Emulatorpin),
            of(self.iothreadpins, IothreadPins),
            of(self.max_memory, MaxMemory),
            of(self.hugepages, Hugepages),
            (
                (self.memory_kib, self.current_memory_kib),
                lambda: [("memory", self.memory_kib), ("currentMemory", self.current_memory_kib)],
                Memory,
            ),
            of(self.virtio_mem, VirtioMemCells),
            of(self.virtio_mem.requests, VirtioMemRequests),
            of(self.pci, PciLocality),
        ]

    def changes(self, other: DomainNuma) -> list[Change]:
        """What changes from this domain (before) to ``other`` (after), value by value, in domain order."""
        result: list[Change] = []
        for (mine, my_items, model), (theirs, their_items, _model) in zip(
            self._sections(), other._sections(), strict=True
        ):
            if mine == theirs:
                # Equal parts list equal values: nothing to compare path by path (a rerun's case;
                # a 1024-vCPU guest has over a thousand paths).
                continue
            kind: ChangeKind = model.KIND
            item_kinds: dict[str, ChangeKind] = getattr(model, "ITEM_KINDS", {})
            before = {path: value for path, value in my_items() if value is not None}
            after = {path: value for path, value in their_items() if value is not None}
            # Values a side has but does not own (a device's address before the collection moves it):
            # the other end of a value only one side owns.
            my_own = dict(getattr(mine, "unowned_items", list)())
            their_own = dict(getattr(theirs, "unowned_items", list)())
            # The paths of before in their order, then those only after has (None: absent).
            for path, value in before.items():
                new = after.get(path, their_own.get(path))
                if value != new:
                    result.append(new_change(path, value, new, item_kinds.get(path, kind)))
            result.extend(
                [
                    new_change(path, my_own.get(path), value, item_kinds.get(path, kind))
                    for path, value in after.items()
                    if path not in before and my_own.get(path) != value
                ]
            )
        return result

    # ----------------------------------------------------------------------------------- writing

    def online_vcpus(self) -> set[int]:
        """The vCPUs online: as ``<vcpus>`` enables them, else the first ``<vcpu current>`` (all without it)."""
        if self.vcpus is not None:
            return {state.id for state in self.vcpus.vcpus if state.enabled}
        count = (self.vcpu.current or self.vcpu.count) if self.vcpu is not None else 1
        return set(range(count))

    def default_affinity(self, host_cpus: Iterable[int]) -> tuple[int, ...]:
        """Where a vCPU or an I/O thread without a pin of its own runs: ``<vcpu cpuset>``, else every host CPU.

        libvirt's rule for a guest's threads (``qemuProcessSetupPid``); ``host_cpus`` are the host's online
        CPUs (``HostTopology.cpu_node``).  A running guest's pins are lifted by pinning to it (``_run/live.py``).
        """
        if self.vcpu is not None and self.vcpu.cpuset:
            return self.vcpu.cpuset
        return tuple(sorted(host_cpus))

    def without_default_pins(self, host_cpus: Iterable[int]) -> DomainNuma:
        """These parts with every ``<vcpupin>`` and ``<iothreadpin>`` that names the default affinity left out.

        Such a pin confines nothing: it reads as no pin.  libvirt lists a running guest's pin set live to the
        default affinity (how ``pinning: none`` lifts the old pins) where its definition has none.
        """
        default = self.default_affinity(host_cpus)
        vcpupins = tuple(pin for pin in self.vcpupins if pin.cpuset != default)
        iothreadpins = tuple(pin for pin in self.iothreadpins.pins if pin.cpuset != default)
        if len(vcpupins) == len(self.vcpupins) and len(iothreadpins) == len(self.iothreadpins.pins):
            return self
        return replace(self, vcpupins=vcpupins, iothreadpins=IothreadPins(iothreadpins))

    def boots_fewer_vcpus(self, online: Collection[int]) -> bool:
        """Whether this definition brings fewer vCPUs online at boot than ``online``, the vCPUs a guest runs.

        Only a boot lowers them: the collection brings vCPUs online live but never takes them offline.  So
        the hot-plug differences (``ChangeKind.HOTPLUG``) of such a guest wait for its boot: vnuma_info's
        ``pending`` (``waiting_for_boot``) and vnuma_domain's ``restart_required``
        (``_run/guest.py:Planned.needs_restart``) both ask here.
        """
        return len(self.online_vcpus()) < len(online)

    def waiting_for_boot(self, defined: DomainNuma, host_cpus: Collection[int]) -> list[Change]:
        """Where this running guest differs from its definition ``defined`` in what its next boot brings.

        The change kinds say which differences count (``ChangeKind.pending_in_live``); vnuma_domain's
        ``restart_required`` follows the same kinds (``_run/guest.py:Planned.needs_restart``).  Hot-plug values
        differ in a running guest by nature, and count only where the next boot brings another number of vCPUs
        online: fewer (``boots_fewer_vcpus``: only a boot lowers them), or more (vCPUs the guest runs without;
        vnuma_domain brings them online live when the guest keeps running).  A DIMM of ``defined`` that the
        running guest does not have counts too (``dimms_not_running``: memory the next boot brings;
        vnuma_domain attaches it live when the guest keeps running), one it has beyond ``defined`` does not.
        A pin to the default affinity counts as no pin on either side (``without_default_pins``; ``host_cpus``:
        the host's online CPUs), so a guest whose pins were lifted live is not pending.
        """
        online = self.online_vcpus()
        fewer = defined.boots_fewer_vcpus(online)
        more = len(defined.online_vcpus()) > len(online)
        running, definition = self.without_default_pins(host_cpus), defined.without_default_pins(host_cpus)
        waiting = [
            change
            for change in running.changes(definition)
            if change.kind.pending_in_live(fewer) or (more and change.kind is ChangeKind.HOTPLUG)
        ]
        waiting.extend(
            Change(f"devices/memory[{device.index}]", None, device.describe(), ChangeKind.HOTPLUG)
            for device in dimms_not_running(defined.memory_devices, self.memory_devices)
        )
        return waiting

    def apply(self, root: etree._Element) -> None:
        """Make the owned parts of ``root`` equal to this model, in place; nothing else is touched.

        Everything is checked first (this model, HMAT included, and the domain's memory devices against
        the new cells), so a refusal leaves ``root`` exactly as it was.
        """
        require_tag(root, "domain")
        # The collection's virtio-mem devices are replaced by this model's; everyone else's stay.
        target = replace(self, memory_devices=(*_others(memory_devices_of(root)), *self.virtio_mem.devices))
        target.validate()

        self._apply_memory(root)
        self._apply_vcpu(root)
        self._apply_cpu(root)
        self._apply_numatune(root)
        self._apply_cputune(root)
        self.iothreads.apply(root)
        self.iothreadpins.apply(root)
        self._apply_virtio_mem(root)
        self.pci.apply(root)

    def _apply_memory(self, root: etree._Element) -> None:
        if self.max_memory is None:
            remove_children(root, MaxMemory.TAG)
        else:
            put_model(root, self.max_memory, DOMAIN_ORDER)
        if self.memory_kib is not None:
            element = child_or_insert(root, Memory.TAG, DOMAIN_ORDER)
            if element.text is None or Memory.from_element(element).kib != self.memory_kib:
                Memory(self.memory_kib).update(element)
        current = root.find(CurrentMemory.TAG)
        if self.current_memory_kib is not None:
            if current is not None:
                if CurrentMemory.from_element(current).kib != self.current_memory_kib:
                    CurrentMemory(self.current_memory_kib).update(current)
            elif self.current_memory_kib != self.memory_kib:
                insert_ordered(root, CurrentMemory(self.current_memory_kib).to_element(), DOMAIN_ORDER)
        backing = root.find("memoryBacking")
        if self.hugepages is None:
            hugepages = None if backing is None else backing.find(Hugepages.TAG)
            if hugepages is not None:
                remove_child(hugepages)
                remove_if_empty(backing)
        else:
            backing = child_or_insert(root, "memoryBacking", DOMAIN_ORDER)
            put_model(backing, self.hugepages, MEMORY_BACKING_ORDER)

    def _apply_vcpu(self, root: etree._Element) -> None:
        if self.vcpu is not None:
            element = root.find(Vcpu.TAG)
            if element is None:
                insert_ordered(root, self.vcpu.to_element(), DOMAIN_ORDER)
            elif Vcpu.from_element(element) != self.vcpu:
                self.vcpu.update(element)
        if self.vcpus is None:
            remove_children(root, Vcpus.TAG)
        else:
            put_model(root, self.vcpus, DOMAIN_ORDER)

    def _apply_cpu(self, root: etree._Element) -> None:
        cpu = root.find("cpu")
        if cpu is None and self.topology is None and self.cache is None and self.numa is None:
            return
        if cpu is None:
            # A bare <cpu> (no mode) is valid and keeps the hypervisor's default CPU model.
            cpu = child_or_insert(root, "cpu", DOMAIN_ORDER)
        if self.topology is None:
            remove_children(cpu, CpuTopology.TAG)
        else:
            put_model(cpu, self.topology, CPU_ORDER)
        if self.cache is None:
            remove_children(cpu, CpuCache.TAG)
        else:
            put_model(cpu, self.cache, CPU_ORDER)
        if self.numa is None:
            remove_children(cpu, Numa.TAG)
        else:
            # apply() has validated the whole model, these cells and their HMAT included: written unchecked.
            put_model(cpu, self.numa, CPU_ORDER, parse_markup(self.numa.markup()))
        remove_if_empty(cpu)

    def _apply_numatune(self, root: etree._Element) -> None:
        if self.numatune is None:
            remove_children(root, Numatune.TAG)
        else:
            put_model(root, self.numatune, DOMAIN_ORDER)

    def _apply_cputune(self, root: etree._Element) -> None:
        cputune = root.find("cputune")
        if cputune is None:
            if not self.vcpupins and self.emulatorpin is None:
                return
            cputune = etree.Element("cputune")
            insert_ordered(root, cputune, DOMAIN_ORDER)
        old_pins = list(cputune.iterchildren(Vcpupin.TAG))
        if [Vcpupin.from_element(pin) for pin in old_pins] != list(self.vcpupins):
            anchor = cputune.index(old_pins[0]) if old_pins else None
            for pin in old_pins:
                remove_child(pin)
            texts = pin_texts(self.vcpupins)
            new_pins = parse_markups([pin.markup(text) for pin, text in zip(self.vcpupins, texts, strict=True)])
            if anchor is None and new_pins:
                # The first pin goes where libvirt writes pins; each next one right after the one
                # before, where insert_ordered would put it too, without scanning every sibling.
                first = new_pins.pop(0)
                insert_ordered(cputune, first, CPUTUNE_ORDER)
                anchor = cputune.index(first) + 1
            if anchor is not None:
                insert_run(cputune, anchor, new_pins)
        if self.emulatorpin is None:
            remove_children(cputune, Emulatorpin.TAG)
        else:
            put_model(cputune, self.emulatorpin, CPUTUNE_ORDER)
        # An emptied <cputune> carries nothing: drop it, whether we created it or the user did.
        remove_if_empty(cputune)

    def _apply_virtio_mem(self, root: etree._Element) -> None:
        """The collection's virtio-mem devices, each rewritten in place (its PCI address kept), added or removed."""
        devices = root.find("devices")
        present = {}
        if devices is not None:
            for element in devices.iterfind(MemoryDevice.TAG):
                owned = MemoryDevice.from_element(element)
                if owned.cell_owned is not None:
                    present[owned.alias] = (element, owned.as_written())
        wanted = {device.alias for device in self.virtio_mem.devices}
        for alias, (element, _device) in present.items():
            if alias not in wanted:
                remove_child(element)
        for device in self.virtio_mem.devices:
            found = present.get(device.alias)
            if found is not None and found[1] == device:
                continue
            new = parse_markup(device.markup())
            if found is not None:
                # libvirt's own children (<address>) stay: the device keeps its slot in the guest.
                for child in found[0]:
                    if isinstance(child.tag, str) and child.tag not in ("source", "target", "alias"):
                        new.append(detached_copy(child))
                replace_child(found[0], new)
            else:
                if devices is None:
                    devices = child_or_insert(root, "devices", DOMAIN_ORDER)
                insert_at(devices, len(devices), new)


def _others(devices: tuple[MemoryDevice, ...]) -> tuple[MemoryDevice, ...]:
    """The memory devices that are not the collection's virtio-mem devices."""
    return tuple(device for device in devices if device.cell_owned is None)


def read_guest_shape(root: etree._Element) -> GuestShape:
    """Name, vCPUs (maximum and online at boot) and boot memory of a domain.

    Boot memory is ``<memory>`` less the memory devices, which libvirt counts in ``<memory>``.
    """
    require_tag(root, "domain")
    name = domain_name(root)
    try:
        element = root.find(Vcpu.TAG)
        if element is None:
            raise XmlError("the domain has no <vcpu> element (its vCPU count)")
        vcpu = Vcpu.from_element(element)
        memory = _find_parse(root, Memory.TAG, Memory)
        memory_kib = None
        if memory is not None:
            memory_kib = memory.kib - sum(device.size_kib for device in memory_devices_of(root))
            if memory_kib < 1:
                raise XmlError(
                    f"<memory> {memory.kib} KiB leaves nothing for the cells once its memory devices are counted"
                )
        return GuestShape(vcpus=vcpu.count, memory_kib=memory_kib, current_vcpus=vcpu.current, name=name)
    except (XmlError, SpecError) as error:
        raise error.naming(name) from None
