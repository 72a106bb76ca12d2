"""The figures logged on a fold run: its ROC curve and the nested tuning's optimisation history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def roc_png(roc: pd.DataFrame, auc: float, title: str, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no backend switch

    fig = Figure(figsize=(3.2, 3.2), dpi=100)
    ax = fig.add_subplot()
    ax.plot(roc["fpr"], roc["tpr"], lw=1.8, label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.title.set_fontsize(8)
    ax.legend(loc="lower right", fontsize=8)
    fig.subplots_adjust(left=0.17, bottom=0.14, right=0.96, top=0.92)  # fixed margins: tight_layout costs a third
    fig.savefig(path)

def optimization_history_png(trials: pd.DataFrame, title: str, path: Path) -> None:
    """Each trial's objective (mean inner score; pruned trials at their last reported mean) and the best so far."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 3.0), dpi=100)
    ax = fig.add_subplot()
    done = trials[trials["state"] == "COMPLETE"]
    ax.scatter(done["number"], done["value"], s=18, label="trial")
    inner = [c for c in trials.columns if c.startswith("inner_score_")]
    pruned = trials[trials["state"] == "PRUNED"]
    if len(pruned) and inner:
        ax.scatter(pruned["number"], pruned[inner].mean(axis=1), s=18, marker="x", c="grey", label="pruned")
    if len(done):
        best = done.set_index("number")["value"].cummax()
        ax.step(best.index, best.to_numpy(), where="post", c="C3", lw=1.5, label="best so far")
    ax.set(xlabel="trial", ylabel="inner CV score", title=title)
    ax.title.set_fontsize(8)
    ax.legend(loc="lower right", fontsize=7)
    fig.subplots_adjust(left=0.15, bottom=0.15, right=0.97, top=0.91)
    fig.savefig(path)
