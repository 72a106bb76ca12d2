"""Tests for neipalette.models.baselines: chance, colour_stats and ou_luo on tiny datasets."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from neipalette.models.baselines import (
    BASELINES,
    ChanceBaseline,
    ColourStatsBaseline,
    OuLuoBaseline,
    best_threshold,
    make_baseline,
)
from neipalette.colour.extract import dominant_lab
from neipalette.colour.harmony import ou_luo_harmony
from neipalette.data.dataset import load_dataset
from neipalette.data.samples import Sample, make_samples
from tests.conftest import make_tiny_dataset

FIT = {"learning_rate": float("nan"), "epochs": 0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    root = make_tiny_dataset(tmp_path_factory.mktemp("baselines") / "tiny", n_outfits=16, seed=3)
    return load_dataset(root)


def _samples(dataset, mode: str = "pair") -> list[Sample]:
    return make_samples(dataset, range(len(dataset.outfits)), mode)


def _fake_samples(n: int, positive_every: int = 2) -> list[Sample]:
    """Image-less samples: enough for the chance baseline, which never looks at images."""
    return [Sample(f"s{i}", f"s{i}", (Path("none.png"), Path("none.png")), int(i % positive_every == 0))
            for i in range(n)]


@pytest.mark.parametrize("name", list(BASELINES))
def test_fit_predict_shapes_and_range(tiny, name: str) -> None:
    samples = _samples(tiny)
    estimator = make_baseline(name)
    assert estimator.name == name and estimator.tunable is False
    p = estimator.fit(samples[:12], seed=1, **FIT).predict_proba(samples[12:])
    assert p.shape == (4,) and np.all((p >= 0) & (p <= 1))


@pytest.mark.parametrize("name", list(BASELINES))
def test_same_seed_same_predictions_and_pickle_round_trip(tiny, name: str) -> None:
    samples = _samples(tiny)
    a = make_baseline(name).fit(samples, seed=5, **FIT)
    b = make_baseline(name).fit(samples, seed=5, **FIT)
    np.testing.assert_array_equal(a.predict_proba(samples), b.predict_proba(samples))
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.predict_proba(samples), a.predict_proba(samples))


def test_fit_returns_a_new_predictor_each_time(tiny) -> None:
    estimator, samples = ColourStatsBaseline(), _samples(tiny)
    first = estimator.fit(samples[:10], seed=0, **FIT)
    before = first.predict_proba(samples)
    estimator.fit(samples[6:], seed=0, **FIT)
    np.testing.assert_array_equal(first.predict_proba(samples), before)


def test_chance_depends_on_seed_not_on_call_order() -> None:
    samples = _fake_samples(40)
    a = ChanceBaseline().fit(samples, seed=1, **FIT)
    b = ChanceBaseline().fit(samples, seed=2, **FIT)
    assert not np.array_equal(a.predict_proba(samples), b.predict_proba(samples))
    whole = a.predict_proba(samples)
    np.testing.assert_array_equal(a.predict_proba(samples[::-1])[::-1], whole)
    np.testing.assert_array_equal(a.predict_proba(samples[5:9]), whole[5:9])


def test_chance_predicts_positive_at_the_train_rate_with_continuous_scores() -> None:
    train = _fake_samples(100, positive_every=4)  # 25% positive
    test = _fake_samples(4000)
    p = ChanceBaseline().fit(train, seed=3, **FIT).predict_proba(test)
    assert abs(np.mean(p >= 0.5) - 0.25) < 0.03
    assert len(np.unique(p)) > 3900  # continuous, so ROC-AUC is meaningful
    y = np.array([s.label for s in test])
    assert abs(roc_auc_score(y, p) - 0.5) < 0.05


def test_colour_stats_works_on_single_images_and_refuses_a_mode_switch(tiny) -> None:
    single, pair = _samples(tiny, "single"), _samples(tiny, "pair")
    predictor = ColourStatsBaseline().fit(single, seed=0, **FIT)
    assert predictor.predict_proba(single).shape == (len(single),)
    with pytest.raises(ValueError, match="1-image samples"):
        predictor.predict_proba(pair)


def test_ou_luo_refuses_single_image_samples(tiny) -> None:
    with pytest.raises(ValueError, match="ou_luo needs pair samples"):
        OuLuoBaseline().fit(_samples(tiny, "single"), seed=0, **FIT)
    predictor = OuLuoBaseline().fit(_samples(tiny), seed=0, **FIT)
    with pytest.raises(ValueError, match="use input_mode pair or composite"):
        predictor.predict_proba(_samples(tiny, "single"))


def test_ou_luo_is_monotone_in_harmony(tiny) -> None:
    samples = _samples(tiny)
    p = OuLuoBaseline().fit(samples, seed=0, **FIT).predict_proba(samples)
    ch = np.array([ou_luo_harmony(dominant_lab(s.images[0]), dominant_lab(s.images[1])) for s in samples])
    order = np.argsort(ch)
    assert np.all(np.diff(p[order]) > 0)
    y = np.array([s.label for s in samples])
    assert roc_auc_score(y, p) == pytest.approx(roc_auc_score(y, ch))


def test_best_threshold_maximises_accuracy_and_breaks_ties_in_the_middle() -> None:
    assert best_threshold(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1])) == pytest.approx(2.5)
    # Cuts at 1.5, 3.5 and 5.5 are all 5/7 right (the others worse): the middle one of the best wins.
    scores, y = np.arange(1.0, 8.0), np.array([0, 1, 0, 1, 0, 1, 1])
    assert best_threshold(scores, y) == pytest.approx(3.5)
    assert best_threshold(scores[::-1], y[::-1]) == pytest.approx(3.5)  # order of samples is irrelevant
    # Equal scores are never split: the cuts are below 1, at 1.5 and above 2 (3/4, 3/4, 1/4 right).
    t = best_threshold(np.array([1.0, 1.0, 2.0, 2.0]), np.array([0, 1, 1, 1]))
    assert t < 1.0


def test_unknown_baseline_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="chance, colour_stats, ou_luo"):
        make_baseline("resnet_baseline")


@pytest.mark.slow
def test_ou_luo_beats_chance_on_generated_outfits(tmp_path: Path) -> None:
    from benchmark.baselines_check import cross_validate
    from neipalette.data.synth import SynthConfig, generate_dataset

    root = tmp_path / "synth"
    generate_dataset(SynthConfig(n_outfits=200, seed=4, image_size=96), root)
    dataset = load_dataset(root)
    result = cross_validate(dataset, "ou_luo", n_splits=5, n_repeats=1, seed=4)
    assert result["accuracy"] > 0.6 and result["roc_auc"] > 0.65
    chance = cross_validate(dataset, "chance", n_splits=5, n_repeats=1, seed=4)
    assert abs(chance["roc_auc"] - 0.5) < 0.1
