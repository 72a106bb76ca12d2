"""Tests for benchmark.stats: hand-computed values and scikit-learn's example formulas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as t_dist
from sklearn.metrics import roc_auc_score

from benchmark.stats import (
    Comparison,
    Interval,
    bootstrap_auc_interval,
    corrected_interval,
    corrected_paired_test,
    summarize_folds,
    wilson_interval,
)


# --- scikit-learn example "Statistical comparison of models using grid search", re-implemented ----------
def corrected_std(differences, n_train, n_test):
    """Corrects standard deviation using Nadeau and Bengio's approach."""
    kr = len(differences)
    corrected_var = np.var(differences, ddof=1) * (1 / kr + n_test / n_train)
    return np.sqrt(corrected_var)


def compute_corrected_ttest(differences, df, n_train, n_test):
    """Computes right-tailed paired t-test with corrected variance (the example's version)."""
    mean = np.mean(differences)
    std = corrected_std(differences, n_train, n_test)
    t_stat = mean / std
    p_val = t_dist.sf(np.abs(t_stat), df)  # right-tailed t-test
    return t_stat, p_val


# --- hand-computed ---------------------------------------------------------------------------------------
def test_corrected_interval_by_hand():
    # x = [0.5, 0.6, 0.7, 0.8]; J = 4; mean = 0.65
    # var(ddof=1) = (0.15² + 0.05² + 0.05² + 0.15²) / 3 = (0.0225+0.0025+0.0025+0.0225)/3 = 0.05/3
    # n_train = 32, n_test = 8 -> factor = 1/4 + 8/32 = 0.5; se = sqrt(0.5 · 0.05/3) = sqrt(1/120)
    # t(3, 0.975) = 3.182446305284263
    x = [0.5, 0.6, 0.7, 0.8]
    iv = corrected_interval(x, n_train=32, n_test=8)
    se = math.sqrt(1 / 120)
    half = 3.182446305284263 * se  # ≈ 0.290516
    assert iv == Interval(pytest.approx(0.65), pytest.approx(0.65 - half, abs=1e-12),
                          pytest.approx(0.65 + half, abs=1e-12), 4, "")
    assert iv.ci_low == pytest.approx(0.359484, abs=1e-6)


def test_corrected_interval_ignores_nan_and_needs_two():
    iv = corrected_interval([0.5, float("nan"), 0.7], n_train=10, n_test=5)
    # finite: [0.5, 0.7]; J=2, mean 0.6, var = 0.02, factor = 1/2 + 1/2 = 1, se = sqrt(0.02)
    half = t_dist.ppf(0.975, 1) * math.sqrt(0.02)
    assert iv.n == 2 and iv.ci_high == pytest.approx(0.6 + half, abs=1e-12)
    one = corrected_interval([0.8, float("nan")], n_train=10, n_test=5)
    assert one.mean == 0.8 and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    assert one.note == "needs at least 2 finished folds (has 1)"
    none = corrected_interval([], n_train=10, n_test=5)
    assert math.isnan(none.mean) and none.note == "needs at least 2 finished folds (has 0)"


def test_paired_test_by_hand():
    # a − b = d = [0.1, 0.2, 0.3]; J = 3; mean 0.2; var(ddof=1) = (0.01+0+0.01)/2 = 0.01
    # n_train = 20, n_test = 10 -> factor = 1/3 + 1/2 = 5/6; se = sqrt(0.01·5/6) = 0.0912870929
    # t = 0.2 / 0.0912870929 = 2.1908902300; p = 2·sf(2.19089, df=2)
    a = np.array([0.6, 0.7, 0.8])
    b = np.array([0.5, 0.5, 0.5])
    c = corrected_paired_test(a, b, n_train=20, n_test=10)
    se = math.sqrt(0.01 * 5 / 6)
    assert c.t == pytest.approx(0.2 / se, abs=1e-12)
    assert c.t == pytest.approx(2.1908902300, abs=1e-9)
    assert c.p_value == pytest.approx(2 * t_dist.sf(0.2 / se, 2), abs=1e-12)
    half = t_dist.ppf(0.975, 2) * se
    # the interval: corrected t on the Fisher-z scale of m* = 0.2 · 30/31 (half an item towards 0)
    m = 0.2 * 30 / 31
    zh = half / (1 - m * m)
    assert c.ci_low == pytest.approx(math.tanh(math.atanh(m) - zh), abs=1e-12)
    assert c.ci_high == pytest.approx(math.tanh(math.atanh(m) + zh), abs=1e-12)
    assert c.ci_low > 0.2 - half - 0.06 and -1.0 < c.ci_low < c.ci_high < 1.0
    assert c.n == 3 and c.note == ""


def test_difference_interval_stays_in_minus_one_one_at_the_extremes():
    """Two [0, 1] scores differ by at most 1: the quick report's [−4.897, 4.127] cannot happen."""
    for a, b in (([1.0, 0.0, 1.0], [0.0, 1.0, 0.0]), ([1.0, 1.0, 0.9], [0.0, 0.0, 0.1]),
                 ([0.0, 0.0, 0.1], [1.0, 1.0, 0.8]), ([1.0, 0.5], [0.0, 0.5])):
        c = corrected_paired_test(a, b, 8, 2)
        assert -1.0 <= c.ci_low <= c.mean_diff <= c.ci_high <= 1.0, (a, b, c)
        plain = abs(c.t) and c.mean_diff / c.t * t_dist.ppf(0.975, len(a) - 1)
        assert c.mean_diff - plain < -1.0 or c.mean_diff + plain > 1.0  # the plain t would leave [−1, 1]
    level = test_against_level([1.0, 0.9, 1.0, 1.0, 0.2], 0.5, 8, 2)
    assert -1.0 <= level.ci_low < level.ci_high <= 1.0


def test_difference_interval_is_the_plain_t_for_small_differences():
    rng = np.random.default_rng(5)
    a = rng.uniform(0.5, 0.7, 25)
    b = a - 0.01 + rng.normal(0, 0.01, 25)
    c = corrected_paired_test(a, b, 32, 8)
    half = t_dist.ppf(0.975, 24) * corrected_std(a - b, 32, 8)
    m = float(np.mean(a - b))
    # within 5% of the half-width (the only visible change is the half-item shrink of the centre, m·40/41)
    assert c.ci_low == pytest.approx(m - half, abs=0.05 * half) and c.ci_high == pytest.approx(m + half, abs=0.05 * half)
    # outside [0, 1] (a metric without bounds) the interval stays the plain corrected t
    wide = corrected_paired_test(a * 3, b * 3, 32, 8)
    assert wide.ci_low == pytest.approx(3 * m - 3 * half, abs=1e-12)


def test_paired_test_zero_variance_is_not_testable_never_p_zero():
    """Tied folds (the quick report's +0.090 on two folds) give no p-value and no interval, never p = 0."""
    same = corrected_paired_test([0.5, 0.6], [0.5, 0.6], 10, 5)
    assert math.isnan(same.p_value) and same.mean_diff == 0.0 and "not testable with 2 folds" in same.note
    shifted = corrected_paired_test([0.6, 0.7, 0.8], [0.51, 0.61, 0.71], 10, 5)  # +0.09 up to float rounding
    assert math.isnan(shifted.p_value) and math.isnan(shifted.t) and shifted.mean_diff == pytest.approx(0.09)
    assert math.isnan(shifted.ci_low) and math.isnan(shifted.ci_high)
    assert "not testable with 3 folds" in shifted.note and "+0.090" in shifted.note
    level = test_against_level([0.75, 0.75, 0.75], 0.5, 10, 5)
    assert math.isnan(level.p_value) and "zero variance" in level.note
    varied = corrected_paired_test([0.6, 0.7, 0.9], [0.5, 0.6, 0.7], 10, 5)  # one fold differs: testable
    assert 0.0 < varied.p_value < 1.0
    short = corrected_paired_test([0.6], [0.5], 10, 5)
    assert isinstance(short, Comparison) and math.isnan(short.p_value)
    assert short.note == "needs at least 2 finished folds (has 1)"


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_matches_sklearn_example(seed):
    rng = np.random.default_rng(seed)
    k, r = 5, 5
    a = rng.uniform(0.4, 0.9, k * r)
    b = rng.uniform(0.3, 0.8, k * r)
    n_train, n_test = 32.0, 8.0
    d = a - b
    t_ex, p_right = compute_corrected_ttest(d, k * r - 1, n_train, n_test)
    c = corrected_paired_test(a, b, n_train, n_test)
    assert abs(c.t - t_ex) < 1e-12
    assert abs(c.p_value - 2 * p_right) < 1e-12  # ours is two-sided
    std = corrected_std(d, n_train, n_test)
    half = t_dist.ppf(0.975, k * r - 1) * std
    m = np.mean(d) * 40 / 41
    assert abs(c.ci_low - math.tanh(math.atanh(m) - half / (1 - m * m))) < 1e-12  # the Fisher-z interval
    assert abs(c.ci_high - math.tanh(math.atanh(m) + half / (1 - m * m))) < 1e-12
    assert abs(c.ci_low - (np.mean(d) - half)) < 0.02 and abs(c.ci_high - (np.mean(d) + half)) < 0.02
    iv = corrected_interval(a, n_train, n_test)
    half_a = t_dist.ppf(0.975, k * r - 1) * corrected_std(a, n_train, n_test)
    assert abs(iv.ci_low - (np.mean(a) - half_a)) < 1e-12 and abs(iv.ci_high - (np.mean(a) + half_a)) < 1e-12


def test_wilson_known_values():
    w = wilson_interval(10, 20)
    assert w.mean == 0.5 and w.n == 20
    assert w.ci_low == pytest.approx(0.2993, abs=5e-5) and w.ci_high == pytest.approx(0.7007, abs=5e-5)
    # 0 of 10: lower bound 0, upper z²/(n+z²) = 3.8415/13.8415 = 0.2775
    z0 = wilson_interval(0, 10)
    assert z0.ci_low == 0.0 and z0.ci_high == pytest.approx(0.2775, abs=5e-5)
    assert math.isnan(wilson_interval(0, 0).mean)


def test_bootstrap_auc_contains_point_and_is_deterministic():
    rng = np.random.default_rng(3)
    y = np.array([1] * 10 + [0] * 10)
    p = np.clip(0.5 + 0.25 * (y - 0.5) + rng.normal(0, 0.25, 20), 0, 1)
    iv = bootstrap_auc_interval(y, p, n_boot=500, seed=1)
    assert iv.mean == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert iv.ci_low <= iv.mean <= iv.ci_high
    assert iv == bootstrap_auc_interval(y, p, n_boot=500, seed=1)
    assert iv != bootstrap_auc_interval(y, p, n_boot=500, seed=2)
    # string labels work, ties count one half as in sklearn
    tied = bootstrap_auc_interval(["positive", "negative", "positive", "negative"], [0.5, 0.5, 0.9, 0.1], n_boot=50)
    assert tied.mean == pytest.approx(roc_auc_score([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1]))
    one_class = bootstrap_auc_interval([1, 1, 1], [0.2, 0.3, 0.4])
    assert math.isnan(one_class.mean) and "both classes" in one_class.note


def test_bootstrap_matches_sklearn_per_resample():
    # The vectorised rank AUC must equal sklearn's on each resample; re-run the resampling by hand.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 15)
    p = rng.uniform(size=15).round(1)  # ties on purpose
    iv = bootstrap_auc_interval(y, p, n_boot=200, seed=5)
    idx = np.random.default_rng(5).integers(0, 15, size=(200, 15))
    aucs = [roc_auc_score(y[i], p[i]) for i in idx if len(np.unique(y[i])) == 2]
    lo, hi = np.quantile(aucs, [0.025, 0.975])
    assert iv.ci_low == pytest.approx(lo, abs=1e-12) and iv.ci_high == pytest.approx(hi, abs=1e-12)


def test_summarize_folds_cv():
    folds = pd.DataFrame({"accuracy": [0.5, 0.6, 0.7, 0.8], "roc_auc": [0.6, 0.6, 0.7, 0.7],
                          "n_train": [32, 32, 31, 33], "n_test": [8, 8, 9, 7]})
    s = summarize_folds(folds, "cv", ["accuracy", "roc_auc", "f1"])
    # n_train mean 32, n_test mean 8 -> same numbers as test_bounded_interval_by_hand
    assert s["accuracy_mean"] == pytest.approx(0.65)
    assert s["accuracy_ci_low"] == pytest.approx(bounded_interval([0.5, 0.6, 0.7, 0.8], 32, 8).ci_low, abs=1e-12)
    assert s["n_folds"] == 4 and "f1_mean" not in s
    assert set(s) == {"accuracy_mean", "accuracy_ci_low", "accuracy_ci_high",
                      "roc_auc_mean", "roc_auc_ci_low", "roc_auc_ci_high", "n_folds"}


def test_summarize_folds_seed_split():
    folds = pd.DataFrame({"accuracy": [0.5], "roc_auc": [0.75], "f1": [0.4], "n_train": [60], "n_test": [20]})
    preds = pd.DataFrame({"label": [1, 0, 1, 0] * 5, "p_positive": np.linspace(0.1, 0.9, 20)})
    s = summarize_folds(folds, "seed_split", ["accuracy", "roc_auc", "f1"], preds)
    assert s["accuracy_mean"] == 0.5  # no outfit ids: Wilson and a bootstrap over images
    assert s["accuracy_ci_low"] == pytest.approx(0.2993, abs=5e-5)
    assert s["accuracy_ci_high"] == pytest.approx(0.7007, abs=5e-5)
    b = bootstrap_auc_interval(preds["label"], preds["p_positive"])
    assert (s["roc_auc_ci_low"], s["roc_auc_ci_high"]) == (b.ci_low, b.ci_high)
    preds["outfit_id"] = [f"o{i // 2}" for i in range(20)]
    s2 = summarize_folds(folds, "seed_split", ["accuracy", "roc_auc"], preds)
    c = cluster_bootstrap_interval(preds["label"], preds["p_positive"], preds["outfit_id"], "roc_auc")
    assert (s2["roc_auc_ci_low"], s2["roc_auc_ci_high"]) == (c.ci_low, c.ci_high)
    assert s2["roc_auc_mean"] == 0.75
    assert s["roc_auc_mean"] == 0.75  # the logged point estimate, as the study reported it
    assert s["f1_mean"] == 0.4 and "f1_ci_low" not in s and s["n_folds"] == 1


# --- statistics v2: bounded means, tests against a level, Holm, the ceiling's range, cluster bootstrap ---
from scipy.stats import binom, binomtest  # noqa: E402

from benchmark.stats import (  # noqa: E402
    EDGE_NOTE,
    bayes_accuracy_range,
    bounded_interval,
    cluster_bootstrap_interval,
    holm,
    naive_interval,
    stratified_chance_accuracy,
    test_against_level,
)
from neipalette.evaluation.metrics import poisson_binomial_pmf  # noqa: E402


def _expit(z):
    return 1 / (1 + math.exp(-z))


def test_bounded_interval_by_hand():
    # x = [0.5, 0.6, 0.7, 0.8], J = 4, n_train 32, n_test 8: mean 0.65, var 0.05/3, c = 1/4 + 8/32 = 0.5
    # m* = (0.65·40 + 0.5)/41 = 26.5/41; floor m*(1−m*)/8 · 32/39 ≈ 0.0233 > 0.05/3 ≈ 0.0167, so the floor binds
    x = [0.5, 0.6, 0.7, 0.8]
    m = 26.5 / 41
    var = max(0.05 / 3, m * (1 - m) / 8 * 32 / 39)
    assert var == pytest.approx(m * (1 - m) / 8 * 32 / 39)
    se = math.sqrt(0.5 * var) / (m * (1 - m))
    t3 = 3.182446305284263
    iv = bounded_interval(x, n_train=32, n_test=8)
    assert iv.mean == pytest.approx(0.65)
    assert iv.ci_low == pytest.approx(_expit(math.log(m / (1 - m)) - t3 * se), abs=1e-12)
    assert iv.ci_high == pytest.approx(_expit(math.log(m / (1 - m)) + t3 * se), abs=1e-12)
    # spread above the floor: the sample variance is used
    y = [0.2, 0.9, 0.4, 1.0, 0.6]
    ib = bounded_interval(y, n_train=32, n_test=8)
    m2 = (0.62 * 40 + 0.5) / 41
    se2 = math.sqrt((1 / 5 + 0.25) * np.var(y, ddof=1)) / (m2 * (1 - m2))
    assert np.var(y, ddof=1) > m2 * (1 - m2) / 8 * 32 / 39
    assert ib.ci_low == pytest.approx(_expit(math.log(m2 / (1 - m2)) - t_dist.ppf(0.975, 4) * se2), abs=1e-12)


def test_bounded_interval_stays_in_unit_interval_at_the_edges():
    ones = bounded_interval([1.0] * 25, n_train=32, n_test=8)
    assert ones.mean == 1.0 and 0.0 < ones.ci_low < ones.ci_high == 1.0  # stretched to hold the mean
    assert ones.ci_low < 0.95  # 25 perfect folds of 8 outfits are not proof of perfection
    # by hand: m* = 40.5/41, floor var m*(1−m*)/8 · 32/39, c = 1/25 + 1/4
    m = 40.5 / 41
    se = math.sqrt((1 / 25 + 0.25) * m * (1 - m) / 8 * 32 / 39) / (m * (1 - m))
    assert ones.ci_low == pytest.approx(_expit(math.log(m / (1 - m)) - t_dist.ppf(0.975, 24) * se), abs=1e-12)
    assert ones.note == EDGE_NOTE
    zeros = bounded_interval([0.0] * 25, n_train=32, n_test=8)
    assert 0.0 == zeros.ci_low < zeros.ci_high < 1.0 and zeros.note == EDGE_NOTE
    assert zeros.ci_high == pytest.approx(1 - ones.ci_low)
    nearly = bounded_interval([1.0] * 24 + [0.875], n_train=32, n_test=8)
    assert nearly.ci_low < nearly.mean < nearly.ci_high < 1.0
    # the example: 16 of 25 folds at AUC 1.0, mean 0.953; the symmetric t went past 1
    auc = [1.0] * 16 + [0.85, 0.9, 0.88, 0.8, 0.95, 0.92, 0.9, 0.91, 0.86]
    assert corrected_interval(auc, 32, 8).ci_high > 1.0
    b = bounded_interval(auc, 32, 8)
    assert 0.0 < b.ci_low < b.mean < b.ci_high < 1.0
    with pytest.raises(ValueError):
        bounded_interval([0.5, 1.2], 32, 8)
    assert math.isnan(bounded_interval([0.5], 32, 8).ci_low)


def test_naive_interval_by_hand():
    iv = naive_interval([0.5, 0.6, 0.7, 0.8])
    half = 3.182446305284263 * math.sqrt((0.05 / 3) / 4)
    assert (iv.ci_low, iv.ci_high) == (pytest.approx(0.65 - half), pytest.approx(0.65 + half))


def test_against_a_known_level_is_the_paired_test_with_a_constant():
    x = np.array([0.55, 0.7, 0.62, 0.48, 0.66])
    c = test_against_level(x, 0.5, 32, 8)
    ref = corrected_paired_test(x, np.full(5, 0.5), 32, 8)
    assert c == ref
    se = math.sqrt((1 / 5 + 8 / 32) * np.var(x - 0.5, ddof=1))
    assert c.t == pytest.approx(np.mean(x - 0.5) / se) and c.p_value == pytest.approx(2 * t_dist.sf(c.t, 4))
    per_fold = test_against_level(x, [0.5, 0.5, 0.52, 0.5, 0.48], 32, 8)
    assert per_fold.mean_diff == pytest.approx(np.mean(x) - 0.5)
    assert stratified_chance_accuracy(0.5) == 0.5
    assert stratified_chance_accuracy(0.7) == pytest.approx(0.49 + 0.09)
    assert stratified_chance_accuracy(0.6, 0.5) == pytest.approx(0.5)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 (m = 3): 3·0.01 = 0.03, 2·0.03 = 0.06, 1·0.04 -> max(0.06, 0.04) = 0.06
    adj = holm([0.01, 0.04, 0.03, float("nan")])
    np.testing.assert_allclose(adj[:3], [0.03, 0.06, 0.06])
    assert math.isnan(adj[3])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(holm([0.2]), [0.2])
    assert holm([]).size == 0


def test_poisson_binomial_matches_binomial_and_a_hand_case():
    np.testing.assert_allclose(poisson_binomial_pmf([0.8] * 40), binom.pmf(np.arange(41), 40, 0.8), atol=1e-12)
    # two trials 0.5 and 0.9: P(0) = 0.05, P(1) = 0.5, P(2) = 0.45
    np.testing.assert_allclose(poisson_binomial_pmf([0.5, 0.9]), [0.05, 0.5, 0.45])


def test_bayes_accuracy_range():
    p = np.array([0.8, 0.2] * 20)  # every outfit: the Bayes rule is right with probability 0.8
    r = bayes_accuracy_range(p, labels=[1, 1] * 20)
    assert r.expected == pytest.approx(0.8) and r.n == 40
    assert r.low == binom.ppf(0.025, 40, 0.8) / 40 and r.high == binom.ppf(0.975, 40, 0.8) / 40
    assert r.coverage >= 0.95
    assert r.realised == 0.5  # predicts [1, 0, 1, 0, ...] against all-positive labels
    mixed = bayes_accuracy_range([0.5, 0.9, 0.99, 0.3, 0.6] * 8)
    assert mixed.low <= mixed.expected <= mixed.high and math.isnan(mixed.realised)


def test_cluster_bootstrap_with_singletons_is_the_sample_bootstrap():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 20)
    p = rng.uniform(size=20)
    ids = [f"o{i:02d}" for i in range(20)]  # sorted, one sample per cluster
    a = cluster_bootstrap_interval(y, p, ids, "roc_auc", n_boot=300, seed=2)
    b = bootstrap_auc_interval(y, p, n_boot=300, seed=2)
    assert (a.mean, a.ci_low, a.ci_high) == (pytest.approx(b.mean), pytest.approx(b.ci_low), pytest.approx(b.ci_high))


def test_cluster_bootstrap_resamples_whole_outfits():
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.4, 0.7, 0.2, 0.1, 0.55, 0.45])
    outfit = np.array(["a", "a", "b", "b", "c", "c", "d", "d", "e", "f"])
    iv = cluster_bootstrap_interval(y, p, outfit, "accuracy", n_boot=400, seed=7)
    # by hand: draw 6 outfits with replacement, keep both images of each
    draws = np.random.default_rng(7).integers(0, 6, size=(400, 6))
    members = [np.flatnonzero(outfit == k) for k in "abcdef"]
    correct = ((p >= 0.5) == y).astype(float)
    accs = [correct[np.concatenate([members[k] for k in row])].mean() for row in draws]
    lo, hi = np.quantile(accs, [0.025, 0.975])
    assert iv.mean == pytest.approx(correct.mean())
    assert (iv.ci_low, iv.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert 0.0 <= iv.ci_low <= iv.mean <= iv.ci_high <= 1.0
    with pytest.raises(ValueError):
        cluster_bootstrap_interval(y, p, outfit, "f1")


def test_wilson_is_scipys():
    for k, n in ((0, 10), (7, 20), (20, 20)):
        ci = binomtest(k, n).proportion_ci(method="wilson")
        w = wilson_interval(k, n)
        assert (w.ci_low, w.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
