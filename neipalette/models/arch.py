"""What an architecture is (`Arch`) and which weights it ran with (`WeightsUsed`): the leaf that the
registry of short names (`neipalette.models.registry`) and the `torchvision:`/`timm:` resolver
(`neipalette.models.zoo`) both build on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn
from torchvision import models as tvm

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (state dict, detail, identity, mean, std): ImageNet weights from somewhere other than a torchvision enum
ImagenetSource = Callable[[bool], tuple[dict, str, str, tuple, tuple]]


@dataclass(frozen=True)
class Arch:
    name: str
    build: Callable[..., nn.Module]  # build(weights=None) -> the full classifier, random init
    weights_enum: type[tvm.WeightsEnum] | None
    embed_dim: int
    strip_head: Callable[[nn.Module], nn.Module]  # replaces the classifier with Identity: outputs embeddings
    mean: tuple[float, float, float] = IMAGENET_MEAN  # normalisation when no weights enum says otherwise
    std: tuple[float, float, float] = IMAGENET_STD
    imagenet: ImagenetSource | None = None  # ImageNet weights not from a torchvision enum
    imagenet_hint: str = ""  # how to make ImageNet weights available offline
    load_state: Callable[[dict], nn.Module] | None = None  # a state dict in a foreign layout -> model
    native_size: int = 224


@dataclass(frozen=True)
class WeightsUsed:
    arch: str
    requested: str
    kind: str  # "imagenet" | "none" | "file"
    detail: str  # what a person reads in logs and the report
    identity: str  # what the embedding cache keys on
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def is_random(self) -> bool:
        return self.kind == "none"
