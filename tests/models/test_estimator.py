"""CNN estimators: config checks, the head learns, cached = uncached, and seeded runs reproduce across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from neipalette.data.samples import INPUT_MODES, Sample, make_samples
from neipalette.models.embedding import Embedder
from neipalette.models.estimator import FINE_TUNE_MODES, CNNConfig, CNNEstimator
from neipalette.models.arch import IMAGENET_MEAN, IMAGENET_STD
from neipalette.models.heads import train_head
from neipalette.models.training import TrainSettings, combine, new_head
from neipalette.models.views import ViewSpec

REPO = Path(__file__).resolve().parents[2]
TINY = CNNConfig(arch="resnet18", weights="none", image_size=32, n_views=3, batch_size=4)


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("field,value,allowed", [("input_mode", "triple", INPUT_MODES),
                                                  ("fine_tune", "partial", FINE_TUNE_MODES)])
def test_config_rejects_unknown_modes(field: str, value: str, allowed: tuple[str, ...]) -> None:
    with pytest.raises(ValueError) as err:
        CNNConfig(**{field: value})
    msg = str(err.value)
    assert value in msg
    for name in allowed:
        assert name in msg


def test_config_rejects_unknown_arch_and_zero_views() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        CNNConfig(arch="alexnet")
    with pytest.raises(ValueError, match="n_views"):
        CNNConfig(n_views=0)


# ------------------------------------------------------------------------------------------------ the head learns


def _separable_images(folder: Path, n: int = 12) -> tuple[list[Path], np.ndarray]:
    """Solid-colour images: reddish (label 1) or bluish (label 0), with some jitter."""
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    paths, labels = [], np.arange(n) % 2
    for i, label in enumerate(labels):
        jitter = g.integers(-30, 30, size=3)
        base = np.array([200, 40, 40]) if label else np.array([40, 60, 200])
        path = folder / f"g{i:02d}.png"
        Image.new("RGB", (32, 32), tuple(int(c) for c in np.clip(base + jitter, 0, 255))).save(path)
        paths.append(path)
    return paths, labels.astype(np.int64)


def test_train_head_learns_a_separable_problem(backbone, tmp_path: Path) -> None:
    paths, labels = _separable_images(tmp_path / "img")
    model, used = backbone
    spec = ViewSpec(32, 1, 0, IMAGENET_MEAN, IMAGENET_STD)
    table = Embedder(model, used, spec, cache=False).forward([(p,) for p in paths], [0] * len(paths))[:, None]

    def embed(idx: np.ndarray, views: np.ndarray) -> torch.Tensor:
        return table[torch.as_tensor(idx)]

    settings = TrainSettings(learning_rate=1e-2, epochs=15, seed=0, batch_size=4)
    head = train_head(embed, labels, 1, "single", settings)
    y = torch.as_tensor(labels)
    x = combine(table, "single")
    untrained = new_head(512, settings.seed)  # the same init and standardisation, before any step
    untrained.mean.copy_(head.mean)
    untrained.scale.copy_(head.scale)
    with torch.inference_mode():
        loss_before = nn.functional.cross_entropy(untrained(x), y).item()
        logits = head(x)
        loss_after = nn.functional.cross_entropy(logits, y).item()
    assert loss_after < 0.5 * loss_before
    assert (logits.argmax(1) == y).float().mean().item() == 1.0


def test_estimator_fits_training_labels(tmp_path: Path) -> None:
    paths, labels = _separable_images(tmp_path / "img")
    samples = [Sample(f"s{i}", f"s{i}", (p,), int(y)) for i, (p, y) in enumerate(zip(paths, labels))]
    est = CNNEstimator(replace(TINY, input_mode="single", cache_dir=str(tmp_path / "cache")))
    proba = est.fit(samples, learning_rate=1e-2, epochs=15, seed=0).predict_proba(samples)
    assert proba.shape == (len(samples),)
    assert np.all((proba >= 0) & (proba <= 1))
    assert np.array_equal((proba > 0.5).astype(int), labels)


# ------------------------------------------------------------------------------------------------ cache = no cache


@pytest.mark.parametrize("mode", INPUT_MODES)
def test_cached_equals_uncached(dataset, mode: str, tmp_path: Path) -> None:
    samples = make_samples(dataset, range(len(dataset.outfits)), mode)
    preds, stats = [], []
    for cache in (True, False):
        est = CNNEstimator(replace(TINY, input_mode=mode, cache=cache, cache_dir=str(tmp_path / "cache")), seed=0)
        predictor = est.fit(samples, learning_rate=1e-2, epochs=3, seed=5)
        preds.append(predictor.predict_proba(samples))
        stats.append(dict(est.embedder.stats))
    assert preds[0].shape == (len(samples),)
    np.testing.assert_allclose(preds[0], preds[1], rtol=0, atol=1e-6)
    n_units = len(samples) * (1 if mode == "composite" else 2) // (2 if mode == "single" else 1)
    assert stats[0]["forward_images"] == n_units * TINY.n_views  # each unit-view once, then only lookups
    assert stats[1]["forward_images"] > stats[0]["forward_images"]


def test_fit_seed_changes_predictions(dataset, tmp_path: Path) -> None:
    samples = make_samples(dataset, range(len(dataset.outfits)), "pair")
    est = CNNEstimator(replace(TINY, cache_dir=str(tmp_path / "cache")), seed=0)
    a = est.fit(samples, learning_rate=1e-2, epochs=3, seed=1).predict_proba(samples)
    b = est.fit(samples, learning_rate=1e-2, epochs=3, seed=1).predict_proba(samples)
    c = est.fit(samples, learning_rate=1e-2, epochs=3, seed=2).predict_proba(samples)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


# ------------------------------------------------------------------------------------------------ across processes

_SCRIPT = """
import json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from neipalette.data.dataset import load_dataset
from neipalette.models.estimator import CNNConfig, CNNEstimator
from neipalette.data.samples import make_samples
from tests.conftest import make_tiny_dataset

work = Path(sys.argv[1])
ds = load_dataset(make_tiny_dataset(work / "ds", n_outfits=8, size=32, seed=4))
out = {}
for fine_tune, epochs in (("head", 3), ("last_block", 2), ("full", 1)):
    for mode in ("pair", "composite", "single"):
        cfg = CNNConfig(arch="resnet18", weights="none", input_mode=mode, fine_tune=fine_tune, image_size=32,
                        n_views=2, batch_size=4, cache_dir=str(work / "cache"))
        samples = make_samples(ds, range(len(ds.outfits)), mode)
        predictor = CNNEstimator(cfg, seed=3).fit(samples, learning_rate=1e-3, epochs=epochs, seed=7)
        out[fine_tune + "/" + mode] = predictor.predict_proba(samples).tolist()
print(json.dumps(out))
"""


def test_same_seed_same_predictions_across_processes(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "random"}
    runs = []
    for i in range(2):  # two processes in parallel, each with its own dataset copy and cache
        work = tmp_path / f"run{i}"
        work.mkdir()
        runs.append(subprocess.Popen([sys.executable, "-c", _SCRIPT, str(work)], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for proc in runs:
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr[-3000:]
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    first, second = outputs
    assert set(first) == {f"{f}/{m}" for f in FINE_TUNE_MODES for m in INPUT_MODES}
    for key in first:
        assert len(first[key]) == (16 if key.endswith("single") else 8)
        assert first[key] == second[key], key
    assert first["head/pair"] != first["full/pair"]
