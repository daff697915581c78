#!/usr/bin/env bash
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Builds the tiny boot image the integration tests start under libvirt (direct kernel boot, no disk):
#   OUTDIR/vmlinuz      Debian's cloud kernel (NUMA, ACPI NUMA, serial console, CPU and memory hotplug built in)
#   OUTDIR/initrd.img   a gzip'd newc initramfs: a static busybox, the virtio-mem modules, and an /init
#                       that reports, on the serial console, the NUMA topology the guest kernel sees
#   OUTDIR/image.txt    the package versions it was made from
# Both packages are fetched with `apt-get download` (nothing is installed); building takes seconds.  The
# build is skipped when OUTDIR holds an image made by this very version of the script (OUTDIR/.stamp).
#
# Usage: scripts/build-guest-image.sh OUTDIR
#   GUEST_KERNEL_PACKAGE=linux-image-...   a kernel package to use instead of the newest 6.1 cloud kernel
#
# The report, between marker lines, one `key=value` record per line (N counts reports from 1):
#   VNUMA-REPORT-BEGIN seq=N uptime=SECONDS
#   system online=CPULIST present=CPULIST possible=CPULIST
#   node id=ID cpulist=CPULIST mem_kib=KIB present_kib=KIB distance=D0,D1,...
#                                    (one per node: its MemTotal, and its present memory from /proc/zoneinfo)
#   access node=ID initiators=NODELIST read_latency=NS write_latency=NS read_bandwidth=MIBS write_bandwidth=MIBS
#                                    (one per node with HMAT: its access0 initiators and figures, - when absent)
#   cache node=ID level=L size=BYTES line=BYTES indexing=I write_policy=W     (one per memory-side cache)
#   cpu id=ID package=P die=D core=C node=NODE l3=CPULIST          (one per online CPU; l3: the CPUs sharing
#                                    its level 3 cache, shared_cpu_list, - when it has none)
#   dmesg TEXT                       (one per kernel message saying a CPU's sibling is on another node:
#                                    "CPU #1's llc-sibling CPU #2 is not on the same node!")
#   pci address=DDDD:BB:SS.F vendor=0xVVVV device=0xDDDD class=0xCCCCCC node=NODE
#                                    (one per PCI function; node -1 when the kernel gives it none)
#   VNUMA-REPORT-END seq=N
# Kernel command line options read by /init:
#   vnuma.wait=1        stay up: every 0.5 s, online any offline CPU and memory block (hot-added ones),
#                       and print a new report whenever it differs from the last one
#   vnuma.timeout=SECS  with vnuma.wait=1, power off after SECS seconds (default 120)
# Without vnuma.wait=1 the guest powers off right after its first report.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
outdir=$1
script=$(readlink -f "${BASH_SOURCE[0]}")
version=$(sha256sum "$script" | cut -c1-16)

say() {
    echo "build-guest-image: $*"
}

die() {
    echo "build-guest-image: $*" >&2
    exit 1
}

if [[ -f $outdir/vmlinuz && -f $outdir/initrd.img && -f $outdir/.stamp && $(<"$outdir/.stamp") == "$version" ]]; then
    say "$outdir is up to date ($(head -n 1 "$outdir/image.txt" 2>/dev/null || echo "version $version"))"
    exit 0
fi

for tool in apt-get apt-cache dpkg-deb tar gzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (a Debian or Ubuntu host is needed)"
done

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $*"
    fi
}

newest_kernel() {
    apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | awk '{print $1}' | sort -V | tail -n 1
}

kernel_package=${GUEST_KERNEL_PACKAGE:-}
if [[ -z $kernel_package ]]; then
    kernel_package=$(newest_kernel)
    if [[ -z $kernel_package ]]; then
        say "no linux-image-6.1.0-*-cloud-amd64 in the package lists: apt-get update"
        as_root apt-get update -qq
        kernel_package=$(newest_kernel)
    fi
    [[ -n $kernel_package ]] || die "no linux-image-6.1.0-*-cloud-amd64 package available"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debs" "$tmp/kernel" "$tmp/busybox" "$tmp/root"
# apt drops to its sandbox user _apt for downloads: let it write there (else it warns and works as root).
if [[ $(id -u) -eq 0 ]] && getent passwd _apt >/dev/null; then
    chmod 0755 "$tmp"
    chown _apt "$tmp/debs"
fi
say "apt-get download $kernel_package busybox-static"
(cd "$tmp/debs" && apt-get download -qq "$kernel_package" busybox-static)
kernel_deb=$(ls "$tmp"/debs/linux-image-*.deb)
busybox_deb=$(ls "$tmp"/debs/busybox-static_*.deb)

# The kernel image, and the modules virtio-mem needs (the cloud kernel builds them as modules: VIRTIO,
# VIRTIO_PCI, VIRTIO_MEM =m).  Everything else the tests use is built in.  Modules load only into the
# kernel of the very same package build, hence from this package.  /init loads them in this order.
virtio_modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mem)
module_paths=()
for module in "${virtio_modules[@]}"; do
    module_paths+=("./lib/modules/*/kernel/drivers/virtio/$module.ko")
done
dpkg-deb --fsys-tarfile "$kernel_deb" | tar -x -C "$tmp/kernel" --wildcards './boot/vmlinuz-*' "${module_paths[@]}"
dpkg-deb -x "$busybox_deb" "$tmp/busybox"
busybox="$tmp/busybox/bin/busybox"
[[ -x $busybox ]] || die "no bin/busybox in $busybox_deb"

root="$tmp/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
for module in "${virtio_modules[@]}"; do
    found=$(ls "$tmp"/kernel/lib/modules/*/kernel/drivers/virtio/"$module.ko" 2>/dev/null) ||
        die "no $module.ko in $kernel_deb"
    cp "$found" "$root/lib/modules/"
done
echo "${virtio_modules[*]}" >"$root/lib/modules/order"
while read -r applet; do
    if [[ $applet != */* || -e $root/$applet || -L $root/$applet ]]; then
        continue
    fi
    ln -s /bin/busybox "$root/$applet"
done < <("$busybox" --list-full)

cat >"$root/init" <<'INIT'
#!/bin/sh
# Reports the NUMA topology this kernel sees on the serial console (see scripts/build-guest-image.sh).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
if [ -c /dev/console ]; then
    exec </dev/console >/dev/console 2>&1
fi
# Only alerts from the kernel from now on: its messages would otherwise cut through the report's lines.
echo "1 4 1 7" >/proc/sys/kernel/printk
# The virtio PCI transport and virtio-mem, in dependency order: a virtio-mem device's memory is plugged
# only once its driver is bound.  Only when the guest has a virtio-mem device (PCI 1af4:1058; QEMU adds
# none later: a cell's device is in the definition the guest boots with): the modules serve nothing else,
# and under nested TCG each insmod costs seconds.
virtio_mem=
for p in /sys/bus/pci/devices/*; do
    [ -f "$p/vendor" ] || continue
    read -r vendor <"$p/vendor"
    read -r device <"$p/device"
    [ "$vendor:$device" = 0x1af4:0x1058 ] && virtio_mem=1
done
if [ -n "$virtio_mem" ]; then
    read -r modules </lib/modules/order
    for module in $modules; do
        insmod "/lib/modules/$module.ko" || echo "VNUMA-INIT insmod $module failed"
    done
fi

wait=0
timeout=120
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case $arg in
    vnuma.wait=*) wait=${arg#vnuma.wait=} ;;
    vnuma.timeout=*) timeout=${arg#vnuma.timeout=} ;;
    esac
done

# Whole seconds of uptime in $up_s (no command substitution: each is a fork).
uptime_s() {
    read -r up_s _ </proc/uptime
    up_s=${up_s%%.*}
}

# Hot-added CPUs stay offline until someone onlines them; memory blocks too without memhp_default_state=online.
online_all() {
    for f in /sys/devices/system/cpu/cpu[0-9]*/online; do
        [ -f "$f" ] || continue
        read -r state <"$f"
        [ "$state" = 1 ] || echo 1 >"$f" 2>/dev/null
    done
    for f in /sys/devices/system/memory/memory[0-9]*/state; do
        [ -f "$f" ] || continue
        read -r state <"$f"
        [ "$state" = online ] || echo online >"$f" 2>/dev/null
    done
}

# A sysfs value in $v, or - when the kernel has no such file.  Read by the shell itself: a process start
# costs a tenth of a second and more under nested TCG, and a report reads a few hundred values.  Not for
# binary attributes (a node's cpulist in 6.1), which the shell's `read`, one byte at a time, gets nothing of.
get() {
    v=-
    if [ -f "$1" ]; then
        v=
        read -r v <"$1"
    fi
}

report() {
    read -r online </sys/devices/system/cpu/online
    read -r present </sys/devices/system/cpu/present
    read -r possible </sys/devices/system/cpu/possible
    echo "system online=$online present=$present possible=$possible"
    # Present pages of each node's zones, in KiB: its memory before the kernel's boot-time reservations.
    presents=$(awk '/^Node/ { n = $2; sub(",", "", n) } $1 == "present" { p[n] += $2 }
        END { for (n in p) print n, p[n] * 4 }' /proc/zoneinfo)
    for d in /sys/devices/system/node/node[0-9]*; do
        [ -d "$d" ] || continue
        # cpulist is a binary sysfs attribute in 6.1: the shell's `read` (one byte at a time) gets nothing.
        cpulist=$(cat "$d/cpulist")
        read -r distance <"$d/distance"
        id=${d##*/node}
        # "Node <id> MemTotal: <kB> kB", the file's first line.
        mem=
        while read -r _node _id key kib _unit; do
            if [ "$key" = MemTotal: ]; then
                mem=$kib
                break
            fi
        done <"$d/meminfo"
        # "<node> <KiB>" pairs, split into words on purpose.
        set -- $presents
        node_present=0
        while [ $# -ge 2 ]; do
            [ "$1" = "$id" ] && node_present=$2
            shift 2
        done
        distances=
        for to in $distance; do
            distances=$distances${distances:+,}$to
        done
        echo "node id=$id cpulist=$cpulist mem_kib=$mem present_kib=$node_present distance=$distances"
        # HMAT as Linux applied it: the node's best initiators and the figures from them (drivers/base/node.c).
        access=$d/access0/initiators
        if [ -d "$access" ]; then
            initiators=
            for n in "$access"/node[0-9]*; do
                [ -e "$n" ] && initiators=$initiators${initiators:+,}${n##*/node}
            done
            get "$access/read_latency"; read_latency=$v
            get "$access/write_latency"; write_latency=$v
            get "$access/read_bandwidth"; read_bandwidth=$v
            get "$access/write_bandwidth"; write_bandwidth=$v
            echo "access node=$id initiators=${initiators:--} read_latency=$read_latency" \
                "write_latency=$write_latency read_bandwidth=$read_bandwidth write_bandwidth=$write_bandwidth"
        fi
        for c in "$d"/memory_side_cache/index[0-9]*; do
            [ -d "$c" ] || continue
            get "$c/size"; size=$v
            get "$c/line_size"; line=$v
            get "$c/indexing"; indexing=$v
            get "$c/write_policy"; write_policy=$v
            echo "cache node=$id level=${c##*/index} size=$size line=$line indexing=$indexing write_policy=$write_policy"
        done
    done
    for c in /sys/devices/system/cpu/cpu[0-9]*; do
        state=1
        [ -f "$c/online" ] && read -r state <"$c/online"
        [ "$state" = 1 ] || continue
        read -r package <"$c/topology/physical_package_id"
        read -r die <"$c/topology/die_id"
        read -r core <"$c/topology/core_id"
        node=
        for n in "$c"/node[0-9]*; do
            [ -e "$n" ] && node=${n##*/node}
        done
        # The CPUs sharing its L3: the index whose level is 3 (index3 on x86, but the numbering is the kernel's).
        l3=-
        for i in "$c"/cache/index[0-9]*; do
            get "$i/level"
            if [ "$v" = 3 ]; then
                get "$i/shared_cpu_list"
                l3=$v
            fi
        done
        echo "cpu id=${c##*/cpu} package=$package die=$die core=$core node=$node l3=$l3"
    done
    # The kernel's warnings about siblings in another node, read by the loop below.
    [ -z "$warnings" ] || echo "$warnings"
    # Every PCI function and the node the kernel gives it (-1: none; from the ACPI _PXM of its host bridge,
    # which QEMU's pxb writes from its numa_node).  No driver is needed for these files.
    for p in /sys/bus/pci/devices/*; do
        [ -e "$p/numa_node" ] || continue
        get "$p/vendor"; vendor=$v
        get "$p/device"; device=$v
        get "$p/class"; class=$v
        get "$p/numa_node"; pci_node=$v
        echo "pci address=${p##*/} vendor=$vendor device=$device class=$class node=$pci_node"
    done
}

echo "VNUMA-INIT wait=$wait timeout=$timeout"
uptime_s
start=$up_s
seq=0
last=
warned_for=
while :; do
    online_all
    # Linux warns once when a CPU's SMT, L2 or LLC sibling lies in another node (topology_sane()), as the
    # CPU comes online: dmesg is read again only when the online CPUs changed (three processes a round).
    read -r online </sys/devices/system/cpu/online
    if [ "$online" != "$warned_for" ]; then
        warnings=$(dmesg | grep -e 'sibling CPU' -e 'not on the same node' | sed 's/^\[[^]]*\] *//; s/^/dmesg /')
        warned_for=$online
    fi
    body=$(report)
    if [ "$body" != "$last" ]; then
        seq=$((seq + 1))
        read -r up _ </proc/uptime
        printf 'VNUMA-REPORT-BEGIN seq=%s uptime=%s\n%s\nVNUMA-REPORT-END seq=%s\n' "$seq" "$up" "$body" "$seq"
        last=$body
    fi
    [ "$wait" = 1 ] || break
    uptime_s
    if [ $((up_s - start)) -ge "$timeout" ]; then
        echo "VNUMA-TIMEOUT after ${timeout}s"
        break
    fi
    sleep 0.5
done
echo "VNUMA-POWEROFF"
poweroff -f
while :; do sleep 60; done
INIT
chmod 0755 "$root/init"

mkdir -p "$outdir"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -9n >"$outdir/initrd.img.tmp"
cp "$tmp"/kernel/boot/vmlinuz-* "$outdir/vmlinuz.tmp"
mv -f "$outdir/initrd.img.tmp" "$outdir/initrd.img"
mv -f "$outdir/vmlinuz.tmp" "$outdir/vmlinuz"
{
    dpkg-deb -f "$kernel_deb" Package Version | paste -sd' ' -
    dpkg-deb -f "$busybox_deb" Package Version | paste -sd' ' -
} | sed 's/Package: //; s/ Version: / /' >"$outdir/image.txt"
echo "$version" >"$outdir/.stamp"
say "built $outdir/vmlinuz and $outdir/initrd.img ($(paste -sd, "$outdir/image.txt"))"
