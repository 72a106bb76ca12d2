"""neipalette.models.variants: `<arch>+<option>` entries of `archs:`, their settings, labels and refusals."""

from __future__ import annotations

import pytest

from neipalette.models.variants import model_label, model_settings, parse_model_name


@pytest.mark.parametrize("name, parsed", [
    ("resnet18", ("resnet18", None, None)),
    ("efficientnet_lite0+multiscale", ("efficientnet_lite0", "multiscale", None)),
    ("efficientnet_lite0+colour_pattern", ("efficientnet_lite0", None, "colour_pattern")),
    ("timm:resnet18+colour_stats+multiscale", ("timm:resnet18", "multiscale", "colour_stats")),
    ("resnet18+neipalette.models.hand_features:colour_stats_features",
     ("resnet18", None, "neipalette.models.hand_features:colour_stats_features")),
])
def test_parse_model_name(name, parsed):
    assert parse_model_name(name) == parsed


@pytest.mark.parametrize("name, says", [
    ("resnet18+bogus", "neither a feature mode"),
    ("resnet18+", "empty option"),
    ("resnet18+multiscale+final", "features twice"),
    ("resnet18+colour_stats+colour_pattern", "hand features twice"),
])
def test_bad_options_are_one_line_value_errors(name, says):
    with pytest.raises(ValueError, match=says) as info:
        parse_model_name(name)
    assert "\n" not in str(info.value)


def test_variant_options_override_the_config_defaults_only_where_given():
    assert model_settings("resnet18", "multiscale", "colour_stats") == ("resnet18", "multiscale", "colour_stats")
    assert model_settings("resnet18+final", "multiscale", None) == ("resnet18", "final", None)
    assert model_settings("resnet18+colour_pattern", "multiscale", "colour_stats") == \
        ("resnet18", "multiscale", "colour_pattern")


def test_label_is_the_base_label_and_the_options():
    labels = {"efficientnet_lite0": "EfficientNet-Lite0"}
    assert model_label("efficientnet_lite0+multiscale", labels) == "EfficientNet-Lite0 + multiscale"
    assert model_label("efficientnet_lite0", labels) == "EfficientNet-Lite0"
    assert model_label("timm:x+colour_stats", labels) == "timm:x + colour_stats"
