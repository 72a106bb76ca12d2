"""Report figures as PNG bytes (matplotlib, Agg canvas; no pyplot state, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_DPI = 110
_PALETTE = ("#1f77b4", "#d62728", "#7f7f7f", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class MeanRoc:
    fpr: np.ndarray
    tpr_mean: np.ndarray
    tpr_sd: np.ndarray
    n_curves: int


def mean_roc(curves: Sequence[pd.DataFrame], *, grid_size: int = 101) -> MeanRoc:
    """Interpolate each fold's ROC (`fpr`, `tpr` columns) on a common FPR grid; mean and sample sd per point."""
    grid = np.linspace(0.0, 1.0, grid_size)
    rows = []
    for c in curves:
        pts = c[["fpr", "tpr"]].astype(float).dropna().sort_values(["fpr", "tpr"], kind="stable")
        if pts.empty:
            continue
        tpr = np.interp(grid, pts["fpr"].to_numpy(), pts["tpr"].to_numpy())
        tpr[0] = 0.0  # every ROC starts at (0, 0); the threshold above the max score predicts no positives
        rows.append(tpr)
    if not rows:
        empty = np.full(grid_size, np.nan)
        return MeanRoc(grid, empty, empty, 0)
    mat = np.vstack(rows)
    sd = mat.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(grid_size)
    return MeanRoc(grid, mat.mean(axis=0), sd, len(rows))


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def _colours(names: Sequence[str]) -> dict[str, str]:
    return {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(names)}


def roc_figure(curves: Mapping[str, Sequence[pd.DataFrame]], *, labels: Mapping[str, str] | None = None,
               banded: Sequence[str] | None = None, title: str = "Mean ROC over CV folds") -> bytes:
    """Mean ROC per model with a ±1 sd band (for the models in `banded`; all when None)."""
    labels = dict(labels or {})
    colours = _colours(list(curves))
    fig = Figure(figsize=(5.2, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls=":", c="black", lw=1, label="no skill")
    for name, cs in curves.items():
        m = mean_roc(cs)
        if m.n_curves == 0:
            continue
        band = banded is None or name in banded
        ax.plot(m.fpr, m.tpr_mean, c=colours[name], lw=2 if band else 1.2, ls="-" if band else "--",
                label=f"{labels.get(name, name)} ({m.n_curves} folds)")
        if band:
            ax.fill_between(m.fpr, np.clip(m.tpr_mean - m.tpr_sd, 0, 1), np.clip(m.tpr_mean + m.tpr_sd, 0, 1),
                            color=colours[name], alpha=0.18, lw=0)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate", title=title)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def forest_figure(rows: Sequence[Mapping], *, ceiling: float | None = None,
                  ceiling_interval: tuple[float, float] | None = None, ceiling_label: str = "noise ceiling",
                  metrics: Sequence[tuple[str, str]] = (("accuracy", "Accuracy"), ("roc_auc", "ROC-AUC"))) -> bytes:
    """Forest plot: one panel per metric, one line per row (`label`, `metric`, `mean`, `ci_low`, `ci_high`).

    Vertical lines at 0.5 (chance) and, on the accuracy panel, dashed at the noise ceiling, with its interval
    shaded when it is an estimate (`ceiling_interval`, e.g. the raters' ceiling).
    """
    labels = list(dict.fromkeys(r["label"] for r in rows))
    fig = Figure(figsize=(9.0, 0.45 * max(len(labels), 2) + 1.3))
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    y = {lab: i for i, lab in enumerate(reversed(labels))}
    for ax, (metric, title) in zip(axes, metrics):
        ax.axvline(0.5, c="black", ls=":", lw=1, label="0.5")
        if metric == "accuracy" and ceiling is not None and np.isfinite(ceiling):
            ax.axvline(ceiling, c="#2ca02c", ls="--", lw=1.2, label=f"{ceiling_label} {ceiling:.3f}")
            if ceiling_interval is not None and np.all(np.isfinite(ceiling_interval)):
                ax.axvspan(*ceiling_interval, color="#2ca02c", alpha=0.12, lw=0,
                           label=f"its 95% interval [{ceiling_interval[0]:.3f}, {ceiling_interval[1]:.3f}]")
        for r in rows:
            if r["metric"] != metric or not np.isfinite(r["mean"]):
                continue
            yy = y[r["label"]]
            lo, hi = r["ci_low"], r["ci_high"]
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [yy, yy], c="#1f77b4", lw=2)
                ax.plot(r["mean"], yy, "o", c="#1f77b4")
            else:
                ax.plot(r["mean"], yy, "o", mfc="white", c="#1f77b4")  # no interval: hollow marker
        # Corrected t intervals are not clipped to [0, 1]; widen the axis rather than hide a bound.
        ends = [v for r in rows if r["metric"] == metric for v in (r["ci_low"], r["ci_high"]) if np.isfinite(v)]
        ax.set(title=title, xlim=(min([0.0, *ends]) - 0.02, max([1.0, *ends]) + 0.02))
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=7, frameon=False)
    axes[0].set_yticks(list(y.values()), list(y.keys()))
    axes[0].set_ylim(-0.7, len(labels) - 0.3)
    fig.suptitle("Means with 95% intervals (hollow: no interval)", fontsize=10)
    return _png(fig)


def fold_scores_figure(folds: pd.DataFrame, *, order: Sequence[str], labels: Mapping[str, str] | None = None,
                       metrics: Sequence[tuple[str, str]] = (("accuracy", "Accuracy"), ("roc_auc", "ROC-AUC")),
                       seed: int = 0) -> bytes:
    """Per-fold scores, one dot column per model (`arch` column), with the mean as a bar; deterministic jitter."""
    labels = dict(labels or {})
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(4.2 * len(metrics), 3.8))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    colours = _colours(list(order))
    for ax, (metric, title) in zip(axes, metrics):
        for i, arch in enumerate(order):
            if metric not in folds.columns:
                continue
            v = folds.loc[folds["arch"] == arch, metric].astype(float).dropna().to_numpy()
            if v.size == 0:
                continue
            ax.scatter(i + rng.uniform(-0.15, 0.15, v.size), v, s=16, alpha=0.75, color=colours[arch])
            ax.plot([i - 0.28, i + 0.28], [v.mean(), v.mean()], c="black", lw=2)
        ax.axhline(0.5, c="black", ls=":", lw=1)
        ax.set_xticks(range(len(order)), [labels.get(a, a) for a in order], rotation=30, ha="right", fontsize=8)
        ax.set(title=title, ylim=(-0.02, 1.02))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Per-fold scores (CV; bar = mean)", fontsize=10)
    return _png(fig)


def coverage_figure(table: pd.DataFrame, *, nominal: float = 0.95, goal: float = 0.93) -> bytes:
    """Coverage per interval method (± 2 Monte Carlo SE), one panel per metric, one row of dots per model."""
    metrics = [m for m in ("accuracy", "roc_auc") if m in set(table["metric"])]
    models = list(dict.fromkeys(table["model"]))
    methods = list(dict.fromkeys(table["method"]))
    colours = _colours(methods)
    fig = Figure(figsize=(4.6 * max(len(metrics), 1), 0.55 * len(models) * max(len(methods), 1) / 2 + 1.8))
    axes = fig.subplots(1, max(len(metrics), 1), sharey=True, squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        ax.axvline(nominal, c="black", ls=":", lw=1, label=f"nominal {nominal:.0%}")
        ax.axvline(goal, c="#d62728", ls="--", lw=1, label=f"goal {goal:.0%}")
        for i, model in enumerate(models):
            for k, method in enumerate(methods):
                row = table[(table["model"] == model) & (table["metric"] == metric) & (table["method"] == method)]
                if row.empty or not np.isfinite(row["coverage"].iloc[0]):
                    continue
                c, se = float(row["coverage"].iloc[0]), float(row["mc_se"].iloc[0])
                yy = i + (k - (len(methods) - 1) / 2) * 0.16
                ax.errorbar(c, yy, xerr=2 * se, fmt="o", ms=4, c=colours[method],
                            label=method if i == 0 else None)
        ax.set(title=f"{metric}: coverage of the true value", xlim=(0.5, 1.0))
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=7, frameon=False)
    axes[0].set_yticks(range(len(models)), models)
    n = int(table["n_datasets"].max()) if len(table) else 0
    fig.suptitle(f"Interval coverage on {n} generated datasets (bars: ± 2 Monte Carlo SE)", fontsize=10)
    return _png(fig)
