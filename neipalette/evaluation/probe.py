"""Feature probe: how much of a target (a garment's L*, a*, b*, pattern statistic) a feature set keeps, as the
out-of-fold R² of a ridge read-out in grouped cross-validation.

The read-out is linear on purpose: a linear head on the same features can use what a linear probe finds and
little else. Folds are grouped (`GroupKFold`, shuffled and seeded) so both garments of one outfit, which share
a photo's light and background, are always on the same side; the ridge strength is chosen on the training part
only (RidgeCV's efficient leave-one-out, per target). Features are centred in-fold and divided by one number,
their mean standard deviation on the training part, not standardised column by column: a CNN unit that is
nearly silent on the training garments (ReLU6, sparse activations) would otherwise be blown up into the
largest input and wreck the read-out on the test garments.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold

ALPHAS = tuple(float(a) for a in np.logspace(-3, 5, 17))


def probe_r2(features: np.ndarray, targets: Mapping[str, np.ndarray], groups: np.ndarray, *,
             n_splits: int = 5, seed: int = 0) -> dict[str, float]:
    """Out-of-fold R² (1 − SSE/SST over all items, SST around the overall mean) of each target from
    `features` (n, d): ridge on centred, globally scaled features in grouped k-fold. 1 is a perfect read-out, 0 no better
    than the mean, below 0 worse. A target with no variance, or too few groups for 2 folds, gets NaN."""
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    names = list(targets)
    y = np.column_stack([np.asarray(targets[k], dtype=np.float64) for k in names]) if names else np.empty((len(x), 0))
    groups = np.asarray(groups)
    k = min(n_splits, len(np.unique(groups)))
    if k < 2 or not names:
        return {name: float("nan") for name in names}
    pred = np.zeros_like(y)
    for train, test in GroupKFold(k, shuffle=True, random_state=seed).split(x, y, groups):
        centre = x[train].mean(axis=0)
        scale = float(x[train].std(axis=0).mean()) or 1.0
        model = RidgeCV(alphas=ALPHAS, alpha_per_target=True)
        model.fit((x[train] - centre) / scale, y[train])
        pred[test] = model.predict((x[test] - centre) / scale).reshape(len(test), -1)
    sst = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    sse = ((y - pred) ** 2).sum(axis=0)
    return {name: float(1.0 - sse[j] / sst[j]) if sst[j] > 0 else float("nan") for j, name in enumerate(names)}
