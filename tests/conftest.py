"""Shared fixtures: a tiny valid dataset (solid-colour PNGs) that any test may build."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def make_tiny_dataset(
    root: Path, n_outfits: int = 8, size: int = 32, seed: int = 0, *, with_truth: bool = False
) -> Path:
    """Write a valid dataset of `n_outfits` outfits (labels alternate positive/negative) into `root`.

    Images are `size`x`size` solid-colour RGB PNGs under `root/images/`. `with_truth` adds a truth.csv.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_outfits):
        oid = f"o{i:03d}"
        for part in ("top", "bottom"):
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            Image.new("RGB", (size, size), colour).save(root / "images" / f"{oid}_{part}.png")
        label = "positive" if i % 2 == 0 else "negative"
        rows.append([oid, f"images/{oid}_top.png", f"images/{oid}_bottom.png", label])
    with open(root / "outfits.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["outfit_id", "top", "bottom", "label"])
        writer.writerows(rows)
    if with_truth:
        with open(root / "truth.csv", "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["outfit_id", "p_positive"])
            writer.writerows([row[0], 0.8 if row[3] == "positive" else 0.2] for row in rows)
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A valid 8-outfit dataset folder (4 positive, 4 negative, 32x32 PNGs)."""
    return make_tiny_dataset(tmp_path / "tiny")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test downloads weights, writes the user's embedding cache or phones home."""
    monkeypatch.setenv("NEIPALETTE_OFFLINE", "1")
    monkeypatch.setenv("MLFLOW_TELEMETRY_DISABLED", "1")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "1")  # the name MLflow 3.17 reads
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.setenv("NEIPALETTE_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))


@pytest.fixture
def one_thread():
    """Two shared cores: one intra-op thread is faster than two fighting, and keeps kernels identical."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    """A fresh MLflow store for this test; returns its tracking URI."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri
