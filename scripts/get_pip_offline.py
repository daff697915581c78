# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stand-in for ansible-test's pip bootstrap script (``get-pip-<version>.py``).

ansible-test bootstraps pip into each virtual environment it creates with a script downloaded from
ci-files.testing.ansible.com, or with a cached copy at ``~/.ansible/test/cache/get_pip_<version>.py``.
scripts/ansible-test.sh installs this file at that path: it bootstraps pip with the interpreter's own
``ensurepip`` and then runs ``pip install`` with the arguments ansible-test passed (``pip==<version>``).

ansible-test runs pip with a reduced environment, so the CA bundle is also recorded in a
``sitecustomize.py`` inside the new environment, which every later pip run there picks up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

CA_BUNDLE_CANDIDATES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
DROPPED_OPTIONS = frozenset(("--no-setuptools", "--no-wheel"))


def find_ca_bundle() -> str | None:
    """Return the CA bundle pip should use, or None to leave pip's default alone."""
    for variable in ("REQUESTS_CA_BUNDLE", "PIP_CERT", "SSL_CERT_FILE"):
        path = os.environ.get(variable)
        if path and os.path.isfile(path):
            return path
    for path in CA_BUNDLE_CANDIDATES:
        if os.path.isfile(path):
            return path
    return None


def write_sitecustomize(ca_bundle: str) -> None:
    """Make every later Python process of this environment (pip included) use the CA bundle."""
    site_packages = sysconfig.get_paths()["purelib"]
    os.makedirs(site_packages, exist_ok=True)
    with open(os.path.join(site_packages, "sitecustomize.py"), "w", encoding="utf-8") as handle:
        handle.write(f"import os\n\nos.environ.setdefault('REQUESTS_CA_BUNDLE', {ca_bundle!r})\n")


def main() -> None:
    """Bootstrap pip, then install what ansible-test asked for."""
    ca_bundle = find_ca_bundle()
    if ca_bundle:
        write_sitecustomize(ca_bundle)
        os.environ.setdefault("REQUESTS_CA_BUNDLE", ca_bundle)

    arguments = [argument for argument in sys.argv[1:] if argument not in DROPPED_OPTIONS]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "pip", "install", *arguments], check=True)


if __name__ == "__main__":
    main()
