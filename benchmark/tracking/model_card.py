"""The model card of a registered model version: its markdown description and tags, from the benchmark's
parent run (config params, dataset tags, the `<arch>.<metric>` headline metrics) and the weights used."""

from __future__ import annotations

import math
from collections.abc import Mapping

from benchmark.tracking.names import TAG, headline_metric

METRIC_LABELS = {"roc_auc": "ROC-AUC", "accuracy": "accuracy"}


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def cv_numbers(arch: str, metrics: Mapping[str, float]) -> dict[str, tuple[float | None, float | None, float | None]]:
    """metric -> (mean, ci_low, ci_high) of `arch` on the parent run (absent values are None)."""
    return {m: tuple(metrics.get(headline_metric(arch, m + s)) for s in ("", "_ci_low", "_ci_high"))  # type: ignore[misc]
            for m in METRIC_LABELS}


def card_tags(arch: str, metrics: Mapping[str, float], weights: str, primary_metric: str) -> dict[str, str]:
    """`weights`, `primary_metric` and `cv_<metric>` (the CV mean) of each headline metric."""
    tags = {"weights": weights, "primary_metric": primary_metric}
    for m, (mean, _, _) in cv_numbers(arch, metrics).items():
        if mean is not None and math.isfinite(mean):
            tags[f"cv_{m}"] = f"{mean:.4f}"
    return tags


def model_card(*, arch: str, benchmark_name: str, parent_run_id: str, protocol: str, tags: Mapping[str, str],
               metrics: Mapping[str, float], weights: str, weights_detail: str, primary_metric: str,
               final_params: Mapping[str, object]) -> str:
    """Markdown: what the model does, the data and `protocol` (one line, e.g. `benchmark.finish.protocol_text`),
    the CV numbers with intervals, the ceiling, the weights."""
    rows = []
    for m, (mean, lo, hi) in sorted(cv_numbers(arch, metrics).items(), key=lambda kv: kv[0] != primary_metric):
        label = METRIC_LABELS[m] + (" (primary)" if m == primary_metric else "")
        rows.append(f"| {label} | {_num(mean)} | [{_num(lo)}, {_num(hi)}] |")
    ceiling = metrics.get("ceiling_accuracy")
    if ceiling is not None:
        rows.append(f"| noise ceiling (Bayes-rule accuracy) | {_num(ceiling)} | |")
    if weights == "random-init":
        provenance = (f"**Random initialisation** ({weights_detail}): no ImageNet transfer; these numbers describe "
                      "an untrained backbone with a trained head.")
    else:
        provenance = weights_detail
    return "\n".join([
        f"### {arch}: final model of benchmark `{benchmark_name}`",
        "",
        "P(harmonious) of a (top, bottom) image pair (`neipalette predict --model models:/<name>@<alias> TOP BOTTOM`).",
        f"Refit on every outfit of dataset `{tags.get(f'{TAG}dataset_name', '?')}` "
        f"(content hash `{tags.get(f'{TAG}dataset_hash', '?')}`) with learning rate "
        f"{_num(_float(final_params.get('learning_rate')), 4)} and {final_params.get('epochs', '?')} epochs "
        "(the median of the CV folds' tuned values).",
        "",
        f"**Cross-validation** ({protocol}), 95% intervals (corrected resampled t):",
        "",
        "| metric | mean | 95% interval |",
        "|---|---|---|",
        *rows,
        "",
        f"**Weights:** {provenance}",
        "",
        f"Benchmark parent run `{parent_run_id}`; the verdict (paired comparisons with Holm-adjusted p) is in its "
        f"report: `python -m benchmark.report --run-id {parent_run_id}`.",
    ])


def _float(x: object) -> float | None:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
