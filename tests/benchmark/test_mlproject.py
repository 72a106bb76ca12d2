"""`mlflow run . -e benchmark --env-manager local --experiment-name X` runs the quick config from the MLproject
file, and the project run `mlflow run` creates is the benchmark's parent run (one run tree, in X)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _mlflow_run(tmp_path: Path, uri: str, *args: str, entry: str = "benchmark") -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1",
           # `mlflow run` starts `python -m benchmark.run` through the shell: use this interpreter
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    mlflow_cli = shutil.which("mlflow", path=env["PATH"])
    cmd = [mlflow_cli] if mlflow_cli else [sys.executable, "-m", "mlflow"]
    return subprocess.run([*cmd, "run", ".", "-e", entry, "--env-manager", "local", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_mlflow_run_quick_config_makes_the_project_run_the_parent(tmp_path, monkeypatch):
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # `mlflow run .` runs in the repository; create the store and the experiment from tmp_path so that the
    # default artifact locations (./mlruns, resolved when an experiment is created) land in tmp_path too
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment("my-benchmarks", artifact_location=str(tmp_path / "artifacts"))
    # n_splits etc. keep their MLproject default "config" (= the config file's value); seed is passed
    proc = _mlflow_run(tmp_path, uri, "--experiment-name", "my-benchmarks",
                       "-P", "config=experiments/quick.yaml", "-P", "seed=0")
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    everything = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    assert not [r for r in everything if r.info.status == "RUNNING"]
    exp = client.get_experiment_by_name("my-benchmarks")
    assert {r.info.experiment_id for r in everything} == {exp.experiment_id}, "runs outside the chosen experiment"
    assert client.get_experiment_by_name("neipalette") is None, "a second experiment was created"
    assert all(str(tmp_path) in r.info.artifact_uri for r in everything), "artifacts escaped the test's folder"

    parents = [r for r in everything if r.data.tags.get("neipalette.role") == "parent"]
    tops = [r for r in everything if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and [r.info.run_id for r in tops] == [parents[0].info.run_id]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    # the parent is the run `mlflow run` created: its project tags and the -P values it logged
    assert parent.data.tags["mlflow.source.type"] == "PROJECT"
    assert parent.data.tags["mlflow.project.entryPoint"] == "benchmark"
    assert parent.data.tags["mlflow.runName"] == "quick benchmark"
    assert parent.data.params["seed"] == "0" and parent.data.params["n_splits"] == "config"
    assert parent.data.params["config"] == "experiments/quick.yaml"
    assert parent.data.params["tuning.n_trials"] == "2"  # resolved config, where names do not collide
    assert parent.data.tags["mlflow.source.git.commit"]
    (inp,) = parent.inputs.dataset_inputs
    assert inp.dataset.name == "synthetic-40"
    assert inp.dataset.digest == parent.data.tags["neipalette.dataset_hash"]

    folds = [r for r in everything if r.data.tags.get("neipalette.role") == "fold"]
    # cv 2 folds x (4 CNNs + 4 baselines) + seed_split (4 CNNs, chance, colour_stats, colour_pattern; no ou_luo)
    assert len(folds) == 23 and all(r.info.status == "FINISHED" for r in folds)
    assert {r.data.tags["mlflow.parentRunId"] for r in everything if r is not parent} == {parent.info.run_id}

    # the report reads the resolved values (the config's n_splits, not "config")
    from benchmark.tracking.read import load_benchmark

    record = load_benchmark(run_id=parent.info.run_id, tracking_uri=uri)
    assert record.parent.params["n_splits"] == "2" and record.parent.params["seed"] == "0"

    # every final model is registered under the benchmark's alias and scores a pair of image files
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    data = REPO / "data" / "synthetic-40" / "images"
    pair = pd.DataFrame({"top": [str(data / "o000_top.png")], "bottom": [str(data / "o000_bottom.png")]})
    for name in ("resnet18", "efficientnet_b0", "efficientnet_lite0", "torchvision-mobilenet_v3_small"):
        version = client.get_model_version_by_alias(f"neipalette-{name}", "quick")
        assert client.get_run(version.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
        p = mlflow.pyfunc.load_model(f"models:/neipalette-{name}@quick").predict(pair)
        assert 0.0 <= float(p[0]) <= 1.0
    assert json.loads(json.dumps(parent.data.tags))["neipalette.env.torch"]

    # `mlflow run . -e report`: its run becomes "report of <benchmark>", nested under the parent it reports
    proc = _mlflow_run(tmp_path, uri, "--experiment-name", "my-benchmarks", "-P", f"run_id={parent.info.run_id}",
                       entry="report")
    # the entry point writes its default folder reports/<run id>/ in the project (this checkout): not left there
    shutil.rmtree(REPO / "reports" / parent.info.run_id, ignore_errors=True)
    with contextlib.suppress(OSError):
        (REPO / "reports").rmdir()  # only when nothing else is in it
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    everything = client.search_runs([exp.experiment_id], max_results=1000)
    tops = [r for r in everything if "mlflow.parentRunId" not in r.data.tags]
    assert [r.info.run_id for r in tops] == [parent.info.run_id], "an anonymous top-level run was left"
    (report,) = [r for r in everything if r.data.tags.get("neipalette.role") == "report"]
    assert report.info.run_name == "report of quick benchmark" and report.info.status == "FINISHED"
    assert report.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "report/report.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
