"""`mlflow run . -e benchmark --env-manager local` runs the benchmark from the MLproject file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_tiny_dataset

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_mlflow_run_benchmark_entry_point(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    data = make_tiny_dataset(tmp_path / "data", 12, size=32, seed=0, with_truth=True)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": str(data), "seed": 0, "archs": ["resnet18"], "baselines": ["chance"],
        "protocols": ["cv"], "n_splits": 2, "n_repeats": 1,
        "model": {"weights": "none", "image_size": 32, "n_views": 2, "batch_size": 8},
        "tuning": {"n_trials": 2, "inner_folds": 2, "epochs_min": 2, "epochs_max": 4},
        "log_models": False, "final_models": False,
    }))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # `mlflow run .` runs in the repository; create the store and the experiment from tmp_path so that the
    # default artifact locations (./mlruns, resolved when an experiment is created) land in tmp_path too
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment("neipalette", artifact_location=str(tmp_path / "artifacts"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1",
           # `mlflow run` starts `python -m benchmark.run` through the shell: use this interpreter
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    mlflow_cli = shutil.which("mlflow", path=env["PATH"])
    cmd = [mlflow_cli] if mlflow_cli else [sys.executable, "-m", "mlflow"]
    # n_splits etc. keep their MLproject default "config" (= the config file's value); seed is overridden
    cmd += ["run", ".", "-e", "benchmark", "--env-manager", "local", "-P", f"config={config}", "-P", "seed=0"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    exp = client.get_experiment_by_name("neipalette")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    folds = [r for r in runs if r.data.tags.get("neipalette.role") == "fold"]
    assert len(folds) == 2 * 2 and all(r.info.status == "FINISHED" for r in folds)
    assert all(str(tmp_path) in r.info.artifact_uri for r in runs), "artifacts escaped the test's folder"
    parents = [r for r in runs if r.data.tags.get("neipalette.role") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # the config file's values were kept (MLproject default "config")
    assert parents[0].data.params["n_splits"] == "2" and parents[0].data.params["tuning.n_trials"] == "2"
    # the project's own run is FINISHED too and points at the benchmark's parent run
    all_runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    assert not [r for r in all_runs if r.info.status == "RUNNING"]
    project = [r for r in all_runs if r.data.tags.get("neipalette.benchmark_run_id")]
    assert [r.data.tags["neipalette.benchmark_run_id"] for r in project] == [parents[0].info.run_id]
