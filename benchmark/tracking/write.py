"""Writes a benchmark to MLflow (layout: docs/mlflow-layout.md): parent, fold, summary and final runs."""

from __future__ import annotations

import contextlib
import json
import logging
import hashlib
import os
import random
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow
import pandas as pd
from filelock import FileLock
from mlflow.entities import Dataset as MlflowDataset
from mlflow.entities import DatasetInput, InputTag, LoggedModelOutput
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

import neipalette
from benchmark.tracking.lease import FileLease, TagLease
from benchmark.tracking.store import check_store
from benchmark.tracking.summary import flatten_config, log_summary_run

log = logging.getLogger(__name__)

TAG = "neipalette."
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
_REQUIREMENTS = ("torch", "torchvision", "scikit-learn", "scikit-image", "pandas", "pillow", "numpy", "scipy")
# Workers racing to create the same run (a group's parent, a final model) elect one (Tracker._claim). A claim
# that is neither elected nor FINISHED and older than this was left by a killed process and is ignored.
CLAIM_STALE_S = 30.0


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()


def _pinned_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            out.append(name)
    return out


def local_store_dir() -> Path:
    """Folder of a local sqlite/file store (for the default Optuna journal), else the working directory."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file:").removeprefix("//")).resolve().parent
    return Path.cwd()


@contextlib.contextmanager
def _store_init_lock() -> Iterator[None]:
    """Workers starting together on a new local SQLite store would race to create MLflow's tables (and one
    would crash): a file lock beside the store lets them in one at a time. Other stores: no lock."""
    if not tracking_uri().startswith("sqlite:"):
        yield
        return
    path = local_store_dir() / ".neipalette" / "store.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        yield


@dataclass(frozen=True)
class DatasetRef:
    """The benchmark's dataset as MLflow lineage: `outfits.csv` rows, its folder and its content hash."""

    name: str
    digest: str  # the dataset's content hash (neipalette.data.dataset.dataset_content_hash)
    source: str  # the dataset folder
    table: pd.DataFrame  # outfits.csv as read: outfit_id, top, bottom, label (+ group)


# A registered model's alias must match [\w-]+, must not be `latest` (MLflow resolves models:/<name>/latest
# itself) and must not look like a version (v1, V2).
_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$")


def model_alias(benchmark_name: str) -> str:
    """The registry alias for a benchmark (config) name: `default`, `quick`, `seed-replication`, ..."""
    alias = re.sub(r"[^\w-]+", "-", benchmark_name).strip("-") or "benchmark"
    return f"bench-{alias}" if _RESERVED_ALIAS.match(alias) else alias


def registered_model_name(arch: str) -> str:
    """`neipalette-<arch>`; MLflow forbids ':' and '/' in names, so `torchvision:x` registers as `torchvision-x`."""
    return f"neipalette-{arch}".replace(":", "-").replace("/", "-")


class Tracker:
    def __init__(self, experiment: str, *, project_run: str | None = None):
        """Write into `experiment` (created when missing); with `project_run` (the run `mlflow run` made,
        MLFLOW_RUN_ID), into that run's experiment: the one `mlflow run --experiment-name` chose."""
        # never mlflow.set_tracking_uri: it is process-wide and would outlive this benchmark
        self.uri = tracking_uri()
        check_store(self.uri, write=True)  # a corrupt, read-only or unreachable store: one line, before any run
        with _store_init_lock():  # the first client creates a new SQLite store's tables
            self.client = MlflowClient(tracking_uri=self.uri)
            if project_run:
                try:
                    self.experiment_id = self.client.get_run(project_run).info.experiment_id
                except mlflow.exceptions.MlflowException:
                    raise ValueError(f"MLFLOW_RUN_ID={project_run} is not a run in {self.uri}; unset MLFLOW_RUN_ID "
                                     "or point MLFLOW_TRACKING_URI at the store that holds it") from None
            else:
                exp = self.client.get_experiment_by_name(experiment)
                self.experiment_id = exp.experiment_id if exp else self._create_experiment(experiment)
        self._requirements = _pinned_requirements()
        self.shard = "0/1"  # this worker's shard, tagged on the summary runs it writes
        self.dataset: DatasetRef | None = None  # set by use_dataset: fold and final runs reference it
        self._reserve = _make_reserve(self.uri)

    def release_reserve(self) -> None:
        """Give back the disk space held to close runs on a full disk (see `_make_reserve`)."""
        if self._reserve is not None:
            with contextlib.suppress(OSError):
                self._reserve.unlink()
            self._reserve = None

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
        return self.client.search_runs([self.experiment_id], flt, order_by=["attributes.start_time DESC"],
                                       max_results=1000)

    def get_run(self, run_id: str):
        return self.client.get_run(run_id)

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

        Workers starting at the same moment may both create one; exactly one survives (see `_claim`). The
        claim is the bare tagged run, so racing workers collide only for the instant it takes to create;
        only the winner then logs params and artifacts. Returns (parent run id, created by this call).
        """
        rid, created = self._claim(lambda: self.find_parents(config_hash, group),
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
        self.client.set_tag(run_id, "mlflow.runName", f"benchmark-{name}")
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
        return self.client.create_run(self.experiment_id, tags=tags, run_name=f"benchmark-{name}").info.run_id

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

    def _claim(self, candidates: Callable[[], list[Any]], create: Callable[[], str]) -> tuple[str, bool]:
        """Elect at most one run among workers racing to create it; returns (elected run id, created here).

        `candidates()` lists the active runs competing for the slot. A run counts while it is elected
        (tag `neipalette.elected`, or FINISHED) or is a claim younger than CLAIM_STALE_S. With none, this
        worker creates a claim and looks again: a claim that sees no other wins and is tagged elected, one
        that sees another deletes itself and retries after a random pause. Two claims cannot both win: the
        one that looks later sees the earlier (created before it looked, never deleted, elected right after).
        """
        deadline = time.monotonic() + 4 * CLAIM_STALE_S
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            live = [r for r in candidates() if _counts(r)]
            elected = [r for r in live if _elected(r)]
            if elected:
                return min(elected, key=_age_order).info.run_id, False
            if not live:
                mine = create()
                if not [r for r in candidates() if _counts(r) and r.info.run_id != mine]:
                    self.client.set_tag(mine, f"{TAG}elected", "true")
                    return mine, True
                self.client.delete_run(mine)
            time.sleep(random.uniform(0.1, 0.5 + 0.1 * min(attempt, 10)))
        raise RuntimeError(f"could not elect a run among concurrent workers in {4 * CLAIM_STALE_S:.0f} s")

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
            _retry(lambda: self.client.update_run(run_id, status="RUNNING"))
        else:
            _retry(lambda: self.client.set_terminated(run_id, status))

    def link_project_run(self, parent_id: str) -> None:
        """Under `mlflow run`, the project's own run points to the benchmark's parent run."""
        project_run = os.environ.get("MLFLOW_RUN_ID")
        if project_run and project_run != parent_id:
            with contextlib.suppress(Exception):
                self.client.set_tag(project_run, f"{TAG}benchmark_run_id", parent_id)
                self.client.set_tag(project_run, f"{TAG}role", "project")

    # ---- lineage ------------------------------------------------------------------------------------
    def use_dataset(self, dataset: DatasetRef) -> None:
        """The dataset this benchmark reads: logged as an input of the parent, fold and final runs."""
        self.dataset = dataset

    def record_lineage(self, parent_id: str, *, git_commit: str | None, git_branch: str | None, git_dirty: bool,
                       environment: dict[str, str]) -> None:
        """On the parent: the dataset as an MLflow input (UI: Datasets), the git commit as MLflow's own
        source tags (UI: Version) and the machine it ran on (`neipalette.env.*`)."""
        tags = {f"{TAG}git_dirty": str(git_dirty).lower()}
        if git_commit:
            tags["mlflow.source.git.commit"] = git_commit
        if git_branch:
            tags["mlflow.source.git.branch"] = git_branch
        tags.update({f"{TAG}env.{k}": str(v)[:5000] for k, v in environment.items()})
        for key, value in tags.items():
            _retry(lambda k=key, v=value: self.client.set_tag(parent_id, k, v))
        if self.dataset is not None:
            self._log_dataset(parent_id, self.dataset.table, "benchmark", self.dataset.digest)

    def log_fold_inputs(self, run_id: str, train_ids: Sequence[str], test_ids: Sequence[str]) -> None:
        """A fold run's train and test parts as datasets derived from the benchmark's (contexts train/test;
        tag `neipalette.dataset_digest` names the whole dataset's digest)."""
        if self.dataset is None:
            return
        self.client.set_tag(run_id, f"{TAG}dataset_digest", self.dataset.digest)
        self.client.log_inputs(run_id, [  # one call, one store transaction for both parts
            self._dataset_input(self._subset(ids), context, _subset_digest(self.dataset.digest, ids))
            for ids, context in ((train_ids, "train"), (test_ids, "test"))])

    def _subset(self, outfit_ids: Sequence[str]) -> pd.DataFrame:
        table = self.dataset.table
        return table[table["outfit_id"].astype(str).isin({str(i) for i in outfit_ids})]

    def _log_dataset(self, run_id: str, table: pd.DataFrame, context: str, digest: str) -> None:
        self.client.log_inputs(run_id, [self._dataset_input(table, context, digest)])

    def _dataset_input(self, table: pd.DataFrame, context: str, digest: str) -> DatasetInput:
        ref = self.dataset
        schema = Schema([ColSpec("long" if pd.api.types.is_integer_dtype(t) else "string", str(c))
                         for c, t in table.dtypes.items()])
        entity = MlflowDataset(name=ref.name, digest=digest, source_type="local",
                               source=json.dumps({"uri": ref.source}),
                               schema=json.dumps({"mlflow_colspec": schema.to_dict()}),
                               profile=json.dumps({"num_rows": len(table), "num_elements": int(table.size)}))
        return DatasetInput(entity, [InputTag("mlflow.data.context", context)])

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """Idempotent: workers sharing a parent all set the same tags, sometimes at the same instant."""
        def put() -> None:
            if self.client.get_run(run_id).data.tags.get(f"{TAG}{key}") != value:
                self.client.set_tag(run_id, f"{TAG}{key}", value)
        _retry(put)

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
        run = self.client.create_run(self.experiment_id, tags=tags,
                                     run_name=f"{job.arch}-{job.protocol}-r{job.repeat}f{job.fold}")
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
        self.client.log_batch(
            run_id,
            metrics=[mlflow.entities.Metric(k, float(v), int(time.time() * 1000), 0)
                     for k, v in result.metrics.items()],
            params=[mlflow.entities.Param(k, str(v)) for k, v in result.params.items()],
            tags=study,
        )
        with tempfile.TemporaryDirectory() as d:
            result.predictions.to_csv(Path(d, "predictions.csv"), index=False)
            result.roc.to_csv(Path(d, "roc.csv"), index=False)
            _roc_png(result.roc, result.metrics.get("roc_auc", float("nan")),
                     f"{result.job.arch} {result.job.protocol} r{result.job.repeat} f{result.job.fold}",
                     Path(d, "roc.png"))
            if tuning is not None and tuning.trials is not None and len(tuning.trials):
                tuning.trials.to_csv(Path(d, "trials.csv"), index=False)
                _optimization_history_png(tuning.trials, f"{result.job.arch} {result.job.protocol} "
                                          f"r{result.job.repeat} f{result.job.fold}", Path(d, "optimization_history.png"))
            self.client.log_artifacts(run_id, d)
            if log_model:
                self._log_model(run_id, result.predictor, result.input_mode, include_backbone=False)

    def _log_model(self, run_id: str, predictor, input_mode: str, *, include_backbone: bool) -> str:
        """Save the pyfunc model locally and log it as an MLflow 3 logged model of `run_id` (name `model`,
        so `runs:/<run id>/model` resolves too); returns its model id (`models:/<model id>`)."""
        from neipalette.models.persist import save_predictor

        cols = [ColSpec("string", "image")] if input_mode == "single" else [ColSpec("string", "top"),
                                                                             ColSpec("string", "bottom")]
        cols.append(ColSpec("string", "sample_id", required=False))  # names rows (chance scores key on it)
        signature = ModelSignature(inputs=Schema(cols), outputs=Schema([ColSpec("double")]))
        with tempfile.TemporaryDirectory() as d:
            save_predictor(predictor, Path(d, "predictor"), include_backbone=include_backbone)
            with warnings.catch_warnings():
                # the signature is explicit, so MLflow's advice to add an input example does not apply
                warnings.filterwarnings("ignore", message=r".*[Ii]nput example", category=UserWarning)
                mlflow.pyfunc.save_model(
                    path=str(Path(d, "model")), python_model=str(PYFUNC_CODE),
                    artifacts={"predictor": str(Path(d, "predictor"))},
                    code_paths=[str(Path(neipalette.__file__).parent)], pip_requirements=self._requirements,
                    signature=signature)
            model = self.client.create_logged_model(self.experiment_id, name="model", source_run_id=run_id,
                                                    model_type="pyfunc")
            try:
                self.client.log_model_artifacts(model.model_id, str(Path(d, "model")))
            except BaseException:
                with contextlib.suppress(Exception):
                    self.client.finalize_logged_model(model.model_id, "FAILED")
                raise
        self.client.finalize_logged_model(model.model_id, "READY")
        self.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, 0)])
        return model.model_id

    def log_summary(self, parent_id: str, arch: str, protocol: str, input_mode: str, metrics: dict,
                    n_folds: int, n_train: float, n_test: float) -> str:
        return log_summary_run(self.client, self.experiment_id, parent_id, arch, protocol, input_mode, metrics,
                               n_folds, n_train, n_test, extra_tags={f"{TAG}shard": self.shard})

    def dedupe_summaries(self, parent_id: str, arch: str, protocol: str) -> str | None:
        """Keep the first FINISHED summary run of (arch, protocol) by (start_time, run_id); delete the others.

        Every writer calls this after its summary is FINISHED, so the last to look sees them all and the
        first one is never deleted by anyone: exactly one remains. Returns the one kept.
        """
        runs = sorted((r for r in self.child_runs(parent_id, "summary") if r.info.status == "FINISHED"
                       and r.data.tags.get(f"{TAG}arch") == arch and r.data.tags.get(f"{TAG}protocol") == protocol),
                      key=_age_order)
        for r in runs[1:]:
            with contextlib.suppress(mlflow.exceptions.MlflowException):  # another worker deleted it first
                self.client.delete_run(r.info.run_id)
        return runs[0].info.run_id if runs else None

    def claim_final(self, parent_id: str, arch: str, shard: str) -> str | None:
        """A RUNNING final run for `arch` that this worker is elected to fill, or None (another has it)."""
        def candidates():
            return [r for r in self.child_runs(parent_id, "final") if r.data.tags.get(f"{TAG}arch") == arch
                    and r.info.status in ("RUNNING", "FINISHED")]

        def create():
            tags = {"mlflow.parentRunId": parent_id, f"{TAG}role": "final", f"{TAG}arch": arch,
                    f"{TAG}shard": shard}
            return self.client.create_run(self.experiment_id, tags=tags, run_name=f"final-{arch}").info.run_id

        rid, created = self._claim(candidates, create)
        return rid if created else None

    def log_final(self, parent_id: str, arch: str, predictor, params: dict, input_mode: str,
                  run_id: str | None = None, benchmark_name: str | None = None) -> str:
        """Log the final model into `run_id` (a claim from `claim_final`) or a new run; ends it FINISHED.
        With `benchmark_name`, the model is also registered (`register_final`)."""
        if run_id is None:
            tags = {"mlflow.parentRunId": parent_id, f"{TAG}role": "final", f"{TAG}arch": arch}
            run_id = self.client.create_run(self.experiment_id, tags=tags, run_name=f"final-{arch}").info.run_id
        rid = run_id
        try:
            self.client.log_batch(rid, params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()])
            if self.dataset is not None:  # refit on every outfit
                self._log_dataset(rid, self.dataset.table, "train", self.dataset.digest)
            model_id = self._log_model(rid, predictor, input_mode, include_backbone=True)
            if benchmark_name is not None:
                self.register_final(arch, model_id, rid, parent_id, benchmark_name)
        except BaseException:
            self.client.set_terminated(rid, "FAILED")
            raise
        self.client.set_terminated(rid, "FINISHED")
        return rid

    def register_final(self, arch: str, model_id: str, run_id: str, parent_id: str, benchmark_name: str) -> str:
        """Register a final model as a new version of `neipalette-<arch>` and point the benchmark's alias
        (its config name, e.g. `default`) at it; `models:/neipalette-<arch>/latest` is the newest version.
        Returns the version."""
        name = registered_model_name(arch)
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # exists already (or another worker's)
            self.client.create_registered_model(
                name, description=f"NeiPalette {arch} final models: P(harmonious) of a (top, bottom) image pair")
        tags = {f"{TAG}parent_run_id": parent_id, f"{TAG}benchmark_name": benchmark_name}
        if self.dataset is not None:
            tags[f"{TAG}dataset_digest"] = self.dataset.digest
        version = self.client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id, tags=tags,
                                                   model_id=model_id).version
        alias = model_alias(benchmark_name)
        self.client.set_registered_model_alias(name, alias, version)
        self.client.set_tag(run_id, f"{TAG}registered_model", f"models:/{name}@{alias}")
        log.info("registered %s version %s (alias %s)", name, version, alias)
        return str(version)


def _subset_digest(digest: str, outfit_ids: Sequence[str]) -> str:
    """Digest of a part of the dataset: the whole dataset's content hash and which outfits are in it."""
    h = hashlib.sha256(digest.encode())
    for i in sorted(str(x) for x in outfit_ids):
        h.update(b"\0" + i.encode())
    return h.hexdigest()[:16]


RESERVE_BYTES = 256 * 1024  # far more than SQLite needs to journal one status update


def _make_reserve(uri: str) -> Path | None:
    """A local store fills up with its own disk: hold a little space back (a file beside the store), so that
    a worker stopped by a full disk can still mark its runs FAILED instead of leaving them RUNNING. Reserves
    left by killed workers are removed."""
    if not uri.startswith("sqlite:"):
        return None
    folder = local_store_dir() / ".neipalette"
    for old in folder.glob("reserve.*"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(old.suffix.lstrip("."))
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                old.unlink()
            except PermissionError:
                pass
    path = folder / f"reserve.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
        return path
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def _elected(run) -> bool:
    return run.data.tags.get(f"{TAG}elected") == "true" or run.info.status == "FINISHED"


def _counts(run) -> bool:
    """Elected, or a claim young enough that its worker may still be electing (else: left by a kill)."""
    return _elected(run) or (time.time() * 1000 - (run.info.start_time or 0)) < CLAIM_STALE_S * 1000


def _age_order(run) -> tuple:
    return (run.info.start_time or 0, run.info.run_id)


def _retry(fn: Callable[[], Any], tries: int = 6) -> Any:
    """Writes to a run that other workers write too can hit the store's unique constraints: try again."""
    for attempt in range(tries):
        try:
            return fn()
        except mlflow.exceptions.MlflowException:
            if attempt == tries - 1:
                raise
            time.sleep(random.uniform(0.05, 0.3 * (attempt + 1)))


def _roc_png(roc: pd.DataFrame, auc: float, title: str, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no backend switch

    fig = Figure(figsize=(3.2, 3.2), dpi=100)
    ax = fig.add_subplot()
    ax.plot(roc["fpr"], roc["tpr"], lw=1.8, label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.title.set_fontsize(8)
    ax.legend(loc="lower right", fontsize=8)
    fig.subplots_adjust(left=0.17, bottom=0.14, right=0.96, top=0.92)  # fixed margins: tight_layout costs a third
    fig.savefig(path)


def _optimization_history_png(trials: pd.DataFrame, title: str, path: Path) -> None:
    """Each trial's objective (mean inner score; pruned trials at their last reported mean) and the best so far."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 3.0), dpi=100)
    ax = fig.add_subplot()
    done = trials[trials["state"] == "COMPLETE"]
    ax.scatter(done["number"], done["value"], s=18, label="trial")
    inner = [c for c in trials.columns if c.startswith("inner_score_")]
    pruned = trials[trials["state"] == "PRUNED"]
    if len(pruned) and inner:
        ax.scatter(pruned["number"], pruned[inner].mean(axis=1), s=18, marker="x", c="grey", label="pruned")
    if len(done):
        best = done.set_index("number")["value"].cummax()
        ax.step(best.index, best.to_numpy(), where="post", c="C3", lw=1.5, label="best so far")
    ax.set(xlabel="trial", ylabel="inner CV score", title=title)
    ax.title.set_fontsize(8)
    ax.legend(loc="lower right", fontsize=7)
    fig.subplots_adjust(left=0.15, bottom=0.15, right=0.97, top=0.91)
    fig.savefig(path)
