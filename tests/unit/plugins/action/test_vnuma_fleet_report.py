# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_fleet_report renders the role's templates with plain Jinja2: the pages are the ones Ansible's templar renders.

tests/browser/render_reports.py renders every page of the browser checks (recorded role runs: the demo's
hypervisor, a 16-node host, a hypervisor with failed guests, one that failed, the fleet summary) with
Ansible's templar, as the role did before; it runs in a process of its own, since it sets up Ansible's
collection loader.  The action's renderer must give the same bytes from the same data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.vnuma.libvirt.plugins.action.vnuma_fleet_report import check_host_report, render_template

ROOT = Path(__file__).resolve().parents[4]
TEMPLATES = ROOT / "roles" / "vnuma_fleet" / "templates"
RENDER = ROOT / "tests" / "browser" / "render_reports.py"
sys.path.insert(0, str(RENDER.parent))

from render_reports import report_vars  # noqa: E402  (tests/browser is no package)


@pytest.fixture(scope="module")
def templar_pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("templar")
    subprocess.run([sys.executable, str(RENDER), str(out)], check=True, env=dict(os.environ))
    return out


@pytest.mark.parametrize("page", sorted(report_vars()))
def test_pages_equal_the_templars(templar_pages: Path, page: str) -> None:
    name = "fleet.html.j2" if page == "fleet" else "report.html.j2"
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    ours = render_template(text, [str(TEMPLATES)], report_vars()[page])
    theirs = (templar_pages / f"{page}.html").read_text(encoding="utf-8")
    assert len(ours) > 1000
    assert ours == theirs


def test_trailing_newlines_of_the_template_are_kept() -> None:
    # Jinja2 drops one trailing newline; the template module keeps the template's own.
    assert render_template("{{ x }}\n\n", [], {"x": 1}) == "1\n\n"
    assert render_template("{{ x }}", [], {"x": 1}) == "1"


def test_undefined_values_fail() -> None:
    # As with Ansible's templar: a name the data lacks is an error, not an empty string in the report.
    with pytest.raises(jinja2.UndefinedError):
        render_template("{{ r.missing }}", [], {"r": {}})


def test_none_is_written_as_nothing() -> None:
    # Ansible's templar writes {{ none }} as nothing (a hugepage pool whose free count is unknown).
    assert render_template("({{ x }} free)", [], {"x": None}) == "( free)"


@pytest.mark.parametrize("path", ["/r/hv01.json", "/r/hv01.html", "/r//hv01.json", "/r/fleet01.json", "/r/..json"])
def test_a_host_report_right_in_the_directory_is_written(path: str) -> None:
    check_host_report(path, "/r/", "result.report.json")


@pytest.mark.parametrize(
    "path",
    [
        "/r/rack1/hv01.json",  # another directory
        "/r/../escaped.json",  # out of the report directory
        "/elsewhere/hv01.json",
        "hv01.json",
        "/r/fleet.json",  # the fleet summary's
        "/r/Fleet.html",
    ],
)
def test_a_host_report_elsewhere_or_over_the_summary_is_refused(path: str) -> None:
    with pytest.raises(AnsibleActionFail, match=r"^result\.report\.json '.*' must be a file in dir '/r' other than "):
        check_host_report(path, "/r", "result.report.json")
