"""What the MLflow UI browser checks (scripts/lineage_screenshots.py, scripts/ui_screenshots.py) share: their
common arguments (--url, --experiment, --out, --chromium), the experiment and parent-run lookup on the UI's
server, headless Debian Chromium through playwright (its flags, one 1500×900 page), closing the UI's side
panels, and the CHECK FAILED summary with the exit status.

The scripts run as `python scripts/<name>.py`, which puts scripts/ first on sys.path: they import this as
`mlflow_ui_browser`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Callable

from mlflow.tracking import MlflowClient

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def parse_args(add_own: Callable[[argparse.ArgumentParser], None]) -> argparse.Namespace:
    """--url, --experiment, the script's own arguments (`add_own`), --out, --chromium."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--experiment", default="neipalette")
    add_own(ap)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    return ap.parse_args()


def experiment_and_parents(args: argparse.Namespace, order_by: list[str], **search):
    """(client, experiment, its parent runs in `order_by` order); exits when the experiment or a parent is missing."""
    client = MlflowClient(tracking_uri=args.url)
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        sys.exit(f"experiment {args.experiment!r} not found")
    parents = client.search_runs([exp.experiment_id], "tags.`neipalette.role` = 'parent'", order_by=order_by,
                                 **search)
    if not parents:
        sys.exit("no parent run")
    return client, exp, parents


def open_page(p, chromium: str):
    """(browser, page): headless Chromium at `chromium` with CHROMIUM_ARGS, one 1500×900 page."""
    browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
    ctx = browser.new_context(viewport={"width": 1500, "height": 900})
    return browser, ctx.new_page()


def close_panels(pg) -> None:
    close = pg.get_by_role("button", name="Close")
    if close.count() and close.first.is_visible():
        close.first.click()


def finish(problems: list[str], summary: str) -> int:
    """Print each failed check and the summary line; the exit status (1 when a check failed)."""
    for line in problems:
        print("CHECK FAILED:", line)
    print(summary)
    return 1 if problems else 0
