"""The report's tuning section: the learning rate and epochs chosen in each outer fold, per tuned model,
and the folds whose choice sits at the edge of the search range (a sign the range should be wider)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmark.report.constants import _arch_order

# A learning rate within this fraction of the (log10) search range from a bound counts as at the edge;
# epochs count when they equal a bound.
LR_EDGE_FRACTION = 0.05
_PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
            "#ff7f0e")


def search_range(params: Mapping[str, str]) -> dict[str, float] | None:
    """The tuning range from the parent's resolved config params; None when tuning was off or unknown."""
    try:
        rng = {k: float(params[f"tuning.{k}"]) for k in ("lr_min", "lr_max", "epochs_min", "epochs_max")}
    except (KeyError, ValueError):
        return None
    if str(params.get("tuning.enabled", "True")).lower() == "false":
        return None
    return rng


def lr_edge(lr: float, rng: Mapping[str, float]) -> str | None:
    lo, hi = math.log10(rng["lr_min"]), math.log10(rng["lr_max"])
    tol = LR_EDGE_FRACTION * (hi - lo)
    x = math.log10(lr)
    return "low" if x <= lo + tol else "high" if x >= hi - tol else None


def epochs_edge(epochs: float, rng: Mapping[str, float]) -> str | None:
    return "low" if epochs <= rng["epochs_min"] else "high" if epochs >= rng["epochs_max"] else None


def tuned_folds(finished: pd.DataFrame) -> pd.DataFrame:
    """The fold runs whose learning rate and epochs were chosen by tuning, whatever the model: a tuned fold run
    logs `tuning_trials` (runs written before that param existed: a numeric learning rate and epochs, which only
    tunable models log)."""
    if finished.empty or not {"learning_rate", "epochs"} <= set(finished.columns):
        return finished.iloc[0:0]
    folds = finished.assign(learning_rate=pd.to_numeric(finished["learning_rate"], errors="coerce"),
                            epochs=pd.to_numeric(finished["epochs"], errors="coerce"))
    tuned = folds["learning_rate"].notna() & folds["epochs"].notna()
    if "tuning_trials" in folds.columns and folds["tuning_trials"].notna().any():
        tuned &= folds["tuning_trials"].notna()
    return folds[tuned]


def tuning_section(finished: pd.DataFrame, params: Mapping[str, str]) -> dict | None:
    """Chosen values per (arch, protocol, repeat, fold) of every tuned model, with edge flags; None without."""
    rng = search_range(params)
    if rng is None:
        return None
    folds = tuned_folds(finished)
    if folds.empty:
        return None
    order = {a: i for i, a in enumerate(_arch_order(folds["arch"]))}  # report order, CV before the 60/20 split
    folds = folds.assign(_o=folds["arch"].map(order), _p=folds["protocol"] != "cv")
    folds = folds.sort_values(["_o", "_p", "repeat", "fold"], kind="stable")
    rows = []
    for r in folds.itertuples(index=False):
        edges = {"learning_rate": lr_edge(float(r.learning_rate), rng), "epochs": epochs_edge(float(r.epochs), rng)}
        rows.append({"arch": r.arch, "protocol": r.protocol, "repeat": int(r.repeat), "fold": int(r.fold),
                     "learning_rate": float(r.learning_rate), "epochs": int(r.epochs),
                     "lr_edge": edges["learning_rate"], "epochs_edge": edges["epochs"], "run_id": r.run_id})
    per_arch = []
    for (arch, protocol), g in pd.DataFrame(rows).groupby(["arch", "protocol"], sort=False):
        per_arch.append({"arch": arch, "protocol": protocol, "n_folds": len(g),
                         "lr_median": float(np.exp(np.median(np.log(g["learning_rate"])))),
                         "epochs_median": float(np.median(g["epochs"])),
                         "n_lr_edge": int(g["lr_edge"].notna().sum()),
                         "n_epochs_edge": int(g["epochs_edge"].notna().sum())})
    return {"range": rng, "lr_edge_fraction": LR_EDGE_FRACTION, "folds": rows, "per_arch": per_arch}


def tuning_figure(section: dict, labels: Mapping[str, str]) -> bytes:
    """Chosen (learning rate, epochs) per outer fold, one colour per model (circles CV, squares the 60/20
    split), the search range dashed; folds at an edge are drawn as open red rings around their point."""
    rng = section["range"]
    fig = Figure(figsize=(8.6, 4.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    frame = pd.DataFrame(section["folds"])
    colour = {a: _PALETTE[i % len(_PALETTE)] for i, a in enumerate(dict.fromkeys(frame["arch"]))}
    for (arch, protocol), g in frame.groupby(["arch", "protocol"], sort=False):
        ax.scatter(g["learning_rate"], g["epochs"], s=28, alpha=0.8, c=colour[arch],
                   marker="o" if protocol == "cv" else "s", label=f"{labels.get(arch, arch)} ({protocol})")
    edge = frame[frame["lr_edge"].notna() | frame["epochs_edge"].notna()]
    if len(edge):
        ax.scatter(edge["learning_rate"], edge["epochs"], s=110, facecolors="none", edgecolors="red",
                   linewidths=1.2, label="at the edge of the range")
    ax.add_patch(_range_box(rng))
    ax.set_xscale("log")
    ax.set_xlim(rng["lr_min"] / 1.6, rng["lr_max"] * 1.6)
    pad = max(1.0, 0.05 * (rng["epochs_max"] - rng["epochs_min"]))
    ax.set_ylim(rng["epochs_min"] - pad, rng["epochs_max"] + pad)
    ax.set(xlabel="learning rate (chosen by nested tuning)", ylabel="epochs",
           title="Tuned values per outer fold (dashed: search range)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)  # one entry per model: outside
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _range_box(rng: Mapping[str, float]):
    from matplotlib.patches import Rectangle

    return Rectangle((rng["lr_min"], rng["epochs_min"]), rng["lr_max"] - rng["lr_min"],
                     rng["epochs_max"] - rng["epochs_min"], fill=False, ls="--", ec="grey", lw=1)
