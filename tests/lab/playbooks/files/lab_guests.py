# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab playbooks' guest chores on a lab hypervisor, in one Python process each.

Written there by tests/lab/playbooks/lab_guests_helper.yml, which the playbooks that read their guests
import first, and run as ``python3 <path> <command> <json>`` (the path is the fact ``lab_guests``).
Under nested TCG every process start costs a quarter to half a second: one ``virsh`` call per guest
and a ``sed`` per QEMU thread made a wave's definitions, reports and removals take tens of seconds; one
process with one libvirt connection takes about one.  Commands (the JSON argument in brackets):

- ``define [guests]``: remove what an interrupted run left of each guest, then define it without a
  layout, booting the touch payload, with a 1 MiB virtio disk when ``disk`` is true;
- ``report {"guests": [...], "iothreads": [...]}``: the host's CPUs per node and per core, the free 2 MiB
  pages per node, and per running guest its QEMU's numa_maps, every thread's CPU and memory affinity, and
  for the guests named in ``iothreads`` libvirt's I/O thread pins, in the format of
  tests/lab/lab_checks.py:parse_wave_report (sections opened by '@@' lines);
- ``pools <label>``: the free 2 MiB pages per node, in a section '@@ hugepages-<label>';
- ``remove [names]``: destroy and undefine the guests and remove their files.
"""

from __future__ import annotations

import glob
import json
import os
import sys

import libvirt

URI = "qemu:///system"
IMAGES = "/var/lib/libvirt/images"
LOGS = "/var/log/libvirt/qemu"
_DISK = """
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{image}'/>
      <target dev='vda' bus='virtio'/>
      <readonly/>
    </disk>"""
_DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{vcpus}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kernel}</kernel></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='file'><source path='{log}'/><target port='0'/></serial>
    <memballoon model='none'/>{disk}
  </devices>
</domain>
"""


def _cpuset(cpus: list[int]) -> str:
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _nodes() -> list[str]:
    return sorted(glob.glob("/sys/devices/system/node/node[0-9]*"), key=lambda path: int(path.rsplit("node", 1)[1]))


def _remove(conn: libvirt.virConnect, name: str) -> None:
    try:
        domain = conn.lookupByName(name)
    except libvirt.libvirtError:
        domain = None
    if domain is not None:
        if domain.isActive():
            domain.destroy()
        domain.undefine()
    for path in (f"{LOGS}/{name}.serial.log", f"{IMAGES}/{name}.img", f"/tmp/{name}.xml"):
        if os.path.exists(path):
            os.unlink(path)


def define(conn: libvirt.virConnect, guests: list[dict[str, object]]) -> None:
    for guest in guests:
        name = str(guest["name"])
        _remove(conn, name)
        disk = ""
        if guest.get("disk"):
            image = f"{IMAGES}/{name}.img"
            with open(image, "wb") as handle:
                handle.truncate(1024 * 1024)
            disk = _DISK.format(image=image)
        xml = _DOMAIN.format(
            name=name,
            memory_mib=guest["memory_mib"],
            vcpus=guest["vcpus"],
            kernel=guest["kernel"],
            log=f"{LOGS}/{name}.serial.log",
            disk=disk,
        )
        conn.defineXML(xml)


def pools(label: str) -> None:
    print(f"@@ hugepages-{label}")
    for node in _nodes():
        free = _read(f"{node}/hugepages/hugepages-2048kB/free_hugepages").strip()
        print(os.path.basename(node), free)


def _thread_row(task: str) -> str | None:
    """'<tid>|<comm>|<cpus>|<mems>' of one QEMU thread, or None when it ended after the listing: QEMU's
    thread-pool workers come and go while it runs, and one that is gone has no affinity left to check."""
    try:
        status = dict(line.split(":", 1) for line in _read(f"{task}/status").splitlines() if ":" in line)
        comm = _read(f"{task}/comm").strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    cpus, mems = status["Cpus_allowed_list"].strip(), status["Mems_allowed_list"].strip()
    return f"{os.path.basename(task)}|{comm}|{cpus}|{mems}"


def report(conn: libvirt.virConnect, guests: list[str], iothreads: list[str]) -> None:
    print("@@ node-cpus")
    for node in _nodes():
        print(os.path.basename(node), _read(f"{node}/cpulist").strip())
    print("@@ siblings")
    for cpu in sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*"), key=lambda path: int(path.rsplit("cpu", 1)[1])):
        print(os.path.basename(cpu), _read(f"{cpu}/topology/thread_siblings_list").strip())
    for name in guests:
        pid = _read(f"/run/libvirt/qemu/{name}.pid").strip()
        print(f"@@ guest {name} {pid}")
        print("@@ numa_maps")
        sys.stdout.write(_read(f"/proc/{pid}/numa_maps"))
        print("@@ threads")
        for task in sorted(glob.glob(f"/proc/{pid}/task/*"), key=lambda path: int(os.path.basename(path))):
            row = _thread_row(task)
            if row is not None:
                print(row)
        if name in iothreads:
            # The rows of `virsh iothreadinfo`: ' <id>   <cpus>'.
            print("@@ iothreadinfo")
            for iothread, cpumap in conn.lookupByName(name).ioThreadInfo(0):
                print(f" {iothread}   {_cpuset([cpu for cpu, pinned in enumerate(cpumap) if pinned])}")


def main(argv: list[str]) -> None:
    command = argv[1]
    if command == "pools":
        pools(argv[2])
        return
    argument = json.loads(argv[2])
    conn = libvirt.open(URI)
    try:
        if command == "define":
            define(conn, argument)
        elif command == "report":
            pools("after")
            report(conn, argument["guests"], argument.get("iothreads", []))
        elif command == "remove":
            for name in argument:
                _remove(conn, name)
        else:
            raise SystemExit(f"lab_guests.py: unknown command {command}")
    finally:
        conn.close()


if __name__ == "__main__":
    main(sys.argv)
