"""End to end: `benchmark.run` on a tiny generated dataset writes the MLflow layout of docs/mlflow-layout.md.

Each test has its own MLflow store (sqlite in tmp_path) and working directory, so the default artifact
folder and the Optuna journal land in tmp_path too.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import make_tiny_dataset
from tests.helpers import all_runs, mlflow_client

REPO = Path(__file__).resolve().parents[2]

FOLD_PARAMS = ("arch", "protocol", "input_mode", "repeat", "fold", "learning_rate", "epochs", "n_train", "n_test",
               "seed")
FOLD_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "precision_negative", "recall_negative",
                "f1_negative", "ceiling_accuracy")
BASELINES = ("chance", "colour_stats", "ou_luo")

# 12 outfits = 24 images; cv 2x1 (6 outfits per test fold) + seed_split with 8 test images
TINY = {
    "seed": 0,
    "archs": ["resnet18"],
    "baselines": ["chance", "colour_stats", "ou_luo"],
    "protocols": ["cv", "seed_split"],
    "n_splits": 2,
    "n_repeats": 1,
    "input_mode": "pair",
    "seed_split_test_images": 8,
    "model": {"weights": "none", "image_size": 32, "n_views": 2, "batch_size": 8},
    "tuning": {"n_trials": 2, "inner_folds": 2, "epochs_min": 2, "epochs_max": 5},
    "log_models": False,
    "final_models": False,
}


# -- helpers ------------------------------------------------------------------------------------------------
def _dataset(tmp_path: Path, n_outfits: int = 12) -> Path:
    root = tmp_path / "data"
    if not (root / "outfits.csv").exists():
        make_tiny_dataset(root, n_outfits, size=32, seed=0, with_truth=True)
    return root


def _config(tmp_path: Path, name: str = "tiny", **changes) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg["dataset"] = str(_dataset(tmp_path))
    for key, value in changes.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _invoke(config: Path, *args: str):
    from benchmark.run import main

    return CliRunner().invoke(main, ["--config", str(config), "-q", *args])


def _explain(result) -> str:
    import traceback

    tb = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
    return f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{tb}"


def _role(runs, role: str) -> list:
    return [r for r in runs if r.data.tags.get("neipalette.role") == role]


def _planned_keys(config: Path) -> set[str]:
    from benchmark.config import load_config
    from benchmark.protocols import all_splits, plan_jobs
    from neipalette.data.dataset import load_dataset

    cfg = load_config(config)
    return {j.key for j in plan_jobs(cfg, all_splits(load_dataset(cfg.dataset), cfg))}


def _fold_index(runs) -> dict[str, list]:
    out = defaultdict(list)
    for r in _role(runs, "fold"):
        out[r.data.tags["neipalette.job_key"]].append(r)
    return out


def _assert_exactly_once(runs, keys: set[str], others: set[str] = frozenset()) -> dict[str, object]:
    """Every job in `keys` has exactly one FINISHED fold run (no fold runs beyond `keys | others`)."""
    folds = _fold_index(runs)
    assert not set(folds) - keys - others, f"fold runs for unplanned jobs: {set(folds) - keys - others}"
    out = {}
    for key in keys:
        finished = [r for r in folds.get(key, []) if r.info.status == "FINISHED"]
        assert len(finished) == 1, f"{key}: {len(finished)} FINISHED fold runs"
        out[key] = finished[0]
    return out


def _nothing_running(uri: str) -> None:
    running = [(r.info.run_id, r.data.tags.get("neipalette.role")) for r in all_runs(uri, None)
               if r.info.status == "RUNNING"]
    assert not running, f"runs left RUNNING: {running}"


def _test_frame(data: Path, predictions: pd.DataFrame, input_mode: str) -> pd.DataFrame:
    """The fold's test items as the pyfunc model's input: image paths from outfits.csv."""
    outfits = pd.read_csv(data / "outfits.csv", dtype=str).set_index("outfit_id")
    if input_mode == "single":
        paths = []
        for sid in predictions["sample_id"]:
            oid, part = sid.split("/")
            paths.append(str(data / outfits.loc[oid, part]))
        return pd.DataFrame({"image": paths, "sample_id": list(predictions["sample_id"])})
    return pd.DataFrame({"top": [str(data / outfits.loc[o, "top"]) for o in predictions["outfit_id"]],
                         "bottom": [str(data / outfits.loc[o, "bottom"]) for o in predictions["outfit_id"]],
                         "sample_id": list(predictions["sample_id"])})


# -- the full layout -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_benchmark_writes_the_mlflow_layout(tmp_path, store):
    import mlflow

    from benchmark.config import load_config
    from neipalette.data.dataset import load_dataset

    config = _config(tmp_path, log_models=True, final_models=True)
    data = _dataset(tmp_path)
    result = _invoke(config)
    assert result.exit_code == 0, _explain(result)

    client = mlflow_client(store)
    runs = all_runs(store)
    keys = _planned_keys(config)
    assert len(keys) == 2 * 4 + 3  # cv: resnet18 + 3 baselines; seed_split: no ou_luo
    assert not any(k.startswith("ou_luo|seed_split") for k in keys)

    # parent
    parents = _role(runs, "parent")
    assert len(parents) == 1
    parent = parents[0]
    pid = parent.info.run_id
    assert f"parent run {pid}" in result.stdout
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    ds = load_dataset(data)
    assert tags["neipalette.dataset_hash"] == ds.content_hash()
    assert tags["neipalette.git_commit"]
    assert tags["neipalette.weights.resnet18"].startswith("none")
    assert tags["neipalette.config_hash"] == load_config(config).result_hash()
    assert tags["neipalette.n_jobs"] == str(len(keys))
    assert tags["mlflow.runName"] == "tiny benchmark"
    assert parent.data.params["n_splits"] == "2" and parent.data.params["seed"] == "0"
    artifacts = {a.path for a in client.list_artifacts(pid)}
    assert {"config.yaml", "dataset.json", "jobs.json"} <= artifacts
    pdir = tmp_path / "parent_artifacts"
    pdir.mkdir()
    resolved = yaml.safe_load(Path(client.download_artifacts(pid, "config.yaml", str(pdir))).read_text())
    assert resolved["archs"] == ["resnet18"] and resolved["n_splits"] == 2
    info = json.loads(Path(client.download_artifacts(pid, "dataset.json", str(pdir))).read_text())
    assert info["n_outfits"] == 12 and info["n_positive"] == 6 and info["n_negative"] == 6
    assert info["hash"] == ds.content_hash() and info["has_truth"] is True
    assert tags["neipalette.split_grouping"] == "outfit" and info["n_groups"] == 12
    assert info["split_grouping"].startswith("grouped by outfit (no `group` column)")
    jobs = json.loads(Path(client.download_artifacts(pid, "jobs.json", str(pdir))).read_text())
    assert {f"{j['arch']}|{j['protocol']}|{j['repeat']}|{j['fold']}" for j in jobs} == keys
    # lineage: the dataset as an MLflow input, the commit in MLflow's own tag, the machine
    (inp,) = parent.inputs.dataset_inputs
    assert (inp.dataset.name, inp.dataset.digest) == ("data", ds.content_hash())
    assert json.loads(inp.dataset.source) == {"uri": str(data.resolve())}
    schema = [c["name"] for c in json.loads(inp.dataset.schema)["mlflow_colspec"]]
    assert schema == ["outfit_id", "top", "bottom", "label"]
    assert json.loads(inp.dataset.profile)["num_rows"] == 12
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "benchmark"
    commit = tags["mlflow.source.git.commit"]  # this checkout's commit when the run started (HEAD may move since)
    assert len(commit) == 40 and tags["neipalette.git_commit"].startswith(commit)
    assert subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=REPO).returncode == 0
    assert tags["neipalette.git_dirty"] in ("true", "false")
    for key in ("python", "torch", "numpy", "cpu", "torch_threads"):
        assert tags[f"neipalette.env.{key}"], key

    # fold runs
    finished = _assert_exactly_once(runs, keys)
    models = defaultdict(list)  # MLflow 3: logged models are entities linked to their source run
    for lm in client.search_logged_models([parent.info.experiment_id], max_results=1000):
        models[lm.source_run_id].append(lm.name)
    loaded_once: set[tuple[str, str]] = set()
    for key, run in finished.items():
        arch, protocol, repeat, fold = key.split("|")
        rid = run.info.run_id
        assert run.data.tags["mlflow.parentRunId"] == pid
        assert run.data.tags["neipalette.arch"] == arch and run.data.tags["neipalette.protocol"] == protocol
        # the part that tells sibling runs apart first; Created by and Source as mlflow.start_run sets them
        assert run.info.run_name == f"r{repeat}f{fold} {arch} {protocol}"
        assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.name"]
        params = run.data.params
        assert set(FOLD_PARAMS) <= set(params), f"{key}: missing {set(FOLD_PARAMS) - set(params)}"
        assert (params["arch"], params["protocol"], params["repeat"], params["fold"]) == (arch, protocol, repeat, fold)
        mode = "single" if protocol == "seed_split" else "pair"
        assert params["input_mode"] == mode
        if protocol == "cv":
            assert (params["n_train"], params["n_test"]) == ("6", "6")
        else:
            assert (params["n_train"], params["n_test"]) == ("16", "8")
        if arch in BASELINES:
            assert params["learning_rate"] == "n/a" and params["epochs"] == "n/a"
        else:
            assert 1e-4 <= float(params["learning_rate"]) <= 1e-1
            assert 2 <= int(params["epochs"]) <= 5
        metrics = run.data.metrics
        assert set(FOLD_METRICS) <= set(metrics), f"{key}: missing {set(FOLD_METRICS) - set(metrics)}"
        assert 0.0 <= metrics["accuracy"] <= 1.0
        assert metrics["ceiling_accuracy"] == pytest.approx(0.8)
        if protocol == "seed_split":
            assert metrics["n_test_images"] == 8
            assert 0 <= metrics["partner_in_train"] <= 8
        art = {a.path for a in client.list_artifacts(rid)}
        assert {"roc.png", "roc.csv", "predictions.csv"} <= art, f"{key}: artifacts {art}"
        assert models[rid] == ["model"], f"{key}: logged models {models[rid]}"
        fdir = tmp_path / "folds" / rid
        fdir.mkdir(parents=True)
        roc = pd.read_csv(client.download_artifacts(rid, "roc.csv", str(fdir)))
        assert list(roc.columns) == ["fpr", "tpr", "threshold"]
        pred = pd.read_csv(client.download_artifacts(rid, "predictions.csv", str(fdir)))
        assert list(pred.columns) == ["sample_id", "outfit_id", "label", "p_positive", "pred"]
        assert len(pred) == int(params["n_test"])
        assert metrics["accuracy"] == pytest.approx(float(np.mean(pred["pred"] == pred["label"])))
        assert Path(client.download_artifacts(rid, "roc.png", str(fdir))).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # the fold's train and test parts as datasets derived from the parent's
        contexts = {{t.key: t.value for t in i.tags}["mlflow.data.context"]: i.dataset for i in run.inputs.dataset_inputs}
        assert set(contexts) == {"train", "test"} and run.data.tags["neipalette.dataset_digest"] == ds.content_hash()
        assert contexts["train"].digest != contexts["test"].digest
        n_test_outfits = len(set(pred["outfit_id"]))
        assert json.loads(contexts["test"].profile)["num_rows"] == n_test_outfits
        if arch not in BASELINES:  # tuned: the study's trials and its history are on the run
            assert {"trials.csv", "optimization_history.png"} <= art, f"{key}: artifacts {art}"
            trials = pd.read_csv(client.download_artifacts(rid, "trials.csv", str(fdir)))
            assert list(trials["number"]) == [0, 1]
            assert {"state", "learning_rate", "epochs", "value", "inner_score_0", "inner_score_1", "duration_s",
                    "best"} <= set(trials.columns)
            best = trials[trials["best"]].iloc[0]
            assert float(params["learning_rate"]) == pytest.approx(best["learning_rate"])
            assert best["value"] == pytest.approx(best[["inner_score_0", "inner_score_1"]].mean())
            assert run.data.tags["neipalette.study_name"] == f"{pid}:{key}"
            # the chosen trial's inner curve and the refit's training loss, step = epoch (issue 24)
            curve = json.loads(best["curve"])
            inner = client.get_metric_history(rid, "inner_roc_auc")
            assert [m.step for m in inner] == list(range(1, len(curve) + 1))
            assert [m.value for m in inner] == pytest.approx(curve)
            loss = client.get_metric_history(rid, "train_loss")
            assert [m.step for m in loss] == list(range(1, int(params["epochs"]) + 1))
            assert all(math.isfinite(m.value) and m.value > 0 for m in loss)
        else:
            assert "trials.csv" not in art and "neipalette.study_name" not in run.data.tags
            assert "train_loss" not in run.data.metrics and "inner_roc_auc" not in run.data.metrics
        # the logged model reproduces the fold's predictions (one model per (arch, protocol) is loaded)
        if (arch, protocol) in loaded_once:
            continue
        loaded_once.add((arch, protocol))
        model = mlflow.pyfunc.load_model(f"runs:/{rid}/model")
        p = np.asarray(model.predict(_test_frame(data, pred, mode)), dtype=np.float64).ravel()
        assert p.shape == (len(pred),) and np.all((p >= 0) & (p <= 1)), key
        np.testing.assert_allclose(p, pred["p_positive"].to_numpy(), atol=1e-6, err_msg=key)
    assert len(loaded_once) == 7

    # summary runs: one per (arch, protocol)
    summaries = _role(runs, "summary")
    groups = Counter((r.data.tags["neipalette.arch"], r.data.tags["neipalette.protocol"]) for r in summaries)
    assert groups == Counter({tuple(k.split("|")[:2]): 1 for k in keys})
    for s in summaries:
        arch, protocol = s.data.tags["neipalette.arch"], s.data.tags["neipalette.protocol"]
        assert s.info.status == "FINISHED" and s.data.tags["mlflow.parentRunId"] == pid
        assert s.data.params["arch"] == arch and s.data.params["protocol"] == protocol
        assert s.info.run_name == f"Σ {arch} {protocol}" and s.data.tags["neipalette.primary_metric"] == "roc_auc"
        # metrics: means, the bounds of the headline metrics and the ceiling; every value in summary.json
        assert not {k for k in s.data.metrics if k.endswith(("_ci_low", "_ci_high"))} - {
            f"{m}{b}" for m in ("roc_auc", "accuracy", "ceiling_accuracy") for b in ("_ci_low", "_ci_high")}
        sdir = tmp_path / "summaries" / s.info.run_id
        sdir.mkdir(parents=True)
        m = json.loads(Path(client.download_artifacts(s.info.run_id, "summary.json", str(sdir))).read_text())
        assert all(m[k] == pytest.approx(v) for k, v in s.data.metrics.items())
        folds = [r for k, r in finished.items() if k.startswith(f"{arch}|{protocol}|")]
        assert m["n_folds"] == len(folds) == (2 if protocol == "cv" else 1)
        for name in FOLD_METRICS:
            values = [r.data.metrics[name] for r in folds]
            if not all(math.isfinite(v) for v in values):
                continue
            assert m[f"{name}_mean"] == pytest.approx(float(np.mean(values))), (arch, protocol, name)
            if protocol == "cv" or name in ("accuracy", "roc_auc"):
                assert m[f"{name}_ci_low"] <= m[f"{name}_mean"] + 1e-12 <= m[f"{name}_ci_high"] + 2e-12, \
                    (arch, protocol, name)
        assert {"accuracy_mean", "accuracy_ci_low", "accuracy_ci_high"} <= set(m)
        # the CV headline on the parent run (issue 24): the experiment list sorts and charts by it
        if protocol == "cv":
            headline = client.get_run(pid).data.metrics
            for name in ("roc_auc", "accuracy"):
                for suffix in ("", "_ci_low", "_ci_high"):
                    want = m.get(f"{name}_mean" if not suffix else f"{name}{suffix}")
                    if want is not None:
                        assert headline[f"{arch}.{name}{suffix}"] == pytest.approx(want), (arch, name, suffix)

    # final model per architecture: scores a (top, bottom) pair given as files
    finals = _role(runs, "final")
    assert [r.data.tags["neipalette.arch"] for r in finals] == ["resnet18"]
    final = finals[0]
    assert models[final.info.run_id] == ["model"]
    assert final.info.status == "FINISHED" and final.data.tags["mlflow.parentRunId"] == pid
    assert final.data.params["arch"] == "resnet18" and final.data.params["n_train"] == "12"
    cv_lrs = [float(r.data.params["learning_rate"]) for k, r in finished.items() if k.startswith("resnet18|cv")]
    assert min(cv_lrs) - 1e-12 <= float(final.data.params["learning_rate"]) <= max(cv_lrs) + 1e-12
    final_model = mlflow.pyfunc.load_model(f"runs:/{final.info.run_id}/model")
    pair = pd.DataFrame({"top": [str(data / "images" / "o000_top.png"), str(data / "images" / "o001_top.png")],
                         "bottom": [str(data / "images" / "o000_bottom.png"), str(data / "images" / "o001_bottom.png")]})
    p = np.asarray(final_model.predict(pair), dtype=np.float64).ravel()
    assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))
    # registered: neipalette-resnet18, alias = the benchmark (config) name, the same model
    version = client.get_model_version_by_alias("neipalette-resnet18", "tiny")
    assert version.run_id == final.info.run_id and version.tags["neipalette.parent_run_id"] == pid
    assert final.info.run_name == "final resnet18"
    # its model card: weights provenance, the primary metric and its CV mean as tags, the numbers in markdown
    headline = client.get_run(pid).data.metrics
    assert version.tags["weights"] == "random-init" and version.tags["primary_metric"] == "roc_auc"
    assert float(version.tags["cv_roc_auc"]) == pytest.approx(headline["resnet18.roc_auc"], abs=1e-4)
    card = version.description
    assert "Random initialisation" in card and f"{headline['resnet18.roc_auc']:.3f}" in card
    assert f"[{headline['resnet18.roc_auc_ci_low']:.3f}, {headline['resnet18.roc_auc_ci_high']:.3f}]" in card
    assert f"{headline['ceiling_accuracy']:.3f}" in card and "2×1 repeated stratified k-fold" in card
    # the only model of this benchmark is its champion
    assert client.get_model_version_by_alias("neipalette-resnet18", "champion").version == version.version
    # the input example ships with the model and predicts where the model is
    info = mlflow.models.get_model_info("models:/neipalette-resnet18@tiny")
    assert info.metadata["weights"] == "random-init"
    loaded = mlflow.pyfunc.load_model("models:/neipalette-resnet18@tiny")
    assert loaded.input_example is not None and list(loaded.input_example.columns[:2]) == ["top", "bottom"]
    p_example = np.asarray(loaded.predict(loaded.input_example), dtype=np.float64).ravel()
    assert p_example.shape == (1,) and 0 <= p_example[0] <= 1
    assert final.data.tags["neipalette.registered_model"] == "models:/neipalette-resnet18@tiny"
    for uri in ("models:/neipalette-resnet18@tiny", "models:/neipalette-resnet18/latest"):
        np.testing.assert_allclose(np.asarray(mlflow.pyfunc.load_model(uri).predict(pair), dtype=np.float64).ravel(),
                                   p, atol=1e-7, err_msg=uri)
    assert {i.dataset.digest for i in final.inputs.dataset_inputs} == {ds.content_hash()}

    _nothing_running(store)


# -- reproducibility ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_same_config_in_two_fresh_stores_gives_identical_fold_metrics(tmp_path, monkeypatch):
    config = _config(tmp_path, baselines=["colour_stats"], protocols=["cv", "seed_split"])
    metrics = []
    for i in (1, 2):
        where = tmp_path / f"store{i}"
        where.mkdir()
        uri = f"sqlite:///{where}/mlflow.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("NEIPALETTE_CACHE", str(where / "cache"))  # no shared embedding cache either
        monkeypatch.chdir(where)
        result = _invoke(config)
        assert result.exit_code == 0, _explain(result)
        finished = _assert_exactly_once(all_runs(uri), _planned_keys(config))
        metrics.append({k: (dict(r.data.metrics), {p: r.data.params[p] for p in FOLD_PARAMS})
                        for k, r in finished.items()})
    assert metrics[0].keys() == metrics[1].keys()
    for key in metrics[0]:
        m1, p1 = metrics[0][key]
        m2, p2 = metrics[1][key]
        assert p1 == p2, key
        assert m1.keys() == m2.keys(), key
        for name in m1:
            assert m1[name] == m2[name] or (math.isnan(m1[name]) and math.isnan(m2[name])), (key, name)


# -- resume after a crash ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_after_interrupt_and_stale_run(tmp_path, store, monkeypatch):
    import benchmark.runner as runner

    config = _config(tmp_path, baselines=["chance", "colour_stats"], protocols=["cv"])
    keys = _planned_keys(config)
    assert len(keys) == 6
    real_run_fold = runner.run_fold
    calls: list[str] = []

    def crashing(job, *args, **kwargs):
        calls.append(job.key)
        if len(calls) == 4:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return real_run_fold(job, *args, **kwargs)

    monkeypatch.setattr(runner, "run_fold", crashing)
    result = _invoke(config)
    assert result.exit_code == 130, _explain(result)
    assert "--resume" in result.stderr

    runs = all_runs(store)
    parent = _role(runs, "parent")[0]
    assert parent.info.status in ("KILLED", "FAILED")
    folds = _fold_index(runs)
    crashed_key = calls[3]
    assert [r.info.status for r in folds[crashed_key]] in (["KILLED"], ["FAILED"])
    done_before = {k: rs[0].info.run_id for k, rs in folds.items() if rs[0].info.status == "FINISHED"}
    assert set(done_before) == set(calls[:3])
    _nothing_running(store)

    # a fold run left RUNNING by a kill -9 (for a job that has not finished)
    pending = sorted(keys - set(done_before) - {crashed_key})
    client = mlflow_client(store)
    stale = client.create_run(
        parent.info.experiment_id,
        tags={"mlflow.parentRunId": parent.info.run_id, "neipalette.role": "fold",
              "neipalette.job_key": pending[0], "neipalette.arch": pending[0].split("|")[0],
              "neipalette.protocol": "cv"}).info.run_id
    assert client.get_run(stale).info.status == "RUNNING"

    calls.clear()
    monkeypatch.setattr(runner, "run_fold", lambda job, *a, **kw: (calls.append(job.key), real_run_fold(job, *a, **kw))[1])
    result = _invoke(config, "--resume")
    assert result.exit_code == 0, _explain(result)
    assert sorted(calls) == sorted(keys - set(done_before)), "finished jobs must not be rerun"

    runs = all_runs(store)
    assert len(_role(runs, "parent")) == 1, "resume must continue the same parent run"
    assert _role(runs, "parent")[0].info.status == "FINISHED"
    finished = _assert_exactly_once(runs, keys)
    for key, rid in done_before.items():
        assert finished[key].info.run_id == rid
        assert len(_fold_index(runs)[key]) == 1
    assert client.get_run(stale).info.status == "KILLED"
    assert len(_role(runs, "summary")) == 3
    _nothing_running(store)


# -- one failing fold --------------------------------------------------------------------------------------
def test_failing_fold_is_recorded_and_others_finish(tmp_path, store, monkeypatch):
    import benchmark.runner as runner

    config = _config(tmp_path, archs=[], baselines=["chance", "colour_stats"], protocols=["cv"])
    keys = _planned_keys(config)
    bad = "colour_stats|cv|0|0"
    assert bad in keys
    real_run_fold = runner.run_fold

    def failing(job, *args, **kwargs):
        if job.key == bad:
            raise ValueError("simulated failure\nsecond line")
        return real_run_fold(job, *args, **kwargs)

    monkeypatch.setattr(runner, "run_fold", failing)
    result = _invoke(config)
    assert result.exit_code != 0 and result.exit_code != 2, _explain(result)
    assert "failed" in result.stderr

    runs = all_runs(store)
    folds = _fold_index(runs)
    assert [r.info.status for r in folds[bad]] == ["FAILED"]
    error = folds[bad][0].data.tags["neipalette.error"]
    assert "simulated failure" in error and "\n" not in error
    _assert_exactly_once(runs, keys - {bad}, others={bad})
    assert _role(runs, "parent")[0].info.status == "FAILED"
    _nothing_running(store)

    # retry with --resume: only the failed job runs
    monkeypatch.setattr(runner, "run_fold", real_run_fold)
    result = _invoke(config, "--resume")
    assert result.exit_code == 0, _explain(result)
    runs = all_runs(store)
    _assert_exactly_once(runs, keys)
    assert len(_role(runs, "parent")) == 1 and _role(runs, "parent")[0].info.status == "FINISHED"


# -- bad input ---------------------------------------------------------------------------------------------
def _assert_clean_usage_error(result, store: str) -> None:
    assert result.exit_code == 2, _explain(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in result.stderr + result.stdout
    db = Path(store.removeprefix("sqlite:///"))
    # validation happens before MLflow is touched: no store at all, or one without runs
    assert not db.exists() or all_runs(store, None) == []


def test_one_class_dataset_is_a_usage_error(tmp_path, store):
    config = _config(tmp_path)
    csv = tmp_path / "data" / "outfits.csv"
    csv.write_text(csv.read_text().replace("negative", "positive"))
    result = _invoke(config)
    _assert_clean_usage_error(result, store)


def test_more_folds_than_groups_per_class_is_refused_before_training(tmp_path, store, monkeypatch):
    """12 outfits in 4 groups (2 per class): 3 folds cannot keep groups whole; refused before any fit."""
    import benchmark.runner

    config = _config(tmp_path, n_splits=3)
    csv = tmp_path / "data" / "outfits.csv"
    rows = csv.read_text().splitlines()
    # labels alternate positive/negative: outfits i and i+4 and i+8 share a group, so each group has one class
    rows = [rows[0] + ",group"] + [f"{row},look{i % 4}" for i, row in enumerate(rows[1:])]
    csv.write_text("\n".join(rows) + "\n")

    def no_training(*args, **kwargs):
        raise AssertionError("a fold ran although the dataset should have been refused")

    monkeypatch.setattr(benchmark.runner, "run_fold", no_training)
    result = _invoke(config)
    _assert_clean_usage_error(result, store)
    assert "only 2 groups hold" in result.stderr and "use at most 2 folds" in result.stderr


def test_unknown_config_key_is_a_usage_error(tmp_path, store):
    config = _config(tmp_path, model={"fooo": 1})
    result = _invoke(config)
    _assert_clean_usage_error(result, store)
    assert "model.fooo" in result.stderr


def test_unknown_set_key_is_a_usage_error(tmp_path, store):
    result = _invoke(_config(tmp_path), "--set", "tuning.n_trails=3")
    _assert_clean_usage_error(result, store)
    assert "tuning.n_trails" in result.stderr


def test_missing_dataset_is_a_usage_error(tmp_path, store):
    result = _invoke(_config(tmp_path, dataset=str(tmp_path / "nowhere")))
    _assert_clean_usage_error(result, store)


def test_too_many_seed_split_images_is_a_usage_error(tmp_path, store):
    result = _invoke(_config(tmp_path, seed_split_test_images=24))
    _assert_clean_usage_error(result, store)


# -- a real kill -9 ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_kill_9_then_resume_runs_every_job_exactly_once(tmp_path, store):
    config = _config(tmp_path, baselines=["chance", "colour_stats"], protocols=["cv", "seed_split"])
    keys = _planned_keys(config)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.run", "--config", str(config), "-q"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    killed = False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                runs = all_runs(store)
            except Exception:  # noqa: BLE001 - the store may not exist yet
                runs = []
            if any(r.info.status == "FINISHED" for r in _role(runs, "fold")):
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None and not killed:
            proc.kill()
        proc.wait(timeout=30)
        log.close()
    assert killed, f"the run ended before a fold finished:\n{(tmp_path / 'run.log').read_text()[-3000:]}"
    assert proc.returncode == -signal.SIGKILL

    before = all_runs(store)
    assert len(_role(before, "parent")) == 1
    done_before = {r.data.tags["neipalette.job_key"]: r.info.run_id for r in _role(before, "fold")
                   if r.info.status == "FINISHED"}
    assert 1 <= len(done_before) < len(keys)

    result = _invoke(config, "--resume")
    assert result.exit_code == 0, _explain(result)
    runs = all_runs(store)
    assert len(_role(runs, "parent")) == 1 and _role(runs, "parent")[0].info.status == "FINISHED"
    finished = _assert_exactly_once(runs, keys)
    for key, rid in done_before.items():
        assert finished[key].info.run_id == rid
    _nothing_running(store)


# -- experiment and tracking URI resolution (issue 24) ------------------------------------------------------
def test_mlflow_experiment_name_is_honoured_and_set_wins(tmp_path, store, monkeypatch):
    """MLFLOW_EXPERIMENT_NAME (click envvar of --experiment) chooses the experiment over the config's;
    an explicit --set experiment=... wins over both."""
    config = _config(tmp_path, archs=[], baselines=["chance"], protocols=["cv"])
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env 1")
    result = _invoke(config)
    assert result.exit_code == 0, _explain(result)
    (parent,) = _role(all_runs(store, "from-env 1"), "parent")
    assert parent.info.run_name == "tiny benchmark"
    assert parent.data.tags["mlflow.user"] and parent.data.tags["mlflow.source.name"]
    result = _invoke(config, "--set", "experiment=from-set")
    assert result.exit_code == 0, _explain(result)
    assert len(_role(all_runs(store, "from-set"), "parent")) == 1
    assert len(_role(all_runs(store, "from-env 1"), "parent")) == 1


def test_tracking_uri_is_mlflows_resolution(tmp_path, monkeypatch):
    import mlflow

    from benchmark.tracking.local import tracking_uri

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/env.db")
    assert tracking_uri() == f"sqlite:///{tmp_path}/env.db"
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/set.db")
    try:  # what the process set wins, as for mlflow.start_run and mlflow.models.Model.log
        assert tracking_uri() == f"sqlite:///{tmp_path}/set.db"
    finally:
        mlflow.set_tracking_uri(None)


def test_report_under_mlflow_run_names_and_nests_its_run(tmp_path, store, monkeypatch):
    """`mlflow run . -e report` makes a run and passes MLFLOW_RUN_ID: the report turns it into `report of
    <benchmark>` (role report) nested under the parent it reports, whose report/ artifacts hold the files;
    no anonymous top-level run is left."""
    from benchmark.report.cli import main as report_main

    config = _config(tmp_path, archs=[], baselines=["chance"], protocols=["cv"])
    result = _invoke(config)
    assert result.exit_code == 0, _explain(result)
    client = mlflow_client(store)
    (parent,) = _role(all_runs(store), "parent")
    for _ in range(2):  # what `mlflow run --experiment-name neipalette -e report` does, twice
        project = client.create_run(parent.info.experiment_id, tags={"mlflow.source.type": "PROJECT"})
        monkeypatch.setenv("MLFLOW_RUN_ID", project.info.run_id)
        out = CliRunner().invoke(report_main, ["--run-id", "latest", "--experiment", "", "--out",
                                               str(tmp_path / "report")])
        assert out.exit_code == 0, out.output
        run = client.get_run(project.info.run_id)
        assert run.info.run_name == "report of tiny benchmark"
        assert run.data.tags["neipalette.role"] == "report"
        assert run.data.tags["neipalette.benchmark_run_id"] == parent.info.run_id
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    tops = [r for r in all_runs(store) if "mlflow.parentRunId" not in r.data.tags]
    assert [r.info.run_id for r in tops] == [parent.info.run_id]
    assert "report/report.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
