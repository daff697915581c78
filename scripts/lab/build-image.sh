#!/usr/bin/env bash
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Builds the lab hypervisor's image: a Debian 12 root filesystem made with mmdebstrap from this machine's
# apt sources, with its own libvirtd (started at boot by systemd), QEMU, python3-libvirt and lxml, packed
# as ext4.  The lab boots it read-only (QEMU snapshot=on), so one image serves every lab hypervisor.
#   OUTDIR/rootfs.ext4   the root filesystem
#   OUTDIR/vmlinuz       its kernel (Debian's cloud kernel), for QEMU's direct kernel boot; no initrd: the
#                        root disk is NVMe, which that kernel has built in
#   OUTDIR/id_ed25519    the SSH key that logs in as root (generated once; its .pub is in the image)
#   OUTDIR/image.txt     the package versions it was made from
# The files under scripts/lab/rootfs/ are copied over the tree; with the masked units below they cut the
# boot down to what the lab uses (docs/lab.md, "Boot time").
# Rebuilt only when this script, its package list or those files change, or the key is new (OUTDIR/.stamp).
#
# Usage: scripts/lab/build-image.sh OUTDIR
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
outdir=$(readlink -m "$1")
script=$(readlink -f "${BASH_SOURCE[0]}")
overlay=$(dirname "$script")/rootfs

# What the lab hypervisor runs.  libvirt-daemon-system brings the systemd units and the libvirt-qemu
# user; recommends stay out (dnsmasq, apparmor, ...): the lab needs no guest network.  The kernel pulls in
# initramfs-tools, but no initrd is made (see the essential hook below).
PACKAGES=(
    systemd systemd-sysv udev dbus linux-image-cloud-amd64
    libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
    numactl python3 python3-libvirt python3-lxml openssh-server procps iproute2
)
# Units the lab does not need, masked so that they never start: timers, gettys, the network manager and
# its wait (lab-network.service sets the one address), utmp, logind (sshd runs without PAM), the journal
# flush (the journal stays in memory), first-boot and update jobs (the image never changes), kernel
# modules and file systems nothing uses, and libvirt-guests (nothing to save at lab-down).  Kept: udev
# (it loads virtio_net), dbus and machined (libvirt registers its guests there, as on a real host),
# dev-hugepages.mount (hugetlbfs for hugepage-backed guests).
MASKED=(
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer
    logrotate.timer man-db.timer systemd-tmpfiles-clean.timer
    getty@tty1.service serial-getty@ttyS0.service
    systemd-networkd.service systemd-networkd.socket systemd-networkd-wait-online.service
    systemd-update-utmp.service systemd-update-utmp-runlevel.service systemd-logind.service
    systemd-journal-flush.service systemd-journal-catalog-update.service systemd-update-done.service
    ldconfig.service systemd-hwdb-update.service systemd-sysusers.service systemd-machine-id-commit.service
    systemd-firstboot.service first-boot-complete.target systemd-random-seed.service systemd-pstore.service
    systemd-fsck-root.service systemd-remount-fs.service e2scrub_reap.service
    systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount
    sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount
    dev-mqueue.mount modprobe@configfs.service modprobe@dm_mod.service modprobe@drm.service
    modprobe@efi_pstore.service modprobe@fuse.service modprobe@loop.service
    libvirt-guests.service
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

version=$(
    sha256sum "$script" | cut -c1-64
    (cd "$overlay" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    echo "${PACKAGES[*]} ${MASKED[*]} $SUITE $SIZE"
    cat "$key.pub"
)
version=$(sha256sum <<<"$version" | cut -c1-16)
if [[ -f $outdir/rootfs.ext4 && -f $outdir/vmlinuz && -f $outdir/.stamp &&
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

include=$(IFS=,; echo "${PACKAGES[*]}")
say "mmdebstrap $SUITE (${#PACKAGES[@]} packages and their dependencies)"
# The hooks run on the host with the tree at "$1".  They are single-quoted on purpose: mmdebstrap's shell
# expands "$1", not this one.
# The essential hooks run before the kernel is installed: update-initramfs is diverted to a no-op, so the
# kernel's install makes no initrd (the lab boots without one, and making it took many seconds).
# dpkg does not fsync every file it unpacks (force-unsafe-io): a half-written tree is thrown away anyway.
# Documentation, manual pages and translations are not unpacked: nothing in the lab reads them.  Nor is
# qemu-system-i386: libvirtd probes every QEMU binary it finds when asked for its capabilities, and each
# probe takes many seconds under TCG; the lab's guests are all x86_64.
# shellcheck disable=SC2016
mmdebstrap --quiet --mode=root --variant=apt --format=directory \
    --aptopt='APT::Install-Recommends "false"' \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='force-unsafe-io' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/bin/qemu-system-i386' \
    --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.real --add /usr/sbin/update-initramfs' \
    --essential-hook='printf "#!/bin/sh\n# The lab boots without an initrd (scripts/lab/build-image.sh).\nexit 0\n" > "$1/usr/sbin/update-initramfs"' \
    --essential-hook='chmod 755 "$1/usr/sbin/update-initramfs"' \
    --include="$include" \
    --customize-hook="cp -r --preserve=mode '$overlay/.' \"\$1/\"" \
    --customize-hook='echo vnuma-lab > "$1/etc/hostname"' \
    --customize-hook='mkdir -p -m 700 "$1/root/.ssh"' \
    --customize-hook="cp '$key.pub' \"\$1/root/.ssh/authorized_keys\"" \
    --customize-hook='chmod 600 "$1/root/.ssh/authorized_keys"' \
    --customize-hook='chroot "$1" systemctl --quiet set-default multi-user.target' \
    --customize-hook='chroot "$1" systemctl --quiet enable ssh.service libvirtd.service lab-network.service lab-ready.service' \
    --customize-hook="chroot \"\$1\" systemctl --quiet mask ${MASKED[*]}" \
    --customize-hook='rm -f "$1/etc/libvirt/qemu/networks/autostart/default.xml"' \
    --customize-hook='chroot "$1" dpkg-query -W -f "\${Package} \${Version}\n" > "$1/root/packages.txt"' \
    "$SUITE" "$root" "$sources"

say "mmdebstrap done in $((SECONDS - start)) s"
kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
[[ -n $kernel ]] || die "no kernel under $root/boot"
{
    echo "vnuma lab image $version, $(basename "$kernel"), built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    cat "$root/root/packages.txt"
} >"$work/image.txt"
cp "$kernel" "$work/vmlinuz"
# A machine id made now, not at every boot: an empty one makes every boot a first boot (a machine id
# generated, presets applied to every unit), which cost seconds.  The lab hypervisors share it; nothing
# tells them apart by it.
tr -d - </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*_Packages
mke2fs -q -t ext4 -L vnuma-lab -d "$root" "$work/rootfs.ext4" "$SIZE"
for name in rootfs.ext4 vmlinuz image.txt; do
    mv -f "$work/$name" "$outdir/$name"
done
rm -f "$outdir/initrd.img"
echo "$version" >"$outdir/.stamp"
say "built $outdir/rootfs.ext4 in $((SECONDS - start)) s ($(du -sh --apparent-size "$outdir/rootfs.ext4" | cut -f1) apparent, $(du -sh "$outdir/rootfs.ext4" | cut -f1) on disk)"
