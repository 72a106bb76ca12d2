"""Browser check + screenshots of a benchmark's lineage in the MLflow UI (headless Debian Chromium, playwright).

Run against a running `mlflow ui` (scripts/screenshots.sh starts one the same way):
  python scripts/lineage_screenshots.py --url http://127.0.0.1:5000 --experiment neipalette --out docs

1. The experiment's runs table with the parent run's Datasets and Version columns; checks that the dataset
   name and the short commit are shown -> <out>/mlflow-runs-lineage.png
2. The parent run's page (overview: datasets used, source, child runs) -> <out>/mlflow-run-lineage.png
3. The registered model `neipalette-resnet18` with its versions and aliases -> <out>/mlflow-registered-model.png
Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from mlflow.tracking import MlflowClient
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _close_panels(pg) -> None:
    close = pg.get_by_role("button", name="Close")
    if close.count() and close.first.is_visible():
        close.first.click()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--experiment", default="neipalette")
    ap.add_argument("--model", default="neipalette-resnet18")
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    client = MlflowClient(tracking_uri=args.url)
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        sys.exit(f"experiment {args.experiment!r} not found")
    parents = client.search_runs([exp.experiment_id], "tags.`neipalette.role` = 'parent'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        sys.exit("no parent run")
    parent = parents[0]
    problems = []
    commit = parent.data.tags.get("mlflow.source.git.commit", "")
    if not commit:
        problems.append("the parent run has no mlflow.source.git.commit tag (not run from a git checkout?)")
    dataset = parent.inputs.dataset_inputs[0].dataset
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1500, "height": 900})
        pg = ctx.new_page()
        pg.goto(f"{args.url}/#/experiments/{exp.experiment_id}/runs")
        pg.wait_for_selector(f"text={parent.info.run_name}", timeout=180_000)
        pg.wait_for_timeout(3000)
        _close_panels(pg)
        # the runs table hides the Version (git commit) column by default: Columns -> Attributes -> Version
        pg.get_by_role("button", name="Columns").first.click()
        pg.wait_for_timeout(1000)
        pg.get_by_text("Version", exact=True).first.click()
        pg.keyboard.press("Escape")
        pg.wait_for_timeout(2000)
        text = pg.inner_text("body")
        for what, needle in (("dataset name", dataset.name), ("short commit", commit[:6])):
            if needle and needle not in text:
                problems.append(f"runs table: {what} {needle!r} not shown")
        pg.screenshot(path=str(args.out / "mlflow-runs-lineage.png"))

        pg.goto(f"{args.url}/#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}")
        pg.wait_for_selector("text=About this run", timeout=180_000)
        pg.wait_for_selector(f"text={dataset.digest}", timeout=60_000)
        pg.wait_for_timeout(3000)
        _close_panels(pg)
        text = pg.inner_text("body")
        for what, needle in (("dataset name", dataset.name), ("commit", commit[:7])):
            if needle and needle not in text:
                problems.append(f"run page: {what} {needle!r} not shown")
        pg.screenshot(path=str(args.out / "mlflow-run-lineage.png"), full_page=True)

        pg.goto(f"{args.url}/#/models/{args.model}")
        pg.wait_for_selector("text=Version 1", timeout=180_000)
        pg.wait_for_timeout(3000)
        _close_panels(pg)
        text = pg.inner_text("body")
        aliases = set(client.get_registered_model(args.model).aliases)
        for alias in aliases:
            if alias not in text:
                problems.append(f"model page: alias {alias!r} not shown")
        if not aliases:
            problems.append(f"{args.model} has no alias")
        pg.screenshot(path=str(args.out / "mlflow-registered-model.png"))
        browser.close()
    for line in problems:
        print("CHECK FAILED:", line)
    print(f"parent {parent.info.run_id}: dataset {dataset.name}@{dataset.digest}, commit {commit[:7]}, "
          f"{args.model} aliases {sorted(aliases)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
