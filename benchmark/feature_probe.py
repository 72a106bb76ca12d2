"""The benchmark's feature probe: for each CNN in the run and for the colour_pattern features, how much of every
garment's extracted colour (L*, a*, b*) and pattern statistic — and, with truth.csv, of its true colour and
pattern — a ridge read-out recovers (`neipalette.evaluation.probe`). Logged as `feature_probe.json` on the parent
run; the report shows it.

The CNN features are each garment's view-0 embedding as the head gets it (`CNNEstimator.embed_view0`: from the
embedding cache after the fold jobs, so the probe costs a lookup and a few ridge fits). Only frozen backbones
(`fine_tune: head`) are probed: with fine-tuning the head sees features the probe does not. A variant
`<arch>+multiscale` is probed on its own (multiscale) features; a hybrid variant (`<arch>+colour_pattern`) is
skipped with a note: its hand features describe the pair, and its CNN features are its arch's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from neipalette.colour.extract import dominant_lab
from neipalette.colour.pattern import pattern_energy
from neipalette.data.dataset import Dataset
from neipalette.data.samples import make_samples
from neipalette.evaluation.probe import probe_r2
from neipalette.models.colour_pattern import garment_feature_matrix
from neipalette.models.variants import is_variant, split_model_name
from neipalette.seeding import derive_seed

log = logging.getLogger(__name__)

N_SPLITS = 5
COLOUR_PATTERN = "colour_pattern"
METHOD = ("out-of-fold R² of a ridge read-out (RidgeCV on in-fold centred features scaled by one number, alpha "
          "by leave-one-out on the training part) in 5-fold GroupKFold by outfit, one item per garment; "
          "L/a/b/pattern: the garment's extracted dominant colour and pattern statistic; true_*: truth.csv's colour "
          "and patterned flag")


def garment_targets(ds: Dataset) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per garment (outfit by outfit, top then bottom): the probe's targets, and each garment's outfit."""
    paths = [p for o in ds.outfits for p in (o.top, o.bottom)]
    labs = np.array([dominant_lab(p) for p in paths])
    targets = {"L": labs[:, 0], "a": labs[:, 1], "b": labs[:, 2],
               "pattern": np.array([pattern_energy(p) for p in paths])}
    truth = ds.truth
    true_cols = [f"{part}_{c}" for part in ("top", "bottom") for c in ("L", "a", "b")]
    if truth is not None and set(true_cols) <= set(truth.columns):
        t = truth.loc[ds.outfit_ids]
        for c in ("L", "a", "b"):
            targets[f"true_{c}"] = np.column_stack([t[f"top_{c}"], t[f"bottom_{c}"]]).astype(np.float64).ravel()
        if {"top_pattern", "bottom_pattern"} <= set(truth.columns):
            flags = np.column_stack([t["top_pattern"], t["bottom_pattern"]]).astype(str) != "none"
            targets["true_pattern"] = flags.astype(np.float64).ravel()
    groups = np.repeat(np.array(ds.outfit_ids), 2)
    return targets, groups


def feature_probe(ds: Dataset, archs: list[str], estimator_for: Callable[[str], Any], *, fine_tune: str,
                  with_colour_pattern: bool, seed: int) -> dict:
    """`{"r2": {model: {target: R²}}, "dims": {model: d}, ...}`; `estimator_for(arch)` gives a pair-mode CNN
    estimator. Models that cannot be probed are listed under "skipped" with the reason."""
    targets, groups = garment_targets(ds)
    samples = make_samples(ds, range(len(ds.outfits)), "pair")
    features: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for arch in archs:
        if fine_tune != "head":
            skipped[arch] = f"fine_tune {fine_tune}: the head sees trained features, not the frozen ones"
            continue
        est = estimator_for(arch)
        if is_variant(arch) and est.config.hybrid:
            skipped[arch] = (f"hybrid variant: its head adds {est.config.hybrid} features of the pair, not of one "
                             f"garment; its CNN features are those of {split_model_name(arch)[0]} "
                             f"({est.config.features})")
            continue
        emb = est.embed_view0(samples)  # (n outfits, 2 garments, d)
        features[arch] = np.asarray(emb.reshape(2 * len(samples), -1).cpu().numpy(), dtype=np.float64)
    if with_colour_pattern:
        labs = np.column_stack([targets["L"], targets["a"], targets["b"]])
        features[COLOUR_PATTERN] = garment_feature_matrix(labs, targets["pattern"])
    r2 = {name: probe_r2(x, targets, groups, n_splits=N_SPLITS, seed=derive_seed(seed, "probe"))
          for name, x in features.items()}
    return {"method": METHOD, "n_garments": len(groups), "n_outfits": len(ds.outfits),
            "dims": {name: int(x.shape[1]) for name, x in features.items()}, "r2": r2, "skipped": skipped}
