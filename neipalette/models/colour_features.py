"""What the colour models see of a sample: each garment's dominant CIELAB colour and features computed from it
(shared by the colour_stats and colour_pattern baselines)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from neipalette.colour.extract import dominant_lab
from neipalette.data.samples import Sample


def garment_labs(samples: Sequence[Sample]) -> np.ndarray:
    """(n, k, 3) dominant Lab colour of each of the k images of every sample (k the same for all)."""
    counts = {len(s.images) for s in samples}
    if len(counts) != 1:
        raise ValueError(f"samples mix {sorted(counts)} images per sample; use one input mode per call")
    return np.array([[dominant_lab(p) for p in s.images] for s in samples], dtype=np.float64)


def fitted_garment_labs(samples: Sequence[Sample], n_images: int, model: str) -> np.ndarray:
    """`garment_labs` of samples scored by a model fit on `n_images`-image samples; another input mode is a
    ValueError naming `model`."""
    labs = garment_labs(samples)
    if labs.shape[1] != n_images:
        raise ValueError(
            f"{model} was fit on {n_images}-image samples but got {labs.shape[1]}-image samples; "
            "predict with the input mode it was trained with"
        )
    return labs


def _garment_features(lab: np.ndarray) -> np.ndarray:
    """(n, 6): L, a, b, chroma, cos(hue), sin(hue) of one garment per row."""
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    hue = np.arctan2(lab[:, 2], lab[:, 1])
    return np.column_stack([lab, chroma, np.cos(hue), np.sin(hue)])


def _pair_features(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """(n, 6): |dL|, |da|, |db|, dE, |dC| and the CIELAB hue difference dH (chroma-weighted, not an angle)."""
    diff = np.abs(top - bottom)
    delta_e = np.linalg.norm(top - bottom, axis=1)
    delta_c = np.abs(np.hypot(top[:, 1], top[:, 2]) - np.hypot(bottom[:, 1], bottom[:, 2]))
    delta_h = np.sqrt(np.clip(delta_e**2 - diff[:, 0] ** 2 - delta_c**2, 0.0, None))
    return np.column_stack([diff, delta_e, delta_c, delta_h])


def colour_features(labs: np.ndarray) -> np.ndarray:
    """Feature matrix from (n, k, 3) garment colours: per-garment features, plus differences when k == 2."""
    parts = [_garment_features(labs[:, j]) for j in range(labs.shape[1])]
    if labs.shape[1] == 2:
        parts.append(_pair_features(labs[:, 0], labs[:, 1]))
    return np.hstack(parts)
