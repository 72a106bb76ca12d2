"""Benchmark configuration: frozen dataclasses loaded from experiments/*.yaml; unknown keys are errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from neipalette.data.samples import INPUT_MODES
from neipalette.models.device import DEVICES
from neipalette.errors import UserError
from neipalette.models.estimator import FINE_TUNE_MODES
from neipalette.models.registry import get_arch

PROTOCOLS = ("cv", "seed_split")
BASELINE_NAMES = ("chance", "colour_stats", "ou_luo")
OBJECTIVES = ("roc_auc", "accuracy", "log_loss")
PRIMARY_METRICS = ("roc_auc", "accuracy")  # the report's verdicts use Holm-adjusted tests on this one


class ConfigError(UserError):
    """A configuration problem, reported to users as one line."""


@dataclass(frozen=True)
class ModelSettings:
    weights: str = "auto"  # auto | imagenet | none | path to a state dict
    fine_tune: str = "head"  # head | last_block | full
    image_size: int = 128
    n_views: int = 2
    batch_size: int = 16
    weight_decay: float = 1e-4
    cache: bool = True
    cache_dir: str | None = None  # default ~/.cache/neipalette/embeddings (or $NEIPALETTE_CACHE)
    device: str = "auto"  # auto (CUDA, then MPS, else CPU) | cpu | cuda | mps; mixed precision on CUDA


@dataclass(frozen=True)
class TuningSettings:
    enabled: bool = True
    n_trials: int = 20
    inner_folds: int = 3
    lr_min: float = 1e-4
    lr_max: float = 1e-1
    epochs_min: int = 5
    epochs_max: int = 60
    objective: str = "roc_auc"
    storage: str | None = None  # any Optuna storage URL; default a journal file beside the MLflow store
    learning_rate: float = 1e-3  # used when tuning is disabled
    epochs: int = 10  # used when tuning is disabled


@dataclass(frozen=True)
class GenerateSettings:
    """Build the dataset folder with the synthetic generator when it does not exist yet."""
    outfits: int = 40
    seed: int = 7


@dataclass(frozen=True)
class BenchmarkConfig:
    name: str = "default"
    dataset: str = "data/synthetic-40"
    generate: GenerateSettings | None = None
    seed: int = 0
    experiment: str = "neipalette"
    archs: tuple[str, ...] = ("resnet18", "efficientnet_b0")
    baselines: tuple[str, ...] = BASELINE_NAMES
    protocols: tuple[str, ...] = PROTOCOLS
    n_splits: int = 5
    n_repeats: int = 5
    input_mode: str = "pair"  # cv protocol; seed_split always uses single images, as the original study
    seed_split_test_images: int = 20
    model: ModelSettings = field(default_factory=ModelSettings)
    tuning: TuningSettings = field(default_factory=TuningSettings)
    log_models: bool = True
    final_models: bool = True
    primary_metric: str = "roc_auc"  # report only: the metric of the verdict's comparison family

    def __post_init__(self) -> None:
        for arch in self.archs:
            try:
                get_arch(arch)
            except ValueError as exc:
                raise ConfigError(f"archs: {exc}") from None
        for b in self.baselines:
            if b not in BASELINE_NAMES:
                raise ConfigError(f"baselines: unknown baseline {b!r}; known: {', '.join(BASELINE_NAMES)}")
        for p in self.protocols:
            if p not in PROTOCOLS:
                raise ConfigError(f"protocols: unknown protocol {p!r}; known: {', '.join(PROTOCOLS)}")
        for key in ("archs", "baselines", "protocols"):  # a repeated entry would run every fold job twice
            names = getattr(self, key)
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ConfigError(f"{key}: {', '.join(map(repr, repeated))} listed twice; list each once")
        if not self.protocols:
            raise ConfigError(f"protocols: empty, so nothing would run; list at least one of {', '.join(PROTOCOLS)}")
        if self.input_mode not in INPUT_MODES:
            raise ConfigError(f"input_mode: {self.input_mode!r} is not one of {', '.join(INPUT_MODES)}")
        if self.model.fine_tune not in FINE_TUNE_MODES:
            raise ConfigError(f"model.fine_tune: {self.model.fine_tune!r} is not one of {', '.join(FINE_TUNE_MODES)}")
        if self.model.device not in DEVICES:
            raise ConfigError(f"model.device: {self.model.device!r} is not one of {', '.join(DEVICES)}")
        if self.primary_metric not in PRIMARY_METRICS:
            raise ConfigError(f"primary_metric: {self.primary_metric!r} is not one of {', '.join(PRIMARY_METRICS)}")
        if self.tuning.objective not in OBJECTIVES:
            raise ConfigError(f"tuning.objective: {self.tuning.objective!r} is not one of {', '.join(OBJECTIVES)}")
        if self.n_splits < 2 or self.n_repeats < 1:
            raise ConfigError("n_splits must be >= 2 and n_repeats >= 1")
        if self.tuning.enabled and (self.tuning.n_trials < 1 or self.tuning.inner_folds < 2):
            raise ConfigError("tuning.n_trials must be >= 1 and tuning.inner_folds >= 2")
        if not self.archs and not self.baselines:
            raise ConfigError("nothing to run: archs and baselines are both empty")
        _check_ranges(self)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def result_hash(self) -> str:
        """Hash of everything that changes results (cache location, experiment and report settings excluded)."""
        d = self.to_dict()
        d["model"].pop("cache", None)
        d["model"].pop("cache_dir", None)
        d.pop("experiment", None)
        d.pop("primary_metric", None)  # changes what the report tests, not a single fold's numbers
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _check_ranges(cfg: BenchmarkConfig) -> None:
    """Ranges that would otherwise fail fold by fold, long after the parent run was created."""
    m, t = cfg.model, cfg.tuning
    if not isinstance(cfg.dataset, str) or not cfg.dataset.strip():
        raise ConfigError(f"dataset: expected a folder path, got {cfg.dataset!r}")
    checks = (
        (cfg.seed >= 0, f"seed: must be >= 0, got {cfg.seed}"),
        (cfg.seed_split_test_images >= 1, f"seed_split_test_images: must be >= 1, got {cfg.seed_split_test_images}"),
        (m.image_size >= 32, f"model.image_size: must be >= 32 pixels, got {m.image_size}"),
        (m.n_views >= 1, f"model.n_views: must be >= 1, got {m.n_views}"),
        (m.batch_size >= 1, f"model.batch_size: must be >= 1, got {m.batch_size}"),
        (m.weight_decay >= 0, f"model.weight_decay: must be >= 0, got {m.weight_decay}"),
        (t.lr_min > 0 and t.lr_max > 0, f"tuning.lr_min and tuning.lr_max must be > 0, got {t.lr_min} and {t.lr_max}"),
        (t.lr_min < t.lr_max, f"tuning.lr_min ({t.lr_min}) must be below tuning.lr_max ({t.lr_max})"),
        (t.epochs_min >= 1, f"tuning.epochs_min: must be >= 1, got {t.epochs_min}"),
        (t.epochs_min <= t.epochs_max, f"tuning.epochs_min ({t.epochs_min}) must not exceed tuning.epochs_max ({t.epochs_max})"),
        (t.learning_rate > 0, f"tuning.learning_rate: must be > 0, got {t.learning_rate}"),
        (t.epochs >= 1, f"tuning.epochs: must be >= 1, got {t.epochs}"),
    )
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def build_config(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config key {where + '.' if where else ''}{unknown[0]}; known keys: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        sub = _dataclass_in(hint)
        key = f"{where}.{name}" if where else name
        if sub is not None and value is not None:
            kwargs[name] = build_config(sub, value, key)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = _scalar(hint, value, key)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from None


def _scalar(hint: Any, value: Any, key: str) -> Any:
    """Check int/float/bool fields; PyYAML reads `1e-4` as a string (YAML 1.1), so numeric strings become numbers."""
    if getattr(hint, "__origin__", None) is tuple:
        raise ConfigError(f"{key}: expected a list, e.g. [{value}], got {value!r}")
    types = set(getattr(hint, "__args__", ())) or {hint}
    if value is None and type(None) in types:
        return value
    if str in types:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string{' (a path)' if key == 'dataset' else ''}, got {value!r}")
    if bool in types:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if int in types and float not in types:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if float in types:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    return value


def _dataclass_in(hint: Any) -> type | None:
    if is_dataclass(hint):
        return hint
    for arg in getattr(hint, "__args__", ()):
        if is_dataclass(arg):
            return arg
    return None


def read_yaml_mapping(path: str | Path, missing_hint: str) -> dict:
    """A config file's top-level mapping; a missing file, bad YAML or a non-mapping is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; {missing_hint}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> None:
    """The `--set key=value` overrides of every command line, in place: dotted keys, YAML values."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        _set(data, key.strip(), yaml.safe_load(raw))


def _set(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {k} is not a section")
    node[keys[-1]] = value


def is_sweep_config(data: dict) -> bool:
    """A sweep config (benchmark.sweep) nests a benchmark config under `benchmark:` beside its `sizes`."""
    return isinstance(data, dict) and "benchmark" in data and "sizes" in data


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> BenchmarkConfig:
    """Read a YAML config and apply `key=value` overrides (dotted keys, YAML values)."""
    path = Path(path)
    data = read_yaml_mapping(path, "pass one of experiments/*.yaml")
    if is_sweep_config(data):
        raise ConfigError(f"{path} is a sweep config; run it with python -m benchmark.sweep --config {path}")
    data.setdefault("name", path.stem)
    apply_overrides(data, overrides)
    return build_config(BenchmarkConfig, data, "")


def with_overrides(cfg: BenchmarkConfig, **changes: Any) -> BenchmarkConfig:
    """Replace top-level or `tuning.x` fields, skipping None (a CLI default never overrides the config)."""
    top = {k: v for k, v in changes.items() if v is not None and "." not in k}
    tuning = {k.split(".", 1)[1]: v for k, v in changes.items() if v is not None and k.startswith("tuning.")}
    if tuning:
        top["tuning"] = replace(cfg.tuning, **tuning)
    return replace(cfg, **top)
