"""Sweep runs in MLflow: one sweep run (tag neipalette.role=sweep) whose children are benchmark parent runs,
one per sweep point (tags neipalette.sweep_point, n_outfits, n_raters, sigma), each with its usual fold and
summary runs beneath. Writing (the sweep CLI) and reading (the sweep report) both live here.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from benchmark.tracking.read import BenchmarkRecord, TrackingError, _check_store_exists, _download, load_benchmark
from benchmark.tracking.claims import retry
from benchmark.tracking.context import with_context
from benchmark.tracking.names import sweep_run_name
from benchmark.tracking.local import tracking_uri

TAG = "neipalette."


def point_tags(sweep_run_id: str, point) -> dict[str, str]:
    """Tags of a point's benchmark parent run: nested under the sweep run, findable by the point's key."""
    return {"mlflow.parentRunId": sweep_run_id, f"{TAG}sweep_run_id": sweep_run_id, f"{TAG}sweep_point": point.key,
            f"{TAG}n_outfits": str(point.n_outfits),
            f"{TAG}n_raters": "default" if point.n_raters is None else str(point.n_raters),
            f"{TAG}sigma": "default" if point.sigma is None else f"{point.sigma:g}"}


class SweepTracker:
    def __init__(self, experiment: str):
        from benchmark.tracking.write import Tracker

        self.tracker = Tracker(experiment)  # creates the store and experiment like a benchmark would
        self.client: MlflowClient = self.tracker.client
        self.experiment_id = self.tracker.experiment_id
        self.uri = self.tracker.uri

    def find_unfinished(self, sweep_hash: str) -> str | None:
        flt = f"tags.`{TAG}role` = 'sweep' and tags.`{TAG}sweep_hash` = '{sweep_hash}'"
        for run in self.client.search_runs([self.experiment_id], flt, order_by=["attributes.start_time DESC"]):
            if run.info.status != "FINISHED":
                return run.info.run_id
        return None

    def create(self, *, name: str, sweep_hash: str, config_yaml: str, points: list[dict], git_commit: str) -> str:
        tags = {f"{TAG}role": "sweep", f"{TAG}sweep_hash": sweep_hash, f"{TAG}git_commit": git_commit,
                f"{TAG}n_points": str(len(points))}
        rid = self.client.create_run(self.experiment_id, tags=with_context(tags), run_name=sweep_run_name(name)).info.run_id
        self.client.log_param(rid, "n_points", len(points))
        with tempfile.TemporaryDirectory() as d:
            Path(d, "sweep.yaml").write_text(config_yaml)
            Path(d, "points.json").write_text(json.dumps(points, indent=1))
            self.client.log_artifacts(rid, d)
        return rid

    def point_runs(self, sweep_run_id: str) -> dict[str, object]:
        """point key -> its benchmark parent run (a FINISHED one if any, else the latest)."""
        flt = f"tags.`{TAG}role` = 'parent' and tags.`{TAG}sweep_run_id` = '{sweep_run_id}'"
        runs = self.client.search_runs([self.experiment_id], flt, order_by=["attributes.start_time ASC"],
                                       max_results=10000)
        out: dict[str, object] = {}
        for r in runs:
            key = r.data.tags.get(f"{TAG}sweep_point")
            if key not in out or out[key].info.status != "FINISHED":
                out[key] = r
        return out

    def set_status(self, run_id: str, status: str) -> None:
        if status == "RUNNING":
            retry(lambda: self.client.update_run(run_id, status="RUNNING"))
        else:
            retry(lambda: self.client.set_terminated(run_id, status))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.client.set_tag(run_id, f"{TAG}{key}", value)

    def log_metric(self, run_id: str, key: str, value: float, step: int) -> None:
        self.client.log_metric(run_id, key, float(value), step=int(step))

    def log_point(self, sweep_run_id: str, point_run_id: str, step: int) -> None:
        """The point's headline metrics (`<arch>.roc_auc`, bounds, `ceiling_accuracy`, ... of its benchmark
        parent run) on the sweep run at `step` (the point's n_outfits, or its index where raters or noise vary),
        so the sweep run's charts are the learning curves."""
        now = int(time.time() * 1000)
        metrics = self.client.get_run(point_run_id).data.metrics
        self.client.log_batch(sweep_run_id, metrics=[Metric(k, float(v), now, int(step)) for k, v in metrics.items()
                                                     if k != "sweep_point_seconds"])


@dataclass
class SweepPointRecord:
    key: str
    n_outfits: int
    n_raters: str
    sigma: str
    status: str
    benchmark: BenchmarkRecord


@dataclass
class SweepRecord:
    tracking_uri: str
    run_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    tags: dict[str, str]
    config_text: str | None
    planned: list[dict]
    points: list[SweepPointRecord] = field(default_factory=list)
    _client: MlflowClient | None = field(default=None, repr=False)

    def log_files(self, paths, artifact_path: str = "report") -> None:
        try:
            for p in paths:
                self._client.log_artifact(self.run_id, str(p), artifact_path=artifact_path)
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"cannot log report files on sweep run {self.run_id}: {exc}") from exc


def is_sweep_run(run_id: str, *, uri: str | None = None) -> bool:
    """True when `run_id` names a sweep run (False for any other run or an unknown id)."""
    uri = uri or tracking_uri()
    try:
        _check_store_exists(uri)
        run = MlflowClient(tracking_uri=uri).get_run(run_id)
    except (MlflowException, TrackingError):
        return False
    return run.data.tags.get(f"{TAG}role") == "sweep"


def load_sweep(run_id: str, *, uri: str | None = None) -> SweepRecord:
    """A sweep run with every point's benchmark record (finished or not). Raises TrackingError."""
    uri = uri or tracking_uri()
    _check_store_exists(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise TrackingError(f"no MLflow run with id {run_id!r} at {uri}") from exc
    if run.data.tags.get(f"{TAG}role") != "sweep":
        raise TrackingError(f"run {run_id} is not a sweep run (neipalette.role={run.data.tags.get(f'{TAG}role')})")
    with tempfile.TemporaryDirectory(prefix="neipalette-sweep-") as tmp:
        cfg = _download(client, run_id, "sweep.yaml", Path(tmp))
        pts = _download(client, run_id, "points.json", Path(tmp))
        config_text = cfg.read_text() if cfg else None
        planned = json.loads(pts.read_text()) if pts else []
    record = SweepRecord(uri, run_id, run.info.run_name or "", run.info.status, run.info.start_time,
                         run.info.end_time, dict(run.data.tags), config_text, planned, _client=client)
    flt = f"tags.`{TAG}role` = 'parent' and tags.`{TAG}sweep_run_id` = '{run_id}'"
    children = client.search_runs([run.info.experiment_id], flt, order_by=["attributes.start_time ASC"],
                                  max_results=10000)
    chosen: dict[str, object] = {}
    for r in children:
        key = r.data.tags.get(f"{TAG}sweep_point")
        if key not in chosen or chosen[key].info.status != "FINISHED":
            chosen[key] = r
    for key, r in chosen.items():
        t = r.data.tags
        record.points.append(SweepPointRecord(key, int(t[f"{TAG}n_outfits"]), t.get(f"{TAG}n_raters", "default"),
                                              t.get(f"{TAG}sigma", "default"), r.info.status,
                                              load_benchmark(r.info.run_id, tracking_uri=uri)))
    return record
