"""The report's tuning section: chosen values per fold and architecture, choices at the range's edge."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.report.constants import ARCH_LABELS
from benchmark.report.model import Report
from benchmark.report.render import _tuning_blocks
from benchmark.report.tuning import epochs_edge, lr_edge, search_range, tuning_figure, tuning_section

PARAMS = {"tuning.enabled": "True", "tuning.lr_min": "0.0001", "tuning.lr_max": "0.1", "tuning.epochs_min": "5",
          "tuning.epochs_max": "60"}


def _finished() -> pd.DataFrame:
    rows = [
        ("efficientnet_b0", "cv", 0, 0, "0.09", "5"),  # both at an edge (listed first: the order is the report's)
        ("resnet18", "cv", 0, 0, "0.001", "20"),      # inside
        ("resnet18", "cv", 0, 1, "0.00011", "30"),    # lr at the low edge
        ("resnet18", "cv", 1, 0, "0.003", "60"),      # epochs at the high edge
        ("chance", "cv", 0, 0, "n/a", "n/a"),         # not tuned
    ]
    return pd.DataFrame([{"arch": a, "protocol": p, "repeat": r, "fold": f, "learning_rate": lr, "epochs": e,
                          "run_id": f"{a}-{r}-{f}"} for a, p, r, f, lr, e in rows])


def test_edges_are_flagged_against_the_search_range():
    rng = search_range(PARAMS)
    assert rng == {"lr_min": 1e-4, "lr_max": 0.1, "epochs_min": 5, "epochs_max": 60}
    # 5% of the three decades = 0.15 decade, a factor of about 1.41
    assert lr_edge(1.4e-4, rng) == "low" and lr_edge(1.5e-4, rng) is None
    assert lr_edge(0.071, rng) == "high" and lr_edge(0.07, rng) is None
    assert epochs_edge(5, rng) == "low" and epochs_edge(60, rng) == "high" and epochs_edge(6, rng) is None


def test_section_lists_tuned_folds_only_with_their_edges():
    section = tuning_section(_finished(), PARAMS)
    folds = {(f["arch"], f["repeat"], f["fold"]): f for f in section["folds"]}
    assert set(folds) == {("resnet18", 0, 0), ("resnet18", 0, 1), ("resnet18", 1, 0), ("efficientnet_b0", 0, 0)}
    assert (folds[("resnet18", 0, 0)]["lr_edge"], folds[("resnet18", 0, 0)]["epochs_edge"]) == (None, None)
    assert folds[("resnet18", 0, 1)]["lr_edge"] == "low"
    assert folds[("resnet18", 1, 0)]["epochs_edge"] == "high"
    assert (folds[("efficientnet_b0", 0, 0)]["lr_edge"], folds[("efficientnet_b0", 0, 0)]["epochs_edge"]) == \
        ("high", "low")
    assert [a["arch"] for a in section["per_arch"]] == ["resnet18", "efficientnet_b0"]  # the given model order
    per_arch = {a["arch"]: a for a in section["per_arch"]}
    assert per_arch["resnet18"]["n_folds"] == 3 and per_arch["resnet18"]["epochs_median"] == 30
    assert per_arch["resnet18"]["lr_median"] == pytest.approx(0.001)  # the middle of 0.00011, 0.001, 0.003
    assert (per_arch["resnet18"]["n_lr_edge"], per_arch["resnet18"]["n_epochs_edge"]) == (1, 1)


def test_no_section_without_tuning():
    assert tuning_section(_finished(), {**PARAMS, "tuning.enabled": "False"}) is None
    assert tuning_section(_finished(), {"seed": "0"}) is None
    baselines_only = _finished()[lambda f: f["arch"] == "chance"]
    assert tuning_section(baselines_only, PARAMS) is None


def test_figure_and_rendered_blocks():
    section = tuning_section(_finished(), PARAMS)
    png = tuning_figure(section, ARCH_LABELS)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    report = Report(run_id="r", header={}, groups=[], comparisons=[], ceiling=[], ceiling_gaps=[], seed_split=[],
                    missing_folds=[], n_jobs_planned=0, n_jobs_finished=0, figures={"tuning": png}, tuning=section)
    blocks = _tuning_blocks(report)
    warnings = [b[1] for b in blocks if b[0] == "warn"]
    assert warnings and warnings[0].startswith("3 of 4 tuned folds chose a value at the edge")
    assert ("fig", "tuning") in [b[:2] for b in blocks]
    fold_table = [b[1] for b in blocks if b[0] == "table"][-1]
    assert ["EfficientNet-B0", "cv", "0", "0", "0.09", "5", "lr high, epochs low"] in fold_table.rows
    assert _tuning_blocks(Report(run_id="r", header={}, groups=[], comparisons=[], ceiling=[], ceiling_gaps=[],
                                 seed_split=[], missing_folds=[], n_jobs_planned=0, n_jobs_finished=0)) == []


def _quick_like() -> pd.DataFrame:
    """What experiments/quick.yaml writes: four tuned networks (two of them unknown to the report's display
    names) x (2 CV folds + the 60/20 split), three baselines; 5 of the 12 tuned folds at an edge."""
    lr_epochs = {
        "resnet18": [("0.001", "10"), ("0.0001", "10"), ("0.003", "12")],                   # 1 at an edge
        "efficientnet_b0": [("0.002", "8"), ("0.004", "20"), ("0.001", "9")],               # 1
        "efficientnet_lite0": [("0.09", "7"), ("0.01", "11"), ("0.02", "13")],              # 1
        "torchvision:mobilenet_v3_small": [("0.005", "5"), ("0.0001", "6"), ("0.01", "8")],  # 2
    }
    rows = []
    for arch, values in lr_epochs.items():
        jobs = [("cv", 0, 0), ("cv", 0, 1), ("seed_split", 0, 0)]
        rows += [{"arch": arch, "protocol": p, "repeat": r, "fold": f, "learning_rate": lr, "epochs": e,
                  "tuning_trials": "2", "run_id": f"{arch}-{p}-{f}"} for (p, r, f), (lr, e) in zip(jobs, values)]
    for arch in ("chance", "colour_stats", "ou_luo"):
        rows += [{"arch": arch, "protocol": p, "repeat": r, "fold": f, "learning_rate": "n/a", "epochs": "n/a",
                  "tuning_trials": None, "run_id": f"{arch}-{p}-{f}"}
                 for p, r, f in (("cv", 0, 0), ("cv", 0, 1), ("seed_split", 0, 0))]
    return pd.DataFrame(rows)


def test_every_tuned_model_is_in_the_section_and_its_edge_count():
    """The list of tuned models comes from the fold runs: Lite0 and torchvision:/timm: models are in it (a fixed
    pair of architectures printed '3 of 6 tuned folds' for quick.yaml where 5 of 12 is true)."""
    params = {**PARAMS, "tuning.epochs_max": "20"}
    section = tuning_section(_quick_like(), params)
    assert [a["arch"] for a in section["per_arch"] if a["protocol"] == "cv"] == [
        "resnet18", "efficientnet_b0", "efficientnet_lite0", "torchvision:mobilenet_v3_small"]
    assert len(section["folds"]) == 12
    report = Report(run_id="r", header={}, groups=[], comparisons=[], ceiling=[], ceiling_gaps=[], seed_split=[],
                    missing_folds=[], n_jobs_planned=0, n_jobs_finished=0, tuning=section)
    warnings = [b[1] for b in _tuning_blocks(report) if b[0] == "warn"]
    assert warnings[0].startswith("5 of 12 tuned folds chose a value at the edge")
    summary = [b[1] for b in _tuning_blocks(report) if b[0] == "table"][0]
    assert "torchvision:mobilenet_v3_small" in [r[0] for r in summary.rows]  # an unknown model: its own name
    assert tuning_figure(section, ARCH_LABELS)[:4] == b"\x89PNG"


def test_a_fold_run_without_tuning_params_is_not_a_tuned_fold():
    folds = _quick_like()
    folds.loc[folds["arch"] == "resnet18", "tuning_trials"] = None  # e.g. a model refitted with fixed values
    section = tuning_section(folds, PARAMS)
    assert {f["arch"] for f in section["folds"]} == {"efficientnet_b0", "efficientnet_lite0",
                                                      "torchvision:mobilenet_v3_small"}


def test_report_order_keeps_unknown_networks_before_the_baselines():
    from benchmark.report.constants import _arch_order

    got = _arch_order(["ou_luo", "timm:convnext_atto", "chance", "efficientnet_lite0", "resnet18",
                       "torchvision:mobilenet_v3_small"])
    assert got == ["resnet18", "efficientnet_lite0", "timm:convnext_atto", "torchvision:mobilenet_v3_small",
                   "chance", "ou_luo"]
