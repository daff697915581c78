# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vnuma_fleet_report renders the role's templates with plain Jinja2: the pages are the ones Ansible's templar renders.

tests/browser/render_reports.py renders every page of the browser checks (recorded role runs: the demo's
hypervisor, a 16-node host, a hypervisor with failed guests, one that failed, the fleet summary) with
Ansible's templar, as the role did before; it runs in a process of its own, since it sets up Ansible's
collection loader.  The action's renderer must give the same bytes from the same data.

The report directory (``make_directory``): the step sets the mode of the directories it creates only; an existing
one, or the one a symlink leads to, is left as it is, and one it cannot use is refused naming it.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.vnuma.libvirt.plugins.action.vnuma_fleet_report import (
    check_host_report,
    make_directory,
    render_template,
)

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


# -- the report directory --------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_077() -> Iterator[None]:
    before = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.parametrize("existing", [0o1777, 0o0700, 0o0750, 0o2775], ids=lambda existing: f"{existing:04o}")
def test_an_existing_directory_keeps_its_mode(tmp_path: Path, existing: int) -> None:
    # vnuma_fleet_report_dir: /tmp (1777) used to become 0755, in check mode too, with changed false.
    directory = tmp_path / "reports"
    directory.mkdir()
    os.chmod(directory, existing)
    make_directory(str(directory))
    assert mode(directory) == existing


def test_an_existing_directory_another_user_owns_is_not_chmodded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod(2) on a directory of another user fails with EPERM: it used to end the step with a traceback.
    directory = tmp_path / "reports"
    directory.mkdir()
    os.chmod(directory, 0o1777)

    def chmod(path: bytes, mode: int) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), path)

    monkeypatch.setattr(os, "chmod", chmod)
    make_directory(str(directory))
    assert mode(directory) == 0o1777


def test_missing_directories_are_created_0755_and_their_parent_is_left_alone(tmp_path: Path, umask_077: None) -> None:
    os.chmod(tmp_path, 0o700)
    make_directory(str(tmp_path / "a" / "b" / "reports"))
    assert [mode(tmp_path / path) for path in ("a", "a/b", "a/b/reports")] == [0o755, 0o755, 0o755]
    assert mode(tmp_path) == 0o700


def test_a_directory_another_process_creates_meanwhile_is_not_ours_to_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_mkdir = os.mkdir

    def mkdir(path: bytes, mode: int = 0o777) -> None:
        real_mkdir(path, 0o700)
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)

    monkeypatch.setattr(os, "mkdir", mkdir)
    make_directory(str(tmp_path / "reports"))
    assert mode(tmp_path / "reports") == 0o700


def test_a_symlink_to_a_directory_is_followed(tmp_path: Path) -> None:
    # As ansible.builtin.file state=directory does (follow: true); it used to be refused as a link.
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.chmod(real, 0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    make_directory(str(link))
    assert link.is_symlink() and mode(real) == 0o700


@pytest.mark.parametrize("target", ["file", "missing"])
def test_a_symlink_to_anything_else_is_refused(tmp_path: Path, target: str) -> None:
    if target == "file":
        (tmp_path / target).write_text("not a directory", encoding="utf-8")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / target)
    with pytest.raises(
        AnsibleActionFail, match=rf"^{link} already exists as a link that does not lead to a directory$"
    ):
        make_directory(str(link))
    assert link.is_symlink() and not (tmp_path / "missing").exists()


def test_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a directory", encoding="utf-8")
    with pytest.raises(AnsibleActionFail, match=rf"^{path} already exists as a file$"):
        make_directory(str(path))


def test_an_existing_directory_this_user_cannot_write_in_is_refused_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root passes every permission check: the one a user without write access gets, simulated.
    directory = tmp_path / "reports"
    directory.mkdir()
    os.chmod(directory, 0o555)
    monkeypatch.setattr(os, "access", lambda path, how, **options: False)
    with pytest.raises(AnsibleActionFail) as raised:
        make_directory(str(directory))
    assert str(raised.value) == (
        f"{directory} is a directory that this user (uid {os.geteuid()}) cannot write in "
        f"(mode 0555, owner uid {os.getuid()}); it is left as it is: give this user write access to it or choose "
        "another directory"
    )
    assert mode(directory) == 0o555


@pytest.mark.parametrize("call", ["mkdir", "chmod"])
def test_a_permission_error_is_a_failure_that_names_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    real = getattr(os, call)

    def refused(path: bytes, *args: int) -> None:
        if os.fsdecode(path).startswith(str(tmp_path)):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), path)
        real(path, *args)

    monkeypatch.setattr(os, call, refused)
    directory = tmp_path / "reports"
    with pytest.raises(AnsibleActionFail) as raised:
        make_directory(str(directory))
    assert str(raised.value) == (
        f"There was an issue creating {directory} as requested: [Errno 1] Operation not permitted: "
        f"{os.fsencode(directory)!r}"
    )
