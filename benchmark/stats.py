"""Intervals and paired tests for small cross-validated benchmarks.

Repeated k-fold scores are not independent (training sets overlap), so the naive standard error is too
small. We use the Nadeau & Bengio (2003) corrected resampled variance, ``(1/J + n_test/n_train) * var``,
as recommended by Bouckaert & Frank (2004) for repeated k-fold. For a single train/test split
there is nothing to resample over, so accuracy gets a Wilson interval and ROC-AUC a percentile bootstrap.

No MLflow here: this module works on plain arrays and DataFrames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

NAN = float("nan")


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
    se = math.sqrt(_correction(j, n_train, n_test) * float(np.var(d, ddof=1)))
    if se == 0.0:
        if mean == 0.0:
            return Comparison(mean, mean, mean, 1.0, 0.0, j, "zero variance of the differences; identical scores")
        return Comparison(mean, mean, mean, 0.0, math.copysign(math.inf, mean), j,
                          "zero variance of the differences; constant non-zero difference")
    t = mean / se
    p = float(2.0 * sps.t.sf(abs(t), j - 1))
    half = float(sps.t.ppf((1.0 + confidence) / 2.0, j - 1)) * se
    return Comparison(mean, mean - half, mean + half, p, float(t), j)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion (closed form)."""
    _check_confidence(confidence)
    n = int(n)
    k = int(successes)
    if n <= 0:
        return Interval(NAN, NAN, NAN, 0, "no test samples")
    if not 0 <= k <= n:
        raise ValueError(f"successes must be in [0, n], got {k} of {n}")
    z = float(sps.norm.ppf((1.0 + confidence) / 2.0))
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def _labels01(y) -> np.ndarray:
    s = pd.Series(np.asarray(y).ravel())
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        mapped = s.astype(str).str.strip().str.lower().map({"positive": 1, "negative": 0, "1": 1, "0": 0})
        if mapped.isna().any():
            raise ValueError("labels must be 0/1 or positive/negative")
        return mapped.to_numpy(dtype=np.int64)
    return s.to_numpy(dtype=np.int64)


def _auc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per row of (y, p) matrices; nan for rows lacking a class. Ties count one half."""
    ranks = sps.rankdata(p, axis=-1)
    n_pos = y.sum(axis=-1).astype(np.float64)
    n_neg = y.shape[-1] - n_pos
    rank_sum = (ranks * y).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = NAN
    return auc


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
    aucs = _auc_rows(y[idx], s[idx])
    valid = aucs[np.isfinite(aucs)]
    skipped = int(n_boot) - int(valid.size)
    if valid.size < 2:
        return Interval(point, NAN, NAN, n, f"too few bootstrap resamples with both classes ({valid.size})")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(valid, [alpha, 1.0 - alpha])
    note = f"{skipped} of {n_boot} resamples lacked a class and were skipped" if skipped else ""
    return Interval(point, float(low), float(high), n, note)


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
    single = protocol == "seed_split" and len(folds) == 1
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
            else:
                out[m] = corrected_interval(x, n_train, n_test, confidence)
            continue
        value = float(x[0])
        if m == "accuracy" and math.isfinite(value):
            k = int(round(value * n_test))
            w = wilson_interval(k, int(round(n_test)), confidence)
            out[m] = Interval(value, w.ci_low, w.ci_high, 1, w.note)
        elif m == "roc_auc" and predictions is not None and len(predictions):
            b = bootstrap_auc_interval(predictions["label"], predictions["p_positive"],
                                       n_boot=n_boot, seed=seed, confidence=confidence)
            out[m] = Interval(value, b.ci_low, b.ci_high, 1, b.note)
        elif m == "roc_auc":
            out[m] = Interval(value, NAN, NAN, 1, "no predictions for the bootstrap")
        else:
            out[m] = Interval(value, NAN, NAN, 1, "single split: point estimate only")
    return out


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
    cv: corrected interval with n_train/n_test = their means over folds. seed_split (one fold): accuracy
    gets a Wilson interval on round(accuracy·n_test) of n_test, roc_auc a bootstrap interval from
    `predictions` (columns label, p_positive); other metrics only `_mean`.
    """
    intervals = summarize_intervals(folds, protocol, metrics, predictions,
                                    confidence=confidence, n_boot=n_boot, seed=seed)
    single = protocol == "seed_split" and len(folds) == 1
    out: dict[str, float] = {}
    for m, iv in intervals.items():
        out[f"{m}_mean"] = iv.mean
        if single and m not in ("accuracy", "roc_auc"):
            continue
        out[f"{m}_ci_low"] = iv.ci_low
        out[f"{m}_ci_high"] = iv.ci_high
    out["n_folds"] = float(len(folds))
    return out
