"""Fine-tuning beyond the head: the last-stage split, last_block on cached activations, learning curves, devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neipalette.data.dataset import load_dataset
from neipalette.data.samples import make_samples
from neipalette.models.device import OnDevice, describe, resolve_device
from neipalette.models.estimator import CNNConfig, CNNEstimator, load_cnn_predictor
from neipalette.models import registry
from neipalette.models.registry import build_backbone
from neipalette.models.stages import split_last_stage
from tests.conftest import make_tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory):
    root = make_tiny_dataset(tmp_path_factory.mktemp("ft") / "tiny", n_outfits=10, size=32)
    ds = load_dataset(root)
    return make_samples(ds, range(7), "pair"), make_samples(ds, range(7, 10), "pair")


@pytest.mark.parametrize("arch, tail_params", [("resnet18", "layer4"), ("efficientnet_b0", "features.7"),
                                                ("efficientnet_lite0", "features.16"),
                                                ("torchvision:mobilenet_v3_small", "features.11")])
def test_trunk_then_tail_is_the_whole_network(arch: str, tail_params: str) -> None:
    model, _ = build_backbone(arch, "none", seed=1)
    trunk, tail = split_last_stage(model, arch)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.allclose(tail(trunk(x)), model(x), rtol=1e-5, atol=1e-6)
    # the tail holds the last stage (shared with the model), the trunk everything before it
    named = {id(p): n for n, p in model.named_parameters()}
    tail_names = {named[id(p)] for p in tail.parameters()}
    assert any(n.startswith(tail_params) for n in tail_names)
    assert not tail_names & {named[id(p)] for p in trunk.parameters()}
    assert len(tail_names) < len(named)


def test_unsupported_network_is_one_line() -> None:
    model, _ = build_backbone("torchvision:vit_b_16", "none", seed=0)
    with pytest.raises(ValueError) as err:
        split_last_stage(model, "torchvision:vit_b_16")
    assert "last_block" in str(err.value) and "\n" not in str(err.value)


def _config(tmp_path: Path, **kw) -> CNNConfig:
    base = dict(arch="resnet18", weights="none", fine_tune="last_block", image_size=32, n_views=2, batch_size=4,
                cache_dir=str(tmp_path / "cache"))
    return CNNConfig(**{**base, **kw})


def test_last_block_cached_equals_recomputed_and_trains_only_the_last_stage(tmp_path: Path, samples) -> None:
    train, test = samples
    cached = CNNEstimator(_config(tmp_path), seed=0)
    cached.warm(train + test)
    before = cached.stages.stats["forward_images"]
    p_cached = cached.fit(train, learning_rate=1e-3, epochs=3, seed=5).predict_proba(test)
    assert cached.stages.stats["forward_images"] == before  # fits only look activations up
    naive = CNNEstimator(_config(tmp_path, cache=False), seed=0)
    fit = naive.fit(train, learning_rate=1e-3, epochs=3, seed=5)
    p_naive = fit.predict_proba(test)
    assert naive.stages.stats["forward_images"] > 3 * len(train)  # the trunk ran at every step
    assert np.max(np.abs(p_cached - p_naive)) <= 1e-6
    # the trained copy's last stage moved, the shared backbone did not
    ref, _ = build_backbone("resnet18", "none", seed=0)
    for (name, p), (_, q) in zip(naive.backbone.named_parameters(), ref.named_parameters()):
        assert torch.equal(p, q), name
    trained = dict(fit.full.backbone.named_parameters())
    assert not torch.equal(trained["0.0.conv1.weight"], ref.layer4[0].conv1.weight)


@pytest.mark.parametrize("fine_tune", ["head", "last_block", "full"])
def test_learning_curve_models_are_the_models_of_shorter_runs(tmp_path: Path, samples, fine_tune: str) -> None:
    train, test = samples
    est = CNNEstimator(_config(tmp_path, fine_tune=fine_tune, arch="efficientnet_b0"), seed=0)
    est.warm(train + test)
    curve = [p.predict_proba(test) for p in est.fit_epochs(train, learning_rate=3e-3, epochs=3, seed=7)]
    assert len(curve) == 3
    for e in (1, 3):
        direct = est.fit(train, learning_rate=3e-3, epochs=e, seed=7).predict_proba(test)
        assert np.array_equal(direct, curve[e - 1]), e
    assert not np.array_equal(curve[0], curve[2])


def test_interleaved_runs_keep_their_own_random_stream(tmp_path: Path, samples) -> None:
    """EfficientNet's stochastic depth draws random numbers: runs interleaved by epoch == runs one by one."""
    train, test = samples
    est = CNNEstimator(_config(tmp_path, fine_tune="full", arch="efficientnet_b0"), seed=0)
    a = est.fit_epochs(train[:5], learning_rate=1e-3, epochs=2, seed=1)
    b = est.fit_epochs(train[2:], learning_rate=1e-3, epochs=2, seed=2)
    interleaved = [(next(a).predict_proba(test), next(b).predict_proba(test)) for _ in range(2)][-1]
    alone_a = est.fit(train[:5], learning_rate=1e-3, epochs=2, seed=1).predict_proba(test)
    alone_b = est.fit(train[2:], learning_rate=1e-3, epochs=2, seed=2).predict_proba(test)
    assert np.array_equal(interleaved[0], alone_a) and np.array_equal(interleaved[1], alone_b)


def test_last_block_predictor_round_trips(tmp_path: Path, samples) -> None:
    train, test = samples
    est = CNNEstimator(_config(tmp_path), seed=0)
    fit = est.fit(train, learning_rate=1e-3, epochs=2, seed=3)
    for bundle in (False, True):
        path = tmp_path / f"saved-{bundle}"
        fit.save(path, include_backbone=bundle)
        loaded = load_cnn_predictor(path)
        assert np.allclose(loaded.predict_proba(test), fit.predict_proba(test), atol=1e-7)


def test_a_bundled_backbone_loads_without_rebuilding_its_random_init(tmp_path: Path, samples,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The saved state replaces every weight and BatchNorm statistic: loading skips the calibration pass."""
    train, test = samples
    fit = CNNEstimator(_config(tmp_path), seed=0).fit(train, learning_rate=1e-3, epochs=2, seed=3)
    fit.save(tmp_path / "saved", include_backbone=True)

    def no_calibration(*args, **kwargs):
        raise AssertionError("a bundled backbone was rebuilt with its random init")

    monkeypatch.setattr(registry, "_random_model", no_calibration)
    loaded = load_cnn_predictor(tmp_path / "saved")
    assert loaded.estimator.weights == fit.estimator.weights
    assert np.allclose(loaded.predict_proba(test), fit.predict_proba(test), atol=1e-7)


def test_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            resolve_device("cuda")
        assert resolve_device("auto").type in ("cpu", "mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert describe(torch.device("cpu")).startswith("cpu (")
    with pytest.raises(ValueError, match="device"):
        CNNConfig(device="tpu")


def test_on_device_wrapper_is_exact_on_cpu() -> None:
    model, _ = build_backbone("resnet18", "none", seed=0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(OnDevice(model, torch.device("cpu"))(x), model(x))


def test_fixed_size_model_says_which_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        CNNEstimator(_config(tmp_path, arch="torchvision:vit_b_16", fine_tune="head", image_size=64), seed=0)
    assert "model.image_size: 224" in str(err.value) and "\n" not in str(err.value)
