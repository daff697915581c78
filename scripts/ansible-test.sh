#!/usr/bin/env bash
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Runs ansible-test on a copy of the collection laid out as ansible_collections/vnuma/libvirt.
#
# Usage: scripts/ansible-test.sh sanity|units [ansible-test options...]
#
# ansible-test finds the collection from the physical working directory, so a symlinked path does not
# work: the git-tracked files plus the untracked, not ignored ones are copied to
# .build/ansible-test/ansible_collections/vnuma/libvirt and ansible-test runs there, with
# --local --python <venv version> --requirements.
#
# ansible-test bootstraps pip in its virtual environments with a script it downloads from a host that
# may be unreachable; a cached stand-in (scripts/get_pip_offline.py) is installed where it looks first.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 sanity|units [ansible-test options...]" >&2
    exit 2
fi
command=$1
shift

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
venv=${VENV:-$root/.venv}
python=$venv/bin/python
if [[ ! -x $venv/bin/ansible-test ]]; then
    echo "ansible-test.sh: $venv/bin/ansible-test not found; run 'make venv' first" >&2
    exit 1
fi

namespace=vnuma
name=libvirt
copy=$root/.build/ansible-test/ansible_collections/$namespace/$name

# Offline pip bootstrap for the virtual environments ansible-test creates.
pip_version=$("$python" -c '
import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="%d.%d" % sys.version_info[:2]))["pip"])
')
cache=${HOME}/.ansible/test/cache/get_pip_${pip_version//./_}.py
if ! cmp -s "$root/scripts/get_pip_offline.py" "$cache"; then
    mkdir -p "$(dirname "$cache")"
    cp "$root/scripts/get_pip_offline.py" "$cache"
fi

# One run at a time per checkout: each run replaces the copy.
mkdir -p "$root/.build"
exec 9>"$root/.build/ansible-test.lock"
if ! flock --nonblock 9; then
    echo "ansible-test.sh: another ansible-test run of this checkout is in progress; waiting for it" >&2
    flock 9
fi

# Fresh copy of the collection's files (tests/output and every ignored file left out).
rm -rf "$copy"
mkdir -p "$copy"
(
    cd "$root"
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' file; do
            # Skip tracked files deleted in the working tree.
            if [[ -e $file || -L $file ]]; then
                printf '%s\0' "$file"
            fi
        done |
        tar --null --no-recursion -T - -cf -
) | tar -xf - -C "$copy"

python_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cd "$copy"
export PATH=$venv/bin:$PATH
# The copy lies inside this repository's git work tree, where git ignores it: without this, ansible-test
# would walk up to that work tree, ask git for the files and find none.
export ANSIBLE_TEST_CONTENT_ROOT=$copy
set -x
exec "$venv/bin/ansible-test" "$command" --local --python "$python_version" --requirements "$@"
