"""Fixtures shared by the model tests: a tiny generated dataset and a random-init ResNet18 backbone (one of each
per test module)."""

from __future__ import annotations

import pytest

from neipalette.data.dataset import load_dataset
from neipalette.models.registry import build_backbone
from tests.conftest import make_tiny_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    """8 outfits of 32 px images."""
    return load_dataset(make_tiny_dataset(tmp_path_factory.mktemp("models") / "tiny", n_outfits=8, size=32))


@pytest.fixture(scope="module")
def backbone():
    """(ResNet18 with random weights, seed 0, its WeightsUsed)."""
    return build_backbone("resnet18", "none", seed=0)
