"""Sweep configuration: a benchmark config run at several generated dataset sizes and rater panels.

A sweep point is one (n_outfits, n_raters, sigma). Each (n_raters, sigma) gets one generated pool of
max(sizes) outfits; smaller sizes are nested, class-balanced subsets of it (same images, so the embedding
cache is shared). Unknown keys are errors, as in `benchmark.config`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


from benchmark.config import (BenchmarkConfig, ConfigError, apply_overrides, build_config, read_yaml_mapping,
                              show)

ALPHA = 0.05
TARGET_POWER = 0.8
PRIMARY_METRICS = ("roc_auc", "accuracy")


@dataclass(frozen=True)
class SweepPoint:
    n_outfits: int
    n_raters: int | None  # None: the generator's default
    sigma: float | None
    n_repeats: int

    @property
    def key(self) -> str:
        k = "default" if self.n_raters is None else str(self.n_raters)
        s = "default" if self.sigma is None else f"{self.sigma:g}"
        return f"n{self.n_outfits}|k{k}|s{s}"


@dataclass(frozen=True)
class SweepConfig:
    name: str = "sweep"
    sizes: tuple[int, ...] = (40, 80, 160, 320, 640)
    raters: tuple[int, ...] = ()  # K values; empty: the generator's default
    sigmas: tuple[float, ...] = ()  # rater noise values; empty: the generator's default
    repeats: dict = field(default_factory=dict)  # n_outfits -> outer CV repeats (default: benchmark.n_repeats)
    generator: dict = field(default_factory=lambda: {"seed": 11})  # SynthConfig fields (n_outfits: the pool)
    data_dir: str = "data/sweeps"
    primary_metric: str = "roc_auc"
    optional_archs: tuple[str, ...] = ()  # run when installed (e.g. efficientnet_lite0), skipped otherwise
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)

    def __post_init__(self) -> None:
        if not self.sizes or any(not isinstance(n, int) or not 4 <= n <= 1_000_000 for n in self.sizes):
            raise ConfigError(f"sizes: need a list of integers from 4 to 1000000, got {show(list(self.sizes))}")
        if len(set(self.sizes)) != len(self.sizes):
            raise ConfigError(f"sizes: duplicate values in {list(self.sizes)}")
        for k in self.raters:
            if not isinstance(k, int) or not 1 <= k <= 1000:
                raise ConfigError(f"raters: need integers from 1 to 1000, got {show(k)}")
        for s in self.sigmas:
            if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 <= s <= 1000:
                raise ConfigError(f"sigmas: need finite numbers from 0 to 1000, got {show(s)}")
        if not isinstance(self.repeats, dict):
            raise ConfigError("repeats: expected a mapping n_outfits: n_repeats, e.g. {320: 2, 640: 1}")
        try:  # YAML/JSON round trips (the logged sweep.yaml, --set) may spell the sizes as strings
            object.__setattr__(self, "repeats", {int(n): r for n, r in self.repeats.items()})
        except (TypeError, ValueError):
            raise ConfigError(f"repeats: keys must be sizes (integers), got {list(self.repeats)}") from None
        for n, r in self.repeats.items():
            if n not in self.sizes:
                raise ConfigError(f"repeats: {n} is not one of sizes {list(self.sizes)}")
            if not isinstance(r, int) or r < 1:
                raise ConfigError(f"repeats.{n}: need an integer >= 1, got {r!r}")
        if not isinstance(self.generator, dict):
            raise ConfigError("generator: expected a mapping of generator settings, e.g. {seed: 11}")
        from neipalette.data.synth import SynthConfig

        known = {f.name for f in fields(SynthConfig)} - {"n_outfits", "n_raters", "sigma"}
        unknown = sorted(set(self.generator) - known)
        if unknown:
            raise ConfigError(f"unknown generator key {unknown[0]}; known: {', '.join(sorted(known))} "
                              "(n_outfits, n_raters and sigma come from sizes, raters and sigmas)")
        if self.primary_metric not in PRIMARY_METRICS:
            raise ConfigError(f"primary_metric: {self.primary_metric!r} is not one of {', '.join(PRIMARY_METRICS)}")
        if "cv" not in self.benchmark.protocols:
            raise ConfigError("benchmark.protocols must include cv: the sweep compares CV results across sizes")
        smallest = min(self.sizes) // 2
        if self.benchmark.n_splits > smallest:
            raise ConfigError(f"benchmark.n_splits={self.benchmark.n_splits} needs at least that many outfits per "
                              f"class, but the smallest size {min(self.sizes)} has {smallest}; lower n_splits")

    def points(self) -> list[SweepPoint]:
        """Every (size, K, sigma), sizes innermost, in a fixed order."""
        ks = self.raters or (None,)
        ss = self.sigmas or (None,)
        return [SweepPoint(n, k, None if s is None else float(s), self.repeats.get(n, self.benchmark.n_repeats))
                for k, s, n in itertools.product(ks, ss, sorted(self.sizes))]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def result_hash(self) -> str:
        """Everything that changes results: the sweep keys and the benchmark's result hash."""
        d = self.to_dict()
        d["benchmark"] = self.benchmark.result_hash()
        d.pop("data_dir", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def benchmark_for(self, point: SweepPoint, dataset: Path, archs: tuple[str, ...]) -> BenchmarkConfig:
        """The point's benchmark: the base config on the point's dataset, its repeats and the archs available."""
        b = self.benchmark
        return replace(b, name=f"{self.name}-{point.key.replace('|', '-')}", dataset=str(dataset), generate=None,
                       n_repeats=point.n_repeats, archs=archs,
                       protocols=tuple(p for p in b.protocols if p == "cv"))


def load_sweep_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepConfig:
    """Read a sweep YAML and apply `key=value` overrides (dotted keys, YAML values; `benchmark.x.y` too)."""
    path = Path(path)
    data = read_yaml_mapping(path, "pass experiments/learning-curve.yaml or experiments/raters.yaml")
    data.setdefault("name", path.stem)
    apply_overrides(data, overrides)
    bench = data.pop("benchmark", {}) or {}
    if not isinstance(bench, dict):
        raise ConfigError("benchmark: expected a mapping of benchmark config keys (as in experiments/default.yaml)")
    for key in ("dataset", "generate"):
        if key in bench:
            raise ConfigError(f"benchmark.{key}: the sweep generates its own datasets; set generator/sizes instead")
    bench.setdefault("name", data["name"])
    known = {f.name for f in fields(SweepConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown sweep config key {unknown[0]}; known keys: {', '.join(sorted(known))}")
    for key in ("sizes", "raters", "sigmas", "optional_archs"):
        if key in data:
            if not isinstance(data[key], list):
                raise ConfigError(f"{key}: expected a list, got {data[key]!r}")
            data[key] = tuple(data[key])
    for key in ("repeats", "generator"):
        if key in data and data[key] is None:
            data[key] = {}
    try:
        return SweepConfig(**data, benchmark=build_config(BenchmarkConfig, bench, "benchmark"))
    except TypeError as exc:
        raise ConfigError(f"config: {exc}") from None
