"""Screenshots of the labelling page (`neipalette label`): docs/labelling-page-1280.png and -480.png.

Copies data/synthetic-40 to a temporary folder, starts the page on a free port, votes twice by keyboard in
headless Debian Chromium (playwright, no browser download) and shoots the third outfit at 1280 and 480 px wide.
Usage: python scripts/label_screenshot.py [--out-dir docs] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
VIEWPORTS = {1280: 720, 480: 860}  # width -> height


def wait_position(page, position: str) -> None:
    # a selector, not wait_for_function: the page's CSP (script nonce) forbids the eval that one needs
    page.wait_for_selector(f"body[data-position='{position}']", state="attached", timeout=15000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=REPO / "docs")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "my-outfits"
        shutil.copytree(REPO / "data" / "synthetic-40", ds, ignore=shutil.ignore_patterns("truth.csv", "synth.json"))
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "neipalette", "label", str(ds), "--rater", "ann", "--port", "0"],
                                stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert proc.stdout is not None
            started = re.search(r"open (http://\S+/)", proc.stdout.readline())
            if started is None:
                raise SystemExit("the label server did not start")
            url = started.group(1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=a.chromium, headless=True,
                                            args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
                page = browser.new_page(viewport={"width": 1280, "height": VIEWPORTS[1280]})
                page.goto(url)
                for key, pos in (("1", "1"), ("p", "2"), ("n", "3")):
                    if key != "1":
                        page.keyboard.press(key)
                    wait_position(page, pos)
                for width, height in VIEWPORTS.items():
                    page.set_viewport_size({"width": width, "height": height})
                    page.reload()
                    wait_position(page, "3")
                    out = a.out_dir / f"labelling-page-{width}.png"
                    page.screenshot(path=str(out))
                    print("wrote", out)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
