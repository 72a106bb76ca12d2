"""Power of the CNN − chance-level test as a function of the number of outfits.

The test is the report's (`benchmark.stats.test_against_level`): per-fold differences d_j = score_j − chance
level (0.5 for ROC-AUC; for accuracy, 0.5 on the balanced generated data), J = k·r folds, n1/n2 train/test
outfits per fold,
t = mean(d) / sqrt((1/J + n2/n1) · var(d)), two-sided, t(J − 1) reference (Nadeau & Bengio 2003).

The model of the curve, fitted to the sweep's sizes n_i:
- the expected gap   δ(n) = min(a − b / sqrt(n), ceiling − chance)   (weighted least squares, weights 1 / SE_i²;
  the cap: no model beats the Bayes ceiling of the metric, here the largest size's), and
- the fold variance  σ²(n) = s² · n_ref / n        (a test fold of n/k outfits; s² a weighted mean of σ̂_i²·n_i/n_ref).
Power at n for a protocol with J folds: P(T > t_{1−α/2, J−1}) (two-sided test, detected above chance) for
T ~ noncentral t(J − 1, λ),
λ = δ(n) / sqrt((1/J + n2/n1) · σ²(n)). "Needed n" is the smallest n on a grid with power ≥ the target.
Beside the model, each measured size gets its plug-in power (δ̂_i, σ̂_i² in place of the model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from benchmark.sweep.config import ALPHA, TARGET_POWER

CHANCE_LEVEL = {"roc_auc": 0.5, "accuracy": 0.5}
GRID = np.unique(np.round(np.geomspace(10, 20000, 600)).astype(int))


@dataclass(frozen=True)
class SizeResult:
    """One model's per-fold primary-metric scores at one size."""
    n_outfits: int
    scores: np.ndarray
    n_train: float
    n_test: float


def power(gap: float, var: float, j: int, test_fraction: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided corrected t-test with J folds to find the CNN *above* chance (t > t crit), when
    the true gap and fold variance are given; a CNN significantly below chance is not a detection."""
    if not (math.isfinite(gap) and math.isfinite(var)) or j < 2:
        return math.nan
    rho = test_fraction / (1 - test_fraction)  # n2/n1
    if var <= 0:
        return 1.0 if gap > 0 else 0.0
    lam = gap / math.sqrt((1 / j + rho) * var)
    crit = sps.t.ppf(1 - alpha / 2, j - 1)
    p = float(sps.nct.sf(crit, j - 1, lam))
    return p if math.isfinite(p) else float(sps.norm.sf(crit - lam))  # nct gives nan far in its tail


@dataclass(frozen=True)
class PowerModel:
    a: float
    b: float
    s2: float
    n_ref: int
    j: int
    test_fraction: float
    cap: float = math.inf  # the largest possible gap: ceiling − chance level

    def gap(self, n) -> np.ndarray:
        return np.minimum(self.a - self.b / np.sqrt(np.asarray(n, dtype=float)), self.cap)

    def var(self, n) -> np.ndarray:
        return self.s2 * self.n_ref / np.asarray(n, dtype=float)

    def power(self, n: int) -> float:
        return power(float(self.gap(n)), float(self.var(n)), self.j, self.test_fraction)

    def needed_n(self, target: float = TARGET_POWER) -> int | None:
        """Smallest n on the grid (10 … 20,000) with power ≥ target; None when not reached."""
        for n in GRID:
            if self.power(int(n)) >= target:
                return int(n)
        return None


def fit(sizes: list[SizeResult], chance: float, *, j: int, test_fraction: float, n_ref: int = 40,
        ceiling: float = 1.0) -> PowerModel | None:
    """Fit δ(n) = a − b/sqrt(n) (capped at ceiling − chance) and σ²(n) = s²·n_ref/n to per-size fold scores;
    None with fewer than 2 usable sizes."""
    rows = []
    for s in sizes:
        d = np.asarray(s.scores, dtype=float) - chance
        d = d[np.isfinite(d)]
        if d.size < 2:
            continue
        var = float(np.var(d, ddof=1))
        se2 = (1 / d.size + s.n_test / s.n_train) * var
        rows.append((s.n_outfits, float(d.mean()), var, max(se2, 1e-12)))
    if len(rows) < 2:
        return None
    n, gap, var, se2 = (np.array(c, dtype=float) for c in zip(*rows))
    w = 1 / se2
    x = np.column_stack([np.ones_like(n), -1 / np.sqrt(n)])
    coef = np.linalg.lstsq(x * np.sqrt(w)[:, None], gap * np.sqrt(w), rcond=None)[0]
    s2 = float(np.average(var * n / n_ref, weights=n))  # larger sizes estimate the variance with more test outfits
    return PowerModel(float(coef[0]), float(coef[1]), s2, n_ref, j, test_fraction, cap=ceiling - chance)


def plug_in_power(s: SizeResult, chance: float, *, j: int, test_fraction: float) -> float:
    """Power at a measured size with its own estimated gap and fold variance (noisy; beside the model)."""
    d = np.asarray(s.scores, dtype=float) - chance
    d = d[np.isfinite(d)]
    if d.size < 2:
        return math.nan
    return power(float(d.mean()), float(np.var(d, ddof=1)), j, test_fraction)
