"""Browser check + screenshots of what issue 24 put into the MLflow UI (headless Debian Chromium, playwright).

Run against a running `mlflow ui` on a store holding at least one finished benchmark with final models
(scripts/ui_screenshots.sh starts one):
  python scripts/ui_screenshots.py --url http://127.0.0.1:5000 --experiment neipalette --out docs

1. The experiment's runs sorted by a parent-run metric (`<arch>.roc_auc`, best first), with that column shown
   -> <out>/mlflow-experiment-sorted-by-metric.png
2. A registered version's page: its model card (description), tags (weights, primary_metric, cv_roc_auc) and
   aliases (config name, champion) -> <out>/mlflow-model-card.png
3. A tuned fold run's Model metrics: the chosen trial's inner curve and the refit's train_loss by epoch
   -> <out>/mlflow-fold-learning-curve.png
Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from urllib.parse import quote

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
    ap.add_argument("--arch", default="resnet18", help="whose parent metric sorts, whose card and fold run")
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    client = MlflowClient(tracking_uri=args.url)
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        sys.exit(f"experiment {args.experiment!r} not found")
    metric = f"{args.arch}.roc_auc".replace(":", "-")
    parents = client.search_runs([exp.experiment_id], "tags.`neipalette.role` = 'parent'",
                                 order_by=[f"metrics.`{metric}` DESC"])
    if not parents:
        sys.exit("no parent run")
    best = parents[0]
    name = f"neipalette-{args.arch}".replace(":", "-")
    version = client.get_model_version_by_alias(name, "champion") if "champion" in client.get_registered_model(
        name).aliases else max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    folds = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{best.info.run_id}' and "
                               f"tags.`neipalette.role` = 'fold' and tags.`neipalette.arch` = '{args.arch}' and "
                               "tags.`neipalette.protocol` = 'cv'", order_by=["attributes.run_name ASC"])
    fold = folds[0]
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1500, "height": 900})
        pg = ctx.new_page()

        order = quote(f"metrics.`{metric}`")
        pg.goto(f"{args.url}/#/experiments/{exp.experiment_id}/runs?orderByKey={order}&orderByAsc=false"
                "&searchFilter=" + quote("tags.`neipalette.role` = 'parent'"))
        pg.wait_for_selector(f"text={best.info.run_name}", timeout=180_000)
        pg.wait_for_timeout(4000)
        _close_panels(pg)
        text = pg.inner_text("body")
        if metric not in text:
            problems.append(f"runs table: no {metric} column")
        pg.screenshot(path=str(args.out / "mlflow-experiment-sorted-by-metric.png"))

        pg.goto(f"{args.url}/#/models/{name}/versions/{version.version}")
        pg.wait_for_selector("text=final model of benchmark", timeout=180_000)
        pg.wait_for_timeout(3000)
        _close_panels(pg)
        text = pg.inner_text("body")
        for needle in ("ROC-AUC (primary)", "primary_metric", "cv_roc_auc", version.tags["weights"]):
            if needle not in text:
                problems.append(f"version page: {needle!r} not shown")
        pg.screenshot(path=str(args.out / "mlflow-model-card.png"), full_page=True)

        pg.goto(f"{args.url}/#/experiments/{exp.experiment_id}/runs/{fold.info.run_id}/model-metrics")
        pg.wait_for_selector("text=train_loss", timeout=180_000)
        pg.wait_for_timeout(5000)
        _close_panels(pg)
        text = pg.inner_text("body")
        for needle in ("train_loss", "inner_roc_auc"):
            if needle not in text:
                problems.append(f"fold run page: {needle!r} chart not shown")
        pg.screenshot(path=str(args.out / "mlflow-fold-learning-curve.png"), full_page=True)
        browser.close()
    for line in problems:
        print("CHECK FAILED:", line)
    print(f"sorted by {metric}: best parent {best.info.run_name} ({best.info.run_id}); card {name} v{version.version}; "
          f"fold run {fold.info.run_name}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
