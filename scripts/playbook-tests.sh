#!/usr/bin/env bash
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Runs every tests/playbooks/test_*.yml (through scripts/playbook.sh), all of them even after a failure,
# and exits non-zero when any failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

shopt -s nullglob
playbooks=(tests/playbooks/test_*.yml)
if [[ ${#playbooks[@]} -eq 0 ]]; then
    echo "playbook-tests: no tests/playbooks/test_*.yml, nothing to run"
    exit 0
fi

failed=()
for playbook in "${playbooks[@]}"; do
    echo "=== playbook-tests: $playbook"
    if ! scripts/playbook.sh "$playbook" "$@"; then
        failed+=("$playbook")
    fi
done

passed=$((${#playbooks[@]} - ${#failed[@]}))
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "playbook-tests: ${passed} passed, ${#failed[@]} failed: ${failed[*]}"
    exit 1
fi
echo "playbook-tests: ${passed} passed"
