# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pure rules of PCI locality: ``device_cells`` read as docs/partitioning.md section 10 says, root bus slots.

The rest of the rules (bus numbers, the overrides' forms) are tested with the XML they make in
``_xml/test_pci_locality.py``.
"""

from __future__ import annotations

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.pci_locality import (
    DeviceCell,
    check_root_slots,
    parse_device_cells,
)

# Digits Python's str.isdigit() and int() take, or isdigit() takes and int() does not: an Arabic-Indic
# one, a superscript two, a fullwidth three, a Devanagari four, a circled one.
NON_ASCII_DIGITS = ("\u0661", "\u00b2", "\uff13", "\u096a", "\u2460", "1\u0661")


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS)
def test_a_cell_in_non_ascii_digits_is_not_a_cell_id(digits: str) -> None:
    for value in (f"vda={digits}", [{"target": "vda", "cell": digits}]):
        with pytest.raises(SpecError, match=r"device_cells gives device vda the cell .*, which is not a cell id"):
            parse_device_cells(value)


@pytest.mark.parametrize("text", ["vda=+1", "vda=1_0", "vda=0x1", "vda=1.0", "vda=", "vda= "])
def test_a_cell_that_is_not_plain_digits_is_not_a_cell_id(text: str) -> None:
    with pytest.raises(SpecError, match="which is not a cell id"):
        parse_device_cells(text)


def test_a_cell_in_ascii_digits_is_read_with_blanks_and_leading_zeros() -> None:
    expected = (DeviceCell("target", "vda", 1),)
    assert parse_device_cells("vda=1") == expected
    assert parse_device_cells("vda=01") == expected
    assert parse_device_cells([{"target": "vda", "cell": " 1 "}]) == expected
    assert parse_device_cells([{"target": "vda", "cell": 1}]) == expected
    # Blanks around "=" belong to the entry (it said "device_cells gives device vda the cell ''").
    assert parse_device_cells("vda = 1") == expected
    assert parse_device_cells("vda= 1, vdb =2") == (*expected, DeviceCell("target", "vdb", 2))


def test_a_cell_of_more_digits_than_any_number_is_refused_without_converting_it() -> None:
    with pytest.raises(SpecError, match="which is not a cell id"):
        parse_device_cells("vda=" + "9" * 5000)


# ------------------------------------------------------------------------------------------ root bus slots


@pytest.mark.parametrize(
    ("pcie", "unaddressed", "most"),
    [
        # Measured on libvirt 9.0 (tests/integration/test_vnuma_domain_pci_locality.py): q35 holds slot 0x1f
        # (ICH9), i440fx slot 1 (PIIX3) and, for a bus libvirt places itself, one more for a PCI bridge.
        (True, True, 30),
        (True, False, 30),
        (False, True, 29),
        (False, False, 30),
    ],
)
def test_root_slots_hold_as_many_expander_buses_as_libvirt_places(pcie: bool, unaddressed: bool, most: int) -> None:
    check_root_slots(most, (), pcie, unaddressed)
    with pytest.raises(SpecError, match="slots on the root bus"):
        check_root_slots(most + 1, (), pcie, unaddressed)


def test_root_slots_taken_by_other_devices_count_and_the_chipsets_twice_does_not() -> None:
    # Slots 2-5 held (root ports, a balloon), and 0x1f, the chipset's own, named by the SATA controller.
    taken = {2, 3, 4, 5, 0x1F}
    check_root_slots(26, taken, True, True)
    with pytest.raises(SpecError) as caught:
        check_root_slots(27, taken, True, True)
    assert str(caught.value) == (
        "the expander buses of 27 cells need 27 slots on the root bus (pcie-root), but only 26 are free "
        "(slots 1-31: 0x1f is the chipset's, 4 held by the guest's other devices and controllers); "
        "give fewer devices their own cell, or free root bus slots"
    )
    with pytest.raises(SpecError) as caught:
        check_root_slots(26, {2, 3, 4, 5}, False, True)
    assert str(caught.value) == (
        "the expander buses of 26 cells need 27 slots on the root bus (pci-root, one of them the slot libvirt "
        "holds back for a PCI bridge), but only 26 are free (slots 1-31: 0x01 is the chipset's, 4 held by the "
        "guest's other devices and controllers); give fewer devices their own cell, or free root bus slots"
    )
