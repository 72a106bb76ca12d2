"""Tests for neipalette.models.colour_pattern: features, the label-free pattern flags, C tuned by inner CV only."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from neipalette.data.dataset import load_dataset
from neipalette.data.samples import make_samples
from neipalette.data.synth import SynthConfig, generate_dataset
from neipalette.models.baselines import make_baseline
from neipalette.models.colour_pattern import (C_GRID, ColourPatternBaseline, PatternFlags, fit_colour_pattern,
                                              hue_relation_features)

FIT = {"learning_rate": float("nan"), "epochs": 0}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("colour-pattern") / "synth"
    generate_dataset(SynthConfig(n_outfits=24, seed=5, image_size=96), root)
    return load_dataset(root)


def test_fits_predicts_pickles_and_tunes_c_on_generated_pairs_and_single_images(synth) -> None:
    for mode in ("pair", "single"):
        samples = make_samples(synth, range(len(synth.outfits)), mode)
        cut = len(samples) * 3 // 4
        predictor = make_baseline("colour_pattern").fit(samples[:cut], seed=3, **FIT)
        p = predictor.predict_proba(samples[cut:])
        assert p.shape == (len(samples) - cut,) and np.all((p > 0) & (p < 1))
        assert predictor.C in C_GRID
        again = make_baseline("colour_pattern").fit(samples[:cut], seed=3, **FIT)
        np.testing.assert_array_equal(again.predict_proba(samples[cut:]), p)
        restored = pickle.loads(pickle.dumps(predictor))
        np.testing.assert_array_equal(restored.predict_proba(samples[cut:]), p)
    with pytest.raises(ValueError, match="2-image samples"):
        predictor.predict_proba(make_samples(synth, [0, 1], "pair"))  # the last one was fit on single images


def test_the_pattern_product_is_learnt_and_c_comes_from_the_inner_folds_only() -> None:
    # label: "not both garments patterned" -- invisible to any one garment's statistic, a product needs both
    rng = np.random.default_rng(0)
    n = 200
    flags = rng.random((n, 2)) < 0.5
    stats = np.where(flags, rng.normal(2.5, 0.3, (n, 2)), rng.normal(0.3, 0.3, (n, 2)))
    x = np.hstack([rng.normal(size=(n, 5)), stats])
    y = (~(flags[:, 0] & flags[:, 1])).astype(int)
    folds = [(np.arange(0, 150)[k::3], np.setdiff1d(np.arange(150), np.arange(0, 150)[k::3])) for k in range(3)]
    folds = [(va, tr) for tr, va in folds]  # any split of the first 150 rows
    model, c = fit_colour_pattern(x[:150], y[:150], 2, seed=0, folds=folds)
    assert c in C_GRID
    accuracy = np.mean((model.predict_proba(x[150:])[:, 1] >= 0.5) == y[150:])
    assert accuracy > 0.9, accuracy
    # the inner folds decide C: rows 150.. never reach the search (the same fit without them agrees)
    x_poisoned = x.copy()
    x_poisoned[150:] = 0.0
    _, c2 = fit_colour_pattern(x_poisoned[:150], y[:150], 2, seed=0, folds=folds)
    assert c2 == c


def test_pattern_flags_cut_ignores_labels_and_adds_the_product() -> None:
    x = np.array([[1.0, 0.1, 0.2], [2.0, 3.0, 0.1], [3.0, 2.9, 3.1], [4.0, 0.0, 2.8]])
    flags = PatternFlags(2).fit(x, np.array([0, 1, 0, 1]))
    same = PatternFlags(2).fit(x, np.array([1, 1, 0, 0]))
    assert flags.threshold_ == same.threshold_
    out = flags.transform(x)
    np.testing.assert_array_equal(out[:, 3:], [[0, 0, 0], [1, 0, 0], [1, 1, 1], [0, 1, 0]])
    assert PatternFlags(1).fit(x[:, :2]).transform(x[:, :2]).shape == (4, 3)  # single images: no product


def test_hue_relations_tell_analogous_and_complementary_from_a_quarter_turn() -> None:
    red, orange, green_blue, yellow_green = ([50.0, 60, 0], [50.0, 55, 20], [50.0, -60, 0], [50.0, 0, 60])
    rel = hue_relation_features(np.array([red, red, red]), np.array([orange, green_blue, yellow_green]))
    assert np.all((rel[:, 2] > 0.5) & (rel[:, 2] < 1))  # chromatic colours: weights between 1/2 and 1
    rel = rel / rel[:, 2:]
    assert rel[0, 1] > 0.5 and rel[1, 1] > 0.5 and rel[2, 1] < -0.5  # cos(2Δh): analogous, complementary, 90°
    assert rel[0, 0] > 0.5 and rel[1, 0] < -0.5  # cos(Δh): same side vs opposite
    grey = hue_relation_features(np.array([[50.0, 0.5, 0.5]]), np.array([red]))
    assert abs(grey[0, 0]) < 0.05 and abs(grey[0, 1]) < 0.05  # a neutral has no hue to relate


def test_tuning_options_reach_only_the_tuned_baseline() -> None:
    est = make_baseline("colour_pattern", inner_folds=2, objective="accuracy", tune=False)
    assert isinstance(est, ColourPatternBaseline)
    assert (est.inner_folds, est.objective, est.tune, est.tunable) == (2, "accuracy", False, False)
    assert make_baseline("colour_stats", inner_folds=2, objective="accuracy").name == "colour_stats"
    with pytest.raises(ValueError, match="objective"):
        ColourPatternBaseline(objective="f1")


def test_harmony_features_hold_ch_sharper_hue_templates_and_the_lightness_contrast_basis() -> None:
    from neipalette.colour.harmony import ou_luo_harmony
    from neipalette.models.colour_pattern import harmony_features

    top = np.array([[50.0, 60.0, 0.0], [50.0, 60.0, 0.0], [20.0, 0.0, 0.0], [30.0, 0.0, 0.0]])
    bottom = np.array([[50.0, 0.0, 60.0], [50.0, 60.0, 0.0], [80.0, 0.0, 0.0], [40.0, 0.0, 0.0]])
    h = harmony_features(top, bottom)
    assert h.shape == (4, 6)
    w = (60 / 80) ** 2
    np.testing.assert_allclose(h[0, :2], [w, -w], atol=1e-9)  # a quarter turn: cos(4Δh) = 1, cos(6Δh) = −1
    np.testing.assert_allclose(h[1, :2], [w, w], atol=1e-9)  # the same hue
    np.testing.assert_allclose(h[2:, :2], 0.0, atol=1e-12)  # neutrals have no hue to relate
    np.testing.assert_allclose(h[:, 2], ou_luo_harmony(top, bottom))
    np.testing.assert_allclose(h[2], [0, 0, h[2, 2], 60.0, 40.0, 45.0])  # |ΔL| 60: past both knots
    np.testing.assert_allclose(h[3, 3:], [10.0, 10.0, 0.0])  # |ΔL| 10: below the lower knot


def test_a_predictor_pickled_before_harmony_features_predicts_with_the_features_it_was_fit_on(synth) -> None:
    from neipalette.models.colour_features import garment_labs
    from neipalette.models.colour_pattern import ColourPatternPredictor, garment_patterns, raw_features

    samples = make_samples(synth, range(len(synth.outfits)), "pair")
    labs, patterns = garment_labs(samples), garment_patterns(samples)
    y = np.array([s.label for s in samples])
    old_x, new_x = raw_features(labs, patterns, version=1), raw_features(labs, patterns)
    assert new_x.shape[1] == old_x.shape[1] + 6
    model, c = fit_colour_pattern(old_x, y, 2, seed=0, folds=None)
    old = ColourPatternPredictor(model=model, n_images=2, C=c)
    del old.features_version  # what unpickling a version-1 predictor gives
    restored = pickle.loads(pickle.dumps(old))
    np.testing.assert_allclose(restored.predict_proba(samples), model.predict_proba(old_x)[:, 1])


def test_the_fold_run_logs_the_c_that_inner_cv_chose(synth, tmp_path) -> None:
    from benchmark.config import load_config
    from benchmark.folds import run_fold
    from benchmark.protocols import Job, all_splits

    quick = Path(__file__).resolve().parents[2] / "experiments" / "quick.yaml"
    cfg = load_config(quick, ["protocols=[cv]", "n_splits=2", "n_repeats=1", "baselines=[colour_pattern]"])
    split = all_splits(synth, cfg)[("cv", 0, 0)]
    result = run_fold(Job("colour_pattern", "cv", 0, 0), split, make_baseline("colour_pattern"), cfg,
                      study_name="unused", storage=None)
    assert result.params["C"] in C_GRID and result.params["C"] == result.predictor.C
    assert result.params["learning_rate"] == "n/a"
