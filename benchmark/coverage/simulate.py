"""Repeated k-fold (and nested CV) on generated datasets; each interval method's coverage of the truth.

Estimand (`ESTIMAND`): with the rater panel P and threshold tau fixed (those that labelled the benchmark's
dataset), the expected score E[score(A(D), O)] of the procedure A trained on a set D of n_train outfits
and scored on a fresh outfit O, outfits drawn from the generator and labelled by P and tau with fresh
rater noise. Every dataset and the pool are independent draws of that one process. Every CV fold model of
every dataset is also scored on the pool with the pool's exact P(positive | outfit) (expected accuracy,
P-weighted ROC-AUC), and the truth is the mean over all of them. An interval covers when it contains that
number; each cell's coverage carries a Clopper-Pearson interval over datasets.

Difference cells (`kind` "difference"): for each pair of models a − b, the paired per-fold differences on
the same folds of each dataset get the report's interval (`stats.corrected_paired_test`: corrected t on the
Fisher-z scale) and the plain corrected t on the difference scale; the truth is truth_a − truth_b.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from sklearn.model_selection import RepeatedStratifiedKFold

from benchmark import stats
from benchmark.coverage.features import Outfits
from benchmark.coverage.procedures import Predict, fit_seed
from neipalette.evaluation.metrics import expected_auc, rank_auc
from neipalette.seeding import rng

log = logging.getLogger(__name__)

METRICS = ("accuracy", "roc_auc")
METHODS = ("naive_t", "corrected_t", "bounded_logit_t", "nested_cv")
METHOD_LABELS = {
    "naive_t": "naive t (folds as independent)",
    "corrected_t": "Nadeau-Bengio corrected t",
    "bounded_logit_t": "corrected t on the logit scale (the report's)",
    "nested_cv": "nested CV (Bates, Hastie & Tibshirani 2023; accuracy only)",
}
REPORT_METHOD = "bounded_logit_t"
DIFFERENCE_METHODS = ("corrected_t", "bounded_fisher_z_t")
DIFFERENCE_LABELS = {
    "corrected_t": "Nadeau-Bengio corrected paired t on the difference scale",
    "bounded_fisher_z_t": "corrected paired t on the Fisher-z scale (the report's)",
}
REPORT_DIFFERENCE_METHOD = "bounded_fisher_z_t"
BASELINE_MODEL = "chance"  # the reference every other model is compared with (the b of a − b)
ESTIMAND = ("E[score] of the procedure trained on n_train outfits, scored on a fresh outfit, with the rater panel "
            "and threshold that labelled the benchmark's dataset fixed (outfits and rater noise drawn afresh)")
Fit = Callable[[Outfits, np.ndarray, int], Predict]


@dataclass(frozen=True)
class Plan:
    n_outfits: int
    n_splits: int
    n_repeats: int
    seed: int
    confidence: float = 0.95


def expected_accuracy(s: np.ndarray, p: np.ndarray) -> float:
    """Expected accuracy of `s >= 0.5 -> positive` on outfits with P(positive) = p (over label draws)."""
    return float(np.mean(np.where(s >= 0.5, p, 1.0 - p)))


def run_dataset(o: Outfits, pool: Outfits, fits: dict[str, Fit], plan: Plan, index: int,
                nested: bool = True) -> dict[str, dict]:
    """CV (and nested CV) of every model on one generated dataset; fold scores and pool scores per fold."""
    splitter = RepeatedStratifiedKFold(n_splits=plan.n_splits, n_repeats=plan.n_repeats,
                                       random_state=fit_seed(plan.seed, "cv", index) % 2**31)
    folds = list(splitter.split(np.zeros(len(o)), o.y))
    out = {}
    for name, fit in fits.items():
        r = {k: np.empty(len(folds)) for k in ("accuracy", "roc_auc", "pool_accuracy", "pool_roc_auc",
                                                  "n_train", "n_test")}
        for j, (tr, te) in enumerate(folds):
            predict = fit(o, tr, fit_seed(plan.seed, name, index, j))
            s = predict(o, te)
            r["accuracy"][j] = float(np.mean((s >= 0.5).astype(np.int64) == o.y[te]))
            r["roc_auc"][j] = rank_auc(o.y[te].astype(np.int64), s)
            sp = predict(pool, None)
            r["pool_accuracy"][j] = expected_accuracy(sp, pool.p)
            r["pool_roc_auc"][j] = expected_auc(sp, pool.p)
            r["n_train"][j], r["n_test"][j] = len(tr), len(te)
        if nested:
            r["nested"] = _nested_cv(o, folds, fit, plan, name, index)
        out[name] = r
    return out


def _nested_cv(o: Outfits, folds: list, fit: Fit, plan: Plan, name: str, index: int) -> dict:
    """Bates-Hastie-Tibshirani nested CV on the same fold assignments (accuracy = 1 − 0/1 loss).

    For each repeat and each pair of folds (f1, f2), a model fit without both scores f1 and f2. The pivot of
    fold f1 is the inner-CV mean over the other folds (models fit without f1) minus fold f1's mean under a
    model fit without f1 and one random other fold.
    """
    k = plan.n_splits
    g = rng(plan.seed, "coverage-ncv", name, index)
    pivots, held_out = [], []
    for rep in range(plan.n_repeats):
        parts = [folds[rep * k + f][1] for f in range(k)]
        ho: dict[tuple[int, int], np.ndarray] = {}
        for f1 in range(k - 1):
            for f2 in range(f1 + 1, k):
                train = np.setdiff1d(np.arange(len(o)), np.concatenate([parts[f1], parts[f2]]))
                predict = fit(o, train, fit_seed(plan.seed, name, index, "ncv", rep, f1, f2))
                for a, b in ((f1, f2), (f2, f1)):
                    ho[a, b] = ((predict(o, parts[a]) >= 0.5).astype(np.int64) == o.y[parts[a]]).astype(float)
                    held_out.append(ho[a, b])
        for f1 in range(k):
            inner = np.concatenate([ho[j, f1] for j in range(k) if j != f1]).mean()
            other = int(g.choice([f for f in range(k) if f != f1]))
            pivots.append(inner - ho[f1, other].mean())
    e = np.concatenate(held_out)
    return {"mean": float(e.mean()), "var": float(np.var(e, ddof=1)), "pivot_var": float(np.var(pivots, ddof=1)),
            "n": len(o)}


def nested_cv_interval(nested: dict, cv_mean: float, n_splits: int, confidence: float) -> tuple[float, float]:
    """The NCV interval: bias-corrected estimate ± z · sd(held-out)/sqrt(n) · sqrt(inflation)."""
    k, n = n_splits, nested["n"]
    if nested["var"] <= 0:
        return nested["mean"], nested["mean"]
    infl = (nested["pivot_var"] / nested["var"] * n / k - 1.0) * (k - 1)
    infl = min(max(infl, 1.0), float(k))
    bias = (nested["mean"] - cv_mean) * (1.0 + ((k - 2) / (k - 1)) ** 1.5)
    centre = nested["mean"] - bias
    half = float(sps.norm.ppf((1 + confidence) / 2)) * math.sqrt(nested["var"] / n) * math.sqrt(infl)
    return centre - half, centre + half


def floor_used(r: dict, metric: str) -> bool:
    """Whether the report method's variance floor replaced this dataset's sample variance."""
    return stats.bounded_floor_used(r[metric], float(np.mean(r["n_train"])), float(np.mean(r["n_test"])))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k covered of n datasets."""
    if n <= 0:
        return math.nan, math.nan
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def intervals(r: dict, metric: str, plan: Plan) -> dict[str, tuple[float, float]]:
    x = r[metric]
    n_train, n_test = float(np.mean(r["n_train"])), float(np.mean(r["n_test"]))
    out = {}
    for method, iv in (("naive_t", stats.naive_interval(x, plan.confidence)),
                       ("corrected_t", stats.corrected_interval(x, n_train, n_test, plan.confidence)),
                       ("bounded_logit_t", stats.bounded_interval(x, n_train, n_test, plan.confidence))):
        out[method] = (iv.ci_low, iv.ci_high)
    if metric == "accuracy" and "nested" in r:
        out["nested_cv"] = nested_cv_interval(r["nested"], float(np.mean(x)), plan.n_splits, plan.confidence)
    return out


def difference_intervals(ra: dict, rb: dict, metric: str, plan: Plan) -> dict[str, tuple[float, float]]:
    """Both intervals of the paired per-fold difference a − b; nan when the report finds it not testable."""
    n_train, n_test = float(np.mean(ra["n_train"])), float(np.mean(ra["n_test"]))
    c = stats.corrected_paired_test(ra[metric], rb[metric], n_train, n_test, plan.confidence)
    if not (math.isfinite(c.ci_low) and math.isfinite(c.ci_high)):
        return {m: (math.nan, math.nan) for m in DIFFERENCE_METHODS}  # zero spread: no interval in the report
    plain = stats.corrected_interval(np.asarray(ra[metric]) - np.asarray(rb[metric]), n_train, n_test,
                                     plan.confidence)
    return {"corrected_t": (plain.ci_low, plain.ci_high), "bounded_fisher_z_t": (c.ci_low, c.ci_high)}


def model_pairs(models: list[str]) -> list[tuple[str, str]]:
    """Every pair (a, b) in the given order, with `BASELINE_MODEL` always as b."""
    order = [m for m in models if m != BASELINE_MODEL] + [m for m in models if m == BASELINE_MODEL]
    return [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]


def _truth(results: list[dict[str, dict]], model: str, metric: str) -> float:
    return float(np.mean([np.mean(res[model][f"pool_{metric}"]) for res in results]))


def _cell(ivs: list[tuple[float, float]], truth: float, estimates: list[float], floored: float) -> dict:
    lo, hi = np.array(ivs).T
    ok = np.isfinite(lo) & np.isfinite(hi)
    cover = (lo[ok] <= truth) & (truth <= hi[ok])
    c = float(cover.mean()) if ok.any() else math.nan
    cp_low, cp_high = clopper_pearson(int(cover.sum()), int(ok.sum()))
    return {"coverage": c, "cp_low": cp_low, "cp_high": cp_high, "n_covered": int(cover.sum()),
            "floor_share": floored,
            "mc_se": math.sqrt(c * (1 - c) / ok.sum()) if ok.any() else math.nan,
            "mean_width": float(np.mean(hi[ok] - lo[ok])) if ok.any() else math.nan,
            "below": float(np.mean(truth < lo[ok])) if ok.any() else math.nan,
            "above": float(np.mean(truth > hi[ok])) if ok.any() else math.nan,
            "truth": truth, "mean_estimate": float(np.mean(estimates)), "n_datasets": int(ok.sum())}


def coverage_table(results: list[dict[str, dict]], plan: Plan) -> pd.DataFrame:
    """One row per (model, metric, method): coverage of the truth, its Monte Carlo SE, mean width, misses;
    then one per (pair a − b, metric, difference method), `kind` "difference", after the mean rows."""
    rows = []
    for model in results[0]:
        for metric in METRICS:
            truth = _truth(results, model, metric)
            estimates = [float(np.mean(res[model][metric])) for res in results]
            per_method: dict[str, list[tuple[float, float]]] = {}
            for res in results:
                for method, iv in intervals(res[model], metric, plan).items():
                    per_method.setdefault(method, []).append(iv)
            for method in METHODS:
                if method not in per_method:
                    continue
                floored = (float(np.mean([floor_used(res[model], metric) for res in results]))
                           if method == REPORT_METHOD else math.nan)
                rows.append({"model": model, "metric": metric, "method": method,
                             **_cell(per_method[method], truth, estimates, floored),
                             "kind": "mean", "model_a": None, "model_b": None})
    for a, b in model_pairs(list(results[0])):
        for metric in METRICS:
            truth = _truth(results, a, metric) - _truth(results, b, metric)
            estimates = [float(np.mean(np.asarray(res[a][metric]) - np.asarray(res[b][metric]))) for res in results]
            per_diff = [difference_intervals(res[a], res[b], metric, plan) for res in results]
            for method in DIFFERENCE_METHODS:
                rows.append({"model": f"{a}-{b}", "metric": metric, "method": method,
                             **_cell([d[method] for d in per_diff], truth, estimates, math.nan),
                             "kind": "difference", "model_a": a, "model_b": b})
    return pd.DataFrame(rows)
