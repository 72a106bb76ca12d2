"""Writes summary runs (one per (arch, protocol), children of the benchmark parent run).

Layout in docs/mlflow-layout.md ("Summary runs"). Shared by the benchmark runner, which writes them when
a group's folds are done, and by the report, which fills in those a run left out.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from benchmark.tracking.context import with_context
from benchmark.tracking.names import summary_run_name

logger = logging.getLogger(__name__)

TAG = "neipalette."
# metrics whose interval bounds a summary run logs as metrics; of the others only the mean (all values are in
# the run's summary.json): 16 metric rows in the Compare view instead of 28, the headline ones among them
BOUNDED_METRICS = ("roc_auc", "accuracy", "ceiling_accuracy")


def shown_metrics(values: Mapping[str, float]) -> dict[str, float]:
    """The summary values logged as metrics: means, the bounds of BOUNDED_METRICS, n_folds."""
    bounded = {f"{m}{s}" for m in BOUNDED_METRICS for s in ("_ci_low", "_ci_high")}
    return {k: v for k, v in values.items() if k.endswith("_mean") or k in bounded or k == "n_folds"}


def log_summary_run(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    arch: str,
    protocol: str,
    input_mode: str,
    metrics: Mapping[str, float],
    n_folds: int,
    n_train: float,
    n_test: float,
    *,
    primary_metric: str = "roc_auc",
    extra_tags: Mapping[str, str] | None = None,
) -> str:
    """Create a FINISHED summary run under `parent_run_id` and return its run id.

    `metrics` are the flat `{m}_mean`, `{m}_ci_low`, `{m}_ci_high` values (see `benchmark.stats.summarize_folds`);
    non-finite values are left out (an absent metric means "not computable"). `n_folds` is logged too. Metrics:
    `shown_metrics` of them; every value in the artifact `summary.json`.
    """
    tags = {
        "mlflow.parentRunId": parent_run_id,
        "mlflow.runName": summary_run_name(arch, protocol),
        f"{TAG}role": "summary",
        f"{TAG}arch": arch,
        f"{TAG}protocol": protocol,
        f"{TAG}primary_metric": primary_metric,
        **dict(extra_tags or {}),
    }
    run = client.create_run(experiment_id, tags=with_context(tags), run_name=tags["mlflow.runName"])
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    params = {"arch": arch, "protocol": protocol, "input_mode": input_mode, "n_folds": int(n_folds),
              "n_train": _fmt(n_train), "n_test": _fmt(n_test)}
    values = {k: float(v) for k, v in metrics.items() if k != "n_folds" and v is not None and math.isfinite(float(v))}
    values["n_folds"] = float(n_folds)
    try:
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in sorted(shown_metrics(values).items())],
            params=[Param(k, str(v)) for k, v in params.items()],
        )
        client.log_text(run_id, json.dumps(values, indent=1, sort_keys=True), "summary.json")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    logger.info("wrote summary run %s for %s/%s (%d folds)", run_id, arch, protocol, n_folds)
    return run_id


def _fmt(x: float) -> str:
    """Fold means of n_train/n_test: integers print without a trailing .0, others with full precision."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def flatten_config(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as flat MLflow params: `tuning.n_trials`, lists joined by commas."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_config(v, key + "."))
        else:
            out[key] = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v
    return out
