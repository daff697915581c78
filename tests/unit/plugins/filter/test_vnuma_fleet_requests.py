# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_fleet_requests: the thin filter over _core/fleet.py:fleet_requests."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_requests import FilterModule, vnuma_fleet_requests


def test_filter_module_exposes_the_filter() -> None:
    assert FilterModule().filters() == {"vnuma_fleet_requests": vnuma_fleet_requests}


def test_the_filter_builds_requests_and_sources() -> None:
    guests = [{"name": "db01", "spec": {"mode": "node", "cells": 2}}, {"name": "web01", "spec": None}]
    built = vnuma_fleet_requests(guests, {"mode": "host", "cells": 4}, {"web01": {"nodeset": "1"}}, True)
    assert built == {
        "requests": [{"name": "db01"}, {"mode": "host", "cells": 4, "nodeset": "1", "name": "web01"}],
        "sources": {
            "db01": {"spec": "stored", "override": False},
            "web01": {"spec": "vnuma_fleet_spec", "override": True},
        },
    }


def test_a_bad_input_is_a_filter_error_naming_the_filter() -> None:
    with pytest.raises(AnsibleFilterError, match=r"^vnuma\.libvirt\.vnuma_fleet_requests: use_stored_spec must be"):
        vnuma_fleet_requests([], {}, {}, "yes")
