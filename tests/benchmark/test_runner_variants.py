"""A CNN and its variant (`resnet18+colour_stats`) in one benchmark: both run on the same folds, both reach the
report as CNNs, and the shared backbone embeds each image view once."""

from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner

from neipalette.models.embedding import Embedder
from tests.benchmark.test_runner import _config, _explain, _invoke, _planned_keys, _role
from tests.helpers import all_runs, mlflow_client


@pytest.mark.slow
def test_arch_and_its_hybrid_variant_share_folds_cache_and_report(tmp_path, store, monkeypatch):
    from benchmark.report.cli import main as report_main

    forwarded: Counter = Counter()
    forward = Embedder.forward

    def counting(self, units, views):  # the benchmark's embedders (a logged model's own check reloads it)
        if self.cache and self.cache_dir == tmp_path / "cache":
            forwarded.update(self.key(u, int(v)) for u, v in zip(units, views))
        return forward(self, units, views)

    monkeypatch.setattr(Embedder, "forward", counting)
    variant = "resnet18+colour_stats"
    config = _config(tmp_path, archs=["resnet18", variant], baselines=["chance"], protocols=["cv"],
                     model={"cache_dir": str(tmp_path / "cache")}, final_models=True)
    result = _invoke(config)
    assert result.exit_code == 0, _explain(result)
    assert forwarded and max(forwarded.values()) == 1  # the variant reads the base arch's embeddings

    runs = all_runs(store)
    (parent,) = _role(runs, "parent")
    assert parent.info.status == "FINISHED"
    folds = {r.data.tags["neipalette.job_key"]: r for r in _role(runs, "fold") if r.info.status == "FINISHED"}
    assert set(folds) == _planned_keys(config)
    for arch in ("resnet18", variant):
        keys = {k.split("|", 1)[1] for k in folds if k.startswith(f"{arch}|")}
        assert keys == {"cv|0|0", "cv|0|1"}, arch
    assert {folds[f"{variant}|cv|0|0"].data.params["features"], folds["resnet18|cv|0|0"].data.params["features"]} \
        == {"final+colour_stats", "final"}
    assert parent.data.tags["neipalette.weights.resnet18"].startswith("none")
    assert "resnet18_colour_stats.roc_auc" in parent.data.metrics  # '+' is not allowed in MLflow keys
    finals = {r.data.tags["neipalette.arch"] for r in _role(runs, "final") if r.info.status == "FINISHED"}
    assert finals == {"resnet18", variant}

    client = mlflow_client(store)
    assert {m.name for m in client.search_registered_models()} == {"neipalette-resnet18",
                                                                   "neipalette-resnet18_colour_stats"}

    out = CliRunner().invoke(report_main, ["--run-id", parent.info.run_id, "--experiment", "", "--out",
                                           str(tmp_path / "report")])
    assert out.exit_code == 0, out.output
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| ResNet18 | cv | 2 |" in md and "| ResNet18 + colour_stats | cv | 2 |" in md  # table 2 rows
    assert "| ResNet18 − ResNet18 + colour_stats | cv | ROC-AUC | primary (Holm family) |" in md  # CNN vs CNN
    assert "ResNet18 + colour_stats not probed: hybrid variant" in md
