"""benchmark.tuning: nested Optuna tuning on the outer-train part only, deterministic, pruning, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from benchmark.config import TuningSettings
from benchmark.tuning import curve_metric, make_storage, score, trials_frame, tune
from neipalette.data.samples import Sample
from neipalette.seeding import derive_seed

BEST_LR = 1e-2


def _samples(n: int, prefix: str) -> list[Sample]:
    return [Sample(f"{prefix}{i}", f"{prefix}{i}", (Path(f"{prefix}{i}_top.png"), Path(f"{prefix}{i}_bottom.png")),
                   i % 2) for i in range(n)]


class _StubPredictor:
    def __init__(self, owner: "StubEstimator", quality: float, seed: int):
        self.owner, self.quality, self.seed = owner, quality, seed

    def predict_proba(self, samples):
        self.owner.seen_predict.update(s.sample_id for s in samples)
        out = []
        for s in samples:
            u = (derive_seed(self.seed, s.sample_id) % 1000) / 1000.0
            # with probability `quality` the score points the right way, else it is noise
            right = u < self.quality
            out.append(0.5 + (0.4 if s.label else -0.4) * (1 if right else -1) * (0.5 + u / 2))
        return np.array(out)


class StubEstimator:
    """Inner scores depend on the learning rate only (best at 1e-2); records every sample it is shown."""

    name = "stub"
    tunable = True

    def __init__(self):
        self.seen_fit: set[str] = set()
        self.seen_predict: set[str] = set()
        self.n_fit = 0

    def fit(self, samples, *, learning_rate, epochs, seed):
        self.n_fit += 1
        self.seen_fit.update(s.sample_id for s in samples)
        quality = max(0.0, 1.0 - abs(math.log10(learning_rate) - math.log10(BEST_LR)) / 2.0)
        return _StubPredictor(self, quality, seed)


SETTINGS = TuningSettings(n_trials=20, inner_folds=3, lr_min=1e-5, lr_max=1.0, epochs_min=1, epochs_max=10)


def _run(est=None, storage=None, settings=SETTINGS, seed=11, train=None, name="study"):
    est = est or StubEstimator()
    storage = storage or optuna.storages.InMemoryStorage()
    train = train if train is not None else _samples(24, "tr")
    return est, tune(est, train, settings, seed=seed, study_name=name, storage=storage)


def test_tuning_never_sees_the_outer_test_part():
    train, test = _samples(24, "tr"), _samples(8, "te")
    est, res = _run(train=train)
    ids_train = {s.sample_id for s in train}
    ids_test = {s.sample_id for s in test}
    assert est.seen_fit and est.seen_predict
    assert est.seen_fit <= ids_train and est.seen_predict <= ids_train
    assert not (est.seen_fit | est.seen_predict) & ids_test
    # inner CV: every training sample is validated somewhere, and no fit sees all of them at once
    assert est.seen_predict == ids_train
    assert SETTINGS.lr_min <= res.learning_rate <= SETTINGS.lr_max
    assert SETTINGS.epochs_min <= res.epochs <= SETTINGS.epochs_max


def test_tuning_finds_the_good_learning_rate():
    _, res = _run()
    assert abs(math.log10(res.learning_rate) - math.log10(BEST_LR)) < 1.0
    assert res.best_score > 0.7


def test_tuning_is_deterministic_for_a_seed():
    _, a = _run(seed=5)
    _, b = _run(seed=5)
    assert a == b
    _, c = _run(seed=6)
    assert (c.learning_rate, c.epochs) != (a.learning_rate, a.epochs)


def test_pruning_happens_and_is_reported():
    _, res = _run()
    assert res.n_trials == SETTINGS.n_trials
    assert res.n_pruned > 0
    assert res.n_pruned < res.n_trials


def test_resume_continues_to_n_trials_total():
    storage = optuna.storages.InMemoryStorage()
    few = TuningSettings(**{**SETTINGS.__dict__, "n_trials": 4})
    est1, first = _run(storage=storage, settings=few, name="fold-a")
    assert first.n_trials == 4
    est2, second = _run(storage=storage, settings=SETTINGS, name="fold-a")
    assert second.n_trials == SETTINGS.n_trials
    study = optuna.load_study(study_name="fold-a", storage=storage)
    assert len(study.trials) == SETTINGS.n_trials
    # the second call ran only the missing trials (at most inner_folds fits each)
    assert est2.n_fit <= (SETTINGS.n_trials - 4) * SETTINGS.inner_folds
    # the first 4 trials were kept, not redone
    assert [t.number for t in study.trials[:4]] == [0, 1, 2, 3]
    # a finished study is not extended again
    est3, third = _run(storage=storage, settings=SETTINGS, name="fold-a")
    assert est3.n_fit == 0 and third == second


def test_resume_marks_stale_running_trials_failed():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="crashed", storage=storage, direction="maximize")
    study.ask()  # left RUNNING, as by a killed process
    few = TuningSettings(**{**SETTINGS.__dict__, "n_trials": 3})
    _, res = _run(storage=storage, settings=few, name="crashed")
    states = [t.state for t in optuna.load_study(study_name="crashed", storage=storage).trials]
    assert states[0] == TrialState.FAIL
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == 3
    assert TrialState.RUNNING not in states
    assert res.n_trials == 4


def test_studies_are_separate_per_fold():
    storage = optuna.storages.InMemoryStorage()
    few = TuningSettings(**{**SETTINGS.__dict__, "n_trials": 3})
    _run(storage=storage, settings=few, name="a")
    _, b = _run(storage=storage, settings=few, name="b")
    assert b.n_trials == 3


def test_too_few_samples_of_a_class_is_an_error():
    one_pos = [Sample("p", "p", (Path("a"), Path("b")), 1)] + _samples(6, "n")
    one_pos = [s for s in one_pos if s.label == 0 or s.sample_id == "p"]
    with pytest.raises(ValueError, match="fewer than 2"):
        _run(train=one_pos)


def test_score_objectives():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    assert score("roc_auc", y, p) == pytest.approx(0.75)
    assert score("accuracy", y, p) == pytest.approx(0.5)
    assert score("log_loss", y, p) < 0
    assert score("roc_auc", np.array([1, 1]), np.array([0.2, 0.3])) == 0.5


def test_make_storage_defaults_to_a_journal_file(tmp_path):
    storage = make_storage(None, tmp_path / "sub" / "optuna.journal")
    assert isinstance(storage, optuna.storages.JournalStorage)
    _run(storage=storage, settings=TuningSettings(**{**SETTINGS.__dict__, "n_trials": 2}), name="j")
    assert (tmp_path / "sub" / "optuna.journal").stat().st_size > 0
    assert isinstance(make_storage(f"journal:{tmp_path / 'x.journal'}", tmp_path / "unused"),
                      optuna.storages.JournalStorage)
    assert isinstance(make_storage(f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "unused"),
                      optuna.storages.RDBStorage)


class _CrashOnFit(StubEstimator):
    """Dies (like a kill) on its n-th fit, i.e. in the middle of a trial."""

    def __init__(self, crash_at: int):
        super().__init__()
        self.crash_at = crash_at

    def fit(self, samples, **kw):
        if self.n_fit + 1 == self.crash_at:
            raise KeyboardInterrupt("simulated kill")
        return super().fit(samples, **kw)


def _finished_params(storage, name):
    study = optuna.load_study(study_name=name, storage=storage)
    return [(t.params, t.value, t.state) for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def test_resumed_study_suggests_exactly_what_an_uninterrupted_one_would():
    settings = TuningSettings(n_trials=12, inner_folds=3, lr_min=1e-5, lr_max=1.0, epochs_min=1, epochs_max=10)
    whole = optuna.storages.InMemoryStorage()
    _, res_whole = _run(storage=whole, settings=settings)
    cut = optuna.storages.InMemoryStorage()
    with pytest.raises(KeyboardInterrupt):
        _run(est=_CrashOnFit(crash_at=26), storage=cut, settings=settings)  # dies in trial 8, after TPE took over
    _, res_cut = _run(storage=cut, settings=settings)
    assert _finished_params(cut, "study") == _finished_params(whole, "study")
    assert (res_cut.learning_rate, res_cut.epochs) == (res_whole.learning_rate, res_whole.epochs)


class CurveEstimator(StubEstimator):
    """Has `fit_epochs`: quality rises to a peak at epoch PEAK (for the good learning rate), then falls."""

    PEAK = 4

    def fit_epochs(self, samples, *, learning_rate, epochs, seed):
        self.n_fit += 1
        self.seen_fit.update(s.sample_id for s in samples)
        base = max(0.0, 1.0 - abs(math.log10(learning_rate) - math.log10(BEST_LR)) / 2.0)
        for e in range(1, epochs + 1):
            self.epochs_trained = getattr(self, "epochs_trained", 0) + 1
            yield _StubPredictor(self, base * max(0.0, 1.0 - abs(e - self.PEAK) / 6), seed)


CURVE_SETTINGS = TuningSettings(n_trials=16, inner_folds=3, lr_min=1e-5, lr_max=1.0, epochs_min=2, epochs_max=10)


def test_learning_curves_choose_the_best_epoch_and_report_every_epoch():
    est = CurveEstimator()
    storage = optuna.storages.InMemoryStorage()
    _, res = _run(est=est, storage=storage, settings=CURVE_SETTINGS, name="curve")
    study = optuna.load_study(study_name="curve", storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and "epochs" not in complete[0].params  # epochs come from the curve, not a parameter
    for t in complete:
        assert sorted(t.intermediate_values) == list(range(1, CURVE_SETTINGS.epochs_max + 1))
        curve = [t.intermediate_values[e] for e in range(1, CURVE_SETTINGS.epochs_max + 1)]
        best = t.user_attrs["best_epoch"]
        assert CURVE_SETTINGS.epochs_min <= best and t.value == pytest.approx(curve[best - 1])
        assert t.value == pytest.approx(max(curve[CURVE_SETTINGS.epochs_min - 1:]))
    assert res.epochs == study.best_trial.user_attrs["best_epoch"]
    assert abs(res.epochs - CurveEstimator.PEAK) <= 2
    # one training run per inner fold and trial, never one per epoch
    assert est.n_fit == len(study.trials) * CURVE_SETTINGS.inner_folds
    # the chosen trial's curve (logged by the fold run as inner_<objective>, step = epoch) and trials.csv's column
    best_curve = [study.best_trial.intermediate_values[e] for e in range(1, CURVE_SETTINGS.epochs_max + 1)]
    assert res.curve == pytest.approx(best_curve, abs=1e-6)
    frame = trials_frame(study)
    for t, cell in zip(study.trials, frame["curve"]):
        assert json.loads(cell) == pytest.approx([t.intermediate_values[e] for e in sorted(t.intermediate_values)],
                                                 abs=1e-6)
    assert curve_metric("roc_auc") == "inner_roc_auc" and curve_metric("log_loss") == "inner_neg_log_loss"


def test_learning_curve_pruning_stops_bad_trials_early():
    est = CurveEstimator()
    storage = optuna.storages.InMemoryStorage()
    _, res = _run(est=est, storage=storage, settings=CURVE_SETTINGS, name="prune")
    study = optuna.load_study(study_name="prune", storage=storage)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert res.n_pruned == len(pruned) > 0
    assert all(max(t.intermediate_values) < CURVE_SETTINGS.epochs_max for t in pruned)
    assert all(max(t.intermediate_values) >= CURVE_SETTINGS.epochs_min for t in pruned)  # no pruning in warm-up
    full = len(study.trials) * CURVE_SETTINGS.inner_folds * CURVE_SETTINGS.epochs_max
    assert est.epochs_trained < full


def test_learning_curve_tuning_is_deterministic():
    _, a = _run(est=CurveEstimator(), settings=CURVE_SETTINGS, seed=3)
    _, b = _run(est=CurveEstimator(), settings=CURVE_SETTINGS, seed=3)
    assert a == b


def test_rank_auc_equals_sklearn_roc_auc_with_ties_and_one_class():
    from sklearn.metrics import roc_auc_score

    from neipalette.evaluation.metrics import rank_auc

    g = np.random.default_rng(0)
    for _ in range(100):
        y = g.integers(0, 2, 12)
        p = np.round(g.random(12), 1)  # many ties
        if 0 < y.sum() < len(y):
            assert rank_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert rank_auc(np.ones(4, int), np.arange(4.0)) == 0.5


class DecayCurveEstimator(CurveEstimator):
    """As CurveEstimator, and the inner score also peaks at weight decay BEST_WD."""

    BEST_WD = 1e-1

    def fit_epochs(self, samples, *, learning_rate, epochs, seed, weight_decay=None):
        self.decays = getattr(self, "decays", []) + [weight_decay]
        fit = max(0.0, 1.0 - abs(math.log10(weight_decay) - math.log10(self.BEST_WD)) / 3.0)
        for predictor in super().fit_epochs(samples, learning_rate=learning_rate, epochs=epochs, seed=seed):
            predictor.quality *= fit
            yield predictor


def test_weight_decay_is_tuned_as_a_second_dimension_when_asked():
    settings = TuningSettings(n_trials=30, inner_folds=3, lr_min=1e-5, lr_max=1.0, epochs_min=2, epochs_max=6,
                              tune_weight_decay=True, weight_decay_min=1e-5, weight_decay_max=10.0)
    est, res = _run(est=DecayCurveEstimator(), settings=settings)
    assert res.weight_decay is not None and abs(math.log10(res.weight_decay) - math.log10(DecayCurveEstimator.BEST_WD)) < 1.0
    assert len(set(est.decays)) > 10 and all(1e-5 <= d <= 10.0 for d in est.decays)
    assert "weight_decay" in res.trials.columns
    _, plain = _run(est=CurveEstimator(), settings=CURVE_SETTINGS)  # not asked: not a parameter, None
    assert plain.weight_decay is None and "weight_decay" not in plain.trials.columns
