"""The v2 label model: a panel of simulated raters with individual tastes over several outfit cues.

Every outfit has four cues, computed from its true garment colours and patterns (see `outfit_cues`):
`harmony` (Ou & Luo 2006 CH, centred and scaled), `hue` (analogous or complementary hues score high,
hues a quarter turn apart low; neutrals count little), `lightness` (a clear lightness contrast between
the garments) and `pattern` (two patterned garments clash; one patterned with one plain goes well). The
pattern cue shows in the images but not in the garments' dominant colours.

Rater k scores an outfit s_k = w_k . cues + N(0, sigma^2) and votes positive when s_k > tau; the label is
the majority (ties negative). The rater weights w_k are drawn once per dataset around the panel mean, so
given the panel (weights and tau), the votes are independent given the outfit and P(positive | outfit) is
an exact Poisson-binomial tail: the noise ceiling stays known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from neipalette.colour.harmony import ou_luo_harmony
from neipalette.evaluation.metrics import poisson_binomial_pmf

CUES: tuple[str, ...] = ("harmony", "hue", "lightness", "pattern")
# CH over outfits drawn from the palette has mean ~0.12 and sd ~0.48 (200k draws): centre and scale it to about N(0, 1).
HARMONY_CENTRE, HARMONY_SCALE = 0.12, 0.48
HUE_WIDTH = 30.0  # degrees: how far from a template (same hue, opposite hue) a pair still counts as on it
CHROMA_SCALE = 20.0  # CIELAB chroma at which a colour is 63% "chromatic" for the hue-relation cue
LIGHTNESS_TARGET, LIGHTNESS_WIDTH = 25.0, 15.0  # |L1 - L2| above ~25 reads as a clear contrast
PATTERN_VALUES = {0: 0.0, 1: 0.5, 2: -1.0}  # number of patterned garments -> cue


@dataclass(frozen=True)
class PanelRatings:
    """What the panel did: cues, each rater's weights, tau, every vote, the majority and P(positive)."""

    cues: np.ndarray  # (N, C) in CUES order
    weights: np.ndarray  # (K, C)
    tau: float
    votes: np.ndarray  # (N, K) of 0/1
    labels: np.ndarray  # (N,) of 0/1
    p_vote: np.ndarray  # (N, K): P(rater k votes positive | outfit)
    p_positive: np.ndarray  # (N,)


def hue_relation(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """In [-1, 1]: +1 for analogous or complementary hues, -1 a quarter turn apart, scaled by chromaticity."""
    h1 = np.degrees(np.arctan2(lab1[..., 2], lab1[..., 1]))
    h2 = np.degrees(np.arctan2(lab2[..., 2], lab2[..., 1]))
    d = np.abs((h1 - h2 + 180.0) % 360.0 - 180.0)  # angle between the hues, 0..180
    on_template = np.maximum(np.exp(-((d / HUE_WIDTH) ** 2)), np.exp(-(((180.0 - d) / HUE_WIDTH) ** 2)))
    chromatic = (1.0 - np.exp(-np.hypot(lab1[..., 1], lab1[..., 2]) / CHROMA_SCALE)) * (
        1.0 - np.exp(-np.hypot(lab2[..., 1], lab2[..., 2]) / CHROMA_SCALE))
    return chromatic * (2.0 * on_template - 1.0)


def outfit_cues(top_lab: np.ndarray, bottom_lab: np.ndarray, top_patterned: np.ndarray,
                bottom_patterned: np.ndarray) -> np.ndarray:
    """(N, 4) cues in CUES order from true CIELAB colours (N, 3) and pattern flags (N,)."""
    top_lab, bottom_lab = np.asarray(top_lab, dtype=np.float64), np.asarray(bottom_lab, dtype=np.float64)
    harmony = (ou_luo_harmony(top_lab, bottom_lab) - HARMONY_CENTRE) / HARMONY_SCALE
    lightness = np.tanh((np.abs(top_lab[:, 0] - bottom_lab[:, 0]) - LIGHTNESS_TARGET) / LIGHTNESS_WIDTH)
    n_patterned = np.asarray(top_patterned, dtype=np.int64) + np.asarray(bottom_patterned, dtype=np.int64)
    pattern = np.array([PATTERN_VALUES[int(k)] for k in n_patterned], dtype=np.float64)
    return np.column_stack([harmony, hue_relation(top_lab, bottom_lab), lightness, pattern])


def draw_rater_weights(g: np.random.Generator, mean: np.ndarray, spread: float, n_raters: int) -> np.ndarray:
    """(K, C): each rater's weights, the panel mean plus N(0, (spread * |mean|)^2) per cue."""
    mean = np.asarray(mean, dtype=np.float64)
    return mean[None, :] + g.normal(0.0, 1.0, (n_raters, len(mean))) * spread * np.abs(mean)[None, :]


def majority_probability(p_vote: np.ndarray) -> np.ndarray:
    """P(more than K/2 of K independent votes are positive), per row of (N, K) vote probabilities.

    The Poisson-binomial distribution of the number of positive votes (`neipalette.evaluation.metrics`).
    """
    p_vote = np.atleast_2d(np.asarray(p_vote, dtype=np.float64))
    return poisson_binomial_pmf(p_vote)[:, p_vote.shape[1] // 2 + 1 :].sum(axis=1)


def vote_probabilities(scores: np.ndarray, tau: float, sigma: float) -> np.ndarray:
    """P(s + N(0, sigma^2) > tau) elementwise; a hard step when sigma is 0."""
    if sigma > 0:
        return norm.cdf((scores - tau) / sigma)
    return (scores > tau).astype(np.float64)


def balanced_threshold(noisy_scores: np.ndarray) -> float:
    """tau such that exactly floor(N/2) outfits have a positive majority (ties negative).

    The majority is positive iff more than K/2 scores exceed tau, i.e. iff the ((K-1)//2)-th order statistic
    (the median for odd K, the lower median for even K) does: tau is the midpoint between the N/2-th and
    next of those medians.
    """
    n, k = noisy_scores.shape
    m = np.sort(np.sort(noisy_scores, axis=1)[:, (k - 1) // 2])
    n_pos = n // 2
    return float((m[n - n_pos - 1] + m[n - n_pos]) / 2)


@dataclass(frozen=True)
class Panel:
    """A drawn panel: each rater's weights (K, C) and the threshold tau, to label more outfits the same way."""

    weights: tuple[tuple[float, ...], ...]
    tau: float


def rate_panel(cues: np.ndarray, g: np.random.Generator, *, mean_weights: np.ndarray, spread: float,
               n_raters: int, sigma: float, panel: Panel | None = None) -> PanelRatings:
    """Draw the panel and its votes; tau balances the classes; P(positive) is exact given the panel.

    With `panel`, those raters and that tau label the outfits (only the rater noise is drawn), so outfits
    drawn later are labelled by the same process as the dataset the panel came from; the classes are then
    balanced only in expectation.
    """
    cues = np.asarray(cues, dtype=np.float64)
    if panel is None:
        weights = draw_rater_weights(g, mean_weights, spread, n_raters)
    else:
        weights = np.asarray(panel.weights, dtype=np.float64)
        n_raters = weights.shape[0]
    scores = cues @ weights.T  # (N, K): each rater's noiseless score
    noisy = scores + g.normal(0.0, 1.0, scores.shape) * sigma
    tau = balanced_threshold(noisy) if panel is None else float(panel.tau)
    votes = (noisy > tau).astype(np.int64)
    labels = (2 * votes.sum(axis=1) > n_raters).astype(np.int64)
    p_vote = vote_probabilities(scores, tau, sigma)
    return PanelRatings(cues=cues, weights=weights, tau=tau, votes=votes, labels=labels, p_vote=p_vote,
                        p_positive=majority_probability(p_vote))


def balanced_bayes_accuracy(cues: np.ndarray, weights: np.ndarray, sigma: float, bayes_positive: np.ndarray,
                            g: np.random.Generator, n_draws: int) -> np.ndarray:
    """Realised accuracy of a fixed Bayes rule on labels redrawn by the generator's own process: the same
    raters, fresh noise, and tau re-balanced per draw so that floor(N/2) outfits are positive (`rate_panel`).

    Under that process the labels of different outfits are not independent (the count of positives is fixed),
    so the spread differs from the Poisson-binomial one that assumes independent labels.
    """
    scores = np.asarray(cues, dtype=np.float64) @ np.asarray(weights, dtype=np.float64).T
    k = scores.shape[1]
    pred = np.asarray(bayes_positive, dtype=np.int64)
    out = np.empty(int(n_draws))
    for i in range(int(n_draws)):
        noisy = scores + g.normal(0.0, 1.0, scores.shape) * sigma
        labels = (2 * (noisy > balanced_threshold(noisy)).sum(axis=1) > k).astype(np.int64)
        out[i] = float(np.mean(labels == pred))
    return out
