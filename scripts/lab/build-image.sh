#!/usr/bin/env bash
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Builds the lab hypervisor's image: a Debian 12 root filesystem made with mmdebstrap from this machine's
# apt sources, with its own libvirtd (started at boot by systemd), QEMU, python3-libvirt and lxml, packed
# as ext4.  The lab boots it read-only (QEMU snapshot=on), so one image serves every lab hypervisor.
#   OUTDIR/rootfs.ext4   the root filesystem
#   OUTDIR/vmlinuz       its kernel (Debian's cloud kernel) and initrd, for QEMU's direct kernel boot
#   OUTDIR/initrd.img
#   OUTDIR/id_ed25519    the SSH key that logs in as root (generated once; its .pub is in the image)
#   OUTDIR/image.txt     the package versions it was made from
# Rebuilt only when this script or its package list changes, or the key is new (OUTDIR/.stamp).
#
# Usage: scripts/lab/build-image.sh OUTDIR
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
outdir=$(readlink -m "$1")
script=$(readlink -f "${BASH_SOURCE[0]}")

# What the lab hypervisor runs.  libvirt-daemon-system brings the systemd units and the libvirt-qemu
# user; recommends stay out (dnsmasq, apparmor, ...): the lab needs no guest network.
PACKAGES=(
    systemd systemd-sysv udev dbus linux-image-cloud-amd64 initramfs-tools
    libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
    numactl python3 python3-libvirt python3-lxml openssh-server procps iproute2
)
SUITE=bookworm
SIZE=3G

say() {
    echo "build-image: $*"
}

die() {
    echo "build-image: $*" >&2
    exit 1
}

mkdir -p "$outdir"
key=$outdir/id_ed25519
if [[ ! -f $key ]]; then
    ssh-keygen -q -t ed25519 -N '' -C vnuma-lab -f "$key"
fi

version=$( (sha256sum "$script" | cut -c1-64; echo "${PACKAGES[*]} $SUITE $SIZE"; cat "$key.pub") | sha256sum | cut -c1-16)
if [[ -f $outdir/rootfs.ext4 && -f $outdir/vmlinuz && -f $outdir/initrd.img && -f $outdir/.stamp &&
      $(<"$outdir/.stamp") == "$version" ]]; then
    say "$outdir is up to date (version $version)"
    exit 0
fi

for tool in mmdebstrap mke2fs ssh-keygen; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run scripts/install-system-deps.sh lab"
done
[[ $(id -u) -eq 0 ]] || die "mmdebstrap needs root here (no unprivileged user namespaces assumed)"

sources=/etc/apt/sources.list.d/debian.sources
if [[ ! -f $sources ]]; then
    sources=/etc/apt/sources.list
fi
[[ -f $sources ]] || die "no apt sources found (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)"

work=$(mktemp -d "$outdir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
start=$SECONDS

# The customize hooks run after every package is installed, on the host with the tree at "$1".
include=$(IFS=,; echo "${PACKAGES[*]}")
say "mmdebstrap $SUITE (${#PACKAGES[@]} packages and their dependencies)"
# The hooks are single-quoted on purpose: mmdebstrap's shell expands "$1" (the tree), not this one.
# Masked units only slow the boot of a machine that is thrown away at lab-down (timers, waiting for the
# network, libvirt-guests saving guests at shutdown).
# shellcheck disable=SC2016
mmdebstrap --quiet --mode=root --variant=apt --format=directory \
    --aptopt='APT::Install-Recommends "false"' \
    --include="$include" \
    --customize-hook='echo vnuma-lab > "$1/etc/hostname"' \
    --customize-hook='echo "/dev/vda / ext4 rw,relatime 0 1" > "$1/etc/fstab"' \
    --customize-hook='mkdir -p -m 700 "$1/root/.ssh"' \
    --customize-hook="cp '$key.pub' \"\$1/root/.ssh/authorized_keys\"" \
    --customize-hook='chmod 600 "$1/root/.ssh/authorized_keys"' \
    --customize-hook='printf "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n" > "$1/etc/ssh/sshd_config.d/lab.conf"' \
    --customize-hook='mkdir -p "$1/etc/systemd/network"' \
    --customize-hook='printf "[Match]\nName=en* eth*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n" > "$1/etc/systemd/network/10-lab.network"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd.service ssh.service libvirtd.service' \
    --customize-hook='chroot "$1" systemctl mask systemd-networkd-wait-online.service libvirt-guests.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer' \
    --customize-hook='rm -f "$1/etc/libvirt/qemu/networks/autostart/default.xml"' \
    --customize-hook='chroot "$1" dpkg-query -W -f "\${Package} \${Version}\n" > "$1/root/packages.txt"' \
    "$SUITE" "$root" "$sources"

say "mmdebstrap done in $((SECONDS - start)) s"
kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n 1)
[[ -n $kernel && -n $initrd ]] || die "no kernel or initrd under $root/boot"
{
    echo "vnuma lab image $version, $(basename "$kernel"), built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    cat "$root/root/packages.txt"
} >"$work/image.txt"
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*_Packages
mke2fs -q -t ext4 -L vnuma-lab -d "$root" "$work/rootfs.ext4" "$SIZE"
for name in rootfs.ext4 vmlinuz initrd.img image.txt; do
    mv -f "$work/$name" "$outdir/$name"
done
echo "$version" >"$outdir/.stamp"
say "built $outdir/rootfs.ext4 in $((SECONDS - start)) s ($(du -sh --apparent-size "$outdir/rootfs.ext4" | cut -f1) apparent, $(du -sh "$outdir/rootfs.ext4" | cut -f1) on disk)"
