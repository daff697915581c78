# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The committed option documentation is what the option table gives (scripts/gen-option-docs.py).

``plugins/doc_fragments/spec.py``, the ``vnuma_fleet_spec`` suboptions of the role's
``meta/argument_specs.yml``, the option names in its ``vars/main.yml`` and the ``spec`` suboptions of the
``vnuma_layout`` filter are static YAML generated from ``_core/options.py:SPEC_OPTIONS``; vnuma_domain's
documentation of its other per-guest options and the role's list of them from ``GUEST_OPTIONS``.  These
tests fail when either differs from the table: first by name, type, choice, default and description,
which says what differs, then as text, which catches the rest.  The fix is ``make options-docs``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.options import (
    GUEST_OPTIONS,
    SPEC_OPTIONS,
    GuestOption,
    Kind,
    Option,
)

ROOT = Path(__file__).resolve().parents[2]
FIX = "run `make options-docs` (scripts/gen-option-docs.py) and commit the result"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_option_docs", ROOT / "scripts" / "gen-option-docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()


def fragment_options() -> dict[str, Any]:
    from ansible_collections.vnuma.libvirt.plugins.doc_fragments.spec import ModuleDocFragment

    options: dict[str, Any] = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    return options


def role_options() -> dict[str, Any]:
    specs = yaml.safe_load((ROOT / "roles" / "vnuma_fleet" / "meta" / "argument_specs.yml").read_text())
    options: dict[str, Any] = specs["argument_specs"]["main"]["options"]["vnuma_fleet_spec"]["options"]
    return options


def layout_filter_options() -> dict[str, Any]:
    from ansible_collections.vnuma.libvirt.plugins.filter.vnuma_layout import DOCUMENTATION

    options: dict[str, Any] = yaml.safe_load(DOCUMENTATION)["options"]["spec"]["suboptions"]
    return options


def under(parent: str) -> Any:
    """An option reference as a dict option ``parent`` holding the spec writes it."""
    names = {item.name for item in SPEC_OPTIONS}
    return lambda text: re.sub(
        r"O\((\w+)\)", lambda match: f"O({parent}.{match[1]})" if match[1] in names else match[0], text
    )


DOCUMENTED = [
    pytest.param(fragment_options, lambda text: text, id="doc-fragment"),
    pytest.param(role_options, under("vnuma_fleet_spec"), id="role-argument-specs"),
    pytest.param(layout_filter_options, under("spec"), id="vnuma_layout-filter"),
]


@pytest.mark.parametrize(("documented", "qualified"), DOCUMENTED)
def test_the_documented_options_are_the_table(documented: Any, qualified: Any) -> None:
    options = documented()
    assert list(options) == [item.name for item in SPEC_OPTIONS], FIX
    for item in SPEC_OPTIONS:
        entry = options[item.name]
        assert entry["type"] == item.kind.ansible_type, f"{item.name}: {FIX}"
        assert entry.get("choices") == (list(item.choices) or None), f"{item.name}: {FIX}"
        # Unset means "keep the stored spec's value": the default is a sentence, never a default key.
        assert "default" not in entry, f"{item.name}: {FIX}"
        description = entry["description"]
        assert description[: len(item.description)] == [qualified(text) for text in item.description], (
            f"{item.name}: {FIX}"
        )
        assert description == [qualified(text) for text in GENERATOR.paragraphs(item)], f"{item.name}: {FIX}"


def test_the_role_accepts_the_table_options_in_its_overrides() -> None:
    internals = yaml.safe_load((ROOT / "roles" / "vnuma_fleet" / "vars" / "main.yml").read_text())
    assert internals["__vnuma_fleet_spec_options"] == [item.name for item in SPEC_OPTIONS], FIX


def test_the_committed_files_are_the_generator_output() -> None:
    for path, text in GENERATOR.outputs().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.relative_to(ROOT)}: {FIX}"


def test_the_check_mode_finds_nothing_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert GENERATOR.main(["--check"]) == 0
    assert "matches the option table" in capsys.readouterr().out


def by(kind: Kind) -> Option:
    return next(item for item in SPEC_OPTIONS if item.kind is kind)


@pytest.mark.parametrize(
    ("item", "added"),
    [
        pytest.param(by(Kind.CHOICE), ["The default is V(host)."], id="choice-default"),
        pytest.param(by(Kind.BOOLEAN), ["The default is V(false)."], id="boolean-default"),
        pytest.param(by(Kind.COUNT), ["From 1 to 128 (QEMU's MAX_NODES)."], id="count-limit"),
        pytest.param(by(Kind.SIZE), ["At most 4 PiB (all a 52-bit physical address space holds)."], id="size-limit"),
        pytest.param(
            by(Kind.NODESET),
            ["Node ids go from 0 to 1023: Linux has at most 1024 NUMA nodes (MAX_NUMNODES)."],
            id="nodeset-limit",
        ),
    ],
)
def test_the_generator_adds_the_default_and_the_limit(item: Option, added: list[str]) -> None:
    assert GENERATOR.paragraphs(item) == [*item.description, *added]


def test_a_description_that_yaml_would_misread_is_quoted() -> None:
    text = "key: value # not a comment"
    lines = GENERATOR._scalar(text, 6)
    assert yaml.safe_load("\n".join(lines)) == [text]
    assert lines == ['      - "key: value # not a comment"']


def test_the_role_block_needs_its_markers() -> None:
    with pytest.raises(SystemExit, match="expected one"):
        GENERATOR.role_text("argument_specs: {}\n")


def test_the_roles_override_keys_are_a_guests_entrys_options() -> None:
    # vnuma_fleet_overrides takes what a vnuma_domain guests entry takes: without a key here the role
    # refuses it (replan, total_memory) although the module takes it.
    from ansible_collections.vnuma.libvirt.plugins.module_utils._run.domain import GUEST_OPTION_NAMES

    internals = yaml.safe_load((ROOT / "roles" / "vnuma_fleet" / "vars" / "main.yml").read_text(encoding="utf-8"))
    assert internals["__vnuma_fleet_guest_options"] == list(GUEST_OPTION_NAMES), FIX
    entry = internals["__vnuma_fleet_entry_options"]
    assert re.fullmatch(r"\{\{ __vnuma_fleet_spec_options \+ __vnuma_fleet_guest_options \}\}", entry)


def module_options() -> dict[str, Any]:
    from ansible_collections.vnuma.libvirt.plugins.modules.vnuma_domain import DOCUMENTATION

    options: dict[str, Any] = yaml.safe_load(DOCUMENTATION)["options"]
    return options


def module_arguments() -> dict[str, Any]:
    """The argspec vnuma_domain's main() hands to AnsibleModule (stopped there)."""
    from ansible_collections.vnuma.libvirt.plugins.modules import vnuma_domain

    class Stop(Exception):
        pass

    given: dict[str, Any] = {}

    def module(**kwargs: Any) -> None:
        given.update(kwargs)
        raise Stop

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vnuma_domain, "AnsibleModule", module)
        with pytest.raises(Stop):
            vnuma_domain.main()
    arguments: dict[str, Any] = given["argument_spec"]
    return arguments


@pytest.mark.parametrize("item", GUEST_OPTIONS, ids=lambda item: item.name)
def test_the_module_documents_the_guest_options_as_the_table(item: GuestOption) -> None:
    entry = module_options()[item.name]
    assert entry["description"] == list(item.description), f"{item.name}: {FIX}"
    assert entry["type"] == item.kind.ansible_type, f"{item.name}: {FIX}"
    assert entry.get("choices") == (list(item.choices) or None), f"{item.name}: {FIX}"
    assert entry.get("default") == item.default, f"{item.name}: {FIX}"
    assert entry.get("aliases") == (list(item.aliases) or None), f"{item.name}: {FIX}"


@pytest.mark.parametrize("item", GUEST_OPTIONS, ids=lambda item: item.name)
def test_the_module_takes_the_guest_options_as_it_documents_them(item: GuestOption) -> None:
    # What validate-modules holds equal (type, choices, default, aliases), here for the rows the table gives both.
    argument = module_arguments()[item.name]
    entry = module_options()[item.name]
    assert argument == item.argument
    assert {key: argument.get(key) for key in ("type", "choices", "default", "aliases")} == {
        key: entry.get(key) for key in ("type", "choices", "default", "aliases")
    }


def test_the_role_vars_need_a_pair_of_markers_per_list() -> None:
    # vars/main.yml holds two generated lists: a file with one pair would put both in one place.
    text = f"a:\n  {GENERATOR.BEGIN}\n  {GENERATOR.END}\n"
    with pytest.raises(SystemExit, match="expected 2"):
        GENERATOR.role_vars_text(text)
    lines = GENERATOR.role_vars_text(text + f"b:\n  {GENERATOR.BEGIN}\n  {GENERATOR.END}\n")
    assert yaml.safe_load(lines) == {
        "a": [item.name for item in SPEC_OPTIONS],
        "b": [item.name for item in GUEST_OPTIONS],
    }


def test_vnuma_expand_documents_every_attribute_and_child_of_vnuma() -> None:
    # Its description lists them by hand (prose, not generated): it had fallen behind by six attributes and a child.
    from ansible_collections.vnuma.libvirt.plugins.filter import vnuma_expand
    from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import vnuma

    description = " ".join(yaml.safe_load(vnuma_expand.DOCUMENTATION)["description"])
    missing = [f"C({name})" for name in vnuma._ATTRIBUTES if f"C({name})" not in description]
    missing += [f"C(<{name}" for name in vnuma._CHILDREN if f"C(<{name}" not in description]
    assert missing == [], f"vnuma_expand's description does not name {', '.join(missing)}"
