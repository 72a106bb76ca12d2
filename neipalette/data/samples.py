"""What a model sees: samples built from outfits for an input mode, and the estimator interface."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Protocol, Sequence

import numpy as np

from neipalette.data.dataset import Dataset
from neipalette.seeding import derive_seed

InputMode = Literal["pair", "composite", "single"]
INPUT_MODES: tuple[str, ...] = ("pair", "composite", "single")


@dataclass(frozen=True)
class Sample:
    sample_id: str  # outfit_id, or outfit_id/top and outfit_id/bottom in single mode
    outfit_id: str
    images: tuple[Path, ...]  # (top, bottom) for pair/composite, (image,) for single
    label: int
    p_positive: float = float("nan")  # from truth.csv when known; never seen by models
    group: str = ""  # what cross-validation keeps together (Outfit.group_key); "" means the outfit


def fold_groups(samples: Sequence[Sample]) -> np.ndarray:
    """The group of each sample for grouped folds: its outfit's group, else its outfit (both images of an
    outfit in `single` mode share one)."""
    return np.array([s.group or f"outfit:{s.outfit_id}" for s in samples])


def make_samples(dataset: Dataset, outfit_indices: Sequence[int], input_mode: str) -> list[Sample]:
    """Samples for the given outfits: one per outfit, or one per garment image in `single` mode."""
    if input_mode not in INPUT_MODES:
        raise ValueError(f"Invalid input mode {input_mode!r}. Only {', '.join(INPUT_MODES)} are supported.")
    p = dataset.p_positive
    out: list[Sample] = []
    for i in outfit_indices:
        o = dataset.outfits[int(i)]
        pp = float(p[int(i)]) if p is not None else float("nan")
        if input_mode == "single":
            out.append(Sample(f"{o.outfit_id}/top", o.outfit_id, (o.top,), int(o.label), pp, o.group_key))
            out.append(Sample(f"{o.outfit_id}/bottom", o.outfit_id, (o.bottom,), int(o.label), pp, o.group_key))
        else:
            out.append(Sample(o.outfit_id, o.outfit_id, (o.top, o.bottom), int(o.label), pp, o.group_key))
    return out


def inner_folds(samples: Sequence[Sample], n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified inner folds over the outer-train samples that never split a group (an outfit's two images in
    `single` mode, a `group` of the dataset); as many as the groups of the smaller class allow, up to n_folds."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold  # not at import: predict needs none

    y = labels_of(samples)
    groups = fold_groups(samples)
    n = min(n_folds, *(len(set(groups[y == c].tolist())) for c in (0, 1)))
    if n < 2:
        raise ValueError("outer-train part has fewer than 2 groups (outfits) of a class; cannot run inner CV")
    random_state = derive_seed(seed, "inner")
    if len(set(groups.tolist())) == len(groups):  # every sample its own group: plain stratified folds
        return list(StratifiedKFold(n, shuffle=True, random_state=random_state).split(y, y))
    return list(StratifiedGroupKFold(n, shuffle=True, random_state=random_state).split(y, y, groups))


def labels_of(samples: Sequence[Sample]) -> np.ndarray:
    return np.array([s.label for s in samples], dtype=np.int64)


class Predictor(Protocol):
    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        """P(positive) per sample, shape (n,)."""


class Estimator(Protocol):
    name: str
    tunable: bool  # False: learning_rate/epochs are ignored and not tuned

    def fit(self, samples: Sequence[Sample], *, learning_rate: float, epochs: int, seed: int) -> Predictor:
        """Train a fresh predictor on `samples`; the same seed gives the same predictor."""


def side_by_side_curves(estimator: Any, samples: Sequence[Sample], folds: Sequence[tuple[np.ndarray, np.ndarray]],
                        *, learning_rate: float, epochs: int, seeds: Sequence[int],
                        weight_decay: float | None = None) -> Iterator[list[np.ndarray]]:
    """Per epoch 1..epochs, P(positive) of each fold's validation part from the estimator's `fit_epochs` run on
    that fold's training part (seed `seeds[k]`); the runs advance side by side, one epoch at a time. A tuned
    `weight_decay` is passed on (only when given)."""
    extra = {} if weight_decay is None else {"weight_decay": weight_decay}
    runs = [(estimator.fit_epochs([samples[i] for i in tr], learning_rate=learning_rate, epochs=epochs, seed=seed,
                                  **extra),
             [samples[i] for i in va]) for (tr, va), seed in zip(folds, seeds)]
    for _ in range(epochs):
        yield [next(fits).predict_proba(val) for fits, val in runs]
