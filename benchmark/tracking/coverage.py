"""Coverage runs in MLflow: one run per `python -m benchmark.coverage` (tag neipalette.role=coverage) with
the table as coverage.csv, the figure, and the settings; the report reads the latest one for its generator."""

from __future__ import annotations

import io
import json
import logging
import math
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from benchmark.tracking.context import with_context
from benchmark.tracking.names import TAG
from benchmark.tracking.write import Tracker

log = logging.getLogger(__name__)
ROLE = "coverage"


def generator_tags(generator: str, version: object, n_outfits: int, n_splits: int, n_repeats: int) -> dict[str, str]:
    """What a coverage run is valid for: the generator (and version) and the dataset size and CV shape."""
    return {f"{TAG}generator": str(generator), f"{TAG}generator_version": str(version),
            f"{TAG}n_outfits": str(int(n_outfits)), f"{TAG}cv": f"{int(n_splits)}x{int(n_repeats)}"}


def log_coverage_run(experiment: str, *, tags: dict[str, str], params: dict, table: pd.DataFrame,
                     figure_png: bytes, summary: dict) -> str:
    """Write one FINISHED coverage run; returns its id."""
    tracker = Tracker(experiment)
    client = tracker.client
    all_tags = {f"{TAG}role": ROLE, "mlflow.runName": "coverage", **tags}
    run = client.create_run(tracker.experiment_id, tags=with_context(all_tags), run_name="coverage")
    rid = run.info.run_id
    now = int(time.time() * 1000)
    try:
        metrics = [Metric(f"{what}.{row['model']}.{row['metric']}.{row['method']}", float(row[what]), now, 0)
                   for row in table.to_dict("records") for what in ("coverage", "mean_width") if pd.notna(row[what])]
        client.log_batch(rid, metrics=metrics, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        with tempfile.TemporaryDirectory() as d:
            table.to_csv(Path(d, "coverage.csv"), index=False, float_format="%.6f")
            Path(d, "coverage.png").write_bytes(figure_png)
            Path(d, "coverage.json").write_text(json.dumps(_no_nan(summary), indent=2, allow_nan=False, default=str))
            for name in ("coverage.csv", "coverage.png", "coverage.json"):
                client.log_artifact(rid, str(Path(d, name)))
    except BaseException:
        client.set_terminated(rid, "FAILED")
        raise
    client.set_terminated(rid, "FINISHED")
    return rid


def _no_nan(x):
    """JSON has no NaN: a non-finite float (e.g. floor_share of a method without a floor) becomes null."""
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_no_nan(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def latest_coverage(client: MlflowClient, experiment_id: str, tags: dict[str, str]) -> tuple[dict, pd.DataFrame] | None:
    """The newest FINISHED coverage run whose tags match `tags`: ({run_id, start_time, params}, table), or None."""
    flt = " and ".join([f"tags.`{TAG}role` = '{ROLE}'", "attributes.status = 'FINISHED'",
                        *(f"tags.`{k}` = '{v}'" for k, v in tags.items())])
    try:
        runs = client.search_runs([experiment_id], flt, order_by=["attributes.start_time DESC"], max_results=1)
    except mlflow.exceptions.MlflowException:
        log.warning("could not search for coverage runs", exc_info=True)
        return None
    if not runs:
        return None
    run = runs[0]
    with tempfile.TemporaryDirectory() as d:
        try:
            path = client.download_artifacts(run.info.run_id, "coverage.csv", d)
        except Exception:  # noqa: BLE001 - a run without its table is as good as none
            log.warning("coverage run %s has no coverage.csv", run.info.run_id)
            return None
        table = pd.read_csv(io.StringIO(Path(path).read_text()))
    info = {"run_id": run.info.run_id, "start_time": run.info.start_time, "params": dict(run.data.params),
            "tags": dict(run.data.tags)}
    return info, table
