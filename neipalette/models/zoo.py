"""`torchvision:<name>` and `timm:<name>` architectures, resolved on first use.

torchvision: any classification model of `torchvision.models` (`get_model`, `get_model_weights`); the
embedding is the input of the last linear layer, normalisation comes from the weights' transforms.
timm (optional package): `timm.create_model(name, num_classes=0)`; normalisation from its pretrained config;
ImageNet weights from the Hugging Face hub when online, or a local state-dict file.
"""

from __future__ import annotations

import difflib
import functools
import os
from typing import Callable

from torch import nn
from torchvision import models as tvm

from neipalette.models.arch import IMAGENET_MEAN, IMAGENET_STD, Arch

TV_LIST = "python -c \"import torchvision.models as m; print(m.list_models(module=m))\""
TIMM_LIST = "python -c \"import timm; print(timm.list_models())\""


@functools.cache
def resolve(name: str) -> Arch:
    source, _, model = name.partition(":")
    if source == "torchvision":
        return _torchvision(name, model)
    if source == "timm":
        return _timm(name, model)
    raise ValueError(f"unknown architecture {name!r}: the prefix must be torchvision: or timm: "
                     f"(list torchvision models with {TV_LIST})")


def _suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("has no linear classifier")
    return linears[-1]


def _strip_last_linear(path: str) -> Callable[[nn.Module], nn.Module]:
    def strip(model: nn.Module) -> nn.Module:
        parent = model
        *parents, leaf = path.split(".")
        for p in parents:
            parent = getattr(parent, p)
        setattr(parent, leaf, nn.Identity())
        return model
    return strip


def _torchvision(name: str, model: str) -> Arch:
    valid = tvm.list_models(module=tvm)
    if model not in valid:
        raise ValueError(f"unknown architecture {name!r}: torchvision has no classification model {model!r}"
                         f"{_suggest(model, valid)}; list them with {TV_LIST}")
    try:
        enum = tvm.get_model_weights(model)
    except ValueError:
        enum = None

    def build(weights=None) -> nn.Module:
        return tvm.get_model(model, weights=None)

    try:
        path, linear = _last_linear(build())
    except ValueError as exc:
        raise ValueError(f"torchvision:{model} {exc}; pick a model with a linear classifier") from None
    mean, std, size = IMAGENET_MEAN, IMAGENET_STD, 224
    if enum is not None:
        tf = enum.DEFAULT.transforms()
        mean, std = tuple(tf.mean), tuple(tf.std)
        size = int(tf.crop_size[0])
    return Arch(name, build, enum, linear.in_features, _strip_last_linear(path), mean, std, native_size=size)


def _timm(name: str, model: str) -> Arch:
    try:
        import timm
    except ImportError:
        raise ValueError(f"{name} needs the timm package: pip install timm (or pip install 'neipalette[timm]')") from None
    if not timm.is_model(model):
        valid = timm.list_models()
        raise ValueError(f"unknown architecture {name!r}: timm has no model {model!r}{_suggest(model, valid)}; "
                         f"list them with {TIMM_LIST}")

    def build(weights=None) -> nn.Module:
        return timm.create_model(model, pretrained=False, num_classes=0)

    probe = build()
    cfg = dict(getattr(probe, "pretrained_cfg", {}) or {})
    mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    std = tuple(cfg.get("std", IMAGENET_STD))
    size = int(cfg.get("input_size", (3, 224, 224))[-1])

    def imagenet(allow_download: bool):
        if not allow_download or os.environ.get("NEIPALETTE_OFFLINE", "") == "1":
            raise FileNotFoundError("offline: timm downloads its weights from the Hugging Face hub")
        net = timm.create_model(model, pretrained=True, num_classes=0)
        tag = cfg.get("tag") or "default"
        return net.state_dict(), f"imagenet:timm/{model}.{tag}", f"imagenet-timm-{model}-{tag}", mean, std

    def load_state(state: dict) -> nn.Module:
        net = build()
        classifier = cfg.get("classifier") or ""
        keep = {k: v for k, v in state.items() if not (classifier and k.startswith(classifier + "."))}
        net.load_state_dict(keep)
        return net

    return Arch(name, build, None, int(probe.num_features), lambda m: m, mean, std, imagenet=imagenet,
                imagenet_hint=f"go online once, or pass a local {model} state-dict file as weights",
                load_state=load_state, native_size=size)
