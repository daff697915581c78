#!/usr/bin/env bash
# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Runs ansible-playbook against localhost with this collection and the project's virtual environment.
#
# Usage: scripts/playbook.sh PLAYBOOK [ansible-playbook options...]
#
# The collection is found through .build/collections (`make collection`), the inventory is localhost with
# the local connection, and the interpreter is the venv's Python (never a pyenv shim found by discovery).
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 PLAYBOOK [ansible-playbook options...]" >&2
    exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
venv=${VENV:-$root/.venv}
collections=$root/.build/collections
if [[ ! -x $venv/bin/ansible-playbook ]]; then
    echo "playbook.sh: $venv/bin/ansible-playbook not found; run 'make venv' first" >&2
    exit 1
fi
if [[ ! -e $collections/ansible_collections/vnuma/libvirt/galaxy.yml ]]; then
    echo "playbook.sh: $collections is not set up; run 'make collection' first" >&2
    exit 1
fi

inventory=$root/.build/inventory/localhost.ini
mkdir -p "$(dirname "$inventory")"
printf '%s\n' "localhost ansible_connection=local ansible_python_interpreter=$venv/bin/python" >"$inventory"

export ANSIBLE_COLLECTIONS_PATH=$collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_INVENTORY=$inventory
export ANSIBLE_LOCALHOST_WARNING=false
export ANSIBLE_RETRY_FILES_ENABLED=false
# Failures readable in a CI log: results as YAML (multi-line stderr/msg kept as blocks), task path shown.
export ANSIBLE_STDOUT_CALLBACK=default
export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml
export ANSIBLE_CALLBACK_FORMAT_PRETTY=true
export ANSIBLE_SHOW_TASK_PATH_ON_FAILURE=true
export ANSIBLE_SHOW_CUSTOM_STATS=true
export PATH=$venv/bin:$PATH

exec "$venv/bin/ansible-playbook" "$@"
