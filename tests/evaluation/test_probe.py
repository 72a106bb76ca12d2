"""Tests for neipalette.evaluation.probe: grouped-CV ridge R² of what a feature set keeps."""

from __future__ import annotations

import numpy as np

from neipalette.evaluation.probe import probe_r2


def _garments(n_outfits: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    lab = np.column_stack([rng.uniform(20, 90, 2 * n_outfits), rng.normal(0, 25, 2 * n_outfits),
                           rng.normal(5, 25, 2 * n_outfits)])
    groups = np.repeat(np.arange(n_outfits), 2)
    return rng, lab, groups, {"L": lab[:, 0], "a": lab[:, 1], "b": lab[:, 2]}


def test_features_that_encode_colour_exactly_get_r2_near_one() -> None:
    rng, lab, groups, targets = _garments()
    mixing = rng.normal(size=(3, 64))  # colour spread linearly over 64 coordinates, plus 64 junk ones
    x = np.hstack([lab @ mixing, rng.normal(size=(len(lab), 64))])
    r2 = probe_r2(x, targets, groups, seed=1)
    assert min(r2.values()) > 0.97, r2


def test_noise_features_get_r2_near_zero_or_below() -> None:
    rng, lab, groups, targets = _garments()
    r2 = probe_r2(rng.normal(size=(len(lab), 256)), targets, groups, seed=1)
    assert max(r2.values()) < 0.1, r2


def test_hue_lost_shows_as_low_a_and_b_only() -> None:
    rng, lab, groups, targets = _garments()
    x = np.hstack([lab[:, :1] @ rng.normal(size=(1, 32)), rng.normal(size=(len(lab), 32))])  # lightness only
    r2 = probe_r2(x, targets, groups, seed=1)
    assert r2["L"] > 0.95 and r2["a"] < 0.1 and r2["b"] < 0.1, r2


def test_folds_are_grouped_so_an_outfit_cannot_be_memorised() -> None:
    # Both garments of an outfit share a target and a one-hot outfit code: ungrouped folds would read one
    # garment's target off its partner's code; grouped folds never see the test outfit's code trained.
    rng, _, groups, _ = _garments()
    per_outfit = rng.normal(size=groups.max() + 1)[groups]
    one_hot = np.eye(groups.max() + 1)[groups]
    r2 = probe_r2(one_hot, {"t": per_outfit}, groups, seed=1)
    assert r2["t"] < 0.05, r2


def test_constant_target_or_one_group_gives_nan() -> None:
    rng, lab, groups, _ = _garments(n_outfits=10)
    assert np.isnan(probe_r2(lab, {"c": np.ones(len(lab))}, groups)["c"])
    assert np.isnan(probe_r2(lab, {"L": lab[:, 0]}, np.zeros(len(lab)))["L"])
