# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_domain's numbers as a playbook writes them (YAML's .inf, .nan, 1.5), run by ansible-playbook.

ansible-core's int type reads a float through Decimal: ``int(Decimal('Infinity'))`` raised OverflowError in
check_type_int, which no caller catches, so ``cells: .inf`` ended the module with ansible-core's traceback; 1.5
and .nan got ansible-core's own words.  The counts are now raw and the collection reads them (``Option.coerce``),
and the seconds go through one reader (``units.check_seconds``), which gives the range.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.tests.unit.bad_input.test_role_inputs import collections_path

CELLS_RANGE = "must be an integer from 1 to 128 (QEMU's MAX_NODES)"
SLOTS_RANGE = "must be an integer from 1 to 256 (QEMU's ACPI_MAX_RAM_SLOTS)"

# (task id, the options as YAML, the module's message).  Every option is checked before anything is read, so the
# test driver's guest named "test" is never touched.
CASES = [
    ("cells-inf", "mode: node\n        cells: .inf", f"guest test: cells inf {CELLS_RANGE}"),
    ("cells-nan", "mode: node\n        cells: .nan", f"guest test: cells nan {CELLS_RANGE}"),
    ("cells-float", "mode: node\n        cells: 1.5", f"guest test: cells 1.5 {CELLS_RANGE}"),
    ("slots-inf", "max_memory: 8 GiB\n        memory_slots: .inf", f"guest test: memory_slots inf {SLOTS_RANGE}"),
    ("current-vcpus-inf", "current_vcpus: -.inf", "guest test: current_vcpus -inf must be a positive integer"),
    ("shutdown-timeout-inf", "shutdown_timeout: .inf", "shutdown_timeout inf is outside 0 to 86400 seconds"),
    ("lock-timeout-nan", "lock_timeout: .nan", "lock_timeout nan is not a number of seconds from 0 to 86400"),
]

TASK = """
    - name: {id}
      vnuma.libvirt.vnuma_domain:
        uri: test:///default
        name: test
        {options}
      check_mode: true
      register: outcome
      ignore_errors: true

    - name: Keep {id}
      ansible.builtin.set_fact:
        outcomes: "{{{{ outcomes | combine({{'{id}': outcome.msg | default('')}}) }}}}"
"""


@pytest.fixture(scope="module")
def said(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run one playbook with every case; each task's message."""
    scratch = tmp_path_factory.mktemp("module-numbers")
    result = scratch / "said.json"
    tasks = "".join(TASK.format(id=case_id, options=options) for case_id, options, _message in CASES)
    playbook = scratch / "playbook.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  vars:\n    outcomes: {}\n  tasks:\n"
        + tasks
        + f"""
    - name: Hand the messages to the test
      ansible.builtin.copy:
        content: "{{{{ outcomes | to_json }}}}"
        dest: {result}
        mode: "0644"
"""
    )
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": collections_path(),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
    }
    command = [
        sys.executable,
        "-m",
        "ansible.cli.playbook",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(playbook),
    ]
    done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    outcomes: dict[str, Any] = json.loads(result.read_text())
    return outcomes


@pytest.mark.parametrize(("case_id", "message"), [(case[0], case[2]) for case in CASES], ids=[c[0] for c in CASES])
def test_a_bad_number_in_a_playbook_gets_the_collections_message(
    said: dict[str, Any], case_id: str, message: str
) -> None:
    assert said[case_id] == message
