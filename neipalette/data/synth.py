"""The embedded synthetic dataset: garment photos labelled by a panel of simulated raters.

Two label models. `panel` (version 2, the default): K raters with individual tastes over four cues
(Ou & Luo harmony, hue relation, lightness contrast, pattern compatibility; see `neipalette.data.panel`),
and the top and bottom of an outfit share one photo context (backdrop, light, exposure, white balance), as
two crops of one photo do. `ou_luo` (version 1): the raters see only the Ou & Luo harmony CH plus noise,
and each garment photo has its own context; it reproduces version-1 datasets byte for byte (outfits.csv,
truth.csv and the images).

Because P(positive | outfit) is known exactly, the Bayes accuracy (noise ceiling) of any test set is known.
Every random draw comes from `neipalette.seeding.rng(seed, <purpose>, ...)`, so the same config gives
byte-identical files and a change to one purpose (say the image nuisance) leaves the others untouched.

This module validates the config, renders the images, writes the dataset (atomically) and draws the
contact sheet; the palette, the config, the outfits and their labels are `neipalette.data.synth_draw`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont, ImageOps

from neipalette.colour.harmony import lab_to_srgb
from neipalette.data.dataset import DatasetError
from neipalette.data.garments import render_garment
from neipalette.data.panel import CUES, Panel
from neipalette.data.synth_draw import (
    DEFAULT_PANEL_WEIGHTS, DEFAULT_RATER_SPREAD, DEFAULT_SIGMA, LAB_JITTER, MIN_PATTERN_CONTRAST, PALETTE,
    PATTERN_NEUTRALS, PATTERN_PROBABILITY, Labelling, Outfits, PaletteColour, Ratings, SynthConfig, dataset_panel,
    draw_outfits, label_outfits, rate, sample_colours,
)
from neipalette.evaluation.metrics import bayes_accuracy
from neipalette.seeding import rng

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2
LABEL_MODELS: tuple[str, ...] = ("panel", "ou_luo")
DEFAULT_DATASET_DIR = Path(__file__).resolve().parents[2] / "data" / "synthetic-40"


@dataclass(frozen=True)
class SynthSummary:
    n_outfits: int
    n_positive: int
    n_negative: int
    ceiling: float
    seconds: float
    label_model: str = "panel"


# --- writing --------------------------------------------------------------------------------------


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DatasetError(f"{out_dir} already exists and is not empty; pass a new folder to --out or delete it")


def _save_png(pixels: np.ndarray, path: Path) -> None:
    # No metadata, fixed compression: the same pixels always give the same bytes.
    Image.fromarray(pixels, "RGB").save(path, format="PNG", compress_level=6)


def _write_tables(tmp: Path, outfits: Outfits, lab: Labelling, cfg: SynthConfig) -> None:
    ids = outfits.ids
    rel = {part: [f"images/{oid}_{part}.png" for oid in ids] for part in ("top", "bottom")}
    table = pd.DataFrame({
        "outfit_id": ids,
        "top": rel["top"],
        "bottom": rel["bottom"],
        "label": np.where(lab.labels == 1, "positive", "negative"),
    })
    table.to_csv(tmp / "outfits.csv", index=False, lineterminator="\n")
    truth = pd.DataFrame({"outfit_id": ids, "ch": lab.ch, "tau": lab.tau, "sigma": cfg.sigma,
                          "p_positive": lab.p_positive})
    if lab.cues is not None:
        for j, cue in enumerate(CUES):
            truth[f"cue_{cue}"] = lab.cues[:, j]
    for part in ("top", "bottom"):
        for j, axis in enumerate("Lab"):
            truth[f"{part}_{axis}"] = outfits.labs[part][:, j]
    truth["top_shape"] = outfits.shapes["top"]
    truth["bottom_shape"] = outfits.shapes["bottom"]
    if lab.cues is not None:
        for part in ("top", "bottom"):
            truth[f"{part}_pattern"] = [p.kind if p is not None else "none" for p in outfits.patterns[part]]
    for k in range(cfg.n_raters):
        truth[f"rater_{k + 1}"] = lab.votes[:, k]
    truth.to_csv(tmp / "truth.csv", index=False, float_format="%.6f", lineterminator="\n")
    context = "shared by top and bottom (one per outfit)" if cfg.label_model == "panel" else "one per image"
    meta = {"generator": "neipalette.data.synth", "version": GENERATOR_VERSION, "config": asdict(cfg),
            "label_model": lab.model, "photo_context": context, "tau": round(lab.tau, 6),
            "ceiling": round(bayes_accuracy(lab.p_positive), 6)}
    (tmp / "synth.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _render_images(tmp: Path, outfits: Outfits, cfg: SynthConfig) -> None:
    (tmp / "images").mkdir()
    for i, oid in enumerate(outfits.ids):
        for part in ("top", "bottom"):
            g = rng(cfg.seed, "image", i, part)
            pixels = render_garment(outfits.shapes[part][i], lab_to_srgb(outfits.labs[part][i]), cfg.image_size, g,
                                    outfits.patterns[part][i], outfits.contexts[i])
            _save_png(pixels, tmp / "images" / f"{oid}_{part}.png")
        if (i + 1) % 100 == 0:
            log.info("rendered %d/%d outfits", i + 1, len(outfits.ids))


def _validate(cfg: SynthConfig) -> None:
    if cfg.n_outfits < 2:
        raise ValueError(f"n_outfits must be at least 2 (one per class), got {cfg.n_outfits}")
    if cfg.n_raters < 1:
        raise ValueError(f"n_raters must be at least 1, got {cfg.n_raters}")
    if not cfg.sigma >= 0:
        raise ValueError(f"sigma must be non-negative, got {cfg.sigma}")
    if cfg.image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {cfg.image_size}")
    if cfg.label_model not in LABEL_MODELS:
        raise ValueError(f"Invalid label model {cfg.label_model!r}. Only {', '.join(LABEL_MODELS)} are supported.")
    if len(cfg.panel_weights) != len(CUES):
        raise ValueError(f"panel_weights needs one weight per cue ({', '.join(CUES)}), got {len(cfg.panel_weights)}")
    if not cfg.rater_spread >= 0:
        raise ValueError(f"rater_spread must be non-negative, got {cfg.rater_spread}")


def generate_dataset(cfg: SynthConfig, out_dir: Path, panel: Panel | None = None) -> SynthSummary:
    """Write a synthetic dataset (outfits.csv, truth.csv, synth.json, images/) to a new or empty out_dir.

    `panel` (panel model): label with those raters and that tau instead of drawing a panel and balancing tau.
    """
    start = time.perf_counter()
    _validate(cfg)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    if cfg.n_raters % 2 == 0:
        log.warning("%d raters is even: tied votes count as negative", cfg.n_raters)

    outfits = draw_outfits(cfg)
    labelling = label_outfits(outfits, cfg, panel)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target and rename at the end: a crash never leaves a half-written dataset.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _render_images(tmp, outfits, cfg)
        _write_tables(tmp, outfits, labelling, cfg)
        _check_out_dir(out_dir)  # someone may have filled it meanwhile
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    n, n_pos = cfg.n_outfits, int(labelling.labels.sum())
    summary = SynthSummary(n_outfits=n, n_positive=n_pos, n_negative=n - n_pos,
                           ceiling=bayes_accuracy(labelling.p_positive), seconds=time.perf_counter() - start,
                           label_model=cfg.label_model)
    log.info("wrote %s: %s, tau %.4f", out_dir, summary, labelling.tau)
    return summary


def ensure_default_dataset(path: Path = DEFAULT_DATASET_DIR) -> Path:
    """The default 40-outfit dataset at `path`, generated with the default config if outfits.csv is missing."""
    path = Path(path)
    if not (path / "outfits.csv").is_file():
        log.warning("default dataset missing at %s; generating it (40 outfits, seed 7)", path)
        generate_dataset(SynthConfig(), path)
    return path


# --- looking at it --------------------------------------------------------------------------------


def contact_sheet(dataset_dir: Path, out_png: Path, columns: int = 8, thumb: int = 120) -> Path:
    """A grid of every outfit (top above bottom) with its id, label ('unlabelled' in grey when empty) and, if
    truth.csv exists, P(positive) underneath."""
    dataset_dir, out_png = Path(dataset_dir), Path(out_png)
    outfits = pd.read_csv(dataset_dir / "outfits.csv", dtype=str, keep_default_na=False)
    truth_path = dataset_dir / "truth.csv"
    truth = pd.read_csv(truth_path, dtype={"outfit_id": str}).set_index("outfit_id") if truth_path.is_file() else None
    font = ImageFont.load_default()
    pad, text_h = 6, 16
    cell_w, cell_h = thumb + pad, 2 * thumb + text_h + pad
    rows = -(-len(outfits) // columns)
    sheet = Image.new("RGB", (columns * cell_w + pad, rows * cell_h + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, rec in enumerate(outfits.to_dict("records")):
        x = pad + (k % columns) * cell_w
        y = pad + (k // columns) * cell_h
        for j, part in enumerate(("top", "bottom")):
            with Image.open(dataset_dir / rec[part]) as img:  # letterboxed: imported crops are not square
                tile = ImageOps.pad(img.convert("RGB"), (thumb, thumb), Image.Resampling.LANCZOS, color=(255, 255, 255))
                sheet.paste(tile, (x, y + j * thumb))
        label = {"1": "positive", "0": "negative"}.get(rec["label"].strip(), rec["label"].strip().lower())
        text = f"{rec['outfit_id']} {label or 'unlabelled'}"
        if truth is not None:
            text += f" p={truth.loc[rec['outfit_id'], 'p_positive']:.2f}"
        colour = {"positive": (0, 110, 40), "negative": (170, 20, 20)}.get(label, (110, 110, 110))
        draw.text((x + 2, y + 2 * thumb + 2), text, fill=colour, font=font)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png, format="PNG")
    return out_png


__all__ = ["DEFAULT_DATASET_DIR", "DEFAULT_PANEL_WEIGHTS", "DEFAULT_RATER_SPREAD", "DEFAULT_SIGMA",
           "GENERATOR_VERSION", "LABEL_MODELS", "LAB_JITTER", "MIN_PATTERN_CONTRAST", "PALETTE", "PATTERN_NEUTRALS",
           "PATTERN_PROBABILITY", "Labelling", "Outfits", "PaletteColour", "Ratings", "SynthConfig", "SynthSummary",
           "contact_sheet", "dataset_panel", "draw_outfits", "ensure_default_dataset", "generate_dataset",
           "label_outfits", "rate", "sample_colours"]
