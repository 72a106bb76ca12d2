"""Intervals and tests for small cross-validated benchmarks.

Repeated k-fold scores are not independent (training sets overlap), so the naive standard error is too
small. We use the Nadeau & Bengio (2003) corrected resampled variance, ``(1/J + n_test/n_train) * var``,
as recommended by Bouckaert & Frank (2004) for repeated k-fold. A mean of a [0, 1] metric gets that
corrected t interval on the logit scale (`bounded_interval`), so no bound leaves [0, 1]. Comparisons
(`corrected_paired_test`, `test_against_level`) test on the difference scale; the interval of a difference
of two [0, 1] scores is the corrected t on the Fisher-z scale (`bounded_difference`), so no bound leaves
[−1, 1]; a family of tests is adjusted with Holm's step-down (`holm`). For a single train/test split there is nothing to resample over:
accuracy and ROC-AUC get an outfit-level (cluster) bootstrap (`cluster_bootstrap_interval`), and a Wilson
interval for accuracy as the figure one would get if the test images were independent. The noise ceiling's
spread under label noise is the exact Poisson-binomial law of a Bayes-rule classifier's correct count
(`bayes_accuracy_range`).

No MLflow here: this module works on plain arrays and DataFrames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from neipalette.evaluation.metrics import METRICS, poisson_binomial_pmf, rank_auc

NAN = float("nan")
UNIT_METRICS = frozenset((*METRICS, "ceiling_accuracy"))  # metrics that live in [0, 1]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval; nan bounds and a `note` when not computable."""

    mean: float
    ci_low: float
    ci_high: float
    n: int
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    """Paired difference a − b with its interval, t statistic and two-sided p-value."""

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    t: float
    n: int
    note: str = ""


ZERO_SPREAD = 1e-12  # paired differences whose max - min is this small count as equal (floating-point ties)


def _finite(x) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _correction(j: int, n_train: float, n_test: float) -> float:
    if not (n_train > 0 and n_test >= 0):
        raise ValueError(f"n_train must be > 0 and n_test >= 0, got n_train={n_train}, n_test={n_test}")
    return 1.0 / j + float(n_test) / float(n_train)


def _too_few(j: int) -> str:
    return f"needs at least 2 finished folds (has {j})"


def corrected_interval(x, n_train: float, n_test: float, confidence: float = 0.95) -> Interval:
    """Mean of the finite per-fold scores `x` with the Nadeau-Bengio corrected t interval."""
    _check_confidence(confidence)
    v = _finite(x)
    j = int(v.size)
    mean = float(np.mean(v)) if j else NAN
    if j < 2:
        return Interval(mean, NAN, NAN, j, _too_few(j))
    se = math.sqrt(_correction(j, n_train, n_test) * float(np.var(v, ddof=1)))
    half = float(sps.t.ppf((1.0 + confidence) / 2.0, j - 1)) * se
    note = "all folds scored the same; zero-width interval" if se == 0.0 else ""
    return Interval(mean, mean - half, mean + half, j, note)


def corrected_paired_test(a, b, n_train: float, n_test: float, confidence: float = 0.95) -> Comparison:
    """Corrected resampled paired t-test on d = a − b (pairs with a non-finite value are dropped)."""
    _check_confidence(confidence)
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {a.size} and {b.size}")
    d = a - b
    d = d[np.isfinite(d)]
    j = int(d.size)
    mean = float(np.mean(d)) if j else NAN
    if j < 2:
        return Comparison(mean, NAN, NAN, NAN, NAN, j, _too_few(j))
    if float(np.max(d) - np.min(d)) <= ZERO_SPREAD:
        # every fold differs by the same amount (per-fold accuracy and AUC are discrete, so ties happen): the
        # t statistic is 0/0 or x/0, and no p-value or interval follows from J equal numbers
        return Comparison(mean, NAN, NAN, NAN, NAN, j, f"not testable with {j} folds: every paired difference is "
                          f"{mean:+.3f} (zero variance)")
    se = math.sqrt(_correction(j, n_train, n_test) * float(np.var(d, ddof=1)))
    t = mean / se
    p = float(2.0 * sps.t.sf(abs(t), j - 1))
    crit = float(sps.t.ppf((1.0 + confidence) / 2.0, j - 1))
    pairs = np.isfinite(a - b)
    if np.all((a[pairs] >= 0.0) & (a[pairs] <= 1.0) & (b[pairs] >= 0.0) & (b[pairs] <= 1.0)):
        low, high = bounded_difference(mean, se, crit, float(n_train) + float(n_test))
    else:
        low, high = mean - crit * se, mean + crit * se
    return Comparison(mean, low, high, p, float(t), j)


def bounded_difference(mean: float, se: float, crit: float, n_items: float) -> tuple[float, float]:
    """Interval of a mean difference of two [0, 1] scores that stays in [−1, 1]: the corrected t on the
    Fisher-z scale, tanh(atanh(m*) ± crit · se / (1 − m*²)) (delta method; atanh(d) = logit((d + 1)/2) / 2).

    m* = m·n/(n + 1) moves the mean half an item towards 0 on the (d + 1)/2 scale, as `bounded_interval`
    does, so a mean of exactly ±1 has a finite atanh; the interval is stretched to hold m itself. For small
    differences atanh is nearly the identity and the interval is the plain m ± crit · se.
    """
    n = max(float(n_items), 1.0)
    m = mean * n / (n + 1.0)
    half = crit * se / (1.0 - m * m)
    z = math.atanh(m)
    return min(math.tanh(z - half), mean), max(math.tanh(z + half), mean)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion (scipy's `binomtest(...).proportion_ci`)."""
    _check_confidence(confidence)
    n = int(n)
    k = int(successes)
    if n <= 0:
        return Interval(NAN, NAN, NAN, 0, "no test samples")
    if not 0 <= k <= n:
        raise ValueError(f"successes must be in [0, n], got {k} of {n}")
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(k / n, max(0.0, float(ci.low)), min(1.0, float(ci.high)), n)


# -- bounded means, tests against a known level, multiplicity ---------------------------------------------
EDGE_NOTE = "a bound at the edge of [0, 1] (rounds to 0.000 or 1.000)"


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def bounded_interval(x, n_train: float, n_test: float, confidence: float = 0.95) -> Interval:
    """Mean of per-fold scores of a [0, 1] metric with the corrected t interval on the logit scale.

    m = mean(x) is moved half an item towards 1/2, m* = (m·n + 0.5)/(n + 1) with n = n_train + n_test (the
    items one k-fold repeat scores), so a mean of exactly 0 or 1 has a finite logit; the per-fold variance
    is floored at what a test fold of n_test items drawn from the n items has at least, the binomial
    m*(1 − m*)/n_test times the finite-population factor n_train/(n − 1), so folds that all scored 1.0 still
    get an interval of honest width. Then, with c = 1/J + n_test/n_train (Nadeau-Bengio),
    se = sqrt(c · var) / (m*(1 − m*)) (delta method) and the interval is expit(logit(m*) ± t(J−1) · se):
    inside [0, 1], asymmetric near the edges, and stretched to hold the plain fold mean (the reported mean)
    when that sits at exactly 0 or 1.
    """
    _check_confidence(confidence)
    v = _finite(x)
    j = int(v.size)
    mean = float(np.mean(v)) if j else NAN
    if j < 2:
        return Interval(mean, NAN, NAN, j, _too_few(j))
    if np.any((v < 0.0) | (v > 1.0)):
        raise ValueError("bounded_interval needs scores in [0, 1]")
    c = _correction(j, n_train, n_test)
    m, floor = _logit_centre_and_floor(mean, n_train, n_test)
    var = max(float(np.var(v, ddof=1)), floor)
    se = math.sqrt(c * var) / (m * (1.0 - m))
    half = float(sps.t.ppf((1.0 + confidence) / 2.0, j - 1)) * se
    # the shrunk centre can leave a fold mean of exactly 0 or 1 just outside; the interval always holds the mean
    low, high = min(_expit(_logit(m) - half), mean), max(_expit(_logit(m) + half), mean)
    note = EDGE_NOTE if (round(low, 3) in (0.0, 1.0) or round(high, 3) in (0.0, 1.0)) else ""
    return Interval(mean, low, high, j, note)


def _logit_centre_and_floor(mean: float, n_train: float, n_test: float) -> tuple[float, float]:
    """`bounded_interval`'s shrunk centre m* and its per-fold variance floor (see there)."""
    n_items = float(n_train) + float(n_test)
    m = (mean * n_items + 0.5) / (n_items + 1.0)
    return m, m * (1.0 - m) / max(float(n_test), 1.0) * float(n_train) / max(n_items - 1.0, 1.0)


def bounded_floor_used(x, n_train: float, n_test: float) -> bool:
    """Whether `bounded_interval`'s variance floor replaced the per-fold sample variance of `x`."""
    v = _finite(x)
    if v.size < 2:
        return False
    _, floor = _logit_centre_and_floor(float(np.mean(v)), n_train, n_test)
    return floor > float(np.var(v, ddof=1))


def naive_interval(x, confidence: float = 0.95) -> Interval:
    """mean ± t(J−1) · sd/sqrt(J): treats folds as independent (too narrow; for the coverage check only)."""
    _check_confidence(confidence)
    v = _finite(x)
    j = int(v.size)
    mean = float(np.mean(v)) if j else NAN
    if j < 2:
        return Interval(mean, NAN, NAN, j, _too_few(j))
    half = float(sps.t.ppf((1.0 + confidence) / 2.0, j - 1)) * math.sqrt(float(np.var(v, ddof=1)) / j)
    return Interval(mean, mean - half, mean + half, j)


def test_against_level(x, level, n_train: float, n_test: float, confidence: float = 0.95) -> Comparison:
    """Corrected t-test of per-fold scores against a known level (a number, or one per fold): x − level."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.broadcast_to(np.asarray(level, dtype=np.float64), a.shape)
    return corrected_paired_test(a, b, n_train, n_test, confidence)


test_against_level.__test__ = False  # a statistical test, not a pytest test


def stratified_chance_accuracy(train_positive_rate: float, test_positive_rate: float | None = None) -> float:
    """Expected accuracy of guessing positive with the training positive rate q: q·r + (1 − q)(1 − r)."""
    q = float(train_positive_rate)
    r = q if test_positive_rate is None else float(test_positive_rate)
    return q * r + (1.0 - q) * (1.0 - r)


def holm(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values; non-finite p stay nan and do not count in the family."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, NAN)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


# -- the noise ceiling ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CeilingRange:
    """Expected Bayes accuracy and the central range of a Bayes-rule classifier's realised accuracy."""

    expected: float  # mean of max(p, 1 − p): a fixed property of the outfits
    low: float  # realised accuracy range under label noise (exact Poisson-binomial quantiles)
    high: float
    n: int
    coverage: float  # probability mass of [low, high] (>= the nominal level)
    realised: float = NAN  # the Bayes rule's accuracy on the labels actually drawn, when they are known


def bayes_accuracy_range(p_positive, labels=None, confidence: float = 0.95) -> CeilingRange:
    """The ceiling as a fixed number plus the spread a realised Bayes-rule accuracy has under label noise.

    The Bayes rule says positive when p >= 0.5 and is right on outfit i with probability q_i = max(p, 1 − p),
    independently across outfits, so its correct count is Poisson-binomial(q). The range is [k_lo, k_hi] / n
    with k_lo the α/2 and k_hi the 1 − α/2 quantile of that law.
    """
    _check_confidence(confidence)
    p = _finite(p_positive)
    n = int(p.size)
    if n == 0:
        return CeilingRange(NAN, NAN, NAN, 0, NAN)
    q = np.maximum(p, 1.0 - p)
    cdf = np.cumsum(poisson_binomial_pmf(q.ravel()))
    alpha = (1.0 - confidence) / 2.0
    k_lo = int(np.searchsorted(cdf, alpha - 1e-12))
    k_hi = int(np.searchsorted(cdf, 1.0 - alpha - 1e-12))
    mass = float(cdf[k_hi] - (cdf[k_lo - 1] if k_lo > 0 else 0.0))
    realised = NAN
    if labels is not None:
        y = _labels01(labels)
        if y.size != n:
            raise ValueError(f"labels and p_positive need equal lengths, got {y.size} and {n}")
        realised = float(np.mean((p >= 0.5).astype(np.int64) == y))
    return CeilingRange(float(q.mean()), k_lo / n, k_hi / n, n, mass, realised)


def _labels01(y) -> np.ndarray:
    s = pd.Series(np.asarray(y).ravel())
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        mapped = s.astype(str).str.strip().str.lower().map({"positive": 1, "negative": 0, "1": 1, "0": 0})
        if mapped.isna().any():
            raise ValueError("labels must be 0/1 or positive/negative")
        return mapped.to_numpy(dtype=np.int64)
    return s.to_numpy(dtype=np.int64)


def _auc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """`rank_auc` per row of (y, p) matrices, NaN for rows lacking a class: a bootstrap skips those resamples."""
    auc = np.asarray(rank_auc(y, p), dtype=np.float64)
    both = (y.min(axis=-1) != y.max(axis=-1)) if y.shape[-1] else np.zeros(y.shape[:-1], dtype=bool)
    return np.where(both, auc, NAN)


def bootstrap_auc_interval(y_true, p, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> Interval:
    """ROC-AUC with a percentile bootstrap interval over test samples; resamples lacking a class are skipped."""
    _check_confidence(confidence)
    y = _labels01(y_true)
    s = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true and p need equal lengths, got {y.size} and {s.size}")
    n = int(y.size)
    point = float(_auc_rows(y[None, :], s[None, :])[0]) if n else NAN
    if not math.isfinite(point):
        return Interval(point, NAN, NAN, n, "ROC-AUC needs both classes in the test set")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_boot), n))
    return _percentile_interval(point, _auc_rows(y[idx], s[idx]), n, n_boot, confidence)


def cluster_bootstrap_interval(y_true, p, clusters, metric: str, *, n_boot: int = 2000, seed: int = 0,
                               confidence: float = 0.95, threshold: float = 0.5) -> Interval:
    """Accuracy or ROC-AUC with a percentile bootstrap that resamples clusters (outfits), not samples.

    The two garment images of one outfit share its label and its photo, so they are not independent test
    items; each resample draws as many clusters as there are, with replacement, and keeps all their samples.
    Resamples lacking a class are skipped for ROC-AUC.
    """
    _check_confidence(confidence)
    if metric not in ("accuracy", "roc_auc"):
        raise ValueError(f"metric must be accuracy or roc_auc, got {metric!r}")
    y = _labels01(y_true)
    s = np.asarray(p, dtype=np.float64).ravel()
    c = np.asarray(clusters).ravel()
    if not (y.shape == s.shape == c.shape):
        raise ValueError(f"y_true, p and clusters need equal lengths, got {y.size}, {s.size} and {c.size}")
    n = int(y.size)
    if n == 0:
        return Interval(NAN, NAN, NAN, 0, "no test samples")
    correct = ((s >= threshold).astype(np.int64) == y).astype(np.float64)

    def score(idx: np.ndarray) -> float:
        if metric == "accuracy":
            return float(correct[idx].mean())
        return float(_auc_rows(y[idx][None, :], s[idx][None, :])[0])

    point = score(np.arange(n))
    if not math.isfinite(point):
        return Interval(point, NAN, NAN, n, "ROC-AUC needs both classes in the test set")
    _, cluster_of = np.unique(c, return_inverse=True)
    members = [np.flatnonzero(cluster_of == k) for k in range(int(cluster_of.max()) + 1)]
    g = np.random.default_rng(seed)
    draws = g.integers(0, len(members), size=(int(n_boot), len(members)))
    values = np.array([score(np.concatenate([members[k] for k in row])) for row in draws])
    return _percentile_interval(point, values, n, n_boot, confidence)


def _percentile_interval(point: float, values: np.ndarray, n: int, n_boot: int, confidence: float) -> Interval:
    """Percentile interval of the finite bootstrap `values` (NaN: a resample that lacked a class, skipped)."""
    valid = values[np.isfinite(values)]
    skipped = int(n_boot) - int(valid.size)
    if valid.size < 2:
        return Interval(point, NAN, NAN, n, f"too few bootstrap resamples with both classes ({valid.size})")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(valid, [alpha, 1.0 - alpha])
    note = f"{skipped} of {n_boot} resamples lacked a class and were skipped" if skipped else ""
    return Interval(point, float(low), float(high), n, note)


def single_split(protocol: str, n_folds: int) -> bool:
    """One seed_split fold: its intervals come from a bootstrap over its test predictions, not from the folds."""
    return protocol == "seed_split" and n_folds == 1


def summarize_intervals(
    folds: pd.DataFrame,
    protocol: str,
    metrics: Sequence[str],
    predictions: pd.DataFrame | None = None,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Interval]:
    """One Interval per metric present in `folds` (see `summarize_folds` for the rules)."""
    n_train = float(pd.to_numeric(folds["n_train"]).mean()) if len(folds) else NAN
    n_test = float(pd.to_numeric(folds["n_test"]).mean()) if len(folds) else NAN
    single = single_split(protocol, len(folds))
    out: dict[str, Interval] = {}
    for m in metrics:
        if m not in folds.columns:
            continue
        x = pd.to_numeric(folds[m], errors="coerce").to_numpy(dtype=np.float64)
        if not single:
            # More than one seed_split (repeated random subsampling) is exactly the setting the
            # Nadeau-Bengio correction was derived for, so it shares the cv rule.
            if len(folds) == 0:
                out[m] = Interval(NAN, NAN, NAN, 0, _too_few(0))
            elif m in UNIT_METRICS:
                out[m] = bounded_interval(x, n_train, n_test, confidence)
            else:
                out[m] = corrected_interval(x, n_train, n_test, confidence)
            continue
        out[m] = _single_split_interval(m, float(x[0]), n_test, predictions, confidence, n_boot, seed)
    return out


def _single_split_interval(m: str, value: float, n_test: float, predictions: pd.DataFrame | None,
                           confidence: float, n_boot: int, seed: int) -> Interval:
    """seed_split: outfit-level bootstrap for accuracy and ROC-AUC (Wilson / sample bootstrap without outfit ids)."""
    have = predictions is not None and len(predictions) > 0
    if m in ("accuracy", "roc_auc") and have and "outfit_id" in predictions.columns:
        b = cluster_bootstrap_interval(predictions["label"], predictions["p_positive"], predictions["outfit_id"], m,
                                       n_boot=n_boot, seed=seed, confidence=confidence)
        return Interval(value, b.ci_low, b.ci_high, 1, b.note)
    if m == "accuracy" and math.isfinite(value):
        w = wilson_interval(int(round(value * n_test)), int(round(n_test)), confidence)
        return Interval(value, w.ci_low, w.ci_high, 1, "no outfit ids: Wilson, test images taken as independent")
    if m == "roc_auc" and have:
        b = bootstrap_auc_interval(predictions["label"], predictions["p_positive"], n_boot=n_boot, seed=seed,
                                   confidence=confidence)
        return Interval(value, b.ci_low, b.ci_high, 1, "no outfit ids: bootstrap over test images")
    if m == "roc_auc":
        return Interval(value, NAN, NAN, 1, "no predictions for the bootstrap")
    return Interval(value, NAN, NAN, 1, "single split: point estimate only")


def summarize_folds(
    folds: pd.DataFrame,
    protocol: str,
    metrics: Sequence[str],
    predictions: pd.DataFrame | None = None,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Flat summary of one (arch, protocol) group: `{m}_mean`, `{m}_ci_low`, `{m}_ci_high` and `n_folds`.

    `folds` has one row per finished fold with the metric columns plus `n_train`, `n_test`.
    cv: `bounded_interval` (corrected t on the logit scale) for [0, 1] metrics, `corrected_interval` for
    others, with n_train/n_test = their means over folds. seed_split (one fold): accuracy and roc_auc get an
    outfit-level bootstrap from `predictions` (columns label, p_positive, outfit_id; without outfit ids,
    Wilson and a bootstrap over images); other metrics only `_mean`.
    """
    intervals = summarize_intervals(folds, protocol, metrics, predictions,
                                    confidence=confidence, n_boot=n_boot, seed=seed)
    single = single_split(protocol, len(folds))
    out: dict[str, float] = {}
    for m, iv in intervals.items():
        out[f"{m}_mean"] = iv.mean
        if single and m not in ("accuracy", "roc_auc"):
            continue
        out[f"{m}_ci_low"] = iv.ci_low
        out[f"{m}_ci_high"] = iv.ci_high
    out["n_folds"] = float(len(folds))
    return out
