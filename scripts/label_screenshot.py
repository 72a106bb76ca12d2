"""Screenshot of the labelling page (`neipalette label`) into docs/labelling-page.png.

Copies data/synthetic-40 to a temporary folder, starts the page on a free port, votes twice by keyboard in
headless Debian Chromium (playwright, no browser download) and shoots the third outfit.
Usage: python scripts/label_screenshot.py [--out docs/labelling-page.png] [--chromium /usr/bin/chromium]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "labelling-page.png")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "my-outfits"
        shutil.copytree(REPO / "data" / "synthetic-40", ds, ignore=shutil.ignore_patterns("truth.csv", "synth.json"))
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "neipalette", "label", str(ds), "--rater", "ann", "--port", "0"],
                                stdout=subprocess.PIPE, text=True, env=env)
        try:
            url = re.search(r"open (http://\S+/)", proc.stdout.readline()).group(1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=a.chromium, headless=True,
                                            args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
                page = browser.new_page(viewport={"width": 1000, "height": 620})
                page.goto(url)
                for key, pos in (("p", "2"), ("n", "3")):
                    page.wait_for_function("document.body.dataset.position !== undefined")
                    page.keyboard.press(key)
                    page.wait_for_function(f"document.body.dataset.position === '{pos}'")
                page.wait_for_function("document.getElementById('bottom').complete")
                a.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(a.out))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("wrote", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
