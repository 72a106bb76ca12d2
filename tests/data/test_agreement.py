"""neipalette.data.agreement / aggregate / ratings: formulas against published worked examples, the
rater-based ceiling against the generator's known ceiling, and ratings.csv's append-only semantics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from neipalette.cli import main
from neipalette.data.agreement import (
    best_accuracy, fleiss_kappa, krippendorff_alpha_nominal, majority_labels, plug_in_ceiling, rater_ceiling,
)
from neipalette.data.aggregate import AggregateOptions, aggregate, read_rater_ceiling
from neipalette.data.ratings import append_vote, current_states, read_ratings
from neipalette.data.synth import SynthConfig, generate_dataset
from neipalette.errors import DatasetError
from neipalette.evaluation.metrics import bayes_accuracy

# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, 5 categories -> 0.210.
FLEISS_EXAMPLE = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                  [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
# Krippendorff's reliability data (3 coders, 15 units, missing values) as value counts; nominal alpha 0.691358
# (the `krippendorff` package's test_nominal_metric_value_counts).
KRIPPENDORFF_EXAMPLE = [[1, 0, 0, 0], [0, 0, 0, 0], [0, 2, 0, 0], [2, 0, 0, 0], [0, 0, 2, 0], [0, 0, 2, 1],
                        [0, 0, 0, 3], [1, 0, 1, 0], [0, 2, 0, 0], [2, 0, 0, 0], [2, 0, 0, 0], [0, 0, 2, 0],
                        [0, 0, 2, 0], [0, 0, 0, 0], [0, 0, 1, 1]]


def test_fleiss_kappa_worked_example() -> None:
    assert fleiss_kappa(np.array(FLEISS_EXAMPLE)) == pytest.approx(0.2099, abs=5e-5)


def test_krippendorff_alpha_worked_example() -> None:
    assert krippendorff_alpha_nominal(np.array(KRIPPENDORFF_EXAMPLE)) == pytest.approx(0.691358, abs=1e-6)


def test_perfect_and_chance_agreement() -> None:
    perfect = np.array([[3, 0], [0, 3], [3, 0], [0, 3]])
    assert fleiss_kappa(perfect) == pytest.approx(1.0) and krippendorff_alpha_nominal(perfect) == pytest.approx(1.0)
    g = np.random.default_rng(0)
    votes = g.integers(0, 2, (4000, 5))
    random = np.stack([5 - votes.sum(1), votes.sum(1)], 1)
    assert abs(fleiss_kappa(random)) < 0.02 and abs(krippendorff_alpha_nominal(random)) < 0.02


def test_majority_and_tie_rules() -> None:
    counts = np.array([[2, 1], [1, 2], [1, 1], [0, 0]])
    assert majority_labels(counts, "negative").tolist() == [0, 1, 0, -1]
    assert majority_labels(counts, "positive").tolist() == [0, 1, 1, -1]
    assert majority_labels(counts, "unlabelled").tolist() == [0, 1, -1, -1]


def test_best_accuracy() -> None:
    assert best_accuracy(np.array([0.5]), 5)[0] == pytest.approx(0.5)
    assert best_accuracy(np.array([1.0, 0.0]), 3).tolist() == [1.0, 1.0]
    # q = 0.8, 3 raters: P(majority positive) = 0.8^3 + 3 * 0.8^2 * 0.2 = 0.896
    assert best_accuracy(np.array([0.8]), 3)[0] == pytest.approx(0.896)


def _simulated_counts(q: np.ndarray, raters: int, seed: int) -> np.ndarray:
    votes = np.random.default_rng(seed).random((len(q), raters)) < q[:, None]
    return np.stack([raters - votes.sum(1), votes.sum(1)], 1)


def test_ceiling_estimator_is_not_the_biased_plug_in() -> None:
    q = np.random.default_rng(1).beta(2.0, 2.0, 2000)
    truth = float(best_accuracy(q, 5).mean())
    counts = _simulated_counts(q, 5, seed=2)
    assert abs(rater_ceiling(counts) - truth) < 0.01
    assert plug_in_ceiling(counts) - truth > 0.03  # what the estimator exists to avoid


@pytest.fixture(scope="module")
def generated_400(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's 400-outfit set (seed 11), small images: the ceiling does not depend on them."""
    root = tmp_path_factory.mktemp("gen") / "synthetic-400"
    generate_dataset(SynthConfig(n_outfits=400, seed=11, image_size=32), root)
    return root


def truth_to_ratings(root: Path) -> None:
    truth = pd.read_csv(root / "truth.csv", dtype={"outfit_id": str})
    raters = [c for c in truth.columns if c.startswith("rater_")]
    with open(root / "ratings.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["outfit_id", "rater", "label", "time"])
        for rater in raters:
            for oid, vote in zip(truth["outfit_id"], truth[rater]):
                w.writerow([oid, rater, "positive" if vote == 1 else "negative", "2026-01-01T00:00:00.000+00:00"])


def test_rater_ceiling_on_generated_400_within_0_04(generated_400: Path) -> None:
    truth = pd.read_csv(generated_400 / "truth.csv", dtype={"outfit_id": str})
    known = bayes_accuracy(truth["p_positive"].to_numpy())
    before = (generated_400 / "outfits.csv").read_text()
    truth_to_ratings(generated_400)
    summary = aggregate(generated_400, AggregateOptions(n_boot=50))
    est = summary["noise_ceiling"]
    print(f"rater-based ceiling {est['estimate']:.4f} [{est['ci_low']:.4f}, {est['ci_high']:.4f}] vs known {known:.4f}")
    assert abs(est["estimate"] - known) < 0.04
    assert est["ci_low"] <= est["estimate"] <= est["ci_high"]
    # the generator's labels are the same majority rule (ties negative): aggregation reproduces them
    assert (generated_400 / "outfits.csv").read_text() == before
    assert summary["raters_per_outfit"] == {"5": 400}
    assert read_rater_ceiling(generated_400)["estimate"] == est["estimate"]


def test_append_replay_undo_and_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    append_vote(path, "o1", "ann", "positive")
    append_vote(path, "o1", "ann", "undo")
    append_vote(path, "o1", "ann", "negative")
    append_vote(path, "o2", "ann", "skip")
    append_vote(path, "o2", "bob", "positive")
    lines = path.read_text().splitlines()
    assert lines[0] == "outfit_id,rater,label,time" and len(lines) == 6
    with open(path, "a") as fh:
        fh.write("o3,ann,posi")  # a crash mid-write
    rows = read_ratings(path)
    assert len(rows) == 5
    assert current_states(rows) == {("o1", "ann"): "negative", ("o2", "ann"): "skip", ("o2", "bob"): "positive"}
    append_vote(path, "o3", "ann", "positive")  # the torn line is cut, the next vote is whole
    assert len(read_ratings(path)) == 6 and "posi\n" not in path.read_text()
    assert current_states(read_ratings(path))[("o3", "ann")] == "positive"
    with pytest.raises(ValueError):
        append_vote(path, "o3", "ann", "maybe")


def test_aggregate_cli_ties_and_skips(tiny_dataset: Path) -> None:
    path = tiny_dataset / "ratings.csv"
    for rater, votes in {"ann": ["positive", "negative", "positive"], "bob": ["positive", "positive", "skip"],
                         "cy": ["negative", "positive", "positive"]}.items():
        for i, vote in enumerate(votes):
            append_vote(path, f"o{i:03d}", rater, vote)
    append_vote(path, "o003", "ann", "positive")
    append_vote(path, "o003", "bob", "negative")
    result = CliRunner().invoke(main, ["data", "aggregate", str(tiny_dataset), "--ties", "unlabelled", "--boot", "20"])
    assert result.exit_code == 0, result.output
    assert "1 ties -> unlabelled" in result.output and "Fleiss' kappa:" in result.output
    labels = pd.read_csv(tiny_dataset / "outfits.csv", dtype=str, keep_default_na=False).set_index("outfit_id")["label"]
    # o000 2:1 positive, o001 2:1 positive, o002 2:0 (bob skipped) positive, o003 tied -> empty, rest untouched
    assert labels.tolist()[:4] == ["positive", "positive", "positive", ""]
    assert labels.tolist()[4:] == ["positive", "negative", "positive", "negative"]
    agreement = json.loads((tiny_dataset / "agreement.json").read_text())
    assert agreement["n_skips"] == 1 and agreement["raters_per_outfit"] == {"0": 4, "2": 2, "3": 2}


def test_aggregate_bad_input(tiny_dataset: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["data", "aggregate", str(tiny_dataset)])
    assert result.exit_code == 2 and "ratings.csv not found" in result.stderr
    append_vote(tiny_dataset / "ratings.csv", "nope", "ann", "positive")
    with pytest.raises(DatasetError, match="rates outfit 'nope'"):
        aggregate(tiny_dataset)


def test_sheet_shows_labels_and_unlabelled(tiny_dataset: Path, tmp_path: Path) -> None:
    from PIL import Image

    text = (tiny_dataset / "outfits.csv").read_text().replace("o001,images/o001_top.png,images/o001_bottom.png,negative",
                                                              "o001,images/o001_top.png,images/o001_bottom.png,")
    (tiny_dataset / "outfits.csv").write_text(text)
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(main, ["data", "sheet", str(tiny_dataset), "--out", str(out), "--columns", "4",
                                       "--thumb", "32"])
    assert result.exit_code == 0 and "8 outfits (1 unlabelled)" in result.output, result.output
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert sheet.shape == (2 * (2 * 32 + 16 + 6) + 6, 4 * (32 + 6) + 6, 3)
    label_band = sheet[6 + 64: 6 + 64 + 16]  # first row of cells: the text under o000..o003
    green = ((label_band[..., 1] > 90) & (label_band[..., 0] < 40)).any()
    grey = ((abs(label_band[..., 0] - 110) < 30) & (abs(label_band[..., 1] - 110) < 30)
            & (abs(label_band[..., 2] - 110) < 30)).any()
    assert green and grey  # o000 positive in green, o001 unlabelled in grey
    (tiny_dataset / "images" / "o002_top.png").write_bytes(b"junk")
    bad = CliRunner().invoke(main, ["data", "sheet", str(tiny_dataset), "--out", str(tmp_path / "x.png")])
    assert bad.exit_code == 2 and "o002_top.png" in bad.stderr and not (tmp_path / "x.png").exists()
