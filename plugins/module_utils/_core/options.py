# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""The per-guest options, one row each: the one place that names, types, limits and documents them.

``SPEC_OPTIONS`` are the spec's options, stored with the guest.  Derived from them: ``VnumaSpec``'s checks
and its option names (``_core/spec.py``), the ``<vnuma>`` reader and writer (``_xml/vnuma.py``), the
coercion of a ``guests`` entry (``_run/domain.py``), the module's argspec (``modules/vnuma_domain.py``), and
the static documentation that ``scripts/gen-option-docs.py`` writes (``doc_fragments/spec.py`` and the
fleet role's ``meta/argument_specs.yml``).  ``GUEST_OPTIONS`` are vnuma_domain's other options that a
``guests`` entry may set (``state``, ``current_vcpus``...): never stored, read the same way, and from
them come their argspec entries, their part of the module's documentation (generated too) and the keys
the fleet role accepts in its overrides.  docs/architecture.md says how to add an option.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.pci_locality import parse_device_cells
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import MAX_NODE_ID, NODE_ID_REASON
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import (
    MAX_MEMORY_KIB,
    MAX_PAGE_KIB,
    MEMORY_LIMIT_REASON,
    PAGE_LIMIT_REASON,
    check_count,
    parse_size,
    read_digits,
)

__all__ = [
    "BOOLEANS_FALSE",
    "BOOLEANS_TRUE",
    "CELLS_REASON",
    "DEDICATED_PINNINGS",
    "DEVICE_LOCALITIES",
    "DISTRIBUTIONS",
    "EMULATOR_PINS",
    "EMULATOR_THREADS",
    "GUEST_OPTIONS",
    "HMAT_MODES",
    "IOTHREADS",
    "MAX_CELLS",
    "MAX_MEMORY_SLOTS",
    "MEMORY_DEVICES",
    "MEMORY_MODES",
    "MEMORY_SPLITS",
    "MODES",
    "PCI_NUMA_AFFINITY_POLICIES",
    "PINNINGS",
    "SLOTS_REASON",
    "SPEC_OPTIONS",
    "STATES",
    "GuestOption",
    "Kind",
    "Option",
    "argument_spec",
    "coerce_options",
    "option",
    "read_boolean",
]

MODES = ("host", "node", "auto")
# vnuma_domain's state: the layout applied, or undone.
STATES = ("present", "absent")
DISTRIBUTIONS = ("contiguous", "siblings", "round-robin", "interleave")
PINNINGS = ("node", "core", "thread", "none")
# The pinnings under which a guest holds host CPUs for itself (``_core/placement.py:held_cpus``).
DEDICATED_PINNINGS = ("core", "thread")
MEMORY_MODES = ("strict", "preferred", "interleave", "restrictive")
MEMORY_SPLITS = ("even", "vcpus")
EMULATOR_PINS = ("none", "nodes")
# Where QEMU's emulator threads run, with Nova's hw:emulator_threads_policy meanings (docs/iothreads.md):
# beside the guest's vCPUs, or on one more dedicated host CPU.
EMULATOR_THREADS = ("share", "isolate")
# The guest's I/O threads for its virtio disks: the user's own left alone, one per cell, or one per disk.
IOTHREADS = ("none", "per_cell", "per_disk")
# Guest HMAT (``_core/hmat.py``): none, the host's figures, or figures derived from the distances.
HMAT_MODES = ("none", "host", "synthesize")
# What memory hotplug adds to a guest cell: DIMMs hot-added in fixed sizes, or one virtio-mem device
# per cell that grows and shrinks (_core/hotplug.py).
MEMORY_DEVICES = ("dimm", "virtio-mem")
# Which devices the guest sees near a cell, behind that cell's PCI expander bus (_xml/pci_locality.py).
DEVICE_LOCALITIES = ("none", "hostdev", "all")
# Which host nodes a guest with PCI passthrough devices may use: Nova's hw:pci_numa_affinity_policy values,
# with Nova's meanings (_core/affinity.py).
PCI_NUMA_AFFINITY_POLICIES = ("required", "preferred", "socket", "legacy")
# QEMU's x86 machines offer at most 256 memory slots (ACPI_MAX_RAM_SLOTS); libvirt passes ours on.
MAX_MEMORY_SLOTS = 256
SLOTS_REASON = "QEMU's ACPI_MAX_RAM_SLOTS"
# Guest NUMA cells: QEMU takes at most 128 (MAX_NODES in include/sysemu/numa.h; "Max number of NUMA
# nodes reached" beyond).  Checked before any cell is built.
MAX_CELLS = 128
CELLS_REASON = "QEMU's MAX_NODES"


class Kind(enum.Enum):
    """What an option's value is; each kind has one reader per way in and one Ansible type."""

    CHOICE = "choice"  # one of the row's choices
    SIZE = "size"  # KiB, or a number with a unit ("16 GiB"); the spec keeps KiB
    COUNT = "count"  # a positive integer
    BOOLEAN = "boolean"
    NODESET = "nodeset"  # host node ids in libvirt cpuset syntax ("0-3,^2")
    DEVICE_CELLS = "device_cells"  # devices and their guest cells ("vda=1,ua-nic0=0", or a list of mappings)

    @property
    def ansible_type(self) -> str:
        """The type in the module's argspec and in the documentation."""
        return _ANSIBLE_TYPES[self]


# Sizes are raw: a number of KiB or a string with a unit.  Counts are raw too, read by ``Option.coerce``: Ansible's
# int type lets 2.0 and "1e3" through, refuses 1.5 in its own words, and fails on .inf with an OverflowError
# (int(Decimal('Infinity')) in check_type_int) instead of a message naming the option and its range.
_ANSIBLE_TYPES = {
    Kind.CHOICE: "str",
    Kind.SIZE: "raw",
    Kind.COUNT: "raw",
    Kind.BOOLEAN: "bool",
    Kind.NODESET: "str",
    Kind.DEVICE_CELLS: "raw",
}


@dataclass(frozen=True)
class Option:
    """One spec option.

    ``name`` is what users type (module option, role key, ``<vnuma>`` attribute, ``from_mapping`` key);
    ``field`` the ``VnumaSpec`` field (sizes end in ``_kib``).  ``default`` is the spec's value when the
    option is unset and the guest has no stored spec (None: the mode or the guest decides).  ``limit``
    and ``why`` bound a size (KiB), a count or a node id.  In ``<vnuma>`` the value is the attribute
    ``xml_attribute`` of the child ``xml_child`` (None: of ``<vnuma>`` itself), or that child's text
    when ``xml_attribute`` is None; a child holding a size also takes a ``unit`` attribute.
    ``description`` is the documentation, one string per paragraph, in Ansible's markup (``O()``
    names another spec option); the generator adds the default and the limit.
    """

    name: str
    kind: Kind
    description: tuple[str, ...]
    field: str = ""
    choices: tuple[str, ...] = ()
    default: Any = None
    limit: int | None = None
    why: str = ""
    xml_child: str | None = None
    xml_attribute: str | None = ""

    def __post_init__(self) -> None:
        if not self.field:
            object.__setattr__(self, "field", self.name)
        if self.xml_attribute == "":
            object.__setattr__(self, "xml_attribute", self.name)

    @property
    def argument(self) -> dict[str, Any]:
        """The option's entry in an Ansible argspec.  No default: unset keeps the stored spec's value."""
        argument: dict[str, Any] = {"type": self.kind.ansible_type}
        if self.choices:
            argument["choices"] = list(self.choices)
        return argument

    @property
    def limit_args(self) -> dict[str, Any]:
        """The row's limit and its reason as ``parse_size`` and ``parse_cpuset`` take them (none: theirs)."""
        return {} if self.limit is None else {"limit": self.limit, "why": self.why}

    def coerce(self, value: Any) -> Any:
        """A value that reached the collection without Ansible's type checks, read as the argspec reads it.

        The entries of vnuma_domain's ``guests`` and the filters' ``spec`` are raw: templated values come as
        strings (``"2"``, ``"yes"``).  Digit text is a count, Ansible's spellings of a boolean are booleans, an
        integer is a node set; anything not of the option's kind is a SpecError (without a guest: the caller
        names it).  A count, a size or a node set is read against the row's own limit (a count's refusal gives its
        range, as ``VnumaSpec`` gives it); the rules that tie options together are ``VnumaSpec``'s (``check_given``
        checks them before anything is read).  The module's top-level counts (argspec type raw), a ``<vnuma>``
        attribute (``_xml/vnuma.py``) and a ``guests`` entry are all read here: one rule and one message.
        """
        kind = self.kind
        if kind is Kind.COUNT:
            # Digit text (a templated value, an XML attribute) reads as the number it writes (units.read_digits).
            number = read_digits(value.strip()) if isinstance(value, str) else None
            value = check_count(self.name, value if number is None else number, self.limit, self.why)
        elif kind is Kind.CHOICE:
            if not isinstance(value, str) or value not in self.choices:
                raise SpecError(f"{self.name} {value!r} is not one of {', '.join(self.choices)}")
        elif kind is Kind.BOOLEAN:
            flag = read_boolean(value)
            if flag is None:
                raise SpecError(f"{self.name} {value!r} is not a boolean")
            value = flag
        elif kind is Kind.SIZE:
            parse_size(value, what=self.name, **self.limit_args)
        elif kind is Kind.NODESET:
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            parse_cpuset(value, self.name, **self.limit_args)
        elif kind is Kind.DEVICE_CELLS:
            parse_device_cells(value)
        return value


SPEC_OPTIONS: tuple[Option, ...] = (
    Option(
        "mode",
        Kind.CHOICE,
        (
            "V(host) mirrors every host node that has CPUs, one guest cell per node.",
            "V(node) uses the nodes in O(nodeset) (default every node with CPUs), split into O(cells) guest cells.",
            "V(auto) chooses the fewest host nodes with CPUs that hold the guest, given what the running and autostart "
            "guests use, then lays it out as V(node) does on them. The choice is stored as O(nodeset) with the spec "
            "and kept by later runs; O(vnuma.libvirt.vnuma_domain#module:replan=true) chooses again.",
            "Options left unset keep the value stored in the guest's metadata by an earlier run, or the default.",
        ),
        choices=MODES,
        default="host",
    ),
    Option(
        "distribution",
        Kind.CHOICE,
        (
            "Which vCPU ids go to which guest cell. V(contiguous) gives blocks in order; V(siblings) gives blocks "
            "of whole cores of the host's SMT width; V(round-robin) follows the host's own CPU numbering; "
            "V(interleave) deals vCPUs one at a time.",
        ),
        choices=DISTRIBUTIONS,
        default="contiguous",
    ),
    Option(
        "memory",
        Kind.SIZE,
        (
            "Guest memory to split over the cells, in KiB or with a unit (V(16 GiB)). Defaults to the guest's "
            "C(<memory>), which becomes this value when it is set.",
        ),
        field="memory_kib",
        limit=MAX_MEMORY_KIB,
        why=MEMORY_LIMIT_REASON,
        xml_child="memory",
        xml_attribute=None,
    ),
    Option(
        "nodeset",
        Kind.NODESET,
        (
            "Host nodes to use in V(node) mode, in libvirt cpuset syntax (V(0-3,^2)). Unset, every host node "
            "that has CPUs. In V(auto) mode it is the stored choice and cannot be given.",
        ),
        limit=MAX_NODE_ID,
        why=NODE_ID_REASON,
        xml_child="partition",
    ),
    Option(
        "cells",
        Kind.COUNT,
        (
            "Number of guest cells in V(node) mode; fewer than the nodes groups the nearest nodes, more spreads "
            "cells evenly over them. Unset, one cell per selected node.",
        ),
        limit=MAX_CELLS,
        why=CELLS_REASON,
        xml_child="partition",
    ),
    Option(
        "pinning",
        Kind.CHOICE,
        (
            "V(node) lets each vCPU float over its cell's host CPUs; V(core) gives each guest core a whole "
            "dedicated host core; V(thread) gives each vCPU a dedicated host thread; V(none) writes no "
            "C(<vcpupin>).",
        ),
        choices=PINNINGS,
        default="node",
    ),
    Option(
        "memory_mode",
        Kind.CHOICE,
        ("Memory policy of each cell (C(<memnode mode>)).",),
        choices=MEMORY_MODES,
        default="strict",
    ),
    Option(
        "memory_split",
        Kind.CHOICE,
        ("V(even) gives every cell the same memory; V(vcpus) splits it in proportion to the cells' vCPUs.",),
        choices=MEMORY_SPLITS,
        default="even",
    ),
    Option(
        "hugepages",
        Kind.SIZE,
        ("Back every cell with hugepages of this size (V(2 MiB), V(1 GiB)). Unset, normal pages.",),
        field="hugepages_kib",
        limit=MAX_PAGE_KIB,
        why=PAGE_LIMIT_REASON,
        xml_child="hugepages",
        xml_attribute="size",
    ),
    Option(
        "emulator_pin",
        Kind.CHOICE,
        (
            "V(nodes) pins the emulator threads to the selected nodes' CPUs that no vCPU holds exclusively; "
            "V(none) leaves them unpinned.",
        ),
        choices=EMULATOR_PINS,
        default="none",
    ),
    Option(
        "cpuless_cells",
        Kind.BOOLEAN,
        ("Allow guest cells that receive no vCPU (more cells than vCPUs).",),
        default=False,
    ),
    Option(
        "max_memory",
        Kind.SIZE,
        ("Maximum memory for memory hotplug (C(<maxMemory>)); needs O(memory_slots).",),
        field="max_memory_kib",
        limit=MAX_MEMORY_KIB,
        why=MEMORY_LIMIT_REASON,
        xml_child="maxMemory",
        xml_attribute=None,
    ),
    Option(
        "memory_slots",
        Kind.COUNT,
        ("Number of memory slots for hot-plugged DIMMs; needs O(max_memory).",),
        limit=MAX_MEMORY_SLOTS,
        why=SLOTS_REASON,
        xml_child="maxMemory",
        xml_attribute="slots",
    ),
    Option(
        "memory_device",
        Kind.CHOICE,
        (
            "How memory hotplug reaches the cells. V(dimm) hot-adds DIMMs of fixed size (vnuma_domain's "
            "C(hotplug_memory)), never taken back.",
            "V(virtio-mem) gives each cell one virtio-mem device bound like the cell, sized for the cell's share of "
            "O(max_memory) above the boot memory; vnuma_domain's C(total_memory) grows and shrinks a running guest by "
            "setting each device's requested size. Needs O(max_memory), one of O(memory_slots) per cell, and a guest "
            "kernel with the C(virtio_mem) driver (Linux 5.8 or later).",
        ),
        choices=MEMORY_DEVICES,
        default="dimm",
    ),
    Option(
        "hmat",
        Kind.CHOICE,
        (
            "Memory latency and bandwidth the guest sees per cell, as ACPI HMAT (C(<cpu><numa><interconnects>) and the "
            "cells' memory-side C(<cache>)s). V(none) writes none and keeps any hand-written HMAT as it is.",
            "V(host) gives each cell the host's figures for its memory nodes (the worst of them for a cell over "
            "several nodes); refused when the host reports none. V(synthesize) derives them from the distances "
            "(distance x 10 ns, 20 GiB/s x 10 / distance), so that a cell without vCPUs on a far node is a slower "
            "tier.",
            "Every cell without vCPUs gets the nearest cell with vCPUs as its initiator. The collection's HMAT "
            "replaces a hand-written one.",
        ),
        choices=HMAT_MODES,
        default="none",
    ),
    Option(
        "pci_numa_affinity",
        Kind.CHOICE,
        (
            "Which host nodes the guest's cells may use, given the host nodes of its PCI passthrough devices "
            "(C(<hostdev type='pci'>) and C(<interface type='hostdev'>)), with OpenStack Nova's meanings.",
            "V(required) puts every device on a host node the cells use, and refuses a device whose node is unknown. "
            "V(preferred) prefers such nodes and only warns otherwise. V(socket) needs every device to share a host "
            "socket with a node the cells use. V(legacy) is V(required) for a device that reports its node, and "
            "allows anything for one that does not.",
            "In V(host) and V(node) mode a layout that breaks the policy is refused (a warning under V(preferred)); "
            "in V(auto) mode the devices steer the choice of nodes.",
        ),
        choices=PCI_NUMA_AFFINITY_POLICIES,
        default="legacy",
    ),
    Option(
        "device_locality",
        Kind.CHOICE,
        (
            "Which PCI devices the guest sees near a cell. Each sits behind a PCI expander bus whose node is that cell "
            "(C(pcie-expander-bus) and a C(pcie-root-port) per device on q35, C(pci-expander-bus) on i440fx), so the "
            "guest kernel reports the cell in the device's C(numa_node).",
            "V(none) moves nothing and removes the collection's expander buses. V(hostdev) moves each PCI passthrough "
            "device (C(<hostdev>), C(<interface type='hostdev'>)) near the cell that mirrors its host node, and every "
            "device named in O(device_cells). V(all) also moves every virtio disk, network interface and random "
            "number generator, near the cell O(device_cells) gives it, else cell 0.",
            "A moved device's own PCI address is replaced; every other device keeps its address. The change "
            "takes effect at the next boot.",
        ),
        choices=DEVICE_LOCALITIES,
        default="none",
    ),
    Option(
        "device_cells",
        Kind.DEVICE_CELLS,
        (
            "The guest cell each named device sits near, before the cell of a passthrough device's host node. A list "
            "of mappings, each with a C(cell) and one of C(alias) (a user alias, V(ua-nic0)), C(target) (a disk's, "
            "V(vda)) or C(mac) (an interface's MAC address); or the same as text, V(ua-nic0=1,vda=0). Needs "
            "O(device_locality) V(hostdev) or V(all).",
        ),
        xml_child="devices",
        xml_attribute="cells",
    ),
    Option(
        "emulator_threads",
        Kind.CHOICE,
        (
            "Where QEMU's emulator threads run, with OpenStack Nova's meanings (C(hw:emulator_threads_policy)).",
            "V(share) lets them share host CPUs with the guest, where O(emulator_pin) puts them. They are unpinned "
            "under V(none), and on the selected nodes' CPUs that no vCPU holds exclusively (the shared set) under "
            "V(nodes).",
            "V(isolate) pins them to one more dedicated host CPU on the host node of guest cell 0 (a whole core "
            "under O(pinning) V(core)), which no vCPU and no other guest uses; the capacity check counts it. Needs "
            "O(pinning) V(core) or V(thread), and O(emulator_pin) V(none).",
        ),
        choices=EMULATOR_THREADS,
        default="share",
    ),
    Option(
        "iothreads",
        Kind.CHOICE,
        (
            "I/O threads for the guest's virtio disks (C(<iothreads>), C(<cputune><iothreadpin>), each disk's "
            "C(<driver iothread>)).",
            "V(none) leaves the guest's own I/O threads and disks as they are. V(per_cell) gives each cell with "
            "vCPUs one I/O thread, pinned to the host CPUs of that cell's vCPUs, and puts each virtio disk on the "
            "I/O thread of its cell, the cell of its PCI expander bus (O(device_locality)), else cell 0. V(per_disk) "
            "gives each virtio disk an I/O thread of its own, pinned the same way.",
            "Under V(per_cell) and V(per_disk) the collection owns the I/O threads, their pins and the disks' "
            "C(iothread). New pins take effect live; a new I/O thread or disk assignment at the next boot.",
        ),
        choices=IOTHREADS,
        default="none",
    ),
)


@dataclass(frozen=True)
class GuestOption(Option):
    """One of vnuma_domain's per-guest options besides the spec: a module option and a key of a ``guests`` entry.

    Read like a spec option (``Option.coerce``), but never stored and never in ``<vnuma>`` (``field`` and the
    ``xml_`` fields mean nothing here).  ``default`` is the module's own, in its argspec and its documentation;
    ``aliases`` are the option's other names there.  ``description`` is the module's documentation as it is,
    without a sentence added by the generator.
    """

    aliases: tuple[str, ...] = ()

    @property
    def argument(self) -> dict[str, Any]:
        """The option's entry in vnuma_domain's argspec, with its default and its aliases."""
        argument = super().argument
        if self.default is not None:
            argument["default"] = self.default
        if self.aliases:
            argument["aliases"] = list(self.aliases)
        return argument


# In the order the module documents them.
GUEST_OPTIONS: tuple[GuestOption, ...] = (
    GuestOption(
        "state",
        Kind.CHOICE,
        (
            "V(present) applies the layout.",
            "V(absent) undoes it. The first apply records the guest's owned parts in its C(<metadata>); absent puts "
            "them back as they were and removes the record and the stored spec. A part changed by hand since the last "
            "apply (such as C(virsh setvcpus --config)) stays as it is.",
            "Without a record (a guest managed by an older version), absent drops the cells, memory binding, vCPU "
            "pins, hotplug order, C(<maxMemory>) and per-cell hugepages, and keeps C(<vcpu>) with its C(current), the "
            "C(<cpu><topology>), C(<emulatorpin>) and the memory sizes. A guest the collection never managed is left "
            "as it is. A record that cannot be used gives a warning and the same result as no record.",
            "Absent is refused when hot-plugged DIMMs would be left without NUMA cells.",
            "A O(guests) entry's C(state) takes the same two values; any other value is refused.",
        ),
        choices=STATES,
        default="present",
    ),
    GuestOption(
        "current_vcpus",
        Kind.COUNT,
        (
            "How many vCPUs are online. The definition's C(<vcpu current>) and its C(<vcpus>) enable order follow "
            "it. On a running guest, the vCPUs that keep the cells balanced are brought online live and pinned by the "
            "layout.",
            "Lowering it changes the count at the next boot only; vCPUs are not unplugged live. Until that boot every "
            "run reports RV(restart_required) for the guest (and M(vnuma.libvirt.vnuma_info) reports it pending), so "
            "O(restart=if_needed) restarts it on a later run when an earlier one could not.",
            "Without it the count is the definition's own. A running guest with fewer vCPUs online than its "
            "definition brings online at boot (after C(virsh setvcpus --live) lowered it, say) gets them back live, "
            "as with the option.",
            "A positive integer (or its digits as text); anything else is refused before anything is read or written.",
        ),
        aliases=("vcpus_live",),
    ),
    GuestOption(
        "hotplug_memory",
        Kind.SIZE,
        (
            "Total memory the guest should have in hot-plugged DIMMs, in KiB or with a unit (V(2 GiB)). The module "
            "adds the difference as one DIMM per cell (round-robin when it is smaller than the cells), in multiples "
            "of 128 MiB. Each DIMM has C(<target><node>) and is bound to its cell's host nodes. It goes in live when "
            "the guest runs, and into the definition in any case. Needs O(max_memory) and O(memory_slots).",
            "The DIMMs the definition has and a running guest lacks (added while a restart was pending, or with "
            "C(virsh attach-device --config)) go in live too, whenever the guest keeps running, with or without this "
            "option. The running guest's memory devices, those attached live only included, count against "
            "O(memory_slots), checked before anything is written.",
            "Memory is never unplugged; a value below what is already hot-plugged is an error.",
            "Refused with O(memory_device=virtio-mem); use O(total_memory) there.",
        ),
    ),
    GuestOption(
        "total_memory",
        Kind.SIZE,
        (
            "For a guest with O(memory_device=virtio-mem), the memory it should have in total, in KiB or with a unit "
            "(V(6 GiB)), counting its boot memory, any other memory devices, and what its virtio-mem devices plug.",
            "The part above the boot memory is split over the cells by the rule that splits the cells' memory "
            "(O(memory_split)), in whole blocks of the device (2 MiB, or the hugepage size), and set as each device's "
            "requested size, in the definition and, when the guest runs, live. Lower values shrink the guest live.",
            "Refused above the most the devices hold (O(max_memory)) or below the boot memory, and with "
            "O(memory_device=dimm); nothing is changed then. The guest kernel needs the C(virtio_mem) driver, and "
            "takes memory back reliably only when it onlined it movable (C(memhp_default_state=online_movable)).",
        ),
    ),
    GuestOption(
        "replan",
        Kind.BOOLEAN,
        (
            "With O(mode=auto), choose the host nodes again from the host's load now, instead of keeping the nodes "
            "stored with the spec by an earlier run. A guest that runs then needs a restart to move "
            "(RV(restart_required)).",
            "Without it, the stored choice is kept whatever the load, and a new choice is made only when there is "
            "none or when it names host nodes with CPUs that this host does not have.",
        ),
        default=False,
    ),
)

_BY_NAME = {item.name: item for item in SPEC_OPTIONS}


def option(name: str) -> Option:
    """The row of the spec option ``name`` (KeyError for anything else)."""
    return _BY_NAME[name]


def coerce_options(options: Mapping[Any, Any]) -> dict[Any, Any]:
    """A spec given raw (templated: ``"2"``, ``"yes"``), each known option read by its row (``Option.coerce``).

    None stays None (unset); an unknown key is left as it is, for ``VnumaSpec.from_mapping`` to refuse with
    the known ones.  For the filters' ``spec`` and the role's ``vnuma_fleet_spec``.
    """
    coerced: dict[Any, Any] = {}
    for key, value in options.items():
        row = _BY_NAME.get(key) if isinstance(key, str) else None
        coerced[key] = value if row is None or value is None else row.coerce(value)
    return coerced


def argument_spec(rows: Sequence[Option] = SPEC_OPTIONS) -> dict[str, dict[str, Any]]:
    """``rows`` (the spec options, or ``GUEST_OPTIONS``) as Ansible argspec entries, for ``vnuma_domain``.

    A fresh dict each call.
    """
    return {item.name: item.argument for item in rows}


# The values Ansible reads as a boolean, copied as data (the pure core does not import Ansible) from
# ansible.module_utils.parsing.convert_bool (ansible-core 2.17 to 2.19): BOOLEANS_TRUE and BOOLEANS_FALSE.  For values
# that reach the collection without Ansible's type checks (the options of a ``guests`` entry, the filters' spec,
# often templated into strings).  tests/unit/plugins/module_utils/_core/test_options.py holds them equal to Ansible's.
BOOLEANS_TRUE = frozenset(("y", "yes", "on", "1", "true", "t", 1, 1.0, True))
BOOLEANS_FALSE = frozenset(("n", "no", "off", "0", "false", "f", 0, 0.0, False))


def read_boolean(value: object) -> bool | None:
    """``value`` as a boolean the way Ansible's ``bool`` reads it (``convert_bool.boolean``), else None.

    Text (and bytes, decoded) is compared lowercased and stripped; any other value as it is, so that ``1`` and ``1.0``
    are true and ``2`` is not a boolean.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        value = value.lower().strip()
    try:
        if value in BOOLEANS_TRUE:
            return True
        if value in BOOLEANS_FALSE:
            return False
    except TypeError:  # unhashable (a list, a dict): no boolean
        return None
    return None
