"""Sweeps: config, nested generated datasets, the power model, and a tiny sweep end to end (2 sizes, 1 repeat)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from benchmark import stats
from benchmark.config import ConfigError
from benchmark.sweep import power as pw
from benchmark.sweep.config import load_sweep_config

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "sizes": [12, 16],
    "generator": {"seed": 3, "image_size": 48},
    "benchmark": {
        "archs": ["resnet18"], "baselines": ["chance", "colour_stats", "ou_luo"], "protocols": ["cv"],
        "n_splits": 2, "n_repeats": 1, "log_models": False, "final_models": False,
        "model": {"weights": "none", "image_size": 32, "n_views": 1},
        "tuning": {"n_trials": 2, "inner_folds": 2, "epochs_min": 2, "epochs_max": 4},
    },
}


def _write(tmp_path: Path, data: dict, name: str = "tiny-sweep.yaml") -> Path:
    data = json.loads(json.dumps(data))
    data.setdefault("data_dir", str(tmp_path / "sweep-data"))
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


# -- config ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["learning-curve", "raters"])
def test_shipped_sweep_configs_load(name):
    cfg = load_sweep_config(REPO / "experiments" / f"{name}.yaml")
    points = cfg.points()
    assert points and len({p.key for p in points}) == len(points)
    if name == "learning-curve":
        assert sorted(cfg.sizes) == [40, 80, 160, 320, 640]
    else:
        assert sorted(cfg.raters) == [1, 3, 5, 9] and sorted(cfg.sigmas) == [0.15, 0.5, 1.0]
        assert len(points) == 12 * len(cfg.sizes)


@pytest.mark.parametrize("name", ["learning-curve", "raters"])
def test_benchmark_run_points_a_sweep_config_to_the_sweep_command(name):
    from benchmark.config import load_config

    with pytest.raises(ConfigError, match="is a sweep config; run it with python -m benchmark.sweep"):
        load_config(REPO / "experiments" / f"{name}.yaml")


def test_points_take_repeats_per_size_and_overrides(tmp_path):
    path = _write(tmp_path, {**TINY, "repeats": {16: 3}})
    cfg = load_sweep_config(path, ["raters=[1,3]", "benchmark.n_repeats=2"])
    reps = {(p.n_outfits, p.n_raters): p.n_repeats for p in cfg.points()}
    assert reps == {(12, 1): 2, (16, 1): 3, (12, 3): 2, (16, 3): 3}


@pytest.mark.parametrize("change, message", [
    ({"sizez": [1]}, "unknown sweep config key sizez"),
    ({"generator": {"seed": 1, "colour": 2}}, "unknown generator key colour"),
    ({"repeats": {99: 1}}, "repeats: 99 is not one of sizes"),
    ({"sizes": [12, 12]}, "duplicate"),
    ({"sizes": [12, 10**12]}, "sizes: need a list of integers from 4 to 1000000"),  # issue 25.8
    ({"sigmas": [float("inf")]}, "sigmas: need finite numbers"),
    ({"benchmark": {**TINY["benchmark"], "n_splits": 7}}, "needs at least that many outfits per class"),
    ({"benchmark": {**TINY["benchmark"], "dataset": "x"}}, "the sweep generates its own datasets"),
    ({"benchmark": {**TINY["benchmark"], "archs": ["vgg"]}}, "unknown architecture"),
])
def test_bad_sweep_config_is_one_clear_error(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep_config(_write(tmp_path, {**TINY, **change}))


def test_bad_config_exits_2_with_one_line(tmp_path):
    from benchmark.sweep.cli import main

    res = CliRunner().invoke(main, ["--config", str(_write(tmp_path, {**TINY, "sizes": [2]}))])
    assert res.exit_code == 2
    assert res.output.strip().startswith("error: sizes") and len(res.output.strip().splitlines()) == 1


# -- datasets -------------------------------------------------------------------------------------------
def test_subsets_are_nested_balanced_and_share_image_files(tmp_path):
    from benchmark.sweep.datasets import point_dataset
    from neipalette.data.dataset import load_dataset

    cfg = load_sweep_config(_write(tmp_path, {**TINY, "sizes": [8, 12, 16]}))
    roots = {p.n_outfits: point_dataset(cfg, p) for p in cfg.points()}
    ids = {}
    for n, root in roots.items():
        ds = load_dataset(root)
        assert len(ds.outfits) == n and int(ds.labels.sum()) == n // 2
        assert ds.p_positive is not None and len(ds.p_positive) == n
        ids[n] = set(ds.outfit_ids)
        for o in ds.outfits:  # the same file (hard link) as the pool's: same content, same cache key
            pool_img = roots[16].parent / "pool" / o.top.relative_to(root)
            assert o.top.read_bytes() == pool_img.read_bytes()
    assert ids[8] < ids[12] < ids[16]
    again = {p.n_outfits: point_dataset(cfg, p) for p in cfg.points()}  # reused, not rebuilt
    assert again == roots


# -- power ----------------------------------------------------------------------------------------------
def test_power_is_alpha_at_zero_gap_and_grows_with_gap_and_folds():
    assert pw.power(0.0, 0.01, 25, 0.2) == pytest.approx(0.025, abs=1e-9)  # the upper half of alpha
    assert pw.power(-0.1, 0.01, 25, 0.2) < 0.001  # below chance is not a detection
    assert pw.power(0.3, 1e-5, 25, 0.2) == pytest.approx(1.0)  # far in the tail: finite, not nan
    p = [pw.power(g, 0.01, 25, 0.2) for g in (0.02, 0.05, 0.1, 0.2, 0.4)]
    assert all(a < b for a, b in zip(p, p[1:])) and p[-1] > 0.99
    assert pw.power(0.05, 0.01, 10, 0.2) < pw.power(0.05, 0.01, 50, 0.2)


def test_power_matches_a_simulation_of_the_corrected_test():
    """Folds drawn with the correlation the Nadeau-Bengio correction assumes: rejection rate = model power."""
    g = np.random.default_rng(0)
    j, frac, gap, var = 10, 0.2, 0.08, 0.02
    rho = frac / (1 - frac)
    hits = 0
    n_sim = 4000
    for _ in range(n_sim):  # shared component var*rho, independent var*(1 - rho): Var(mean) = (1/J + rho) var
        d = gap + g.normal(0, math.sqrt(var * rho)) + g.normal(0, math.sqrt(var * (1 - rho)), j)
        c = stats.test_against_level(d + 0.5, 0.5, 1 - frac, frac)
        t, p = c.t, c.p_value
        hits += p < 0.05 and t > 0
    # (the test's variance estimate sees only the independent part: the simulation's power is a little higher)
    assert abs(hits / n_sim - pw.power(gap, var * (1 - rho), j, frac)) < 0.03


def test_fit_recovers_a_known_curve_and_needed_n_is_where_power_crosses():
    a, b, s2 = 0.2, 0.8, 0.02
    sizes = []
    for n in (40, 80, 160, 320, 640):
        gap = a - b / math.sqrt(n)
        sd = math.sqrt(s2 * 40 / n)
        scores = 0.5 + gap + sd * np.array([-1.0, 1.0] * 5)  # exact mean and (ddof=1) variance ~ s2*40/n
        sizes.append(pw.SizeResult(n, scores, 0.8 * n, 0.2 * n))
    m = pw.fit(sizes, 0.5, j=25, test_fraction=0.2)
    assert m.a == pytest.approx(a, abs=1e-9) and m.b == pytest.approx(b, abs=1e-9)
    assert m.s2 == pytest.approx(s2 * 10 / 9, rel=1e-6)
    n = m.needed_n()
    assert n is not None and m.power(n) >= 0.8 > m.power(n - 5)
    flat = pw.fit([pw.SizeResult(s.n_outfits, 0.5 + (s.scores - s.scores.mean()), s.n_train, s.n_test)
                   for s in sizes], 0.5, j=25, test_fraction=0.2)
    assert flat.needed_n() is None  # no gap: never detected
    capped = pw.fit(sizes, 0.5, j=25, test_fraction=0.2, ceiling=0.6)
    assert float(capped.gap(10**6)) == pytest.approx(0.1)
    assert m.beta == pytest.approx(1.0, abs=1e-9)  # these sizes follow 1/n exactly


def _sizes(a, b, s2, beta, ns=(40, 80, 160, 320, 640), j=10):
    out = []
    for n in ns:
        sd = math.sqrt(s2 * (n / 40) ** -beta)
        out.append(pw.SizeResult(n, 0.5 + a - b / math.sqrt(n) + sd * np.array([-1.0, 1.0] * (j // 2)),
                                 0.8 * n, 0.2 * n))
    return out


def test_variance_model_fits_the_measured_sizes_not_one_over_n():
    """The sweep saw n·σ̂² fall 1.39 → 0.44 over 40…640: a power law σ² ∝ n^−β fits it, 1/n does not."""
    sizes = _sizes(0.2, 0.8, 0.03, 1.4)
    m = pw.fit(sizes, 0.5, j=25, test_fraction=0.2)
    assert m.beta == pytest.approx(1.4 , abs=1e-9)
    for s in sizes:
        assert float(m.var(s.n_outfits)) == pytest.approx(np.var(s.scores, ddof=1), rel=1e-9)
    one_over_n = pw.PowerModel(m.a, m.b, m.s2, 40, 25, 0.2, beta=1.0)
    assert float(one_over_n.var(640)) > 2 * float(m.var(640))  # the old model overstates large-n variance
    n = m.needed_n()
    assert n is not None and m.power_grid()[pw.GRID == n][0] == pytest.approx(m.power(n))


def test_needed_n_has_a_bootstrap_interval_that_holds_it_and_shrinks_with_folds():
    sizes = _sizes(0.15, 0.6, 0.02, 1.0, j=10)
    point = pw.fit(sizes, 0.5, j=25, test_fraction=0.2).needed_n()
    lo, hi = pw.needed_n_interval(sizes, 0.5, j=25, test_fraction=0.2, n_boot=200, seed=1)
    assert lo <= point <= hi and lo < hi
    assert lo >= 40  # never below the smallest measured size
    again = pw.needed_n_interval(sizes, 0.5, j=25, test_fraction=0.2, n_boot=200, seed=1)
    assert again == (lo, hi)  # seeded
    flat = _sizes(0.0, 0.0, 0.02, 1.0)
    assert pw.needed_n_interval(flat, 0.5, j=25, test_fraction=0.2, n_boot=100)[1] == math.inf
    shrinking = _sizes(-0.05, -1.9, 0.03, 1.0)  # a gap that falls with n (random-init EfficientNet-B0's curve)
    m = pw.fit(shrinking, 0.5, j=25, test_fraction=0.2)
    assert m.shrinking and m.n_min == 40 and m.needed_n() is None
    strong = pw.PowerModel(0.3, 0.1, 0.002, 40, 25, 0.2, n_min=40)
    assert strong.power(12) > 0.8 and strong.needed_n() == 40  # never below the smallest measured size
    assert not hasattr(pw, "plug_in_power")  # no observed power (Hoenig & Heisey 2001)


# -- end to end -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_sweep_end_to_end_nested_runs_report_and_resume(tmp_path, store, one_thread):
    from mlflow.tracking import MlflowClient

    from benchmark.report.cli import main as report_main
    from benchmark.sweep.cli import main as sweep_main

    path = _write(tmp_path, TINY)
    res = CliRunner().invoke(sweep_main, ["--config", str(path), "-q", "--no-report"])
    assert res.exit_code == 0, res.output
    sweep_id = res.output.split("sweep run ")[1].split(":")[0]
    client = MlflowClient(store)
    sweep = client.get_run(sweep_id)
    assert sweep.info.status == "FINISHED" and sweep.data.tags["neipalette.role"] == "sweep"
    exp = sweep.info.experiment_id
    points = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{sweep_id}'")
    assert sorted(int(r.data.tags["neipalette.n_outfits"]) for r in points) == [12, 16]
    for r in points:  # a whole benchmark beneath each point: 4 models x 2 folds, one summary per model
        assert r.data.tags["neipalette.role"] == "parent" and r.info.status == "FINISHED"
        assert 0.5 < r.data.metrics["ceiling_accuracy"] <= 1.0 and 0.5 < r.data.metrics["ceiling_roc_auc"] <= 1.0
        kids = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{r.info.run_id}'")
        roles = [k.data.tags["neipalette.role"] for k in kids]
        assert roles.count("fold") == 8 and roles.count("summary") == 4
        n = int(r.data.tags["neipalette.n_outfits"])
        folds = [k for k in kids if k.data.tags["neipalette.role"] == "fold"]
        assert {int(k.data.params["n_train"]) + int(k.data.params["n_test"]) for k in folds} == {n}
        # the whole dataset's ceiling at step n_outfits (the CV headline's fold-mean ceiling sits at step 0)
        assert n in [m.step for m in client.get_metric_history(r.info.run_id, "ceiling_accuracy")]
    # the sweep run charts learning curves: each point's headline metrics at step = n_outfits
    assert sweep.info.run_name.endswith(" sweep")
    curve = client.get_metric_history(sweep_id, "resnet18.roc_auc")
    assert sorted(m.step for m in curve) == [12, 16]
    by_step = {int(r.data.tags["neipalette.n_outfits"]): r.data.metrics["resnet18.roc_auc"] for r in points}
    assert {m.step: m.value for m in curve} == pytest.approx(by_step)
    assert sorted(m.step for m in client.get_metric_history(sweep_id, "point_seconds")) == [12, 16]

    res = CliRunner().invoke(report_main, ["--run-id", sweep_id, "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep" / "sweep.md").read_text()
    data = json.loads((tmp_path / "rep" / "sweep.json").read_text())
    assert (tmp_path / "rep" / "learning_curve.png").stat().st_size > 10_000
    assert (tmp_path / "rep" / "power.png").stat().st_size > 10_000
    assert "n for 80% power" in md and "12 " in md and "16 " in md and "plug-in power at" not in md
    assert "[95% bootstrap]" in md and "logit scale" in md
    assert {(r["n_outfits"], r["model"]) for r in data["rows"]} == {
        (n, m) for n in (12, 16) for m in ("resnet18", "chance", "colour_stats", "ou_luo")}
    (power_row,) = data["power"]
    assert power_row["model"] == "resnet18" and [m["n_outfits"] for m in power_row["measured"]] == [12, 16]
    fold_auc = [r for r in data["rows"] if r["model"] == "resnet18" and r["n_outfits"] == 16][0]["roc_auc_mean"]
    summ = [k for r in points if r.data.tags["neipalette.n_outfits"] == "16"
            for k in client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{r.info.run_id}' and "
                                               "tags.`neipalette.role` = 'summary' and tags.`neipalette.arch` = 'resnet18'")]
    assert summ[0].data.metrics["roc_auc_mean"] == pytest.approx(fold_auc)
    assert "report/sweep.md" in [a.path for a in client.list_artifacts(sweep_id, "report")]

    # resume: a sweep killed during its second point redoes only that point
    client.set_terminated(sweep_id, "KILLED")
    second = [r for r in points if r.data.tags["neipalette.n_outfits"] == "16"][0]
    client.delete_run(second.info.run_id)
    res = CliRunner().invoke(sweep_main, ["--config", str(path), "-q", "--no-report", "--resume"])
    assert res.exit_code == 0, res.output
    assert f"sweep run {sweep_id}: 2 points (1 done before)" in res.output
    assert "point n12" not in res.output and "point n16" in res.output
    again = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{sweep_id}'")
    assert sorted(int(r.data.tags["neipalette.n_outfits"]) for r in again) == [12, 16]
    assert client.get_run(sweep_id).info.status == "FINISHED"
