# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_fleet_restart_required keeps vnuma_domain's order as each restart batch takes its guests out of it.

The role exports it (and the report lists it): a run must not reorder it.  restart_batch.yml's set_fact is
rendered here by ansible-core's own templar, as the role renders it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

TASKS = Path(__file__).resolve().parents[2] / "roles" / "vnuma_fleet" / "tasks" / "restart_batch.yml"


def test_the_guests_left_to_restart_keep_their_order() -> None:
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    [_restart, record] = yaml.safe_load(TASKS.read_text(encoding="utf-8"))
    expression = record["ansible.builtin.set_fact"]["vnuma_fleet_restart_required"]
    # Enough names that a set's order (what Ansible's difference returns) is never the list's by chance.
    waiting = [f"guest{index:02d}-{(index * 7919) % 101}" for index in range(40)]
    restarted = waiting[3:9]
    templar = Templar(
        loader=DataLoader(),
        variables={"vnuma_fleet_restart_required": waiting, "__vnuma_fleet_batch_record": {"restarted": restarted}},
    )
    assert templar.template(trust_as_template(expression)) == [name for name in waiting if name not in restarted]
