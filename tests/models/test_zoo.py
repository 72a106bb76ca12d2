"""torchvision:<name> and timm:<name> architectures."""

from __future__ import annotations

import logging
import sys

import pytest
import torch

from neipalette.models.registry import ARCHS, build_backbone, get_arch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_torchvision_model_by_name_offline_is_random_with_warning(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEIPALETTE_OFFLINE", "1")
    arch = get_arch("torchvision:mobilenet_v3_small")
    assert arch.embed_dim == 1024 and arch.native_size == 224
    with caplog.at_level(logging.WARNING, logger="neipalette.models.registry"):
        backbone, used = build_backbone("torchvision:mobilenet_v3_small", "auto", seed=2)
    assert used.kind == "none"
    assert any("RANDOM INIT" in r.getMessage() and "mobilenet_v3_small" in r.getMessage() for r in caplog.records)
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = backbone(x)
    assert out.shape == (3, 1024)
    assert float(out.std(0).mean()) > 1e-4  # BatchNorm calibrated: embeddings differ between images
    again, _ = build_backbone("torchvision:mobilenet_v3_small", "none", seed=2)
    with torch.inference_mode():
        assert torch.equal(again(x), out)


def test_torchvision_normalisation_follows_the_weights() -> None:
    arch = get_arch("torchvision:vit_b_16")
    assert arch.embed_dim == 768 and arch.native_size == 224
    assert get_arch("torchvision:resnet18").embed_dim == 512


@pytest.mark.parametrize("name, needle", [
    ("torchvision:mobilenet_v3_smal", "mobilenet_v3_small"),
    ("torchvision:nosuchnet", "list_models"),
    ("keras:resnet", "torchvision:"),
    ("vgg16", "torchvision:<name>"),
])
def test_unknown_names_say_how_to_find_valid_ones(name: str, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        get_arch(name)
    msg = str(err.value)
    assert name in msg and needle in msg and "\n" not in msg


def test_timm_missing_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from neipalette.models import zoo

    zoo.resolve.cache_clear()
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(ValueError) as err:
        get_arch("timm:efficientnet_lite0")
    assert "pip install timm" in str(err.value) and "\n" not in str(err.value)


def test_short_names_stay_short() -> None:
    assert {"resnet18", "efficientnet_b0", "efficientnet_lite0"} <= set(ARCHS)
    assert all(":" not in name for name in ARCHS)
