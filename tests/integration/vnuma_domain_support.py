# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers of the vnuma_domain integration tests: run the module, read what libvirt and QEMU made of it.

``run_module`` runs the module's ``main()`` in this process, as Ansible would on the managed node,
with ``ansible.module_utils.testing.patch_module_args`` (the technique of the unit tests), against
the real libvirtd at ``qemu:///system``.  ``parse_qemu_argv`` reads the parts of the QEMU command line
that carry the NUMA layout (``conn.domainXMLToNative("qemu-argv", ...)``).
"""

from __future__ import annotations

import itertools
import json
import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml
from ansible_collections.vnuma.libvirt.tests.support.module_run import run_module

ROOT = Path(__file__).resolve().parents[2]
CAPABILITIES = ROOT / "tests" / "unit" / "fixtures" / "capabilities"
RING = str(CAPABILITIES / "seed-4node-ring.xml")
MIB = 1024  # in KiB


def inactive_xml(conn: libvirt.virConnect, name: str) -> str:
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def live_xml(conn: libvirt.virConnect, name: str) -> str:
    return conn.lookupByName(name).XMLDesc(0)


def rhythm(conn: libvirt.virConnect, args: dict[str, Any], diff: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The four steps: check mode (changed, nothing written), apply (changed), check mode and apply again
    (nothing changed).  Returns the check-mode plan and the result of the apply."""
    name = args["name"]
    before = inactive_xml(conn, name)
    plan = run_module(args, check_mode=True, diff=diff)
    assert plan["changed"] is True, plan
    assert plan["changes"], plan
    assert inactive_xml(conn, name) == before, "check mode wrote to the definition"
    applied = run_module(args)
    assert applied["changed"] is True, applied
    assert applied["changes"] == plan["changes"]
    assert applied["layout"] == plan["layout"]
    assert inactive_xml(conn, name) != before
    converged = inactive_xml(conn, name)
    second_plan = run_module(args, check_mode=True, diff=diff)
    assert second_plan["changed"] is False, second_plan["changes"]
    assert second_plan["changes"] == []
    again = run_module(args)
    assert again["changed"] is False, again["changes"]
    assert again["changes"] == []
    assert again["layout"] == applied["layout"]
    assert inactive_xml(conn, name) == converged, "a run without changes redefined the guest"
    return plan, applied


# -- what libvirt made of the layout ----------------------------------------------------------------


def domain_root(xml: str) -> Any:
    return parse_xml(xml, "domain XML", root_tag="domain")


def enabled_vcpus(xml: str) -> set[int]:
    """The vCPU ids a (live) definition lists as enabled; all of them without <vcpus>."""
    root = domain_root(xml)
    states = root.findall("vcpus/vcpu")
    if states:
        return {int(vcpu.get("id")) for vcpu in states if vcpu.get("enabled") == "yes"}
    vcpu = root.find("vcpu")
    return set(range(int(vcpu.get("current", vcpu.text))))


def numa_cells(xml: str) -> dict[int, tuple[frozenset[int], int]]:
    """``<cpu><numa>`` of a definition: cell id -> (vCPUs, memory KiB)."""
    cells = {}
    for cell in domain_root(xml).iterfind("cpu/numa/cell"):
        assert cell.get("unit", "KiB") == "KiB", "libvirt writes cell memory in KiB"
        cpus = parse_cpuset(cell.get("cpus"), "cell cpus", allow_empty=True) if cell.get("cpus") else frozenset()
        cells[int(cell.get("id"))] = (frozenset(cpus), int(cell.get("memory")))
    return cells


def memnode_nodesets(xml: str) -> dict[int, frozenset[int]]:
    """``<numatune><memnode>``: cell id -> host nodes."""
    return {
        int(node.get("cellid")): frozenset(parse_cpuset(node.get("nodeset"), "memnode nodeset"))
        for node in domain_root(xml).iterfind("numatune/memnode")
    }


def cpuset(text: str) -> frozenset[int]:
    return frozenset(parse_cpuset(text, "cpuset", allow_empty=True)) if text else frozenset()


def bind_to_this_host(xml: str, here: set[int]) -> tuple[str, bool]:
    """The definition with every memory binding to a node this host lacks moved to this host's lowest node.

    libvirt refuses to build the command line for host nodes it does not have ("NUMA node 1 is
    unavailable"), so the plans of other hosts are rendered with their bindings moved here; the rest of the
    command line (cells, CPUs, distances, topology, backend sizes) is as planned.
    """
    root = domain_root(xml)
    moved = False
    for element in root.iterfind("numatune/*"):
        nodes = cpuset(element.get("nodeset", ""))
        if nodes and not nodes <= here:
            element.set("nodeset", str(min(here)))
            moved = True
    return etree.tostring(root, encoding="unicode"), moved


# -- the QEMU command line -------------------------------------------------------------------------


@dataclass
class QemuNuma:
    """The NUMA-related options of a QEMU command line."""

    nodes: dict[int, frozenset[int]] = field(default_factory=dict)  # -numa node: node id -> CPUs
    memdev: dict[int, str] = field(default_factory=dict)  # -numa node: node id -> memory backend id
    distances: dict[tuple[int, int], int] = field(default_factory=dict)  # -numa dist
    smp: dict[str, int] = field(default_factory=dict)  # -smp: cpus, maxcpus, sockets, dies, cores, threads
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)  # -object memory-backend-*: id -> props
    cpu_devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # -device *-cpu: id -> props
    memory_mib: int | None = None  # -m (size, without slots and maxmem)
    maxmem: str | None = None
    slots: int | None = None
    initiators: dict[int, int] = field(default_factory=dict)  # -numa node,initiator=: node id -> initiator
    # -numa hmat-lb: (initiator, target, hierarchy, data-type) -> latency or bandwidth as QEMU was given it
    hmat_lb: dict[tuple[int, int, str, str], str] = field(default_factory=dict)
    hmat_cache: dict[tuple[int, int], dict[str, str]] = field(default_factory=dict)  # (node-id, level) -> the rest


def _options(text: str) -> list[tuple[str, str]]:
    """QEMU's ``key=value,key=value`` (the first item may be a bare value, as in ``-smp 6,...``)."""
    pairs = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        pairs.append((key, value) if sep else ("", key))
    return pairs


def parse_qemu_argv(argv: str) -> QemuNuma:
    words = shlex.split(argv)
    result = QemuNuma()
    for option, value in itertools.pairwise(words):
        if option == "-numa":
            pairs = _options(value)
            kind = pairs[0][1] if pairs[0][0] == "" else pairs[0][0]
            values: dict[str, list[str]] = {}
            for key, item in pairs[1:]:
                values.setdefault(key, []).append(item)
            if kind == "node":
                node = int(values["nodeid"][0])
                assert node not in result.nodes, f"-numa node,nodeid={node} twice"
                cpus: set[int] = set()
                for item in values.get("cpus", []):
                    # QEMU's cpus= takes one id or a range lo-hi; libvirt repeats it per range.
                    cpus.update(parse_cpuset(item, "-numa node cpus"))
                result.nodes[node] = frozenset(cpus)
                if "memdev" in values:
                    result.memdev[node] = values["memdev"][0]
                if "initiator" in values:
                    result.initiators[node] = int(values["initiator"][0])
            elif kind == "dist":
                key = (int(values["src"][0]), int(values["dst"][0]))
                assert key not in result.distances, f"-numa dist {key} twice"
                result.distances[key] = int(values["val"][0])
            elif kind == "hmat-lb":
                data_type = values["data-type"][0]
                lb = (int(values["initiator"][0]), int(values["target"][0]), values["hierarchy"][0], data_type)
                assert lb not in result.hmat_lb, f"-numa hmat-lb {lb} twice"
                result.hmat_lb[lb] = values["latency" if data_type.endswith("latency") else "bandwidth"][0]
            elif kind == "hmat-cache":
                cache = (int(values["node-id"][0]), int(values["level"][0]))
                rest = {key: items[0] for key, items in values.items() if key not in ("node-id", "level")}
                result.hmat_cache[cache] = rest
            else:
                raise AssertionError(f"unexpected -numa {value}")
        elif option == "-smp":
            pairs = _options(value)
            for key, item in pairs:
                result.smp[key or "cpus"] = int(item)
        elif option == "-m":
            for key, item in _options(value):
                if key in ("", "size"):
                    result.memory_mib = int(item.rstrip("M"))
                elif key == "slots":
                    result.slots = int(item)
                elif key == "maxmem":
                    result.maxmem = item
        elif option == "-device" and value.startswith("{"):
            props = json.loads(value)
            if str(props.get("driver", "")).endswith("-cpu"):
                result.cpu_devices[props["id"]] = props
        elif option == "-object":
            if value.startswith("{"):
                props = json.loads(value)
            else:
                props = dict(_options(value))
                props["qom-type"] = props.pop("", None)
            if str(props.get("qom-type", "")).startswith("memory-backend"):
                result.backends[props["id"]] = props
    return result


# -- waiting ----------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(interval)


def sorted_ids(values: Iterable[int]) -> list[int]:
    return sorted(values)
