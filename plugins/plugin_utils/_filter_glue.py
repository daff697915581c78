# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""What the filter plugins share: input checks and coercion, and turning ``VnumaError`` into ``AnsibleFilterError``.

Every message starts with the filter's fully qualified name (``vnuma.libvirt.vnuma_layout: ...``); the rest of
it is the pure layer's own message, which names the guest, the value and the limit.

Imports: a filter file imports the module utils it calls inside its functions, and this file imports only
small ones at its top. To find one filter of a collection, ansible-core's ``Jinja2Loader.get_with_context``
executes every file of the collection's ``plugins/filter``, in every worker process, so a top-level import
of the partitioner, lxml or the report code made each task that used any of our filters pay for all of
them (0.22 to 0.30 s a task). ``tests/unit/plugins/filter/test_filter_loading.py`` holds the rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ansible.errors import AnsibleFilterError

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.cpuset import MAX_CPU_ID, parse_cpuset
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError, VnumaError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import kind, parse_size, read_digits, shown

if TYPE_CHECKING:
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape

__all__ = [
    "UNNAMED_OWNER",
    "coerce_int",
    "filter_errors",
    "guest_shape",
    "host_variable",
    "is_omitted",
    "kind",
    "module_data",
    "module_result_inputs",
    "plain",
    "require_cpu_ids",
    "require_name",
    "require_text",
    "spec_options",
    "taken_cpus_map",
]

# Who holds the CPUs of ``taken_cpus`` when they are given without guest names.
UNNAMED_OWNER = "other guests"
# ansible-core 2.19 passes ``omit`` as a singleton of this type (2.17 and 2.18, no longer supported, passed a string).
_OMIT_TYPE = "_OmitType"
# Digit strings longer than this are not converted (int() of a long string costs time quadratic in its
# length, and Python refuses past 4300 digits): the pure layer refuses them as not a count.
_MAX_COERCED_DIGITS = 100


def _fail(filter_name: str, message: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"vnuma.libvirt.{filter_name}: {message}")


@contextmanager
def filter_errors(filter_name: str, guest: str | None = None) -> Iterator[None]:
    """Re-raise a ``VnumaError`` as ``AnsibleFilterError``, naming ``guest`` unless the error already names one."""
    try:
        yield
    except VnumaError as error:
        raise _fail(filter_name, str(error.naming(guest))) from error


def is_omitted(value: Any) -> bool:
    """True for ``None`` and for Ansible's ``omit`` placeholder: the argument was not given."""
    return value is None or type(value).__name__ == _OMIT_TYPE


# bool before int: True is an int too.  type[Any]: each is called on a value of its own type.
_SCALARS: tuple[type[Any], ...] = (bool, int, float, str, bytes)


def plain(value: Any) -> Any:
    """The builtin value behind ansible-core 2.19's tagged scalars and lazy containers.

    The pure layer names the type of a value it refuses; this makes that ``list``, not ``_AnsibleLazyTemplateList``.
    """
    for builtin in _SCALARS:
        if isinstance(value, builtin):
            return builtin(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return value


def host_variable(hostvars: Any, host: Any, variable: str) -> Any:
    """``variable`` of ``host`` in the play's ``hostvars``, None when either is missing.

    One variable of one host: hostvars templates on access, so a filter never reads a host's variables whole.
    """
    if not isinstance(hostvars, Mapping):
        raise SpecError(f"hostvars must be the play's hostvars (a dict), got {kind(hostvars)}")
    if not isinstance(host, str):
        raise SpecError(f"a host's name must be a string, got {kind(host)} {shown(host)}")
    if host not in hostvars:
        return None
    own = hostvars[host]
    if not isinstance(own, Mapping):
        raise SpecError(f"hostvars[{host!r}] must be the host's variables (a dict), got {kind(own)}")
    return own.get(variable)


def module_data(value: Any) -> Any:
    """A module's registered result (or a part of it) as Ansible stores it, without templating each value read.

    ansible-core 2.19 hands a filter its input as lazy containers that template every value on access: on a
    few hundred guests' results that costs more than the filter's own work.  A module's output is never
    trusted as a template, so templating it changes nothing; this takes its values as they are stored.
    Only for what a module returned: a role's own values may hold templates.  Earlier ansible-core versions
    pass plain containers, which are returned as they are.
    """
    copy = getattr(value, "_non_lazy_copy", None)
    if copy is None:
        return value
    stored = copy()
    # Values read before this call may be lazy containers again; the values under a stored one are plain.
    if isinstance(stored, Mapping):
        return {key: module_data(item) for key, item in stored.items()}
    return [module_data(item) for item in stored]


def module_result_inputs(inputs: Any, keys: tuple[str, ...]) -> Any:
    """The role's inputs of a fleet filter, with the module results among them (``keys``, and ``registered``'s
    values) taken as stored (``module_data``); anything but a mapping as it is, for the pure layer to refuse.

    ``registered`` is the role's own dict, whose values are templates naming registered results: its values are
    templated (read through the lazy dict), then taken as stored.
    """
    given = plain(inputs)
    if not isinstance(given, dict):
        return given
    given.update({key: module_data(given[key]) for key in keys if key in given})
    registered = plain(given.get("registered"))
    if isinstance(registered, dict):
        given["registered"] = {key: module_data(value) for key, value in registered.items()}
    return given


def spec_options(filter_name: str, value: Any) -> dict[Any, Any]:
    """The vNUMA spec options without the omitted ones (``{}`` when the spec itself is omitted).

    Each known option is read as vnuma_domain reads a ``guests`` entry's (``Option.coerce``): a templated
    ``"2"`` is a count, ``"yes"`` a boolean; a bad value is a ``SpecError`` for the caller to name the guest.
    Unknown keys are left to ``VnumaSpec.from_mapping``, which refuses them with the list of known ones.
    """
    # On call: see "Imports" in this module's docstring.
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import coerce_options

    if is_omitted(value):
        return {}
    if not isinstance(value, Mapping):
        raise _fail(filter_name, f"spec must be a dict of vnuma options, got {kind(value)}")
    return coerce_options({plain(key): plain(given) for key, given in value.items() if not is_omitted(given)})


def coerce_int(value: Any) -> Any:
    """A string of decimal digits (``-e vcpus=16``) as an int, an omitted value as None, anything else plain."""
    if is_omitted(value):
        return None
    if isinstance(value, str):
        number = read_digits(value.strip(), _MAX_COERCED_DIGITS)
        if number is not None:
            return number
    return plain(value)


def guest_shape(vcpus: Any, memory: Any, current_vcpus: Any, guest: str | None) -> GuestShape:
    """The guest a layout filter plans for, from its keyword arguments (sizes with a unit, counts as text)."""
    # On call, not at load: see "Imports" in this module's docstring.
    from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import GuestShape

    memory_kib = None if is_omitted(memory) else parse_size(memory, what="memory")
    return GuestShape(coerce_int(vcpus), memory_kib, coerce_int(current_vcpus), guest)


def require_text(filter_name: str, what: str, value: Any) -> str:
    """``value`` itself when it is a string, else an error naming ``what`` and the type received."""
    if not isinstance(value, str):
        raise _fail(filter_name, f"{what} must be a string of XML, got {kind(value)}")
    return value


def require_name(filter_name: str, value: Any) -> str | None:
    """The guest name, None when not given."""
    if is_omitted(value):
        return None
    if not isinstance(value, str):
        raise _fail(filter_name, f"name must be a string, got {kind(value)}")
    return value


def _cpu_id(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{what} must hold CPU ids (integers), got {kind(value)} {shown(value)}")
    if not 0 <= value <= MAX_CPU_ID:
        raise SpecError(f"{what}: CPU id {shown(value)} is outside 0-{MAX_CPU_ID}")
    return value


def require_cpu_ids(what: str, value: Any) -> list[int]:
    """A list (tuple, set) of CPU ids, each an int in libvirt's range; else a ``SpecError``."""
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise SpecError(f"{what} must be a list of CPU ids, got {kind(value)}")
    return [_cpu_id(what, item) for item in value]


def taken_cpus_map(value: Any) -> dict[int, str] | None:
    """``taken_cpus`` as the partitioner wants it: host CPU id -> the guest it is dedicated to.

    Accepted: a dict of CPU id (or cpuset string such as ``'0-3'``) -> guest name; a list of CPU ids; a cpuset
    string.  CPUs given without names are attributed to ``other guests`` in messages.  Anything else is a
    ``SpecError``, for the caller's ``filter_errors`` to name the guest.
    """
    if is_omitted(value):
        return None
    if isinstance(value, str):
        return dict.fromkeys(parse_cpuset(value, "taken_cpus", allow_empty=True), UNNAMED_OWNER)
    if isinstance(value, Mapping):
        taken: dict[int, str] = {}
        for key, owner in value.items():
            if not isinstance(owner, str):
                cpu = key if isinstance(key, str) and len(key) <= 40 else shown(key)
                raise SpecError(f"taken_cpus maps CPU ids to guest names; CPU {cpu} maps to {kind(owner)}")
            cpus = [key] if isinstance(key, int) else parse_cpuset(key, "taken_cpus key")
            taken.update(dict.fromkeys((_cpu_id("taken_cpus", cpu) for cpu in cpus), owner))
        return taken
    if isinstance(value, (list, tuple, set, frozenset)):
        return dict.fromkeys(require_cpu_ids("taken_cpus", value), UNNAMED_OWNER)
    raise SpecError(
        f"taken_cpus must be a dict of CPU id to guest name, a list of CPU ids or a cpuset string, got {kind(value)}"
    )
