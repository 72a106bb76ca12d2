"""Reads one benchmark back from MLflow as plain data (the report's only window onto MLflow).

Layout in docs/mlflow-layout.md. `load_benchmark` returns a `BenchmarkRecord`: the parent run, a DataFrame
of fold runs (params, metrics, tags, status), the summary runs, and the parent's `jobs.json`,
`dataset.json` and `config.yaml`. The record also downloads artifacts and writes back what the report adds
(summary runs, report files), so that nothing outside `benchmark/tracking/` imports mlflow.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import yaml
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from benchmark.tracking.store import TrackingError, check_store
from benchmark.tracking.summary import flatten_config, log_summary_run

logger = logging.getLogger(__name__)

TAG = "neipalette."
JOB_KEYS = ("arch", "protocol", "repeat", "fold")
FOLD_COLUMNS = (
    "run_id", "status", "start_time", "end_time", "job_key", "arch", "protocol", "input_mode", "repeat", "fold",
    "n_train", "n_test", "learning_rate", "epochs", "seed", "tuning_trials", "error",
)
_NUMERIC_PARAMS = ("n_train", "n_test", "learning_rate", "seed")


@dataclass(frozen=True)
class ParentRun:
    run_id: str
    experiment_id: str
    experiment_name: str
    status: str
    start_time: int | None
    end_time: int | None
    run_name: str
    tags: dict[str, str]
    params: dict[str, str]

    @property
    def weights(self) -> dict[str, str]:
        """`{arch: weights actually used}` from the `neipalette.weights.<arch>` tags."""
        prefix = f"{TAG}weights."
        return {k[len(prefix):]: v for k, v in sorted(self.tags.items()) if k.startswith(prefix)}


@dataclass
class BenchmarkRecord:
    """One benchmark as read from MLflow. `folds` holds every fold run (any status, retries included)."""

    tracking_uri: str
    parent: ParentRun
    folds: pd.DataFrame
    summaries: pd.DataFrame
    metric_names: tuple[str, ...]
    jobs: list[dict] | None = None
    dataset: dict | None = None
    config_text: str | None = None
    _client: MlflowClient | None = field(default=None, repr=False, compare=False)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    # -- plain-data views -------------------------------------------------------------------------------
    def finished_folds(self) -> pd.DataFrame:
        """One row per job (arch, protocol, repeat, fold): its latest FINISHED fold run."""
        done = self.folds[self.folds["status"] == "FINISHED"]
        done = done.sort_values("start_time", kind="stable")
        done = done.drop_duplicates(subset=list(JOB_KEYS), keep="last")
        return done.sort_values(list(JOB_KEYS), kind="stable").reset_index(drop=True)

    def planned_jobs(self) -> pd.DataFrame:
        """The parent's `jobs.json` as a DataFrame (falls back to the fold runs seen when it is absent)."""
        if self.jobs is not None:
            frame = pd.DataFrame(self.jobs, columns=list(JOB_KEYS))
        else:
            frame = self.folds[list(JOB_KEYS)].drop_duplicates()
        frame = frame.astype({"arch": str, "protocol": str})
        frame["repeat"] = pd.to_numeric(frame["repeat"]).astype(int)
        frame["fold"] = pd.to_numeric(frame["fold"]).astype(int)
        return frame.reset_index(drop=True)

    def missing_jobs(self) -> pd.DataFrame:
        """Planned jobs without a FINISHED fold run, with the latest attempt's status and error (if any)."""
        planned = self.planned_jobs()
        done = self.finished_folds()[list(JOB_KEYS)].assign(_done=True)
        merged = planned.merge(done, on=list(JOB_KEYS), how="left")
        missing = merged[merged["_done"].isna()].drop(columns="_done")
        attempts = self.folds.sort_values("start_time", kind="stable").drop_duplicates(list(JOB_KEYS), keep="last")
        missing = missing.merge(attempts[[*JOB_KEYS, "status", "error", "run_id"]], on=list(JOB_KEYS), how="left")
        missing["status"] = missing["status"].fillna("NOT STARTED")
        return missing.sort_values(list(JOB_KEYS), kind="stable").reset_index(drop=True)

    # -- artifacts --------------------------------------------------------------------------------------
    def download_artifact(self, run_id: str, path: str, dst_dir: str | Path) -> Path | None:
        """Download one artifact of a run into `dst_dir`; None when the run has no such artifact."""
        return _download(self.client, run_id, path, Path(dst_dir))

    def artifact_csv(self, run_id: str, path: str) -> pd.DataFrame | None:
        """Read a CSV artifact of a run (e.g. `roc.csv`, `predictions.csv`); None when absent."""
        tmp = Path(tempfile.mkdtemp(prefix="neipalette-artifact-"))
        try:
            local = self.download_artifact(run_id, path, tmp)
            return None if local is None else pd.read_csv(local)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def latest_coverage(self, tags: Mapping[str, str]) -> tuple[dict, pd.DataFrame] | None:
        """The newest coverage run (`python -m benchmark.coverage`) in this experiment matching `tags`."""
        from benchmark.tracking.coverage import latest_coverage

        return latest_coverage(self.client, self.parent.experiment_id, dict(tags))

    # -- write-back -------------------------------------------------------------------------------------
    def add_summary_run(self, arch: str, protocol: str, input_mode: str, metrics: Mapping[str, float],
                        n_folds: int, n_train: float, n_test: float, primary_metric: str = "roc_auc") -> str:
        """Write a summary run for (arch, protocol) under the parent (see `log_summary_run`)."""
        try:
            run_id = log_summary_run(self.client, self.parent.experiment_id, self.parent.run_id, arch, protocol,
                                     input_mode, metrics, n_folds, n_train, n_test, primary_metric=primary_metric,
                                     extra_tags={f"{TAG}written_by": "report"})
        except MlflowException as exc:
            raise TrackingError(f"cannot write a summary run to {self.tracking_uri}: {_one_line(exc)}") from exc
        row = {"run_id": run_id, "status": "FINISHED", "arch": arch, "protocol": protocol}
        self.summaries = pd.concat([self.summaries, pd.DataFrame([row])], ignore_index=True)
        return run_id

    def log_files(self, paths: Iterable[str | Path], artifact_path: str = "report") -> None:
        """Log local files as artifacts of the parent run under `artifact_path`."""
        try:
            for p in paths:
                self.client.log_artifact(self.parent.run_id, str(p), artifact_path=artifact_path)
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"cannot log report files on run {self.parent.run_id}: {_one_line(exc)}") from exc


def load_benchmark(run_id: str | None = None, experiment: str = "neipalette", *,
                   tracking_uri: str | None = None) -> BenchmarkRecord:
    """Read a benchmark: the parent `run_id` (any status), else the latest FINISHED parent in `experiment`.

    Tracking URI: `tracking_uri`, else MLFLOW_TRACKING_URI, else MLflow's default. Raises TrackingError.
    A read-only store can be read (writing back what the report adds then fails, in one line).
    """
    uri = tracking_uri or mlflow.get_tracking_uri()
    _check_store_exists(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        run = _find_parent(client, run_id, experiment, uri)
        exp = client.get_experiment(run.info.experiment_id)
        children = _search_all(client, run.info.experiment_id, f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    except MlflowException as exc:
        raise TrackingError(f"cannot read {uri}: {_one_line(exc)}") from exc
    parent = ParentRun(
        run_id=run.info.run_id, experiment_id=run.info.experiment_id, experiment_name=exp.name,
        status=run.info.status, start_time=run.info.start_time, end_time=run.info.end_time,
        run_name=run.info.run_name or "", tags=dict(run.data.tags), params=dict(run.data.params),
    )
    fold_runs = [r for r in children if r.data.tags.get(f"{TAG}role") == "fold"]
    summary_runs = [r for r in children if r.data.tags.get(f"{TAG}role") == "summary"]
    folds, metric_names = _fold_frame(fold_runs)
    record = BenchmarkRecord(tracking_uri=uri, parent=parent, folds=folds, summaries=_summary_frame(summary_runs),
                             metric_names=metric_names, _client=client)
    with tempfile.TemporaryDirectory(prefix="neipalette-parent-") as tmp:
        jobs = _download(client, parent.run_id, "jobs.json", Path(tmp))
        dataset = _download(client, parent.run_id, "dataset.json", Path(tmp))
        config = _download(client, parent.run_id, "config.yaml", Path(tmp))
        record.jobs = json.loads(jobs.read_text()) if jobs else None
        record.dataset = json.loads(dataset.read_text()) if dataset else None
        record.config_text = config.read_text() if config else None
    if record.config_text:
        record.parent = _with_resolved_config(record.parent, record.config_text)
    loaded = {"jobs.json": record.jobs, "dataset.json": record.dataset, "config.yaml": record.config_text}
    for name, value in loaded.items():
        if value is None:
            logger.warning("parent run %s has no %s artifact", parent.run_id, name)
    return record


# -- internals ------------------------------------------------------------------------------------------
def _with_resolved_config(parent: ParentRun, config_text: str) -> ParentRun:
    """Params as the benchmark resolved them. A parent that is an `mlflow run` project run holds the -P
    values `mlflow run` logged first (`seed=config`: "the config file's value"), and MLflow params never
    change; `config.yaml` has the values the benchmark used."""
    try:
        config = yaml.safe_load(config_text)
    except yaml.YAMLError:
        return parent
    if not isinstance(config, dict):
        return parent
    resolved = {k: str(v) for k, v in flatten_config(config).items()}
    return dataclasses.replace(parent, params={**parent.params, **resolved})


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_store_exists(uri: str) -> None:
    # Opening a missing SQLite store would silently create an empty one in the working directory.
    check_store(uri, write=False, must_exist=True)


def _find_parent(client: MlflowClient, run_id: str | None, experiment: str, uri: str):
    if run_id is not None:
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            raise TrackingError(f"no MLflow run with id {run_id!r} at {uri}") from exc
        role = run.data.tags.get(f"{TAG}role")
        if role != "parent":
            hint = run.data.tags.get("mlflow.parentRunId")
            more = f"; its parent is {hint}" if hint else ""
            raise TrackingError(f"run {run_id} is not a benchmark parent run (neipalette.role={role}){more}")
        return run
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise TrackingError(f"no MLflow experiment named {experiment!r} at {uri}")
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{TAG}role` = 'parent' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not runs:
        raise TrackingError(f"no FINISHED benchmark parent run in experiment {experiment!r} at {uri}; "
                            "pick an unfinished one by its run id")
    return runs[0]


def _search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, run_view_type=ViewType.ACTIVE_ONLY,
                                  max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _fold_frame(runs: Sequence) -> tuple[pd.DataFrame, tuple[str, ...]]:
    rows, metric_names = [], {}
    for r in runs:
        p, t = r.data.params, r.data.tags
        row = {
            "run_id": r.info.run_id, "status": r.info.status, "start_time": r.info.start_time,
            "end_time": r.info.end_time, "job_key": t.get(f"{TAG}job_key"),
            "arch": p.get("arch", t.get(f"{TAG}arch")), "protocol": p.get("protocol", t.get(f"{TAG}protocol")),
            "input_mode": p.get("input_mode"), "repeat": p.get("repeat"), "fold": p.get("fold"),
            "n_train": p.get("n_train"), "n_test": p.get("n_test"), "learning_rate": p.get("learning_rate"),
            "epochs": p.get("epochs"), "seed": p.get("seed"), "tuning_trials": p.get("tuning_trials"),
            "error": t.get(f"{TAG}error"),
        }
        if row["repeat"] is None or row["fold"] is None:
            _fill_from_job_key(row)
        for k, v in r.data.metrics.items():
            metric_names.setdefault(k, None)
            row[k] = float(v)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*FOLD_COLUMNS, *metric_names])
    for col in ("repeat", "fold"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    for col in (*_NUMERIC_PARAMS, *metric_names):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame, tuple(metric_names)


def _fill_from_job_key(row: dict) -> None:
    parts = (row.get("job_key") or "").split("|")
    if len(parts) == 4:
        for k, v in zip(JOB_KEYS, parts):
            if row.get(k) is None:
                row[k] = v


def _summary_frame(runs: Sequence) -> pd.DataFrame:
    rows = []
    for r in runs:
        row = {"run_id": r.info.run_id, "status": r.info.status,
               "arch": r.data.params.get("arch", r.data.tags.get(f"{TAG}arch")),
               "protocol": r.data.params.get("protocol", r.data.tags.get(f"{TAG}protocol"))}
        row.update({k: float(v) for k, v in r.data.metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=["run_id", "status", "arch", "protocol"] if not rows else None)


def _download(client: MlflowClient, run_id: str, path: str, dst: Path) -> Path | None:
    # One progress bar per small CSV would drown the report's own output; a user's explicit setting wins.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    dst.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(client.download_artifacts(run_id, path, str(dst)))
    except (MlflowException, OSError) as exc:
        logger.debug("run %s has no artifact %s: %s", run_id, path, exc)
        return None
    return local if local.is_file() else None
