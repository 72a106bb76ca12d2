"""Benchmark configuration: frozen dataclasses loaded from experiments/*.yaml; unknown keys are errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import reprlib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from neipalette.data.samples import INPUT_MODES
from neipalette.models.device import DEVICES
from neipalette.errors import UserError
from neipalette.models.estimator import FINE_TUNE_MODES
from neipalette.models.features import FEATURE_MODES
from neipalette.models.hand_features import get_hand_features
from neipalette.models.registry import get_arch
from neipalette.models.variants import is_variant, model_settings

PROTOCOLS = ("cv", "seed_split")
BASELINE_NAMES = ("chance", "colour_stats", "ou_luo", "colour_pattern")
OBJECTIVES = ("roc_auc", "accuracy", "log_loss")
PRIMARY_METRICS = ("roc_auc", "accuracy")  # the report's verdicts use Holm-adjusted tests on this one
SEED_MAX = 2**32 - 1  # NumPy's seeds are 32-bit
EXPERIMENT_NAME_MAX = 256  # MLflow's SQL stores keep experiment names in a 256-character column
YAML_MAX_BYTES = 1_000_000
YAML_MAX_NODES = 100_000  # after alias expansion: a few hundred bytes of nested aliases can name 10^9 items
_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxlevel = 60, 60, 5, 5, 2


def show(value: Any) -> str:
    """A value for an error message, bounded: a long string or a huge (aliased) structure is cut, never expanded."""
    return _SHOW.repr(value)


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
    features: str = "final"  # final (the embedding) | multiscale (+ pooled stem and mid-stage activations)
    hybrid: str | None = None  # hand features beside the CNN's in one head: colour_stats or package.module:function


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
    tune_weight_decay: bool = False  # the head's L2 strength as a second (log-scale) dimension; else model.weight_decay
    weight_decay_min: float = 1e-4
    weight_decay_max: float = 1.0


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
        _check_archs(self.archs, self.model)
        for b in self.baselines:
            if b not in BASELINE_NAMES:
                raise ConfigError(f"baselines: unknown baseline {show(b)}; known: {', '.join(BASELINE_NAMES)}")
        for p in self.protocols:
            if p not in PROTOCOLS:
                raise ConfigError(f"protocols: unknown protocol {show(p)}; known: {', '.join(PROTOCOLS)}")
        for key in ("archs", "baselines", "protocols"):  # a repeated entry would run every fold job twice
            names = getattr(self, key)
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ConfigError(f"{key}: {', '.join(map(show, repeated))} listed twice; list each once")
        if not self.protocols:
            raise ConfigError(f"protocols: empty, so nothing would run; list at least one of {', '.join(PROTOCOLS)}")
        if self.input_mode not in INPUT_MODES:
            raise ConfigError(f"input_mode: {show(self.input_mode)} is not one of {', '.join(INPUT_MODES)}")
        if self.model.fine_tune not in FINE_TUNE_MODES:
            raise ConfigError(f"model.fine_tune: {show(self.model.fine_tune)} is not one of {', '.join(FINE_TUNE_MODES)}")
        _check_features(self.model, self.tuning)
        if self.model.device not in DEVICES:
            raise ConfigError(f"model.device: {show(self.model.device)} is not one of {', '.join(DEVICES)}")
        if self.primary_metric not in PRIMARY_METRICS:
            raise ConfigError(f"primary_metric: {show(self.primary_metric)} is not one of {', '.join(PRIMARY_METRICS)}")
        if self.tuning.objective not in OBJECTIVES:
            raise ConfigError(f"tuning.objective: {show(self.tuning.objective)} is not one of {', '.join(OBJECTIVES)}")
        if not self.archs and not self.baselines:
            raise ConfigError("nothing to run: archs and baselines are both empty")
        _check_ranges(self)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def result_hash(self) -> str:
        """Hash of everything that changes results (cache location, experiment and report settings excluded).

        Settings added after a config's hash was first recorded are left out while they hold their default,
        so a run started before they existed can still be resumed."""
        d = self.to_dict()
        for section, key in _LATER_KEYS:
            if d[section][key] == getattr(_DEFAULTS[section], key):
                d[section].pop(key)
        d["model"].pop("cache", None)
        d["model"].pop("cache_dir", None)
        d.pop("experiment", None)
        d.pop("primary_metric", None)  # changes what the report tests, not a single fold's numbers
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


_DEFAULTS = {"model": ModelSettings(), "tuning": TuningSettings()}
_LATER_KEYS = (("model", "features"), ("model", "hybrid"), ("tuning", "tune_weight_decay"),
               ("tuning", "weight_decay_min"), ("tuning", "weight_decay_max"))


def _check_archs(archs: tuple[str, ...], m: ModelSettings) -> None:
    """Each `archs:` entry a known architecture, optionally `+<option>`s (neipalette.models.variants); variants
    only on frozen, cached heads, and no two entries that would run the same model."""
    seen: dict[tuple, str] = {}
    for name in archs:
        if not isinstance(name, str):
            raise ConfigError(f"archs: expected architecture names, got {show(name)}")
        try:
            settings = model_settings(name, m.features, m.hybrid)
            get_arch(settings[0])
        except ValueError as exc:
            raise ConfigError(f"archs: {exc}") from None
        if is_variant(name) and m.fine_tune != "head":
            raise ConfigError(f"archs: {show(name)} needs model.fine_tune: head (frozen backbone), got "
                              f"{show(m.fine_tune)}; set model.fine_tune: head or list {show(settings[0])} alone")
        if settings in seen and seen[settings] != name:
            raise ConfigError(f"archs: {show(seen[settings])} and {show(name)} run the same model (features "
                              f"{settings[1]}, hybrid {settings[2]}); list it once")
        seen.setdefault(settings, name)


def _check_features(m: ModelSettings, t: TuningSettings) -> None:
    """model.features / model.hybrid / a tuned weight decay: known values, and only on frozen, cached heads."""
    if m.features not in FEATURE_MODES:
        raise ConfigError(f"model.features: {show(m.features)} is not one of {', '.join(FEATURE_MODES)}")
    if m.hybrid is not None:
        try:
            get_hand_features(m.hybrid)
        except ValueError as exc:
            raise ConfigError(f"model.hybrid: {exc}") from None
    for what, on in (("model.features: multiscale", m.features != "final"), ("model.hybrid", m.hybrid is not None),
                     ("tuning.tune_weight_decay", t.tune_weight_decay)):
        if on and m.fine_tune != "head":
            raise ConfigError(f"{what} needs model.fine_tune: head (frozen backbone), got {show(m.fine_tune)}; "
                              "set model.fine_tune: head")


def _check_ranges(cfg: BenchmarkConfig) -> None:
    """Ranges that would otherwise fail fold by fold, long after the parent run was created."""
    m, t, g = cfg.model, cfg.tuning, cfg.generate
    if not isinstance(cfg.dataset, str) or not cfg.dataset.strip():
        raise ConfigError(f"dataset: expected a folder path, got {show(cfg.dataset)}")
    if not cfg.experiment.strip() or len(cfg.experiment) > EXPERIMENT_NAME_MAX:
        raise ConfigError(f"experiment: MLflow needs a name of 1 to {EXPERIMENT_NAME_MAX} characters, got "
                          f"{len(cfg.experiment)} ({show(cfg.experiment)}); set experiment: to a short name")
    for key, value, low, high in (
        ("seed", cfg.seed, 0, SEED_MAX),
        ("n_splits", cfg.n_splits, 2, 100),
        ("n_repeats", cfg.n_repeats, 1, 1000),
        ("seed_split_test_images", cfg.seed_split_test_images, 1, 1_000_000),
        ("model.image_size", m.image_size, 32, 1024),
        ("model.n_views", m.n_views, 1, 64),
        ("model.batch_size", m.batch_size, 1, 4096),
        ("model.weight_decay", m.weight_decay, 0.0, 10.0),
        ("tuning.n_trials", t.n_trials, 1 if t.enabled else 0, 100_000),
        ("tuning.inner_folds", t.inner_folds, 2 if t.enabled else 0, 100),
        ("tuning.lr_min", t.lr_min, 1e-12, 10.0),
        ("tuning.lr_max", t.lr_max, 1e-12, 10.0),
        ("tuning.epochs_min", t.epochs_min, 1, 10_000),
        ("tuning.epochs_max", t.epochs_max, 1, 10_000),
        ("tuning.learning_rate", t.learning_rate, 1e-12, 10.0),
        ("tuning.epochs", t.epochs, 1, 10_000),
        ("tuning.weight_decay_min", t.weight_decay_min, 1e-12, 100.0),
        ("tuning.weight_decay_max", t.weight_decay_max, 1e-12, 100.0),
        *((("generate.outfits", g.outfits, 2, 1_000_000), ("generate.seed", g.seed, 0, SEED_MAX)) if g else ()),
    ):
        fmt = "g" if isinstance(low, float) else "d"
        if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
            raise ConfigError(f"{key}: must be between {low:{fmt}} and {high:{fmt}}, got {show(value)}; set it in range "
                              f"(--set {key}=...)")
    if t.lr_min >= t.lr_max:
        raise ConfigError(f"tuning.lr_min ({t.lr_min:g}) must be below tuning.lr_max ({t.lr_max:g})")
    if t.weight_decay_min >= t.weight_decay_max:
        raise ConfigError(f"tuning.weight_decay_min ({t.weight_decay_min:g}) must be below tuning.weight_decay_max "
                          f"({t.weight_decay_max:g})")
    if t.epochs_min > t.epochs_max:
        raise ConfigError(f"tuning.epochs_min ({t.epochs_min}) must not exceed tuning.epochs_max ({t.epochs_max})")


def build_config(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config key {where + '.' if where else ''}{str(unknown[0])[:80]}; "
                          f"known keys: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        sub = _dataclass_in(hint)
        key = f"{where}.{name}" if where else name
        if sub is not None and value is None and type(None) not in getattr(hint, "__args__", ()):
            raise ConfigError(f"{key}: a section, not null; give it a mapping of its settings or remove the key "
                              "for the defaults")
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
        raise ConfigError(f"{key}: expected a list, e.g. [{show(value)}], got {show(value)}")
    types = set(getattr(hint, "__args__", ())) or {hint}
    if value is None and type(None) in types:
        return value
    if str in types:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string{' (a path)' if key == 'dataset' else ''}, got {show(value)}")
    if bool in types:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {show(value)}")
    if int in types and float not in types:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {show(value)}")
    if float in types:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {show(value)}")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{key}: expected a number, got {show(value)}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {show(value)}; give a number such as 1e-3")
        return number
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
    if path.stat().st_size > YAML_MAX_BYTES:
        raise ConfigError(f"{path} is {path.stat().st_size:,} bytes; a config is a few kilobytes (at most "
                          f"{YAML_MAX_BYTES:,}): pass the experiments/*.yaml file, not a data file")
    data = load_yaml(path.read_text(), str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names a key twice (plain YAML keeps the last, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {show(key)} at line {key_node.start_mark.line + 1}: YAML would keep "
                    "only the last; give each key once")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, where: str) -> Any:
    """YAML text (a config file or a `--set` value): duplicate keys refused, and refused when aliases would
    expand it beyond `YAML_MAX_NODES` items; one-line ConfigError."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML ({str(exc).splitlines()[0]})") from None
    stack, n = [data], 0
    while stack:  # counts shared (aliased) values every time they occur, as building the config would
        item = stack.pop()
        n += 1
        if n > YAML_MAX_NODES:
            raise ConfigError(f"{where}: more than {YAML_MAX_NODES:,} values once its aliases (*name) are expanded; "
                              "a config needs a few dozen: remove the nested aliases")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return data


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> None:
    """The `--set key=value` overrides of every command line, in place: dotted keys, YAML values."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {show(item)}: expected key=value")
        key, raw = item.split("=", 1)
        _set(data, key.strip(), load_yaml(raw, f"--set {show(key.strip())}"))


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
