"""`neipalette predict` against a model logged to and registered in a throwaway MLflow store."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from neipalette.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "pre-layout-models"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())["proba"]["colour_stats"][0]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A colour_stats predictor logged as the benchmark logs models, registered as
    neipalette-colour_stats@bench1 (MLflow reserves the alias "latest")."""
    import mlflow
    from mlflow import MlflowClient

    from benchmark.tracking.models import PYFUNC_CODE

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("predict-test", artifact_location=str(root / "artifacts"))
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=exp) as run:
            mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_CODE),
                                    artifacts={"predictor": str(FIXTURE / "colour_stats" / "predictor")},
                                    code_paths=[str(REPO / "neipalette")], pip_requirements=["scikit-learn"])
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "neipalette-colour_stats").version
        client.set_registered_model_alias("neipalette-colour_stats", "bench1", version)
    finally:  # unset, not pinned to the resolved default: later tests choose their store by environment
        mlflow.set_tracking_uri(None)
        if previous is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return uri, run.info.run_id


def predict(uri: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": uri}
    return subprocess.run([sys.executable, "-m", "neipalette", "predict", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


@pytest.mark.slow
def test_predict_from_a_run_and_from_the_registry(store, tmp_path: Path) -> None:
    uri, run_id = store
    top, bottom = FIXTURE / "images" / "top.png", FIXTURE / "images" / "bottom.png"
    proc = predict(uri, "--model", f"runs:/{run_id}/model", str(top), str(bottom))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split() == ["p_harmonious", "label", "top", "bottom"]
    p, label = lines[1].split()[:2]
    assert float(p) == pytest.approx(EXPECTED, abs=1e-4) and label == "negative"

    (tmp_path / "img").mkdir()
    for name in ("top.png", "bottom.png"):
        (tmp_path / "img" / name).write_bytes((FIXTURE / "images" / name).read_bytes())
    (tmp_path / "pairs.csv").write_text("top,bottom\nimg/top.png,img/bottom.png\nimg/bottom.png,img/top.png\n")
    out = tmp_path / "out" / "pred.csv"
    proc = predict(uri, "--model", "models:/neipalette-colour_stats@bench1", "--pairs", str(tmp_path / "pairs.csv"),
                   "--out", str(out), cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["top", "bottom", "p_harmonious", "label"] and len(frame) == 2
    assert frame["p_harmonious"].iloc[0] == pytest.approx(EXPECTED, abs=1e-4)
    assert frame["label"].tolist() == ["positive" if p >= 0.5 else "negative" for p in frame["p_harmonious"]]

    assert frame["top"].tolist() == [str(tmp_path / "img" / "top.png"), str(tmp_path / "img" / "bottom.png")]
    assert f"wrote {out}" in proc.stdout

    proc = predict(uri, "--model", "models:/neipalette-nope@bench1", str(top), str(bottom))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "cannot load model" in proc.stderr
    assert "registered models: neipalette-colour_stats" in proc.stderr
    proc = predict(uri, "--model", "models:/neipalette-colour_stats@nope", str(top), str(bottom))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "neipalette-colour_stats has no alias 'nope'; its aliases: bench1 (version 1)" in proc.stderr


def test_predict_table_columns_line_up(tmp_path: Path) -> None:
    """Issue 23.9: header and rows share column starts, whatever the paths' lengths; paths are absolute."""
    from neipalette.models.predict import result_frame, result_text

    pairs = pd.DataFrame({"top": ["a.png", "some/longer/top.png"], "bottom": ["b.png", "c.png"]})
    lines = result_text(result_frame(pairs, [0.25, 0.75])).splitlines()
    starts = [[m.start() for m in re.finditer(r"\S+", line)][1:] for line in lines]  # label, top, bottom
    ends = [re.match(r"\s*\S+", line).end() for line in lines]  # the number column's right edge
    assert lines[0].startswith("p_harmonious") and starts[0] == starts[1] == starts[2], lines
    assert len(set(ends)) == 1 and len(starts[0]) == 3, lines
    assert lines[1].split()[2] == str(Path("a.png").absolute())


def test_predict_bad_images_are_one_line_exit_2_before_any_model_loads(tmp_path: Path) -> None:
    good = str(FIXTURE / "images" / "top.png")
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "pairs.csv").write_text("top,bottom\n" + good + ",nothere.png\n")
    cases = [
        ([good, str(tmp_path / "missing.png")], "missing.png not found"),
        ([good, str(corrupt)], "broken.jpg"),
        ([good], "expected two images"),
        (["--pairs", str(tmp_path / "pairs.csv")], "nothere.png not found"),
        (["--pairs", str(tmp_path / "nope.csv")], "nope.csv not found"),
    ]
    for args, keyword in cases:
        # the model URI is never touched: images are checked first
        result = CliRunner().invoke(main, ["predict", "--model", "runs:/0/model", *args])
        assert result.exit_code == 2 and result.stdout == "", result.output
        assert len(result.stderr.splitlines()) == 1 and keyword in result.stderr, result.stderr


def test_predict_warns_once_for_a_random_init_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model logged with metadata weights=random-init (benchmark.tracking.models does this for a randomly
    initialised backbone) gets one WARNING line on stderr; the scores on stdout are unchanged."""
    import mlflow

    from benchmark.tracking.models import PYFUNC_CODE

    monkeypatch.chdir(tmp_path)  # MLflow's default experiment keeps its artifacts in the working directory
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # its own experiment with its own artifact folder, and the URI pinned while logging (an earlier test may have
    # pinned another store process-wide): nothing lands in the checkout's ./mlruns
    experiment = mlflow.MlflowClient(uri).create_experiment("predict-warning", artifact_location=str(tmp_path / "art"))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment)
    uris = {}
    mlflow.set_tracking_uri(uri)
    try:
        for weights in ("random-init", "imagenet:IMAGENET1K_V1"):
            info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_CODE),
                                           artifacts={"predictor": str(FIXTURE / "colour_stats" / "predictor")},
                                           code_paths=[str(REPO / "neipalette")], pip_requirements=["scikit-learn"],
                                           metadata={"weights": weights})
            uris[weights] = f"models:/{info.model_id}"
    finally:
        mlflow.set_tracking_uri(None)
    assert len(list((tmp_path / "art").rglob("MLmodel"))) == 2  # both models in this test's folder
    top, bottom = FIXTURE / "images" / "top.png", FIXTURE / "images" / "bottom.png"
    for weights, model_uri in uris.items():
        result = CliRunner().invoke(main, ["predict", "--model", model_uri, str(top), str(bottom)])
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
        assert len(warnings) == (1 if weights == "random-init" else 0), result.stderr
        if warnings:
            assert "random-init" in warnings[0] and model_uri in warnings[0]
        p = float(result.stdout.strip().splitlines()[1].split()[0])
        assert p == pytest.approx(EXPECTED, abs=1e-4)
