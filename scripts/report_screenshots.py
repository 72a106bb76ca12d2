"""Screenshots of sections of a benchmark report.html: docs/report-tuning.png and docs/report-ceiling.png.

Opens report.html from file:// in headless Debian Chromium (playwright, no browser download) with every
http(s) request blocked. report-tuning.png: the "Tuning" section (table, edge warning, figure).
report-ceiling.png: the header's dataset and rater-agreement lines (κ, α), Table 2 with its ceiling row, the
"Distance to the noise ceiling" section (known ceilings only) and the forest plot with its ceiling line, stacked.
Usage: python scripts/report_screenshots.py REPORT_HTML [--out-dir docs] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
WIDTH = 1150


def section_box(page, title: str) -> dict:
    """From the h2 starting with `title` to the next h2 (page coordinates)."""
    heads = page.locator("h2")
    tops = [(heads.nth(i).inner_text(), heads.nth(i).bounding_box()) for i in range(heads.count())]
    k = next(i for i, (text, _) in enumerate(tops) if text.startswith(title))
    y0 = tops[k][1]["y"] - 8
    y1 = tops[k + 1][1]["y"] - 8 if k + 1 < len(tops) else page.evaluate("document.body.scrollHeight")
    return {"x": 0, "y": y0, "width": WIDTH, "height": y1 - y0}


def element_box(locator, pad: float = 3) -> dict:
    box = locator.bounding_box()
    return {"x": 0, "y": box["y"] - pad, "width": WIDTH, "height": box["height"] + pad}


def shot(page, clips: list[dict], out: Path) -> None:
    images = [Image.open(io.BytesIO(page.screenshot(full_page=True, clip=clip))) for clip in clips]
    canvas = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
    y = 0
    for img in images:
        canvas.paste(img, (0, y))
        y += img.height
    canvas.save(out)
    print("wrote", out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--out-dir", type=Path, default=REPO / "docs")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.route("http*://**", lambda route: route.abort())
        page.goto(a.report.resolve().as_uri())
        page.wait_for_load_state("load")
        shot(page, [section_box(page, "Tuning")], a.out_dir / "report-tuning.png")
        header = [element_box(page.locator("li", has_text=text).first) for text in ("Dataset:", "Rater agreement")
                  if page.locator("li", has_text=text).count()]
        table2 = element_box(page.locator("h2:has-text('Table 2') + table").first)
        distance = [section_box(page, "Distance to the noise ceiling")] if page.locator(
            "h2", has_text="Distance to the noise ceiling").count() else []  # known ceilings only
        forest = element_box(page.locator("figure", has=page.locator("img[alt*='noise ceiling']")).first)
        shot(page, [*header, table2, *distance, forest], a.out_dir / "report-ceiling.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
