"""What the synthetic generator draws before it writes anything: the palette, the config, the outfits
(colours, shapes, patterns and photo contexts) and their labels from the configured label model (`ou_luo`:
simulated raters on the Ou & Luo harmony CH; `panel`: the rater panel of `neipalette.data.panel`).

Every random draw comes from its own `neipalette.seeding.rng(seed, <purpose>, ...)` stream. `neipalette.data.synth`
validates the config, renders the images and writes the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, norm

from neipalette.colour.harmony import lab_to_srgb, ou_luo_harmony, srgb_to_lab
from neipalette.data.garments import BOTTOM_SHAPES, TOP_SHAPES, Pattern, PhotoContext, draw_photo_context
from neipalette.data.panel import CUES, Panel, PanelRatings, outfit_cues, rate_panel
from neipalette.seeding import rng

# Per-rater noise on CH, about the spread of CH itself (sd ~0.47 over palette outfits): a single rater
# agrees with the 5-rater majority only ~80% of the time, like subjective human ratings, yet the Bayes
# ceiling of a 40-outfit dataset is ~0.84 on average over seeds (5-95%: 0.80-0.88; 0.81 for seed 7):
# clearly learnable, with room between chance and the ceiling. Keep cli.py's --sigma default in step.
# The panel model keeps the same sigma: its mean weights are scaled so that sigma 0.5 gives a ceiling of ~0.87 on
# 400 outfits, and the colour-only baselines fall ~0.07 short of it on true colours (pattern and hue relation).
DEFAULT_SIGMA = 0.5
# Panel mean weight per cue (CUES order: harmony, hue, lightness, pattern) and the rater-to-rater spread
# (sd of a rater's weight, relative to the mean): raters agree on direction, not on how much each cue counts.
DEFAULT_PANEL_WEIGHTS = (0.35, 0.7, 0.2, 0.7)
DEFAULT_RATER_SPREAD = 0.4
LAB_JITTER = np.array([3.0, 2.5, 2.5])  # sd of L, a, b around a palette colour: no two navies are alike
# How often a garment is patterned: version 1 rarely, version 2 often enough that two patterns meet (~12%).
PATTERN_PROBABILITY = {"ou_luo": {"top": 0.3, "bottom": 0.15}, "panel": {"top": 0.4, "bottom": 0.3}}


@dataclass(frozen=True)
class PaletteColour:
    name: str
    hex: str
    top_weight: float
    bottom_weight: float

    @property
    def rgb(self) -> np.ndarray:
        return np.array([int(self.hex[i : i + 2], 16) / 255.0 for i in (0, 2, 4)])


# Clothing-like: mostly neutrals, denim dominating bottoms, saturated colours rarer (weights are relative).
PALETTE: tuple[PaletteColour, ...] = (
    PaletteColour("black", "1c1c1e", 8, 10),
    PaletteColour("white", "f2f2ef", 8, 2),
    PaletteColour("light grey", "c4c4c2", 4, 3),
    PaletteColour("charcoal", "4a4a4d", 4, 5),
    PaletteColour("navy", "1f2a44", 5, 6),
    PaletteColour("beige", "d8c6a8", 4, 4),
    PaletteColour("cream", "efe6d2", 3, 1),
    PaletteColour("khaki", "b5a47a", 2, 5),
    PaletteColour("camel", "b88a57", 2, 2),
    PaletteColour("brown", "6b4a33", 2, 3),
    PaletteColour("olive", "5b5e3a", 2, 3),
    PaletteColour("light denim", "8fa9c7", 1, 6),
    PaletteColour("mid denim", "4f6f9a", 1, 10),
    PaletteColour("dark denim", "2b3d5c", 0.5, 7),
    PaletteColour("red", "b8262d", 2, 1),
    PaletteColour("burgundy", "6e1f2e", 2, 1.5),
    PaletteColour("pink", "e8a6b8", 2, 0.5),
    PaletteColour("mustard", "d1a23a", 1.5, 0.5),
    PaletteColour("orange", "e0702e", 1, 0.3),
    PaletteColour("forest green", "2f5a3e", 1.5, 1),
    PaletteColour("kelly green", "2f9a5a", 1, 0.3),
    PaletteColour("sky blue", "8cc0e6", 2, 0.5),
    PaletteColour("royal blue", "2a4fb0", 1.5, 0.5),
    PaletteColour("teal", "2a7f80", 1, 0.5),
    PaletteColour("purple", "6a3d8f", 1, 0.3),
    PaletteColour("lavender", "b9a7d6", 1, 0.3),
    PaletteColour("yellow", "f0d64a", 1, 0.2),
)
PATTERN_NEUTRALS = ("white", "black", "navy", "cream", "light grey")
MIN_PATTERN_CONTRAST = 20.0  # CIELAB dE between a version-2 pattern colour and its garment


@dataclass(frozen=True)
class SynthConfig:
    """Everything a generated dataset depends on; the same config gives the same bytes.

    `sigma` is each rater's noise sd (on CH for `ou_luo`, on the panel score for `panel`). `panel_weights`
    (one per cue, in `neipalette.data.panel.CUES` order) and `rater_spread` matter for `panel` only.
    """

    n_outfits: int = 40
    seed: int = 7
    n_raters: int = 5
    sigma: float = DEFAULT_SIGMA
    image_size: int = 160
    label_model: str = "panel"
    panel_weights: tuple[float, ...] = DEFAULT_PANEL_WEIGHTS
    rater_spread: float = DEFAULT_RATER_SPREAD


@dataclass(frozen=True)
class Ratings:
    """Simulated raters: the latent score, the threshold, every vote, the majority and P(positive)."""

    ch: np.ndarray  # (N,)
    tau: float
    votes: np.ndarray  # (N, K) of 0/1
    labels: np.ndarray  # (N,) of 0/1
    p_positive: np.ndarray  # (N,)


# --- colours and labels ---------------------------------------------------------------------------


def _weights(part: str) -> np.ndarray:
    w = np.array([c.top_weight if part == "top" else c.bottom_weight for c in PALETTE], dtype=np.float64)
    return w / w.sum()


def sample_colours(g: np.random.Generator, n: int, part: str) -> np.ndarray:
    """(n, 3) CIELAB base colours for tops or bottoms: a weighted palette pick jittered in CIELAB, in gamut."""
    idx = g.choice(len(PALETTE), size=n, p=_weights(part))
    lab = srgb_to_lab(np.stack([PALETTE[i].rgb for i in idx])) + g.normal(0.0, 1.0, (n, 3)) * LAB_JITTER
    # Round-trip through clipped sRGB so the recorded colour is one the images can actually show.
    return srgb_to_lab(lab_to_srgb(lab))


def rate(ch: np.ndarray, g: np.random.Generator, n_raters: int, sigma: float) -> Ratings:
    """K raters vote positive when CH + eps > tau; majority label (ties negative); tau balances the classes."""
    ch = np.asarray(ch, dtype=np.float64)
    n = len(ch)
    scores = ch[:, None] + g.normal(0.0, 1.0, (n, n_raters)) * sigma
    # The majority is positive iff more than K/2 votes are, i.e. iff this order statistic (the median for
    # odd K, the lower median for even K, so ties go negative) exceeds tau.
    m = np.sort(scores, axis=1)[:, (n_raters - 1) // 2]
    ms = np.sort(m)
    n_pos = n // 2
    tau = float((ms[n - n_pos - 1] + ms[n - n_pos]) / 2)
    votes = (scores > tau).astype(np.int64)
    labels = (2 * votes.sum(axis=1) > n_raters).astype(np.int64)
    if sigma > 0:
        q = norm.cdf((ch - tau) / sigma)
    else:
        q = (ch > tau).astype(np.float64)
    p_positive = binom.sf(n_raters // 2, n_raters, q)  # P(more than K/2 of K raters say positive)
    return Ratings(ch=ch, tau=tau, votes=votes, labels=labels, p_positive=np.asarray(p_positive, dtype=np.float64))


def _pattern(g: np.random.Generator, part: str, label_model: str, base_lab: np.ndarray | None = None) -> Pattern | None:
    """Stripes or checks (or None) for one garment; version 2 makes sure a pattern shows on its base colour."""
    if g.random() >= PATTERN_PROBABILITY[label_model][part]:
        return None
    kind = str(g.choice(["stripes", "checks"], p=[0.65, 0.35]))
    if g.random() < 0.6:
        name = PATTERN_NEUTRALS[int(g.integers(len(PATTERN_NEUTRALS)))]
        colour = next(c for c in PALETTE if c.name == name)
    else:
        colour = PALETTE[int(g.choice(len(PALETTE), p=_weights("top")))]
    rgb = colour.rgb
    if label_model == "panel" and base_lab is not None:
        # The pattern cue says "patterned": navy pinstripes on a navy top would be a pattern nobody can see.
        if np.linalg.norm(srgb_to_lab(rgb) - base_lab) < MIN_PATTERN_CONTRAST:
            rgb = max((_colour("white").rgb, _colour("black").rgb),
                      key=lambda c: float(np.linalg.norm(srgb_to_lab(c) - base_lab)))
    return Pattern(kind=kind, rgb=tuple(float(v) for v in rgb))


def _colour(name: str) -> PaletteColour:
    return next(c for c in PALETTE if c.name == name)


@dataclass(frozen=True)
class Outfits:
    """The drawn outfits before any label: colours, shapes, patterns and photo contexts (None: per image)."""

    ids: list[str]
    labs: dict[str, np.ndarray]
    shapes: dict[str, list[str]]
    patterns: dict[str, list[Pattern | None]]
    contexts: list[PhotoContext | None]


@dataclass(frozen=True)
class Labelling:
    """The label model's output, whichever model: per-outfit truth columns and what synth.json records."""

    labels: np.ndarray  # (N,) of 0/1
    p_positive: np.ndarray  # (N,)
    tau: float
    votes: np.ndarray  # (N, K)
    ch: np.ndarray  # (N,) Ou & Luo CH of the true colours
    cues: np.ndarray | None  # (N, C) for the panel model
    model: dict  # synth.json's description of the label model


def draw_outfits(cfg: SynthConfig) -> Outfits:
    """Colours, shapes, patterns and (version 2) one photo context per outfit, each from its own stream."""
    n = cfg.n_outfits
    g_colour = rng(cfg.seed, "colours")
    labs = {part: sample_colours(g_colour, n, part) for part in ("top", "bottom")}
    g_shape = rng(cfg.seed, "shapes")
    shapes = {"top": [str(s) for s in g_shape.choice(TOP_SHAPES, n)],
              "bottom": [str(s) for s in g_shape.choice(BOTTOM_SHAPES, n, p=[0.5, 0.25, 0.25])]}
    patterns = {part: [_pattern(rng(cfg.seed, "pattern", i, part), part, cfg.label_model, labs[part][i])
                       for i in range(n)] for part in ("top", "bottom")}
    if cfg.label_model == "panel":
        contexts = [draw_photo_context(rng(cfg.seed, "context", i), cfg.image_size) for i in range(n)]
    else:
        contexts = [None] * n
    width = max(3, len(str(n - 1)))
    return Outfits([f"o{i:0{width}d}" for i in range(n)], labs, shapes, patterns, contexts)


def label_outfits(outfits: Outfits, cfg: SynthConfig, panel: Panel | None = None) -> Labelling:
    """Run the configured label model on drawn outfits (with `panel`: those raters and that tau)."""
    ch = ou_luo_harmony(outfits.labs["top"], outfits.labs["bottom"])
    if cfg.label_model == "ou_luo":
        r = rate(ch, rng(cfg.seed, "raters"), cfg.n_raters, cfg.sigma)
        model = {"name": "ou_luo", "score": "Ou & Luo CH of the true colours", "tau": round(r.tau, 6),
                 "sigma": cfg.sigma, "n_raters": cfg.n_raters}
        return Labelling(r.labels, r.p_positive, r.tau, r.votes, ch, None, model)
    flags = {part: np.array([p is not None for p in outfits.patterns[part]]) for part in ("top", "bottom")}
    cues = outfit_cues(outfits.labs["top"], outfits.labs["bottom"], flags["top"], flags["bottom"])
    r = rate_panel(cues, rng(cfg.seed, "panel"), mean_weights=np.array(cfg.panel_weights),
                   spread=cfg.rater_spread, n_raters=cfg.n_raters, sigma=cfg.sigma, panel=panel)
    return Labelling(r.labels, r.p_positive, r.tau, r.votes, ch, r.cues, _panel_description(r, cfg))


def _panel_description(r: PanelRatings, cfg: SynthConfig) -> dict:
    from neipalette.data import panel

    return {
        "name": "panel",
        "rule": "rater k votes positive iff weights_k . cues + N(0, sigma^2) > tau; label = majority (ties negative)",
        "cues": list(CUES),
        "panel_mean": dict(zip(CUES, (float(w) for w in cfg.panel_weights))),
        "rater_spread": cfg.rater_spread,
        "rater_weights": {f"rater_{k + 1}": {c: round(float(w), 6) for c, w in zip(CUES, r.weights[k])}
                          for k in range(len(r.weights))},
        "tau": round(r.tau, 6),
        "sigma": cfg.sigma,
        "n_raters": cfg.n_raters,
        "cue_constants": {"harmony_centre": panel.HARMONY_CENTRE, "harmony_scale": panel.HARMONY_SCALE,
                          "hue_width_deg": panel.HUE_WIDTH, "chroma_scale": panel.CHROMA_SCALE,
                          "lightness_target": panel.LIGHTNESS_TARGET, "lightness_width": panel.LIGHTNESS_WIDTH,
                          "pattern_values": {str(k): v for k, v in panel.PATTERN_VALUES.items()}},
    }


def dataset_panel(cfg: SynthConfig) -> Panel:
    """The rater panel (weights and balanced tau) that labels the dataset `cfg` generates (panel model only)."""
    if cfg.label_model != "panel":
        raise ValueError(f"dataset_panel needs the panel label model, got {cfg.label_model!r}")
    o = draw_outfits(cfg)
    flags = {part: np.array([p is not None for p in o.patterns[part]]) for part in ("top", "bottom")}
    cues = outfit_cues(o.labs["top"], o.labs["bottom"], flags["top"], flags["bottom"])
    r = rate_panel(cues, rng(cfg.seed, "panel"), mean_weights=np.array(cfg.panel_weights),
                   spread=cfg.rater_spread, n_raters=cfg.n_raters, sigma=cfg.sigma)  # as label_outfits does
    return Panel(tuple(tuple(float(w) for w in row) for row in r.weights), float(r.tau))
