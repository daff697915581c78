# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab's topology file: read, check against what QEMU can build, and model.

The schema is documented in docs/lab.md.  Every refusal names the file, the hypervisor, the field, the
value and the limit, so that a user can fix the file without reading QEMU's own messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.distances import (
    DEFAULT_REMOTE_DISTANCE,
    LOCAL_DISTANCE,
    MAX_DISTANCE,
    MIN_REMOTE_DISTANCE,
    is_valid_distance,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import parse_size

# QEMU 7.2 numbers NUMA nodes densely from 0 and allows 128 of them; far fewer make sense under TCG.
MAX_NODES = 16
# vCPUs of one lab hypervisor: TCG runs them all on this machine's 2 cores.
MAX_CPUS = 32
# Linux ignores a node below 4 MiB, and the lab's hugepages are 2 MiB: node sizes are whole 2 MiB steps.
MIN_NODE_MIB = 64
NODE_ALIGN_MIB = 2
# One lab hypervisor's memory; the machine's free memory is checked when the lab boots.
MAX_HYPERVISOR_MIB = 16 * 1024
# A node keeps at least half of its memory out of the hugepage pool, for the lab's own kernel and QEMU.
HUGEPAGE_SHARE = 2
HUGEPAGE_MIB = 2
THREAD_CHOICES = (1, 2, 4, 8)
MAX_HYPERVISORS = 4
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")

_HYPERVISOR_FIELDS = frozenset({"name", "sockets", "threads_per_core", "hmat", "distances", "nodes"})
_NODE_FIELDS = frozenset({"id", "cpus", "memory", "hugepages_2m"})


class TopologyError(VnumaError):
    """A topology file that the lab cannot build."""


@dataclass(frozen=True)
class LabNode:
    """One NUMA node of a lab hypervisor: logical CPUs (0 for a memory-only node), memory, 2 MiB pages."""

    id: int
    cpus: int
    memory_mib: int
    hugepages_2m: int


@dataclass(frozen=True)
class LabHypervisor:
    """One lab hypervisor: a QEMU machine with these nodes."""

    name: str
    sockets: int
    threads_per_core: int
    hmat: bool
    nodes: tuple[LabNode, ...]
    distances: tuple[tuple[int, ...], ...]

    @property
    def cpus(self) -> int:
        return sum(node.cpus for node in self.nodes)

    @property
    def cores(self) -> int:
        return self.cpus // self.threads_per_core

    @property
    def cores_per_socket(self) -> int:
        return self.cores // self.sockets

    @property
    def memory_mib(self) -> int:
        return sum(node.memory_mib for node in self.nodes)

    @property
    def cpu_nodes(self) -> tuple[LabNode, ...]:
        return tuple(node for node in self.nodes if node.cpus)

    def initiator(self, node: LabNode) -> int:
        """The node whose CPUs reach ``node`` first: itself, or for a memory-only node the nearest CPU node."""
        if node.cpus:
            return node.id
        return min(self.cpu_nodes, key=lambda other: (self.distances[node.id][other.id], other.id)).id

    def core_positions(self, node: LabNode) -> list[tuple[int, int]]:
        """The (socket, core) of each of ``node``'s cores: cores are dealt to nodes in id order."""
        first = sum(other.cpus for other in self.nodes[: node.id]) // self.threads_per_core
        per_socket = self.cores_per_socket
        return [divmod(core, per_socket) for core in range(first, first + node.cpus // self.threads_per_core)]


@dataclass(frozen=True)
class Lab:
    """Every hypervisor of one or more topology files."""

    hypervisors: tuple[LabHypervisor, ...]

    @property
    def memory_mib(self) -> int:
        return sum(hypervisor.memory_mib for hypervisor in self.hypervisors)


class _Where:
    """Names the place of a value in the file, for messages."""

    def __init__(self, path: str, hypervisor: str = "") -> None:
        self.path = path
        self.hypervisor = hypervisor

    def at(self, hypervisor: str) -> _Where:
        return _Where(self.path, hypervisor)

    def error(self, field: str, message: str) -> TopologyError:
        place = f"hypervisor {self.hypervisor!r}: " if self.hypervisor else ""
        return TopologyError(f"{self.path}: {place}{field}: {message}")


def _integer(where: _Where, field: str, value: object, minimum: int, maximum: int, why: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(field, f"{value!r} is not an integer")
    if not minimum <= value <= maximum:
        raise where.error(field, f"{value} is outside {minimum}..{maximum} ({why})")
    return value


def _mapping(where: _Where, field: str, value: object, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(field, f"expected a mapping, got {type(value).__name__}")
    unknown = sorted(str(key) for key in value if key not in allowed)
    if unknown:
        raise where.error(field, f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")
    return value


def _memory_mib(where: _Where, field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise where.error(field, f"{value!r} is not a size such as '1 GiB' or 1024 (MiB)")
    try:
        kib = parse_size(value, default_unit="MiB", what="memory")
    except VnumaError as error:
        raise where.error(field, str(error)) from None
    if kib % (NODE_ALIGN_MIB * 1024):
        raise where.error(field, f"{value!r} is not a multiple of {NODE_ALIGN_MIB} MiB (the lab's hugepage size)")
    mib = kib // 1024
    if mib < MIN_NODE_MIB:
        raise where.error(field, f"{value!r} is below the minimum of {MIN_NODE_MIB} MiB per node")
    return mib


def _node(where: _Where, index: int, raw: object, threads: int) -> LabNode:
    field = f"nodes[{index}]"
    data = _mapping(where, field, raw, _NODE_FIELDS)
    if "id" not in data or "memory" not in data:
        raise where.error(field, "every node needs an id and a memory size")
    node_id = _integer(where, f"{field}.id", data["id"], 0, MAX_NODES - 1, f"at most {MAX_NODES} nodes")
    cpus = _integer(where, f"{field}.cpus", data.get("cpus", 0), 0, MAX_CPUS, f"at most {MAX_CPUS} vCPUs")
    if cpus % threads:
        raise where.error(
            f"{field}.cpus", f"{cpus} is not a multiple of threads_per_core {threads} (a node holds whole cores)"
        )
    memory = _memory_mib(where, f"{field}.memory", data["memory"])
    pool_limit = memory // HUGEPAGE_SHARE // HUGEPAGE_MIB
    hugepages = _integer(
        where,
        f"{field}.hugepages_2m",
        data.get("hugepages_2m", 0),
        0,
        pool_limit,
        f"at most half of the node's {memory} MiB in 2 MiB pages",
    )
    return LabNode(node_id, cpus, memory, hugepages)


def _distances(where: _Where, raw: object, count: int) -> tuple[tuple[int, ...], ...]:
    if raw is None:
        return tuple(
            tuple(LOCAL_DISTANCE if row == column else DEFAULT_REMOTE_DISTANCE for column in range(count))
            for row in range(count)
        )
    if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) != count:
        raise where.error("distances", f"expected {count} rows of {count} distances (one per node, in id order)")
    matrix: list[tuple[int, ...]] = []
    for row_id, row in enumerate(raw):
        if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != count:
            raise where.error(f"distances[{row_id}]", f"expected {count} distances, got {row!r}")
        for column_id, value in enumerate(row):
            if not is_valid_distance(value, row_id == column_id):
                limit = (
                    f"must be {LOCAL_DISTANCE}"
                    if row_id == column_id
                    else f"must be {MIN_REMOTE_DISTANCE}..{MAX_DISTANCE}"
                )
                raise where.error(f"distances[{row_id}][{column_id}]", f"{value!r} {limit}")
        matrix.append(tuple(row))
    for row_id in range(count):
        for column_id in range(count):
            if matrix[row_id][column_id] != matrix[column_id][row_id]:
                raise where.error(
                    f"distances[{row_id}][{column_id}]",
                    f"{matrix[row_id][column_id]} but distances[{column_id}][{row_id}] is "
                    f"{matrix[column_id][row_id]}: the lab's distances are symmetric",
                )
    return tuple(matrix)


def _check_sockets(where: _Where, hypervisor: LabHypervisor) -> None:
    """QEMU gives every socket the same number of cores, and a lab node's cores stay in one socket."""
    if hypervisor.cores % hypervisor.sockets:
        raise where.error(
            "sockets",
            f"{hypervisor.sockets} sockets do not divide the {hypervisor.cores} cores evenly "
            f"(QEMU gives each socket the same number of cores)",
        )
    for node in hypervisor.cpu_nodes:
        sockets = {socket for socket, _core in hypervisor.core_positions(node)}
        if len(sockets) > 1:
            raise where.error(
                f"nodes[{node.id}].cpus",
                f"node {node.id}'s {node.cpus} CPUs would span sockets {sorted(sockets)} with "
                f"{hypervisor.cores_per_socket} cores per socket (a node's cores must stay in one socket)",
            )


def _hypervisor(where: _Where, index: int, raw: object) -> LabHypervisor:
    data = _mapping(where, f"hypervisors[{index}]", raw, _HYPERVISOR_FIELDS)
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise where.error(
            f"hypervisors[{index}].name", f"{name!r} must match {NAME_RE.pattern} (it becomes a host name)"
        )
    where = where.at(name)
    threads = data.get("threads_per_core", 1)
    if threads not in THREAD_CHOICES or isinstance(threads, bool):
        raise where.error("threads_per_core", f"{threads!r} must be one of {', '.join(map(str, THREAD_CHOICES))}")
    hmat = data.get("hmat", False)
    if not isinstance(hmat, bool):
        raise where.error("hmat", f"{hmat!r} must be true or false")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, Sequence) or isinstance(raw_nodes, str) or not raw_nodes:
        raise where.error("nodes", "expected a non-empty list of nodes")
    if len(raw_nodes) > MAX_NODES:
        raise where.error("nodes", f"{len(raw_nodes)} nodes is above the limit of {MAX_NODES}")
    nodes = sorted((_node(where, number, item, threads) for number, item in enumerate(raw_nodes)), key=lambda n: n.id)
    ids = [node.id for node in nodes]
    if ids != list(range(len(nodes))):
        raise where.error("nodes", f"ids {ids} must be 0..{len(nodes) - 1}, each once (QEMU numbers nodes densely)")
    if not any(node.cpus for node in nodes):
        raise where.error("nodes", "no node has CPUs; at least one must")
    if not nodes[0].cpus:
        raise where.error("nodes[0].cpus", "0: node 0 must have CPUs (Linux boots its first CPU on node 0)")
    total_cpus = sum(node.cpus for node in nodes)
    if total_cpus > MAX_CPUS:
        raise where.error("nodes", f"{total_cpus} CPUs in all is above the limit of {MAX_CPUS} (TCG on this machine)")
    total_memory = sum(node.memory_mib for node in nodes)
    if total_memory > MAX_HYPERVISOR_MIB:
        raise where.error(
            "nodes", f"{total_memory} MiB of memory in all is above the limit of {MAX_HYPERVISOR_MIB} MiB"
        )
    cores = total_cpus // threads
    sockets = _integer(where, "sockets", data.get("sockets", 1), 1, cores, f"the hypervisor has {cores} cores")
    hypervisor = LabHypervisor(
        name=name,
        sockets=sockets,
        threads_per_core=threads,
        hmat=hmat,
        nodes=tuple(nodes),
        distances=_distances(where, data.get("distances"), len(nodes)),
    )
    _check_sockets(where, hypervisor)
    return hypervisor


def parse_topology(data: object, path: str) -> Lab:
    """Check one topology document (already loaded from YAML) and model it."""
    where = _Where(path)
    top = _mapping(where, "top level", data, frozenset({"hypervisors"}))
    raw = top.get("hypervisors")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise where.error("hypervisors", "expected a non-empty list of hypervisors")
    hypervisors = tuple(_hypervisor(where, index, item) for index, item in enumerate(raw))
    return merge_labs([Lab(hypervisors)], [path])


def merge_labs(labs: Sequence[Lab], paths: Sequence[str]) -> Lab:
    """One lab from several files: hypervisor names are unique across them."""
    seen: dict[str, str] = {}
    hypervisors: list[LabHypervisor] = []
    for lab, path in zip(labs, paths, strict=True):
        for hypervisor in lab.hypervisors:
            if hypervisor.name in seen:
                raise _Where(path, hypervisor.name).error(
                    "name", f"already used by a hypervisor of {seen[hypervisor.name]}"
                )
            seen[hypervisor.name] = path
            hypervisors.append(hypervisor)
    if len(hypervisors) > MAX_HYPERVISORS:
        raise _Where(paths[-1]).error(
            "hypervisors", f"{len(hypervisors)} hypervisors is above the limit of {MAX_HYPERVISORS}"
        )
    return Lab(tuple(hypervisors))


def load_topology(paths: Sequence[str | Path]) -> Lab:
    """Read and check one or more topology files."""
    labs = []
    names = []
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise TopologyError(f"{path}: not valid YAML: {error}") from None
        labs.append(parse_topology(data, str(path)))
        names.append(str(path))
    if not labs:
        raise TopologyError("no topology file given")
    return merge_labs(labs, names)
