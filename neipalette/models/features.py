"""What a frozen backbone hands the head: the final embedding (`final`) or `multiscale` features.

ImageNet's final embeddings are trained to be largely colour-invariant, while early stages still encode the
garment's colour. `multiscale` appends the globally average-pooled activations of two early stages to the
final embedding: the stem (the first module at stride 2 that is more than a bare convolution or batch norm,
i.e. after its activation) and the last module at stride 8 (the end of a mid stage). The
stages are found by one probe forward with hooks on the network's modules (two levels deep), so the same
rule serves ResNets, EfficientNet-B0/Lite0, MobileNets and most torchvision:/timm: CNNs; a network without
4-D stage outputs (a vision transformer) is refused with a one-line error.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

FEATURE_MODES = ("final", "multiscale")
STEM_STRIDE = 2
MID_STRIDE = 8
PROBE_SIZE = 64


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules one or two levels below the network (e.g. `layer2`, `features.3`), the usual stage boundaries."""
    return [(name, m) for name, m in model.named_modules()
            if name and name.count(".") <= 1 and not isinstance(m, nn.Identity)]


def find_taps(model: nn.Module, name: str) -> tuple[str, str]:
    """(stem, mid): the first module with output stride 2 that is not a bare convolution or batch norm, and the
    last module with stride 8, in execution order; modules called more than once are skipped (their output is
    ambiguous)."""
    fired: list[tuple[str, int]] = []
    bare = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.modules.batchnorm._BatchNorm))}
    calls: dict[str, int] = {}

    def hook(module_name: str):
        def record(_m: nn.Module, _inp: object, out: object) -> None:
            calls[module_name] = calls.get(module_name, 0) + 1
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] > 0:
                fired.append((module_name, PROBE_SIZE // out.shape[-1]))
        return record

    was = model.training
    model.eval()
    handles = [m.register_forward_hook(hook(n)) for n, m in _candidates(model)]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE, device=_device(model)))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    taps = []
    for stride, pick in ((STEM_STRIDE, 0), (MID_STRIDE, -1)):
        names = [n for n, s in fired if s == stride and calls[n] == 1 and n not in bare]
        if not names:
            raise ValueError(f"model.features multiscale: {name} has no stage with output stride {stride} "
                             "(not a CNN with 4-D stage outputs); use model.features: final")
        taps.append(names[pick])
    return taps[0], taps[1]


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class Multiscale(nn.Module):
    """The backbone's output followed by the global average pool of each tapped module's activations."""

    def __init__(self, backbone: nn.Module, taps: tuple[str, ...]):
        super().__init__()
        self.backbone = backbone
        self.taps = tuple(taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled: dict[str, torch.Tensor] = {}
        with _hooks(self.backbone, self.taps, pooled):
            out = self.backbone(x)
        return torch.cat([out.flatten(1), *(pooled[t] for t in self.taps)], dim=1)


@contextmanager
def _hooks(model: nn.Module, taps: tuple[str, ...], pooled: dict[str, torch.Tensor]) -> Iterator[None]:
    """Hooks only while one forward runs: the backbone is shared with `final` estimators, which must not pay."""
    modules = dict(model.named_modules())

    def hook(name: str):
        def pool(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
            pooled[name] = out.float().mean(dim=(2, 3))
        return pool

    handles = [modules[t].register_forward_hook(hook(t)) for t in taps]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def feature_net(backbone: nn.Module, arch: str, mode: str) -> tuple[nn.Module, str]:
    """(the network the embedder runs, the suffix its cache identity gets): the backbone itself for
    `final` (identity unchanged, so existing cache entries stay valid), else a `Multiscale` wrapper."""
    if mode == "final":
        return backbone, ""
    if mode != "multiscale":
        raise ValueError(f"Invalid features {mode!r}. Only {', '.join(FEATURE_MODES)} are supported.")
    taps = find_taps(backbone, arch)
    return Multiscale(backbone, taps), f"|multiscale:{','.join(taps)}"


def output_dim(net: nn.Module) -> int:
    """The width of a feature network's output, from one tiny forward."""
    with torch.inference_mode():
        return int(net(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE, device=_device(net))).shape[1])
