"""Dominant garment colour of a product-style image, in CIELAB.

Steps, on a copy downsampled to at most WORK_SIZE pixels:
1. background: a smooth quadratic Lab surface fit to the border ring (trimmed, so a garment touching the
   border does not drag it), which covers plain, gradient and vignetted backdrops;
2. garment mask: pixels far from that surface (threshold scaled by the border's own noise), the connected
   component covering the image centre (gaps cut by a background-coloured pattern bridged), or the centre
   crop when no trustworthy mask is found (e.g. a white shirt on a white backdrop);
3. colour: k-means in Lab, clusters closer than MERGE_DELTA_E merged (shading), and the median of the group
   with the most interior pixels, so stripes/checks and the blended pixels along them do not shift it much.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from neipalette.colour.harmony import srgb_to_lab
from neipalette.colour.imaging import ContentMemo

log = logging.getLogger(__name__)

WORK_SIZE = 128  # longest side of the working copy: enough for a garment's colour, fast for 1000s of images
MIN_FOREGROUND = 0.03  # a mask smaller than this fraction of the image is not trusted: fall back to the centre
MIN_CENTRE_COVER = 0.25  # the garment mask must cover this much of the central region to be trusted
BRIDGE_FRACTION = 0.04  # closing size (fraction of the image) that rejoins a garment split by its pattern
MERGE_DELTA_E = 15.0  # k-means clusters closer than this are one colour split by shading
N_CLUSTERS = 3

def dominant_lab(path: str | Path) -> np.ndarray:
    """The dominant CIELAB colour (L, a, b) of the garment in the image at `path`.

    Memoised on the file's content digest, so repeated fits over the same images do not recompute.
    """
    return _MEMO(path).copy()


def clear_cache() -> None:
    _MEMO.clear()


def dominant_lab_of_image(img: Image.Image) -> np.ndarray:
    """Dominant garment colour of an RGB PIL image (no caching)."""
    lab = _working_lab(img)
    mask = foreground_mask(lab)
    return _dominant_colour(lab, mask)


def _working_lab(img: Image.Image) -> np.ndarray:
    """A downsampled Lab copy; BOX averaging also suppresses pixel noise and fine fabric texture."""
    w, h = img.size
    scale = WORK_SIZE / max(w, h)
    if scale < 1.0:
        img = img.resize((max(8, round(w * scale)), max(8, round(h * scale))), Image.BOX)
    return srgb_to_lab(np.asarray(img, dtype=np.float64) / 255.0)


def _border(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    width = max(2, round(0.04 * min(h, w)))
    ring = np.zeros((h, w), dtype=bool)
    ring[:width, :] = ring[-width:, :] = True
    ring[:, :width] = ring[:, -width:] = True
    return ring


def _design(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Quadratic surface terms in normalised coordinates: covers flat, linear and radial/vignette backgrounds."""
    h, w = shape
    y = ys / max(h - 1, 1) * 2.0 - 1.0
    x = xs / max(w - 1, 1) * 2.0 - 1.0
    return np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=-1)


def _fit_background(lab: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust (trimmed) least-squares background surface; returns (model over the image, border residuals)."""
    ys, xs = np.nonzero(ring)
    design = _design(ys.astype(float), xs.astype(float), lab.shape[:2])
    values = lab[ring]
    # Start from the border pixels nearest the median colour: a garment touching the border is excluded early.
    dist = np.linalg.norm(values - np.median(values, axis=0), axis=1)
    keep = dist <= np.quantile(dist, 0.6)
    for _ in range(3):
        coef = _least_squares(design[keep], values[keep])
        resid = np.linalg.norm(values - design @ coef, axis=1)
        cut = max(3.0 * np.median(resid[keep]), 4.0)
        new_keep = resid <= cut
        if new_keep.sum() < design.shape[1] * 3 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    gy, gx = np.mgrid[0 : lab.shape[0], 0 : lab.shape[1]]
    model = _design(gy.astype(float), gx.astype(float), lab.shape[:2]) @ coef
    return model, resid[keep]


def _least_squares(design: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Normal equations with a tiny ridge: a 6x6 solve, far cheaper than lstsq on threaded BLAS."""
    gram = design.T @ design
    return np.linalg.solve(gram + 1e-6 * np.eye(len(gram)), design.T @ values)


def foreground_mask(lab: np.ndarray) -> np.ndarray:
    """Boolean garment mask of a Lab image: far from the border-fitted background, largest component."""
    ring = _border(lab.shape[:2])
    model, border_resid = _fit_background(lab, ring)
    dist = np.linalg.norm(lab - model, axis=-1)
    # Noisy/textured backgrounds widen the border residuals; a floor keeps flat backgrounds from flagging noise.
    threshold = max(10.0, 2.0 * float(np.quantile(border_resid, 0.95)))
    far = ndimage.binary_opening(dist > threshold, structure=np.ones((3, 3), bool))
    # Stripes/checks in the background's colour cut the garment into pieces: bridge gaps of a few pixels to
    # pick the garment's component, but keep only its far-from-background pixels (the closing also swallows
    # background gaps under the sleeves and between the legs).
    bridge = max(3, round(BRIDGE_FRACTION * max(lab.shape[:2]))) | 1
    joined = ndimage.binary_closing(far, structure=np.ones((bridge, bridge), bool), border_value=0)
    centre = _centre_crop(lab.shape[:2])
    mask = _central_component(joined | far, centre) & far
    # Garments are photographed centred: a mask that barely covers the centre found a shadow or a background
    # patch (or the garment is the background's colour); the centre itself is then the best garment sample.
    if mask.sum() < MIN_FOREGROUND * mask.size or (mask & centre).sum() < MIN_CENTRE_COVER * centre.sum():
        log.debug("foreground mask unreliable (%d px); using the centre crop", int(mask.sum()))
        mask = centre
    return mask


def _central_component(mask: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The connected component with the most pixels in the central region (ties: the larger one)."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    index = np.arange(1, n + 1)
    in_centre = ndimage.sum(centre, labels, index=index)
    sizes = ndimage.sum(mask, labels, index=index)
    best = max(range(n), key=lambda i: (in_centre[i], sizes[i]))
    return labels == (best + 1)


def _centre_crop(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    mask[h // 4 : h - h // 4, w // 4 : w - w // 4] = True
    return mask


def _kmeans(pixels: np.ndarray, k: int, iters: int = 25, max_fit: int = 2048) -> np.ndarray:
    """Deterministic k-means (k-means++ init from a fixed seed) fit on an evenly strided subset of at most
    `max_fit` pixels; returns every pixel's nearest final centre."""
    gen = np.random.default_rng(0)
    fit = pixels[:: max(1, len(pixels) // max_fit)]
    centres = [fit[gen.integers(len(fit))]]
    for _ in range(1, k):
        d2 = np.min(_sq_dist(fit, np.array(centres)), axis=1)
        if d2.sum() <= 0:
            break
        centres.append(fit[gen.choice(len(fit), p=d2 / d2.sum())])
    c = np.array(centres)
    for _ in range(iters):
        assign = np.argmin(_sq_dist(fit, c), axis=1)
        new = np.array([fit[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    return np.argmin(_sq_dist(pixels, c), axis=1)


def _sq_dist(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return ((points[:, None, :] - centres[None]) ** 2).sum(-1)


def _dominant_colour(lab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median colour of the garment's main colour group.

    Pixels are clustered (k-means, then clusters closer than MERGE_DELTA_E merged: shading splits one colour
    into light and dark clusters). The main group is the one with the most *interior* pixels (whose 3x3
    neighbourhood is the same group), not simply the most pixels: thin pattern lines and the blended pixels
    along them count for little, the base colour's solid areas for a lot.
    """
    pixels = lab[mask]
    if len(pixels) < N_CLUSTERS * 4:
        return np.median(pixels, axis=0)
    groups = _colour_groups(pixels)
    label_img = np.full(mask.shape, -1, dtype=np.int64)
    label_img[mask] = groups
    ids = np.unique(groups)
    interior = [int(ndimage.binary_erosion(label_img == g, structure=np.ones((3, 3), bool)).sum()) for g in ids]
    size = [int(np.sum(groups == g)) for g in ids]
    best = max(range(len(ids)), key=lambda i: (interior[i], size[i]))
    return np.median(pixels[groups == ids[best]], axis=0)


def _colour_groups(pixels: np.ndarray) -> np.ndarray:
    """Group id per pixel: k-means clusters, single-linkage merged when their medians are close."""
    assign = _kmeans(pixels, N_CLUSTERS)
    ids = np.unique(assign)
    centres = np.array([np.median(pixels[assign == j], axis=0) for j in ids])
    group = np.arange(len(ids))
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            if np.linalg.norm(centres[i] - centres[j]) < MERGE_DELTA_E:
                group[group == group[j]] = group[i]
    return group[np.searchsorted(ids, assign)]


_MEMO = ContentMemo(lambda img: dominant_lab_of_image(img))  # the name looked up per call, as before
