# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmarks of the partitioner and the XML layer: ``python -m benchmarks`` (``make bench``).

They time what a user waits for, the ``vnuma_layout`` and ``vnuma_expand`` filters, on a large host
(16 nodes, 1024 CPUs), and the parts of ``vnuma_expand`` separately, so that a reader sees where the
time goes.  The collection must be importable as ``ansible_collections.vnuma.libvirt``
(``PYTHONPATH=.build/collections`` after ``make collection``).  Results are described in
docs/benchmarks.md.
"""
