"""The report as plain data (`Report`): everything the renderers need, and its JSON form (report.json)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from benchmark.report.constants import ALPHA, CONFIDENCE, DEFAULT_BOOT_SEED, N_BOOT
from benchmark.report.format import _jsonable


@dataclass
class Report:
    """Everything the renderers need, as plain data; `as_json()` is report.json."""

    run_id: str
    header: dict
    groups: list[dict]
    comparisons: list[dict]
    ceiling: list[dict]
    ceiling_gaps: list[dict]
    seed_split: list[dict]
    missing_folds: list[dict]
    n_jobs_planned: int
    n_jobs_finished: int
    boot_seed: int = DEFAULT_BOOT_SEED
    primary_metric: str = "roc_auc"
    family: dict = field(default_factory=dict)
    coverage: dict | None = None
    verdict: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)
    config_text: str | None = None
    summary_runs_written: list[dict] = field(default_factory=list)
    # (arch, protocol) -> (finished folds, predictions or None, planned job count); for summary runs
    frames: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame | None, int]] = field(default_factory=dict)
    tuning: dict | None = None  # benchmark.report.tuning.tuning_section: chosen values per fold, edge flags
    rater_ceiling: dict | None = None  # the raters' estimate of the ceiling (no truth.csv), with its interval
    feature_probe: dict | None = None  # the parent's feature_probe.json (benchmark.report.probe), None when absent

    def as_json(self) -> dict:
        return _jsonable({
            "run_id": self.run_id, "header": self.header,
            "settings": {"confidence": CONFIDENCE,
                         "cv_interval": "Nadeau-Bengio corrected t on the logit scale (bounded_logit_t), df = J-1; "
                                        "metrics outside [0, 1]: corrected t",
                         "comparisons": "corrected paired t on the difference scale (p); the interval of a "
                                        "difference of [0, 1] scores on the Fisher-z scale, inside [-1, 1], "
                                        "unadjusted; tests against the chance level are one-sample corrected t",
                         "multiplicity": f"Holm over the declared family on the primary metric, alpha {ALPHA}",
                         "seed_split_accuracy": "outfit-level (cluster) percentile bootstrap; Wilson as if images "
                                                "were independent",
                         "seed_split_roc_auc": "outfit-level (cluster) percentile bootstrap",
                         "ceiling": "expected Bayes accuracy; realised Bayes-rule accuracy range from the exact "
                                    "Poisson-binomial law (assumes independent labels); for a generated dataset "
                                    "also simulated under the generator's balanced-threshold process",
                         "n_boot": N_BOOT, "bootstrap_seed": self.boot_seed},
            "primary_metric": self.primary_metric, "family": self.family, "coverage": self.coverage,
            "n_jobs_planned": self.n_jobs_planned, "n_jobs_finished": self.n_jobs_finished,
            "groups": self.groups, "comparisons": self.comparisons, "ceiling": self.ceiling,
            "ceiling_gaps": self.ceiling_gaps, "seed_split": self.seed_split, "missing_folds": self.missing_folds,
            "verdict": self.verdict, "summary_runs_written": self.summary_runs_written, "tuning": self.tuning,
            "rater_ceiling": self.rater_ceiling,
            "feature_probe": self.feature_probe["r2"] if self.feature_probe else None,
            "feature_probe_details": ({k: v for k, v in self.feature_probe.items() if k != "r2"}
                                      if self.feature_probe else None),
        })
