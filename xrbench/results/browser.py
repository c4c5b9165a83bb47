"""Headless Chromium, to check the HTML leaderboard in a real browser and to screenshot it.

No DevTools protocol needed: ``--dump-dom`` prints the DOM after the page's scripts ran (the page
sorts itself from the address hash on load), ``--screenshot`` writes a PNG.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars")


def find_chromium() -> str | None:
    """``$XRBENCH_CHROMIUM`` or the first Chromium/Chrome on PATH."""
    env = os.environ.get("XRBENCH_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def _run(page: Path, fragment: str, extra: list[str], timeout: float) -> str:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (install the Debian 'chromium' package or set XRBENCH_CHROMIUM)")
    url = Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory(prefix="xrbench-chromium-") as profile:
        proc = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                              capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def dump_dom(page: Path, fragment: str = "", *, timeout: float = 60) -> str:
    """The page's DOM (as HTML) after its scripts ran, loaded with ``#fragment``."""
    return _run(page, fragment, ["--dump-dom"], timeout)


def screenshot(page: Path, png: Path, fragment: str = "", *, size: tuple[int, int] = (1280, 1000),
               timeout: float = 60) -> Path:
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(page, fragment, [f"--screenshot={png}", f"--window-size={size[0]},{size[1]}",
                          "--run-all-compositor-stages-before-draw"], timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png
