"""A dataset without truth.csv but with aggregated ratings: the parent run's dataset.json carries the
rater-based ceiling and the report header shows it, labelled as an estimate from the raters."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from benchmark.report.tables import _header_lines
from benchmark.runner import _dataset_info
from neipalette.data.aggregate import AggregateOptions, aggregate
from neipalette.data.dataset import load_dataset
from neipalette.data.ratings import append_vote


def test_dataset_info_and_header_carry_the_rater_ceiling(tiny_dataset: Path) -> None:
    for i in range(8):
        for r, rater in enumerate(("ann", "bob", "cy")):
            append_vote(tiny_dataset / "ratings.csv", f"o{i:03d}", rater,
                        "positive" if (i % 2 == 0) != (r == 2 and i < 3) else "negative")
    aggregate(tiny_dataset, AggregateOptions(n_boot=20))
    info = _dataset_info(load_dataset(tiny_dataset), "hash")
    assert info["has_truth"] is False and 0.5 <= info["rater_ceiling"]["estimate"] <= 1.0
    header = {"run_name": "b", "run_id": "r", "status": "FINISHED", "experiment": "e", "start_time": None,
              "dataset": info, "weights": {}, "random_init": [], "git_commit": "c", "config_hash": "h"}
    lines, _ = _header_lines(SimpleNamespace(header=header, n_jobs_finished=1, n_jobs_planned=1))
    line = next(x for x in lines if x.startswith("Dataset:"))
    assert "no truth.csv; rater-based noise ceiling (estimate from ratings.csv, agreement.json) " in line
    assert f"{info['rater_ceiling']['estimate']:.3f} [" in line
    kappa = info["rater_agreement"]["fleiss_kappa"]
    agreement = next(x for x in lines if x.startswith("Rater agreement over 24 votes of 3 raters"))
    assert f"Fleiss' κ {kappa['estimate']:.3f} [{kappa['ci_low']:.3f}, " in agreement
    assert "Krippendorff's α (nominal) " in agreement


def test_no_ratings_no_ceiling(tiny_dataset: Path) -> None:
    info = _dataset_info(load_dataset(tiny_dataset), "hash")
    assert info["rater_ceiling"] is None and info["rater_agreement"] is None
