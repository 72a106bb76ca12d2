"""What the head sees: `features: final` as before, `multiscale` (final + pooled early stages), hybrid heads with
hand features, and a tuned weight decay (random-init backbones, no downloads)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from neipalette.data.samples import Sample, make_samples
from neipalette.models.estimator import CNNConfig, CNNEstimator, load_cnn_predictor
from neipalette.models.features import Multiscale, feature_net, find_taps
from neipalette.models.hand_features import colour_pattern_features, colour_stats_features, get_hand_features
from neipalette.models.heads import LinearHeads
from neipalette.models.registry import build_backbone
from neipalette.models.training import TrainSettings

TINY = CNNConfig(arch="resnet18", weights="none", image_size=32, n_views=2, batch_size=4)

pytestmark = pytest.mark.usefixtures("one_thread")


def _est(backbone, tmp_path: Path, **changes) -> CNNEstimator:
    return CNNEstimator(replace(TINY, cache_dir=str(tmp_path / "cache"), **changes), seed=0, backbone=backbone)


# ------------------------------------------------------------------------------------------------ multiscale


@pytest.mark.parametrize("arch,taps,width", [
    ("resnet18", ("relu", "layer2"), 512 + 64 + 128),
    ("efficientnet_b0", ("features.0", "features.3"), 1280 + 32 + 40),
    ("efficientnet_lite0", ("features.0", "features.5"), 1280 + 32 + 40),
])
def test_multiscale_taps_the_stem_and_a_stride_8_stage(arch: str, taps: tuple[str, str], width: int) -> None:
    model, _ = build_backbone(arch, "none", seed=0)
    assert find_taps(model, arch) == taps
    net, suffix = feature_net(model, arch, "multiscale")
    with torch.inference_mode():
        out = net(torch.rand(2, 3, 48, 48))
        final = model(torch.rand(2, 3, 48, 48))
    assert out.shape == (2, width)
    assert final.shape == (2, 1280 if arch != "resnet18" else 512)
    assert suffix == f"|multiscale:{','.join(taps)}"
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules())


def test_multiscale_starts_with_the_final_embedding_then_pooled_stages(backbone) -> None:
    model, _ = backbone
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        final = model(x)
        multi = Multiscale(model, ("relu", "layer2"))(x)
        stem = model.relu(model.bn1(model.conv1(x)))
        mid = model.layer2(model.layer1(model.maxpool(stem)))
    assert torch.equal(multi[:, :512], final)
    torch.testing.assert_close(multi[:, 512:576], stem.mean(dim=(2, 3)))
    torch.testing.assert_close(multi[:, 576:], mid.mean(dim=(2, 3)))


def test_a_network_without_stages_is_refused() -> None:
    flat = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.LazyLinear(8))
    with pytest.raises(ValueError, match="use model.features: final"):
        find_taps(flat, "flat")


def test_multiscale_features_have_the_expected_width_and_are_cached_apart(dataset, backbone, tmp_path: Path) -> None:
    samples = make_samples(dataset, range(len(dataset.outfits)), "pair")
    final = _est(backbone, tmp_path)
    multi = _est(backbone, tmp_path, features="multiscale")
    assert (final.dim, multi.dim) == (512, 704)
    a, b = final.embed_view0(samples), multi.embed_view0(samples)
    assert a.shape == (len(samples), 2, 512) and b.shape == (len(samples), 2, 704)
    assert torch.equal(b[..., :512], a)
    unit = (samples[0].images[0],)
    assert final.embedder.key(unit, 0) != multi.embedder.key(unit, 0)  # the mode is part of the cache key
    n_files = len(list((tmp_path / "cache").rglob("*.npy")))
    assert n_files == 2 * 2 * len(samples)  # view 0 of each garment, once per mode
    again = _est(backbone, tmp_path, features="multiscale")  # a new process: served from disk, right width
    assert torch.equal(again.embed_view0(samples), b)
    assert again.embedder.stats["forward_images"] == 0 and again.embedder.stats["disk_hits"] == 2 * len(samples)
    head = multi.fit(samples, learning_rate=1e-2, epochs=2, seed=0).head
    assert head.linear.in_features == 4 * 704


def test_final_features_are_todays_path(dataset, backbone, tmp_path: Path) -> None:
    """features: final runs the bare backbone (no wrapper, no hooks) under the weights' own cache identity."""
    est = _est(backbone, tmp_path)
    assert est.embedder.backbone.module is backbone[0]
    assert est.embedder.weights is est.weights
    assert est.hand is None
    samples = make_samples(dataset, range(len(dataset.outfits)), "pair")
    explicit = est.fit(samples, learning_rate=1e-2, epochs=3, seed=4, weight_decay=TINY.weight_decay)
    default = est.fit(samples, learning_rate=1e-2, epochs=3, seed=4)
    assert np.array_equal(explicit.predict_proba(samples), default.predict_proba(samples))


def test_features_are_refused_outside_head_mode() -> None:
    with pytest.raises(ValueError, match="fine_tune head"):
        replace(TINY, features="multiscale", fine_tune="full")
    with pytest.raises(ValueError, match="final, multiscale"):
        replace(TINY, features="deep")


# ------------------------------------------------------------------------------------------------ hybrid


def test_hybrid_head_sees_cnn_and_colour_features(dataset, backbone, tmp_path: Path) -> None:
    samples = make_samples(dataset, range(len(dataset.outfits)), "pair")
    est = _est(backbone, tmp_path, hybrid="colour_stats")
    hand = colour_stats_features(samples)
    assert hand.shape == (len(samples), 18)  # 6 per garment + 6 pair differences
    np.testing.assert_allclose(est.hand_features(samples).numpy(), hand, rtol=1e-6)
    x = est.head_input(samples)
    assert x.shape == (len(samples), 4 * 512 + 18)
    predictor = est.fit(samples, learning_rate=3e-2, epochs=40, seed=0)
    # the 18 colour inputs are as loud together as the 2048 CNN inputs: scaled by sqrt(2048 / 18) once standardised
    loudness = predictor.head.scale[-18:].numpy() * (hand.std(0) + 1e-6)
    np.testing.assert_allclose(loudness, np.sqrt(2048 / 18), rtol=1e-4)
    proba = predictor.predict_proba(samples)
    assert proba.shape == (len(samples),) and np.all((proba >= 0) & (proba <= 1))
    y = np.array([s.label for s in samples])
    assert np.array_equal((proba > 0.5).astype(int), y)  # 8 samples, 2k dims: it fits its training labels
    predictor.save(tmp_path / "saved", include_backbone=True)
    loaded = load_cnn_predictor(tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict_proba(samples), proba, atol=1e-6)


def test_hybrid_takes_any_hand_feature_function(dataset, backbone, tmp_path: Path) -> None:
    samples = make_samples(dataset, range(len(dataset.outfits)), "pair")
    est = _est(backbone, tmp_path, hybrid=f"{__name__}:two_numbers")
    assert est.head_input(samples).shape == (len(samples), 4 * 512 + 2)
    with pytest.raises(ValueError, match="colour_stats"):
        get_hand_features("no_such_features")
    with pytest.raises(ValueError, match="cannot be imported"):
        get_hand_features("neipalette.nowhere:fn")


def test_colour_pattern_hand_features_add_hue_relations_and_patterns(dataset, backbone, tmp_path: Path) -> None:
    samples = make_samples(dataset, range(len(dataset.outfits)), "pair")
    x = colour_pattern_features(samples)
    assert x.shape == (len(samples), 18 + 3 + 6 + 2 + 1)  # colour_stats, hue relations, harmony, 2 patterns, product
    np.testing.assert_allclose(x[:, :18], colour_stats_features(samples))
    np.testing.assert_allclose(x[:, -1], x[:, -3] * x[:, -2])
    est = _est(backbone, tmp_path, hybrid="colour_pattern")
    assert est.head_input(samples).shape == (len(samples), 4 * 512 + 30)


def two_numbers(samples: list[Sample]) -> np.ndarray:
    return np.array([[len(s.images), len(s.outfit_id)] for s in samples], dtype=float)


# ------------------------------------------------------------------------------------------------ weight decay


def test_per_run_weight_decay_shrinks_only_its_run() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 1, 30, generator=g)
    y = (x[:, 0, 0] > 0).long().numpy()
    runs = [TrainSettings(learning_rate=5e-2, epochs=30, seed=1, batch_size=8, weight_decay=wd) for wd in (1e-4, 1.0)]
    heads = list(LinearHeads([x, x], [y, y], runs, n_units=1).epochs(30))[-1]
    weak, strong = heads.head(0).linear.weight, heads.head(1).linear.weight
    assert strong.norm() < 0.5 * weak.norm()
    alone = list(LinearHeads([x], [y], runs[:1], n_units=1).epochs(30))[-1].head(0).linear.weight
    torch.testing.assert_close(alone, weak, rtol=0, atol=1e-6)  # the other run's decay does not leak


def test_estimator_weight_decay_changes_the_weights(dataset, backbone, tmp_path: Path) -> None:
    samples = make_samples(dataset, range(len(dataset.outfits)), "pair")
    est = _est(backbone, tmp_path, features="multiscale")
    weak = est.fit(samples, learning_rate=1e-2, epochs=20, seed=0, weight_decay=1e-4).head.linear.weight
    strong = est.fit(samples, learning_rate=1e-2, epochs=20, seed=0, weight_decay=1.0).head.linear.weight
    assert strong.norm() < 0.7 * weak.norm()
    # scored on training samples: random-init features hold dims that are constant on 6 samples, and a held-out
    # sample's value there, standardised with a near-zero spread, saturates every probability
    folds = [(np.arange(0, 6), np.arange(0, 2)), (np.arange(2, 8), np.arange(6, 8))]
    a = list(est.learning_curves(samples, folds, learning_rate=1e-4, epochs=3, seeds=[1, 2], weight_decay=1e-4))
    b = list(est.learning_curves(samples, folds, learning_rate=1e-4, epochs=3, seeds=[1, 2], weight_decay=1.0))
    assert not np.allclose(a[-1][0], b[-1][0]) and not np.allclose(a[-1][1], b[-1][1])
