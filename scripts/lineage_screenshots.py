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

import sys

from mlflow_ui_browser import close_panels, experiment_and_parents, finish, open_page, parse_args
from playwright.sync_api import sync_playwright


def main() -> int:
    args = parse_args(lambda ap: ap.add_argument("--model", default="neipalette-resnet18"))
    client, exp, parents = experiment_and_parents(args, ["attributes.start_time DESC"], max_results=1)
    parent = parents[0]
    problems = []
    commit = parent.data.tags.get("mlflow.source.git.commit", "")
    if not commit:
        problems.append("the parent run has no mlflow.source.git.commit tag (not run from a git checkout?)")
    dataset = parent.inputs.dataset_inputs[0].dataset
    with sync_playwright() as p:
        browser, pg = open_page(p, args.chromium)
        pg.goto(f"{args.url}/#/experiments/{exp.experiment_id}/runs")
        pg.wait_for_selector(f"text={parent.info.run_name}", timeout=180_000)
        pg.wait_for_timeout(3000)
        close_panels(pg)
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
        close_panels(pg)
        text = pg.inner_text("body")
        for what, needle in (("dataset name", dataset.name), ("commit", commit[:7])):
            if needle and needle not in text:
                problems.append(f"run page: {what} {needle!r} not shown")
        pg.screenshot(path=str(args.out / "mlflow-run-lineage.png"), full_page=True)

        pg.goto(f"{args.url}/#/models/{args.model}")
        pg.wait_for_selector("text=Version 1", timeout=180_000)
        pg.wait_for_timeout(3000)
        close_panels(pg)
        text = pg.inner_text("body")
        aliases = set(client.get_registered_model(args.model).aliases)
        for alias in aliases:
            if alias not in text:
                problems.append(f"model page: alias {alias!r} not shown")
        if not aliases:
            problems.append(f"{args.model} has no alias")
        pg.screenshot(path=str(args.out / "mlflow-registered-model.png"))
        browser.close()
    return finish(problems, f"parent {parent.info.run_id}: dataset {dataset.name}@{dataset.digest}, "
                            f"commit {commit[:7]}, {args.model} aliases {sorted(aliases)}")


if __name__ == "__main__":
    sys.exit(main())
