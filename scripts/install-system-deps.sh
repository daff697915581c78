#!/usr/bin/env bash
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Installs the Debian packages the build and the tests need, and only those that are missing.
# A no-op (no apt-get call at all) when everything is already installed.
#
# Usage: scripts/install-system-deps.sh [GROUP...]    (default: every group in DEFAULT_GROUPS)
#   build        compile libvirt-python from source and use the client-side test driver
#                (test:///default lives in libvirt0 itself: no daemon is needed)
#   sanity       tools ansible-test sanity uses when present (shellcheck for the shell scripts)
#   integration  a real libvirtd with the QEMU driver (started by scripts/libvirtd.sh) and QEMU; the
#                guest image (scripts/build-guest-image.sh) is made from downloaded packages
#   browser      a headless browser (Debian's chromium build without a window) and a monospace font,
#                for the HTML report checks (tests/browser)
#   lab          the multi-node lab (scripts/lab/): mmdebstrap builds the lab hypervisor's image, QEMU
#                boots it, ssh reaches it
#   bench        valgrind, whose callgrind counts the instructions the expansion benchmark is judged by
#
# Each make target asks for the groups it uses, so that `make venv`, `make demo` and the other targets
# that need no daemon install no QEMU and no libvirtd: venv (and every target built on it) build;
# sanity also sanity; libvirtd, integration, molecule and bench also integration; bench also bench; browser
# also browser.
# `make system-deps` (the first stage of `make test`) installs every group.
#
# To add a group: add an entry to PACKAGES below, its name to DEFAULT_GROUPS, and a call with it to the
# make targets that use it.
set -euo pipefail

# Debian packages per group (whitespace separated, comments not allowed inside the strings).
declare -A PACKAGES=(
    # libvirt0 is the runtime library and holds the test:///default driver; libvirt-dev, pkg-config and
    # gcc build libvirt-python.  python3-dev and python3-venv serve when the venv is made from Debian's
    # own python3.11 (a pyenv Python brings its headers and venv along).
    [build]="libvirt0 libvirt-dev pkg-config gcc make git python3-dev python3-venv"
    # ansible-test sanity skips its shellcheck test when shellcheck is missing.
    [sanity]="shellcheck"
    # The monolithic libvirtd (Debian 12 has no virtqemud) with its QEMU driver, virsh, and QEMU itself
    # (TCG guests).  libvirt-daemon-system is left out on purpose: it pulls in ~250 packages (systemd
    # units, polkit, firewall, network helpers) that scripts/libvirtd.sh does not need.  The guest's
    # kernel and busybox (which also packs the initramfs) are downloaded with apt-get download, not
    # installed.
    [integration]="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86"
    # The lab's image is a Debian root filesystem (mmdebstrap, from the machine's apt sources) packed
    # as ext4 (e2fsprogs); QEMU runs it (TCG); ssh and ssh-keygen reach it.
    [lab]="mmdebstrap e2fsprogs qemu-system-x86 openssh-client"
    # chromium-headless-shell is chromium's build without a window (no X server, no window toolkit); the
    # reports' SVG diagrams size their text for DejaVu Sans Mono.
    [browser]="chromium-headless-shell fonts-dejavu-core"
    # The expansion benchmark's verdict counts instructions with valgrind's callgrind (docs/benchmarks.md).
    [bench]="valgrind"
)

DEFAULT_GROUPS=(build sanity integration browser)

groups=("$@")
if [[ ${#groups[@]} -eq 0 ]]; then
    groups=("${DEFAULT_GROUPS[@]}")
fi

wanted=()
for group in "${groups[@]}"; do
    if [[ -z ${PACKAGES[$group]+set} ]]; then
        echo "install-system-deps: unknown package group '${group}' (known: ${!PACKAGES[*]})" >&2
        exit 2
    fi
    read -r -a packages <<<"${PACKAGES[$group]}"
    wanted+=("${packages[@]}")
done

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg -s "$pkg" 2>/dev/null | sed -n 's/^Status: //p' || true)
    if [[ $status != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-system-deps: all packages present (${groups[*]})"
    exit 0
fi

echo "install-system-deps: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "install-system-deps: missing packages (${missing[*]}) and not root; install them as root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
