# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a module's main() (vnuma_domain by default) in the test process, with ``patch_module_args``.

The unit tests run it against libvirt's test driver, the integration tests against qemu:///system.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from types import ModuleType
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain


class ModuleExit(Exception):
    """The module ended (exit_json or fail_json) with this result."""

    def __init__(self, result: dict[str, Any], failed: bool) -> None:
        super().__init__(result)
        self.result = result
        self.failed = failed


def run_module(
    args: dict[str, Any], check_mode: bool = False, diff: bool = False, module: ModuleType = vnuma_domain
) -> dict[str, Any]:
    """Run ``module``'s main() in this process, as Ansible would on the managed node; its result.

    ``args`` are the module's options (without ``uri`` the module's default, qemu:///system).  A
    fail_json raises ModuleExit.
    """
    params = {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}

    warned: list[str] = []

    def warn(self: Any, warning: str) -> None:
        # Collected here rather than by ansible's own warn(), which goes to the controller's display
        # once any test in this process has loaded controller code (the filter tests do).
        warned.append(warning)

    def exit_json(self: Any, **result: Any) -> None:
        # As AnsibleModule.exit_json does: what the module passed to warn() ends up in "warnings".
        if warned:
            result["warnings"] = list(warned)
        raise ModuleExit(result, failed=False)

    def fail_json(self: Any, msg: str, **result: Any) -> None:
        raise ModuleExit({"msg": msg, **result}, failed=True)

    with patch_module_args(params), pytest.MonkeyPatch.context() as patch:
        patch.setattr(module.AnsibleModule, "exit_json", exit_json)
        patch.setattr(module.AnsibleModule, "warn", warn)
        patch.setattr(module.AnsibleModule, "fail_json", fail_json)
        try:
            module.main()
        except ModuleExit as done:
            if done.failed:
                raise
            # What Ansible would hand back: JSON, no Python objects.
            return json.loads(json.dumps(done.result))
    raise AssertionError("the module returned without exit_json or fail_json")


def fail_module(args: dict[str, Any], check_mode: bool = False, module: ModuleType = vnuma_domain) -> dict[str, Any]:
    """Run the module expecting fail_json; its result (``msg``, ``guest``)."""
    with pytest.raises(ModuleExit) as caught:
        run_module(args, check_mode=check_mode, module=module)
    assert caught.value.failed, caught.value.result
    return caught.value.result


class ModuleProcess(subprocess.Popen[str]):
    """A module's process, and the arguments file it reads (removed by ``module_process_result``)."""

    args_file: str


def start_module_process(args: dict[str, Any], module: str = "vnuma_domain") -> ModuleProcess:
    """Run a module in a process of its own, as Ansible runs it on the managed node; see ``module_process_result``.

    For tests where runs must really overlap (one process each, nothing shared but libvirtd and the lock).
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    command = [sys.executable, "-m", f"ansible_collections.vnuma.libvirt.plugins.modules.{module}", handle.name]
    process = ModuleProcess(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    process.args_file = handle.name
    return process


def module_process_result(process: ModuleProcess, timeout: float = 300) -> dict[str, Any]:
    """The JSON result of a module process (its ``failed`` key set when it failed)."""
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        os.unlink(process.args_file)
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise AssertionError(f"the module printed no JSON (exit {process.returncode}): {out}\n{err}") from None
