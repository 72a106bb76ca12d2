"""Tests for neipalette.colour.pattern: the band-pass pattern statistic and the label-free plain/patterned cut."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from neipalette.colour.pattern import otsu_threshold, pattern_energy, pattern_energy_of_image
from neipalette.data.garments import Pattern, render_garment

NAVY = np.array([0.2, 0.3, 0.6])


def _stat(shape: str, seed: int, pattern: Pattern | None) -> float:
    img = render_garment(shape, NAVY, 160, np.random.default_rng(seed), pattern=pattern)
    return pattern_energy_of_image(Image.fromarray(img))


@pytest.mark.parametrize("shape", ["tshirt", "trousers", "skirt"])
def test_a_patterned_garment_scores_clearly_above_the_same_garment_plain(shape: str) -> None:
    # same seed: same cut, folds, weave, backdrop and light; only the pattern differs
    plain = _stat(shape, 0, None)
    stripes = _stat(shape, 0, Pattern("stripes", (1.0, 1.0, 1.0)))
    checks = _stat(shape, 0, Pattern("checks", (0.9, 0.1, 0.1)))
    assert stripes - plain > 0.8 and checks - plain > 0.8, (plain, stripes, checks)  # log units: 2.2x the energy


def test_a_hue_only_pattern_counts_too() -> None:
    # red checks on green of about the same lightness: invisible to a lightness-only statistic
    green = np.array([0.25, 0.45, 0.25])
    img = render_garment("tshirt", green, 160, np.random.default_rng(1))
    checked = render_garment("tshirt", green, 160, np.random.default_rng(1), pattern=Pattern("checks", (0.62, 0.2, 0.2)))
    plain, patterned = (pattern_energy_of_image(Image.fromarray(a)) for a in (img, checked))
    assert patterned - plain > 0.8, (plain, patterned)


def test_flat_image_is_finite_and_lowest(tmp_path) -> None:
    path = tmp_path / "flat.png"
    Image.new("RGB", (64, 64), (90, 40, 160)).save(path)
    flat = pattern_energy(path)
    assert np.isfinite(flat) and flat < _stat("tshirt", 0, None)
    assert pattern_energy(path) == flat  # memoised


def test_otsu_cut_separates_two_groups_without_labels() -> None:
    rng = np.random.default_rng(0)
    plain, patterned = rng.normal(0.2, 0.3, 60), rng.normal(2.5, 0.4, 20)
    cut = otsu_threshold(np.concatenate([patterned, plain]))
    assert plain.max() < cut < patterned.min()
    assert otsu_threshold(np.array([1.0, 1.0, 1.0])) > 1.0  # nothing to split: every value is "plain"
