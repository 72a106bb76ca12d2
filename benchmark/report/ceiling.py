"""The noise ceiling in the report: per-outfit P(positive) (the truth), the chance level, the expected Bayes
accuracy with the range of a realised Bayes-rule accuracy, each model's gap to it, and the raters' estimate of
it where there is no truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import stats
from benchmark.report.constants import CEILING, CONFIDENCE, PROTOCOL_ORDER, _ordered
from benchmark.report.format import _find, _finite
from benchmark.tracking.read import BenchmarkRecord
from neipalette.data import panel

def _truth(record: BenchmarkRecord) -> dict | None:
    """Per-outfit P(positive) and labels: recorded in dataset.json (new runs), else the dataset's truth.csv."""
    d = record.dataset or {}
    root = d.get("root")
    if d.get("p_positive") is not None:
        out = {"p_positive": d["p_positive"], "labels": d.get("labels"), "source": "dataset.json"}
        from_csv = _truth_csv(root, d) if root else None
        if from_csv and "cues" in from_csv and np.allclose(from_csv["p_positive"], d["p_positive"], atol=1e-5):
            out.update(cues=from_csv["cues"], panel=from_csv["panel"])
        return out
    if not root:
        return None
    return _truth_csv(root, d)


def _truth_csv(root: str, d: dict) -> dict | None:
    """Per-outfit P(positive) and labels from the dataset's truth.csv (with the panel's cues when generated)."""
    try:
        truth = pd.read_csv(Path(root) / "truth.csv", dtype={"outfit_id": str})
        outfits = pd.read_csv(Path(root) / "outfits.csv", dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return None
    if len(outfits) != d.get("n_outfits"):
        return None  # not the dataset this benchmark ran on
    gen = _generator_panel(Path(root))
    cue_cols = [f"cue_{c}" for c in gen["cues"]] if gen else []
    have = [c for c in cue_cols if c in truth.columns]
    merged = outfits.merge(truth[["outfit_id", "p_positive", *have]], on="outfit_id", how="left")
    if merged["p_positive"].isna().any():
        return None
    labels = merged["label"].str.strip().str.lower().map({"positive": 1, "negative": 0, "1": 1, "0": 0})
    out = {"p_positive": merged["p_positive"].astype(float).tolist(),
           "labels": None if labels.isna().any() else labels.astype(int).tolist(), "source": "truth.csv"}
    if gen and cue_cols and len(have) == len(cue_cols):
        out.update(cues=merged[cue_cols].to_numpy(dtype=float).tolist(), panel=gen)
    return out


BALANCED_DRAWS = 4000


def _balanced_range(truth: dict, low: float, high: float) -> dict | None:
    """When truth.csv comes from the generator's panel model: the realised Bayes-rule accuracy under the
    generator's own label process (tau re-balanced per draw, `neipalette.data.panel.balanced_bayes_accuracy`),
    simulated; the mass it gives the independent-labels range [low, high] and its own central 95% range."""
    cues, meta = truth.get("cues"), truth.get("panel")
    if cues is None or meta is None:
        return None
    p = np.asarray(truth["p_positive"], dtype=float)
    acc = panel.balanced_bayes_accuracy(np.asarray(cues), np.asarray(meta["weights"]), float(meta["sigma"]),
                                        (p >= 0.5).astype(int), np.random.default_rng(0), BALANCED_DRAWS)
    alpha = (1.0 - CONFIDENCE) / 2.0
    lo, hi = np.quantile(acc, [alpha, 1.0 - alpha], method="inverted_cdf")
    return {"mass": float(np.mean((acc >= low - 1e-9) & (acc <= high + 1e-9))), "low": float(lo), "high": float(hi),
            "draws": BALANCED_DRAWS}


def _generator_panel(root: Path) -> dict | None:
    """The panel (rater weights, sigma) from a generated dataset's synth.json; None for other datasets."""
    try:
        meta = json.loads((root / "synth.json").read_text())
    except (OSError, ValueError):
        return None
    lm = meta.get("label_model") or {}
    if lm.get("name") != "panel" or not lm.get("rater_weights"):
        return None
    cues = lm.get("cues") or list(panel.CUES)
    raters = sorted(lm["rater_weights"], key=lambda k: int(k.rsplit("_", 1)[1]))
    return {"weights": [[float(lm["rater_weights"][r][c]) for c in cues] for r in raters], "sigma": float(lm["sigma"]),
            "cues": cues}


def _chance_accuracy(dataset: dict | None) -> tuple[float, str]:
    """The accuracy "better than chance" must beat: the no-information rate max(π, 1−π) of the dataset's class
    balance π (stratified folds keep it), what always answering the larger class scores. The stratified random
    guess, π² + (1−π)², is lower whenever π ≠ 0.5 and is given as context only."""
    d = dataset or {}
    pos, neg = d.get("n_positive"), d.get("n_negative")
    if _finite(pos, neg) and pos + neg > 0:
        pi = pos / (pos + neg)
        guess = stats.stratified_chance_accuracy(pi)
        return max(pi, 1.0 - pi), (f"no-information rate at {100 * pi:.0f}% positive; a stratified random guess "
                                   f"scores {guess:.3f}")
    return 0.5, "class balance not recorded; 0.5 assumed"


def _rater_ceiling(dataset: dict | None) -> dict | None:
    """The rater-based noise ceiling (`neipalette data aggregate`, recorded in dataset.json) of a dataset without
    truth.csv: an estimate of the Bayes accuracy from the votes, with its 95% bootstrap interval."""
    d = dataset or {}
    rc = d.get("rater_ceiling")
    if d.get("has_truth") or not isinstance(rc, dict) or not _finite(rc.get("estimate")):
        return None
    return {"estimate": float(rc["estimate"]), "ci_low": rc.get("ci_low"), "ci_high": rc.get("ci_high"),
            "estimator": rc.get("estimator"), "source": "agreement.json"}


def _ceiling(finished: pd.DataFrame, truth: dict | None) -> list[dict]:
    """The noise ceiling: a fixed number per protocol, plus (CV) the range of a realised Bayes-rule accuracy."""
    if CEILING not in finished.columns:
        return []
    out = []
    for protocol in _ordered(finished["protocol"], PROTOCOL_ORDER):
        rows = finished[(finished["protocol"] == protocol) & finished[CEILING].notna()]
        if rows.empty:
            continue
        per_fold = rows.groupby(["repeat", "fold"])[CEILING].mean()
        entry = {"protocol": protocol, "mean": float(per_fold.mean()), "n_folds": len(per_fold),
                 "range_low": None, "range_high": None, "range_mass": None, "realised": None, "n_outfits": None,
                 "balanced": None,
                 "source": "fold runs", "note": ""}
        if protocol == "cv" and truth is not None:
            r = stats.bayes_accuracy_range(truth["p_positive"], truth.get("labels"), CONFIDENCE)
            entry.update(mean=r.expected, range_low=r.low, range_high=r.high, range_mass=r.coverage,
                         realised=r.realised, n_outfits=r.n, source=truth["source"],
                         balanced=_balanced_range(truth, r.low, r.high))
        elif protocol == "cv":
            entry["note"] = "per-outfit P(positive) not recorded: no realised-accuracy range"
        else:
            entry["note"] = "expected Bayes accuracy on this split's test images"
        out.append(entry)
    return out


def _ceiling_gaps(groups: list[dict], ceiling: list[dict]) -> list[dict]:
    """Per model: expected Bayes accuracy − CV accuracy, and whether the accuracy lies in the realised range."""
    ceil = _find(ceiling, protocol="cv")
    if ceil is None:
        return []
    out = []
    for g in groups:
        if g["protocol"] != "cv" or g["metric"] != "accuracy" or not _finite(g["mean"]):
            continue
        within = None
        if _finite(ceil["range_low"], ceil["range_high"]):
            within = bool(ceil["range_low"] <= g["mean"] <= ceil["range_high"])
        out.append({"arch": g["arch"], "protocol": "cv", "accuracy": g["mean"], "mean_gap": ceil["mean"] - g["mean"],
                    "within_range": within, "n_folds": g["n_folds"]})
    return out
