"""Hand-crafted per-sample features that a `hybrid` CNN head sees beside the backbone's features.

A hand-feature function maps samples to an (n, h) float array, one row per sample, computed from the sample's
images only (never its label). Known by name: `colour_stats` (the colour_stats baseline's dominant-colour
features) and `colour_pattern` (the colour_pattern baseline's colour, hue-relation, harmony and pattern statistics; its
patterned flags need a cut fit on training garments, so a hybrid head gets the continuous statistics and their
top x bottom product instead). Any other function can be named as `package.module:function`, so a new
model's features plug in without touching the CNN code: add its name to `HAND_FEATURES` or give the dotted path
in the config.
"""

from __future__ import annotations

import importlib
from typing import Callable, Sequence

import numpy as np

from neipalette.data.samples import Sample
from neipalette.models.colour_features import colour_features, garment_labs

HandFeatures = Callable[[Sequence[Sample]], np.ndarray]


def colour_stats_features(samples: Sequence[Sample]) -> np.ndarray:
    """(n, h): the colour_stats baseline's features (dominant Lab, chroma, hue per garment, pair differences)."""
    return colour_features(garment_labs(samples))


def colour_pattern_features(samples: Sequence[Sample]) -> np.ndarray:
    """(n, h): colour_stats features, hue relations and harmony terms (pairs), each garment's pattern statistic and, for pairs,
    the product of the two statistics."""
    from neipalette.models.colour_pattern import garment_patterns, raw_features  # sklearn: only when used

    patterns = garment_patterns(samples)
    x = raw_features(garment_labs(samples), patterns)
    if patterns.shape[1] == 2:
        x = np.hstack([x, patterns[:, :1] * patterns[:, 1:]])
    return x


HAND_FEATURES: dict[str, str] = {  # name -> "module:function"
    "colour_stats": "neipalette.models.hand_features:colour_stats_features",
    "colour_pattern": "neipalette.models.hand_features:colour_pattern_features",
}


def get_hand_features(name: str) -> HandFeatures:
    """A registered name or a `package.module:function` path; anything else is a ValueError saying which are known."""
    target = HAND_FEATURES.get(name, name)
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ValueError(f"unknown hand features {name!r}; known: {', '.join(HAND_FEATURES)}, "
                         "or a function as package.module:function")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"hand features {name!r} cannot be imported ({type(exc).__name__}: {exc}); known: "
                         f"{', '.join(HAND_FEATURES)}, or a function as package.module:function") from None
    if not callable(fn):
        raise ValueError(f"hand features {name!r} is not a function")
    return fn


def hand_matrix(fn: HandFeatures, samples: Sequence[Sample]) -> np.ndarray:
    """fn(samples) checked: one finite row per sample."""
    x = np.asarray(fn(samples), dtype=np.float64)
    if x.ndim != 2 or len(x) != len(samples):
        raise ValueError(f"hand features gave shape {x.shape} for {len(samples)} samples; expected (n, h)")
    if not np.all(np.isfinite(x)):
        raise ValueError("hand features hold NaN or inf")
    return x
