"""benchmark.coverage: the truth computations, nested CV on a hand case, and `--quick` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from benchmark.coverage import simulate
from benchmark.coverage.features import Outfits
from neipalette.evaluation.metrics import expected_auc


def test_expected_accuracy_and_auc_by_hand():
    s = np.array([0.9, 0.2, 0.6, 0.4])
    p = np.array([0.8, 0.3, 0.5, 0.1])
    # predictions 1, 0, 1, 0 -> right with probability 0.8, 0.7, 0.5, 0.9
    assert simulate.expected_accuracy(s, p) == pytest.approx((0.8 + 0.7 + 0.5 + 0.9) / 4)
    # with p in {0, 1} the P-weighted AUC is the ordinary one
    y = np.array([1, 0, 1, 0, 1, 1, 0])
    sc = np.array([0.3, 0.1, 0.8, 0.3, 0.5, 0.9, 0.7])
    assert expected_auc(sc, y.astype(float)) == pytest.approx(roc_auc_score(y, sc))
    # by hand: pairs (i, j), i != j, weight p_i (1 − p_j), win 1 / tie 1/2
    num = den = 0.0
    for i in range(4):
        for j in range(4):
            if i != j:
                w = p[i] * (1 - p[j])
                den += w
                num += w * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    assert expected_auc(s, p) == pytest.approx(num / den)


def test_nested_cv_interval_formula():
    # infl = (pivot_var / var · n/k − 1)(k − 1), clipped to [1, k]; bias (mean − cv)(1 + ((k−2)/(k−1))^1.5)
    nested = {"mean": 0.7, "var": 0.21, "pivot_var": 0.05, "n": 40}
    lo, hi = simulate.nested_cv_interval(nested, cv_mean=0.72, n_splits=5, confidence=0.95)
    infl = min(max((0.05 / 0.21 * 40 / 5 - 1) * 4, 1), 5)
    centre = 0.7 - (0.7 - 0.72) * (1 + (3 / 4) ** 1.5)
    half = 1.959963984540054 * math.sqrt(0.21 / 40) * math.sqrt(infl)
    assert (lo, hi) == (pytest.approx(centre - half), pytest.approx(centre + half))


def test_coverage_table_counts_hits_against_the_pooled_truth():
    plan = simulate.Plan(n_outfits=10, n_splits=2, n_repeats=1, seed=0)
    # two datasets, one model; truth = mean pool score over all folds = 0.6 (accuracy), 0.7 (roc_auc)
    res = [{"m": {"accuracy": np.array([0.55, 0.65]), "roc_auc": np.array([0.9, 0.95]),
                  "pool_accuracy": np.array([0.6, 0.6]), "pool_roc_auc": np.array([0.7, 0.7]),
                  "n_train": np.array([5, 5]), "n_test": np.array([5, 5])}},
           {"m": {"accuracy": np.array([0.95, 1.0]), "roc_auc": np.array([0.6, 0.8]),
                  "pool_accuracy": np.array([0.6, 0.6]), "pool_roc_auc": np.array([0.7, 0.7]),
                  "n_train": np.array([5, 5]), "n_test": np.array([5, 5])}}]
    table = simulate.coverage_table(res, plan).set_index(["metric", "method"])
    assert table.loc[("accuracy", "naive_t"), "truth"] == pytest.approx(0.6)
    naive = [simulate.stats.naive_interval(r["m"]["accuracy"]) for r in res]
    expect = np.mean([iv.ci_low <= 0.6 <= iv.ci_high for iv in naive])
    assert table.loc[("accuracy", "naive_t"), "coverage"] == expect
    assert set(table.index.get_level_values("method")) == {"naive_t", "corrected_t", "bounded_logit_t"}
    # Clopper-Pearson over datasets, and the share of datasets where the logit floor replaced the variance
    row = table.loc[("accuracy", "naive_t")]
    lo, hi = simulate.clopper_pearson(int(row["n_covered"]), 2)
    assert (row["cp_low"], row["cp_high"]) == (lo, hi) and lo <= row["coverage"] <= hi
    assert math.isnan(row["floor_share"])  # only the report's method has a floor
    floored = [simulate.stats.bounded_floor_used(r["m"]["accuracy"], 5, 5) for r in res]
    assert table.loc[("accuracy", "bounded_logit_t"), "floor_share"] == np.mean(floored)
    assert floored == [True, True]  # fold variances 0.005 and 0.00125 sit under the binomial floor at n_test 5


def test_difference_cell_has_truth_a_minus_b_and_stays_in_minus_one_one():
    plan = simulate.Plan(n_outfits=10, n_splits=2, n_repeats=2, seed=0)

    def model(acc, pool):
        return {"accuracy": np.array(acc), "roc_auc": np.array(acc), "pool_accuracy": np.array(pool),
                "pool_roc_auc": np.array(pool), "n_train": np.full(4, 5), "n_test": np.full(4, 5)}
    # a near-perfect model against chance: differences near 1, where the plain interval leaves [-1, 1]
    res = [{"chance": model([0.0, 0.2, 0.0, 0.2], [0.5] * 4), "good": model([1.0, 1.0, 1.0, 0.8], [0.9] * 4)},
           {"chance": model([0.6, 0.4, 0.4, 0.8], [0.5] * 4), "good": model([1.0, 0.8, 1.0, 1.0], [0.95] * 4)}]
    table = simulate.coverage_table(res, plan)
    diff = table[table["kind"] == "difference"].set_index(["metric", "method"])
    assert set(diff["model"]) == {"good-chance"} and set(diff["model_a"]) == {"good"}
    assert set(diff.index.get_level_values("method")) == set(simulate.DIFFERENCE_METHODS)
    truths = table[table["kind"] == "mean"].groupby(["model", "metric"])["truth"].first()
    for metric in simulate.METRICS:
        assert diff.loc[(metric, "bounded_fisher_z_t"), "truth"] == pytest.approx(
            truths["good", metric] - truths["chance", metric])
        assert diff.loc[(metric, "bounded_fisher_z_t"), "truth"] == pytest.approx(0.425)
    ivs = [simulate.difference_intervals(r["good"], r["chance"], "accuracy", plan) for r in res]
    bounded = [iv["bounded_fisher_z_t"] for iv in ivs]
    assert all(-1.0 <= lo <= hi <= 1.0 for lo, hi in bounded)
    assert any(iv["corrected_t"][1] > 1.0 for iv in ivs)  # the plain one does leave it here
    # the report's own interval of the comparison, and coverage counted against truth_a − truth_b
    c = simulate.stats.corrected_paired_test(res[0]["good"]["accuracy"], res[0]["chance"]["accuracy"], 5, 5)
    assert bounded[0] == (c.ci_low, c.ci_high)
    row = diff.loc[("accuracy", "bounded_fisher_z_t")]
    assert row["n_covered"] == sum(lo <= 0.425 <= hi for lo, hi in bounded) and row["n_datasets"] == 2
    assert (row["cp_low"], row["cp_high"]) == simulate.clopper_pearson(int(row["n_covered"]), 2)


def test_model_pairs_put_chance_last():
    assert simulate.model_pairs(["chance", "colour_stats", "ou_luo"]) == [
        ("colour_stats", "ou_luo"), ("colour_stats", "chance"), ("ou_luo", "chance")]


def test_clopper_pearson_is_exact():
    assert simulate.clopper_pearson(800, 800)[0] == pytest.approx(0.025 ** (1 / 800))
    lo, hi = simulate.clopper_pearson(744, 800)
    assert lo < 0.93 < hi and hi - lo < 0.04  # ±1.5-2% at 95% needs ~800 datasets


def test_every_dataset_and_the_pool_use_the_panel_and_tau_of_the_benchmark_dataset(tmp_path):
    """Data and truth from one process: the panel (raters, tau) that labelled the seed dataset, fixed."""
    from dataclasses import replace

    from neipalette.data import synth

    cfg = synth.SynthConfig(image_size=16)
    panel = synth.dataset_panel(cfg)
    seed_meta = synth.label_outfits(synth.draw_outfits(cfg), cfg)
    assert panel.tau == seed_meta.tau
    taus, weights = set(), set()
    for seed in (101, 102):
        other = replace(cfg, seed=seed, n_outfits=30)
        synth.generate_dataset(other, tmp_path / str(seed), panel)
        meta = json.loads((tmp_path / str(seed) / "synth.json").read_text())
        taus.add(meta["tau"])
        weights.add(json.dumps(meta["label_model"]["rater_weights"], sort_keys=True))
        free = synth.label_outfits(synth.draw_outfits(other), other)  # without the panel: its own tau
        assert abs(free.tau - panel.tau) > 1e-6
    assert taus == {round(panel.tau, 6)} and len(weights) == 1


def test_run_dataset_on_tiny_features():
    g = np.random.default_rng(0)
    n = 20
    labs = np.stack([g.normal([50, 0, 0], 20, (n, 3)), g.normal([50, 0, 0], 20, (n, 3))], axis=1)
    o = Outfits(labs, np.array([0, 1] * 10), np.full(n, 0.5), None)
    pool = Outfits(np.concatenate([labs, labs]), np.array([0, 1] * 20), np.full(2 * n, 0.7), None)
    from benchmark.coverage.procedures import colour_stats, ou_luo

    plan = simulate.Plan(n_outfits=n, n_splits=4, n_repeats=2, seed=3)
    r = simulate.run_dataset(o, pool, {"colour_stats": colour_stats, "ou_luo": ou_luo}, plan, 0)
    assert r["colour_stats"]["accuracy"].shape == (8,) and np.all(r["ou_luo"]["n_test"] == 5)
    assert np.all((0 <= r["ou_luo"]["pool_accuracy"]) & (r["ou_luo"]["pool_accuracy"] <= 1))
    assert r["ou_luo"]["pool_roc_auc"] == pytest.approx(np.full(8, 0.5))  # p constant: every model is at 0.5
    assert r["ou_luo"]["nested"]["n"] == n and 0 <= r["ou_luo"]["nested"]["mean"] <= 1
    again = simulate.run_dataset(o, pool, {"ou_luo": ou_luo}, plan, 0)
    np.testing.assert_array_equal(again["ou_luo"]["accuracy"], r["ou_luo"]["accuracy"])  # same seed, same numbers


@pytest.mark.slow
def test_quick_end_to_end(tmp_path, monkeypatch):
    """`python -m benchmark.coverage --quick`: table, one JSON line, an MLflow coverage run with its artifacts."""
    from mlflow.tracking import MlflowClient

    from benchmark.coverage.cli import main

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    config = Path(__file__).resolve().parents[3] / "experiments" / "default.yaml"
    monkeypatch.chdir(tmp_path)  # a new SQLite store keeps its artifacts in ./mlruns of the working folder
    res = CliRunner().invoke(main, ["--quick", "--config", str(config), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert "FIXED learning rate" in res.stdout and "not a measurement" in lines[0]
    summary = json.loads(lines[-1])
    everything = pd.DataFrame(summary["coverage"])
    table = everything[everything["kind"] == "mean"]
    assert set(table["model"]) == {"chance", "colour_stats", "ou_luo", "resnet18"}
    assert set(table["method"]) == {"naive_t", "corrected_t", "bounded_logit_t", "nested_cv"}
    diff = everything[everything["kind"] == "difference"]
    assert len(diff) == 6 * 2 * 2 and (diff["model"] == diff["model_a"] + "-" + diff["model_b"]).all()
    assert table["coverage"].between(0, 1).all() and (table["n_datasets"] == 6).all()
    chance_auc = table[(table["model"] == "chance") & (table["metric"] == "roc_auc")]["truth"].iloc[0]
    assert abs(chance_auc - 0.5) < 0.06  # a label-blind score has AUC 0.5 on the pool
    # the corrected interval is wider than the naive one, on every model and metric
    w = table.pivot_table(index=["model", "metric"], columns="method", values="mean_width")
    assert (w["corrected_t"] > w["naive_t"]).all()
    run = MlflowClient(uri).get_run(summary["run_id"])
    assert run.data.tags["neipalette.role"] == "coverage" and run.data.tags["neipalette.cv"] == "5x2"
    names = {a.path for a in MlflowClient(uri).list_artifacts(summary["run_id"])}
    assert {"coverage.csv", "coverage.png", "coverage.json"} <= names
    # the second run renders nothing: every feature comes from the cache
    again = CliRunner().invoke(main, ["--quick", "--config", str(config), "--cache-dir", str(tmp_path / "cache"),
                                      "--no-log"])
    assert json.loads(again.stdout.strip().splitlines()[-1])["coverage"] == summary["coverage"]


def test_bad_config_is_one_line_exit_2(tmp_path):
    from benchmark.coverage.cli import main

    res = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.yaml"), "--no-log"])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    res = CliRunner().invoke(main, ["--models", "resnet18,efficientnet_b0", "--no-log"])
    assert res.exit_code == 2 and "at most one CNN" in res.stderr
    res = CliRunner().invoke(main, ["--models", "svm", "--no-log"])
    assert res.exit_code == 2 and "unknown model 'svm'" in res.stderr
