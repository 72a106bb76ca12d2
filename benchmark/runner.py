"""Runs a benchmark: plans fold jobs, skips finished ones (resume, shards), logs everything to MLflow.

What is written once folds are done (summary runs, final models, the feature probe) lives in `benchmark.finish`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from benchmark.config import BASELINE_NAMES, BenchmarkConfig
from benchmark.finish import failure_line, is_fatal, log_feature_probe, maybe_final_models, maybe_finish_group
from benchmark.folds import FoldResult, run_fold
from benchmark.protocols import Job, all_splits, plan_jobs, shard_of, split_grouping
from benchmark.environment import git_info, machine_info
from benchmark.tracking.lineage import DatasetRef
from benchmark.tracking.local import local_store_dir, tracking_uri
from benchmark.tracking.write import Tracker
from benchmark.tuning import make_storage
from neipalette.models.baselines import make_baseline
from neipalette.data.aggregate import read_agreement, read_rater_ceiling
from neipalette.errors import UserError, one_line
from neipalette.data.dataset import Dataset, load_dataset, outfits_table
from neipalette.models.device import describe, resolve_device
from neipalette.models.estimator import CNNConfig, CNNEstimator
from neipalette.models.variants import model_settings, split_model_name
from neipalette.seeding import seed_everything

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunOptions:
    resume: bool = False
    shard: tuple[int, int] = (0, 1)
    group: str | None = None
    run_id: str | None = None
    optuna_storage: str | None = None
    # Tags for a parent run this call creates, e.g. a sweep's `mlflow.parentRunId` (parent-of-parent).
    parent_tags: tuple[tuple[str, str], ...] = ()


@dataclass
class Outcome:
    parent_run_id: str
    tracking_uri: str
    n_jobs: int
    n_done_before: int
    n_run: int
    n_failed: int
    complete: bool
    seconds: float
    weights: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # one line per failed fold job or final model


def prepare_dataset(cfg: BenchmarkConfig) -> Dataset:
    """Load (building the generated default first when missing) and validate before anything trains."""
    root = Path(cfg.dataset)
    if not root.is_absolute() and not root.exists() and (REPO / root).exists():
        root = REPO / root
    if not (root / "outfits.csv").exists():
        gen = cfg.generate
        if gen is None and root.resolve() == (REPO / "data" / "synthetic-40").resolve():
            from benchmark.config import GenerateSettings
            gen = GenerateSettings()
        if gen is not None:
            from neipalette.data.synth import SynthConfig, generate_dataset
            log.info("generating %s (%d outfits, seed %d)", root, gen.outfits, gen.seed)
            generate_dataset(SynthConfig(n_outfits=gen.outfits, seed=gen.seed), root)
    return load_dataset(root, min_per_class=cfg.n_splits if "cv" in cfg.protocols else None)


def git_commit() -> str:
    """`<commit>[-dirty]` of this checkout, or `unknown`."""
    return git_info(REPO).label


def project_run(opts: RunOptions) -> str | None:
    """The run `mlflow run` created for this process (MLFLOW_RUN_ID), which becomes the benchmark's parent;
    None outside `mlflow run`, and when --run-id, --group or --resume name another parent (then the project
    run only points at it), and for a sweep's point (its parent is nested under the sweep run)."""
    rid = os.environ.get("MLFLOW_RUN_ID")
    return rid if rid and not (opts.run_id or opts.group or opts.resume or opts.parent_tags) else None


def dataset_ref(ds: Dataset, content_hash: str) -> DatasetRef:
    table = outfits_table(ds.root)  # the loader's parser: a file `data check` passes is read the same way
    return DatasetRef(name=ds.name, digest=content_hash, source=str(Path(ds.root).resolve()), table=table)


class Models:
    """One estimator per (model, input mode); CNN backbones are built once per architecture."""

    def __init__(self, cfg: BenchmarkConfig):
        self.cfg = cfg
        self._backbones: dict[str, tuple] = {}
        self._estimators: dict[tuple[str, str], object] = {}

    def get(self, name: str, input_mode: str):
        key = (name, input_mode)
        if key not in self._estimators:
            if name in self.cfg.archs:  # a variant `<arch>+<option>` shares its arch's backbone (and cache keys)
                m = self.cfg.model
                arch, features, hybrid = model_settings(name, m.features, m.hybrid)
                ccfg = CNNConfig(arch=arch, weights=m.weights, input_mode=input_mode, fine_tune=m.fine_tune,
                                 image_size=m.image_size, n_views=m.n_views, batch_size=m.batch_size,
                                 weight_decay=m.weight_decay, cache=m.cache, cache_dir=m.cache_dir,
                                 device=m.device, features=features, hybrid=hybrid)
                est = CNNEstimator(ccfg, seed=self.cfg.seed, backbone=self._backbones.get(arch))
                self._backbones[arch] = (est.backbone, est.weights)
            else:  # a baseline that tunes itself (colour_pattern) uses the config's inner folds and objective
                t = self.cfg.tuning
                est = make_baseline(name, inner_folds=t.inner_folds, objective=t.objective, tune=t.enabled)
            self._estimators[key] = est
        return self._estimators[key]

    def weights(self, name: str) -> str:
        return self.get(name, self.cfg.input_mode).weights.detail


def _dataset_info(ds: Dataset, content_hash: str) -> dict:
    labels = ds.labels
    info = {"name": ds.name, "root": str(ds.root), "n_outfits": len(ds.outfits), "n_positive": int(labels.sum()),
            "n_negative": int(len(labels) - labels.sum()), "hash": content_hash, "has_truth": ds.truth is not None,
            "n_groups": len(set(ds.groups.tolist())), "split_grouping": split_grouping(ds)[1]}
    if ds.truth is None:  # no known ceiling: the estimate from the raters' votes, if aggregated
        info["rater_ceiling"] = read_rater_ceiling(ds.root)
        info["rater_agreement"] = read_agreement(ds.root)
    if ds.p_positive is not None:  # the report's noise ceiling and its spread under label noise need each outfit's
        info["labels"] = [int(v) for v in labels]
        info["p_positive"] = [round(float(v), 6) for v in ds.p_positive]
    meta = Path(ds.root) / "synth.json"
    if meta.is_file():  # which generator made it: the report shows the coverage measured on that generator
        try:
            synth_meta = json.loads(meta.read_text())
            info["generator"] = {"name": synth_meta.get("generator"), "version": synth_meta.get("version"),
                                 "n_outfits": len(ds.outfits)}
        except (OSError, ValueError):
            log.warning("could not read %s", meta)
    return info


def _attach_parent(tracker: Tracker, cfg: BenchmarkConfig, opts: RunOptions, ds: Dataset,
                   jobs: list[Job], dhash: str | None = None) -> tuple[str, bool]:
    """The parent run to write into: given, resumed, shared by a group, the `mlflow run` project run, or
    new. Returns (id, created: whether this call made it the parent)."""
    chash = cfg.result_hash()
    dhash = dhash or ds.content_hash()
    if opts.run_id:
        try:
            run = tracker.get_run(opts.run_id)
        except Exception:  # noqa: BLE001 - MLflow raises several types for an unknown id
            raise UserError(f"run {opts.run_id} not found in {tracker.uri}; check --run-id and MLFLOW_TRACKING_URI") from None
        if run.data.tags.get("neipalette.config_hash") != chash:
            raise UserError(f"run {opts.run_id} was made with another config; pass the same config and --set values")
        _same_data(run, dhash)
        return opts.run_id, False
    if opts.resume and not opts.group:
        for run in tracker.find_parents(chash):
            if run.info.lifecycle_stage == "active" and run.info.status != "FINISHED":
                _same_data(run, dhash)
                return run.info.run_id, False
    cfg_dict = cfg.to_dict()
    parent = dict(name=cfg.name, config=cfg_dict, config_hash=chash,
                  config_yaml=yaml.safe_dump(cfg_dict, sort_keys=False), dataset=_dataset_info(ds, dhash),
                  jobs=[{"arch": j.arch, "protocol": j.protocol, "repeat": j.repeat, "fold": j.fold} for j in jobs],
                  git_commit=git_commit(), extra_tags=dict(opts.parent_tags))
    if opts.group:  # the group's one parent: joined, or created by the first worker (elected if several race)
        return tracker.elect_parent(group=opts.group, **parent)
    if project := project_run(opts):  # inside `mlflow run`: its run is the parent, not a second run
        return tracker.adopt_parent(project, **parent), True
    return tracker.create_parent(**parent), True


def _same_data(run, dataset_hash: str) -> None:
    """Folds of one benchmark must all see the same data: refuse to continue on changed images or labels."""
    recorded = run.data.tags.get("neipalette.dataset_hash")
    if recorded and recorded != dataset_hash:
        raise UserError(f"the dataset changed since run {run.info.run_id} started (hash {recorded} -> {dataset_hash}); "
                         "restore it, or start a fresh benchmark without --resume")


def _order(jobs: list[Job]) -> list[Job]:
    """Baselines first (fast, fail early), then architecture by architecture (warm caches)."""
    return sorted(jobs, key=lambda j: (j.arch not in BASELINE_NAMES, j.arch,
                                       j.protocol, j.repeat, j.fold))


def run_benchmark(cfg: BenchmarkConfig, opts: RunOptions = RunOptions(), *,
                  on_fold: Callable[[FoldResult, int, int], None] | None = None,
                  progress: bool = True) -> Outcome:
    """Run every pending fold job of this shard; returns what was done.

    Everything that bad input can break (dataset, weights, Optuna storage, tracking store) is checked before
    a run is created. From the moment the parent exists, any exception or signal ends it FAILED or KILLED
    with the error as its `neipalette.error` tag. Raises DatasetError / UserError / TrackingError (LeaseHeld
    when another live worker holds this shard).
    """
    t_start = time.perf_counter()
    seed_everything(cfg.seed)
    ds = prepare_dataset(cfg)
    splits = all_splits(ds, cfg)
    jobs = plan_jobs(cfg, splits)
    models = Models(cfg)
    weights = {arch: models.weights(arch) for arch in cfg.archs}  # an unusable weights file fails here
    tracker = Tracker(cfg.experiment, project_run=project_run(opts))  # checks the store first; creates no run
    try:
        storage = _open_storage(opts.optuna_storage or cfg.tuning.storage,
                                local_store_dir() / ".neipalette" / "optuna.journal")
        dhash = ds.content_hash()
        parent, created = _attach_parent(tracker, cfg, opts, ds, jobs, dhash)
        index, n_shards = opts.shard
        lease = tracker.acquire_lease(parent, f"{index}/{n_shards}")  # refused: a live worker does this work
        try:
            return _run_attached(tracker, parent, created, lease, cfg, opts, ds, dhash, splits, jobs, models,
                                 weights, storage, on_fold, progress, t_start)
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            tracker.end_parent(parent, status, one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))
            raise
        finally:
            lease.release()
    finally:
        tracker.release_reserve()


def _run_attached(tracker: Tracker, parent: str, created: bool, lease, cfg: BenchmarkConfig, opts: RunOptions,
                  ds: Dataset, dhash: str, splits: dict, jobs: list[Job], models: "Models", weights: dict[str, str],
                  storage, on_fold, progress: bool, t_start: float) -> Outcome:
    """The guarded part of `run_benchmark`: this worker holds the lease of its shard of `parent`."""
    tracker.link_project_run(parent)
    tracker.set_tag(parent, "split_grouping", split_grouping(ds)[0])
    tracker.use_dataset(dataset_ref(ds, dhash))
    if created:
        git = git_info(REPO)
        tracker.record_lineage(parent, git_commit=git.commit, git_branch=git.branch, git_dirty=git.dirty,
                               environment=machine_info())
    index, n_shards = opts.shard
    tracker.shard = f"{index}/{n_shards}"
    mine = [j for j in jobs if shard_of(j, n_shards) == index]
    shared = n_shards > 1 or opts.group is not None
    tracker.kill_stale(parent, {j.key for j in mine}, shard=f"{index}/{n_shards}",
                       summaries_older_than_s=60.0 if shared else 0.0)
    done = tracker.finished_jobs(parent)
    pending = _order([j for j in mine if j.key not in done])
    unfinished_here = {j.key for j in pending}  # this worker's jobs not (yet) FINISHED
    tracker.set_parent_status(parent, "RUNNING")
    for arch, w in weights.items():  # a variant's weights are its arch's: one tag per arch
        tracker.set_tag(parent, f"weights.{split_model_name(arch)[0]}", w)
    if cfg.archs:
        tracker.set_tag(parent, "device", describe(resolve_device(cfg.model.device)))
    timings: dict[str, float] = defaultdict(float)
    errors: list[str] = []
    n_failed = 0
    with _progress(len(pending), progress) as bar:
        for i, job in enumerate(pending):
            if lease.lost:
                raise RuntimeError(f"this worker lost the lease of run {parent} shard {tracker.shard} to another worker")
            split = splits[(job.protocol, job.repeat, job.fold)]
            est = models.get(job.arch, split.input_mode)
            t0 = time.perf_counter()
            try:
                with tracker.fold_run(parent, job) as rid:
                    tracker.log_fold_inputs(rid, sorted({s.outfit_id for s in split.train}),
                                            sorted({s.outfit_id for s in split.test}))
                    if hasattr(est, "warm"):
                        est.warm(split.train + split.test)
                    t1 = time.perf_counter()
                    result = run_fold(job, split, est, cfg, study_name=f"{parent}:{job.key}", storage=storage)
                    t2 = time.perf_counter()
                    tracker.log_fold(rid, result, log_model=cfg.log_models)
                    timings["embed_s"] += t1 - t0
                    timings["fit_s"] += t2 - t1
                    timings["log_s"] += time.perf_counter() - t2
            except Exception as exc:  # noqa: BLE001 - declared policy: a failing fold is recorded FAILED, others go on
                if is_fatal(exc):  # disk full, store gone: every further fold would fail the same way
                    raise
                n_failed += 1
                errors.append(f"{job.key}: {failure_line(exc)}")
                log.error("fold %s failed: %s", job.key, failure_line(exc))
                log.debug("fold %s traceback", job.key, exc_info=True)
                bar.update(1)
                continue
            bar.update(1)
            unfinished_here.discard(job.key)
            if on_fold:
                on_fold(result, i + 1, len(pending))
            maybe_finish_group(tracker, parent, cfg, jobs, splits, job, unfinished_here)
        for first in {(j.arch, j.protocol): j for j in reversed(mine)}.values():  # e.g. killed after its last fold
            maybe_finish_group(tracker, parent, cfg, jobs, splits, first, unfinished_here)
    t3 = time.perf_counter()
    final_errors = maybe_final_models(tracker, parent, cfg, ds, jobs, models.get, shard=f"{index}/{n_shards}")
    timings["final_s"] += time.perf_counter() - t3
    finished = tracker.finished_jobs(parent)
    complete = all(j.key in finished for j in jobs)
    if complete:
        t4 = time.perf_counter()
        log_feature_probe(tracker, parent, cfg, ds, models.get)
        timings["probe_s"] += time.perf_counter() - t4
    if final_errors:  # the CV results stand (FINISHED); the benchmark is not complete without its final models
        tracker.end_parent(parent, "FAILED", "; ".join(final_errors), best_effort=False)
    elif complete:
        with contextlib.suppress(Exception):  # an error left by an earlier attempt no longer applies
            tracker.client.delete_tag(parent, "neipalette.error")
        tracker.end_parent(parent, "FINISHED", best_effort=False)
    elif n_failed:
        tracker.end_parent(parent, "FAILED", f"{n_failed} fold jobs failed, e.g. {errors[0]}", best_effort=False)
    elif n_shards == 1:
        tracker.set_parent_status(parent, "FAILED")
    return Outcome(parent, tracking_uri(), len(mine), len(mine) - len(pending), len(pending) - n_failed, n_failed,
                   complete and not final_errors, time.perf_counter() - t_start, weights, dict(timings),
                   errors + final_errors)


def _open_storage(url: str | None, default_journal: Path):
    """`make_storage`, retried: workers starting together race to create the tables of a fresh Optuna database."""
    for attempt in range(5):
        try:
            return make_storage(url, default_journal)
        except (UserError, OSError):  # a URL that can never work, a read-only or full disk: no retry
            raise
        except Exception:  # noqa: BLE001 - e.g. UniqueViolation on CREATE TYPE; the winner's tables are there next time
            if attempt == 4:
                raise UserError(f"Optuna storage {url or default_journal} cannot be opened "
                                f"({one_line(sys.exc_info()[1], 300)}); check that it is reachable and writable, "
                                "or pass another --optuna-storage") from None
            log.info("opening the Optuna storage failed (attempt %d); retrying", attempt + 1, exc_info=True)
            time.sleep(random.uniform(0.5, 2.0))


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="fold jobs", unit="job", disable=not enabled, dynamic_ncols=True)
