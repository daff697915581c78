# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One writer per element: each model's ``markup()``, which ``to_element`` and ``update`` only parse."""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import cpu_numa, cputune, memory, numatune, vcpus
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cpu_numa import (
    CpuCache,
    CpuTopology,
    Numa,
    NumaCell,
    Sibling,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.cputune import Emulatorpin, Vcpupin
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.hmat import Interconnect, NumaCache
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.iothreads import Iothreadpin
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import ElementModel
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.memory import (
    CurrentMemory,
    HugePage,
    Hugepages,
    MaxMemory,
    Memory,
)
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.numatune import Memnode, Numatune, NumatuneMemory
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vcpus import Vcpu, Vcpus, VcpuState

GIB = 1024 * 1024
_CELL = NumaCell(1, (2, 3), GIB, "shared", True, (Sibling(0, 21), Sibling(1, 10)))

# One model of each element, with every optional part present where it has one.
MODELS: list[ElementModel] = [
    Vcpu(4, "static", (0, 1), 2),
    VcpuState(3, True, True, 2),
    Vcpus((VcpuState(0, True, False, 1), VcpuState(1, False, True))),
    CpuTopology(1, 1, 2, 2, clusters=2),
    CpuCache("emulate", 3),
    Sibling(0, 10),
    _CELL,
    Numa((NumaCell(0, (0, 1), GIB, distances=(Sibling(0, 10), Sibling(1, 21))), _CELL)),
    NumaCache(1, 262144, 64, "direct", "writeback"),
    Interconnect("bandwidth", 0, 1, "read", 9986048),
    NumatuneMemory("strict", (0, 1), None),
    Memnode(0, "preferred", (1,)),
    Numatune(NumatuneMemory("interleave", (0,)), (Memnode(0, "strict", (0,)),)),
    Vcpupin(5, (0, 1, 2, 8)),
    Emulatorpin((0, 4)),
    Iothreadpin(2, (0, 4)),
    MaxMemory(8 * GIB, 4),
    HugePage(2048, (0, 1)),
    Hugepages((HugePage(2048, (0,)), HugePage(1048576))),
    Hugepages(),
    Memory(GIB),
    CurrentMemory(GIB // 2),
]


def _models() -> set[type]:
    found: set[type] = set()
    pending = [ElementModel]
    while pending:
        for subclass in pending.pop().__subclasses__():
            found.add(subclass)
            pending.append(subclass)
    return found


def test_every_element_model_is_covered() -> None:
    # The group modules are imported above: every model of theirs is a subclass by now.
    assert {vcpus, cpu_numa, numatune, cputune, memory}
    assert _models() == {type(model) for model in MODELS}


@pytest.mark.parametrize("model", MODELS, ids=lambda model: type(model).__name__)
def test_one_writer(model: ElementModel) -> None:
    kind = type(model)
    # markup() is the writer; no class keeps a second one beside it.
    assert kind.markup is not ElementModel.markup
    for klass in kind.__mro__:
        if klass is not ElementModel:
            assert not {"to_element", "unchecked_element", "overwrite"} & set(vars(klass)), klass
    # to_element is what the writer wrote, parsed: the same text back, and the same model.
    element = model.to_element()
    assert etree.tostring(element, encoding="unicode") == model.markup()
    assert kind.from_element(element) == model  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("written", "model", "expected"),
    [
        (
            "<domain><vcpu cpuset='0-3' dumpCore='x' current='1' placement='auto'>2</vcpu></domain>",
            Vcpu(4, "static", None, None),
            '<domain><vcpu dumpCore="x" placement="static">4</vcpu></domain>',
        ),
        (
            "<domain><vcpu a='b'>2</vcpu></domain>",
            Vcpu(4, "static", (1, 2), 3),
            '<domain><vcpu a="b" placement="static" cpuset="1-2" current="3">4</vcpu></domain>',
        ),
        (
            "<domain><memory dumpCore='on' unit='MiB'>1</memory></domain>",
            Memory(2048),
            '<domain><memory dumpCore="on" unit="KiB">2048</memory></domain>',
        ),
    ],
)
def test_update_writes_through_the_writer_and_keeps_other_attributes(
    written: str, model: Vcpu | Memory, expected: str
) -> None:
    root = parse_xml(written, "t")
    model.update(root[0])
    assert to_text(root) == expected
