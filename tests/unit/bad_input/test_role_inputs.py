# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad inputs of the vnuma_fleet role, one table, checked by ONE ansible-playbook run.

Every case is a hypervisor of its own in one play, on libvirt's test driver (the three running guests of
tests/playbooks/files/fleet-test-driver.xml, planned for the cover letter's ring host), in apply mode, so
that an input the role failed to refuse would show as changed guests.  Each case asserts the step that
refused it (``arguments`` for ansible-core's validation of meta/argument_specs.yml, before the role
runs), the exact message, and that no guest changed.  A control hypervisor with good inputs shows that
the same run converts the guests when nothing is wrong.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# ansible-test units runs every test in a fork of its own, where a module-scoped fixture would run the
# playbook again for each case (minutes each).  `make unit` runs this table once; ansible-test skips it.
pytestmark = pytest.mark.skipif(
    "ansible_forked" in os.environ.get("PYTEST_PLUGINS", ""),
    reason="one ansible-playbook run serves the whole table; ansible-test units forks every test",
)

HERE = Path(__file__).resolve().parent
RING = str(HERE.parent / "fixtures" / "capabilities" / "seed-4node-ring.xml")
DRIVER = str(HERE.parents[1] / "playbooks" / "files" / "fleet-test-driver.xml")

ENTRY_OPTIONS = (
    "cells, cpuless_cells, current_vcpus, device_cells, device_locality, distribution, emulator_pin, "
    "emulator_threads, hmat, hotplug_memory, hugepages, iothreads, max_memory, "
    "memory, memory_device, memory_mode, memory_slots, memory_split, mode, nodeset, pci_numa_affinity, pinning, "
    "replan, state, total_memory"
)
# Each number out of its range is named alone, with its value and its limit.
BATCH = "vnuma_fleet_restart_batch must be at least 1 (got {0})"
TIMEOUT = "vnuma_fleet_shutdown_timeout must be from 0 to 86400 (got {0})"
PERCENT = "vnuma_fleet_max_fail_percentage must be from 0 to 100 (got {0})"
ARGS = "Validation of arguments failed:\n"
REPORT = "vnuma_fleet_report_dir '{path}' is not a directory the controller can write the reports in: "


# (role variables, the step that refuses them, the exact message).  "{tmp}" is a scratch directory that
# holds a regular file "file"; "{home}" is the case's own report directory.
CASES = [
    # -- ansible-core's validation of meta/argument_specs.yml: the role does not even start
    pytest.param(
        {"vnuma_fleet_restart_batch": "many"},
        "arguments",
        ARGS + "argument 'vnuma_fleet_restart_batch' is of type str and we were unable to convert to int: "
        "\"'many'\" cannot be converted to an int",
        id="restart-batch-word",
    ),
    pytest.param(
        {"vnuma_fleet_restart": "sometimes"},
        "arguments",
        ARGS + "value of vnuma_fleet_restart must be one of: never, if_needed, got: sometimes",
        id="restart-choice",
    ),
    pytest.param(
        {"vnuma_fleet_guest_state": "paused"},
        "arguments",
        ARGS + "value of vnuma_fleet_guest_state must be one of: running, shutoff, all, got: paused",
        id="guest-state-choice",
    ),
    pytest.param(
        {"vnuma_fleet_spec": {"mode": "bogus"}},
        "arguments",
        ARGS + "value of mode must be one of: host, node, auto, got: bogus found in vnuma_fleet_spec",
        id="spec-mode-choice",
    ),
    pytest.param(
        {"vnuma_fleet_spec": {"mode": "host", "bogus": 1}},
        "arguments",
        ARGS + "vnuma_fleet_spec.bogus. Supported parameters include: cells, cpuless_cells, device_cells, "
        "device_locality, distribution, "
        "emulator_pin, emulator_threads, hmat, hugepages, iothreads, max_memory, memory, memory_device, memory_mode, "
        "memory_slots, "
        "memory_split, mode, nodeset, pci_numa_affinity, pinning.",
        id="spec-unknown-option",
    ),
    # The spec's counts are raw in the argument spec (ansible-core's int raises OverflowError on .inf): preflight
    # reads them as vnuma_domain does, with the message that gives the range.
    pytest.param(
        {"vnuma_fleet_spec": {"cells": "two"}},
        "preflight",
        "vnuma_fleet_spec: cells 'two' must be an integer from 1 to 128 (QEMU's MAX_NODES)",
        id="spec-cells-word",
    ),
    pytest.param(
        {"vnuma_fleet_spec": {"mode": "node", "cells": float("inf")}},
        "preflight",
        "vnuma_fleet_spec: cells inf must be an integer from 1 to 128 (QEMU's MAX_NODES)",
        id="spec-cells-inf",
    ),
    pytest.param(
        {"vnuma_fleet_use_stored_spec": "maybe"},
        "arguments",
        # ansible-core lists the valid booleans from a set, in no fixed order.
        re.compile(
            re.escape(
                ARGS + "argument 'vnuma_fleet_use_stored_spec' is of type str and we were unable to convert to bool: "
                "The value 'maybe' is not a valid boolean. Valid booleans include: "
            )
            + ".*"
        ),
        id="use-stored-spec-word",
    ),
    pytest.param(
        {"vnuma_fleet_connect_timeout": "soon"},
        "arguments",
        # ansible-core names its own internal string class here: the start is what matters.
        re.compile(
            re.escape(ARGS + "argument 'vnuma_fleet_connect_timeout' is of type str and we were unable to convert to ")
            + "float: .*"
        ),
        id="connect-timeout-word",
    ),
    pytest.param(
        {"vnuma_fleet_overrides": "fleet-db01"},
        "arguments",
        ARGS + "argument 'vnuma_fleet_overrides' is of type str and we were unable to convert to dict: "
        "dictionary requested, could not parse JSON or key=value",
        id="overrides-not-a-dict",
    ),
    # -- preflight: before anything is read from the hypervisor
    pytest.param({"vnuma_fleet_restart_batch": 0}, "preflight", BATCH.format(0), id="restart-batch-zero"),
    pytest.param({"vnuma_fleet_shutdown_timeout": -5}, "preflight", TIMEOUT.format(-5), id="shutdown-timeout-negative"),
    pytest.param(
        {"vnuma_fleet_shutdown_timeout": 86401}, "preflight", TIMEOUT.format(86401), id="shutdown-timeout-above-a-day"
    ),
    pytest.param(
        {"vnuma_fleet_max_fail_percentage": 101}, "preflight", PERCENT.format(101), id="max-fail-percentage-above"
    ),
    pytest.param(
        {"vnuma_fleet_max_fail_percentage": -1}, "preflight", PERCENT.format(-1), id="max-fail-percentage-negative"
    ),
    pytest.param(
        # Two numbers out of range: both are named, each with its value and its limit, and only they.
        {"vnuma_fleet_restart_batch": 0, "vnuma_fleet_shutdown_timeout": 86401},
        "preflight",
        BATCH.format(0) + "; " + TIMEOUT.format(86401),
        id="restart-batch-and-shutdown-timeout",
    ),
    pytest.param(
        # The apply gate needs every hypervisor's plan before any apply; this play has several hypervisors.
        {"vnuma_fleet_plan_and_apply": "together", "vnuma_fleet_max_fail_percentage": 50},
        "preflight",
        # Every case is a hypervisor of the play.
        re.compile(
            re.escape(
                "vnuma_fleet_max_fail_percentage must be 100 with vnuma_fleet_plan_and_apply together on several "
                "hypervisors (got 50; the play has "
            )
            + r"\d+ hypervisors\)"
        ),
        id="plan-and-apply-together-with-a-gate",
    ),
    pytest.param(
        {"vnuma_fleet_overrides": {"fleet-db01": 5}},
        "preflight",
        "vnuma_fleet_overrides maps guest names to mappings of vnuma_domain options; not a mapping: fleet-db01",
        id="override-not-a-mapping",
    ),
    pytest.param(
        {"vnuma_fleet_overrides": {"fleet-db01": {"pinning": "core", "bogus": 1, "vcpus": 2}, "fleet-web01": {}}},
        "preflight",
        f"vnuma_fleet_overrides of fleet-db01: unknown option(s) bogus, vcpus; known: {ENTRY_OPTIONS}",
        id="override-unknown-option",
    ),
    pytest.param(
        {"vnuma_fleet_report_dir": ""},
        "preflight",
        REPORT.format(path="") + "it must be an absolute path, such as '{tmp}/vnuma-report'",
        id="report-dir-empty",
    ),
    pytest.param(
        {"vnuma_fleet_report_dir": "relative-reports"},
        "preflight",
        REPORT.format(path="relative-reports") + "it must be an absolute path, such as '{tmp}/vnuma-report'",
        id="report-dir-relative",
    ),
    pytest.param(
        {"vnuma_fleet_report_dir": "{tmp}/file"},
        "preflight",
        REPORT.format(path="{tmp}/file") + "{tmp}/file already exists as a file",
        id="report-dir-is-a-file",
    ),
    pytest.param(
        {"vnuma_fleet_report_dir": "{tmp}/file/reports"},
        "preflight",
        REPORT.format(path="{tmp}/file/reports")
        + "There was an issue creating {tmp}/file/reports as requested: [Errno 20] Not a directory: "
        "b'{tmp}/file/reports'",
        id="report-dir-under-a-file",
    ),
    pytest.param(
        {"vnuma_fleet_report_dir": "/proc/vnuma-reports"},
        "preflight",
        # Root's errno; another user gets "Permission denied".
        re.compile(
            re.escape(REPORT.format(path="/proc/vnuma-reports") + "There was an issue creating /proc/vnuma-reports ")
            + r"as requested: \[Errno (2|13)\] .*"
        ),
        id="report-dir-cannot-be-created",
    ),
    pytest.param(
        {"vnuma_fleet_report_dir": "/sys/kernel"},
        "preflight",
        # The directory exists, and root passes every permission check, but sysfs takes no file.
        re.compile(
            re.escape(REPORT.format(path="/sys/kernel")) + r"\[Errno (13|30)\] .*/sys/kernel/\.vnuma-fleet-probe-.*"
        ),
        id="report-dir-not-writable",
    ),
    # The settings the fleet call would refuse under its own option names, named as the role's inputs.
    pytest.param(
        {"vnuma_fleet_guests": ["fleet-*", ""]},
        "preflight",
        "vnuma_fleet_guests[1] is empty: give a guest name or a shell pattern",
        id="guests-empty-entry",
    ),
    pytest.param(
        {"vnuma_fleet_exclude": [""]},
        "preflight",
        "vnuma_fleet_exclude[0] is empty: give a guest name or a shell pattern",
        id="exclude-empty-entry",
    ),
    pytest.param(
        {"vnuma_fleet_connect_timeout": -5},
        "preflight",
        "vnuma_fleet_connect_timeout -5 is outside 0 to 3600 seconds",
        id="connect-timeout-negative",
    ),
    pytest.param(
        {"vnuma_fleet_call_timeout": 0},
        "preflight",
        "vnuma_fleet_call_timeout 0 is outside 1 to 3600 seconds",
        id="call-timeout-zero",
    ),
    pytest.param(
        {"vnuma_fleet_reserved_memory": "lots"},
        "preflight",
        "vnuma_fleet_reserved_memory: 'lots' is not a size such as '16 GiB' or 524288",
        id="reserved-memory-word",
    ),
    pytest.param(
        # A bad spec fails every guest: it is named as the role's input, not after the first guest.
        {"vnuma_fleet_spec": {"mode": "host", "memory": "lots"}},
        "preflight",
        "vnuma_fleet_spec: memory: 'lots' is not a size such as '16 GiB' or 524288",
        id="spec-memory-word",
    ),
    pytest.param(
        {"vnuma_fleet_spec": {"mode": "node", "cells": 0}},
        "preflight",
        "vnuma_fleet_spec: cells 0 must be an integer from 1 to 128 (QEMU's MAX_NODES)",
        id="spec-cells-zero",
    ),
    # -- plan: vnuma_domain refuses, before anything changes
    pytest.param(
        {"vnuma_fleet_overrides": {"fleet-db01": {"state": "bogus"}}},
        "plan",
        "guest fleet-db01: state 'bogus' is not one of present, absent",
        id="override-state-bogus",
    ),
    pytest.param(
        {"vnuma_fleet_overrides": {"fleet-db01": {"cells": "two"}}},
        "plan",
        "guest fleet-db01: cells 'two' must be an integer from 1 to 128 (QEMU's MAX_NODES)",
        id="override-cells-word",
    ),
    # A value above its limit needs no guest either: the hypervisor's plan fails, as for a value of the wrong kind.
    pytest.param(
        {"vnuma_fleet_overrides": {"fleet-db01": {"mode": "node", "cells": 200}}},
        "plan",
        "guest fleet-db01: cells 200 must be an integer from 1 to 128 (QEMU's MAX_NODES)",
        id="override-cells-above-limit",
    ),
    pytest.param(
        {"vnuma_fleet_overrides": {"fleet-db01": {"memory": "10 PB"}}},
        "plan",
        "guest fleet-db01: memory '10 PB' is above the limit of 4 PiB (all a 52-bit physical address space holds)",
        id="override-memory-above-limit",
    ),
    # Options that contradict each other, with vnuma_fleet_spec's (mode host): the guest's entry of the fleet call is
    # named (its guests in vnuma_info's order: fleet-app01, fleet-db01, fleet-web01).
    pytest.param(
        {"vnuma_fleet_overrides": {"fleet-db01": {"cells": 2}}},
        "plan",
        "guests[1] (fleet-db01): cells 2 applies to mode node only; mode host mirrors every host node with CPUs",
        id="override-cells-under-the-fleet-specs-host-mode",
    ),
]

# Hypervisors with good inputs, converted by the same run: the control, and overrides that use null (unset: the
# option is not sent, the stored spec or the default applies) and the booleans Ansible reads (y, n).
CONTROLS: dict[str, dict[str, Any]] = {
    "control": {},
    "control-null-and-y": {
        "vnuma_fleet_overrides": {
            "fleet-app01": {"mode": "node", "nodeset": "0-1"},
            "fleet-db01": {"cells": None, "memory": None, "cpuless_cells": "y"},
            "fleet-web01": {"state": None, "cpuless_cells": "n"},
        }
    },
}

PLAYBOOK = """
- name: Every case is a hypervisor of its own
  hosts: cases
  gather_facts: false
  tasks:
    - name: Run the role
      block:
        - name: Convert
          ansible.builtin.include_role:
            name: vnuma.libvirt.vnuma_fleet
      rescue:
        - name: Remember why the role failed
          ansible.builtin.set_fact:
            role_failed: "{{ ansible_failed_result.msg }}"

    - name: Hand the outcome to the test
      ansible.builtin.copy:
        content: "{{ {'role_failed': role_failed | default(none),
                      'result': vnuma_fleet_result | default(none)} | to_json }}"
        dest: "{{ outcome_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
"""


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [fill(item, names) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, names) for key, item in value.items()}
    return value


def collections_path() -> str:
    """The directory holding ansible_collections/vnuma/libvirt, as the tests import it."""
    spec = importlib.util.find_spec("ansible_collections.vnuma.libvirt")
    assert spec is not None and spec.submodule_search_locations
    return str(Path(next(iter(spec.submodule_search_locations))).parents[2])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("role-inputs")
    (path / "file").write_text("not a directory\n")
    return path


@pytest.fixture(scope="module")
def outcomes(scratch: Path) -> dict[str, dict[str, Any]]:
    """Run the playbook once for every case and the control; each host's outcome."""
    names = {"tmp": str(scratch)}
    base = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "vnuma_fleet_uri": f"test://{DRIVER}",
        "vnuma_fleet_host_capabilities": RING,
        # As in tests/playbooks/test_vnuma_fleet.yml: the 2-vCPU guest on two of the four host nodes.
        "vnuma_fleet_overrides": {"fleet-app01": {"mode": "node", "nodeset": "0-1"}},
        "outcome_dir": str(scratch / "outcomes"),
    }
    hosts = {
        name: {**base, "vnuma_fleet_report_dir": str(scratch / "reports" / name), **variables}
        for name, variables in CONTROLS.items()
    }
    for case in CASES:
        variables = fill(case.values[0], names)
        hosts[case.id] = {**base, "vnuma_fleet_report_dir": str(scratch / "reports" / case.id), **variables}
    (scratch / "outcomes").mkdir()
    inventory = scratch / "inventory.json"
    inventory.write_text(json.dumps({"cases": {"hosts": hosts}}))
    playbook = scratch / "playbook.yml"
    playbook.write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": collections_path(),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        # Every case is its own host: a few at a time, so that one run covers them all.
        "ANSIBLE_FORKS": "8",
        "ANSIBLE_PIPELINING": "true",
    }
    command = [sys.executable, "-m", "ansible.cli.playbook", "-i", str(inventory), str(playbook)]
    done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, timeout=900, check=False)
    found = {path.stem: json.loads(path.read_text()) for path in (scratch / "outcomes").glob("*.json")}
    assert set(found) == set(hosts), done.stdout[-4000:] + done.stderr[-4000:]
    return found


@pytest.mark.parametrize("name", list(CONTROLS))
def test_the_control_hypervisor_is_converted(outcomes: dict[str, dict[str, Any]], name: str) -> None:
    control = outcomes[name]
    assert control["role_failed"] is None
    assert control["result"]["status"] == "converted"
    assert control["result"]["counts"]["changed"] == 3


@pytest.mark.parametrize(("variables", "step", "message"), CASES)
def test_bad_role_input_is_refused_before_anything_changes(
    outcomes: dict[str, dict[str, Any]],
    scratch: Path,
    request: pytest.FixtureRequest,
    variables: dict[str, Any],
    step: str,
    message: str | re.Pattern[str],
) -> None:
    outcome = outcomes[request.node.callspec.id]
    result = outcome["result"]
    said = outcome["role_failed"] if step == "arguments" else result["failure"]["msg"]
    if isinstance(message, re.Pattern):
        assert message.fullmatch(said), said
    else:
        assert said == fill(message, {"tmp": str(scratch)})
    if step == "arguments":
        assert result is None, "the role ran although its arguments are invalid"
        return
    assert result["failure"]["step"] == step
    assert result["counts"]["changed"] == 0
    assert not any(guest["changed"] for guest in result["guests"])
    assert outcome["role_failed"] is not None


def test_a_bad_report_directory_is_left_as_it_was(outcomes: dict[str, dict[str, Any]], scratch: Path) -> None:
    assert (scratch / "file").read_text() == "not a directory\n"
    assert not (scratch / "relative-reports").exists()
    assert not Path("/proc/vnuma-reports").exists()
    # A refused report directory gets no report; the others do, whatever step failed.
    assert outcomes["report-dir-empty"]["role_failed"].endswith("(no report written)")
    assert (scratch / "reports" / "restart-batch-zero" / "restart-batch-zero.json").exists()
    assert (scratch / "reports" / "control" / "control.html").exists()


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 15
    assert len({case.id for case in CASES}) == len(CASES)
