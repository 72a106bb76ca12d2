"""Per-model variants of a CNN named in a benchmark's `archs:`: `<arch>+<option>[+<option>]`.

An option is a feature mode (`final`, `multiscale`) or a hand-feature name for a hybrid head (`colour_stats`,
`colour_pattern`, `package.module:function`), so one benchmark compares, on the same folds, e.g.
`efficientnet_lite0`, `efficientnet_lite0+multiscale` and `efficientnet_lite0+colour_pattern`. A variant's
options override the config's `model.features` / `model.hybrid` for that model only; its backbone (and its
embedding cache) is the base architecture's.
"""

from __future__ import annotations

from collections.abc import Mapping

from neipalette.models.features import FEATURE_MODES
from neipalette.models.hand_features import get_hand_features

SEP = "+"


def split_model_name(name: str) -> tuple[str, tuple[str, ...]]:
    """(base arch, options) without checking them: `resnet18+colour_stats` -> ("resnet18", ("colour_stats",))."""
    arch, *options = name.split(SEP)
    return arch, tuple(options)


def parse_model_name(name: str) -> tuple[str, str | None, str | None]:
    """(arch, features or None, hybrid or None) of an `archs:` entry; a ValueError (one line) for an empty,
    unknown or repeated option. The arch itself is checked by the registry, not here."""
    arch, options = split_model_name(name)
    features: str | None = None
    hybrid: str | None = None
    for option in options:
        if option in FEATURE_MODES:
            if features is not None:
                raise ValueError(f"{name!r} gives features twice ({features}, {option}); give one of "
                                 f"{', '.join(FEATURE_MODES)}")
            features = option
            continue
        if not option:
            raise ValueError(f"{name!r} has an empty option; write <arch>+<option>, e.g. {arch}+multiscale")
        if hybrid is not None:
            raise ValueError(f"{name!r} gives hand features twice ({hybrid}, {option}); a hybrid head takes one")
        try:
            get_hand_features(option)
        except ValueError as exc:
            raise ValueError(f"{name!r}: option {option!r} is neither a feature mode ({', '.join(FEATURE_MODES)}) "
                             f"nor known hand features ({exc})") from None
        hybrid = option
    return arch, features, hybrid


def model_settings(name: str, features: str, hybrid: str | None) -> tuple[str, str, str | None]:
    """(arch, features, hybrid) a model runs with: its variant's options over the config's defaults."""
    arch, own_features, own_hybrid = parse_model_name(name)
    return arch, own_features or features, own_hybrid or hybrid


def is_variant(name: str) -> bool:
    return SEP in name


def model_label(name: str, labels: Mapping[str, str]) -> str:
    """Display label: the base's label and the options, e.g. "EfficientNet-Lite0 + multiscale"."""
    arch, options = split_model_name(name)
    return " + ".join((labels.get(arch, arch), *options))
