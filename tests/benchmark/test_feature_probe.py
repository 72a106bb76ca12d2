"""The feature probe end to end: the runner logs feature_probe.json on the parent run, the report shows it and
report.json has `feature_probe`; and the probe's targets come from the dataset's images and truth.csv."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.feature_probe import garment_targets
from neipalette.colour.extract import dominant_lab
from neipalette.data.dataset import load_dataset
from tests.benchmark.test_runner import _config, _explain, _invoke, _role
from tests.conftest import make_tiny_dataset
from tests.helpers import all_runs, mlflow_client


def test_targets_are_extracted_per_garment_and_true_ones_come_from_truth_csv(tmp_path) -> None:
    root = make_tiny_dataset(tmp_path / "d", n_outfits=6, size=32, seed=1, with_truth=True)
    truth = pd.read_csv(root / "truth.csv", dtype={"outfit_id": str})
    ds = load_dataset(root)
    labs = np.array([dominant_lab(p) for o in ds.outfits for p in (o.top, o.bottom)])
    for part, c in (("top", "L"), ("top", "a"), ("bottom", "b")):
        truth[f"{part}_{c}"] = 0.0
    truth["top_L"], truth["top_a"], truth["top_b"] = labs[0::2].T + 1.0  # "true" = extracted + 1
    truth["bottom_L"], truth["bottom_a"], truth["bottom_b"] = labs[1::2].T - 1.0
    truth["top_pattern"] = ["stripes", "none"] * 3
    truth["bottom_pattern"] = "none"
    truth.to_csv(root / "truth.csv", index=False)
    targets, groups = garment_targets(load_dataset(root))
    np.testing.assert_allclose(targets["L"], labs[:, 0])
    np.testing.assert_allclose(targets["true_a"], labs[:, 1] + np.tile([1.0, -1.0], 6))
    np.testing.assert_array_equal(targets["true_pattern"], [1, 0, 0, 0] * 3)
    assert list(groups[:4]) == ["o000", "o000", "o001", "o001"] and np.all(np.isfinite(targets["pattern"]))


def test_benchmark_logs_the_probe_and_the_report_shows_it(tmp_path, store) -> None:
    from benchmark.report.cli import generate

    config = _config(tmp_path, baselines=["chance", "colour_pattern"], protocols=["cv"])
    result = _invoke(config)
    assert result.exit_code == 0, _explain(result)
    parent = _role(all_runs(store), "parent")[0].info.run_id
    local = mlflow_client(store).download_artifacts(parent, "feature_probe.json", str(tmp_path))
    probe = json.loads(Path(local).read_text())
    assert set(probe["r2"]) == {"resnet18", "colour_pattern"}
    assert probe["n_garments"] == 24 and probe["dims"]["resnet18"] == 512 and probe["dims"]["colour_pattern"] == 7
    # colour_pattern's features hold the extracted colour itself: a linear read-out recovers it
    assert all(probe["r2"]["colour_pattern"][k] > 0.95 for k in ("L", "a", "b")), probe["r2"]
    assert {"L", "a", "b", "pattern"} <= set(probe["r2"]["resnet18"])
    assert all(math.isfinite(v) for k, v in probe["r2"]["resnet18"].items() if k != "pattern")

    report, paths = generate(parent, "neipalette", tmp_path / "report", tracking_uri=store)
    data = json.loads(Path(paths["json"]).read_text())
    assert data["feature_probe"] == probe["r2"] or _close(data["feature_probe"], probe["r2"])
    md = Path(paths["md"]).read_text()
    assert "## Feature probe" in md and "| ResNet18 | 512 |" in md and "ResNet18's features keep" in md
    assert "Colour + pattern (tuned logistic)" in md


def _close(a: dict, b: dict) -> bool:
    return all(np.allclose([a[m][k] for k in b[m]], [b[m][k] for k in b[m]], equal_nan=True) for m in b)
