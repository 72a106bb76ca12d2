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

def registered_model_name(arch: str) -> str:
    """`neipalette-<arch>`; MLflow forbids ':' and '/' in names, so `torchvision:x` registers as `torchvision-x`."""
    return f"neipalette-{arch}".replace(":", "-").replace("/", "-")


def headline_metric(arch: str, key: str) -> str:
    """A parent run's metric for one model, `<arch>.<key>` (e.g. `resnet18.roc_auc_ci_low`); ':' and '/' of
    `torchvision:`/`timm:` names become '-' like registered model names."""
    return f"{arch}.{key}".replace(":", "-").replace("/", "-")
