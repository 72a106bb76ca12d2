"""Non-CNN baselines on the same folds: stratified chance, colour statistics, and the Ou & Luo model (and the
registry of every baseline, `colour_pattern` from its own module included).

Each baseline is an `Estimator` (see `neipalette.data.samples`): `fit` returns a new predictor that holds only
numbers and sklearn objects, so it pickles (it is saved as an MLflow model). `learning_rate` and `epochs`
are accepted for the common interface and ignored (`tunable = False`).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from neipalette.colour.harmony import ou_luo_harmony
from neipalette.data.samples import Estimator, Sample, labels_of
from neipalette.models.colour_features import colour_features, fitted_garment_labs
from neipalette.models.colour_features import garment_labs as _garment_labs
from neipalette.models.colour_pattern import ColourPatternBaseline
from neipalette.seeding import derive_seed

log = logging.getLogger(__name__)

OU_LUO_PAIR_ERROR = "ou_luo needs pair samples (top and bottom); use input_mode pair or composite"


def _train_labels(samples: Sequence[Sample]) -> np.ndarray:
    if not samples:
        raise ValueError("cannot fit a baseline on zero samples")
    return labels_of(samples)


# --- chance ---------------------------------------------------------------------------------------


class ChancePredictor:
    """Stratified chance: label-blind scores, positive (score >= 0.5) with probability = train positive rate."""

    def __init__(self, seed: int, positive_rate: float) -> None:
        self.seed = int(seed)
        self.positive_rate = float(positive_rate)

    def _uniform(self, sample_id: str) -> float:
        # A hash of (seed, sample id), not a stream: the score of a sample does not depend on call order.
        return (derive_seed(self.seed, "chance", sample_id) + 0.5) / 2**31

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        u = np.array([self._uniform(s.sample_id) for s in samples], dtype=np.float64)
        return stratified_score(u, self.positive_rate)


def stratified_score(u: np.ndarray, rate: float) -> np.ndarray:
    """Map uniform u to a continuous score that is >= 0.5 exactly when u < rate (piecewise-linear, decreasing)."""
    above = 0.5 + 0.5 * (rate - u) / rate if rate > 0 else np.zeros_like(u)
    below = 0.5 * (1.0 - u) / (1.0 - rate) if rate < 1 else np.ones_like(u)
    return np.where(u < rate, above, np.minimum(below, np.nextafter(0.5, 0.0)))


class ChanceBaseline:
    name = "chance"
    tunable = False

    def fit(self, samples: Sequence[Sample], *, learning_rate: float, epochs: int, seed: int) -> ChancePredictor:
        y = _train_labels(samples)
        return ChancePredictor(seed=seed, positive_rate=float(y.mean()))


# --- colour statistics ----------------------------------------------------------------------------


class ColourStatsPredictor:
    def __init__(self, model: Pipeline, n_images: int) -> None:
        self.model = model
        self.n_images = int(n_images)

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        if not samples:
            return np.empty(0)
        labs = fitted_garment_labs(samples, self.n_images, "colour_stats")
        return self.model.predict_proba(colour_features(labs))[:, 1]


class ColourStatsBaseline:
    name = "colour_stats"
    tunable = False
    C = 1.0  # fixed: the baseline is not tuned, so it must not get an inner loop the CNNs lack

    def fit(self, samples: Sequence[Sample], *, learning_rate: float, epochs: int, seed: int) -> ColourStatsPredictor:
        y = _train_labels(samples)
        labs = _garment_labs(samples)
        return ColourStatsPredictor(model=fit_colour_stats(labs, y, seed, C=self.C), n_images=labs.shape[1])


def fit_colour_stats(labs: np.ndarray, y: np.ndarray, seed: int, *, C: float = ColourStatsBaseline.C) -> Pipeline:
    """The colour_stats model on (n, k, 3) garment colours: standardised features, logistic regression."""
    if len(np.unique(y)) < 2:
        raise ValueError("colour_stats needs both classes in the training samples")
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, max_iter=1000, random_state=derive_seed(seed, "colour_stats")),
    )
    return model.fit(colour_features(labs), y)


# --- Ou & Luo -------------------------------------------------------------------------------------


def _harmony_scores(samples: Sequence[Sample]) -> np.ndarray:
    if any(len(s.images) != 2 for s in samples):
        raise ValueError(OU_LUO_PAIR_ERROR)
    labs = _garment_labs(samples)
    return ou_luo_harmony(labs[:, 0], labs[:, 1])


def best_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """The cut t maximising training accuracy of `score > t -> positive`.

    Candidates are midpoints between consecutive distinct scores (plus one below and one above all);
    among equally good cuts the middle one (lower median of the sorted ties) is taken, so the result is
    deterministic and not pushed to an extreme.
    """
    values, inverse = np.unique(scores, return_inverse=True)
    gap = max(float(np.ptp(values)), 1.0) * 1e-3
    cuts = np.concatenate([[values[0] - gap], (values[:-1] + values[1:]) / 2, [values[-1] + gap]])
    # Cut j sits below values[j]: negatives at or under it are right, positives above it are right.
    neg = np.bincount(inverse, weights=(y == 0), minlength=len(values))
    pos = np.bincount(inverse, weights=(y == 1), minlength=len(values))
    correct = np.concatenate([[0.0], np.cumsum(neg)]) + (pos.sum() - np.concatenate([[0.0], np.cumsum(pos)]))
    accuracy = correct / len(y)
    best = np.flatnonzero(accuracy == accuracy.max())
    return float(cuts[best[(len(best) - 1) // 2]])


def _fit_scale(scores: np.ndarray, y: np.ndarray, threshold: float, seed: int) -> float:
    """Slope of P(positive) = sigmoid(scale * (CH - threshold)), by 1-D logistic regression through the cut.

    No intercept, so P = 0.5 exactly at the accuracy-maximising threshold; the slope is forced positive
    (larger CH is more harmonious by construction of the model) so scores stay monotone in CH.
    """
    spread = float(np.std(scores)) or 1.0
    if len(np.unique(y)) < 2:
        return 1.0 / spread
    x = ((scores - threshold) / spread)[:, None]
    lr = LogisticRegression(C=1.0, fit_intercept=False, random_state=derive_seed(seed, "ou_luo"))
    slope = float(lr.fit(x, y).coef_[0, 0])
    return max(slope, 0.1) / spread


class OuLuoPredictor:
    def __init__(self, threshold: float, scale: float) -> None:
        self.threshold = float(threshold)
        self.scale = float(scale)

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        if not samples:
            return np.empty(0)
        return expit(self.scale * (_harmony_scores(samples) - self.threshold))


class OuLuoBaseline:
    name = "ou_luo"
    tunable = False

    def fit(self, samples: Sequence[Sample], *, learning_rate: float, epochs: int, seed: int) -> OuLuoPredictor:
        y = _train_labels(samples)
        threshold, scale = fit_ou_luo(_harmony_scores(samples), y, seed)
        log.debug("ou_luo: threshold %.4f, scale %.3f on %d samples", threshold, scale, len(samples))
        return OuLuoPredictor(threshold=threshold, scale=scale)


def fit_ou_luo(scores: np.ndarray, y: np.ndarray, seed: int) -> tuple[float, float]:
    """(threshold, scale) of the ou_luo baseline from Ou & Luo harmony scores: P = sigmoid(scale·(CH − threshold))."""
    threshold = best_threshold(scores, y)
    return threshold, _fit_scale(scores, y, threshold, seed)


# --- registry -------------------------------------------------------------------------------------


BASELINES: dict[str, Callable[..., Estimator]] = {
    ChanceBaseline.name: ChanceBaseline,
    ColourStatsBaseline.name: ColourStatsBaseline,
    OuLuoBaseline.name: OuLuoBaseline,
    ColourPatternBaseline.name: ColourPatternBaseline,
}
TUNED_BASELINES = ("colour_pattern",)  # choose their own regularisation by inner CV; take the tuning options


def make_baseline(name: str, *, inner_folds: int | None = None, objective: str | None = None,
                  tune: bool | None = None) -> Estimator:
    """A fresh baseline estimator by name. The tuning options (None: the model's default) reach only the
    baselines that tune themselves (TUNED_BASELINES); the others have nothing to tune."""
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}. Known baselines: {', '.join(BASELINES)}.")
    options = {k: v for k, v in (("inner_folds", inner_folds), ("objective", objective), ("tune", tune))
               if v is not None}
    return BASELINES[name](**options) if name in TUNED_BASELINES else BASELINES[name]()
