# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab tests: they run against a lab that is up (`make lab` boots it, runs them, stops it)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lab"))

from lab import DEFAULT_DIR, LabDir, Running, is_ours, read_state, ssh  # noqa: E402
from lab_checks import ModesRun, run_modes  # noqa: E402
from lab_topology import LabHypervisor, load_topology  # noqa: E402

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
PLAYBOOK_TIMEOUT_S = 900
# The modules whose guests boot the guest image's kernel inside a lab hypervisor (nested TCG: minutes).
# Each has HOST, GUEST, start_guest(lab, out) and uses remove_guest of test_lab_boot.
BOOT_MODULES = ("test_lab_boot", "test_lab_virtio_mem")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The boot modules' tests go last (the order is otherwise kept): their guests then boot side by side
    (boot_guests), after the other tests' guests are gone, so that no other test's memory or CPU figures
    meet them and each boot has the lab to itself and the other boot."""
    items.sort(key=lambda item: item.path.stem in BOOT_MODULES)


@dataclass(frozen=True)
class LabHost:
    """One lab hypervisor that runs: its topology and how to reach it."""

    topology: LabHypervisor
    running: Running
    lab_dir: LabDir

    def run(self, command: str, timeout: float = 300) -> str:
        result = ssh(self.lab_dir, self.running, command, timeout=timeout)
        assert result.returncode == 0, f"{self.topology.name}: {command}: {result.stderr}"
        return result.stdout


@dataclass(frozen=True)
class Lab:
    """The lab that is up."""

    lab_dir: LabDir
    hosts: dict[str, LabHost]

    def host(self, name: str) -> LabHost:
        """The lab hypervisor ``name``; the test fails, naming it, when the lab that is up lacks it."""
        if name not in self.hosts:
            pytest.fail(f"the lab has no hypervisor {name}; up: {', '.join(sorted(self.hosts)) or 'none'}")
        return self.hosts[name]

    def playbook(self, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """ansible-playbook with the lab's inventory and this collection (from .build/collections)."""
        bin_dir = Path(sys.executable).parent
        env = dict(
            os.environ,
            ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"),
            ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
            ANSIBLE_HOST_KEY_CHECKING="false",
            ANSIBLE_RETRY_FILES_ENABLED="false",
            ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
            PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        argv = [str(bin_dir / "ansible-playbook"), "-i", str(self.lab_dir.inventory), str(PLAYBOOKS / name), *extra]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT_S, check=False)
        assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture(scope="session")
def lab() -> Lab:
    lab_dir = LabDir(Path(os.environ.get("VNUMA_LAB_DIR", DEFAULT_DIR)).resolve())
    paths, running = read_state(lab_dir)
    if not running or not all(is_ours(entry) for entry in running):
        pytest.fail(f"the lab is not up (no running lab in {lab_dir}): run the lab tests with `make lab`")
    topology = {hypervisor.name: hypervisor for hypervisor in load_topology(paths).hypervisors}
    hosts = {entry.name: LabHost(topology[entry.name], entry, lab_dir) for entry in running}
    return Lab(lab_dir, hosts)


@pytest.fixture(scope="session")
def modes_run(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> ModesRun:
    """The modes playbook's guests on lab4, run once for the tests of modes, pinning and hugepages."""
    return run_modes(lab, tmp_path_factory.mktemp("lab-modes"))


@pytest.fixture(scope="session")
def boot_guests(
    request: pytest.FixtureRequest, lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The guest of every boot module with a selected test, each started before any is waited for.

    Two nested boots side by side take little more than the longer one alone: each keeps about one of the
    lab's vCPUs busy, and the lab has six on this machine's two cores (docs/lab.md has the figures).
    Guest name -> what its module's start_guest returned; every guest is removed at the end.
    """
    selected = {item.path.stem for item in request.session.items}
    modules = [importlib.import_module(name) for name in BOOT_MODULES if name in selected]
    remove_guest = importlib.import_module("test_lab_boot").remove_guest
    started: dict[str, Any] = {}
    try:
        for module in modules:
            started[module.GUEST] = module.start_guest(lab, tmp_path_factory.mktemp(module.GUEST))
        yield started
    finally:
        for module in modules:
            remove_guest(lab.host(module.HOST), module.GUEST)
