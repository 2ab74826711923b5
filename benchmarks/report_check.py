"""The report page as a browser shows it (make report-check): headless Chromium, offline, renders index.html.

Checks, each failing with one line (exit 1):
- the page is self-contained: every <img> is a data: URI, and no link, script or stylesheet leaves the file
  (Chromium runs with every host name unresolvable, so a fetched resource would be missing from the screenshot);
- Chromium's DOM after loading holds every tagged number of the file (nothing lost to a parse error);
- the screenshot is not blank: a share of non-white pixels above ``MIN_INK`` (tables and the figures drawn).
Writes the screenshot (cropped to the page's content) where ``--screenshot`` says.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import cli
from models.cli import opt
from models.errors import InputError

MIN_INK = 0.03  # share of non-white pixels of a page with tables and figures (a blank or unstyled page is ~0)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9")  # fmt: skip


@dataclass
class CheckConfig:
    """Options of the page check."""

    page: str = opt("runs/report-demo/report/index.html", "the report page to render")
    screenshot: str = opt("runs/report-demo/screenshot.png", "where the screenshot goes (PNG, cropped to content)")
    width: int = opt(1280, "browser window width, px", min=320)
    height: int = opt(6000, "browser window height, px (the page below it is not rendered)", min=200)
    crop: int = opt(0, "keep at most this many rows of the screenshot (0: all of the content)", min=0)


def chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise InputError("chromium: not on PATH; run .ci/chromium-up (installs the Debian package as root)")
    return subprocess.run([exe, *CHROMIUM_FLAGS, *args], capture_output=True, text=True, timeout=timeout)


def tagged(html: str) -> int:
    return len(re.findall(r"data-field=", html))


def check_source(html: str, page: Path) -> None:
    external = re.findall(r"""(?:src|href)\s*=\s*["']?(?!data:|#)([^"' >]+)""", html)
    if external:
        raise InputError(f"{page}: refers to {external[0]} (and {len(external) - 1} more): not self-contained")
    if "<script" in html.lower():
        raise InputError(f"{page}: has a script; the report page must be static")


def screenshot(page: Path, out: Path, width: int, height: int, crop: int) -> float:
    """Render ``page``, save the content-cropped screenshot to ``out``; the share of non-white pixels."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "shot.png"
        r = chromium(f"--window-size={width},{height}", f"--screenshot={raw}", page.resolve().as_uri())
        if not raw.is_file():
            raise InputError(f"{page}: chromium wrote no screenshot: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
        img = np.asarray(Image.open(raw).convert("RGB"))
    ink = (img < 245).any(axis=2)
    rows = np.flatnonzero(ink.any(axis=1))
    bottom = int(rows[-1]) + 24 if len(rows) else 1
    if crop:
        bottom = min(bottom, crop)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img[:bottom]).save(out, optimize=True)
    return float(ink[:bottom].mean())


def check(cfg: CheckConfig) -> int:
    page = Path(cfg.page)
    if not page.is_file():
        raise InputError(f"{page}: no report page; run make report-demo first")
    html = page.read_text()
    check_source(html, page)
    dom = chromium("--dump-dom", page.resolve().as_uri())
    if tagged(dom.stdout) != tagged(html):
        raise InputError(f"{page}: chromium's DOM has {tagged(dom.stdout)} tagged numbers, the file {tagged(html)}")
    ink = screenshot(page, Path(cfg.screenshot), cfg.width, cfg.height, cfg.crop)
    if ink < MIN_INK:
        raise InputError(f"{cfg.screenshot}: the rendered page is nearly blank ({ink:.1%} non-white pixels)")
    print(f"page ok: {tagged(html)} numbers in chromium's DOM, self-contained, screenshot {cfg.screenshot} "
          f"({ink:.1%} non-white)")
    return 0


main = cli.script(CheckConfig, check, "Render the report page in headless Chromium and check it.")

if __name__ == "__main__":
    raise SystemExit(main())
