"""Generated outfits as features: rendered small by the synthetic generator, reduced to what the models see
(dominant garment colours, backbone embeddings), and cached on disk so a rerun renders nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neipalette.colour.extract import dominant_lab
from neipalette.colour.harmony import ou_luo_harmony
from neipalette.data import synth
from neipalette.data.dataset import load_dataset
from neipalette.data.panel import Panel
from neipalette.seeding import derive_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CnnSpec:
    """The frozen backbone whose embeddings a CNN head sees (None in `Setup.cnn`: no CNN model)."""
    arch: str
    weights: str
    image_size: int
    n_views: int
    seed: int


@dataclass(frozen=True)
class Setup:
    """What is generated and how it is embedded; the cache key is a hash of all of it."""
    synth: synth.SynthConfig  # the generator's settings (its seed and n_outfits are replaced per chunk)
    image_size: int  # rendering size
    cnn: CnnSpec | None
    panel: Panel | None = None  # the raters and tau that label every generated outfit (None: drawn per chunk)

    def key(self, kind: str, seed: int, n: int) -> str:
        d = {"kind": kind, "seed": seed, "n": n, "image_size": self.image_size,
             "panel": dataclasses.asdict(self.panel) if self.panel else None,
             "generator": getattr(synth, "GENERATOR_VERSION", None),
             "synth": {k: v for k, v in dataclasses.asdict(self.synth).items() if k not in ("seed", "n_outfits")},
             "cnn": dataclasses.asdict(self.cnn) if self.cnn else None}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass
class Outfits:
    """Features of n outfits: garment colours (n, 2, 3), Ou & Luo score, label, P(positive), embeddings."""
    labs: np.ndarray
    y: np.ndarray
    p: np.ndarray
    emb: np.ndarray | None  # (n, 2, n_views, d) float32, or None without a CNN

    def __post_init__(self) -> None:
        self.ch = ou_luo_harmony(self.labs[:, 0], self.labs[:, 1])

    def __len__(self) -> int:
        return len(self.y)


def cache_root() -> Path:
    return Path(os.environ.get("NEIPALETTE_CACHE", Path.home() / ".cache" / "neipalette")) / "coverage"


_BACKBONES: dict = {}


def _embedder(spec: CnnSpec):
    from neipalette.models.embedding import Embedder
    from neipalette.models.registry import build_backbone
    from neipalette.models.views import ViewSpec

    if spec not in _BACKBONES:
        backbone, weights = build_backbone(spec.arch, spec.weights, seed=spec.seed)
        view = ViewSpec(spec.image_size, spec.n_views, spec.seed, weights.mean, weights.std)
        _BACKBONES[spec] = (Embedder(backbone, weights, view, cache=False), weights)
    return _BACKBONES[spec]


def weights_detail(spec: CnnSpec) -> str:
    return _embedder(spec)[1].detail


def outfits(setup: Setup, kind: str, seed: int, n: int, *, n_views: int | None = None,
            cache_dir: Path | None = None) -> Outfits:
    """Features of `n` freshly generated outfits (seed `seed`), from the cache or rendered now."""
    views = setup.cnn.n_views if (setup.cnn and n_views is None) else (n_views or 1)
    path = (cache_dir or cache_root()) / setup.key(kind, seed, n) / f"features-v{views}.npz"
    if path.is_file():
        with np.load(path) as z:
            return Outfits(z["labs"], z["y"], z["p"], z["emb"] if "emb" in z.files else None)
    tmp = Path(tempfile.mkdtemp(prefix="neipalette-coverage-"))
    try:
        cfg = dataclasses.replace(setup.synth, n_outfits=n, seed=int(seed), image_size=setup.image_size)
        synth.generate_dataset(cfg, tmp / "data", setup.panel)
        ds = load_dataset(tmp / "data")
        labs = np.array([[dominant_lab(o.top), dominant_lab(o.bottom)] for o in ds.outfits])
        p = ds.p_positive
        emb = None
        if setup.cnn is not None:
            embedder, _ = _embedder(setup.cnn)
            units = [(path_,) for o in ds.outfits for path_ in (o.top, o.bottom)]
            flat_u = [u for u in units for _ in range(views)]
            flat_v = [v for _ in units for v in range(views)]
            emb = embedder.forward(flat_u, flat_v).numpy().astype(np.float32).reshape(n, 2, views, -1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Outfits(labs, ds.labels.astype(np.int64), p, emb)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(f".{os.getpid()}.tmp.npz")
    arrays = {"labs": labs, "y": out.y, "p": p} | ({"emb": emb} if emb is not None else {})
    np.savez(part, **arrays)
    os.replace(part, path)  # atomic: a killed run never leaves a half-written file
    return out


def chunk_seed(seed: int, kind: str, index: int) -> int:
    return derive_seed(seed, "coverage", kind, index) % 2**31
