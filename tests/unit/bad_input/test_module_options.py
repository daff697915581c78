# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad module options of vnuma_domain and vnuma_info, one table: each is refused with its exact message
and leaves every guest definition of the test driver as it was.

Then the inputs that used to be accepted silently (issue 8, point 8) and are now a warning or a choice
the docs state: an empty selection, patterns matching nothing, a guest literally named ``web[1]``,
entries for one guest that agree.  Everything runs against libvirt's in-process test driver.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain, vnuma_info
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module, run_module

FIXTURES = Path(__file__).parents[1] / "fixtures" / "capabilities"
RING = str(FIXTURES / "seed-4node-ring.xml")
GIB = 1024 * 1024  # in KiB
URI = "test:///default"

SIZE = "is not a size such as '16 GiB' or 524288"
NOT_OWN_FIX = (
    "give it to this user with no write permission for others (chown, chmod go-w), or choose another directory"
)
RENAMED_AWAY = (
    "another user could put a directory of theirs in the backup directory's place and replace a backup before it is "
    "restored; choose another directory, or fix that one: it must belong to root or this user, and let other users "
    "write to it only with the sticky bit"
)
# A count's one message, whichever way it came (a <vnuma> attribute, a top-level option, a guests entry).
CELLS_RANGE = "must be an integer from 1 to 128 (QEMU's MAX_NODES)"
SLOTS_RANGE = "must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)"
CHOICES = {
    "mode": "host, node, auto",
    "distribution": "contiguous, siblings, round-robin, interleave",
    "pinning": "node, core, thread, none",
    "memory_mode": "strict, preferred, interleave, restrictive",
    "memory_split": "even, vcpus",
    "emulator_pin": "none, nodes",
    "state": "present, absent",
}
KNOWN = (
    "cells, cpuless_cells, current_vcpus, device_cells, device_locality, distribution, emulator_pin, "
    "emulator_threads, hmat, hotplug_memory, hugepages, iothreads, max_memory, "
    "memory, memory_device, "
    "memory_mode, memory_slots, memory_split, mode, nodeset, pci_numa_affinity, pinning, replan, state, total_memory"
)


def entry(**options: Any) -> dict[str, Any]:
    """vnuma_domain arguments converging guest ``{a}`` through a guests entry with ``options``."""
    return {"guests": [{"name": "{a}", **options}]}


# (module, arguments, exact message).  "{a}", "{b}", "{web}" are guests defined for the test (a random
# prefix), "{tmp}" a scratch directory holding a regular file "file", a directory "open" of mode 0777 with a
# directory "kept" of mode 0700 in it, a directory "sticky" of mode 1777 and a symlink "dangling" to "nowhere/deeper".
CASES = [
    # -- name, guests, exclude: their shapes
    pytest.param("domain", {"name": ""}, "name is empty: give the name of a defined guest", id="name-empty"),
    pytest.param(
        "domain",
        {"name": "{a}", "exclude": ["{b}"]},
        "exclude leaves guests out of guests; it does not go with name",
        id="name-with-exclude",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "guests": ["{b}"]},
        "parameters are mutually exclusive: name|guests|fleet",
        id="name-and-guests",
    ),
    pytest.param("domain", {}, "one of the following is required: name, guests, fleet", id="neither-name-nor-guests"),
    pytest.param(
        "domain",
        {"fleet": {"guests": ["{a}"], "specs": {"mode": "host"}}},
        "fleet: unknown key specs; the keys are guests, exclude, guest_state, spec, overrides, use_stored_spec, apply, "
        "compact",
        id="fleet-unknown-key",
    ),
    pytest.param(
        "domain",
        {"guests": ["{a}", ""]},
        "guests[1] is empty: give a guest name or a shell pattern",
        id="guests-empty-entry",
    ),
    pytest.param(
        "domain",
        {"guests": [5]},
        "guests[0] 5 is not a guest name, a shell pattern or a dict with a name",
        id="guests-entry-int",
    ),
    pytest.param(
        "domain",
        {"guests": [["{a}"]]},
        "guests[0] ['{a}'] is not a guest name, a shell pattern or a dict with a name",
        id="guests-entry-list",
    ),
    pytest.param(
        "domain",
        {"guests": [{"memory": "1 GiB"}]},
        "guests[0] has no name: a dict entry needs one (a guest name or a shell pattern)",
        id="guests-dict-without-name",
    ),
    pytest.param(
        "domain",
        {"guests": [{"name": ""}]},
        "guests[0].name is empty: give a guest name or a shell pattern",
        id="guests-dict-name-empty",
    ),
    pytest.param(
        "domain",
        {"guests": [{"name": 5}]},
        "guests[0].name 5 is not a guest name or a shell pattern",
        id="guests-dict-name-int",
    ),
    pytest.param(
        "domain",
        entry(bogus=1, vcpus=2),
        f"guests[0] ({{a}}): unknown option(s) bogus, vcpus; known: {KNOWN}",
        id="guests-dict-unknown-options",
    ),
    pytest.param(
        "domain",
        {"guests": ["{a}"], "exclude": ["{b}", ""]},
        "exclude[1] is empty: give a guest name or a shell pattern",
        id="exclude-empty-entry",
    ),
    # -- per-guest values that are not of the option's type (Ansible checks only the top level)
    pytest.param("domain", entry(cells="two"), f"guest {{a}}: cells 'two' {CELLS_RANGE}", id="entry-cells-word"),
    pytest.param("domain", entry(cells=0), f"guest {{a}}: cells 0 {CELLS_RANGE}", id="entry-cells-zero"),
    pytest.param("domain", entry(cells=-1), f"guest {{a}}: cells -1 {CELLS_RANGE}", id="entry-cells-negative"),
    pytest.param("domain", entry(cells=True), f"guest {{a}}: cells True {CELLS_RANGE}", id="entry-cells-bool"),
    pytest.param("domain", entry(cells=1.5), f"guest {{a}}: cells 1.5 {CELLS_RANGE}", id="entry-cells-float"),
    pytest.param("domain", entry(replan="maybe"), "guest {a}: replan 'maybe' is not a boolean", id="entry-replan-word"),
    pytest.param(
        "domain",
        {"name": "{a}", "mode": "auto", "nodeset": "1"},
        "guest {a}: nodeset '1' is what mode auto chooses; leave it out, or use mode node to name the host nodes",
        id="auto-with-nodeset",
    ),
    pytest.param("domain", entry(cells="٢"), f"guest {{a}}: cells '٢' {CELLS_RANGE}", id="entry-cells-arabic-digit"),
    pytest.param(
        "domain",
        entry(current_vcpus=[1]),
        "guest {a}: current_vcpus [1] must be a positive integer",
        id="entry-vcpus-list",
    ),
    pytest.param(
        "domain", entry(current_vcpus=0), "guest {a}: current_vcpus 0 must be a positive integer", id="entry-vcpus-zero"
    ),
    pytest.param(
        "domain",
        entry(memory_slots="many"),
        f"guest {{a}}: memory_slots 'many' {SLOTS_RANGE}",
        id="entry-slots-word",
    ),
    pytest.param(
        "domain", entry(pinning=5), f"guest {{a}}: pinning 5 is not one of {CHOICES['pinning']}", id="entry-pinning-int"
    ),
    pytest.param(
        "domain",
        entry(pinning="cpu"),
        f"guest {{a}}: pinning 'cpu' is not one of {CHOICES['pinning']}",
        id="entry-pinning-unknown",
    ),
    pytest.param(
        "domain", entry(mode="nodes"), f"guest {{a}}: mode 'nodes' is not one of {CHOICES['mode']}", id="entry-mode"
    ),
    pytest.param(
        "domain",
        entry(distribution="random"),
        f"guest {{a}}: distribution 'random' is not one of {CHOICES['distribution']}",
        id="entry-distribution",
    ),
    pytest.param(
        "domain",
        entry(memory_mode="bind"),
        f"guest {{a}}: memory_mode 'bind' is not one of {CHOICES['memory_mode']}",
        id="entry-memory-mode",
    ),
    pytest.param(
        "domain",
        entry(memory_split="cpus"),
        f"guest {{a}}: memory_split 'cpus' is not one of {CHOICES['memory_split']}",
        id="entry-memory-split",
    ),
    pytest.param(
        "domain",
        entry(emulator_pin="all"),
        f"guest {{a}}: emulator_pin 'all' is not one of {CHOICES['emulator_pin']}",
        id="entry-emulator-pin",
    ),
    pytest.param(
        "domain",
        entry(state="bogus"),
        f"guest {{a}}: state 'bogus' is not one of {CHOICES['state']}",
        id="entry-state-unknown",
    ),
    pytest.param(
        "domain",
        entry(state=True),
        f"guest {{a}}: state True is not one of {CHOICES['state']}",
        id="entry-state-bool",
    ),
    pytest.param(
        "domain",
        entry(cpuless_cells="maybe"),
        "guest {a}: cpuless_cells 'maybe' is not a boolean",
        id="entry-cpuless-word",
    ),
    pytest.param(
        "domain", entry(cpuless_cells=5), "guest {a}: cpuless_cells 5 is not a boolean", id="entry-cpuless-int"
    ),
    # YAML reads a bare off as false: the words are none, host and synthesize.
    pytest.param(
        "domain", entry(hmat=False), "guest {a}: hmat False is not one of none, host, synthesize", id="entry-hmat-off"
    ),
    pytest.param(
        "domain",
        entry(hmat="host"),
        "guest {a}: hmat host: the host reports no HMAT latency or bandwidth for host node 0 (guest cell 0's memory); "
        "use hmat synthesize or none",
        id="entry-hmat-host-without-hmat",
    ),
    pytest.param("domain", entry(memory="lots"), f"guest {{a}}: memory: 'lots' {SIZE}", id="entry-memory-word"),
    pytest.param("domain", entry(memory=[1]), f"guest {{a}}: memory: [1] {SIZE}", id="entry-memory-list"),
    pytest.param(
        "domain",
        entry(hugepages="2 XB"),
        "guest {a}: hugepages: unknown unit 'XB' (use one of KiB, MiB, GiB, TiB, b, KB, MB, GB)",
        id="entry-hugepages-unit",
    ),
    pytest.param(
        "domain",
        entry(max_memory=-1),
        "guest {a}: max_memory: -1 is not a non-negative integer",
        id="entry-max-memory-negative",
    ),
    pytest.param(
        "domain",
        entry(hotplug_memory="1.5 GiB"),
        f"guest {{a}}: hotplug_memory: '1.5 GiB' {SIZE}",
        id="entry-hotplug-fraction",
    ),
    pytest.param(
        "domain",
        entry(nodeset="3-1"),
        "guest {a}: nodeset '3-1': range 3-1 runs backwards",
        id="entry-nodeset-backwards",
    ),
    pytest.param(
        "domain",
        entry(nodeset=[0]),
        "guest {a}: nodeset must be a string in libvirt cpuset syntax, got list",
        id="entry-nodeset-list",
    ),
    # -- two entries for one guest that disagree
    pytest.param(
        "domain",
        {"guests": [{"name": "{a}", "pinning": "none"}, {"name": "{a}", "pinning": "core"}]},
        "guest {a}: guests[0] ({a}) and guests[1] ({a}) set pinning differently: 'none' and 'core'",
        id="conflict-same-name",
    ),
    pytest.param(
        "domain",
        {"guests": [{"name": "{prefix}-*", "memory": "1 GiB"}, "{b}", {"name": "{a}", "memory": "2 GiB"}]},
        "guest {a}: guests[0] ({prefix}-*) and guests[2] ({a}) set memory differently: '1 GiB' and '2 GiB'",
        id="conflict-pattern-and-name",
    ),
    pytest.param(
        "domain",
        {"guests": [{"name": "{a}", "state": "present"}, {"name": "{a}", "state": "absent"}]},
        "guest {a}: guests[0] ({a}) and guests[1] ({a}) set state differently: 'present' and 'absent'",
        id="conflict-state",
    ),
    pytest.param(
        "domain",
        {"guests": [{"name": "{a}", "nodeset": "0-1"}, {"name": "{a}", "nodeset": "0,2"}]},
        "guest {a}: guests[0] ({a}) and guests[1] ({a}) set nodeset differently: '0-1' and '0,2'",
        id="conflict-nodeset",
    ),
    # -- top-level options that Ansible's types let through
    pytest.param(
        "domain",
        {"name": "{a}", "restart": "if_needed", "shutdown_timeout": -5},
        "shutdown_timeout -5 is outside 0 to 86400 seconds",
        id="shutdown-timeout-negative",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "shutdown_timeout": 86401},
        "shutdown_timeout 86401 is outside 0 to 86400 seconds",
        id="shutdown-timeout-above-a-day",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "shutdown_timeout": "soon"},
        "argument 'shutdown_timeout' is of type str and we were unable to convert to float: "
        "<class 'str'> cannot be converted to a float",
        id="shutdown-timeout-word",
    ),
    # -- a float infinity or NaN from YAML (.inf, .nan) for a number: ansible-core's int type raised OverflowError
    # on .inf (int(Decimal('Infinity'))) and refused 1.5 and .nan in its own words; lock_timeout's NaN gave no range.
    pytest.param("domain", {"name": "{a}", "cells": 1.5}, f"guest {{a}}: cells 1.5 {CELLS_RANGE}", id="cells-float"),
    pytest.param(
        "domain", {"name": "{a}", "cells": float("inf")}, f"guest {{a}}: cells inf {CELLS_RANGE}", id="cells-inf"
    ),
    pytest.param(
        "domain", {"name": "{a}", "cells": float("nan")}, f"guest {{a}}: cells nan {CELLS_RANGE}", id="cells-nan"
    ),
    pytest.param(
        "domain",
        {"guests": ["{a}"], "memory_slots": float("inf")},
        f"memory_slots inf {SLOTS_RANGE}",
        id="memory-slots-inf-for-all-guests",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "current_vcpus": float("inf")},
        "guest {a}: current_vcpus inf must be a positive integer",
        id="current-vcpus-inf",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "shutdown_timeout": float("inf")},
        "shutdown_timeout inf is outside 0 to 86400 seconds",
        id="shutdown-timeout-inf",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "shutdown_timeout": float("nan")},
        "shutdown_timeout nan is not a number of seconds from 0 to 86400",
        id="shutdown-timeout-nan",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "lock_timeout": float("nan")},
        "lock_timeout nan is not a number of seconds from 0 to 86400",
        id="lock-timeout-nan",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "backup": True, "backup_dir": ""},
        "backup_dir is empty: with backup true it must be an absolute path",
        id="backup-dir-empty",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "backup": True, "backup_dir": "backups"},
        "backup_dir 'backups' is a relative path: with backup true it must be an absolute one",
        id="backup-dir-relative",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "backup": True, "backup_dir": "{tmp}/file"},
        "backup_dir '{tmp}/file' is not a directory",
        id="backup-dir-is-a-file",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "backup": True, "backup_dir": "{tmp}/file/backups"},
        "backup_dir '{tmp}/file/backups' cannot be created: '{tmp}/file' is not a directory",
        id="backup-dir-under-a-file",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "backup": True, "backup_dir": "{tmp}/open"},
        "backup_dir '{tmp}/open' is not this run's own (its mode 0777 lets other users write to it): another user "
        f"could replace a backup in it before it is restored; {NOT_OWN_FIX}",
        id="backup-dir-writable-by-all",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "backup": True, "backup_dir": "{tmp}/sticky"},
        "backup_dir '{tmp}/sticky' is not this run's own (its mode 1777 lets other users write to it): another user "
        f"could replace a backup in it before it is restored; {NOT_OWN_FIX}",
        id="backup-dir-writable-by-all-sticky",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "backup": True, "backup_dir": "{tmp}/dangling"},
        "backup_dir '{tmp}/dangling' is a symlink to '{tmp}/nowhere/deeper', which does not exist: create that "
        "directory, or choose another",
        id="backup-dir-dangling-symlink",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "backup": True, "backup_dir": "{tmp}/dangling/backups"},
        "backup_dir '{tmp}/dangling/backups' cannot be created: '{tmp}/dangling' is a symlink to "
        "'{tmp}/nowhere/deeper', which does not exist: create that directory, or choose another",
        id="backup-dir-under-a-dangling-symlink",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "backup": True, "backup_dir": "{tmp}/open/kept"},
        "backup_dir '{tmp}/open/kept' is under '{tmp}/open', where other users can rename what it holds (its mode "
        f"0777 lets other users write to it without the sticky bit): {RENAMED_AWAY}",
        id="backup-dir-in-a-directory-writable-by-all",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "backup": True, "backup_dir": "{tmp}/open/new"},
        "backup_dir '{tmp}/open/new' is under '{tmp}/open', where other users can rename what it holds (its mode "
        f"0777 lets other users write to it without the sticky bit): {RENAMED_AWAY}",
        id="backup-dir-to-create-in-a-directory-writable-by-all",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "reserved_memory": "lots"},
        f"reserved_memory: 'lots' {SIZE}",
        id="reserved-memory-word",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "reserved_memory": -1},
        "reserved_memory: -1 is not a non-negative integer",
        id="reserved-memory-negative",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "current_vcpus": 0},
        "guest {a}: current_vcpus 0 must be a positive integer",
        id="current-vcpus-zero",
    ),
    pytest.param("domain", {"name": "{a}", "cells": -3}, f"guest {{a}}: cells -3 {CELLS_RANGE}", id="cells-negative"),
    pytest.param(
        "domain",
        {"name": "{a}", "memory_slots": 0},
        f"guest {{a}}: memory_slots 0 {SLOTS_RANGE}",
        id="memory-slots-zero",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "hotplug_memory": "lots"},
        f"guest {{a}}: hotplug_memory: 'lots' {SIZE}",
        id="hotplug-memory-word",
    ),
    pytest.param(
        "domain",
        {"guests": ["{a}"], "memory": "a lot"},
        f"memory: 'a lot' {SIZE}",
        id="memory-word-for-all-guests",
    ),
    pytest.param(
        "domain",
        {"guests": ["{a}"], "hugepages": True},
        f"hugepages: True {SIZE}",
        id="hugepages-bool",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "state": "bogus"},
        "value of state must be one of: present, absent, got: bogus",
        id="state-unknown",
    ),
    pytest.param(
        "domain",
        {"name": "{a}", "restart": "always"},
        "value of restart must be one of: never, if_needed, got: always",
        id="restart-unknown",
    ),
    # -- vnuma_info: the same selection rules
    pytest.param(
        "info", {"guests": [""]}, "guests[0] is empty: give a guest name or a shell pattern", id="info-guests-empty"
    ),
    pytest.param(
        "info",
        {"exclude": ["{a}", ""]},
        "exclude[1] is empty: give a guest name or a shell pattern",
        id="info-exclude-empty",
    ),
    pytest.param(
        "info",
        {"guest_state": "paused"},
        "value of guest_state must be one of: running, shutoff, all, got: paused",
        id="info-guest-state",
    ),
]


def domain_xml(name: str, vcpus: int = 4, memory_mib: int = 2048) -> str:
    return (
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>{memory_mib}</memory>"
        f"<vcpu>{vcpus}</vcpu><os><type>hvm</type></os></domain>"
    )


@pytest.fixture
def conn() -> Iterator[Any]:
    connection = libvirt.open(URI)
    yield connection
    connection.close()


@pytest.fixture
def names(conn: Any, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Guests ``<prefix>-a``, ``-b``, ``-web1`` and ``-web[1]`` on the test driver, undefined at the end."""
    prefix = f"bad-{uuid.uuid4().hex[:8]}"
    made = {"prefix": prefix, "a": f"{prefix}-a", "b": f"{prefix}-b", "web1": f"{prefix}-web1"}
    made["web"] = f"{prefix}-web[1]"
    (tmp_path / "file").write_text("not a directory\n")
    # A directory every user may write to, without the sticky bit of /tmp, and one with it.
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    (tmp_path / "open" / "kept").mkdir(mode=0o700)
    (tmp_path / "sticky").mkdir()
    (tmp_path / "sticky").chmod(0o1777)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "deeper")
    made["tmp"] = str(tmp_path)
    try:
        for key in ("a", "b", "web1", "web"):
            conn.defineXML(domain_xml(made[key]))
        yield made
    finally:
        for domain in conn.listAllDomains():
            if domain.name().startswith(prefix):
                if domain.isActive():
                    domain.destroy()
                domain.undefine()


def definitions(conn: Any) -> dict[str, tuple[str, int]]:
    """Every guest of the test driver: its inactive definition and its state."""
    return {dom.name(): (dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), dom.state()[0]) for dom in conn.listAllDomains()}


def fill(value: Any, names: dict[str, str]) -> Any:
    """``value`` with the placeholders of ``names`` filled in, through lists and dicts."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [fill(item, names) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, names) for key, item in value.items()}
    return value


def domain(args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    return run_module({"uri": URI, "host_capabilities": RING, **args}, check_mode=check_mode)


@pytest.mark.parametrize(("module", "args", "message"), CASES)
def test_bad_option_is_refused_and_changes_nothing(
    conn: Any, names: dict[str, str], module: str, args: dict[str, Any], message: str
) -> None:
    before = definitions(conn)
    base = {"uri": URI, "host_capabilities": RING}
    result = fail_module({**base, **fill(args, names)}, module=vnuma_domain if module == "domain" else vnuma_info)
    assert result["msg"] == fill(message, names)
    assert definitions(conn) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [pytest.param(*case.values[1:], id=case.id) for case in CASES if str(case.id).startswith("backup-dir")],
)
def test_a_bad_backup_dir_is_refused_in_check_mode_too(
    conn: Any, names: dict[str, str], args: dict[str, Any], message: str, tmp_path: Path
) -> None:
    # The module's documentation promises it: check mode must not report a change that the real run then fails.
    before = definitions(conn)
    made = sorted(tmp_path.rglob("*"))
    result = fail_module({"uri": URI, "host_capabilities": RING, **fill(args, names)}, check_mode=True)
    assert result["msg"] == fill(message, names)
    assert definitions(conn) == before
    assert sorted(tmp_path.rglob("*")) == made


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 50
    assert len({case.id for case in CASES}) == len(CASES)


# -- what used to be accepted silently, and what it does now


def test_a_negative_shutdown_timeout_no_longer_writes_then_fails(conn: Any, names: dict[str, str]) -> None:
    # Reproduced: restart if_needed with shutdown_timeout -5 wrote the definition, sent a shutdown, then
    # failed.  Now refused before anything is read: the running guest keeps running, unchanged.
    conn.lookupByName(names["a"]).create()
    before = definitions(conn)
    result = fail_module(
        {"uri": URI, "host_capabilities": RING, "name": names["a"], "restart": "if_needed", "shutdown_timeout": -5}
    )
    assert result["msg"] == "shutdown_timeout -5 is outside 0 to 86400 seconds"
    assert definitions(conn) == before
    assert conn.lookupByName(names["a"]).isActive()


def test_top_level_counts_as_text_are_read_as_numbers(conn: Any, names: dict[str, str]) -> None:
    # The counts are raw in the argspec now (Ansible's int failed on .inf): digit text, which Ansible's int read,
    # is still a count, read as a guests entry's, and plans what the number plans.
    options = {"name": names["a"], "mode": "node", "cells": 2, "current_vcpus": 2}
    as_numbers = domain(options, check_mode=True)
    as_text = domain({**options, "cells": "2", "current_vcpus": " 2 "}, check_mode=True)
    assert as_text["layout"] == as_numbers["layout"]
    assert len(as_text["layout"]["cells"]) == 2


def test_an_empty_guests_list_warns_and_changes_nothing(conn: Any, names: dict[str, str]) -> None:
    before = definitions(conn)
    result = domain({"guests": []})
    assert (result["changed"], result["guests"]) == (False, [])
    assert result["warnings"] == ["no guest selected: guests is empty"]
    assert definitions(conn) == before


def test_a_pattern_matching_nothing_is_named_in_a_warning(conn: Any, names: dict[str, str]) -> None:
    before = definitions(conn)
    result = domain({"guests": [f"{names['prefix']}-nothing-*", f"{names['prefix']}-x?"]})
    assert result["warnings"] == [
        f"guests[0] '{names['prefix']}-nothing-*' matches no defined guest",
        f"guests[1] '{names['prefix']}-x?' matches no defined guest",
        "no guest selected: no entry of guests matches a defined guest",
    ]
    assert result["changed"] is False
    # One pattern that matches, one that does not: the call goes on, with the warning.
    partly = domain({"guests": [names["a"], f"{names['prefix']}-nothing-*"]}, check_mode=True)
    assert [guest["name"] for guest in partly["guests"]] == [names["a"]]
    assert partly["warnings"] == [f"guests[1] '{names['prefix']}-nothing-*' matches no defined guest"]
    assert definitions(conn) == before


def test_everything_excluded_warns(conn: Any, names: dict[str, str]) -> None:
    result = domain({"guests": [f"{names['prefix']}-*"], "exclude": ["*"]})
    assert result["guests"] == []
    assert result["warnings"] == ["no guest selected: exclude leaves out every guest that guests selects"]


def test_a_name_that_is_not_defined_still_fails_as_such(names: dict[str, str]) -> None:
    missing = f"{names['prefix']}-missing"
    result = fail_module({"uri": URI, "host_capabilities": RING, "guests": [missing]})
    assert f"guest {missing}: no guest named {missing} is defined at {URI}" in result["msg"]


def test_a_guest_literally_named_with_brackets_is_that_guest(conn: Any, names: dict[str, str]) -> None:
    # Reproduced: "web[1]" was read as a pattern (it selects "web1") and the guest itself was skipped.
    web, web1 = names["web"], names["web1"]
    result = domain({"guests": [web]}, check_mode=True)
    assert [guest["name"] for guest in result["guests"]] == [web]
    # Excluded by its exact name, it alone is left out; web1 is not.
    kept = domain({"guests": [f"{names['prefix']}-web*"], "exclude": [web]}, check_mode=True)
    assert [guest["name"] for guest in kept["guests"]] == [web1]
    # A name that is not defined stays a pattern.
    other = domain({"guests": [f"{names['prefix']}-web[0-9]"]}, check_mode=True)
    assert [guest["name"] for guest in other["guests"]] == [web1]
    # vnuma_info follows the same rule.
    info = run_module({"uri": URI, "host_capabilities": RING, "guests": [web]}, module=vnuma_info)
    assert [guest["name"] for guest in info["guests"]] == [web]
    info = run_module(
        {"uri": URI, "host_capabilities": RING, "guests": [f"{names['prefix']}-*"], "exclude": [web]}, module=vnuma_info
    )
    assert [guest["name"] for guest in info["guests"]] == sorted([names["a"], names["b"], web1])


def test_with_exact_names_an_undefined_name_never_selects_other_guests(conn: Any, names: dict[str, str]) -> None:
    # Reproduced through the role: web[1] undefined between its plan and its apply call, whose guests entries are
    # the plan's names, and the apply converted web1, which the role had excluded, and did not report it.
    web, web1 = names["web"], names["web1"]
    conn.lookupByName(web).undefine()
    before = definitions(conn)
    result = fail_module(
        {"uri": URI, "host_capabilities": RING, "guests": [{"name": web, "cells": 2}], "exact_names": True}
    )
    assert f"guest {web}: no guest named {web} is defined at {URI}" in result["msg"]
    # The name is that guest alone, failed as not defined, with nothing written; web1 is not in the call.
    assert [(guest["name"], guest["written"]) for guest in result["guests"]] == [(web, [])]
    assert result["changed"] is False
    assert definitions(conn) == before
    # Without it the name is a pattern again, as documented: it selects web1.
    assert [guest["name"] for guest in domain({"guests": [web]}, check_mode=True)["guests"]] == [web1]
    # An exact exclude entry leaves out that name only, never what it would match as a pattern.
    kept = domain({"guests": [names["a"], web1], "exclude": [web], "exact_names": True}, check_mode=True)
    assert [guest["name"] for guest in kept["guests"]] == [names["a"], web1]
    info = run_module(
        {"uri": URI, "host_capabilities": RING, "guests": [web, names["a"]], "exact_names": True}, module=vnuma_info
    )
    assert [guest["name"] for guest in info["guests"]] == [names["a"]]
    assert info["warnings"] == [f"guests[0] {web!r} matches no defined guest"]


def test_entries_for_one_guest_that_agree_are_merged(conn: Any, names: dict[str, str]) -> None:
    a, b = names["a"], names["b"]
    result = domain(
        {
            "guests": [
                f"{names['prefix']}-[ab]",
                {"name": a, "memory": "1 GiB", "pinning": "node"},
                {"name": a, "memory": GIB, "mode": "node", "nodeset": "0-1"},
                a,
            ],
            "exclude": [f"{names['prefix']}-web*"],
        },
        check_mode=True,
    )
    assert [guest["name"] for guest in result["guests"]] == [a, b]
    layout = result["guests"][0]["layout"]
    assert layout["memory_kib"] == GIB
    assert [cell["host_nodes"] for cell in layout["cells"]] == ["0", "1"]
    assert len(result["guests"][1]["layout"]["cells"]) == 4


def test_templated_strings_in_entries_are_read_as_the_top_level_reads_them(names: dict[str, str]) -> None:
    result = domain(
        {"guests": [{"name": names["a"], "mode": "node", "cells": " 2 ", "cpuless_cells": "no", "nodeset": 1}]},
        check_mode=True,
    )
    assert [cell["host_nodes"] for cell in result["guests"][0]["layout"]["cells"]] == ["1", "1"]


def test_vnuma_info_with_an_empty_guests_list_selects_none(names: dict[str, str]) -> None:
    # An empty list used to select every guest (it fell back to the default "*").
    result = run_module({"uri": URI, "guests": []}, module=vnuma_info)
    assert result["guests"] == [] and result["guest_count"] == 0
