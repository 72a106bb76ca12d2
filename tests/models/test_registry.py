"""The backbone registry: names, seeded random init, state-dict files and the auto/imagenet weight modes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models as tvm

from neipalette.errors import UserError
from neipalette.models.registry import ARCHS, WEIGHT_MODES, build_backbone, get_arch

pytestmark = pytest.mark.usefixtures("one_thread")


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach() for t in model.state_dict().values()]


def _same_params(a: nn.Module, b: nn.Module) -> bool:
    pa, pb = _params(a), _params(b)
    return len(pa) == len(pb) and all(torch.equal(x, y) for x, y in zip(pa, pb))


def _tv_resnet18(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return tvm.resnet18(weights=None)


@pytest.fixture(scope="module")
def resnet_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A torchvision resnet18 state dict (seeded) saved to a file, and the state itself."""
    state = _tv_resnet18(1234).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18_custom.pt"
    torch.save(state, path)
    return path, state


def test_unknown_arch_lists_known_ones() -> None:
    with pytest.raises(ValueError) as err:
        get_arch("vgg16")
    msg = str(err.value)
    assert "vgg16" in msg
    for name in ARCHS:
        assert name in msg
    with pytest.raises(ValueError, match="resnet18"):
        build_backbone("resnet1", "none")


def test_none_weights_are_seeded() -> None:
    a, used = build_backbone("resnet18", "none", seed=3)
    b, _ = build_backbone("resnet18", "none", seed=3)
    c, _ = build_backbone("resnet18", "none", seed=4)
    assert used.kind == "none" and used.is_random
    assert used.arch == "resnet18" and used.requested == "none"
    assert _same_params(a, b)
    assert not _same_params(a, c)
    assert isinstance(a.fc, nn.Identity)
    assert not a.training
    assert not any(p.requires_grad for p in a.parameters())
    # The global RNG is not consumed by seeded init.
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    build_backbone("resnet18", "none", seed=3)
    assert torch.equal(torch.rand(1), before)


def test_state_dict_file_gives_identical_embeddings(resnet_state: tuple[Path, dict]) -> None:
    path, state = resnet_state
    backbone, used = build_backbone("resnet18", str(path), seed=99)
    assert used.kind == "file" and not used.is_random
    assert str(path) in used.detail
    reference = tvm.resnet18(weights=None)
    reference.load_state_dict(state)
    reference.fc = nn.Identity()
    reference.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got, want = backbone(x), reference(x)
    assert got.shape == (2, 512)
    assert torch.equal(got, want)


def test_backbone_only_state_dict_loads(tmp_path: Path, resnet_state: tuple[Path, dict]) -> None:
    _, state = resnet_state
    trunk_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    path = tmp_path / "trunk.pt"
    torch.save(trunk_state, path)
    backbone, used = build_backbone("resnet18", str(path))
    assert used.kind == "file"
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, trunk_state[key])
    # A checkpoint wrapped as {"state_dict": ...} also loads.
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": state, "epoch": 3}, wrapped)
    backbone2, _ = build_backbone("resnet18", str(wrapped))
    assert _same_params(backbone, backbone2)


def test_file_identity_follows_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(_tv_resnet18(1).state_dict(), a)
    torch.save(_tv_resnet18(2).state_dict(), b)
    _, used_a = build_backbone("resnet18", str(a))
    _, used_b = build_backbone("resnet18", str(b))
    assert used_a.identity != used_b.identity


def test_wrong_state_dict_fails_naming_arch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "effnet.pt"
    torch.save(tvm.efficientnet_b0(weights=None).state_dict(), path)
    with pytest.raises(ValueError) as err:
        build_backbone("resnet18", str(path))
    msg = str(err.value)
    assert "resnet18" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("weights", ["/no/such/file.pt", "imagenett", "random"])
def test_bogus_weights_list_modes(weights: str) -> None:
    with pytest.raises(ValueError) as err:
        build_backbone("resnet18", weights)
    msg = str(err.value)
    assert weights in msg
    for mode in WEIGHT_MODES:
        assert mode in msg


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to fetch weights fails the test (NEIPALETTE_OFFLINE=1 means the local cache only)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"tried to download {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _checkpoint_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(tvm.ResNet18_Weights.DEFAULT.url).name


def test_auto_offline_without_cache_falls_back_loudly(caplog: pytest.LogCaptureFixture, no_download: None) -> None:
    assert not _checkpoint_file().exists()
    with caplog.at_level(logging.WARNING, logger="neipalette.models.registry"):
        backbone, used = build_backbone("resnet18", "auto", seed=5)
    assert used.kind == "none" and used.requested == "auto"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "RANDOM INIT" in warnings[0].getMessage()
    assert _checkpoint_file().name in warnings[0].getMessage()
    reference, _ = build_backbone("resnet18", "none", seed=5)
    assert _same_params(backbone, reference)


def test_auto_uses_cached_checkpoint(caplog: pytest.LogCaptureFixture, no_download: None) -> None:
    target = _checkpoint_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    state = _tv_resnet18(77).state_dict()
    torch.save(state, target)
    with caplog.at_level(logging.WARNING):
        backbone, used = build_backbone("resnet18", "auto")
    assert used.kind == "imagenet" and not used.is_random
    assert used.identity.startswith("imagenet-")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, state[key])
    explicit, used2 = build_backbone("resnet18", "imagenet")
    assert used2.kind == "imagenet"
    assert _same_params(backbone, explicit)


def test_imagenet_offline_without_cache_names_the_file(no_download: None) -> None:
    with pytest.raises(UserError) as err:  # one line at the command line, exit status 2
        build_backbone("resnet18", "imagenet")
    msg = str(err.value)
    assert "AssertionError" not in msg  # failed from the missing cache file, not a download attempt
    assert "\n" not in msg
    assert _checkpoint_file().name in msg
    assert str(_checkpoint_file().parent) in msg
