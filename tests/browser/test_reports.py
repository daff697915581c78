# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vnuma_fleet role's HTML reports in a real headless browser (``make browser``).

The role's templates are rendered by Ansible's templar (render_reports.py) from recorded role data:
the demo's hypervisor (``tests/unit/fixtures/fleet/demo_hv01.json``, what the role registered in
``make demo``), a 16-node host with the text diagram tests' guests, two recorded playbook test runs
(failed guests, an unreachable hypervisor), the one with failed guests again with a guest name of one
126-character word, and a fleet summary with two more failed hosts with long names, URIs and messages.
Each page is opened at 1400x900, 420x900 and 390x900 in Debian's chromium (``chromium-headless-shell``, or
``chromium``), which writes a screenshot to ``.build/screenshots/`` for a human to look at and dumps the DOM
after check.js has measured the page.  Asserted: the page does not scroll sideways and nothing reaches past the
window outside a box that scrolls by itself (a wide table's); every SVG diagram is drawn with a
size and fits the window; the screenshot is a PNG of the window's size and not blank.

``VNUMA_REPORT_TEMPLATES=DIR`` renders other templates (for example an older version's) instead of
``roles/vnuma_fleet/templates``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUILD = ROOT / ".build" / "browser"
SCREENSHOTS = ROOT / ".build" / "screenshots"
SIZES = ((1400, 900), (420, 900), (390, 900))
PAGES = ("hv01", "big16", "mixed", "failed", "longname", "fleet")
BROWSERS = ("chromium-headless-shell", "chromium")
# A page of text and boxes has far more colours than this once anti-aliased; a blank or one-colour page has 1 or 2.
MIN_COLOURS = 16


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        f"no headless browser: install Debian's {' or '.join(BROWSERS)} (scripts/install-system-deps.sh browser)"
    )


def render(out: Path) -> None:
    """Render the pages (render_reports.py, in a process of its own: it sets up Ansible's collection loader first)."""
    command = [sys.executable, str(HERE / "render_reports.py"), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def open_page(chrome: str, page: Path, width: int, height: int, work: Path) -> dict[str, Any]:
    """Open a copy of ``page`` with check.js appended; the screenshot's path and what check.js measured."""
    probe = work / f"{page.stem}-{width}.html"
    script = (HERE / "check.js").read_text(encoding="utf-8")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", f"<script>{script}</script></body>"))
    shot = SCREENSHOTS / f"{page.stem}-{width}x{height}.png"
    shot.unlink(missing_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="profile-", dir=work))
    command = [
        chrome,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--screenshot={shot}",
        "--dump-dom",
        probe.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'data-vn-check="([^"]*)"', done.stdout)
    assert found, (
        f"{page.name} at {width}x{height}: check.js wrote nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    )
    return {"check": json.loads(html.unescape(found.group(1))), "shot": shot}


def png_colours(path: Path, enough: int) -> tuple[int, int, int]:
    """Width, height and distinct colours of an 8-bit RGB or RGBA PNG without interlacing, counted up to ``enough``.

    Rows are decoded from the top until ``enough`` colours are seen: a drawn page gets there within its
    first lines of text, and decoding the whole picture in Python would cost seconds.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    offset, chunks, header = 8, [], b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, colour_type, _c, _f, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and not interlace, f"{path.name}: unexpected PNG format"
    size = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * size
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - size] if i >= size else 0
            up = previous[i]
            corner = previous[i - size] if i >= size else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        colours.update(bytes(line[i : i + size]) for i in range(0, stride, size))
        if len(colours) >= enough:
            break
        previous = line
    return width, height, len(colours)


@pytest.fixture(scope="module")
def opened() -> dict[tuple[str, int], dict[str, Any]]:
    chrome = browser()
    shutil.rmtree(BUILD, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    render(BUILD / "pages")
    work = BUILD / "work"
    work.mkdir()
    jobs = [(page, width, height) for page in PAGES for width, height in SIZES]
    # The browser mostly waits: a few at a time keep the whole check to seconds on two cores.
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = pool.map(lambda job: open_page(chrome, BUILD / "pages" / f"{job[0]}.html", *job[1:], work), jobs)
        return {(page, width): result for (page, width, _height), result in zip(jobs, results, strict=True)}


@pytest.mark.parametrize("width", [width for width, _height in SIZES])
@pytest.mark.parametrize("page", PAGES)
def test_page_does_not_overflow_sideways(opened: dict[tuple[str, int], dict[str, Any]], page: str, width: int) -> None:
    check = opened[(page, width)]["check"]
    assert check["innerWidth"] == width
    assert check["wide"] == [], f"{page}.html at {width} px: elements past the right edge: {check['wide']}"
    assert check["scrollWidth"] <= check["innerWidth"], f"{page}.html at {width} px scrolls sideways: {check}"


@pytest.mark.parametrize("page", PAGES)
def test_tables_fit_a_desktop_window(opened: dict[tuple[str, int], dict[str, Any]], page: str) -> None:
    # At 1400 px no table needs its scroll box: every column is on screen.
    assert opened[(page, 1400)]["check"]["scrolled"] == []


@pytest.mark.parametrize("width", [width for width, _height in SIZES])
@pytest.mark.parametrize("page", ["hv01", "big16", "mixed", "failed", "longname"])
def test_host_diagrams_are_drawn(opened: dict[tuple[str, int], dict[str, Any]], page: str, width: int) -> None:
    svgs = opened[(page, width)]["check"]["svgs"]
    # Before and after; none for a hypervisor whose topology was never read.
    assert len(svgs) == (0 if page == "failed" else 2), svgs
    for svg in svgs:
        assert svg["width"] > 0 and svg["height"] > 0, svgs
        assert svg["right"] <= width, svgs
        assert svg["texts"] > 10, svgs


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("page", PAGES)
def test_screenshot_is_a_drawn_page_of_the_window_size(
    opened: dict[tuple[str, int], dict[str, Any]], page: str, width: int, height: int
) -> None:
    shot = opened[(page, width)]["shot"]
    assert shot.is_file(), f"no screenshot {shot}"
    shot_width, shot_height, colours = png_colours(shot, MIN_COLOURS)
    assert (shot_width, shot_height) == (width, height)
    assert colours >= MIN_COLOURS, f"{shot.name} has {colours} colours: blank?"
