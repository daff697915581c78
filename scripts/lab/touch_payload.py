# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A tiny multiboot kernel that writes one word in every page of the guest's memory, says OK on COM1, halts.

A guest without an OS barely touches its RAM, so its pages would not show up in the hypervisor's
numa_maps; this payload makes QEMU fault in all of it, without preallocation (which libvirt 9.0 /
QEMU 7.2 refuse for a cell bound to a CPU-less node).  Loaded with libvirt's ``<os><kernel>``.

    python3 scripts/lab/touch_payload.py OUT.bin
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

MAGIC = 0x1BADB002
# Bit 16: the load addresses are in the header (a flat binary, no ELF needed).
FLAGS = 0x00010000
LOAD_ADDRESS = 0x100000
HEADER_SIZE = 32
# The word printed on COM1 once every page is written.
DONE = b"OK\n"

# 32-bit protected mode, as multiboot enters it: EBX points to the multiboot information.
CODE = (
    bytes.fromhex(
        "8b4b08"  # mov ecx, [ebx+8]        mem_upper: KiB above 1 MiB
        "c1e10a"  # shl ecx, 10             in bytes
        "81c100001000"  # add ecx, 0x100000  the end of memory
        "bf00002000"  # mov edi, 0x200000   from 2 MiB, past this code
        "893f"  # loop: mov [edi], edi      write the page
        "81c700100000"  # add edi, 4096
        "39cf"  # cmp edi, ecx
        "72f4"  # jb loop
        "66baf803"  # mov dx, 0x3f8         COM1
    )
    + b"".join(bytes([0xB0, char, 0xEE]) for char in DONE)
    + bytes.fromhex(  # mov al, char; out dx, al
        "faf4ebfc"  # cli; hlt; jmp $-2
    )
)


def payload() -> bytes:
    checksum = -(MAGIC + FLAGS) & 0xFFFFFFFF
    entry = LOAD_ADDRESS + HEADER_SIZE
    header = struct.pack("<8I", MAGIC, FLAGS, checksum, LOAD_ADDRESS, LOAD_ADDRESS, 0, 0, entry)
    return header + CODE


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: touch_payload.py OUT.bin", file=sys.stderr)
        return 2
    Path(argv[0]).write_bytes(payload())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
