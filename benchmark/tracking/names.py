"""The names the benchmark writes into MLflow: the tag prefix, registered model names and their aliases."""

from __future__ import annotations

import re

TAG = "neipalette."


# A registered model's alias must match [\w-]+, must not be `latest` (MLflow resolves models:/<name>/latest
# itself) and must not look like a version (v1, V2).
_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$")

def model_alias(benchmark_name: str) -> str:
    """The registry alias for a benchmark (config) name: `default`, `quick`, `seed-replication`, ..."""
    alias = re.sub(r"[^\w-]+", "-", benchmark_name).strip("-") or "benchmark"
    return f"bench-{alias}" if _RESERVED_ALIAS.match(alias) else alias

def _mlflow_name(text: str) -> str:
    """A model name as MLflow keys allow it: ':' and '/' (`torchvision:`/`timm:` names) become '-', and a
    variant's '+' (`resnet18+colour_stats`, refused in metric keys) becomes '_'."""
    return text.replace(":", "-").replace("/", "-").replace("+", "_")


def registered_model_name(arch: str) -> str:
    """`neipalette-<arch>` (see `_mlflow_name`), e.g. `neipalette-torchvision-x`, `neipalette-resnet18_colour_stats`."""
    return _mlflow_name(f"neipalette-{arch}")


def headline_metric(arch: str, key: str) -> str:
    """A parent run's metric for one model, `<arch>.<key>` (e.g. `resnet18.roc_auc_ci_low`), spelt like
    registered model names."""
    return _mlflow_name(f"{arch}.{key}")


# Run names put what tells siblings apart first: the UI cuts long names at the end ("summary-efficie..." four
# times before), so the fold, the role marker and the architecture come before what all siblings share.
def parent_run_name(benchmark_name: str) -> str:
    return f"{benchmark_name} benchmark"


def fold_run_name(arch: str, protocol: str, repeat: int, fold: int) -> str:
    """`r0f1 resnet18 cv`."""
    return f"r{repeat}f{fold} {arch} {protocol}"


def summary_run_name(arch: str, protocol: str) -> str:
    """`Σ resnet18 cv`: the aggregate of the fold runs `r*f* resnet18 cv`."""
    return f"Σ {arch} {protocol}"


def final_run_name(arch: str) -> str:
    """`final resnet18`: the model refit on every outfit (registered)."""
    return f"final {arch}"


def sweep_run_name(sweep_name: str) -> str:
    return f"{sweep_name} sweep"


def report_run_name(benchmark_run_name: str) -> str:
    """The run `mlflow run . -e report` makes, named after the benchmark it reports."""
    return f"report of {benchmark_run_name}"
