# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""gate_held_back / vnuma_fleet_gate: the vnuma_fleet role's gate, vnuma_fleet_max_fail_percentage.

The rule lived in roles/vnuma_fleet/tasks/gate.yml as Jinja; ``FORMER_GATE`` is that file's two tasks.  Besides a
test per branch, every host of a grid of plays is run through both, the Jinja by ansible-core's own templar, and
they must agree: the move changed where the rule is, not what it does.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_gate import FilterModule, vnuma_fleet_gate
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import gate_held_back

# roles/vnuma_fleet/tasks/gate.yml before the rule moved to Python: its tasks as they were, the condition's one line
# folded in two (the same text once YAML folds it).
FORMER_GATE = r"""
- name: Count the hypervisors that failed before the next step, {{ __vnuma_fleet_gate }}
  ansible.builtin.set_fact:
    __vnuma_fleet_failed_hosts: >-
      {{ (ansible_play_hosts_all | difference(ansible_play_hosts))
         + (ansible_play_hosts | map('extract', hostvars) | selectattr('__vnuma_fleet_failure', 'defined')
            | rejectattr('__vnuma_fleet_failure', 'none') | map(attribute='inventory_hostname') | list) }}

- name: Hold back the next step when more than vnuma_fleet_max_fail_percentage failed, {{ __vnuma_fleet_gate }}
  ansible.builtin.set_fact:
    __vnuma_fleet_aborted: >-
      {{ __vnuma_fleet_gate }} {{ 'would be held back' if __vnuma_fleet_check else 'held back' }}:
      {{ __vnuma_fleet_failed_hosts | length }} of
      {{ ansible_play_hosts_all | length }} hypervisors failed
      ({{ __vnuma_fleet_failed_hosts | join(', ') }}), more than vnuma_fleet_max_fail_percentage
      {{ vnuma_fleet_max_fail_percentage }}%
  when: >-
    __vnuma_fleet_failure is none
    and (__vnuma_fleet_failed_hosts | length) * 100
    > (vnuma_fleet_max_fail_percentage | int) * (ansible_play_hosts_all | length)
"""

FAILURE = {"step": "plan", "task": "Plan | Plan every guest", "msg": "boom", "guest": None, "capacity": None}


def gate(
    failed: tuple[str, ...] = (),
    dropped: tuple[str, ...] = (),
    hosts_all: tuple[str, ...] = ("hv1", "hv2", "hv3", "hv4"),
    host: str = "hv1",
    percent: Any = 25,
    check: bool = False,
    step: str = "apply",
) -> str | None:
    hosts = [name for name in hosts_all if name not in dropped]
    failures = {name: (FAILURE if name in failed else None) for name in hosts}
    return gate_held_back(step, list(hosts_all), hosts, failures, host, percent, check)


def test_nothing_failed_holds_nothing_back() -> None:
    assert gate(percent=0) is None
    assert gate(hosts_all=("hv1",), percent=0) is None


def test_a_share_at_the_percentage_goes_on_and_above_it_holds_back() -> None:
    # 1 of 4 is 25 %: not more than 25.
    assert gate(failed=("hv2",), percent=25) is None
    assert gate(failed=("hv2",), percent=24) == (
        "apply held back: 1 of 4 hypervisors failed (hv2), more than vnuma_fleet_max_fail_percentage 24%"
    )
    assert gate(failed=("hv2", "hv3"), percent=25, step="restart") == (
        "restart held back: 2 of 4 hypervisors failed (hv2, hv3), more than vnuma_fleet_max_fail_percentage 25%"
    )
    # 100 never holds anything back, 0 after one failure.
    assert gate(failed=("hv2", "hv3", "hv4"), percent=100) is None
    assert gate(failed=("hv4",), percent=0) is not None


def test_check_mode_says_what_the_real_run_would_do() -> None:
    assert gate(failed=("hv2",), percent=0, check=True) == (
        "apply would be held back: 1 of 4 hypervisors failed (hv2), more than vnuma_fleet_max_fail_percentage 0%"
    )


def test_hosts_ansible_dropped_count_first_then_those_the_role_recorded() -> None:
    assert gate(failed=("hv2",), dropped=("hv4", "hv3"), percent=50) == (
        "apply held back: 3 of 4 hypervisors failed (hv3, hv4, hv2), more than vnuma_fleet_max_fail_percentage 50%"
    )


def test_a_host_that_failed_itself_is_not_held_back() -> None:
    # Its own failure is what it reports; the others are held back by the same count.
    assert gate(failed=("hv1", "hv2"), host="hv1", percent=0) is None
    assert gate(failed=("hv1", "hv2"), host="hv3", percent=0) is not None


def test_a_held_back_or_unrecorded_host_did_not_fail() -> None:
    # A host a gate held back has no failure of its own (None), and one that never recorded one has none at all.
    failures = {"hv1": None, "hv2": None, "hv3": FAILURE}
    hosts = ["hv1", "hv2", "hv3", "hv4"]
    assert gate_held_back("restart", hosts, hosts, failures, "hv1", 33, False) is None
    assert gate_held_back("restart", hosts, hosts, failures, "hv1", 24, False) == (
        "restart held back: 1 of 4 hypervisors failed (hv3), more than vnuma_fleet_max_fail_percentage 24%"
    )


def test_the_percentage_is_read_as_preflight_reads_it() -> None:
    # -e passes text.
    assert gate(failed=("hv2",), percent="24") == gate(failed=("hv2",), percent=24)
    for bad in (101, -1, "x", 12.5, True, None):
        with pytest.raises(SpecError, match="vnuma_fleet_max_fail_percentage must be from 0 to 100"):
            gate(percent=bad)
    # A host that failed (preflight, say, on that very value) goes to its report, not to an error here.
    assert gate(failed=("hv1",), percent="x") is None


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", ["hv1"], ["hv1"], {}, "hv1", 1, False), "step must name"),
        (("apply", "hv1", ["hv1"], {}, "hv1", 1, False), "play's hosts must be a list"),
        (("apply", ["hv1"], [1], {}, "hv1", 1, False), "remaining hosts must be a list"),
        (("apply", ["hv1"], ["hv1"], [], "hv1", 1, False), "failures must map"),
        (("apply", ["hv1"], ["hv1"], {}, "hv1", 1, "no"), "check true or false"),
    ],
)
def test_bad_inputs_are_refused(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        gate_held_back(*args)


class FakeHostVars(dict[str, dict[str, Any]]):
    """hostvars as the filter reads it: a mapping of hosts to their variables."""


def test_the_filter_reads_each_hosts_recorded_failure_from_hostvars() -> None:
    hostvars = FakeHostVars(
        hv1={"__vnuma_fleet_failure": None},
        hv2={"__vnuma_fleet_failure": FAILURE},
        # No record at all (the variable undefined) is no failure.
        hv3={},
    )
    hosts = ["hv1", "hv2", "hv3", "hv4"]
    # hv4 was dropped by Ansible.
    message = vnuma_fleet_gate(hosts, hosts[:3], hostvars, "hv1", step="apply", max_fail_percentage="49")
    assert message == (
        "apply held back: 2 of 4 hypervisors failed (hv4, hv2), more than vnuma_fleet_max_fail_percentage 49%"
    )
    assert vnuma_fleet_gate(hosts, hosts[:3], hostvars, "hv1", step="apply", max_fail_percentage=50) is None
    assert FilterModule().filters() == {"vnuma_fleet_gate": vnuma_fleet_gate}


def test_the_filter_names_itself_in_errors() -> None:
    with pytest.raises(AnsibleFilterError, match=r"^vnuma\.libvirt\.vnuma_fleet_gate: hostvars must be"):
        vnuma_fleet_gate(["hv1"], ["hv1"], "hostvars", "hv1", step="apply", max_fail_percentage=1)
    with pytest.raises(AnsibleFilterError, match=r"^vnuma\.libvirt\.vnuma_fleet_gate: vnuma_fleet_max_fail_percent"):
        vnuma_fleet_gate(["hv1"], ["hv1"], FakeHostVars(hv1={}), "hv1", step="apply", max_fail_percentage=200)


def test_a_host_without_variables_or_a_name_that_is_not_text_is_refused_by_name() -> None:
    # Both were Python tracebacks: AttributeError on None.get, TypeError on an unhashable list.
    with pytest.raises(
        AnsibleFilterError, match=r"hostvars\['hv1'\] must be the host's variables \(a dict\), got None"
    ):
        vnuma_fleet_gate(["hv1", "hv2"], ["hv1", "hv2"], {"hv1": None, "hv2": {}}, "hv2", "apply", 25)
    with pytest.raises(AnsibleFilterError, match=r"a host's name must be a string, got list \['hv1'\]"):
        vnuma_fleet_gate([["hv1"]], [["hv1"]], {}, "hv1", "apply", 25)


def _former(play: dict[str, Any], hosts: list[str]) -> dict[str, str | None]:
    """What the former gate.yml left in each host's __vnuma_fleet_aborted (null before it), rendered by ansible-core."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    count, hold = yaml.safe_load(FORMER_GATE)
    templar = Templar(loader=DataLoader(), variables=play)
    failed_hosts = templar.template(trust_as_template(count["ansible.builtin.set_fact"]["__vnuma_fleet_failed_hosts"]))
    templar.available_variables = {**play, "__vnuma_fleet_failed_hosts": failed_hosts}
    message = str(templar.template(trust_as_template(hold["ansible.builtin.set_fact"]["__vnuma_fleet_aborted"])))
    held = {}
    for host in hosts:
        # Each host's own record: the condition reads it.
        templar.available_variables = {
            **play,
            "__vnuma_fleet_failed_hosts": failed_hosts,
            "__vnuma_fleet_failure": play["hostvars"][host]["__vnuma_fleet_failure"],
        }
        held[host] = message if templar.template(trust_as_template("{{ " + hold["when"] + " }}")) else None
    return held


HOSTS = ("hv1", "hv2", "hv3", "hv4")
PERCENTS = (0, 25, "33", 50, 100)


def _names_sorted(message: str | None) -> str | None:
    # Ansible's difference filter makes a set of the hosts it dropped: the former message listed them in an order
    # that changed from one run to the next (string hashing is randomised).  Now they come in play order
    # (test_hosts_ansible_dropped_count_first_then_those_the_role_recorded); the rest of the message is the same.
    if message is None:
        return None
    head, rest = message.split(" (", 1)
    names, tail = rest.split("), ", 1)
    return f"{head} ({', '.join(sorted(names.split(', ')))}), {tail}"


def _plays() -> list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], Any, bool]]:
    """(the play's hosts, dropped hosts, recorded failures, percentage, check): each way one to four hosts can be
    fine, failed or dropped, with the percentages and check mode taken in turn."""
    plays = []
    for size in range(1, len(HOSTS) + 1):
        names = HOSTS[:size]
        for marks in itertools.product(("ok", "failed", "dropped"), repeat=size):
            dropped = tuple(name for name, mark in zip(names, marks, strict=True) if mark == "dropped")
            failed = tuple(name for name, mark in zip(names, marks, strict=True) if mark == "failed")
            turn = len(plays)
            plays.append((names, dropped, failed, PERCENTS[turn % len(PERCENTS)], turn % 3 == 0))
    return plays


def test_the_rule_is_the_former_jinjas_for_every_host_of_every_play() -> None:
    outcomes = set()
    for hosts_all, dropped, failed, percent, check in _plays():
        hosts = [name for name in hosts_all if name not in dropped]
        hostvars = {
            name: {"inventory_hostname": name, "__vnuma_fleet_failure": FAILURE if name in failed else None}
            for name in hosts
        }
        play = {
            "ansible_play_hosts_all": list(hosts_all),
            "ansible_play_hosts": hosts,
            "hostvars": hostvars,
            "__vnuma_fleet_gate": "apply",
            "__vnuma_fleet_check": check,
            "vnuma_fleet_max_fail_percentage": percent,
        }
        for host, expected in _former(play, hosts).items():
            message = vnuma_fleet_gate(list(hosts_all), hosts, hostvars, host, "apply", percent, check)
            assert _names_sorted(message) == _names_sorted(expected), (play, host)
            outcomes.add((message is None, check, host in failed))
    # The grid reached every branch: going on, held back (in check mode and not), failed itself.
    assert outcomes >= {(True, False, False), (False, False, False), (False, True, False), (True, False, True)}
