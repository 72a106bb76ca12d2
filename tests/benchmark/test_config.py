"""benchmark.config: YAML loading, unknown keys, --set overrides, validation, result hash, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest

import yaml

from benchmark.config import (BASELINE_NAMES, BenchmarkConfig, ConfigError, is_sweep_config, load_config,
                              with_overrides)

REPO = Path(__file__).resolve().parents[2]
# sweep configs (python -m benchmark.sweep) are checked in tests/benchmark/test_sweep.py
EXPERIMENTS = sorted(p for p in (REPO / "experiments").glob("*.yaml") if not is_sweep_config(yaml.safe_load(p.read_text())))


def _write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- every shipped config loads ---------------------------------------------------------------------------
def test_experiments_exist():
    names = {p.stem for p in EXPERIMENTS}
    assert {"default", "quick", "seed-replication"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_experiment_loads(path: Path):
    cfg = load_config(path)
    assert isinstance(cfg, BenchmarkConfig)
    assert cfg.name == path.stem
    assert cfg.archs, "every shipped config benchmarks at least one architecture"
    assert isinstance(cfg.archs, tuple) and isinstance(cfg.baselines, tuple) and isinstance(cfg.protocols, tuple)
    assert isinstance(cfg.tuning.lr_min, float) and isinstance(cfg.tuning.lr_max, float)
    assert cfg.tuning.lr_min < cfg.tuning.lr_max
    assert cfg.tuning.epochs_min <= cfg.tuning.epochs_max
    # the hash is computable and round-trips through the dict form
    assert len(cfg.result_hash()) == 16
    assert cfg.to_dict()["name"] == path.stem


def test_default_config_shape():
    cfg = load_config(REPO / "experiments" / "default.yaml")
    assert (cfg.n_splits, cfg.n_repeats) == (5, 5)
    assert cfg.tuning.enabled and cfg.tuning.n_trials == 10 and cfg.tuning.inner_folds == 3
    assert cfg.model.fine_tune == "head"
    assert set(cfg.archs) == {"resnet18", "efficientnet_b0", "efficientnet_lite0"}
    assert set(cfg.baselines) == set(BASELINE_NAMES) == {"chance", "colour_stats", "ou_luo", "colour_pattern"}
    assert set(cfg.protocols) == {"cv", "seed_split"}
    assert cfg.dataset == "data/synthetic-40"
    assert cfg.input_mode == "pair"


def test_quick_config_shape():
    cfg = load_config(REPO / "experiments" / "quick.yaml")
    assert (cfg.n_splits, cfg.n_repeats) == (2, 1)
    assert cfg.tuning.n_trials == 2
    assert "colour_pattern" in cfg.baselines  # CI runs the new baseline and its probe end to end


def test_seed_replication_config_shape():
    cfg = load_config(REPO / "experiments" / "seed-replication.yaml")
    assert cfg.model.image_size == 224
    assert cfg.model.fine_tune == "full"
    assert cfg.protocols == ("seed_split",)
    assert cfg.tuning.enabled is False
    assert set(cfg.archs) == {"resnet18", "efficientnet_b0"}
    assert cfg.seed_split_test_images == 20


# -- unknown keys -----------------------------------------------------------------------------------------
def test_unknown_top_level_key_names_the_key(tmp_path):
    path = _write(tmp_path, "seed: 1\nn_split: 3\n")
    with pytest.raises(ConfigError, match=r"n_split"):
        load_config(path)


def test_unknown_nested_key_names_the_dotted_key(tmp_path):
    path = _write(tmp_path, "model:\n  image_size: 32\n  foo: 1\n")
    with pytest.raises(ConfigError, match=r"model\.foo"):
        load_config(path)


def test_unknown_key_in_override_names_the_key(tmp_path):
    path = _write(tmp_path, "seed: 1\n")
    with pytest.raises(ConfigError, match=r"tuning\.n_trail"):
        load_config(path, ["tuning.n_trail=3"])
    with pytest.raises(ConfigError, match=r"bogus"):
        load_config(path, ["bogus=3"])


def test_config_error_messages_are_one_line(tmp_path):
    for text in ("model:\n  foo: 1\n", "archs: [vgg16]\n", "seed: [unclosed\n"):
        with pytest.raises(ConfigError) as info:
            load_config(_write(tmp_path, text))
        assert "\n" not in str(info.value)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError):
        load_config(_write(tmp_path, "model: 3\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- seed\n- 3\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "just a string\n"), ["seed=1"])


# -- --set overrides --------------------------------------------------------------------------------------
def test_dotted_overrides_take_yaml_values(tmp_path):
    path = _write(tmp_path, "seed: 1\nmodel:\n  image_size: 64\n")
    cfg = load_config(path, [
        "model.image_size=32", "model.n_views=2", "tuning.n_trials=2", "tuning.inner_folds=2",
        "tuning.epochs_max=5", "n_splits=2", "n_repeats=1", "archs=[resnet18]", "log_models=false",
        "model.cache_dir=null", "tuning.lr_min=1.0e-3", "seed=7",
    ])
    assert cfg.model.image_size == 32 and cfg.model.n_views == 2
    assert cfg.tuning.n_trials == 2 and cfg.tuning.inner_folds == 2 and cfg.tuning.epochs_max == 5
    assert (cfg.n_splits, cfg.n_repeats) == (2, 1)
    assert cfg.archs == ("resnet18",)
    assert cfg.log_models is False
    assert cfg.model.cache_dir is None
    assert cfg.tuning.lr_min == pytest.approx(1e-3)
    assert cfg.seed == 7
    # untouched values keep the file's / the defaults
    assert cfg.model.fine_tune == "head"
    assert cfg.tuning.n_trials == 2 and cfg.tuning.epochs_min == 5


def test_override_creates_missing_section(tmp_path):
    cfg = load_config(_write(tmp_path, "seed: 0\n"), ["generate.outfits=12"])
    assert cfg.generate is not None and cfg.generate.outfits == 12 and cfg.generate.seed == 7


def test_override_without_equals_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(_write(tmp_path, "seed: 0\n"), ["seed"])


def test_override_into_a_scalar_is_an_error(tmp_path):
    with pytest.raises(ConfigError):
        load_config(_write(tmp_path, "seed: 0\n"), ["seed.x=1"])


def test_numbers_in_exponent_form_are_numbers(tmp_path):
    """PyYAML reads `1e-3` as a string (YAML 1.1); a float field must still get a float (or a clear error)."""
    cfg = load_config(_write(tmp_path, "tuning:\n  lr_min: 1e-5\n"), ["tuning.lr_max=1e-2"])
    assert isinstance(cfg.tuning.lr_min, float) and cfg.tuning.lr_min == pytest.approx(1e-5)
    assert isinstance(cfg.tuning.lr_max, float) and cfg.tuning.lr_max == pytest.approx(1e-2)


@pytest.mark.parametrize("override", ["n_splits=five", "tuning.lr_min=small", "log_models=maybe",
                                      "tuning.n_trials=2.5"])
def test_wrongly_typed_values_are_config_errors(tmp_path, override):
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[-1]):
        load_config(_write(tmp_path, "seed: 0\n"), [override])


def test_with_overrides_skips_none_and_sets_tuning():
    cfg = BenchmarkConfig()
    assert with_overrides(cfg, seed=None, n_splits=None, **{"tuning.n_trials": None}) == cfg
    new = with_overrides(cfg, seed=3, n_splits=4, **{"tuning.n_trials": 5})
    assert (new.seed, new.n_splits, new.tuning.n_trials) == (3, 4, 5)
    assert new.tuning.inner_folds == cfg.tuning.inner_folds


# -- validation -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, key", [
    ("archs=[vgg16]", "vgg16"),
    ("protocols=[holdout]", "holdout"),
    ("input_mode=triple", "triple"),
    ("model.fine_tune=partial", "partial"),
    ("baselines=[coin]", "coin"),
    ("tuning.objective=f2", "f2"),
])
def test_invalid_choices_are_config_errors(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(_write(tmp_path, "seed: 0\n"), [override])


@pytest.mark.parametrize("override", ["n_splits=1", "n_repeats=0", "tuning.n_trials=0", "tuning.inner_folds=1"])
def test_invalid_sizes_are_config_errors(tmp_path, override):
    with pytest.raises(ConfigError):
        load_config(_write(tmp_path, "seed: 0\n"), [override])


def test_nothing_to_run_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nothing to run"):
        load_config(_write(tmp_path, "archs: []\nbaselines: []\n"))


# -- result hash ------------------------------------------------------------------------------------------
def test_result_hash_is_stable():
    a = load_config(REPO / "experiments" / "default.yaml")
    b = load_config(REPO / "experiments" / "default.yaml")
    assert a.result_hash() == b.result_hash()
    assert a.result_hash() == BenchmarkConfig(**{**a.__dict__}).result_hash()


def test_result_hash_depends_on_seed_not_on_cache_location(tmp_path):
    path = REPO / "experiments" / "quick.yaml"
    base = load_config(path)
    assert load_config(path, ["seed=1"]).result_hash() != base.result_hash()
    assert load_config(path, ["n_splits=3"]).result_hash() != base.result_hash()
    assert load_config(path, ["tuning.n_trials=3"]).result_hash() != base.result_hash()
    assert load_config(path, [f"model.cache_dir={tmp_path}"]).result_hash() == base.result_hash()
    assert load_config(path, ["model.cache=false"]).result_hash() == base.result_hash()


def test_arch_names_resolve_or_fail_in_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("archs: ['torchvision:mobilenet_v3_small', efficientnet_lite0]\n")
    assert load_config(cfg).archs == ("torchvision:mobilenet_v3_small", "efficientnet_lite0")
    cfg.write_text("archs: ['torchvision:mobilenet_v9']\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "list_models" in str(err.value) and "\n" not in str(err.value)


def test_primary_metric_defaults_to_roc_auc_is_checked_and_not_hashed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 0\n")
    base = load_config(path)
    assert base.primary_metric == "roc_auc"
    acc = load_config(path, ["primary_metric=accuracy"])
    assert acc.primary_metric == "accuracy" and acc.result_hash() == base.result_hash()
    with pytest.raises(ConfigError, match="primary_metric"):
        load_config(path, ["primary_metric=f1"])
