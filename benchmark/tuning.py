"""Nested tuning with Optuna: learning rate (log scale) and epochs, scored by inner CV on outer-train only.

With `tune_weight_decay` the head's L2 strength (log scale) is a further dimension (CNN heads only), so a wide
head (multiscale or hybrid features) is regularised as strongly as its inner folds ask.

Estimators with `fit_epochs` (the CNNs: head, last_block, full) are tuned from learning curves: a trial
trains each inner fold once up to `epochs_max`, reports the mean inner validation score after every epoch
(Optuna intermediate values, which the pruner compares with earlier trials at the same epoch), and its
epochs is the best epoch (>= `epochs_min`). Estimators with `fit` only get epochs as a second parameter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import optuna
import pandas as pd
import sqlalchemy.exc
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sklearn.metrics import log_loss

from benchmark.config import TuningSettings
from neipalette.data.samples import Estimator, Sample, inner_folds, labels_of, side_by_side_curves
from neipalette.errors import UserError
from neipalette.evaluation.metrics import rank_auc
from neipalette.seeding import derive_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuningResult:
    learning_rate: float
    epochs: int
    best_score: float
    n_trials: int
    n_pruned: int
    study_name: str = ""
    weight_decay: float | None = None  # None: not tuned (the config's model.weight_decay)
    # one row per trial (trials_frame), logged as trials.csv; durations differ between reruns: not compared
    trials: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    # the chosen trial's mean inner-validation score after epoch 1, 2, ... (learning-curve tuning; else empty)
    curve: tuple[float, ...] = field(default=(), compare=False, repr=False)


def curve_metric(objective: str) -> str:
    """The name a fold run logs the chosen trial's inner curve under: `inner_<objective>` (log loss is
    maximised negated, hence `inner_neg_log_loss`)."""
    return f"inner_{'neg_' if objective == 'log_loss' else ''}{objective}"


def trial_sampler(seed: int, index: int, n_startup_trials: int) -> optuna.samplers.TPESampler:
    """A fresh TPE sampler for the trial that `index` trials finished before (COMPLETE or PRUNED), seeded from
    (seed, index) through Optuna's public constructor.

    A study resumed after a crash then suggests exactly what an uninterrupted one would have: each suggestion
    depends only on the seed and the finished trials already in the study (a trial cut off by the crash does
    not count, so its redo gets the same index and seed). TPE keeps no state between trials but its random
    generators, so one fresh sampler per trial is the same search as one sampler reseeded before every trial.
    """
    return optuna.samplers.TPESampler(seed=derive_seed(seed, index), n_startup_trials=n_startup_trials)


def trial_index(study: optuna.Study, number: int) -> int:
    """How many trials before this one finished (COMPLETE or PRUNED): the trial number minus failed ones."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return sum(t.number < number for t in done)


# RDB storages: a running trial records a heartbeat this often; after 3 missed beats it counts as stale
HEARTBEAT_S = 20
_STORAGE_FIX = ("pass an Optuna storage URL: journal:/path/file, sqlite:///path.db or "
                "postgresql+psycopg2://user:password@host/db")


def make_storage(url: str | None, default_journal: Path) -> optuna.storages.BaseStorage:
    """Any Optuna storage URL (sqlite:///, postgresql+psycopg2://, ...) or, by default, a journal file.

    Database storages get Optuna's trial heartbeats (journal files do not support them): a trial whose
    worker died is then recognisably stale to any Optuna tool. A URL that can never work is a UserError.
    """
    if url:
        if url.startswith("journal:"):
            return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
        try:
            with warnings.catch_warnings():  # the heartbeat is an experimental Optuna feature
                warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning,
                                        message=r".*heartbeat")
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=3 * HEARTBEAT_S)
        except (ImportError, sqlalchemy.exc.ArgumentError) as exc:  # unknown scheme or driver, malformed URL
            raise UserError(f"Optuna storage {url!r} cannot be opened ({type(exc).__name__}: {exc}); "
                            f"{_STORAGE_FIX}") from None
    default_journal.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(default_journal)))


def score(objective: str, y: np.ndarray, p: np.ndarray) -> float:
    if objective == "accuracy":
        return float(np.mean((p >= 0.5) == y))
    if objective == "log_loss":
        return -float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))
    return rank_auc(y, p)


def tune(estimator: Estimator, samples: Sequence[Sample], settings: TuningSettings, *, seed: int,
         study_name: str, storage: optuna.storages.BaseStorage) -> TuningResult:
    """Run (or resume) the study for one outer fold; returns the best learning rate and epochs."""
    y = labels_of(samples)
    inner = inner_folds(samples, settings.inner_folds, seed)

    curves = hasattr(estimator, "fit_epochs")

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("learning_rate", settings.lr_min, settings.lr_max, log=True)
        wd = None
        if settings.tune_weight_decay:
            wd = trial.suggest_float("weight_decay", settings.weight_decay_min, settings.weight_decay_max, log=True)
        index = trial_index(trial.study, trial.number)
        if curves:
            return learning_curve(trial, estimator, samples, inner, lr, settings, seed=derive_seed(seed, "trial", index),
                                  weight_decay=wd)
        if wd is not None:
            raise ValueError(f"{estimator.name} has no learning curves: its weight decay cannot be tuned")
        epochs = trial.suggest_int("epochs", settings.epochs_min, settings.epochs_max)
        scores = []
        for k, (tr, va) in enumerate(inner):
            fit = estimator.fit([samples[i] for i in tr], learning_rate=lr, epochs=epochs,
                                seed=derive_seed(seed, "trial", index, k))
            scores.append(score(settings.objective, y[va], fit.predict_proba([samples[i] for i in va])))
            trial.set_user_attr(INNER_SCORES, scores)  # per inner fold, for trials.csv
            trial.report(float(np.mean(scores)), k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(scores))

    n_startup = max(1, min(10, settings.n_trials // 2))

    def sampler(index: int) -> optuna.samplers.TPESampler:
        return trial_sampler(derive_seed(seed, "tpe"), index, n_startup)

    # learning curves: no pruning before epochs_min (early epochs say little); inner folds: from the first fold
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=settings.epochs_min if curves else 0)
    with _optuna_quiet():  # Optuna's INFO line per study and per trial would bury the benchmark's progress
        study = _optimize(study_name, storage, sampler, pruner, objective, settings.n_trials)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"study {study_name}: no trial completed")
    best = study.best_trial
    epochs = best.user_attrs["best_epoch"] if "best_epoch" in best.user_attrs else best.params["epochs"]
    wd = best.params.get("weight_decay")
    return TuningResult(learning_rate=float(best.params["learning_rate"]), epochs=int(epochs),
                        best_score=float(best.value), n_trials=len(study.trials),
                        n_pruned=sum(t.state == TrialState.PRUNED for t in study.trials),
                        study_name=study_name, trials=trials_frame(study),
                        curve=tuple(float(c) for c in best.user_attrs.get("curve", ())),
                        weight_decay=None if wd is None else float(wd))


INNER_SCORES = "inner_scores"


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, the suggested values, the objective (mean inner score), the score
    of each inner fold that ran (`inner_score_<k>`; a pruned trial stops early), the learning curve (`curve`:
    a JSON list, the mean inner score per epoch), duration and whether it is the study's best."""
    trials = study.get_trials(deepcopy=False)
    best = study.best_trial.number if any(t.state == TrialState.COMPLETE for t in trials) else None
    n_inner = max((len(t.user_attrs.get(INNER_SCORES, ())) for t in trials), default=0)
    rows = []
    for t in trials:
        row = {"number": t.number, "state": t.state.name, **t.params, "value": t.value}
        if "best_epoch" in t.user_attrs:  # learning-curve trials: epochs is the best epoch, not a parameter
            row["epochs"] = t.user_attrs["best_epoch"]
        inner = list(t.user_attrs.get(INNER_SCORES, ()))
        row.update({f"inner_score_{k}": inner[k] if k < len(inner) else None for k in range(n_inner)})
        # the mean inner score after each epoch (learning-curve trials; a pruned one stops where it was cut)
        row["curve"] = json.dumps(t.user_attrs["curve"]) if "curve" in t.user_attrs else None
        row["duration_s"] = t.duration.total_seconds() if t.duration is not None else None
        row["best"] = t.number == best
        rows.append(row)
    return pd.DataFrame(rows)


def learning_curve(trial: optuna.Trial, estimator, samples: Sequence[Sample], inner: list, lr: float,
                   settings: TuningSettings, *, seed: int, weight_decay: float | None = None) -> float:
    """Train every inner fold once, epoch by epoch, up to epochs_max; report the mean inner score per epoch.

    Returns the best mean score at an epoch >= epochs_min; that epoch is stored as user attr `best_epoch`
    (what a refit trains for) and the whole curve as `curve`. Pruned trials stop at the epoch they were cut.
    """
    y = labels_of(samples)
    seeds = [derive_seed(seed, k) for k in range(len(inner))]
    curve: list[float] = []
    per_fold: list[list[float]] = []
    epochs = curves_of(estimator, samples, inner, lr, settings.epochs_max, seeds, weight_decay)
    for epoch, probs in enumerate(epochs, start=1):
        scores = [score(settings.objective, y[va], p) for p, (_, va) in zip(probs, inner)]
        per_fold.append(scores)
        curve.append(float(np.mean(scores)))
        trial.report(curve[-1], epoch)
        if trial.should_prune():
            trial.set_user_attr("curve", [round(c, 6) for c in curve])
            trial.set_user_attr(INNER_SCORES, scores)
            raise optuna.TrialPruned()
    first = max(1, settings.epochs_min)
    best = first + int(np.argmax(curve[first - 1:]))  # ties: the earliest epoch
    trial.set_user_attr("best_epoch", best)
    trial.set_user_attr("curve", [round(c, 6) for c in curve])
    trial.set_user_attr(INNER_SCORES, per_fold[best - 1])  # per inner fold at the chosen epoch, for trials.csv
    return curve[best - 1]


def curves_of(estimator, samples: Sequence[Sample], inner: list, lr: float, epochs: int,
              seeds: Sequence[int], weight_decay: float | None = None) -> Iterator[list[np.ndarray]]:
    """Per epoch, the validation probabilities of every inner fold: the estimator's batched `learning_curves`
    where it has one, else its `fit_epochs` runs side by side. A tuned `weight_decay` goes to the estimator
    (passed only when tuned, so estimators without the keyword keep working)."""
    curves = estimator.learning_curves if hasattr(estimator, "learning_curves") else partial(side_by_side_curves,
                                                                                              estimator)
    extra = {} if weight_decay is None else {"weight_decay": weight_decay}
    return curves(samples, inner, learning_rate=lr, epochs=epochs, seeds=seeds, **extra)


def _optimize(study_name: str, storage: optuna.storages.BaseStorage,
              sampler: Callable[[int], optuna.samplers.BaseSampler], pruner, objective, n_trials: int) -> optuna.Study:
    """The persisted study with `n_trials` finished trials: those already there are kept (resume), the rest
    run in memory (every epoch's report and pruning check is a dict update, not a storage write), each with
    `sampler(its index)`, and are persisted in one go. A kill before that loses only this fold job's new
    trials, and a resume redoes them exactly (seeds depend on the finished trials only, see trial_sampler)."""
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize",
                                sampler=sampler(0), pruner=pruner, load_if_exists=True)
    _fail_stale_trials(study, storage)
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    if len(finished) < n_trials:
        memory = optuna.create_study(study_name=study_name, storage=optuna.storages.InMemoryStorage(),
                                     direction="maximize", pruner=pruner)
        memory.add_trials(finished)
        for index in range(len(finished), n_trials):  # no failed trial in memory: its number is its index
            memory.sampler = sampler(index)  # public attribute; the sampler is read when the trial starts
            memory.optimize(objective, n_trials=1, catch=())
        study.add_trials(memory.get_trials(deepcopy=False)[len(finished):])
    return study


@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Optuna's INFO lines off while a study runs; the caller's verbosity is restored after (nothing at import)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _fail_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
    """Trials left RUNNING by a killed process would never finish; mark them failed so resume continues.

    RDB storages have Optuna's heartbeat (make_storage): `fail_stale_trials` fails the trials whose process
    stopped beating. The journal storage has no heartbeat (Optuna 5.0), and one study belongs to one fold
    job, run by one worker at a time (the lease of its shard, benchmark/tracking/lease.py): every trial still
    RUNNING when its study is opened was cut off.
    """
    if isinstance(storage, optuna.storages.RDBStorage):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning,
                                    message=r".*fail_stale_trials")
            optuna.storages.fail_stale_trials(study)
        return
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
