"""Tests for neipalette.colour.extract: dominant garment colour on drawn images with known base colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from neipalette.colour import extract as colour
from neipalette.colour.extract import dominant_lab, dominant_lab_of_image
from neipalette.colour.harmony import srgb_to_lab

SIZE = 96
# A t-shirt-like outline in unit coordinates.
SHIRT = [(0.32, 0.12), (0.68, 0.12), (0.92, 0.34), (0.8, 0.46), (0.72, 0.38), (0.72, 0.9),
         (0.28, 0.9), (0.28, 0.38), (0.2, 0.46), (0.08, 0.34)]


def _lab(rgb: tuple[int, int, int]) -> np.ndarray:
    return srgb_to_lab(np.array(rgb, dtype=np.float64) / 255.0)


def _delta_e(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def _shirt_mask(size: int = SIZE, shift: tuple[float, float] = (0.0, 0.0), scale: float = 1.0) -> np.ndarray:
    img = Image.new("L", (size, size), 0)
    pts = [((0.5 + (x - 0.5) * scale + shift[0]) * size, (0.5 + (y - 0.5) * scale + shift[1]) * size) for x, y in SHIRT]
    ImageDraw.Draw(img).polygon(pts, fill=255)
    return np.asarray(img) > 0


def _gradient(c1: tuple[int, int, int], c2: tuple[int, int, int], size: int = SIZE) -> np.ndarray:
    t = np.linspace(0.0, 1.0, size)[None, :, None]
    return np.broadcast_to(np.array(c1) * (1 - t) + np.array(c2) * t, (size, size, 3)).copy()


def _draw(base, background: np.ndarray, *, pattern=None, kind: str = "stripes", period: int = 8, width: int = 2,
          noise: float = 0.0, shade: float = 0.0, mask: np.ndarray | None = None, seed: int = 0) -> Image.Image:
    """A garment in `base` with an optional second-colour pattern and shading on `background`."""
    mask = _shirt_mask() if mask is None else mask
    size = mask.shape[0]
    garment = np.broadcast_to(np.array(base, dtype=np.float64), (size, size, 3)).copy()
    if pattern is not None:
        rows = (np.arange(size) % period) < width
        lines = rows[:, None] | (rows[None, :] if kind == "checks" else False)
        garment[np.broadcast_to(lines, (size, size))] = pattern
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    garment *= (1.0 - shade * np.abs(x - 0.5))[..., None]  # darker towards the sides, like a rounded body
    img = np.where(mask[..., None], garment, background)
    img = img + np.random.default_rng(seed).normal(0.0, noise, img.shape)
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8))


def test_plain_garment_on_plain_background() -> None:
    img = _draw((200, 40, 40), _gradient((240, 240, 240), (240, 240, 240)))
    assert _delta_e(dominant_lab_of_image(img), _lab((200, 40, 40))) < 1.0


@pytest.mark.parametrize("kind", ["stripes", "checks"])
def test_second_colour_pattern_does_not_shift_the_base(kind: str) -> None:
    img = _draw((30, 60, 120), _gradient((235, 230, 220), (235, 230, 220)), pattern=(230, 200, 40), kind=kind)
    assert _delta_e(dominant_lab_of_image(img), _lab((30, 60, 120))) < 3.0


def test_gradient_noisy_background_with_shading() -> None:
    bg = _gradient((200, 190, 170), (60, 60, 70))
    img = _draw((120, 140, 60), bg, pattern=(250, 250, 250), noise=6.0, shade=0.15)
    # Shading darkens the sides by up to 7.5%: the recovered colour may be a little darker than the base.
    assert _delta_e(dominant_lab_of_image(img), _lab((120, 140, 60))) < 5.0


def test_pattern_in_background_colour_on_dark_garment() -> None:
    """White checks on a black garment on a white backdrop: the checks split the mask; still black."""
    img = _draw((25, 25, 28), _gradient((242, 242, 240), (242, 242, 240)), pattern=(242, 242, 240), kind="checks")
    assert _delta_e(dominant_lab_of_image(img), _lab((25, 25, 28))) < 5.0


def test_garment_touching_the_border() -> None:
    mask = _shirt_mask(scale=1.25, shift=(0.08, 0.0))
    img = _draw((90, 40, 120), _gradient((230, 230, 230), (180, 180, 190)), mask=mask, noise=3.0)
    assert _delta_e(dominant_lab_of_image(img), _lab((90, 40, 120))) < 3.0


def test_garment_in_the_background_colour_falls_back_to_the_centre() -> None:
    img = _draw((236, 236, 234), _gradient((240, 240, 240), (240, 240, 240)), noise=2.0)
    assert _delta_e(dominant_lab_of_image(img), _lab((236, 236, 234))) < 3.0


def test_solid_image_is_its_colour() -> None:
    img = Image.new("RGB", (32, 32), (10, 120, 200))
    assert _delta_e(dominant_lab_of_image(img), _lab((10, 120, 200))) < 0.5


def test_large_photo_is_downsampled_and_still_right() -> None:
    mask = np.asarray(Image.fromarray(_shirt_mask().astype(np.uint8) * 255).resize((480, 480))) > 127
    img = _draw((200, 120, 30), _gradient((245, 245, 245), (200, 205, 215), size=480), mask=mask,
                pattern=(20, 20, 20), period=30, width=6, noise=4.0)
    assert _delta_e(dominant_lab_of_image(img), _lab((200, 120, 30))) < 3.0


def test_dominant_lab_is_memoised_on_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    colour.clear_cache()
    calls = []
    real = colour.dominant_lab_of_image
    monkeypatch.setattr(colour, "dominant_lab_of_image", lambda img: calls.append(1) or real(img))
    img = _draw((200, 40, 40), _gradient((240, 240, 240), (240, 240, 240)))
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    img.save(a)
    img.save(b)  # same bytes, other path: same digest, no recomputation
    first = dominant_lab(a)
    first[0] = -1.0  # callers get a copy; the cache must not change
    np.testing.assert_array_equal(dominant_lab(a), dominant_lab(b))
    assert dominant_lab(a)[0] != -1.0
    assert len(calls) == 1
    colour.clear_cache()
