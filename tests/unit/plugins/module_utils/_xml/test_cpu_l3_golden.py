# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Golden ``<cpu>`` and ``<cputune>`` of guests on hosts with L3 banks (docs/cache-locality.md).

``fixtures/domains/l3-<case>-in.xml`` expanded for its host must give exactly the ``<cpu>`` (topology,
cells, the user's ``<cache>``) and ``<cputune>`` of ``l3-<case>-cpu.xml``; ``pytest --regenerate-output``
rewrites those.  Only these two elements are compared: the rest of the expansion is the whole-domain
golden tests' (test_expand_golden.py).  The expanded domain must be accepted by libvirt's own parser
(the test driver, ``VIR_DOMAIN_DEFINE_VALIDATE``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.expand import expand_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text
from ansible_collections.vnuma.libvirt.tests.support.embedded_libvirt import read_back

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"

# case -> host capabilities fixture.
CASES = {
    # Four cells on one node of eight CCXs: each cell floats over two CCXs of its own.
    "epyc-nps1-ccx": "amd-epyc-nps1-ccx",
    # The same host without <cache>: every cell floats over the whole node.
    "epyc-nps1-nocache": "amd-epyc-nps1-nocache",
    # Two cells on one NPS4 node, dedicated cores: each cell's cores in its own CCX.
    "epyc-nps4-core": "amd-epyc-nps4-ccx",
}


def expanded(case: str) -> str:
    text = (FIXTURES / "domains" / f"l3-{case}-in.xml").read_text(encoding="utf-8")
    host = (FIXTURES / "capabilities" / f"{CASES[case]}.xml").read_text(encoding="utf-8")
    return expand_domain(text, host).xml


def cpu_parts(xml: str) -> str:
    root = parse_xml(xml, "expanded")
    golden = etree.Element("golden")
    for tag in ("cpu", "cputune"):
        element = root.find(tag)
        assert element is not None, f"no <{tag}>"
        golden.append(element)
    etree.indent(golden)
    return to_text(golden) + "\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_cpu_golden(case: str, regenerate_output: bool) -> None:
    path = FIXTURES / "domains" / f"l3-{case}-cpu.xml"
    result = cpu_parts(expanded(case))
    if regenerate_output:
        path.write_text(result, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"{path.name} is missing; run pytest with --regenerate-output and review it")
    assert result == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_libvirt_accepts_the_expanded_domain(case: str) -> None:
    root = parse_xml(expanded(case), case)
    back = read_back(root, f"l3-{case}")
    # libvirt keeps the topology and the user's <cache> as written.
    for path in ("cpu/topology", "cpu/cache"):
        assert [dict(element.attrib) for element in back.iterfind(path)] == [
            dict(element.attrib) for element in root.iterfind(path)
        ]
