"""The benchmark's models as fit/predict on precomputed features, so thousands of fits cost seconds.

Each is the library's own procedure: `fit_colour_stats`, `fit_ou_luo`, the stratified chance score and
`train_head` on frozen embeddings; only the image decoding and colour extraction were done once beforehand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit

from benchmark.coverage.features import Outfits
from neipalette.models.baselines import (
    colour_features,
    fit_colour_stats,
    fit_ou_luo,
    stratified_score,
)
from neipalette.models.heads import train_head
from neipalette.models.training import TrainSettings, combine, probabilities
from neipalette.seeding import derive_seed, rng

Predict = Callable[[Outfits, np.ndarray | None], np.ndarray]  # (outfits, rows or None for all) -> P(positive)


def _rows(o: Outfits, idx: np.ndarray | None) -> slice | np.ndarray:
    return slice(None) if idx is None else idx


def colour_stats(o: Outfits, train: np.ndarray, seed: int) -> Predict:
    model = fit_colour_stats(o.labs[train], o.y[train], seed)
    return lambda d, idx: model.predict_proba(_colour_input(d)[_rows(d, idx)])[:, 1]


def _colour_input(d: Outfits) -> np.ndarray:
    """`colour_features` of all of `d`, built once (row-wise, so rows of it are the features of those rows)."""
    cached = getattr(d, "_colour_input", None)
    if cached is None:
        cached = colour_features(d.labs)
        d._colour_input = cached
    return cached


def ou_luo(o: Outfits, train: np.ndarray, seed: int) -> Predict:
    threshold, scale = fit_ou_luo(o.ch[train], o.y[train], seed)
    return lambda d, idx: expit(scale * (d.ch[_rows(d, idx)] - threshold))


def chance(o: Outfits, train: np.ndarray, seed: int) -> Predict:
    rate = float(o.y[train].mean())

    def predict(d: Outfits, idx: np.ndarray | None) -> np.ndarray:
        n = len(d) if idx is None else len(idx)
        return stratified_score(rng(seed, "chance", n).random(n), rate)
    return predict


@dataclass(frozen=True)
class HeadSettings:
    learning_rate: float
    epochs: int
    batch_size: int
    weight_decay: float
    n_views: int


def cnn_head(settings: HeadSettings) -> Callable[[Outfits, np.ndarray, int], Predict]:
    """A linear head on frozen pair embeddings ([a, b, a·b, |a−b|]) trained with fixed lr and epochs."""
    def fit(o: Outfits, train: np.ndarray, seed: int) -> Predict:
        table = torch.from_numpy(o.emb[train])  # (n, 2, views, d)
        cols = torch.arange(2)

        def lookup(idx: np.ndarray, views: np.ndarray) -> torch.Tensor:
            return table[torch.as_tensor(idx)[:, None], cols[None, :], torch.as_tensor(views)]

        s = TrainSettings(learning_rate=settings.learning_rate, epochs=settings.epochs, seed=seed,
                          batch_size=settings.batch_size, weight_decay=settings.weight_decay,
                          n_views=min(settings.n_views, table.shape[2]))
        head = train_head(lookup, o.y[train], 2, "pair", s)

        def predict(d: Outfits, idx: np.ndarray | None) -> np.ndarray:
            with torch.inference_mode():
                return probabilities(head(_head_input(d) if idx is None else
                                          combine(torch.from_numpy(d.emb[idx][:, :, 0]), "pair")))
        return predict
    return fit


def _head_input(d: Outfits) -> torch.Tensor:
    """[a, b, a·b, |a−b|] of view 0 for all of `d`, built once (the pool is scored by every fold model)."""
    cached = getattr(d, "_head_input", None)
    if cached is None:
        cached = combine(torch.from_numpy(d.emb[:, :, 0]), "pair")
        d._head_input = cached
    return cached


BASELINE_PROCEDURES = {"chance": chance, "colour_stats": colour_stats, "ou_luo": ou_luo}


def fit_seed(seed: int, model: str, *keys: object) -> int:
    return derive_seed(seed, "coverage-fit", model, *keys)
