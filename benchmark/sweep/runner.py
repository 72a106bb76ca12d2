"""Runs a sweep: for every point, the ordinary benchmark (`benchmark.runner.run_benchmark`) on the point's
generated dataset, as a child of one sweep run. Resumable: FINISHED points are skipped, an unfinished
point's benchmark is continued (its finished folds are kept), missing points are started.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from benchmark.runner import Outcome, RunOptions, git_commit, run_benchmark
from benchmark.sweep.config import SweepConfig, SweepPoint
from benchmark.sweep.datasets import point_dataset
from benchmark.tracking.sweep import SweepTracker, point_tags
from neipalette.evaluation.metrics import bayes_accuracy, bayes_auc
from neipalette.models.registry import get_arch

log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    sweep_run_id: str
    tracking_uri: str
    n_points: int
    n_done_before: int
    n_failed: int
    complete: bool
    seconds: float
    archs: tuple[str, ...]
    point_seconds: dict[str, float] = field(default_factory=dict)
    point_runs: dict[str, str] = field(default_factory=dict)


def available_archs(cfg: SweepConfig) -> tuple[str, ...]:
    """The config's archs plus each optional arch that this installation provides."""
    extra = [a for a in cfg.optional_archs if _known(a) and a not in cfg.benchmark.archs]
    missing = [a for a in cfg.optional_archs if not _known(a)]
    if missing:
        log.warning("optional archs not installed, skipped: %s", ", ".join(missing))
    return (*cfg.benchmark.archs, *extra)


def _known(arch: str) -> bool:
    try:
        get_arch(arch)
    except ValueError:
        return False
    return True


def sweep_step(cfg: SweepConfig, point: SweepPoint, index: int) -> int:
    """A point's step in MLflow: its number of outfits (the x axis of a learning curve); the point's index when
    the sweep also varies the rater panel or noise (several points share a size; their params are tags)."""
    return index if cfg.raters or cfg.sigmas else point.n_outfits


def _log_ceiling(store: SweepTracker, run_id: str, dataset: str, step: int) -> None:
    """The whole dataset's expected Bayes accuracy and ROC-AUC (from truth.csv) on the point's benchmark run."""
    truth = Path(dataset) / "truth.csv"
    if truth.is_file():
        p = pd.read_csv(truth)["p_positive"].to_numpy(dtype=float)
        store.log_metric(run_id, "ceiling_accuracy", bayes_accuracy(p), step=step)
        store.log_metric(run_id, "ceiling_roc_auc", bayes_auc(p), step=step)


def plan(cfg: SweepConfig) -> list[dict]:
    return [{"key": p.key, "n_outfits": p.n_outfits, "n_raters": p.n_raters, "sigma": p.sigma,
             "n_repeats": p.n_repeats} for p in cfg.points()]


def run_sweep(cfg: SweepConfig, *, resume: bool = False, progress: bool = False,
              on_point: Callable[[SweepPoint, Outcome, float], None] | None = None) -> SweepOutcome:
    """Run every point not yet FINISHED; returns what was done. Raises DatasetError / ValueError on bad input."""
    t0 = time.perf_counter()
    archs = available_archs(cfg)
    points = cfg.points()
    store = SweepTracker(cfg.benchmark.experiment)
    sweep_hash = cfg.result_hash()
    rid = store.find_unfinished(sweep_hash) if resume else None
    if rid is None:
        d = cfg.to_dict()
        d["archs_run"] = list(archs)
        rid = store.create(name=cfg.name, sweep_hash=sweep_hash, config_yaml=yaml.safe_dump(d, sort_keys=False),
                           points=plan(cfg), git_commit=git_commit())
    else:
        log.info("resuming sweep run %s", rid)
    store.set_status(rid, "RUNNING")
    existing = store.point_runs(rid)
    n_before = sum(1 for p in points if p.key in existing and existing[p.key].info.status == "FINISHED")
    n_failed, seconds, runs = 0, {}, {k: r.info.run_id for k, r in existing.items()}
    try:
        for i, point in enumerate(points):
            prior = existing.get(point.key)
            if prior is not None and prior.info.status == "FINISHED":
                continue
            bcfg = cfg.benchmark_for(point, point_dataset(cfg, point), archs)
            opts = RunOptions(run_id=prior.info.run_id) if prior is not None else \
                RunOptions(parent_tags=tuple(point_tags(rid, point).items()))
            tp = time.perf_counter()
            outcome = run_benchmark(bcfg, opts, progress=progress)
            seconds[point.key] = time.perf_counter() - tp
            runs[point.key] = outcome.parent_run_id
            step = sweep_step(cfg, point, i)
            _log_ceiling(store, outcome.parent_run_id, bcfg.dataset, step)
            store.log_metric(outcome.parent_run_id, "sweep_point_seconds", seconds[point.key], step=step)
            n_failed += outcome.n_failed
            store.log_metric(rid, "point_seconds", seconds[point.key], step=step)
            store.log_point(rid, outcome.parent_run_id, step)
            if on_point:
                on_point(point, outcome, seconds[point.key])
    except BaseException:
        store.set_status(rid, "KILLED")
        raise
    final = store.point_runs(rid)
    complete = all(p.key in final and final[p.key].info.status == "FINISHED" for p in points)
    elapsed = time.perf_counter() - t0
    store.set_tag(rid, "archs_run", ",".join(archs))
    store.log_metric(rid, "wall_seconds", elapsed, step=0 if n_before == 0 else n_before)
    store.set_status(rid, "FINISHED" if complete else "FAILED")
    return SweepOutcome(rid, store.uri, len(points), n_before, n_failed, complete, elapsed, archs, seconds, runs)
