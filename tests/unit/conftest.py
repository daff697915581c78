# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared pytest configuration for the unit tests.

These run both under plain pytest (``make unit``) and under ``ansible-test units``, which uses its own
pytest configuration file with ``--strict-markers``: register custom markers in ``pytest_configure``
here, not in pyproject.toml.
"""

from __future__ import annotations

import pytest

try:
    from hypothesis import settings
except ImportError:  # pragma: no cover - hypothesis is in tests/unit/requirements.txt
    settings = None

if settings is not None:
    # No per-example deadline: the tests run in parallel on small CI machines, where timing is noise.
    settings.register_profile("vnuma", deadline=None, print_blob=True)
    settings.load_profile("vnuma")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regenerate-output",
        action="store_true",
        default=False,
        help="rewrite the golden output files (expected XML) from the current results instead of comparing",
    )


@pytest.fixture
def regenerate_output(request: pytest.FixtureRequest) -> bool:
    """True when the golden output files are to be rewritten rather than compared."""
    return bool(request.config.getoption("--regenerate-output"))
