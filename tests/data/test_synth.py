"""The synthetic generator: file layout, balance, determinism, truth consistency, refusal and the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from neipalette.colour.harmony import ou_luo_harmony
from neipalette.data.dataset import DatasetError, load_dataset
from neipalette.data.panel import CUES, majority_probability, outfit_cues
from neipalette.data.synth import SynthConfig, contact_sheet, generate_dataset, rate
from neipalette.evaluation.metrics import bayes_accuracy
from neipalette.seeding import rng

SMALL = SynthConfig(n_outfits=10, seed=3, image_size=64)
# Digest of everything but synth.json of `SynthConfig(n_outfits=6, seed=1, image_size=32)` written by the
# version-1 generator (commit b5bddbe): `label_model="ou_luo"` must reproduce it byte for byte.
V1_DIGEST = "f43381b0af7a0a9e47e2c516469aa719be8a7e98bb0fc862944122aff7867ca9"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    generate_dataset(SMALL, out)
    return out


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_rows_and_balance(small: Path) -> None:
    outfits = pd.read_csv(small / "outfits.csv", dtype=str)
    assert list(outfits.columns) == ["outfit_id", "top", "bottom", "label"]
    assert len(outfits) == 10
    assert (outfits["label"] == "positive").sum() == 5
    assert set(outfits["label"]) == {"positive", "negative"}
    assert outfits["top"].iloc[0] == "images/o000_top.png"
    truth = pd.read_csv(small / "truth.csv")
    expected = ["outfit_id", "ch", "tau", "sigma", "p_positive", *(f"cue_{c}" for c in CUES), "top_L", "top_a",
                "top_b", "bottom_L", "bottom_a", "bottom_b", "top_shape", "bottom_shape", "top_pattern",
                "bottom_pattern"]
    assert list(truth.columns) == expected + [f"rater_{k}" for k in range(1, SMALL.n_raters + 1)]
    meta = json.loads((small / "synth.json").read_text())
    assert meta["config"] == {"n_outfits": 10, "seed": 3, "n_raters": 5, "sigma": SMALL.sigma, "image_size": 64,
                              "label_model": "panel", "panel_weights": list(SMALL.panel_weights),
                              "rater_spread": SMALL.rater_spread}
    assert meta["version"] == 2 and meta["label_model"]["name"] == "panel"
    assert set(meta["label_model"]["rater_weights"]) == {f"rater_{k}" for k in range(1, 6)}
    assert not list(small.parent.glob(".*partial*"))


def test_images_readable_with_right_size(small: Path) -> None:
    ds = load_dataset(small)
    assert len(ds.outfits) == 10
    for info in ds.images:
        with Image.open(info.path) as img:
            assert img.format == "PNG"
            assert img.size == (64, 64)
            assert img.mode == "RGB"


def test_truth_consistent_with_labels(small: Path) -> None:
    outfits = pd.read_csv(small / "outfits.csv", dtype=str)
    truth = pd.read_csv(small / "truth.csv", dtype={"outfit_id": str})
    p = truth["p_positive"].to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    votes = truth[[f"rater_{k}" for k in range(1, 6)]].to_numpy()
    assert set(np.unique(votes)) <= {0, 1}
    labels = (outfits["label"] == "positive").to_numpy()
    np.testing.assert_array_equal(labels, votes.sum(axis=1) >= 3)
    assert p[labels].mean() > p[~labels].mean()
    top, bottom = truth[["top_L", "top_a", "top_b"]].to_numpy(), truth[["bottom_L", "bottom_a", "bottom_b"]].to_numpy()
    np.testing.assert_allclose(ou_luo_harmony(top, bottom), truth["ch"], atol=1e-5)
    assert truth["tau"].nunique() == 1
    cues = outfit_cues(top, bottom, truth["top_pattern"] != "none", truth["bottom_pattern"] != "none")
    np.testing.assert_allclose(cues, truth[[f"cue_{c}" for c in CUES]].to_numpy(), atol=2e-5)


def test_p_positive_recomputes_from_synth_json(small: Path) -> None:
    """synth.json holds the whole label model: the panel's weights, tau and sigma give truth.csv's p_positive."""
    from scipy.stats import norm

    meta = json.loads((small / "synth.json").read_text())["label_model"]
    truth = pd.read_csv(small / "truth.csv", dtype={"outfit_id": str})
    weights = np.array([[meta["rater_weights"][f"rater_{k}"][c] for c in CUES] for k in range(1, 6)])
    scores = truth[[f"cue_{c}" for c in CUES]].to_numpy() @ weights.T
    p = majority_probability(norm.cdf((scores - meta["tau"]) / meta["sigma"]))
    np.testing.assert_allclose(p, truth["p_positive"], atol=1e-4)


def test_ou_luo_label_model_reproduces_version_1(tmp_path: Path) -> None:
    out = tmp_path / "v1"
    generate_dataset(SynthConfig(n_outfits=6, seed=1, image_size=32, label_model="ou_luo"), out)
    h = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != "synth.json":
            h.update(str(p.relative_to(out)).encode())
            h.update(p.read_bytes())
    assert h.hexdigest() == V1_DIGEST
    meta = json.loads((out / "synth.json").read_text())
    assert meta["label_model"]["name"] == "ou_luo" and meta["photo_context"] == "one per image"


def test_outfit_shares_photo_context(small: Path) -> None:
    """Version 2: top and bottom of one outfit share backdrop and camera, so their borders look alike."""
    def border(path: Path) -> np.ndarray:
        a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
        return np.concatenate([a[:2].reshape(-1, 3), a[-2:].reshape(-1, 3)]).mean(axis=0)

    tops = np.array([border(small / f"images/o{i:03d}_top.png") for i in range(10)])
    bottoms = np.array([border(small / f"images/o{i:03d}_bottom.png") for i in range(10)])
    same = np.linalg.norm(tops - bottoms, axis=1).mean()
    other = np.linalg.norm(tops - np.roll(bottoms, 1, axis=0), axis=1).mean()
    assert same < 0.5 * other


def test_deterministic_and_seed_sensitive(small: Path, tmp_path: Path) -> None:
    generate_dataset(SMALL, tmp_path / "again")
    assert _all_bytes(tmp_path / "again") == _all_bytes(small)
    generate_dataset(SynthConfig(n_outfits=10, seed=4, image_size=64), tmp_path / "other")
    other = _all_bytes(tmp_path / "other")
    assert other["truth.csv"] != _all_bytes(small)["truth.csv"]
    assert other["images/o000_top.png"] != _all_bytes(small)["images/o000_top.png"]


def test_refuses_non_empty_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        generate_dataset(SynthConfig(n_outfits=4, image_size=32), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]


def test_accepts_existing_empty_out_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    summary = generate_dataset(SynthConfig(n_outfits=4, image_size=32), tmp_path / "empty")
    assert (summary.n_positive, summary.n_negative) == (2, 2)
    assert (tmp_path / "empty" / "outfits.csv").is_file()


@pytest.mark.parametrize(("n", "k"), [(9, 5), (12, 4), (8, 1)])
def test_rating_balance_and_probabilities(n: int, k: int) -> None:
    ch = rng(0, "test").normal(0, 0.5, n)
    r = rate(ch, rng(0, "raters"), k, 0.3)
    assert r.labels.sum() == n // 2
    np.testing.assert_array_equal(r.labels, 2 * r.votes.sum(axis=1) > k)  # ties (even k) are negative
    order = np.argsort(ch)
    assert np.all(np.diff(r.p_positive[order]) >= 0)  # P(positive) rises with CH
    assert 0.5 <= bayes_accuracy(r.p_positive) <= 1.0


def test_zero_noise_is_deterministic_labels() -> None:
    ch = np.linspace(-1, 1, 10)
    r = rate(ch, rng(0, "raters"), 3, 0.0)
    np.testing.assert_array_equal(r.labels, ch > 0)
    np.testing.assert_array_equal(r.p_positive, r.labels)
    assert bayes_accuracy(r.p_positive) == 1.0


def test_contact_sheet(small: Path, tmp_path: Path) -> None:
    out = contact_sheet(small, tmp_path / "sheet.png", columns=5, thumb=32)
    with Image.open(out) as img:
        assert img.width > 5 * 32 and img.height > 2 * 2 * 32


def test_cli_prints_ceiling(tmp_path: Path) -> None:
    from neipalette.cli import main

    out = tmp_path / "cli"
    args = ["data", "synth", "--outfits", "6", "--seed", "1", "--size", "32", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "3 positive, 3 negative" in result.output
    assert "noise ceiling (Bayes accuracy)" in result.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2
    assert "not empty" in again.output


def test_crash_leaves_no_partial_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import neipalette.data.synth as synth

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth, "_write_tables", boom)
    with pytest.raises(RuntimeError):
        generate_dataset(SynthConfig(n_outfits=4, image_size=32), tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


def test_ensure_default_dataset_keeps_existing(tmp_path: Path) -> None:
    from neipalette.data.synth import ensure_default_dataset

    (tmp_path / "outfits.csv").write_text("outfit_id,top,bottom,label\n")
    assert ensure_default_dataset(tmp_path) == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == ["outfits.csv"]


def test_committed_default_dataset_regenerates_byte_identical(tmp_path: Path) -> None:
    from neipalette.data.synth import DEFAULT_DATASET_DIR

    generate_dataset(SynthConfig(), tmp_path / "synthetic-40")
    assert _all_bytes(tmp_path / "synthetic-40") == _all_bytes(DEFAULT_DATASET_DIR)
