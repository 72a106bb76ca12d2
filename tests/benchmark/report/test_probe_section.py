"""The report's feature-probe section: table, one sentence per network, report.json `feature_probe`."""

from __future__ import annotations

from benchmark.report.data import Report
from benchmark.report.probe import probe_sentences, probe_table

PROBE = {"method": "ridge", "n_garments": 80, "dims": {"resnet18": 512, "efficientnet_lite0": 1280, "colour_pattern": 7},
         "skipped": {},
         "r2": {"colour_pattern": {"L": 1.0, "a": 1.0, "b": 1.0, "pattern": 1.0, "true_L": 0.99, "true_a": 0.98,
                                   "true_b": 0.97, "true_pattern": 0.9},
                "resnet18": {"L": 0.7, "a": 0.25, "b": 0.4, "pattern": 0.3, "true_L": 0.7, "true_a": 0.21,
                             "true_b": 0.43, "true_pattern": 0.2},
                "efficientnet_lite0": {"L": 0.9, "a": 0.85, "b": 0.88, "pattern": 0.6}}}


def _report(probe: dict | None) -> Report:
    return Report(run_id="r", header={}, groups=[], comparisons=[], ceiling=[], ceiling_gaps=[], seed_split=[],
                  missing_folds=[], n_jobs_planned=0, n_jobs_finished=0, feature_probe=probe)


def test_table_lists_cnns_first_then_colour_pattern_with_true_columns() -> None:
    table = probe_table(_report(PROBE))
    assert [r[0] for r in table.rows] == ["ResNet18", "EfficientNet-Lite0", "Colour + pattern (tuned logistic)"]
    assert table.headers[-1] == "R² true pattern" and table.rows[0][1:4] == ["512", "0.70", "0.25"]
    assert table.rows[1][-4:] == ["n/a"] * 4  # no truth for that row


def test_one_sentence_per_network_names_its_weakest_colour_coordinate() -> None:
    s = probe_sentences(_report(PROBE))
    assert len(s) == 2
    assert s[0].startswith("ResNet18's features keep R² 0.21 of the garments' true a*") and "cannot see hue" in s[0]
    assert s[1].startswith("EfficientNet-Lite0's features keep every extracted colour coordinate (R² ≥ 0.85")
    lost = {**PROBE, "r2": {"resnet18": {"L": 0.8, "a": -0.1, "b": 0.3}}}
    assert probe_sentences(_report(lost))[0].startswith("ResNet18's features keep nothing of the garments' extracted a*")


def test_report_json_has_feature_probe_or_null() -> None:
    # the markdown section is checked end to end in tests/benchmark/test_feature_probe.py
    data = _report(PROBE).as_json()
    assert data["feature_probe"] == PROBE["r2"] and data["feature_probe_details"]["n_garments"] == 80
    assert _report(None).as_json()["feature_probe"] is None
