"""Ou & Luo (2006) two-colour harmony model and colour-space helpers."""

from __future__ import annotations

import numpy as np
from skimage import color


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (shape (..., 3)) to CIELAB (D65, 2 degree observer)."""
    rgb = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    return color.rgb2lab(rgb, illuminant="D65", observer="2")


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65, 2 degree) to sRGB in [0, 1], clipped to the gamut."""
    rgb = color.lab2rgb(np.asarray(lab, dtype=np.float64), illuminant="D65", observer="2")
    return np.clip(rgb, 0.0, 1.0)


def _hue_effect(lab: np.ndarray) -> np.ndarray:
    """HSY = EC * (HS + EY) for one colour of the pair."""
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = np.hypot(a, b)
    h = np.degrees(np.arctan2(b, a)) % 360.0
    ec = 0.5 + 0.5 * np.tanh(-2.0 + 0.5 * chroma)
    hs = -0.08 - 0.14 * np.sin(np.radians(h + 50.0)) - 0.07 * np.sin(np.radians(2.0 * h + 90.0))
    x = (90.0 - h) / 10.0
    ey = ((0.22 * L - 12.8) / 10.0) * np.exp(x - np.exp(x))
    return ec * (hs + ey)


def ou_luo_harmony(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """Colour-harmony score CH of two CIELAB colours (arrays of shape (..., 3)); larger is more harmonious."""
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    c1 = np.hypot(lab1[..., 1], lab1[..., 2])
    c2 = np.hypot(lab2[..., 1], lab2[..., 2])
    delta_c_ab = c1 - c2
    delta_e_sq = np.sum((lab1 - lab2) ** 2, axis=-1)
    delta_l = lab1[..., 0] - lab2[..., 0]
    # CIELAB hue difference: dH^2 = dE^2 - dL^2 - dC^2 (clipped against rounding below zero)
    delta_h_sq = np.clip(delta_e_sq - delta_l**2 - delta_c_ab**2, 0.0, None)
    delta_c = np.sqrt(delta_h_sq + (delta_c_ab / 1.46) ** 2)
    hc = 0.04 + 0.53 * np.tanh(0.8 - 0.045 * delta_c)
    l_sum = lab1[..., 0] + lab2[..., 0]
    hl_sum = 0.28 + 0.54 * np.tanh(-3.88 + 0.029 * l_sum)
    hl_delta = 0.14 + 0.15 * np.tanh(-2.0 + 0.2 * np.abs(delta_l))
    hh = _hue_effect(lab1) + _hue_effect(lab2)
    return hc + hl_sum + hl_delta + hh
