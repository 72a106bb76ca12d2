"""Ou & Luo (2006) harmony against an independent scalar transcription, and the colour conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neipalette.colour.harmony import lab_to_srgb, ou_luo_harmony, srgb_to_lab


def _reference_ch(c1: tuple[float, float, float], c2: tuple[float, float, float]) -> float:
    """Ou & Luo (2006) for one pair, written out term by term with plain floats.

    Uses the angular form of the CIELAB hue difference, dH = 2 sqrt(C1 C2) sin(dh / 2), rather than
    the sqrt(dE^2 - dL^2 - dC^2) form of the library, so the two implementations share no code path.
    """
    L1, a1, b1 = c1
    L2, a2, b2 = c2
    C1, C2 = math.hypot(a1, b1), math.hypot(a2, b2)
    h1 = math.degrees(math.atan2(b1, a1)) % 360.0
    h2 = math.degrees(math.atan2(b2, a2)) % 360.0
    dh = math.radians(h1 - h2)
    dH = 2.0 * math.sqrt(C1 * C2) * math.sin(dh / 2.0)
    dCab = C1 - C2
    dC = math.sqrt(dH**2 + (dCab / 1.46) ** 2)
    HC = 0.04 + 0.53 * math.tanh(0.8 - 0.045 * dC)

    HLsum = 0.28 + 0.54 * math.tanh(-3.88 + 0.029 * (L1 + L2))
    HdL = 0.14 + 0.15 * math.tanh(-2.0 + 0.2 * abs(L1 - L2))
    HL = HLsum + HdL

    HH = 0.0
    for L, C, h in ((L1, C1, h1), (L2, C2, h2)):
        EC = 0.5 + 0.5 * math.tanh(-2.0 + 0.5 * C)
        HS = -0.08 - 0.14 * math.sin(math.radians(h + 50.0)) - 0.07 * math.sin(math.radians(2.0 * h + 90.0))
        x = (90.0 - h) / 10.0
        EY = ((0.22 * L - 12.8) / 10.0) * math.exp(x - math.exp(x))
        HH += EC * (HS + EY)
    return HC + HL + HH


PAIRS = [
    ((50.0, 0.0, 0.0), (50.0, 0.0, 0.0)),  # identical grey
    ((95.0, 0.0, 0.0), (10.0, 0.0, 0.0)),  # white and black
    ((53.24, 80.09, 67.20), (32.30, 79.19, -107.86)),  # sRGB red and blue
    ((17.3, 3.9, -17.8), (80.6, 1.6, 17.3)),  # navy and beige
    ((46.1, 0.8, -26.9), (85.6, -6.0, 69.1)),  # denim and yellow
    ((40.8, 56.9, 33.5), (56.5, -45.1, 25.0)),  # red and green
    ((70.0, 20.0, 60.0), (30.0, -5.0, -40.0)),
    ((60.0, 1.0, -1.0), (60.0, -1.0, 1.0)),  # near-neutrals with opposite hues
]


@pytest.mark.parametrize(("c1", "c2"), PAIRS)
def test_matches_independent_reference(c1, c2) -> None:
    assert float(ou_luo_harmony(np.array(c1), np.array(c2))) == pytest.approx(_reference_ch(c1, c2), abs=1e-3)


@pytest.mark.parametrize(("c1", "c2"), PAIRS)
def test_symmetric(c1, c2) -> None:
    assert float(ou_luo_harmony(np.array(c1), np.array(c2))) == pytest.approx(
        float(ou_luo_harmony(np.array(c2), np.array(c1))), abs=1e-12
    )


def test_vectorised_over_leading_axes() -> None:
    g = np.random.default_rng(0)
    lab1 = np.stack([g.uniform(5, 95, (2, 3, 4)), g.uniform(-60, 60, (2, 3, 4)), g.uniform(-60, 60, (2, 3, 4))], -1)
    lab2 = lab1[::-1, ::-1] + g.normal(0, 10, lab1.shape)
    ch = ou_luo_harmony(lab1, lab2)
    assert ch.shape == (2, 3, 4)
    for idx in np.ndindex(2, 3, 4):
        assert ch[idx] == pytest.approx(_reference_ch(tuple(lab1[idx]), tuple(lab2[idx])), abs=1e-3)


def test_grey_pairs_score_above_clashing_hues() -> None:
    similar = float(ou_luo_harmony(np.array([60.0, 0.0, 0.0]), np.array([40.0, 0.0, 0.0])))
    clash = float(ou_luo_harmony(np.array([40.8, 56.9, 33.5]), np.array([56.5, -45.1, 25.0])))
    assert similar > clash


def test_srgb_to_lab_known_values() -> None:
    # scikit-image's sRGB matrix and D65 white point disagree in the 4th digit: white lands ~0.005 off neutral
    np.testing.assert_allclose(srgb_to_lab(np.array([1.0, 1.0, 1.0])), [100.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(srgb_to_lab(np.array([0.0, 0.0, 0.0])), [0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(srgb_to_lab(np.array([1.0, 0.0, 0.0])), [53.24, 80.09, 67.20], atol=0.02)
    np.testing.assert_allclose(srgb_to_lab(np.array([0.0, 0.0, 1.0])), [32.30, 79.19, -107.86], atol=0.02)


def test_lab_round_trip() -> None:
    rgb = np.random.default_rng(1).uniform(0, 1, (5, 7, 3))
    np.testing.assert_allclose(lab_to_srgb(srgb_to_lab(rgb)), rgb, atol=1e-6)
