"""A garment's pattern statistic: band-pass (difference-of-Gaussians) energy of its CIELAB colour inside its mask.

Stripes and checks are repeated edges a few pixels apart between two colours at least ~20 ΔE apart; plain
garments have slow shading (folds) and a faint fine weave. A band-pass of the Lab image (Gaussian σ SIGMA_FINE
minus σ SIGMA_COARSE, both computed by normalised convolution inside the garment mask, so the garment's outline
does not ring) keeps the pattern's edges and drops both. The statistic is log of the upper quartile of the
band-pass magnitude (ΔE units) over the garment's interior: a quartile, not a mean, so a collar or a seam does
not read as a pattern. The full Lab vector, not lightness alone, because a pattern can differ in hue only.
`otsu_threshold` splits such values into plain and patterned without labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from neipalette.colour.extract import foreground_mask
from neipalette.colour.harmony import srgb_to_lab
from neipalette.colour.imaging import ContentMemo

PATTERN_SIZE = 160  # longest side of the working copy: stripes 4-10% of the garment stay several pixels apart
SIGMA_FINE = 0.7  # pixels of the working copy
SIGMA_COARSE = 2.5
QUANTILE = 0.75
FLOOR = 1e-3  # ΔE; log of a perfectly flat garment stays finite

def pattern_energy(path: str | Path) -> float:
    """The pattern statistic of the garment in the image at `path` (memoised on the file's content digest)."""
    return _MEMO(path)


def clear_cache() -> None:
    _MEMO.clear()


def pattern_energy_of_image(img: Image.Image) -> float:
    """log(upper quartile of |DoG(Lab)|) over the garment's interior, for an RGB PIL image (no caching)."""
    w, h = img.size
    scale = PATTERN_SIZE / max(w, h)
    if scale < 1.0:
        img = img.resize((max(8, round(w * scale)), max(8, round(h * scale))), Image.Resampling.BOX)
    lab = srgb_to_lab(np.asarray(img, dtype=np.float64) / 255.0)
    mask = foreground_mask(lab)
    band = _masked_blur(lab, mask, SIGMA_FINE) - _masked_blur(lab, mask, SIGMA_COARSE)
    interior = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), iterations=2)
    if interior.sum() < 16:  # a sliver: the whole mask is all there is
        interior = mask
    magnitude = np.linalg.norm(band[interior], axis=-1)
    return float(np.log(np.quantile(magnitude, QUANTILE) + FLOOR))


def _masked_blur(lab: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of the masked pixels only (normalised convolution): the background never leaks in."""
    m = mask.astype(np.float64)
    weight = np.maximum(ndimage.gaussian_filter(m, sigma), 1e-6)
    return np.stack([ndimage.gaussian_filter(lab[..., c] * m, sigma) / weight for c in range(lab.shape[-1])], -1)


def otsu_threshold(values: np.ndarray) -> float:
    """The cut between two groups of 1-D values that maximises their between-group variance (Otsu 1979),
    over the midpoints of the sorted values; uses no labels. One value, or all equal: above all of them."""
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if len(v) < 2 or v[0] == v[-1]:
        return float(v[-1] + 1.0) if len(v) else 0.0
    n = len(v)
    k = np.arange(1, n)  # the first k values below the cut
    csum = np.cumsum(v)[:-1]
    mean_lo = csum / k
    mean_hi = (v.sum() - csum) / (n - k)
    between = k * (n - k) * (mean_lo - mean_hi) ** 2
    distinct = v[1:] > v[:-1]  # a cut between equal values does not exist
    best = int(np.argmax(np.where(distinct, between, -np.inf)))
    return float((v[best] + v[best + 1]) / 2)


_MEMO = ContentMemo(lambda img: pattern_energy_of_image(img))  # the name looked up per call, as before
