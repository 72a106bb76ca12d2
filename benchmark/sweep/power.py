"""Power of the CNN − chance-level test as a function of the number of outfits.

The test is the report's (`benchmark.stats.test_against_level`): per-fold differences d_j = score_j − chance
level (0.5 for ROC-AUC; for accuracy, 0.5 on the balanced generated data), J = k·r folds, n1/n2 train/test
outfits per fold,
t = mean(d) / sqrt((1/J + n2/n1) · var(d)), two-sided, t(J − 1) reference (Nadeau & Bengio 2003).

The model of the curve, fitted to the sweep's sizes n_i:
- the expected gap   δ(n) = min(a − b / sqrt(n), ceiling − chance)   (weighted least squares, weights 1 / SE_i²;
  the cap: no model beats the Bayes ceiling of the metric, here the largest size's), and
- the fold variance  σ²(n) = s² · (n / n_ref)^(−β)   (a power law: a straight line through log σ̂_i² against
  log n_i, weights J_i − 1; the sweep showed n·σ̂² falling with n, so 1/n (β = 1) is not assumed).
"Needed n" is searched from the smallest measured size up: below it the model would extrapolate (a gap that
falls with n, b < 0, would grow without bound towards small n).
Power at n for a protocol with J folds: P(T > t_{1−α/2, J−1}) (two-sided test, detected above chance) for
T ~ noncentral t(J − 1, λ),
λ = δ(n) / sqrt((1/J + n2/n1) · σ²(n)). "Needed n" is the smallest n on a grid with power ≥ the target.
Its 95% interval is a parametric bootstrap: per size, a gap drawn from N(δ̂_i, SE_i²) (the corrected SE) and
a variance σ̂_i² · χ²(J_i − 1)/(J_i − 1); the model refitted to each draw; the 2.5% and 97.5% points of the
refitted needed n ("> 20,000" where more than 2.5% of draws never reach the target). No plug-in ("observed")
power is shown: at a measured size it is a transform of that size's p-value (Hoenig & Heisey 2001).
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
    s2: float  # fold variance at n_ref
    n_ref: int
    j: int
    test_fraction: float
    cap: float = math.inf  # the largest possible gap: ceiling − chance level
    beta: float = 1.0  # σ²(n) = s2 · (n / n_ref)^(−beta)
    n_min: int = int(GRID[0])  # smallest measured size: no "needed n" below it

    def gap(self, n) -> np.ndarray:
        return np.minimum(self.a - self.b / np.sqrt(np.asarray(n, dtype=float)), self.cap)

    def var(self, n) -> np.ndarray:
        return self.s2 * (np.asarray(n, dtype=float) / self.n_ref) ** (-self.beta)

    def power(self, n: int) -> float:
        return power(float(self.gap(n)), float(self.var(n)), self.j, self.test_fraction)

    def power_grid(self, n: np.ndarray = GRID, alpha: float = ALPHA) -> np.ndarray:
        """`power` at every n of `n` at once (what `needed_n` and the bootstrap search)."""
        rho = self.test_fraction / (1 - self.test_fraction)
        lam = self.gap(n) / np.sqrt((1 / self.j + rho) * self.var(n))
        crit = sps.t.ppf(1 - alpha / 2, self.j - 1)
        p = sps.nct.sf(crit, self.j - 1, lam)
        return np.where(np.isfinite(p), p, sps.norm.sf(crit - lam))

    @property
    def shrinking(self) -> bool:
        """The fitted gap falls as n grows (b < 0): a small-sample effect, not a gap more outfits would find."""
        return self.b < 0

    def needed_n(self, target: float = TARGET_POWER) -> int | None:
        """Smallest n on the grid (n_min … 20,000) with power ≥ target; None when not reached."""
        hit = np.flatnonzero((self.power_grid() >= target) & (GRID >= self.n_min))
        return int(GRID[hit[0]]) if hit.size else None


@dataclass(frozen=True)
class _Size:
    n: float
    gap: float
    var: float
    se2: float
    j: int


def _sizes(sizes: list[SizeResult], chance: float) -> list[_Size]:
    rows = []
    for s in sizes:
        d = np.asarray(s.scores, dtype=float) - chance
        d = d[np.isfinite(d)]
        if d.size < 2:
            continue
        var = float(np.var(d, ddof=1))
        se2 = (1 / d.size + s.n_test / s.n_train) * var
        rows.append(_Size(float(s.n_outfits), float(d.mean()), var, max(se2, 1e-12), int(d.size)))
    return rows


def _fit_rows(rows: list[_Size], *, j: int, test_fraction: float, n_ref: int, cap: float) -> PowerModel:
    n = np.array([r.n for r in rows])
    gap = np.array([r.gap for r in rows])
    w = 1 / np.array([r.se2 for r in rows])
    x = np.column_stack([np.ones_like(n), -1 / np.sqrt(n)])
    coef = np.linalg.lstsq(x * np.sqrt(w)[:, None], gap * np.sqrt(w), rcond=None)[0]
    # log σ̂² has variance ≈ 2/(J − 1): weight each size by its degrees of freedom
    var = np.maximum(np.array([r.var for r in rows]), 1e-12)
    wv = np.sqrt(np.array([r.j - 1 for r in rows], dtype=float))
    xv = np.column_stack([np.ones_like(n), np.log(n / n_ref)])
    c0, slope = np.linalg.lstsq(xv * wv[:, None], np.log(var) * wv, rcond=None)[0]
    return PowerModel(float(coef[0]), float(coef[1]), float(math.exp(c0)), n_ref, j, test_fraction, cap=cap,
                      beta=float(-slope), n_min=int(n.min()))


def fit(sizes: list[SizeResult], chance: float, *, j: int, test_fraction: float, n_ref: int = 40,
        ceiling: float = 1.0) -> PowerModel | None:
    """Fit δ(n) = a − b/sqrt(n) (capped at ceiling − chance) and σ²(n) = s²·(n/n_ref)^−β to per-size fold
    scores; None with fewer than 2 usable sizes."""
    rows = _sizes(sizes, chance)
    if len({r.n for r in rows}) < 2:
        return None
    return _fit_rows(rows, j=j, test_fraction=test_fraction, n_ref=n_ref, cap=ceiling - chance)


def needed_n_interval(sizes: list[SizeResult], chance: float, *, j: int, test_fraction: float, n_ref: int = 40,
                      ceiling: float = 1.0, target: float = TARGET_POWER, n_boot: int = 400, seed: int = 0,
                      confidence: float = 0.95) -> tuple[float, float]:
    """Parametric-bootstrap interval of the needed n (see the module docstring); inf: beyond the grid."""
    rows = _sizes(sizes, chance)
    if len({r.n for r in rows}) < 2:
        return math.nan, math.nan
    g = np.random.default_rng(seed)
    draws = []
    for _ in range(int(n_boot)):
        boot = [_Size(r.n, float(g.normal(r.gap, math.sqrt(r.se2))),
                      r.var * float(g.chisquare(r.j - 1)) / (r.j - 1), r.se2, r.j) for r in rows]
        m = _fit_rows(boot, j=j, test_fraction=test_fraction, n_ref=n_ref, cap=ceiling - chance)
        n = m.needed_n(target)
        draws.append(math.inf if n is None else float(n))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(np.array(draws), [alpha, 1 - alpha], method="inverted_cdf")
    return float(lo), float(hi)
