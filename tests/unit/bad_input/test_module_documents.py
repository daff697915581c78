# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Host documents and sizes through the modules themselves (test:///default), both modules alike.

A Latin-1 or UTF-16 ``host_capabilities`` file ended in a raw UnicodeDecodeError, ``/dev/zero`` in a
bare "Module failed." and a FIFO hung the module; ``cells: 1000000000`` ran for minutes.  Each is now
the collection's own error naming the option and the value, and changes nothing; documents in the
encoding their declaration names are read.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain, vnuma_info
from ansible_collections.vnuma.libvirt.tests.support.deadline import returns_within
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module

FIXTURES = Path(__file__).parents[1] / "fixtures" / "capabilities"
RING = FIXTURES / "seed-4node-ring.xml"
URI = "test:///default"
MODULES = {"vnuma_domain": vnuma_domain, "vnuma_info": vnuma_info}
# Long enough for any refusal here; a module that blocks on a FIFO would never end.
GUARD_SECONDS = 30


def ring_body() -> str:
    """The ring fixture without its XML declaration, with a character outside ASCII in a comment."""
    text = RING.read_text()
    if text.startswith("<?xml"):
        text = text.split("?>", 1)[1]
    return text.replace("<capabilities>", "<capabilities><!-- café -->", 1)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    body = ring_body()
    (tmp_path / "latin1.xml").write_bytes(f"<?xml version='1.0' encoding='ISO-8859-1'?>{body}".encode("latin-1"))
    (tmp_path / "utf16.xml").write_bytes(f"<?xml version='1.0' encoding='UTF-16'?>{body}".encode("utf-16"))
    (tmp_path / "lying.xml").write_bytes(f"<?xml version='1.0' encoding='UTF-8'?>{body}".encode("latin-1"))
    os.mkfifo(tmp_path / "fifo")
    return {"tmp": str(tmp_path)}


@pytest.fixture
def guest() -> Iterator[str]:
    conn = libvirt.open(URI)
    name = f"doc-{uuid.uuid4().hex[:8]}"
    conn.defineXML(
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>2048</memory><vcpu>4</vcpu>"
        "<os><type>hvm</type></os></domain>"
    )
    try:
        yield name
    finally:
        conn.lookupByName(name).undefine()
        conn.close()


@pytest.fixture
def guard() -> Iterator[None]:
    """Turn a module that blocks into a failure instead of a hung test run."""
    with returns_within(GUARD_SECONDS, "the module"):
        yield


def definition(name: str) -> str:
    conn = libvirt.open(URI)
    try:
        return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()


def args_for(module: str, guest: str, **options: Any) -> dict[str, Any]:
    selection = {"name": guest} if module == "vnuma_domain" else {"guests": [guest]}
    return {"uri": URI, **selection, **options}


DOCUMENTS = [
    pytest.param(
        "{tmp}/lying.xml",
        "host_capabilities '{tmp}/lying.xml' cannot be decoded: Invalid bytes in character encoding, line 1, "
        "column 61 (<string>, line 1); its bytes must be in the encoding its XML declaration names (UTF-8 when it "
        "names none)",
        id="bytes-not-in-the-declared-encoding",
    ),
    pytest.param(
        "/dev/zero",
        "host_capabilities '/dev/zero' is a character device, not a regular file of capabilities XML",
        id="dev-zero",
    ),
    pytest.param(
        "{tmp}/fifo",
        "host_capabilities '{tmp}/fifo' is a FIFO, not a regular file of capabilities XML",
        id="fifo",
    ),
    pytest.param(
        "{tmp}",
        "host_capabilities '{tmp}' is a directory, not a regular file of capabilities XML",
        id="directory",
    ),
    pytest.param(
        "{tmp}/missing.xml",
        "host_capabilities: cannot read '{tmp}/missing.xml': No such file or directory",
        id="missing-file",
    ),
]


@pytest.mark.usefixtures("guard")
@pytest.mark.parametrize("module", list(MODULES))
@pytest.mark.parametrize(("path", "message"), DOCUMENTS)
def test_a_host_document_that_cannot_be_read_is_refused_by_name(
    files: dict[str, str], guest: str, module: str, path: str, message: str
) -> None:
    before = definition(guest)
    result = fail_module(args_for(module, guest, host_capabilities=path.format(**files)), module=MODULES[module])
    assert result["msg"] == message.format(**files)
    assert definition(guest) == before


@pytest.mark.parametrize("module", list(MODULES))
@pytest.mark.parametrize("encoding", ["latin1", "utf16"])
def test_a_host_document_in_its_declared_encoding_is_read(
    files: dict[str, str], guest: str, module: str, encoding: str
) -> None:
    result = run_module(args_for(module, guest, host_capabilities=f"{files['tmp']}/{encoding}.xml"), check_mode=True)
    if module == "vnuma_domain":
        assert [len(result["layout"]["cells"]), result["changed"]] == [4, True]
    else:
        result = run_module(
            args_for(module, guest, host_capabilities=f"{files['tmp']}/{encoding}.xml"), module=vnuma_info
        )
        assert [node["id"] for node in result["host"]["nodes"]] == [0, 1, 2, 3]


# 256 MiB in Arabic-Indic and in fullwidth digits: str.isdigit() takes both, int() reads both.
ARABIC = "\u0662\u0665\u0666 MiB"
FULLWIDTH = "\uff12\uff15\uff16 MiB"

SIZES = [
    pytest.param(
        {"mode": "node", "cells": 1000000000},
        "cells 1000000000 must be an integer from 1 to 128 (QEMU's MAX_NODES)",
        id="cells-billion",
    ),
    pytest.param(
        {"memory": ARABIC}, f"memory: '{ARABIC}' is not a size such as '16 GiB' or 524288", id="arabic-digits"
    ),
    pytest.param(
        {"memory": FULLWIDTH}, f"memory: '{FULLWIDTH}' is not a size such as '16 GiB' or 524288", id="fullwidth-digits"
    ),
    pytest.param(
        {"current_vcpus": 10**9}, "current vcpus 1000000000 is above the maximum of 4 vCPUs", id="current-vcpus-billion"
    ),
    pytest.param(
        {"max_memory": "8 GiB", "memory_slots": 10**6},
        "memory_slots 1000000 must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)",
        id="slots-million",
    ),
    pytest.param(
        {"hotplug_memory": "9999999 PiB"},
        "hotplug_memory '9999999 PiB' is above the limit of 4 PiB (all a 52-bit physical address space holds)",
        id="hotplug-memory-huge",
    ),
]


@pytest.mark.parametrize(("options", "message"), SIZES)
def test_a_size_above_its_limit_is_refused_through_the_module(
    guest: str, options: dict[str, Any], message: str
) -> None:
    before = definition(guest)
    result = fail_module(args_for("vnuma_domain", guest, host_capabilities=str(RING), **options))
    assert result["msg"] == f"guest {guest}: {message}"
    assert result["changed"] is False
    assert definition(guest) == before
