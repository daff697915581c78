# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every module fails with the same keys: ``msg``, ``guest``, ``changed`` and what the error carries.

One ``VnumaError`` becomes one ``fail_json`` (``_run/results.py:error_result``).  Before, vnuma_info dropped
the error's details, vnuma_hook the guest, and only vnuma_domain handed a capacity refusal's report back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.capacity import CapacityError, CapacityReport
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain, vnuma_hook, vnuma_info, vnuma_migrate
from ansible_collections.vnuma.libvirt.tests.support.hook_paths import hook_params
from ansible_collections.vnuma.libvirt.tests.support.module_run import fail_module

# Each module, the runner its main() calls, and options that get main() as far as that call.
MODULES = {
    "vnuma_domain": (vnuma_domain, "run_domain", {"name": "db01", "uri": "test:///default"}),
    "vnuma_info": (vnuma_info, "run_info", {"uri": "test:///default"}),
    "vnuma_migrate": (
        vnuma_migrate,
        "run_migrate",
        {"name": "db01", "uri": "test:///default", "destination_uri": "test:///other"},
    ),
    "vnuma_hook": (vnuma_hook, "install_hook", {}),
}


def _failed_with(monkeypatch: pytest.MonkeyPatch, which: str, error: VnumaError) -> dict[str, Any]:
    """``which``'s failure when its runner raises ``error``, less ``failed`` (AnsibleModule.fail_json sets it)."""
    module, runner, args = MODULES[which]

    def raising(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        raise error

    monkeypatch.setattr(module, runner, raising)
    result = fail_module(args, module=module)
    result.pop("failed", None)
    return result


@pytest.mark.parametrize("which", sorted(MODULES))
def test_a_failure_names_the_guest_and_hands_back_the_details(monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    error = LibvirtOperationError("cannot write the definition: disk full", guest="db01")
    error.details.update(changed=True, written=["definition"])
    assert _failed_with(monkeypatch, which, error) == {
        "msg": "guest db01: cannot write the definition: disk full",
        "guest": "db01",
        "changed": True,
        "written": ["definition"],
    }


@pytest.mark.parametrize("which", sorted(MODULES))
def test_a_failure_without_guest_or_details_has_the_same_keys(monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    error = LibvirtOperationError("cannot connect to libvirt at test:///default")
    assert _failed_with(monkeypatch, which, error) == {
        "msg": "cannot connect to libvirt at test:///default",
        "guest": None,
        "changed": False,
    }


@pytest.mark.parametrize("which", sorted(MODULES))
def test_a_capacity_refusal_hands_back_its_report(monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    report = CapacityReport(nodes=(), problems=("host node 0: the guests need 9 GiB, it has 8 GiB",))
    error = CapacityError(report).naming("db01")
    result = _failed_with(monkeypatch, which, error)
    assert (result["guest"], result["capacity"]) == ("db01", report.to_dict())
    assert result["msg"] == str(error)


def test_real_failures_of_each_module_have_the_keys(tmp_path: Path) -> None:
    """Without a stand-in runner: what a playbook sees when each module refuses."""
    failures = {
        "vnuma_domain": fail_module({"name": "db01", "uri": "test:///default", "lock_timeout": float("nan")}),
        "vnuma_info": fail_module(
            {"uri": "test:///default", "host_capabilities": str(tmp_path / "missing.xml")}, module=vnuma_info
        ),
        "vnuma_migrate": fail_module(
            {"name": "db01", "uri": "test:///default", "destination_uri": "test:///default"}, module=vnuma_migrate
        ),
        "vnuma_hook": fail_module(hook_params(tmp_path, lib_dir="relative/lib"), module=vnuma_hook),
    }
    for which, result in failures.items():
        assert {"msg", "guest", "changed"} <= set(result), (which, result)
        assert result["changed"] is False, which
