"""Report tests against a fake benchmark written with the exact MLflow layout (docs/mlflow-layout.md)."""

from __future__ import annotations

import json
import math
import os

os.environ["MLFLOW_TELEMETRY_DISABLED"] = "1"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from scipy.stats import binom, norm  # noqa: E402
from scipy.stats import t as t_dist  # noqa: E402

from benchmark.report import figures  # noqa: E402
from benchmark.report.cli import generate, main  # noqa: E402
from benchmark.tracking.summary import log_summary_run  # noqa: E402
from neipalette.evaluation.metrics import classification_metrics, roc_points  # noqa: E402

ARCHS = ("resnet18", "efficientnet_b0", "chance", "colour_stats")
SIGNAL = {"resnet18": 0.3, "efficientnet_b0": 0.1, "chance": 0.0, "colour_stats": 0.4}
P_POSITIVE = [0.85, 0.15] * 20  # every outfit: the Bayes rule is right with probability 0.85
GENERATOR = {"name": "neipalette.data.synth", "version": 1, "n_outfits": 40}
RATER_CEILING = {"estimate": 0.81, "ci_low": 0.72, "ci_high": 0.9, "estimator": "unbiased", "plug_in": 0.84}
RATER_AGREEMENT = {"fleiss_kappa": {"estimate": 0.41, "ci_low": 0.22, "ci_high": 0.58},
                   "krippendorff_alpha": {"estimate": 0.42, "ci_low": 0.23, "ci_high": 0.59}, "n_votes": 120,
                   "raters": {"ann": 40, "bob": 40, "cy": 40}}
IMAGENET = {"resnet18": "imagenet:IMAGENET1K_V1", "efficientnet_b0": "imagenet:IMAGENET1K_V1"}


# -- the fake benchmark ---------------------------------------------------------------------------------
def _jobs(archs, n_repeats, n_splits):
    jobs = []
    for arch in archs:
        jobs += [{"arch": arch, "protocol": "cv", "repeat": r, "fold": f}
                 for r in range(n_repeats) for f in range(n_splits)]
        jobs.append({"arch": arch, "protocol": "seed_split", "repeat": 0, "fold": 0})
    return jobs


def _fold_data(job, seed, n_splits):
    """Labels/scores for one fold; the test set (labels, ceiling) depends on the fold only, not the model."""
    fold_rng = np.random.default_rng([seed, job["repeat"], job["fold"], job["protocol"] == "cv"])
    if job["protocol"] == "cv":
        n_test = [14, 13, 13][job["fold"]] if n_splits == 3 else 40 // n_splits
        n_train = 40 - n_test
    else:
        n_test, n_train = 20, 60
    y = np.array([1, 0] * (n_test // 2) + [1] * (n_test % 2))
    if job["protocol"] == "seed_split":
        y = np.repeat([1, 0] * (n_test // 4), 2)  # two images per outfit, one label
    ceiling = float(fold_rng.uniform(0.8, 0.9))
    model_key = ARCHS.index(job["arch"]) + 7
    rng = np.random.default_rng([seed, job["repeat"], job["fold"], model_key, job["protocol"] == "cv"])
    if job["arch"] == "chance":
        p = rng.uniform(size=n_test)
    else:
        p = np.clip(0.5 + SIGNAL[job["arch"]] * (2 * y - 1) + rng.normal(0, 0.25, n_test), 0, 1).round(3)
    return y, p, n_train, n_test, ceiling


def write_fake_benchmark(tracking_uri: str, *, artifact_root: Path, experiment: str = "neipalette",
                         archs=ARCHS, n_repeats: int = 2, n_splits: int = 3, seed: int = 0, start_time: int = 10**12,
                         finished: bool = True, skip=(), fail=(), retried=(), weights=None, rated: bool = False) -> str:
    """Parent + fold runs (cv n_repeats×n_splits and one seed_split per arch) with roc.csv/predictions.csv.
    `rated`: a dataset without truth.csv whose labels come from raters (agreement.json recorded)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment, artifact_location=str(artifact_root))
    staging = artifact_root.parent / f"staging-{start_time}"
    staging.mkdir(parents=True, exist_ok=True)
    weights = dict(IMAGENET if weights is None else weights)
    jobs = _jobs(archs, n_repeats, n_splits)
    tags = {"neipalette.role": "parent", "neipalette.config_hash": "cfg123", "neipalette.dataset_name": "fake40",
            "neipalette.dataset_hash": "abc123", "neipalette.git_commit": "deadbeef",
            "neipalette.n_jobs": str(len(jobs)),
            **{f"neipalette.weights.{a}": w for a, w in weights.items()}}
    parent = client.create_run(exp_id, start_time=start_time, tags=tags, run_name="benchmark-fake").info.run_id
    client.log_batch(parent, params=[Param("seed", str(seed)), Param("n_splits", str(n_splits)),
                                     Param("n_repeats", str(n_repeats))])
    (staging / "config.yaml").write_text(f"name: fake\nseed: {seed}\nn_splits: {n_splits}\nn_repeats: {n_repeats}\n")
    dataset = {"name": "fake40", "root": "/data/fake40", "n_outfits": 40, "n_positive": 20, "n_negative": 20,
               "hash": "abc123", "has_truth": True, "p_positive": P_POSITIVE, "labels": [1, 0] * 18 + [0, 1] * 2,
               "generator": GENERATOR}
    if rated:
        dataset = {k: v for k, v in dataset.items() if k not in ("p_positive", "labels", "generator")}
        dataset |= {"has_truth": False, "rater_ceiling": RATER_CEILING, "rater_agreement": RATER_AGREEMENT}
    (staging / "dataset.json").write_text(json.dumps(dataset))
    (staging / "jobs.json").write_text(json.dumps(jobs))
    for name in ("config.yaml", "dataset.json", "jobs.json"):
        client.log_artifact(parent, str(staging / name))
    t = start_time
    for job in jobs:
        key = (job["arch"], job["protocol"], job["repeat"], job["fold"])
        if key in skip:
            continue
        attempts = ["FAILED", "FINISHED"] if key in retried else ["FAILED" if key in fail else "FINISHED"]
        for status in attempts:
            t += 1000
            _fold_run(client, exp_id, parent, job, status, t, seed, n_splits, staging, with_ceiling=not rated)
    if finished:
        client.set_terminated(parent, "FINISHED", end_time=t + 1000)
    return parent


def _fold_run(client, exp_id, parent, job, status, t, seed, n_splits, staging, with_ceiling=True):
    key = "|".join(str(job[k]) for k in ("arch", "protocol", "repeat", "fold"))
    tags = {"mlflow.parentRunId": parent, "neipalette.role": "fold", "neipalette.job_key": key,
            "neipalette.arch": job["arch"], "neipalette.protocol": job["protocol"]}
    if status == "FAILED":
        tags["neipalette.error"] = "RuntimeError: CUDA out of memory"
    run = client.create_run(exp_id, start_time=t, tags=tags, run_name=f"fold-{key}").info.run_id
    y, p, n_train, n_test, ceiling = _fold_data(job, seed, n_splits)
    cnn = job["arch"] != "chance"
    params = {"arch": job["arch"], "protocol": job["protocol"], "repeat": job["repeat"], "fold": job["fold"],
              "input_mode": "pair" if job["protocol"] == "cv" else "single", "learning_rate": 1e-3 if cnn else "n/a",
              "epochs": 5 if cnn else "n/a", "n_train": n_train, "n_test": n_test, "seed": seed}
    metrics = {}
    if status == "FINISHED":
        metrics = classification_metrics(y, p) | ({"ceiling_accuracy": ceiling} if with_ceiling else {})
        if job["protocol"] == "seed_split":
            metrics |= {"partner_in_train": 13.0, "n_test_images": float(n_test)}
    client.log_batch(run, metrics=[Metric(k, v, t, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)) for k, v in params.items()])
    if status == "FINISHED":
        d = staging / run
        d.mkdir()
        pd.DataFrame(roc_points(y, p)).to_csv(d / "roc.csv", index=False)
        outfit = [f"o{i // 2}" for i in range(n_test)] if job["protocol"] == "seed_split" else range(n_test)
        pd.DataFrame({"sample_id": range(n_test), "outfit_id": outfit, "label": y, "p_positive": p,
                      "pred": (p >= 0.5).astype(int)}).to_csv(d / "predictions.csv", index=False)
        client.log_artifact(run, str(d / "roc.csv"))
        client.log_artifact(run, str(d / "predictions.csv"))
    client.set_terminated(run, status, end_time=t + 500)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store, three parents: old (finished), main (finished, latest), running (newest, unfinished)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    art = root / "artifacts"
    old = write_fake_benchmark(uri, artifact_root=art, seed=1, start_time=10**12)
    main_id = write_fake_benchmark(uri, artifact_root=art, seed=0, start_time=2 * 10**12,
                                   retried=[("resnet18", "cv", 0, 0)],
                                   weights={**IMAGENET, "efficientnet_b0": "none (random init, seed 0)"})
    running = write_fake_benchmark(uri, artifact_root=art, seed=2, start_time=3 * 10**12, finished=False,
                                   skip=[("efficientnet_b0", "cv", 1, 2), ("efficientnet_b0", "seed_split", 0, 0)],
                                   fail=[("chance", "cv", 0, 1)])
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name("neipalette").experiment_id
    # `old` already has one summary run; the report must not write a second one for that group.
    log_summary_run(client, exp_id, old, "resnet18", "cv", "pair", {"accuracy_mean": 0.5}, 6, 26.67, 13.33)
    return {"uri": uri, "root": root, "old": old, "main": main_id, "running": running, "client": client}


@pytest.fixture(scope="module")
def main_report(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report-main")
    report, paths = generate(None, "neipalette", out, tracking_uri=store["uri"])
    return report, paths


# -- independent computation ----------------------------------------------------------------------------
def _children(client, parent, role):
    flt = f"tags.`mlflow.parentRunId` = '{parent}' and tags.`neipalette.role` = '{role}'"
    return client.search_runs([client.get_run(parent).info.experiment_id], filter_string=flt)


def _one(items, **kw):
    return next(i for i in items if all(i[k] == v for k, v in kw.items()))


def _finished_folds(client, parent):
    runs = _children(client, parent, "fold")
    rows = {}
    for r in sorted(runs, key=lambda r: r.info.start_time):
        if r.info.status != "FINISHED":
            continue
        p = r.data.params
        key = (p["arch"], p["protocol"], int(p["repeat"]), int(p["fold"]))
        rows[key] = {"run_id": r.info.run_id, "n_train": float(p["n_train"]), "n_test": float(p["n_test"]),
                     **r.data.metrics}
    return rows


def _nb(x, n_train, n_test):
    x = np.asarray(x, float)
    j = len(x)
    half = t_dist.ppf(0.975, j - 1) * math.sqrt((1 / j + n_test / n_train) * np.var(x, ddof=1))
    return x.mean(), x.mean() - half, x.mean() + half


def _logit_nb(x, n_train, n_test):
    """The report's CV interval, written out again: corrected t on the logit scale around m* = (m·n+0.5)/(n+1)."""
    x = np.asarray(x, float)
    j, n = len(x), n_train + n_test
    m = (x.mean() * n + 0.5) / (n + 1)
    var = max(np.var(x, ddof=1), m * (1 - m) / n_test * n_train / (n - 1))
    half = t_dist.ppf(0.975, j - 1) * math.sqrt((1 / j + n_test / n_train) * var) / (m * (1 - m))
    centre = math.log(m / (1 - m))
    lo, hi = 1 / (1 + math.exp(-(centre - half))), 1 / (1 + math.exp(-(centre + half)))
    return x.mean(), min(lo, x.mean()), max(hi, x.mean())


def _pairwise_auc(y, p):
    pos, neg = p[y == 1], p[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def _outfit_bootstrap(preds, metric, seed=0, n_boot=2000):
    y, p, o = preds["label"].to_numpy(), preds["p_positive"].to_numpy(), preds["outfit_id"].astype(str).to_numpy()
    ids = sorted(set(o))
    members = [np.flatnonzero(o == k) for k in ids]
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(n_boot, len(ids)))
    vals = []
    for row in draws:
        idx = np.concatenate([members[k] for k in row])
        if metric == "accuracy":
            vals.append(float(((p[idx] >= 0.5) == y[idx]).mean()))
        elif 0 < y[idx].sum() < len(idx):
            vals.append(_pairwise_auc(y[idx], p[idx]))
    return np.quantile(vals, [0.025, 0.975])


def test_json_matches_independent_computation(store, main_report):
    report, paths = main_report
    data = json.loads(paths["json"].read_text())
    assert data["run_id"] == store["main"]  # latest FINISHED parent, not the newer RUNNING one
    assert data["settings"]["bootstrap_seed"] == 0  # the parent's `seed` param
    folds = _finished_folds(store["client"], store["main"])
    groups = {(g["arch"], g["protocol"], g["metric"]): g for g in data["groups"]}
    checked = 0
    for arch in ARCHS:
        cv = [v for k, v in folds.items() if k[0] == arch and k[1] == "cv"]
        assert len(cv) == 6
        n_train = np.mean([f["n_train"] for f in cv])
        n_test = np.mean([f["n_test"] for f in cv])
        for m in ("accuracy", "precision", "recall", "f1", "roc_auc", "precision_negative", "recall_negative",
                  "f1_negative", "ceiling_accuracy"):
            mean, lo, hi = _logit_nb([f[m] for f in cv], n_train, n_test)
            g = groups[(arch, "cv", m)]
            assert g["n_folds"] == 6 and g["method"] == "bounded_logit_t"
            assert abs(g["mean"] - mean) < 1e-9 and abs(g["ci_low"] - lo) < 1e-9 and abs(g["ci_high"] - hi) < 1e-9
            assert 0.0 <= g["ci_low"] <= g["ci_high"] <= 1.0
            checked += 1
        # seed split: outfit-level bootstrap for accuracy and ROC-AUC; Wilson as if the images were independent
        ss = folds[(arch, "seed_split", 0, 0)]
        n, k = ss["n_test"], round(ss["accuracy"] * ss["n_test"])
        z = norm.ppf(0.975)
        centre = (k / n + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * math.sqrt(k / n * (1 - k / n) / n + z**2 / (4 * n * n))
        entry = _one(data["seed_split"], arch=arch)
        assert abs(entry["accuracy_wilson"][0] - (centre - half)) < 1e-9
        assert abs(entry["accuracy_wilson"][1] - (centre + half)) < 1e-9
        assert groups[(arch, "seed_split", "precision")]["ci_low"] is None  # point estimate only
        if arch == "resnet18":
            preds = pd.read_csv(store["client"].download_artifacts(ss["run_id"], "predictions.csv",
                                                                   str(store["root"] / "dl")))
            for m in ("accuracy", "roc_auc"):
                lo, hi = _outfit_bootstrap(preds, m)
                g = groups[(arch, "seed_split", m)]
                assert g["method"] == "cluster_bootstrap"
                assert abs(g["ci_low"] - lo) < 1e-9 and abs(g["ci_high"] - hi) < 1e-9
            assert abs(groups[(arch, "seed_split", "roc_auc")]["mean"] - ss["roc_auc"]) < 1e-12
            assert entry["n_test_outfits"] == 10
    assert checked == 36
    # the declared family on the primary metric (roc_auc): each CNN vs the chance level, CNN vs CNN, each CNN
    # vs the best colour baseline (colour_stats, the only one here); Holm over those five
    keys = [(r, f) for r in range(2) for f in range(3)]
    comps = {(c["a"], c["b"], c["protocol"], c["metric"]): c for c in data["comparisons"]}
    assert data["primary_metric"] == "roc_auc" and data["family"]["size"] == 5
    raw = {}
    for a, b in (("resnet18", "chance_level"), ("efficientnet_b0", "chance_level"), ("resnet18", "efficientnet_b0"),
                 ("resnet18", "colour_stats"), ("efficientnet_b0", "colour_stats")):
        fa = [folds[(a, "cv", *k)] for k in keys]
        fb = [folds[(b, "cv", *k)] for k in keys] if b != "chance_level" else fa
        n_train = np.mean([(x["n_train"] + y["n_train"]) / 2 for x, y in zip(fa, fb)])
        n_test = np.mean([(x["n_test"] + y["n_test"]) / 2 for x, y in zip(fa, fb)])
        for m in ("accuracy", "roc_auc"):
            other = [0.5] * 6 if b == "chance_level" else [y[m] for y in fb]  # 20/20 classes: stratified guess 0.5
            d = np.array([x[m] for x in fa]) - np.array(other)
            mean, lo, hi = _nb(d, n_train, n_test)
            # the difference of two [0, 1] scores: the same corrected t on the Fisher-z scale, inside [-1, 1]
            ms = mean * (n_train + n_test) / (n_train + n_test + 1)
            zh = (hi - mean) / (1 - ms * ms)
            lo, hi = min(math.tanh(math.atanh(ms) - zh), mean), max(math.tanh(math.atanh(ms) + zh), mean)
            tt = d.mean() / math.sqrt((1 / 6 + n_test / n_train) * np.var(d, ddof=1))
            c = comps[(a, b, "cv", m)]
            assert abs(c["mean_diff"] - mean) < 1e-9 and abs(c["ci_low"] - lo) < 1e-9
            assert abs(c["ci_high"] - hi) < 1e-9 and abs(c["p_value"] - 2 * t_dist.sf(abs(tt), 5)) < 1e-9
            assert c["in_family"] == (m == "roc_auc")
            if m == "roc_auc":
                raw[(a, b)] = c["p_value"]
            else:
                assert c["p_holm"] is None
    order = sorted(raw, key=raw.get)  # Holm by hand
    running = 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (5 - i) * raw[key]))
        assert abs(comps[(*key, "cv", "roc_auc")]["p_holm"] - running) < 1e-12
    assert ("resnet18", "chance", "cv", "accuracy") not in comps  # the random chance model is a baseline row only
    # the ceiling: a fixed number and the exact range of a realised Bayes-rule accuracy (all q = 0.85: binomial)
    ceil = {c["protocol"]: c for c in data["ceiling"]}
    assert abs(ceil["cv"]["mean"] - 0.85) < 1e-12 and "ci_low" not in ceil["cv"]
    assert ceil["cv"]["range_low"] == binom.ppf(0.025, 40, 0.85) / 40
    assert ceil["cv"]["range_high"] == binom.ppf(0.975, 40, 0.85) / 40
    assert ceil["cv"]["realised"] == 0.9  # the Bayes rule says 1, 0, 1, 0, ...; the last four labels are swapped
    assert data["missing_folds"] == [] and data["n_jobs_planned"] == data["n_jobs_finished"] == 28
    ss = {s["arch"]: s for s in data["seed_split"]}
    assert ss["resnet18"]["partner_in_train"] == 13 and ss["resnet18"]["n_test"] == 20
    verdict = " ".join(data["verdict"])
    assert "Primary metric: ROC-AUC" in verdict and "Holm-adjusted" in verdict and "family of 5" in verdict
    assert "best model" not in verdict.lower()


def test_markdown_has_tables_and_header(main_report):
    _, paths = main_report
    md = paths["md"].read_text()
    assert "## Table 2" in md and "## Table 3" in md and "## Paired comparisons" in md
    assert "| Model | Protocol | Folds | Accuracy | Precision | Recall | F1 | ROC-AUC |" in md
    assert "| ResNet18 | cv | 6 |" in md and "| Noise ceiling (Bayes) | cv | — | 0.850 (fixed); realised" in md
    assert "| negative | EfficientNet-B0 | cv |" in md
    assert "| ResNet18 − chance level (0.500) | cv | ROC-AUC | primary (Holm family) | 6 |" in md
    assert "| ResNet18 − chance level (0.500) | cv | Accuracy | secondary (unadjusted) | 6 |" in md
    assert "logit scale" in md and "Primary metric: ROC-AUC" in md
    assert "`fake40` — 40 outfits, 20 positive / 20 negative (50% positive)" in md and "deadbeef" in md
    assert "WARNING: random-init weights were used for EfficientNet-B0" in md
    assert "60/20 split" in md and "Wilson 95% (images independent)" in md and "Partner in train" in md
    assert "Interval coverage: not measured" in md  # no coverage run in this store
    assert "![" in md and (paths["md"].parent / "roc.png").is_file()


def test_html_is_self_contained(main_report):
    report, paths = main_report
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == len(report.figures) == 3
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page


def test_report_logged_on_parent_and_summaries_written(store, main_report):
    client = store["client"]
    logged = {Path(f.path).name for f in client.list_artifacts(store["main"], "report")}
    assert {"report.md", "report.html", "report.json", "roc.png", "forest.png", "folds.png"} <= logged
    summaries = _summary_runs(client, store["main"])
    assert sorted(summaries) == sorted((a, p) for a in ARCHS for p in ("cv", "seed_split"))
    run = client.get_run(summaries[("resnet18", "cv")][0])
    data = json.loads(main_report[1]["json"].read_text())
    g = _one(data["groups"], arch="resnet18", protocol="cv", metric="accuracy")
    assert run.data.metrics["accuracy_ci_low"] == pytest.approx(g["ci_low"], abs=1e-12)
    assert run.data.metrics["n_folds"] == 6 and run.data.params["input_mode"] == "pair"
    assert run.data.tags["neipalette.role"] == "summary" and run.info.status == "FINISHED"
    seed = client.get_run(summaries[("chance", "seed_split")][0]).data.metrics
    assert "accuracy_ci_low" in seed and "roc_auc_ci_high" in seed and "f1_mean" in seed and "f1_ci_low" not in seed


def _summary_runs(client, parent):
    out = {}
    for r in _children(client, parent, "summary"):
        out.setdefault((r.data.tags["neipalette.arch"], r.data.tags["neipalette.protocol"]), []).append(r.info.run_id)
    return out


def test_existing_summary_is_kept(store, tmp_path):
    before = _summary_runs(store["client"], store["old"])
    assert list(before) == [("resnet18", "cv")]
    report, _ = generate(store["old"], out_dir=tmp_path, tracking_uri=store["uri"])
    after = _summary_runs(store["client"], store["old"])
    assert after[("resnet18", "cv")] == before[("resnet18", "cv")]  # not duplicated
    assert len(after) == 8
    assert {(s["arch"], s["protocol"]) for s in report.summary_runs_written} == set(after) - set(before)
    # the bootstrap uses the benchmark's seed (1 here), as the runner's summary runs do
    assert report.boot_seed == 1
    run = store["client"].get_run(after[("resnet18", "seed_split")][0])
    g = _one(report.groups, arch="resnet18", protocol="seed_split", metric="roc_auc")
    assert run.data.metrics["roc_auc_ci_low"] == g["ci_low"] and run.data.metrics["roc_auc_ci_high"] == g["ci_high"]


def test_unfinished_parent_lists_missing_folds(store, tmp_path):
    report, paths = generate(store["running"], out_dir=tmp_path, tracking_uri=store["uri"])
    data = json.loads(paths["json"].read_text())
    missing = {(m["arch"], m["protocol"], m["repeat"], m["fold"]): m for m in data["missing_folds"]}
    assert set(missing) == {("efficientnet_b0", "cv", 1, 2), ("efficientnet_b0", "seed_split", 0, 0),
                            ("chance", "cv", 0, 1)}
    assert missing[("efficientnet_b0", "cv", 1, 2)]["status"] == "NOT STARTED"
    assert missing[("chance", "cv", 0, 1)]["status"] == "FAILED"
    assert missing[("chance", "cv", 0, 1)]["error"] == "RuntimeError: CUDA out of memory"
    assert data["header"]["status"] == "RUNNING" and data["n_jobs_finished"] == 25
    empty = _one(data["groups"], arch="efficientnet_b0", protocol="seed_split", metric="accuracy")
    assert empty["n_folds"] == 0 and empty["ci_low"] is None
    assert empty["note"] == "needs at least 2 finished folds (has 0)"
    # the paired comparison uses only folds both models finished
    c = _one(data["comparisons"], a="resnet18", b="efficientnet_b0", protocol="cv", metric="accuracy")
    assert c["n_folds"] == 5
    md = paths["md"].read_text()
    assert "## Missing folds" in md and "| EfficientNet-B0 | cv | 1 | 2 | NOT STARTED |" in md
    assert "Incomplete benchmark: 3 of 28" in md
    # summary runs only for groups whose planned jobs all finished
    assert sorted(_summary_runs(store["client"], store["running"])) == sorted(
        [("resnet18", "cv"), ("resnet18", "seed_split"), ("chance", "seed_split"), ("colour_stats", "cv"),
         ("colour_stats", "seed_split")])


def test_cli_errors_are_one_line_exit_2(store, tmp_path):
    runner = CliRunner()
    env = {"MLFLOW_TRACKING_URI": store["uri"]}
    for args in (["--run-id", "0123456789abcdef"], ["--experiment", "nope"], ["--run-id", _a_fold_run(store)]):
        res = runner.invoke(main, [*args, "--out", str(tmp_path / "x")], env=env)
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    missing_db = tmp_path / "none" / "mlflow.db"
    res = runner.invoke(main, ["--out", str(tmp_path / "y")], env={"MLFLOW_TRACKING_URI": f"sqlite:///{missing_db}"})
    assert res.exit_code == 2 and "no MLflow store" in res.stderr and not missing_db.exists()


def _a_fold_run(store):
    return next(iter(_finished_folds(store["client"], store["main"]).values()))["run_id"]


def test_cli_prints_format_and_writes_files(store, tmp_path):
    res = CliRunner().invoke(main, ["--run-id", store["main"], "--out", str(tmp_path), "--format", "json", "--no-log"],
                             env={"MLFLOW_TRACKING_URI": store["uri"]})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["run_id"] == store["main"]
    assert {p.name for p in tmp_path.iterdir()} >= {"report.md", "report.html", "report.json"}


def test_figures_are_png():
    rng = np.random.default_rng(0)
    curves = []
    for _ in range(3):
        y = rng.integers(0, 2, 20)
        curves.append(pd.DataFrame(roc_points(y, rng.uniform(size=20))))
    m = figures.mean_roc(curves)
    assert m.n_curves == 3 and m.tpr_mean[0] == 0 and m.tpr_mean[-1] == pytest.approx(1.0)
    assert figures.roc_figure({"resnet18": curves}).startswith(b"\x89PNG")
    rows = [{"label": "A", "metric": "accuracy", "mean": 0.6, "ci_low": 0.5, "ci_high": 0.7},
            {"label": "A", "metric": "roc_auc", "mean": 0.6, "ci_low": float("nan"), "ci_high": float("nan")}]
    assert figures.forest_figure(rows, ceiling=0.85).startswith(b"\x89PNG")
    folds = pd.DataFrame({"arch": ["a", "a", "b"], "accuracy": [0.5, 0.6, 0.7], "roc_auc": [0.5, 0.4, 0.6]})
    assert figures.fold_scores_figure(folds, order=["a", "b"]).startswith(b"\x89PNG")


def _coverage_table(report_cov, best_cov, model="colour_stats"):
    rows = []
    for metric in ("accuracy", "roc_auc"):
        for method, cov in (("corrected_t", best_cov), ("bounded_logit_t", report_cov)):
            rows.append({"model": model, "metric": metric, "method": method, "coverage": cov, "mc_se": 0.01,
                         "cp_low": cov - 0.03, "cp_high": cov + 0.03, "floor_share": 0.25,
                         "mean_width": 0.3, "below": 0.0, "above": 1 - cov, "truth": 0.8, "mean_estimate": 0.8,
                         "n_datasets": 300})
    return pd.DataFrame(rows)


def test_report_shows_the_latest_coverage_run_for_its_generator(store, tmp_path, monkeypatch):
    from benchmark.coverage import measured
    from benchmark.tracking.coverage import generator_tags, log_coverage_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.setattr(measured, "MEASURED", tmp_path / "none.json")
    tags = generator_tags(GENERATOR["name"], GENERATOR["version"], 40, 3, 2)
    other = generator_tags(GENERATOR["name"], GENERATOR["version"], 400, 3, 2)  # another size: never shown
    log_coverage_run("neipalette", tags=other, params={"n_datasets": 900}, table=_coverage_table(0.5, 0.5),
                     figure_png=figures.coverage_figure(_coverage_table(0.5, 0.5)), summary={})
    rid = log_coverage_run("neipalette", tags=tags, params={"n_datasets": 300, "n_outfits": 40},
                           table=_coverage_table(0.91, 0.95), figure_png=b"png", summary={"x": 1})
    report, paths = generate(store["main"], out_dir=tmp_path, tracking_uri=store["uri"], log=False)
    md = paths["md"].read_text()
    assert report.coverage["run_id"] == rid and report.coverage["min_coverage"] == {"accuracy": 0.91, "roc_auc": 0.91}
    assert f"coverage run `{rid}`" in md and "of 300 generated datasets" in md
    assert "accuracy 0.910 (Clopper-Pearson [0.880, 0.940]), ROC-AUC 0.910" in md
    assert "WARNING: this report's CV intervals (bounded_logit_t) covered only 0.910" in md
    assert "## Measured interval coverage" in md
    assert "| colour_stats | ROC-AUC | bounded_logit_t (used here) | 0.910 ± 0.010 | [0.880, 0.940] |" in md
    # when no method reaches the goal, the header says so with the number
    rid2 = log_coverage_run("neipalette", tags=tags, params={"n_datasets": 250}, table=_coverage_table(0.90, 0.92),
                            figure_png=b"png", summary={})
    report2, paths2 = generate(store["main"], out_dir=tmp_path / "b", tracking_uri=store["uri"], log=False)
    assert report2.coverage["run_id"] == rid2
    assert "WARNING: no interval method reached 93% coverage at nominal 95%" in paths2["md"].read_text()
    assert "corrected_t at 0.920" in paths2["md"].read_text()


@pytest.mark.parametrize("what", ["quick", "few", "model", "shape"])
def test_header_never_quotes_a_quick_small_or_foreign_coverage_run(store, tmp_path, monkeypatch, what):
    """A --quick run, < 200 datasets, models the report did not run or another CV shape: never quoted."""
    from benchmark.coverage import measured
    from benchmark.tracking.coverage import generator_tags, log_coverage_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.setattr(measured, "MEASURED", tmp_path / "none.json")
    tags = generator_tags(GENERATOR["name"], GENERATOR["version"], 40, *((5, 5) if what == "shape" else (3, 2)))
    tags["neipalette.quick"] = str(what == "quick").lower()
    log_coverage_run("neipalette", tags=tags, params={"n_datasets": 150 if what == "few" else 300},
                     table=_coverage_table(0.95, 0.95, model="ou_luo" if what == "model" else "colour_stats"),
                     figure_png=b"png", summary={})
    report, paths = generate(store["main"], out_dir=tmp_path, tracking_uri=store["uri"], log=False)
    md = paths["md"].read_text()
    assert report.coverage["found"] is False and "## Measured interval coverage" not in md
    assert "Interval coverage: not measured" in md
    expected = {"quick": "--quick run", "few": "150 datasets (fewer than 200)",
                "model": "none of this report's models", "shape": None}[what]
    if expected:
        assert expected in md


def test_header_quotes_the_shipped_table(store, tmp_path, monkeypatch):
    from benchmark.coverage import measured

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    settings = {"n_datasets": 800, "n_outfits": 40, "n_splits": 3, "n_repeats": 2, "generator": GENERATOR["name"],
                "generator_version": GENERATOR["version"], "estimand": "E[score] with the panel fixed",
                "pool_outfits": 10000, "cnn": None}
    # difference rows (a − b on the same folds) are listed after the mean rows; the header quotes only the means
    diff = _coverage_table(0.5, 0.5, model="colour_stats-chance").assign(
        method=lambda t: t["method"].replace({"bounded_logit_t": "bounded_fisher_z_t"}), kind="difference",
        model_a="colour_stats", model_b="chance", floor_share=float("nan"))
    unran = diff.assign(model="colour_stats-ou_luo", model_b="ou_luo")  # ou_luo is not in this report
    rows = pd.concat([_coverage_table(0.95, 0.94).assign(kind="mean"), diff, unran]).to_dict("records")
    summary = {"settings": settings, "seconds": 600.0, "coverage": rows}
    measured.ship(summary, commit="abc1234def", quick=False, cpu_seconds=900.0, path=tmp_path / "m.json")
    monkeypatch.setattr(measured, "MEASURED", tmp_path / "m.json")
    report, paths = generate(store["main"], out_dir=tmp_path / "r", tracking_uri=store["uri"], log=False)
    md = paths["md"].read_text()
    assert report.coverage["found"] and report.coverage["commit"] == "abc1234def"
    assert "m.json (commit abc1234def), shipped" in md and "E[score] with the panel fixed" in md
    assert report.coverage["min_coverage"] == {"accuracy": 0.95, "roc_auc": 0.95}
    assert "best worst-case" not in md and "(worst of colour_stats)" in md
    table = md[md.index("## Measured interval coverage"):]
    assert "| colour_stats − chance | ROC-AUC | bounded_fisher_z_t (used here) | 0.500 ± 0.010 |" in table
    assert table.index("| colour_stats | ") < table.index("| colour_stats − chance | ") and "ou_luo" not in table
    # the same file as a quick run is refused, and the header says why
    measured.ship(summary, commit="abc1234def", quick=True, cpu_seconds=9.0, path=tmp_path / "m.json")
    report, paths = generate(store["main"], out_dir=tmp_path / "q", tracking_uri=store["uri"], log=False)
    assert not report.coverage["found"] and "it is a --quick run" in paths["md"].read_text()


def test_seed_split_shows_its_test_set_class_balance(main_report):
    """The single split's test set can be lopsided (2 positives in 20 images); its sentence and table say so."""
    report, paths = main_report
    entry = _one(report.as_json()["seed_split"], arch="resnet18")
    assert (entry["n_test_positive"], entry["n_test_positive_outfits"]) == (10, 5)  # [1, 0] * 5, two images each
    sentence = next(s for s in report.verdict if s.startswith("ResNet18 on the single 60/20 split"))
    assert "20 test images from 10 outfits; 10 positive / 10 negative, 5 of 10 outfits positive;" in sentence
    md = paths["md"].read_text()
    assert "| Test balance |" in md and "| 10 positive / 10 negative, 5 of 10 outfits positive |" in md


def test_test_balance_from_predictions():
    from benchmark.report.format import _balance
    from benchmark.report.model import _test_balance

    preds = pd.DataFrame({"outfit_id": [f"o{i // 2}" for i in range(20)], "label": [1, 1] + [0] * 18})
    balance = _test_balance(preds)
    assert balance == {"n_test_positive": 2, "n_test_positive_outfits": 1}
    assert _balance({**balance, "n_test": 20, "n_test_outfits": 10}) == \
        "2 positive / 18 negative, 1 of 10 outfits positive"
    assert _test_balance(None) == {"n_test_positive": None, "n_test_positive_outfits": None}
    assert _balance(_test_balance(None)) == ""


def test_rater_ceiling_is_drawn_tabled_and_its_agreement_in_the_header(tmp_path, monkeypatch):
    """No truth.csv, labels from raters: the raters' ceiling estimate is a Table 2 row and the forest plot's
    dashed line (its interval shaded), and the header gives Fleiss' κ and Krippendorff's α with intervals."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = write_fake_benchmark(uri, artifact_root=tmp_path / "artifacts", archs=("resnet18", "chance"),
                                  n_repeats=1, rated=True)
    drawn = {}
    forest = figures.forest_figure
    monkeypatch.setattr(figures, "forest_figure", lambda rows, **kw: drawn.update(kw) or forest(rows, **kw))
    report, paths = generate(parent, "neipalette", tmp_path / "out", tracking_uri=uri, log=False)
    assert report.ceiling == [] and report.rater_ceiling["estimate"] == 0.81
    assert drawn["ceiling"] == 0.81 and drawn["ceiling_interval"] == (0.72, 0.9)
    md = paths["md"].read_text()
    assert "| Noise ceiling (raters' estimate) | cv | — | 0.810 [0.720, 0.900] | — |" in md
    assert ("Rater agreement over 120 votes of 3 raters (agreement.json): Fleiss' κ 0.410 [0.220, 0.580], "
            "Krippendorff's α (nominal) 0.420 [0.230, 0.590]") in md
    assert report.as_json()["rater_ceiling"]["ci_high"] == 0.9
