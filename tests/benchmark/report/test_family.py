"""The declared family (statistics v3): every colour baseline is a member (none picked by its score), tied folds
are not testable (no p = 0), and accuracy's chance level is the no-information rate."""

from __future__ import annotations

import math

import pandas as pd

from benchmark.report.ceiling import _chance_accuracy
from benchmark.report.family import _comparisons


def _folds(arch: str, auc: list[float], acc: list[float]) -> list[dict]:
    return [{"arch": arch, "protocol": "cv", "repeat": 0, "fold": f, "roc_auc": a, "accuracy": c,
             "n_train": 32, "n_test": 8} for f, (a, c) in enumerate(zip(auc, acc))]


def _finished() -> pd.DataFrame:
    rows = (_folds("resnet18", [0.6, 0.7, 0.8, 0.65], [0.6, 0.7, 0.6, 0.5])
            + _folds("colour_stats", [0.9, 0.8, 0.85, 0.95], [0.8, 0.9, 0.7, 0.8])
            # ou_luo is exactly 0.1 below resnet18 on every fold: zero variance of the differences
            + _folds("ou_luo", [0.5, 0.6, 0.7, 0.55], [0.5, 0.6, 0.5, 0.4]))
    return pd.DataFrame(rows)


def test_every_colour_baseline_is_declared_whatever_its_score() -> None:
    comps, family = _comparisons(_finished(), "roc_auc", (0.5, "test"))
    primary = {(c["a"], c["b"]) for c in comps if c["metric"] == "roc_auc"}
    assert primary == {("resnet18", "chance_level"), ("resnet18", "colour_stats"), ("resnet18", "ou_luo")}
    assert family["declared"] == 3


def test_tied_folds_are_not_testable_and_leave_the_holm_family() -> None:
    comps, family = _comparisons(_finished(), "roc_auc", (0.5, "test"))
    tied = next(c for c in comps if c["b"] == "ou_luo" and c["metric"] == "roc_auc")
    assert math.isnan(tied["p_value"]) and tied["p_holm"] is None and not tied["in_family"]
    assert "not testable with 4 folds" in tied["note"] and "+0.100" in tied["note"]
    assert family["size"] == 2 and len(family["not_testable"]) == 1
    members = [c for c in comps if c["in_family"]]
    assert all(0.0 < c["p_holm"] <= 1.0 for c in members)  # Holm over the two testable ones, no p = 0


def test_accuracy_chance_level_is_the_no_information_rate() -> None:
    level, how = _chance_accuracy({"n_positive": 28, "n_negative": 12})  # π = 0.7
    assert level == 0.7  # max(π, 1 − π), not the stratified guess 0.58
    assert "no-information rate" in how and "0.580" in how
    assert _chance_accuracy({"n_positive": 20, "n_negative": 20})[0] == 0.5
    comps, _ = _comparisons(_finished(), "roc_auc", (level, how))
    acc = next(c for c in comps if c["b"] == "chance_level" and c["metric"] == "accuracy")
    assert acc["level"] == 0.7 and abs(acc["mean_diff"] - (0.6 - 0.7)) < 1e-12


def test_verdict_says_which_rows_are_above_chance() -> None:
    from benchmark.report.data import Report
    from benchmark.report.verdicts import _above_chance

    def group(arch: str, lo: float, mean: float, hi: float) -> dict:
        return {"arch": arch, "protocol": "cv", "metric": "roc_auc", "mean": mean, "ci_low": lo, "ci_high": hi}

    groups = [group("resnet18", 0.45, 0.6, 0.75), group("colour_stats", 0.58, 0.78, 0.9),
              group("chance", 0.3, 0.5, 0.7), {**group("ou_luo", 0.6, 0.7, 0.8), "protocol": "seed_split"}]
    report = Report(run_id="x", header={}, groups=groups, comparisons=[], ceiling=[], ceiling_gaps=[],
                    seed_split=[], missing_folds=[], n_jobs_planned=1, n_jobs_finished=1)
    [line] = _above_chance(report)
    above, rest = line.split("not shown above it")
    assert "Colour stats (logistic) 0.780 [0.580, 0.900]" in above
    assert "ResNet18" in rest and "ResNet18" not in above
    assert "Chance" not in line and "Ou & Luo" not in line  # the chance row itself and other protocols: not listed
