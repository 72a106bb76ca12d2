"""Browser check + screenshots of what issue 24 put into the MLflow UI (headless Debian Chromium, playwright).

Run against a running `mlflow ui` on a store holding at least one finished benchmark with final models
(scripts/ui_screenshots.sh starts one):
  python scripts/ui_screenshots.py --url http://127.0.0.1:5000 --experiment neipalette --out docs

1. The experiment's parent runs sorted by a parent-run metric (`resnet18.roc_auc`, best first), with it shown
   -> <out>/mlflow-experiment-sorted-by-metric.png
2. A @champion version page: its model card (description), tags (weights, primary_metric, cv_roc_auc) and
   aliases (config name, champion) -> <out>/mlflow-model-card.png
3. A tuned fold run's Model metrics: the chosen trial's inner curve and the refit's train_loss by epoch
   -> <out>/mlflow-fold-learning-curve.png
Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote

from mlflow_ui_browser import close_panels, experiment_and_parents, finish, open_page, parse_args
from playwright.sync_api import sync_playwright


def _own_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--arch", default="efficientnet_lite0", help="whose fold run shows its curves")
    ap.add_argument("--sort-metric", default="resnet18.roc_auc", help="the parent-run metric that sorts the list")


def main() -> int:
    args = parse_args(_own_arguments)
    metric = args.sort_metric
    client, exp, parents = experiment_and_parents(args, [f"metrics.`{metric}` DESC"])
    best = parents[0]
    # the card of a champion (the alias moves with each benchmark: the latest benchmark's best model holds it)
    champions = [m.name for m in client.search_registered_models("name LIKE 'neipalette-%'") if "champion" in m.aliases]
    if not champions:
        sys.exit("no registered model has @champion")
    name = champions[0]
    version = client.get_model_version_by_alias(name, "champion")
    folds = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{best.info.run_id}' and "
                               f"tags.`neipalette.role` = 'fold' and tags.`neipalette.arch` = '{args.arch}' and "
                               "tags.`neipalette.protocol` = 'cv'", order_by=["attributes.run_name ASC"])
    fold = folds[0]
    problems = []
    with sync_playwright() as p:
        browser, pg = open_page(p, args.chromium)
        pg.set_viewport_size({"width": 1700, "height": 600})  # room for the metric columns

        order = quote(f"metrics.`{metric}`")
        pg.goto(f"{args.url}/#/experiments/{exp.experiment_id}/runs?orderByKey={order}&orderByAsc=false"
                "&searchFilter=" + quote("tags.`neipalette.role` = 'parent'"))
        pg.wait_for_selector(f"text={best.info.run_name}", timeout=180_000)
        pg.wait_for_timeout(4000)
        close_panels(pg)
        pg.get_by_role("button", name="Columns").first.click()  # show the sorting metric, its bounds, the ceiling
        pg.wait_for_timeout(1500)
        for column in (metric, "ceiling_accuracy"):  # longer names are cut in the table's narrow columns
            pg.get_by_text(column, exact=True).first.click()
            pg.wait_for_timeout(300)
        pg.keyboard.press("Escape")
        pg.wait_for_timeout(2000)
        text = pg.inner_text("body")
        if metric not in text:
            problems.append(f"runs table: no {metric} column")
        pg.screenshot(path=str(args.out / "mlflow-experiment-sorted-by-metric.png"))
        pg.set_viewport_size({"width": 1500, "height": 900})

        pg.goto(f"{args.url}/#/models/{name}/versions/{version.version}")
        pg.wait_for_selector("text=final model of benchmark", timeout=180_000)
        pg.wait_for_timeout(3000)
        close_panels(pg)
        text = pg.inner_text("body")
        for needle in ("ROC-AUC (primary)", "primary_metric", "cv_roc_auc", version.tags["weights"]):
            if needle not in text:
                problems.append(f"version page: {needle!r} not shown")
        pg.set_viewport_size({"width": 1500, "height": 1500})  # the card and the tags below it
        pg.get_by_text("primary_metric", exact=True).first.scroll_into_view_if_needed()  # the tag table scrolls
        pg.wait_for_timeout(1500)
        pg.screenshot(path=str(args.out / "mlflow-model-card.png"))
        pg.set_viewport_size({"width": 1500, "height": 900})

        pg.goto(f"{args.url}/#/experiments/{exp.experiment_id}/runs/{fold.info.run_id}")
        pg.wait_for_selector("text=About this run", timeout=180_000)
        pg.wait_for_timeout(2000)
        pg.get_by_role("tab", name="Model metrics").click()
        pg.wait_for_timeout(3000)
        close_panels(pg)
        pg.get_by_placeholder("Search metric charts").fill("inner_roc_auc|train_loss")  # the two curves
        pg.wait_for_timeout(4000)
        text = pg.inner_text("body")
        for needle in ("train_loss", "inner_roc_auc"):
            if needle not in text:
                problems.append(f"fold run page: {needle!r} chart not shown")
        pg.screenshot(path=str(args.out / "mlflow-fold-learning-curve.png"))
        browser.close()
    return finish(problems, f"sorted by {metric}: best parent {best.info.run_name} ({best.info.run_id}); "
                            f"card {name} v{version.version}; fold run {fold.info.run_name}")


if __name__ == "__main__":
    sys.exit(main())
