"""Drawing one garment photo: a flat-lay top or bottom in a given base colour, under realistic nuisance.

Shapes are polygons in a unit box, drawn 4x supersampled with PIL and box-filtered down so edges are
anti-aliased. Everything else (shading, folds, fabric, pattern, background, light) is computed with NumPy
at the final size, in linear light, so the garment's base colour is what the pixels mostly show.
All randomness comes from the Generator passed in; nothing touches global random state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

TOP_SHAPES: tuple[str, ...] = ("tshirt", "longsleeve", "tank", "sweater")
BOTTOM_SHAPES: tuple[str, ...] = ("trousers", "shorts", "skirt")
PATTERNS: tuple[str, ...] = ("stripes", "checks")
SUPERSAMPLE = 4

Point = tuple[float, float]


@dataclass(frozen=True)
class Pattern:
    """A second, lower-weight colour on the garment."""

    kind: str  # "stripes" or "checks"
    rgb: tuple[float, float, float]  # sRGB in [0, 1]


@dataclass(frozen=True)
class Geometry:
    """A garment shape in unit coordinates (x right, y down)."""

    outline: list[Point]
    bands: list[list[Point]] = field(default_factory=list)  # ribbing/waistbands, drawn a little darker
    seams: list[list[Point]] = field(default_factory=list)  # stitched lines
    vertical_folds: bool = False  # trousers and skirts hang: their folds run along the legs
    fabric: str = "jersey"  # "jersey", "rib" or "twill": the fine weave texture


# --- shapes ---------------------------------------------------------------------------------------


def _curve(p0: Point, c: Point, p1: Point, n: int = 10) -> list[Point]:
    """Quadratic Bezier from p0 to p1 (both included)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(c) + t**2 * np.array(p1)
    return [(float(x), float(y)) for x, y in pts]


def _neck(half_width: float, depth: float, top: float = 0.06, n: int = 12) -> list[Point]:
    """A round (half-ellipse) neckline from left to right, dipping `depth` below `top`."""
    t = np.linspace(math.pi, 0.0, n)
    return [(0.5 + half_width * math.cos(a), top + depth * math.sin(a)) for a in t]


def _mirror(points: list[Point]) -> list[Point]:
    """The left half of a symmetric outline, from the right half (reversed so the polygon closes)."""
    return [(1.0 - x, y) for x, y in reversed(points)]


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _tshirt(g: np.random.Generator) -> Geometry:
    dip = g.uniform(0.06, 0.12)
    neck = _neck(0.11, dip)
    right = [(0.74, 0.10), (0.97, 0.35), (0.86, 0.45), (0.76, 0.34), (0.77, 0.96)]
    outline = neck + right + _mirror(right)
    seams = [
        _neck(0.125, dip + 0.02, top=0.055),
        [(0.94, 0.39), (0.84, 0.48)],
        [(0.06, 0.39), (0.16, 0.48)],
        [(0.23, 0.92), (0.77, 0.92)],
    ]
    return Geometry(outline, seams=seams)


def _longsleeve(g: np.random.Generator) -> Geometry:
    flare = g.uniform(-0.03, 0.03)
    neck = _neck(0.10, 0.08)
    right = [(0.73, 0.10), (0.84, 0.30), (0.98 + flare, 0.84), (0.88 + flare, 0.89), (0.76, 0.36), (0.75, 0.96)]
    outline = neck + right + _mirror(right)
    cuff = [(0.97 + flare, 0.80), (0.98 + flare, 0.84), (0.88 + flare, 0.89), (0.87 + flare, 0.85)]
    seams = [_neck(0.115, 0.095, top=0.055), [(0.25, 0.92), (0.75, 0.92)]]
    return Geometry(outline, bands=[cuff, _mirror(cuff)], seams=seams)


def _tank(g: np.random.Generator) -> Geometry:
    scoop = g.uniform(0.14, 0.24)
    strap = g.uniform(0.05, 0.09)
    neck = _neck(0.11, scoop, top=0.03)
    right = [(0.61 + strap, 0.03)] + _curve((0.61 + strap, 0.03), (0.70, 0.30), (0.80, 0.34))[1:] + [(0.81, 0.96)]
    return Geometry(neck + right + _mirror(right), seams=[[(0.20, 0.92), (0.80, 0.92)]])


def _sweater(g: np.random.Generator) -> Geometry:
    neck = _neck(0.10, 0.06)
    right = [(0.76, 0.09), (0.87, 0.26), (0.99, 0.83), (0.87, 0.88), (0.79, 0.40), (0.79, 0.97)]
    outline = neck + right + _mirror(right)
    cuff = [(0.974, 0.75), (0.99, 0.83), (0.87, 0.88), (0.86, 0.80)]
    hem = _rect(0.21, 0.89, 0.79, 0.97)
    collar = _neck(0.125, 0.085, top=0.05) + _neck(0.10, 0.06)[::-1]
    return Geometry(outline, bands=[cuff, _mirror(cuff), hem, collar], fabric="rib")


def _trousers(g: np.random.Generator) -> Geometry:
    flare = g.uniform(-0.04, 0.05)
    right = [(0.68, 0.03), (0.715, 0.22), (0.71 + flare, 0.98), (0.55 - flare / 3, 0.98), (0.5, 0.31)]
    outline = [(0.32, 0.03)] + right + _mirror(right)[1:]
    seams = [
        _curve((0.5, 0.08), (0.52, 0.2), (0.5, 0.26)),
        _curve((0.6, 0.08), (0.63, 0.14), (0.705, 0.16)),
        _curve((0.4, 0.08), (0.37, 0.14), (0.295, 0.16)),
    ]
    return Geometry(outline, bands=[_rect(0.3, 0.0, 0.7, 0.075)], seams=seams, vertical_folds=True, fabric="twill")


def _shorts(g: np.random.Generator) -> Geometry:
    length = g.uniform(0.42, 0.55)
    right = [(0.75, 0.03), (0.80, 0.22), (0.85, length), (0.53, length + 0.02), (0.5, 0.33)]
    outline = [(0.25, 0.03)] + right + _mirror(right)[1:]
    seams = [
        _curve((0.5, 0.09), (0.53, 0.2), (0.5, 0.27)),
        _curve((0.64, 0.09), (0.67, 0.16), (0.79, 0.18)),
        _curve((0.36, 0.09), (0.33, 0.16), (0.21, 0.18)),
        [(0.84, length - 0.04), (0.535, length - 0.02)],
        [(0.16, length - 0.04), (0.465, length - 0.02)],
    ]
    return Geometry(outline, bands=[_rect(0.2, 0.0, 0.8, 0.09)], seams=seams, fabric="twill")


def _skirt(g: np.random.Generator) -> Geometry:
    length = g.uniform(0.50, 0.95)
    flare = g.uniform(0.10, 0.20)
    hem_y = np.full(13, length)
    hem_y += g.uniform(0.0, 0.015) * np.sin(np.linspace(0, 6 * math.pi, 13))  # soft hem ripples
    hem_x = np.linspace(0.66 + flare, 0.34 - flare, 13)
    outline = [(0.34, 0.03), (0.66, 0.03)] + [(float(x), float(y)) for x, y in zip(hem_x, hem_y)]
    return Geometry(outline, bands=[_rect(0.3, 0.0, 0.7, 0.09)], vertical_folds=True)


SHAPES: dict[str, Callable[[np.random.Generator], Geometry]] = {
    "tshirt": _tshirt,
    "longsleeve": _longsleeve,
    "tank": _tank,
    "sweater": _sweater,
    "trousers": _trousers,
    "shorts": _shorts,
    "skirt": _skirt,
}


# --- colour helpers -------------------------------------------------------------------------------


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float64)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)


# --- rasterising ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placement:
    """Unit-box shape to pixels: centred on its bounding box, scaled, stretched, rotated and shifted."""

    size: int
    scale: float  # longest side of the garment as a fraction of the image
    stretch: float  # width / height multiplier
    angle: float  # radians
    shift: tuple[float, float]  # pixels

    def apply(self, points: list[Point], ref: np.ndarray) -> list[Point]:
        lo, hi = ref.min(axis=0), ref.max(axis=0)
        extent = float(max(hi - lo))
        p = (np.asarray(points) - (lo + hi) / 2) / extent * self.scale * self.size
        p[:, 0] *= self.stretch
        c, s = math.cos(self.angle), math.sin(self.angle)
        p = p @ np.array([[c, s], [-s, c]])
        p += np.array([self.size / 2 + self.shift[0], self.size / 2 + self.shift[1]])
        return [(float(x), float(y)) for x, y in p]


def _raster(size: int, polygons: list[list[Point]] = (), lines: list[list[Point]] = (), width: float = 1.0) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of filled polygons and stroked polylines."""
    big = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(big)
    for poly in polygons:
        draw.polygon([(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in poly], fill=255)
    for line in lines:
        draw.line([(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in line], fill=255, width=max(1, round(width * SUPERSAMPLE)))
    small = big.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def _blur(a: np.ndarray, radius: float) -> np.ndarray:
    img = Image.fromarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float64) / 255.0


def _smooth_noise(g: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a coarse random grid upsampled bicubically."""
    coarse = g.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse, "F").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float64)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    return x, y


# --- appearance -----------------------------------------------------------------------------------


def _folds(g: np.random.Generator, size: int, vertical: bool, box: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Multiplicative shading of a few soft creases: a dark valley with a lit ridge beside it."""
    x, y = _grid(size)
    lo, hi = box
    shade = np.ones((size, size))
    for _ in range(int(g.integers(2, 6))):
        cx, cy = g.uniform(lo, hi)
        phi = g.normal(math.pi / 2, 0.2) if vertical else g.uniform(0, math.pi)
        w = g.uniform(0.008, 0.025) * size
        length = g.uniform(0.15, 0.4) * size
        amp = g.uniform(0.05, 0.16)
        dx, dy = x - cx, y - cy
        along = dx * math.cos(phi) + dy * math.sin(phi)
        across = -dx * math.sin(phi) + dy * math.cos(phi)
        envelope = np.exp(-0.5 * (along / length) ** 2)
        profile = -np.exp(-((across / w) ** 2)) + 0.5 * np.exp(-(((across - 1.8 * w) / w) ** 2))
        shade *= 1.0 + amp * envelope * profile
    return shade


def _weave(g: np.random.Generator, fabric: str, size: int, angle: float) -> np.ndarray:
    """Fine fabric texture (multiplicative, around 1): grain noise plus the weave's regular structure."""
    x, y = _grid(size)
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    tex = 1.0 + g.normal(0.0, g.uniform(0.015, 0.035), (size, size))
    if fabric == "twill":
        tex += g.uniform(0.02, 0.05) * np.sin(2 * math.pi * (u + v) / g.uniform(2.5, 4.0))
    elif fabric == "rib":
        tex += g.uniform(0.03, 0.07) * np.sin(2 * math.pi * u / g.uniform(2.5, 4.0))
    return tex


def _band(coord: np.ndarray, period: float, duty: float, phase: float) -> np.ndarray:
    """Anti-aliased stripes: 1 inside a stripe of width duty*period, 0 outside, a 1-px ramp between."""
    t = np.mod(coord / period + phase, 1.0)
    dist = np.abs(t - 0.5) * period
    return np.clip(duty * period / 2 - dist + 0.5, 0.0, 1.0)


def _pattern_weight(g: np.random.Generator, kind: str, size: int, angle: float, vertical: bool) -> np.ndarray:
    """Where the second colour shows; covers at most about 30% of the garment so the base colour dominates."""
    x, y = _grid(size)
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    period = g.uniform(0.04, 0.10) * size
    if kind == "stripes":
        duty = g.uniform(0.1, 0.25)
        coord = u if vertical and g.random() < 0.7 else v  # pinstriped trousers, Breton tops
        return _band(coord, period, duty, g.random())
    duty = g.uniform(0.10, 0.16)
    a = _band(u, period, duty, g.random())
    b = _band(v, period, duty, g.random())
    return np.clip(a + b - 0.5 * a * b, 0.0, 1.0)


@dataclass(frozen=True)
class Backdrop:
    """The surface a garment lies on: its kind, one or two linear-light tones, a gradient angle or mottle scale."""

    kind: str  # "light", "dark", "gradient" or "mottled"
    tones: tuple[tuple[float, float, float], ...]
    angle: float = 0.0  # gradient direction, radians
    mottle_cells: int = 0  # coarseness of the mottled surface


@dataclass(frozen=True)
class Camera:
    """Exposure, white balance and a soft light falloff (its centre in pixels of a `size`-pixel image)."""

    temperature: float
    tint: float
    exposure: float  # linear gain
    light: tuple[float, float]
    falloff: float


@dataclass(frozen=True)
class PhotoContext:
    """What two crops of one photo share: the backdrop, the light, the exposure and the white balance."""

    backdrop: Backdrop
    camera: Camera


def draw_backdrop(g: np.random.Generator) -> Backdrop:
    """Plain light or dark, a two-tone gradient, or a lightly mottled surface."""
    from neipalette.colour.harmony import lab_to_srgb

    def tone(dark: bool) -> tuple[float, float, float]:
        L = g.uniform(12, 35) if dark else g.uniform(75, 97)
        spread = 10.0 if g.random() < 0.25 else 3.0  # an occasional pastel or tinted backdrop
        rgb = srgb_to_linear(lab_to_srgb(np.array([L, g.normal(0, spread), g.normal(0, spread)])))
        return (float(rgb[0]), float(rgb[1]), float(rgb[2]))

    kind = str(g.choice(["light", "dark", "gradient", "mottled"], p=[0.35, 0.15, 0.3, 0.2]))
    if kind == "gradient":
        a, b = tone(g.random() < 0.3), tone(g.random() < 0.3)
        return Backdrop(kind, (a, b), angle=float(g.uniform(0, 2 * math.pi)))
    base = tone(kind == "dark")
    cells = int(g.integers(4, 10)) if kind == "mottled" else 0
    return Backdrop(kind, (base,), mottle_cells=cells)


def draw_camera(g: np.random.Generator, size: int) -> Camera:
    temp, tint = g.normal(0.0, 0.06), g.normal(0.0, 0.025)
    exposure = math.exp(g.normal(0.0, 0.15))
    lx, ly = g.uniform(0, size, 2)
    return Camera(float(temp), float(tint), exposure, (float(lx), float(ly)), float(g.uniform(0.0, 0.25)))


def draw_photo_context(g: np.random.Generator, size: int) -> PhotoContext:
    """A context for one outfit photo; the same values it would draw for a single garment photo."""
    return PhotoContext(draw_backdrop(g), draw_camera(g, size))


def _background(backdrop: Backdrop, g: np.random.Generator, size: int) -> np.ndarray:
    """Linear-light background image; the mottle and grain are this crop's own."""
    x, y = _grid(size)
    tones = [np.array(t) for t in backdrop.tones]
    if backdrop.kind == "gradient":
        phi = backdrop.angle
        t = ((x - size / 2) * math.cos(phi) + (y - size / 2) * math.sin(phi)) / size + 0.5
        t = np.clip(t, 0, 1)[..., None]
        return tones[0] * (1 - t) + tones[1] * t
    base = tones[0] * np.ones((size, size, 3))
    if backdrop.kind == "mottled":
        base *= (1.0 + 0.08 * _smooth_noise(g, size, backdrop.mottle_cells))[..., None]
        base *= (1.0 + g.normal(0, 0.02, (size, size)))[..., None]
    return base


# --- the photo ------------------------------------------------------------------------------------


def render_garment(
    shape: str,
    base_rgb: np.ndarray,
    size: int,
    g: np.random.Generator,
    pattern: Pattern | None = None,
    context: PhotoContext | None = None,
) -> np.ndarray:
    """One garment photo, uint8 RGB of shape (size, size, 3).

    `context` is the photo's backdrop, light and camera, shared with the other crop of the same photo; without
    it this photo draws its own from `g` (at the same point of the stream, so old datasets reproduce).
    """
    if shape not in SHAPES:
        raise ValueError(f"Invalid garment shape {shape!r}. Only {', '.join(SHAPES)} are supported.")
    geo = SHAPES[shape](g)
    ref = np.asarray(geo.outline)
    place = _Placement(
        size=size,
        scale=g.uniform(0.66, 0.86),
        stretch=g.uniform(0.9, 1.1),
        angle=g.normal(0.0, math.radians(4.0)),
        shift=tuple(g.uniform(-0.06, 0.06, 2) * size),
    )
    outline = place.apply(geo.outline, ref)
    alpha = _raster(size, [outline])
    bands = _raster(size, [place.apply(b, ref) for b in geo.bands]) * alpha if geo.bands else 0.0
    seams = _raster(size, lines=[place.apply(s, ref) for s in geo.seams], width=size / 160) * alpha if geo.seams else 0.0

    pts = np.asarray(outline)
    shade = _folds(g, size, geo.vertical_folds, (pts.min(axis=0), pts.max(axis=0)))
    shade *= 0.82 + 0.18 * _blur(alpha, size * 0.04)  # rounded body: edges fall into shadow
    shade *= 1.0 - 0.08 * bands - 0.18 * seams
    fabric = geo.fabric if geo.fabric == "rib" or g.random() < 0.7 else "jersey"  # not every pair of trousers is denim
    shade *= _weave(g, fabric, size, place.angle)

    colour = srgb_to_linear(base_rgb) * np.ones((size, size, 3))
    if pattern is not None:
        weight = _pattern_weight(g, pattern.kind, size, place.angle, geo.vertical_folds)[..., None]
        colour = colour * (1 - weight) + srgb_to_linear(pattern.rgb) * weight
    garment = colour * shade[..., None]

    backdrop = context.backdrop if context is not None else draw_backdrop(g)
    background = _background(backdrop, g, size)
    dx, dy = g.uniform(-0.03, 0.03) * size, g.uniform(0.01, 0.04) * size
    shadow = _blur(_raster(size, [[(x + dx, y + dy) for x, y in outline]]), size * 0.03)
    background *= (1.0 - g.uniform(0.2, 0.45) * shadow)[..., None]

    a = alpha[..., None]
    image = background * (1 - a) + garment * a
    camera = context.camera if context is not None else draw_camera(g, size)
    return _develop(camera, g, image)


def _develop(camera: Camera, g: np.random.Generator, linear: np.ndarray) -> np.ndarray:
    """Exposure, white balance, a soft light falloff and this crop's sensor noise; then 8-bit sRGB."""
    size = linear.shape[0]
    temp, tint = camera.temperature, camera.tint
    gains = camera.exposure * np.array([1 + temp, 1 + tint, 1 - temp])
    x, y = _grid(size)
    lx, ly = camera.light
    falloff = 1.0 - camera.falloff * (((x - lx) ** 2 + (y - ly) ** 2) / (2 * size**2))
    srgb = linear_to_srgb(linear * gains * falloff[..., None])
    srgb += g.normal(0.0, 0.006, srgb.shape)
    return np.clip(np.round(srgb * 255.0), 0, 255).astype(np.uint8)
