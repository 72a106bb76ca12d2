"""Split an embedding network into frozen front stages (the trunk) and its last stage (the tail).

`fine_tune: last_block` trains the tail plus the head on the trunk's activations, which are cached per
image-view like embeddings. Supported shapes: ResNets (`layer4` is the tail) and networks with a
`features` sequence, an `avgpool` and a `classifier` (torchvision's EfficientNets and MobileNets,
EfficientNet-Lite0): the tail is the last block plus the 1x1 head convolution when there is one.
Every split is checked once: tail(trunk(x)) must equal the whole network's output.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation


def _is_head_conv(m: nn.Module) -> bool:
    """The 1x1 convolution to the embedding width that ends EfficientNets and MobileNets."""
    from neipalette.models.lite import _HeadConv

    return isinstance(m, (Conv2dNormActivation, _HeadConv))


def split_last_stage(model: nn.Module, name: str) -> tuple[nn.Module, nn.Module]:
    """(trunk, tail) sharing the model's modules, with tail(trunk(x)) == model(x) (eval mode)."""
    if all(hasattr(model, a) for a in ("layer4", "avgpool", "fc", "conv1")):
        trunk = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2,
                              model.layer3)
        tail = nn.Sequential(model.layer4, model.avgpool, nn.Flatten(1), model.fc)
    elif all(hasattr(model, a) for a in ("features", "avgpool", "classifier")) and isinstance(model.features, nn.Sequential):
        feats = list(model.features)
        k = 2 if len(feats) > 2 and _is_head_conv(feats[-1]) else 1
        trunk = nn.Sequential(*feats[:-k])
        tail = nn.Sequential(*feats[-k:], model.avgpool, nn.Flatten(1), model.classifier)
    else:
        raise ValueError(f"fine_tune last_block does not know the last stage of {name}; "
                         "use fine_tune: head or full (last_block supports ResNets, EfficientNets, MobileNets)")
    _check(model, trunk, tail, name)
    return trunk, tail


def _check(model: nn.Module, trunk: nn.Module, tail: nn.Module, name: str) -> None:
    was = model.training
    model.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    x = x.to(next(model.parameters()).device)
    with torch.no_grad():
        ok = torch.allclose(tail(trunk(x)), model(x), rtol=1e-5, atol=1e-6)
    model.train(was)
    if not ok:
        raise ValueError(f"fine_tune last_block: {name} does not split into trunk and last stage; use head or full")
