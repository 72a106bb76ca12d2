"""The declared comparison family: each CNN against the chance level, CNN against CNN and each CNN against every
colour baseline in the run (all of them, fixed by the config before any result: no baseline is picked by its
score), with Holm-adjusted p over the testable comparisons on the primary metric of the CV protocol."""

from __future__ import annotations

import math

import pandas as pd

from benchmark import stats
from benchmark.report.constants import (ALPHA, CHANCE_LEVEL, COLOUR_BASELINES, COMPARED, CONFIDENCE, PROTOCOL_ORDER,
                                        _cnns, _ordered)
from benchmark.report.format import _finite

def _comparisons(finished: pd.DataFrame, primary: str,
                 chance_acc: tuple[float, str]) -> tuple[list[dict], dict]:
    """The declared family per protocol: each CNN vs the chance level, CNN vs CNN, each CNN vs each colour
    baseline; both compared metrics, Holm-adjusted p on the primary metric of the CV family only."""
    out = []
    keys = ["protocol", "repeat", "fold"]
    for protocol in _ordered(finished["protocol"], PROTOCOL_ORDER):
        here = finished[finished["protocol"] == protocol]
        present = set(here["arch"])
        cnns = _cnns(present)
        for a in cnns:
            fa = here[here["arch"] == a]
            n_train, n_test = float(fa["n_train"].mean()), float(fa["n_test"].mean())
            for m in COMPARED:
                if m not in fa.columns:
                    continue
                level, how = (0.5, "ROC-AUC of any label-blind score") if m == "roc_auc" else chance_acc
                c = stats.test_against_level(fa[m].to_numpy(dtype=float), level, n_train, n_test, CONFIDENCE)
                out.append(_comparison(a, CHANCE_LEVEL, protocol, m, c, n_train, n_test, kind="level",
                                       level=level, level_note=how))
        colour = [b for b in COLOUR_BASELINES if b in present]
        pairs = [(a, b) for i, a in enumerate(cnns) for b in cnns[i + 1:]]
        pairs += [(a, b) for a in cnns for b in colour]
        for a, b in pairs:
            fa, fb = here[here["arch"] == a], here[here["arch"] == b]
            merged = fa.merge(fb, on=keys, suffixes=("_a", "_b"))
            n_train = float(((merged["n_train_a"] + merged["n_train_b"]) / 2).mean()) if len(merged) else math.nan
            n_test = float(((merged["n_test_a"] + merged["n_test_b"]) / 2).mean()) if len(merged) else math.nan
            for m in COMPARED:
                if f"{m}_a" not in merged.columns:
                    continue
                c = stats.corrected_paired_test(merged[f"{m}_a"], merged[f"{m}_b"], n_train, n_test, CONFIDENCE)
                out.append(_comparison(a, b, protocol, m, c, n_train, n_test,
                                       kind="baseline" if b in COLOUR_BASELINES else "pair"))
    family = _adjust(out, primary)
    return out, family


def _comparison(a: str, b: str, protocol: str, m: str, c: stats.Comparison, n_train: float, n_test: float, *,
                kind: str, level: float | None = None, level_note: str = "") -> dict:
    return {"a": a, "b": b, "kind": kind, "protocol": protocol, "metric": m, "level": level,
            "level_note": level_note, "mean_diff": c.mean_diff, "ci_low": c.ci_low, "ci_high": c.ci_high,
            "p_value": c.p_value, "p_holm": None, "in_family": False, "t": c.t, "n_folds": c.n,
            "n_train": n_train, "n_test": n_test, "note": c.note}


def _adjust(comparisons: list[dict], primary: str) -> dict:
    """Holm over the testable CV comparisons on the primary metric (2+ folds and a p-value); the declared ones
    that are not testable (zero variance of the paired differences, too few folds) are listed with the reason;
    the other comparisons stay unadjusted."""
    protocol = "cv" if any(c["protocol"] == "cv" for c in comparisons) else None
    declared = [c for c in comparisons if c["protocol"] == protocol and c["metric"] == primary]
    members = [c for c in declared if c["n_folds"] >= 2 and _finite(c["p_value"])]
    for c, p in zip(members, stats.holm([c["p_value"] for c in members])):
        c["p_holm"], c["in_family"] = float(p), True
    untestable = [c for c in declared if not c["in_family"]]
    return {"protocol": protocol, "metric": primary, "method": "holm", "alpha": ALPHA, "size": len(members),
            "members": [f"{c['a']} - {c['b']}" for c in members],
            "declared": len(declared), "not_testable": [f"{c['a']} - {c['b']}: {c['note']}" for c in untestable]}
