"""One outer fold of one model: tune (nested, outer-train only), refit, score the outer test part once."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark.config import BenchmarkConfig
from benchmark.protocols import Job, Split
from benchmark.tuning import TuningResult, curve_metric, tune
from neipalette.data.samples import Estimator, Predictor, labels_of
from neipalette.evaluation.metrics import bayes_accuracy, classification_metrics, roc_points
from neipalette.seeding import derive_seed

log = logging.getLogger(__name__)


@dataclass
class FoldResult:
    job: Job
    input_mode: str
    params: dict[str, object]
    metrics: dict[str, float]
    predictions: pd.DataFrame
    roc: pd.DataFrame
    predictor: Predictor
    tuning: TuningResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    # per-epoch curves logged with step = epoch (1, 2, ...): the chosen trial's inner-validation score
    # (`inner_<objective>`) and the refit's training loss (`train_loss`, head fine-tuning)
    curves: dict[str, list[float]] = field(default_factory=dict)


def feature_mode(estimator: Estimator) -> str:
    """What a CNN head sees (`final`, `multiscale`, with `+<hand features>` for a hybrid); n/a for baselines."""
    cfg = getattr(estimator, "config", None)
    if cfg is None or not hasattr(cfg, "features"):
        return "n/a"
    return cfg.features + (f"+{cfg.hybrid}" if cfg.hybrid else "")


def run_fold(job: Job, split: Split, estimator: Estimator, cfg: BenchmarkConfig, *,
             study_name: str, storage) -> FoldResult:
    """Tune on split.train only (when the model is tunable), refit on all of split.train, score split.test."""
    t0 = time.perf_counter()
    fold_seed = derive_seed(cfg.seed, job.key)
    tuning = None
    if estimator.tunable and cfg.tuning.enabled:
        tuning = tune(estimator, split.train, cfg.tuning, seed=fold_seed, study_name=study_name, storage=storage)
        lr, epochs = tuning.learning_rate, tuning.epochs
    elif estimator.tunable:
        lr, epochs = cfg.tuning.learning_rate, cfg.tuning.epochs
    else:
        lr, epochs = float("nan"), 0
    t1 = time.perf_counter()
    extra = {} if tuning is None or tuning.weight_decay is None else {"weight_decay": tuning.weight_decay}
    predictor = estimator.fit(split.train, learning_rate=lr, epochs=epochs, seed=derive_seed(fold_seed, "refit"),
                              **extra)
    p = np.asarray(predictor.predict_proba(split.test), dtype=np.float64)
    t2 = time.perf_counter()
    y = labels_of(split.test)
    metrics = classification_metrics(y, p)
    truth = np.array([s.p_positive for s in split.test])
    if np.all(np.isfinite(truth)):
        metrics["ceiling_accuracy"] = bayes_accuracy(truth)
    if split.protocol == "seed_split":
        metrics["partner_in_train"] = float(split.partner_in_train)
        metrics["n_test_images"] = float(len(split.test))
    predictions = pd.DataFrame({
        "sample_id": [s.sample_id for s in split.test], "outfit_id": [s.outfit_id for s in split.test],
        "label": y, "p_positive": p, "pred": (p >= 0.5).astype(int)})
    params = {
        "arch": job.arch, "protocol": job.protocol, "input_mode": split.input_mode, "repeat": job.repeat,
        "fold": job.fold, "learning_rate": lr if estimator.tunable else "n/a",
        "epochs": epochs if estimator.tunable else "n/a", "n_train": len(split.train), "n_test": len(split.test),
        "seed": fold_seed, "features": feature_mode(estimator),
    }
    if extra:
        params["weight_decay"] = extra["weight_decay"]
    params.update(getattr(predictor, "chosen_params", {}))  # what a model tuned inside its own fit chose (C)
    if tuning is not None:
        params.update({"tuning_trials": tuning.n_trials, "tuning_pruned": tuning.n_pruned,
                       "tuning_best_inner_score": round(tuning.best_score, 6)})
    return FoldResult(job, split.input_mode, params, metrics, predictions, pd.DataFrame(roc_points(y, p)),
                      predictor, tuning, {"tune_s": t1 - t0, "refit_s": t2 - t1}, _curves(cfg, tuning, predictor))


def _curves(cfg: BenchmarkConfig, tuning: TuningResult | None, predictor: Predictor) -> dict[str, list[float]]:
    curves = {}
    if tuning is not None and tuning.curve:
        curves[curve_metric(cfg.tuning.objective)] = list(tuning.curve)
    loss = getattr(getattr(predictor, "head", None), "train_loss", None)  # heads record it (models.heads)
    if loss:
        curves["train_loss"] = [float(v) for v in loss]
    return curves
