"""Image views: view 0 is the plain resize; views 1.. are a fixed, seeded set of mild augmentations.

Harmony is about colour, so augmentation never shifts hue: flips, small crops and a small *uniform*
brightness change (all channels scaled alike, so chromaticity is kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from neipalette.colour.imaging import file_digest, load_rgb
from neipalette.seeding import rng

Unit = tuple[Path, ...]  # one image, or (top, bottom) stacked into a composite


@dataclass(frozen=True)
class ViewSpec:
    image_size: int
    n_views: int
    seed: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _square(img: Image.Image, size: int, box: tuple[float, float, float, float] | None = None) -> Image.Image:
    """Crop `box` (fractions of the shorter side, or the centre square) and resize to size x size."""
    w, h = img.size
    side = min(w, h)
    if box is None:
        left, top, scale = (w - side) / 2, (h - side) / 2, 1.0
    else:
        fx, fy, scale, _ = box
        crop = side * scale
        left, top = fx * (w - crop), fy * (h - crop)
        side = crop
    return img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))


def image_view(path: Path, view: int, spec: ViewSpec, img: Image.Image | None = None) -> np.ndarray:
    """One view of one image as float32 HxWx3 in [0, 1] (`img`: the decoded image, if already at hand)."""
    img = img if img is not None else load_rgb(path)
    if view == 0:
        arr = np.asarray(_square(img, spec.image_size), dtype=np.float32) / 255.0
        return arr
    g = rng(spec.seed, "view", file_digest(path), view)
    scale = float(g.uniform(0.85, 1.0))
    box = (float(g.uniform()), float(g.uniform()), scale, 0.0)
    arr = np.asarray(_square(img, spec.image_size, box), dtype=np.float32) / 255.0
    if view % 2 == 1:
        arr = arr[:, ::-1]
    return np.clip(arr * float(g.uniform(0.95, 1.05)), 0.0, 1.0)


def unit_tensor(unit: Unit, view: int, spec: ViewSpec,
                images: Sequence[Image.Image | None] | None = None) -> torch.Tensor:
    """Normalised CHW tensor of a unit: one image, or top stacked over bottom (2H x W)."""
    images = images or [None] * len(unit)
    arr = np.concatenate([image_view(p, view, spec, img) for p, img in zip(unit, images)], axis=0)
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    return (t - mean) / std


class ViewBank:
    """View tensors of units; images are decoded once and shared by all their views."""

    def __init__(self, spec: ViewSpec, *, memo: bool = True):
        self.spec = spec
        self.memo = memo  # keep view tensors (the uncached path reuses them every step)
        self._memo: dict[tuple[Unit, tuple[str, ...], int], torch.Tensor] = {}
        self._decoded: dict[tuple[Path, str], Image.Image] = {}

    def _image(self, path: Path, digest: str) -> Image.Image:
        key = (path, digest)
        if key not in self._decoded:
            self._decoded[key] = load_rgb(path)
        return self._decoded[key]

    def batch(self, units: Sequence[Unit], views: Sequence[int]) -> torch.Tensor:
        out = []
        for unit, view in zip(units, views):
            digests = tuple(file_digest(p) for p in unit)
            key = (unit, digests, int(view))  # content too: a rewritten file is re-read
            tensor = self._memo.get(key)
            if tensor is None:
                images = [self._image(p, d) for p, d in zip(unit, digests)]
                tensor = unit_tensor(unit, int(view), self.spec, images)
                if self.memo:
                    self._memo[key] = tensor
            out.append(tensor)
        return torch.stack(out)
