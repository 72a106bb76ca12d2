"""What the runner writes once fold jobs are done, and the failure policy it shares with the fold loop.

Each (arch, protocol) summary run, written once all its folds are FINISHED by whichever worker sees that last;
each architecture's final model (refit on all outfits with its CV folds' median tuned values, logged and
registered); the feature probe of a complete benchmark. `is_fatal` tells failures of the machine or the store
(stop) from those of one job (record it, go on); `failure_line` is a failure's one line.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable

import numpy as np
import pandas as pd

from benchmark.config import BenchmarkConfig
from benchmark.feature_probe import feature_probe
from benchmark.folds import feature_mode
from benchmark.protocols import Job
from benchmark.stats import single_split, summarize_folds
from benchmark.tracking.store import describe_tracking_failure
from benchmark.tracking.write import Tracker
from neipalette.data.dataset import Dataset
from neipalette.data.samples import make_samples
from neipalette.errors import DEBUG_HINT, describe_failure, describe_os_error
from neipalette.evaluation.metrics import METRICS
from neipalette.seeding import derive_seed

log = logging.getLogger(__name__)
SUMMARY_METRICS = (*METRICS, "ceiling_accuracy")
# (model name, input mode) -> its estimator: the runner's `Models.get`
Estimators = Callable[[str, str], Any]


def log_feature_probe(tracker: Tracker, parent: str, cfg: BenchmarkConfig, ds: Dataset, estimator: Estimators) -> None:
    """`feature_probe.json` on the parent (by every worker that sees the benchmark complete: the same numbers).
    A failing probe is a warning: the benchmark's results stand without it."""
    try:
        probe = feature_probe(ds, list(cfg.archs), lambda arch: estimator(arch, "pair"),
                              fine_tune=cfg.model.fine_tune, with_colour_pattern="colour_pattern" in cfg.baselines,
                              seed=cfg.seed)
        tracker.log_parent_json(parent, "feature_probe.json", probe)
    except Exception as exc:  # noqa: BLE001 - declared policy: the probe is an explanation, never a result
        if is_fatal(exc):
            raise
        log.warning("feature probe failed: %s", failure_line(exc))
        log.debug("feature probe traceback", exc_info=True)


def failure_line(exc: BaseException) -> str:
    message, _ = describe_failure(exc, (describe_tracking_failure,))
    return message.replace(f" (unexpected; {DEBUG_HINT})", "")


def is_fatal(exc: BaseException) -> bool:
    """Failures of the machine or the store rather than of one fold's data: stop instead of failing every fold."""
    return describe_os_error(exc) is not None or describe_tracking_failure(exc) is not None


def _group_frame(runs: list) -> pd.DataFrame:
    rows = []
    for r in runs:
        row = dict(r.data.metrics)
        row["n_train"] = float(r.data.params.get("n_train", "nan"))
        row["n_test"] = float(r.data.params.get("n_test", "nan"))
        row["run_id"] = r.info.run_id
        rows.append(row)
    return pd.DataFrame(rows)


def maybe_finish_group(tracker: Tracker, parent: str, cfg: BenchmarkConfig, jobs: list[Job],
                        splits: dict, job: Job, unfinished_here: set[str]) -> None:
    """Write the (arch, protocol) summary run once all its folds are FINISHED (by whichever worker is last)."""
    group = [j for j in jobs if j.arch == job.arch and j.protocol == job.protocol]
    if any(j.key in unfinished_here for j in group):
        return  # known without asking the store (its query costs ~0.1 s per fold)
    finished = tracker.finished_jobs(parent)
    if not all(j.key in finished for j in group):
        return
    existing = [r for r in tracker.child_runs(parent, "summary") if r.info.status == "FINISHED"
                and r.data.tags.get("neipalette.arch") == job.arch and r.data.tags.get("neipalette.protocol") == job.protocol]
    if existing:
        if len(existing) > 1:  # a writer killed between finishing its duplicate and removing it
            tracker.dedupe_summaries(parent, job.arch, job.protocol)
        return
    runs = [finished[j.key] for j in group]
    frame = _group_frame(runs)
    predictions = None
    if single_split(job.protocol, len(runs)):
        path = tracker.client.download_artifacts(runs[0].info.run_id, "predictions.csv")
        predictions = pd.read_csv(path)
    metrics = summarize_folds(frame, job.protocol, [m for m in SUMMARY_METRICS if m in frame.columns], predictions,
                              seed=cfg.seed)
    split = splits[(job.protocol, job.repeat, job.fold)]
    tracker.log_summary(parent, job.arch, job.protocol, split.input_mode, metrics, len(runs),
                        float(frame["n_train"].mean()), float(frame["n_test"].mean()), cfg.primary_metric)
    if job.protocol == "cv":
        tracker.log_headline(parent, job.arch, metrics)
    # two workers can finish a group's last folds at the same moment: exactly one summary remains
    tracker.dedupe_summaries(parent, job.arch, job.protocol)


def protocol_text(cfg: BenchmarkConfig) -> str:
    """The CV protocol in one line, for model cards."""
    tuned = (f"learning rate and epochs tuned by nested CV ({cfg.tuning.n_trials} Optuna trials, "
             f"{cfg.tuning.inner_folds} inner folds)" if cfg.tuning.enabled else "fixed learning rate and epochs")
    return (f"{cfg.n_splits}×{cfg.n_repeats} repeated stratified k-fold over outfits, {cfg.input_mode} input, "
            f"{cfg.model.fine_tune} fine-tuning, {cfg.model.image_size} px, {tuned}")


def _log_median(values: list[float]) -> float:
    """The median on the log scale the values were tuned on (a learning rate, a weight decay)."""
    return float(np.exp(np.median(np.log(values))))


def maybe_final_models(tracker: Tracker, parent: str, cfg: BenchmarkConfig, ds: Dataset, jobs: list[Job],
                        estimator: Estimators, shard: str = "0/1") -> list[str]:
    """Per architecture: refit on all outfits with the median tuned values of its CV folds; log with backbone.

    A failing final model is recorded FAILED with its error and returned as one line; the others go on.
    """
    errors: list[str] = []
    if not cfg.final_models or "cv" not in cfg.protocols:
        return errors
    finished = tracker.finished_jobs(parent)
    existing = {r.data.tags.get("neipalette.arch") for r in tracker.child_runs(parent, "final")
                if r.info.status == "FINISHED"}
    for arch in cfg.archs:
        keys = [j.key for j in jobs if j.arch == arch and j.protocol == "cv"]
        if arch in existing or not all(k in finished for k in keys):
            continue
        lrs = [float(finished[k].data.params["learning_rate"]) for k in keys]
        eps = [int(finished[k].data.params["epochs"]) for k in keys]
        lr = _log_median(lrs)
        epochs = int(round(float(np.median(eps))))
        wds = [float(finished[k].data.params["weight_decay"]) for k in keys if "weight_decay" in finished[k].data.params]
        extra = {"weight_decay": _log_median(wds)} if wds else {}  # tuned: the folds' median
        claim = tracker.claim_final(parent, arch, shard)  # None: another worker has it (or finished it)
        if claim is None:
            continue
        samples = make_samples(ds, range(len(ds.outfits)), cfg.input_mode)
        est = estimator(arch, cfg.input_mode)
        try:
            predictor = est.fit(samples, learning_rate=lr, epochs=epochs, seed=derive_seed(cfg.seed, arch, "final"),
                                **extra)
            tracker.log_final(parent, arch, predictor, {"arch": arch, "learning_rate": lr, "epochs": epochs, **extra,
                                                        "features": feature_mode(est), "n_train": len(samples),
                                                        "input_mode": cfg.input_mode},
                              cfg.input_mode, run_id=claim, benchmark_name=cfg.name,
                              primary_metric=cfg.primary_metric, protocol=protocol_text(cfg))
        except BaseException as exc:
            message = f"final model {arch}: {failure_line(exc)}"
            with contextlib.suppress(Exception):
                tracker.client.set_tag(claim, "neipalette.error", message[:5000])
                tracker.client.set_terminated(claim, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            if not isinstance(exc, Exception):
                raise
            log.error("%s", message)
            log.debug("final model %s traceback", arch, exc_info=True)
            errors.append(message)
    return errors
