"""benchmark.config: model.features, model.hybrid and the tuned weight decay; refusals are one-line ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.config import ConfigError, load_config
from benchmark.folds import feature_mode
from benchmark.runner import Models

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "experiments" / "quick.yaml"


def test_defaults_are_final_features_and_a_fixed_weight_decay():
    cfg = load_config(QUICK)
    assert cfg.model.features == "final" and cfg.model.hybrid is None
    assert cfg.tuning.tune_weight_decay is False


def test_new_settings_load_and_reach_the_estimator():
    cfg = load_config(QUICK, ["archs=[resnet18]", "model.weights=none", "model.features=multiscale",
                              "model.hybrid=colour_stats", "tuning.tune_weight_decay=true",
                              "tuning.weight_decay_min=1e-3", "tuning.weight_decay_max=10"])
    assert (cfg.tuning.weight_decay_min, cfg.tuning.weight_decay_max) == (1e-3, 10.0)
    est = Models(cfg).get("resnet18", "pair")
    assert (est.config.features, est.config.hybrid) == ("multiscale", "colour_stats")
    assert feature_mode(est) == "multiscale+colour_stats"
    assert feature_mode(Models(cfg).get("chance", "pair")) == "n/a"


def test_result_hash_keeps_its_value_at_the_defaults_and_changes_off_them():
    base = load_config(QUICK)
    same = load_config(QUICK, ["model.features=final", "tuning.tune_weight_decay=false"])
    assert same.result_hash() == base.result_hash()
    for change in ("model.features=multiscale", "model.hybrid=colour_stats", "tuning.tune_weight_decay=true"):
        assert load_config(QUICK, [change]).result_hash() != base.result_hash(), change


@pytest.mark.parametrize("override,message", [
    ("model.features=deep", "model.features: 'deep' is not one of final, multiscale"),
    ("model.features=[final]", "is not one of final, multiscale"),
    ("model.hybrid=colour_magic", "model.hybrid: unknown hand features 'colour_magic'; known: colour_stats, colour_pattern"),
    ("model.hybrid=neipalette.nowhere:fn", "model.hybrid: hand features 'neipalette.nowhere:fn' cannot be imported"),
    ("model.hybrid=3", "model.hybrid: expected a string"),
    ("tuning.tune_weight_decay=maybe", "tuning.tune_weight_decay: expected true or false"),
    ("tuning.weight_decay_min=0", "tuning.weight_decay_min: must be between"),
    ("tuning.weight_decay_max=1e9", "tuning.weight_decay_max: must be between"),
    ("tuning.weight_decay_min=2", "tuning.weight_decay_min (2) must be below tuning.weight_decay_max (1)"),
])
def test_bad_values_are_refused_in_one_line(override: str, message: str):
    with pytest.raises(ConfigError) as err:
        load_config(QUICK, [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override", ["model.features=multiscale", "model.hybrid=colour_stats",
                                      "tuning.tune_weight_decay=true"])
def test_head_only_options_are_refused_with_fine_tuning(override: str):
    with pytest.raises(ConfigError, match=r"needs model.fine_tune: head .* got 'full'; set model.fine_tune: head"):
        load_config(QUICK, ["model.fine_tune=full", override])


# -- per-model variants in archs: `<arch>+<option>` ---------------------------------------------------------
def test_variants_load_and_override_features_for_their_model_only():
    cfg = load_config(QUICK, ["archs=[resnet18, resnet18+multiscale, resnet18+colour_pattern]",
                              "model.weights=none", "model.cache=false"])
    models = Models(cfg)
    base, multi, hybrid = (models.get(a, "pair") for a in cfg.archs)
    assert [feature_mode(e) for e in (base, multi, hybrid)] == ["final", "multiscale", "final+colour_pattern"]
    assert base.backbone is multi.backbone is hybrid.backbone  # built once per architecture
    assert base.config.arch == hybrid.config.arch == "resnet18"


def test_default_config_has_no_variants():
    cfg = load_config(REPO / "experiments" / "default.yaml")
    assert not any("+" in a for a in cfg.archs)


@pytest.mark.parametrize("archs, extra, says", [
    ("[resnet18+bogus]", [], "option 'bogus' is neither"),
    ("[resnet18+multiscale+final]", [], "features twice"),
    ("[resnet18, resnet18+final]", [], "run the same model"),
    ("[resnet18+multiscale, resnet18+multiscale]", [], "listed twice"),
    ("[resnet18+multiscale]", ["model.fine_tune=full"], "needs model.fine_tune: head"),
    ("[nosuchnet+multiscale]", [], "unknown architecture"),
])
def test_variant_refusals_are_one_line(archs, extra, says):
    with pytest.raises(ConfigError, match=says) as info:
        load_config(QUICK, [f"archs={archs}", *extra])
    assert "\n" not in str(info.value)


def test_coverage_measures_the_first_plain_cnn_and_leaves_variants_out():
    from benchmark.coverage.cli import _models

    cfg = load_config(QUICK, ["archs=[resnet18+multiscale, efficientnet_b0]", "baselines=[chance]"])
    assert _models(cfg, None) == ("chance", "efficientnet_b0")
