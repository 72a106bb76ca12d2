"""Saving and loading fitted predictors, and predicting from a table of image paths."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision import models as tvm

from neipalette.models.baselines import make_baseline
from neipalette.data.dataset import load_dataset
from neipalette.data.samples import make_samples
from neipalette.models.estimator import CNNConfig, CNNEstimator, CNNPredictor
from neipalette.models.persist import load_predictor, predict_frame, save_predictor
from tests.conftest import make_tiny_dataset

TINY = CNNConfig(arch="resnet18", weights="none", image_size=32, n_views=2, batch_size=4)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    return load_dataset(make_tiny_dataset(tmp_path_factory.mktemp("persist") / "tiny", n_outfits=8, size=32))


def _pairs(dataset):
    return make_samples(dataset, range(len(dataset.outfits)), "pair")


def _fit(config: CNNConfig, samples, *, seed: int = 11, epochs: int = 2) -> CNNPredictor:
    return CNNEstimator(config, seed=seed).fit(samples, learning_rate=1e-2, epochs=epochs, seed=4)


@pytest.mark.parametrize("include_backbone", [False, True])
def test_head_round_trip(dataset, tmp_path: Path, include_backbone: bool) -> None:
    samples = _pairs(dataset)
    predictor = _fit(replace(TINY, cache_dir=str(tmp_path / "cache")), samples)
    before = predictor.predict_proba(samples)
    save_predictor(predictor, tmp_path / "model", include_backbone=include_backbone)
    assert (tmp_path / "model" / "backbone.pt").is_file() == include_backbone
    spec = json.loads((tmp_path / "model" / "spec.json").read_text())
    assert spec["kind"] == "head" and spec["seed"] == 11
    assert spec["config"]["cache_dir"] is None  # no machine-specific paths in the folder

    loaded = load_predictor(tmp_path / "model")
    assert isinstance(loaded, CNNPredictor) and loaded.head is not None
    assert loaded.estimator.weights == predictor.estimator.weights
    assert np.array_equal(loaded.predict_proba(samples), before)


def test_head_without_backbone_rebuilds_from_weights_file(dataset, tmp_path: Path) -> None:
    torch.manual_seed(21)
    weights = tmp_path / "custom.pt"
    torch.save(tvm.resnet18(weights=None).state_dict(), weights)
    samples = _pairs(dataset)
    predictor = _fit(replace(TINY, weights=str(weights), cache_dir=str(tmp_path / "cache")), samples)
    save_predictor(predictor, tmp_path / "model")
    loaded = load_predictor(tmp_path / "model")
    assert loaded.estimator.weights.kind == "file"
    assert np.array_equal(loaded.predict_proba(samples), predictor.predict_proba(samples))


@pytest.mark.parametrize("mode", ["pair", "single"])
def test_full_round_trip(dataset, tmp_path: Path, mode: str) -> None:
    samples = make_samples(dataset, range(len(dataset.outfits)), mode)
    predictor = _fit(replace(TINY, input_mode=mode, fine_tune="full", cache_dir=str(tmp_path / "cache")), samples,
                     epochs=1)
    assert predictor.full is not None
    before = predictor.predict_proba(samples)
    save_predictor(predictor, tmp_path / "model")
    assert json.loads((tmp_path / "model" / "spec.json").read_text())["kind"] == "full"
    loaded = load_predictor(tmp_path / "model")
    assert loaded.full is not None
    assert np.array_equal(loaded.predict_proba(samples), before)


def test_baseline_round_trip(dataset, tmp_path: Path) -> None:
    samples = _pairs(dataset)
    predictor = make_baseline("colour_stats").fit(samples, learning_rate=0.0, epochs=0, seed=0)
    save_predictor(predictor, tmp_path / "model")
    loaded = load_predictor(tmp_path / "model")
    assert type(loaded) is type(predictor)
    assert np.array_equal(loaded.predict_proba(samples), predictor.predict_proba(samples))


def test_predict_frame_with_image_paths(dataset, tmp_path: Path) -> None:
    samples = _pairs(dataset)
    predictor = _fit(replace(TINY, cache_dir=str(tmp_path / "cache")), samples)
    save_predictor(predictor, tmp_path / "model")
    loaded = load_predictor(tmp_path / "model")
    frame = pd.DataFrame({"top": [str(o.top) for o in dataset.outfits],
                          "bottom": [str(o.bottom) for o in dataset.outfits],
                          "note": ["ignored"] * len(dataset.outfits)})
    proba = predict_frame(loaded, frame)
    assert proba.shape == (len(frame),)
    assert np.array_equal(proba, predictor.predict_proba(samples))
    assert np.array_equal(predict_frame(loaded, frame.iloc[::-1]), proba[::-1])

    singles = make_samples(dataset, range(len(dataset.outfits)), "single")
    single = _fit(replace(TINY, input_mode="single", cache_dir=str(tmp_path / "cache")), singles)
    images = pd.DataFrame({"image": [str(s.images[0]) for s in singles]})
    assert np.array_equal(predict_frame(single, images), single.predict_proba(singles))


@pytest.mark.parametrize("columns", [["top"], ["bottom"], ["top_image", "bottom_image"], []])
def test_predict_frame_rejects_bad_columns(dataset, tmp_path: Path, columns: list[str]) -> None:
    predictor = make_baseline("chance").fit(_pairs(dataset), learning_rate=0.0, epochs=0, seed=0)
    frame = pd.DataFrame({c: ["images/o000_top.png"] for c in columns})
    with pytest.raises(ValueError, match="top and bottom"):
        predict_frame(predictor, frame)
