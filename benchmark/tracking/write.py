"""Writes a benchmark to MLflow (layout: docs/mlflow-layout.md): parent, fold, summary and final runs."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

import neipalette
from benchmark.tracking.claims import age_order, elect, retry
from benchmark.tracking.figures import optimization_history_png, roc_png
from benchmark.tracking.lease import FileLease, TagLease, locked_store_refusal
from benchmark.tracking.lineage import DatasetRef, LineageMixin
from benchmark.tracking.local import local_store_dir, make_reserve, store_init_lock, tracking_uri
from benchmark.tracking.models import ModelsMixin, pinned_requirements
from benchmark.tracking.context import with_context
from benchmark.tracking.names import TAG, fold_run_name, headline_metric, parent_run_name
from benchmark.tracking.store import TrackingError, check_store, is_locked, store_lock_wait_s
from benchmark.tracking.summary import flatten_config, log_summary_run

log = logging.getLogger(__name__)
HEADLINE_METRICS = ("roc_auc", "accuracy")  # the primary metric choices; both go on the parent run


class Tracker(LineageMixin, ModelsMixin):
    def __init__(self, experiment: str, *, project_run: str | None = None):
        """Write into `experiment` (created when missing); with `project_run` (the run `mlflow run` made,
        MLFLOW_RUN_ID), into that run's experiment: the one `mlflow run --experiment-name` chose."""
        # never mlflow.set_tracking_uri: it is process-wide and would outlive this benchmark
        self.uri = tracking_uri()
        check_store(self.uri, write=True)  # a corrupt, read-only or unreachable store: one line, before any run
        with store_init_lock():  # the first client creates a new SQLite store's tables
            self.client = self._patient(lambda: MlflowClient(tracking_uri=self.uri))  # opening reads the schema
            if project_run:
                try:
                    self.experiment_id = self._patient(lambda: self.client.get_run(project_run)).info.experiment_id
                except mlflow.exceptions.MlflowException:
                    raise ValueError(f"MLFLOW_RUN_ID={project_run} is not a run in {self.uri}; unset MLFLOW_RUN_ID "
                                     "or point MLFLOW_TRACKING_URI at the store that holds it") from None
            else:
                exp = self._patient(lambda: self.client.get_experiment_by_name(experiment))
                if exp is not None and exp.lifecycle_stage == "deleted":
                    raise TrackingError(
                        f"the MLflow experiment {experiment!r} is deleted in {self.uri}; restore it with `mlflow "
                        f"experiments restore --experiment-id {exp.experiment_id}` (same MLFLOW_TRACKING_URI), or "
                        "choose another name: --set experiment=NAME")
                self.experiment_id = exp.experiment_id if exp else self._create_experiment(experiment)
        self._requirements = pinned_requirements()
        self.shard = "0/1"  # this worker's shard, tagged on the summary runs it writes
        self.dataset: DatasetRef | None = None  # set by use_dataset: fold and final runs reference it
        self._reserve = make_reserve(self.uri)

    def release_reserve(self) -> None:
        """Give back the disk space held to close runs on a full disk (see `benchmark.tracking.local.make_reserve`)."""
        if self._reserve is not None:
            with contextlib.suppress(OSError):
                self._reserve.unlink()
            self._reserve = None

    def _patient(self, read: Callable[[], Any]) -> Any:
        """`read()`, retried with backoff while a SQLite store stays locked (another worker's write; MLflow's
        own busy timeout is 20 s per statement). After `store_lock_wait_s` a one-line TrackingError names
        the lock's holder: a paused worker blocks reads for as long as it is paused."""
        t0 = time.monotonic()
        pause = 0.5
        while True:
            try:
                return read()
            except Exception as exc:  # noqa: BLE001 - only "database is locked" is retried
                waited = time.monotonic() - t0
                if not is_locked(exc) or not self.uri.startswith("sqlite:"):
                    raise
                if waited >= store_lock_wait_s():
                    raise locked_store_refusal(self.uri, local_store_dir(), waited) from exc
                log.info("the MLflow store %s is locked by another writer; retrying in %.1f s", self.uri, pause)
                time.sleep(pause)
                pause = min(2 * pause, 8.0)

    def _create_experiment(self, name: str) -> str:
        try:
            return self.client.create_experiment(name)
        except mlflow.exceptions.MlflowException:  # another worker created it a moment ago
            return self.client.get_experiment_by_name(name).experiment_id

    # ---- parent -------------------------------------------------------------------------------------
    def find_parents(self, config_hash: str, group: str | None = None) -> list[Any]:
        flt = f"tags.`{TAG}role` = 'parent' and tags.`{TAG}config_hash` = '{config_hash}'"
        if group:
            flt += f" and tags.`{TAG}group` = '{group}'"
        return self._patient(lambda: self.client.search_runs([self.experiment_id], flt, max_results=1000,
                                                             order_by=["attributes.start_time DESC"]))

    def get_run(self, run_id: str):
        return self._patient(lambda: self.client.get_run(run_id))

    def create_parent(self, *, name: str, config: dict, config_hash: str, config_yaml: str,
                      dataset: dict, jobs: list[dict], git_commit: str, group: str | None = None,
                      extra_tags: dict[str, str] | None = None) -> str:
        """A new parent run with its tags, params (the flattened config) and artifacts.

        `extra_tags` (e.g. `mlflow.parentRunId` of a sweep run) are set as given, without the `neipalette.` prefix.
        """
        rid = self._new_parent(name, config_hash, dataset, len(jobs), git_commit, group, extra_tags)
        self._describe_parent(rid, config, config_yaml, dataset, jobs)
        return rid

    def elect_parent(self, *, group: str, name: str, config: dict, config_hash: str, config_yaml: str,
                     dataset: dict, jobs: list[dict], git_commit: str,
                     extra_tags: dict[str, str] | None = None) -> tuple[str, bool]:
        """The one parent of a group: joined when elected already, else created here and elected.

        Workers starting at the same moment may both create one; exactly one survives (see `benchmark.tracking.claims.elect`). The
        claim is the bare tagged run, so racing workers collide only for the instant it takes to create;
        only the winner then logs params and artifacts. Returns (parent run id, created by this call).
        """
        rid, created = elect(self.client, lambda: self.find_parents(config_hash, group),
                                   lambda: self._new_parent(name, config_hash, dataset, len(jobs), git_commit, group,
                                                            extra_tags))
        if created:
            self._describe_parent(rid, config, config_yaml, dataset, jobs)
        return rid, created

    def adopt_parent(self, run_id: str, *, name: str, config: dict, config_hash: str, config_yaml: str,
                     dataset: dict, jobs: list[dict], git_commit: str, extra_tags: dict[str, str] | None = None) -> str:
        """Make an existing run (the project run `mlflow run` created) the benchmark's parent run.

        The run keeps its experiment (the one `mlflow run --experiment-name` chose) and the parameters
        `mlflow run` logged (`config`, `seed`, ... as passed with -P); the resolved config is added as
        parameters where the names do not collide and is always in `config.yaml`.
        """
        run = self.client.get_run(run_id)
        if run.info.experiment_id != self.experiment_id:
            raise ValueError(f"run {run_id} is in experiment {run.info.experiment_id}, this tracker writes to "
                             f"{self.experiment_id}")
        tags = {**(extra_tags or {}), **self._parent_tags(name, config_hash, dataset, len(jobs), git_commit, None)}
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)
        self.client.set_tag(run_id, "mlflow.runName", parent_run_name(name))
        self._describe_parent(run_id, config, config_yaml, dataset, jobs, existing=run.data.params)
        return run_id

    def _parent_tags(self, name: str, config_hash: str, dataset: dict, n_jobs: int, git_commit: str,
                     group: str | None) -> dict[str, str]:
        tags = {f"{TAG}role": "parent", f"{TAG}config_hash": config_hash, f"{TAG}dataset_name": dataset["name"],
                f"{TAG}dataset_hash": dataset["hash"], f"{TAG}git_commit": git_commit,
                f"{TAG}n_jobs": str(n_jobs), f"{TAG}version": neipalette.__version__,
                f"{TAG}benchmark_name": name}
        if group:
            tags[f"{TAG}group"] = group
        return tags

    def _new_parent(self, name: str, config_hash: str, dataset: dict, n_jobs: int, git_commit: str,
                    group: str | None, extra_tags: dict[str, str] | None = None) -> str:
        tags = {**(extra_tags or {}), **self._parent_tags(name, config_hash, dataset, n_jobs, git_commit, group)}
        return self.client.create_run(self.experiment_id, tags=with_context(tags),
                                      run_name=parent_run_name(name)).info.run_id

    def _describe_parent(self, rid: str, config: dict, config_yaml: str, dataset: dict, jobs: list[dict],
                         existing: dict[str, str] | None = None) -> None:
        """Params (the flattened config; names already set on the run are kept as they are: MLflow params
        never change) and the config.yaml, dataset.json and jobs.json artifacts."""
        flat = {k: v for k, v in flatten_config(config).items() if k not in (existing or {})}
        for i in range(0, len(flat), 90):
            self.client.log_batch(rid, params=[mlflow.entities.Param(k, str(v)[:6000])
                                              for k, v in list(flat.items())[i:i + 90]])
        with tempfile.TemporaryDirectory() as d:
            Path(d, "config.yaml").write_text(config_yaml)
            Path(d, "dataset.json").write_text(json.dumps(dataset, indent=2))
            Path(d, "jobs.json").write_text(json.dumps(jobs, indent=1))
            self.client.log_artifacts(rid, d)


    def acquire_lease(self, parent_id: str, shard: str):
        """This worker's lease on (parent, shard); raises LeaseHeld naming the live holder (see lease.py)."""
        if self.uri.startswith(("sqlite:", "file:")):
            return FileLease(local_store_dir(), parent_id, shard).acquire()
        return TagLease(self.client, parent_id, shard).acquire()

    def end_parent(self, run_id: str, status: str, error: str | None = None, *, best_effort: bool = True) -> None:
        """The error as a tag, then the final status. `best_effort` (the error path, where the store may be what
        failed): nothing raises. Otherwise a failing write raises, so success is never claimed on a RUNNING run."""
        def end() -> None:
            if error:
                self.client.set_tag(run_id, f"{TAG}error", error[:5000])
            self.set_parent_status(run_id, status)

        if not best_effort:
            return end()
        try:
            end()
        except Exception:  # noqa: BLE001 - e.g. a full disk: free the reserve and try once more
            if self._reserve is None:
                return
            self.release_reserve()
            with contextlib.suppress(Exception):
                end()

    def set_parent_status(self, run_id: str, status: str) -> None:
        if status == "RUNNING":
            retry(lambda: self.client.update_run(run_id, status="RUNNING"))
        else:
            retry(lambda: self.client.set_terminated(run_id, status))

    def link_project_run(self, parent_id: str) -> None:
        """Under `mlflow run`, the project's own run points to the benchmark's parent run."""
        project_run = os.environ.get("MLFLOW_RUN_ID")
        if project_run and project_run != parent_id:
            with contextlib.suppress(Exception):
                self.client.set_tag(project_run, f"{TAG}benchmark_run_id", parent_id)
                self.client.set_tag(project_run, f"{TAG}role", "project")


    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """Idempotent: workers sharing a parent all set the same tags, sometimes at the same instant."""
        def put() -> None:
            if self.client.get_run(run_id).data.tags.get(f"{TAG}{key}") != value:
                self.client.set_tag(run_id, f"{TAG}{key}", value)
        retry(put)

    # ---- children -----------------------------------------------------------------------------------
    def child_runs(self, parent_id: str, role: str) -> list[Any]:
        flt = f"tags.`mlflow.parentRunId` = '{parent_id}' and tags.`{TAG}role` = '{role}'"
        return self.client.search_runs([self.experiment_id], flt, max_results=50000)

    def finished_jobs(self, parent_id: str) -> dict[str, Any]:
        return {r.data.tags[f"{TAG}job_key"]: r for r in self.child_runs(parent_id, "fold")
                if r.info.status == "FINISHED"}

    def kill_stale(self, parent_id: str, job_keys: set[str], shard: str | None = None, *,
                   summaries_older_than_s: float = 0.0) -> int:
        """Runs left RUNNING by a killed process become KILLED (they are redone).

        Fold runs: only those of `job_keys` (this worker's shard). Final-model and summary runs left RUNNING
        by this shard's worker (tag `neipalette.shard`); other workers' summary runs (written in well under a
        second) only when started more than `summaries_older_than_s` ago: they may be writing them now.
        """
        n = 0
        now_ms = time.time() * 1000
        for role in ("fold", "summary", "final"):
            for r in self.child_runs(parent_id, role):
                if r.info.status != "RUNNING":
                    continue
                if role == "fold" and r.data.tags.get(f"{TAG}job_key") not in job_keys:
                    continue
                if role == "final" and r.data.tags.get(f"{TAG}shard") != shard:
                    continue
                if (role == "summary" and r.data.tags.get(f"{TAG}shard") != shard
                        and now_ms - r.info.start_time < summaries_older_than_s * 1000):
                    continue  # another worker may be writing it right now
                self.client.set_terminated(r.info.run_id, "KILLED")
                n += 1
        return n

    @contextlib.contextmanager
    def fold_run(self, parent_id: str, job) -> Iterator[str]:
        """A child run that ends FINISHED, or FAILED with the error as a tag (never left RUNNING)."""
        tags = {"mlflow.parentRunId": parent_id, f"{TAG}role": "fold", f"{TAG}job_key": job.key,
                f"{TAG}arch": job.arch, f"{TAG}protocol": job.protocol}
        run = self.client.create_run(self.experiment_id, tags=with_context(tags),
                                     run_name=fold_run_name(job.arch, job.protocol, job.repeat, job.fold))
        rid = run.info.run_id
        try:
            yield rid
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}".splitlines()[0][:5000] if str(exc) else type(exc).__name__
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            with contextlib.suppress(Exception):
                self.client.set_tag(rid, f"{TAG}error", message)
                self.client.set_terminated(rid, status)
            raise
        self.client.set_terminated(rid, "FINISHED")

    def log_fold(self, run_id: str, result, *, log_model: bool) -> None:
        tuning = result.tuning
        study = [mlflow.entities.RunTag(f"{TAG}study_name", tuning.study_name)] if tuning and tuning.study_name else []
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[mlflow.entities.Metric(k, float(v), now, 0) for k, v in result.metrics.items()]
            + [mlflow.entities.Metric(k, float(v), now, epoch)  # step = epoch: the UI charts them as curves
               for k, curve in result.curves.items() for epoch, v in enumerate(curve, start=1) if math.isfinite(v)],
            params=[mlflow.entities.Param(k, str(v)) for k, v in result.params.items()],
            tags=study,
        )
        with tempfile.TemporaryDirectory() as d:
            result.predictions.to_csv(Path(d, "predictions.csv"), index=False)
            result.roc.to_csv(Path(d, "roc.csv"), index=False)
            roc_png(result.roc, result.metrics.get("roc_auc", float("nan")),
                     f"{result.job.arch} {result.job.protocol} r{result.job.repeat} f{result.job.fold}",
                     Path(d, "roc.png"))
            if tuning is not None and tuning.trials is not None and len(tuning.trials):
                tuning.trials.to_csv(Path(d, "trials.csv"), index=False)
                optimization_history_png(tuning.trials, f"{result.job.arch} {result.job.protocol} "
                                          f"r{result.job.repeat} f{result.job.fold}", Path(d, "optimization_history.png"))
            self.client.log_artifacts(run_id, d)
            if log_model:
                self._log_model(run_id, result.predictor, result.input_mode, include_backbone=False)


    def log_summary(self, parent_id: str, arch: str, protocol: str, input_mode: str, metrics: dict,
                    n_folds: int, n_train: float, n_test: float, primary_metric: str = "roc_auc") -> str:
        return log_summary_run(self.client, self.experiment_id, parent_id, arch, protocol, input_mode, metrics,
                               n_folds, n_train, n_test, primary_metric=primary_metric,
                               extra_tags={f"{TAG}shard": self.shard})

    def log_parent_json(self, parent_id: str, name: str, data: dict) -> None:
        """One JSON artifact on the parent run (e.g. `feature_probe.json`); writing it again replaces it."""
        retry(lambda: self.client.log_dict(parent_id, data, name))

    def log_headline(self, parent_id: str, arch: str, metrics: dict) -> None:
        """The model's CV means and interval bounds on the parent run (`<arch>.roc_auc`, `<arch>.roc_auc_ci_low`,
        ..., and `ceiling_accuracy`), so the experiment list can sort and chart benchmarks by result. Workers
        that finish the same group at once write the same values: last write wins, nothing differs."""
        now = int(time.time() * 1000)
        values = {}
        for m in HEADLINE_METRICS:
            for suffix in ("", "_ci_low", "_ci_high"):
                v = metrics.get(f"{m}_mean" if not suffix else f"{m}{suffix}")
                if v is not None and math.isfinite(float(v)):
                    values[headline_metric(arch, m + suffix)] = float(v)
        ceiling = metrics.get("ceiling_accuracy_mean")
        if ceiling is not None and math.isfinite(float(ceiling)):
            values["ceiling_accuracy"] = float(ceiling)
        if values:
            self.client.log_batch(parent_id, metrics=[mlflow.entities.Metric(k, v, now, 0)
                                                      for k, v in values.items()])

    def dedupe_summaries(self, parent_id: str, arch: str, protocol: str) -> str | None:
        """Keep the first FINISHED summary run of (arch, protocol) by (start_time, run_id); delete the others.

        Every writer calls this after its summary is FINISHED, so the last to look sees them all and the
        first one is never deleted by anyone: exactly one remains. Returns the one kept.
        """
        runs = sorted((r for r in self.child_runs(parent_id, "summary") if r.info.status == "FINISHED"
                       and r.data.tags.get(f"{TAG}arch") == arch and r.data.tags.get(f"{TAG}protocol") == protocol),
                      key=age_order)
        for r in runs[1:]:
            with contextlib.suppress(mlflow.exceptions.MlflowException):  # another worker deleted it first
                self.client.delete_run(r.info.run_id)
        return runs[0].info.run_id if runs else None


