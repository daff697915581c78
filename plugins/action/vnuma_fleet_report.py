# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vnuma_fleet role's reports, written on the controller in one step that starts no module.

The role used to write them with ``file``, ``copy`` and ``template``: five tasks, each starting one or
two module processes (0.3 to 0.6 s apiece).  Here the directory is created, the JSON dumped and the
role's templates rendered in the controller's process, and every file is written atomically (a
temporary file in the same directory, then a rename).  The documentation is in
plugins/modules/vnuma_fleet_report.py.

The templates are rendered by plain Jinja2 (ansible-core's own template engine), with the settings of
the template module, the Jinja2 filters and tests, and the few filters the templates name (``_FILTERS``).
Ansible's templar wraps every value it reads in a container that checks it for templates: for a few
hundred guests that took 0.6 to 1.9 s per report against 0.1 to 0.3 s here.  The data is a result that
the role's filters built from the modules' output, never a template, so the page is byte for byte the
one the templar renders (tests/unit/plugins/action/test_vnuma_fleet_report.py compares both).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.action import ActionBase
from ansible.plugins.filter.core import to_json, to_nice_json

from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_fleet_size import vnuma_fleet_size
from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_host_svg import vnuma_host_svg
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.fleet import SUMMARY_REPORT_NAME, expand_fleet_result
from ansible_collections.vnuma.libvirt.plugins.plugin_utils._filter_glue import module_data

_DIR_MODE = 0o755
_FILE_MODE = 0o644
# The templates of the role (roles/vnuma_fleet/templates) and the variable each reads its data from.
_HOST_TEMPLATE = ("report.html.j2", "vnuma_fleet_result")
_FLEET_TEMPLATE = ("fleet.html.j2", "__vnuma_fleet_summary")
_ARGS = frozenset(("dir", "probe", "result", "result_var", "summary"))
# The filters the templates use beyond Jinja2's own, by the names they use.
_FILTERS: dict[str, Callable[..., Any]] = {
    "to_json": to_json,
    "vnuma.libvirt.vnuma_fleet_size": vnuma_fleet_size,
    "vnuma.libvirt.vnuma_host_svg": vnuma_host_svg,
}
# What the host report's template reads besides its data: the guests as discover read them, for the diagram before,
# from the fleet call's registered result (compact: plugins/module_utils/_core/fleet.py:expand_fleet_result).
_BEFORE = "__vnuma_fleet_before"
_FLEET_CALL = "__vnuma_fleet_read"


def _state(path: bytes) -> str:
    # The names the file module gives, so that messages read as they did.
    if not os.path.lexists(path):
        return "absent"
    if os.path.islink(path):
        return "link"
    if os.path.isdir(path):
        return "directory"
    return "hard" if os.stat(path).st_nlink > 1 else "file"


def make_directory(path: str) -> None:
    """``path`` as a directory, created with its parents when missing, as the file module does.

    Only the directories created here get mode 0755.  An existing directory keeps its mode and owner (a shared
    ``/tmp`` stays 1777, a private one 0700); a symlink to a directory is followed.  It must be a directory this
    user can write in, else the step fails naming it, as it does when a directory cannot be created.
    """
    try:
        b_path = to_bytes(path, errors="surrogate_or_strict")
        state = _state(b_path)
    except (OSError, UnicodeError) as error:
        raise AnsibleActionFail(f"cannot read {path}: {to_native(error)}") from None
    if state == "absent":
        _create(path)
        return
    if state == "link" and not os.path.isdir(b_path):
        raise AnsibleActionFail(f"{path} already exists as a link that does not lead to a directory")
    if state not in ("directory", "link"):
        raise AnsibleActionFail(f"{path} already exists as a {state}")
    if not os.access(b_path, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        try:
            status = os.stat(b_path)
            what = f"mode {stat.S_IMODE(status.st_mode):04o}, owner uid {status.st_uid}"
        except OSError as error:
            what = to_native(error)
        raise AnsibleActionFail(
            f"{path} is a directory that this user (uid {os.geteuid()}) cannot write in ({what}); "
            "it is left as it is: give this user write access to it or choose another directory"
        )


def _create(path: str) -> None:
    """Create ``path`` and its missing parents, each mode 0755; a directory that appears meanwhile is left as it is."""
    current = ""
    try:
        for part in path.strip("/").split("/"):
            current = f"{current}/{part}"
            b_current = to_bytes(current, errors="surrogate_or_strict")
            if os.path.exists(b_current):
                continue
            try:
                os.mkdir(b_current, _DIR_MODE)
            except OSError as error:
                # Another process made it first: it is not ours to change.
                if error.errno == errno.EEXIST and os.path.isdir(b_current):
                    continue
                raise
            # mkdir's mode is masked by the umask: the mode the file module would set.
            os.chmod(b_current, _DIR_MODE)
    except (OSError, UnicodeError) as error:
        raise AnsibleActionFail(f"There was an issue creating {current} as requested: {to_native(error)}") from None


def probe_directory(path: str) -> None:
    """Write a file in ``path`` and remove it: only a real write tells (root passes every permission check)."""
    try:
        handle, name = tempfile.mkstemp(prefix=".vnuma-fleet-probe-", dir=path)
    except OSError as error:
        raise AnsibleActionFail(to_native(error)) from None
    os.close(handle)
    os.unlink(name)


def write_file(path: str, text: str) -> None:
    """``text`` as ``path`` (mode 0644), atomically: readers see the old file or the new one, never half of it."""
    directory, base = os.path.split(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{base}.", dir=directory or ".")
    except OSError as error:
        raise AnsibleActionFail(f"cannot write {path}: {to_native(error)}") from None
    try:
        with os.fdopen(handle, "wb") as output:
            output.write(to_bytes(text, encoding="utf-8", errors="surrogate_or_strict"))
        os.chmod(temporary, _FILE_MODE)
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise AnsibleActionFail(f"cannot write {path}: {to_native(error)}") from None
        raise


def render_template(text: str, searchpath: list[str], context: Mapping[str, Any]) -> str:
    """``text`` rendered by Jinja2 with the template module's settings, its includes found on ``searchpath``.

    trim_blocks, ``\\n`` line ends, the template's own trailing newlines kept, and ``{{ none }}`` written as
    nothing, as the template module does.
    """
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(searchpath),
        trim_blocks=True,
        lstrip_blocks=False,
        newline_sequence="\n",
        keep_trailing_newline=False,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=_no_none,
    )
    environment.filters.update(_FILTERS)
    rendered = environment.from_string(text).render(context)
    missing = _trailing_newlines(text) - _trailing_newlines(rendered)
    return rendered + "\n" * missing if missing > 0 else rendered


def _no_none(value: Any) -> Any:
    return "" if value is None else value


def _trailing_newlines(text: str) -> int:
    return len(text) - len(text.rstrip("\n"))


def check_host_report(path: str, directory: str, name: str) -> None:
    """Refuse a host report ``path`` that is not a file right in ``directory``, or that is the fleet summary's.

    The role never passes one (preflight refuses an inventory name that cannot name its reports): a name with a
    ``/`` would write into another directory, or out of the report directory, and ``fleet`` over the summary.
    """
    where, base = os.path.split(os.path.normpath(path))
    stem = os.path.splitext(base)[0]
    if where != os.path.normpath(directory) or stem.casefold() == SUMMARY_REPORT_NAME:
        raise AnsibleActionFail(
            f"{name} '{path}' must be a file in dir '{directory}' other than the fleet summary's "
            f"({SUMMARY_REPORT_NAME}.json, {SUMMARY_REPORT_NAME}.html)"
        )


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise AnsibleActionFail(f"{name} must be a path (a non-empty string), got {type(value).__name__}")
    return str(value)


class ActionModule(ActionBase):
    """vnuma.libvirt.vnuma_fleet_report: the role's report directory, host reports and fleet summary."""

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def _render(self, name: str, variable: str, data: Any, task_vars: dict[str, Any]) -> str:
        """One of the role's templates, rendered as the template module does (trim_blocks, includes found)."""
        try:
            source = self._find_needle("templates", name)
        except AnsibleError as error:
            raise AnsibleActionFail(to_native(error)) from None
        searchpath: list[str] = []
        for path in [*task_vars.get("ansible_search_path", []), self._loader.get_basedir(), os.path.dirname(source)]:
            searchpath.extend((os.path.join(path, "templates"), path))
        context: dict[str, Any] = {variable: module_data(data)}
        fleet_call = task_vars.get(_FLEET_CALL)
        if isinstance(fleet_call, Mapping):
            try:
                context[_BEFORE] = expand_fleet_result(module_data(fleet_call)).get("before", {})
            except VnumaError as error:
                raise AnsibleActionFail(f"{_FLEET_CALL}: {error}") from None
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
        try:
            rendered = render_template(text, searchpath, context)
        except jinja2.TemplateError as error:
            raise AnsibleActionFail(f"{name}: {to_native(error)}") from None
        return rendered

    def _variable(self, name: str, task_vars: dict[str, Any]) -> Any:
        """The value of the variable ``name``: a mapping as it is stored, anything else templated.

        A set_fact's value is data, already templated: templating a few hundred guests' result again, as a
        task argument would be, costs Ansible a noticeable part of a second.
        """
        if name not in task_vars:
            raise AnsibleActionFail(f"result_var: no variable named {name}")
        value = task_vars[name]
        return value if isinstance(value, Mapping) else self._templar.template(value)

    def _write_pair(
        self, json_path: str, html_path: str, template: tuple[str, str], data: Any, task_vars: dict[str, Any]
    ) -> list[str]:
        html = self._render(template[0], template[1], data, task_vars)
        write_file(json_path, to_nice_json(data, indent=2) + "\n")
        write_file(html_path, html)
        return [json_path, html_path]

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        unknown = sorted(set(args) - _ARGS)
        if unknown:
            raise AnsibleActionFail(
                f"unsupported parameter(s): {', '.join(unknown)}; known: {', '.join(sorted(_ARGS))}"
            )
        directory = _text(args.get("dir"), "dir")
        if not os.path.isabs(directory):
            raise AnsibleActionFail(f"dir must be an absolute path, got '{directory}'")
        if args.get("result_var") is not None:
            if args.get("result") is not None:
                raise AnsibleActionFail("result and result_var are mutually exclusive")
            args = {**args, "result": self._variable(_text(args["result_var"], "result_var"), task_vars)}
        for name in ("result", "summary"):
            if args.get(name) is not None and not isinstance(args[name], Mapping):
                raise AnsibleActionFail(f"{name} must be a dict, got {type(args[name]).__name__}")
        make_directory(directory)
        written: list[str] = []
        if args.get("probe", False):
            probe_directory(directory)
        host_result = args.get("result")
        if host_result is not None:
            report = host_result.get("report")
            if not isinstance(report, Mapping):
                raise AnsibleActionFail("result must be a vnuma_fleet_result, with report.json and report.html")
            json_path = _text(report.get("json"), "result.report.json")
            html_path = _text(report.get("html"), "result.report.html")
            check_host_report(json_path, directory, "result.report.json")
            check_host_report(html_path, directory, "result.report.html")
            written += self._write_pair(json_path, html_path, _HOST_TEMPLATE, host_result, task_vars)
        summary = args.get("summary")
        if summary is not None:
            fleet = os.path.join(directory, SUMMARY_REPORT_NAME)
            written += self._write_pair(f"{fleet}.json", f"{fleet}.html", _FLEET_TEMPLATE, summary, task_vars)
        # The reports are the role's output, not a change to the fleet: never changed, written in check mode too.
        result.update(changed=False, dir=directory, written=written, check_mode=bool(self._play_context.check_mode))
        return result
