"""Sanity check of the non-CNN baselines and of colour extraction on a generated dataset.

    python -m benchmark.baselines_check --outfits 400 --seed 11 [--data DIR]

Prints one JSON line per baseline (repeated stratified k-fold, pair samples: mean accuracy, mean ROC-AUC,
and the dataset's Bayes ceiling), one for colour extraction (mean CIELAB dE of `dominant_lab` against the
generator's base colours in truth.csv) and one for the cue oracle: a logistic regression on the generator's
true cue values (truth.csv `cue_*`, version-2 datasets), on the same folds. The oracle is a sanity check, not
a benchmark row: it should come within ~0.03 of the ceiling (the label model is learnable), while the colour
baselines, which see dominant colours only, should not (patterns and hue relations escape them).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import click
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmark.protocols import outfit_folds
from neipalette.models.baselines import BASELINES, best_threshold, make_baseline
from neipalette.colour.extract import dominant_lab
from neipalette.data.dataset import Dataset, load_dataset
from neipalette.data.samples import make_samples
from neipalette.evaluation.metrics import bayes_accuracy, classification_metrics
from neipalette.seeding import derive_seed

log = logging.getLogger(__name__)


def _folds(dataset: Dataset, n_splits: int, n_repeats: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The benchmark's cv folds (grouped when the dataset has a group column), shared by every check."""
    groups = dataset.groups if dataset.has_groups else None
    return outfit_folds(dataset.labels, groups, n_splits=n_splits, n_repeats=n_repeats, seed=seed)


def cross_validate(dataset: Dataset, name: str, *, n_splits: int = 5, n_repeats: int = 2, seed: int = 0,
                   input_mode: str = "pair") -> dict[str, float]:
    """Mean test accuracy and ROC-AUC of baseline `name` over repeated stratified k-fold on outfits."""
    scores: list[dict[str, float]] = []
    for k, (train, test) in enumerate(_folds(dataset, n_splits, n_repeats, seed)):
        estimator = make_baseline(name)
        train_samples = make_samples(dataset, train, input_mode)
        test_samples = make_samples(dataset, test, input_mode)
        predictor = estimator.fit(train_samples, learning_rate=float("nan"), epochs=0,
                                  seed=derive_seed(seed, name, k))
        p = predictor.predict_proba(test_samples)
        scores.append(classification_metrics(np.array([s.label for s in test_samples]), p))
    return {
        "accuracy": float(np.mean([s["accuracy"] for s in scores])),
        "roc_auc": float(np.mean([s["roc_auc"] for s in scores])),
        "accuracy_sd": float(np.std([s["accuracy"] for s in scores], ddof=1)),
        "n_folds": len(scores),
    }


def oracle_cross_validate(dataset: Dataset, *, n_splits: int = 5, n_repeats: int = 2,
                          seed: int = 0) -> dict[str, float] | None:
    """Mean test accuracy and ROC-AUC of a logistic regression on the true cues (truth.csv cue_*), same folds."""
    truth = dataset.truth
    columns = [c for c in truth.columns if c.startswith("cue_")] if truth is not None else []
    if not columns:
        return None
    x = truth.loc[dataset.outfit_ids, columns].to_numpy(dtype=np.float64)
    y = dataset.labels
    scores = []
    for train, test in _folds(dataset, n_splits, n_repeats, seed):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[train], y[train])
        scores.append(classification_metrics(y[test], model.predict_proba(x[test])[:, 1]))
    return {"accuracy": float(np.mean([s["accuracy"] for s in scores])),
            "roc_auc": float(np.mean([s["roc_auc"] for s in scores])),
            "accuracy_sd": float(np.std([s["accuracy"] for s in scores], ddof=1)), "n_folds": len(scores),
            "cues": columns}


def colour_errors(dataset: Dataset) -> dict[str, float]:
    """Mean/median/90th-percentile CIELAB dE of extracted dominant colours vs the generator's truth."""
    if dataset.truth is None or "top_L" not in dataset.truth.columns:
        return {}
    errors: dict[str, list[float]] = {"top": [], "bottom": []}
    for outfit in dataset.outfits:
        row = dataset.truth.loc[outfit.outfit_id]
        for part, path in (("top", outfit.top), ("bottom", outfit.bottom)):
            truth = np.array([row[f"{part}_L"], row[f"{part}_a"], row[f"{part}_b"]], dtype=np.float64)
            errors[part].append(float(np.linalg.norm(dominant_lab(path) - truth)))
    both = np.array(errors["top"] + errors["bottom"])
    return {
        "mean_delta_e": float(both.mean()),
        "median_delta_e": float(np.median(both)),
        "p90_delta_e": float(np.quantile(both, 0.9)),
        "share_over_10": float(np.mean(both > 10)),
        "mean_delta_e_top": float(np.mean(errors["top"])),
        "mean_delta_e_bottom": float(np.mean(errors["bottom"])),
    }


def true_colour_ou_luo_accuracy(dataset: Dataset) -> float | None:
    """Accuracy of thresholding CH of the *true* colours (in-sample cut): ou_luo without extraction noise."""
    truth = dataset.truth
    if truth is None or "ch" not in truth.columns:
        return None
    ch = truth.loc[dataset.outfit_ids, "ch"].to_numpy(dtype=np.float64)
    t = best_threshold(ch, dataset.labels)
    return float(np.mean((ch > t) == (dataset.labels == 1)))


def _dataset(data: str | None, outfits: int, seed: int, image_size: int, tmp: Path) -> Path:
    if data is not None and (Path(data) / "outfits.csv").is_file():
        return Path(data)
    from neipalette.data.synth import SynthConfig, generate_dataset

    out = Path(data) if data is not None else tmp / f"synth-{outfits}-{seed}"
    generate_dataset(SynthConfig(n_outfits=outfits, seed=seed, image_size=image_size), out)
    return out


@click.command(help=(__doc__ or "").splitlines()[0])
@click.option("--outfits", type=int, default=400, show_default=True)
@click.option("--seed", type=int, default=11, show_default=True)
@click.option("--image-size", type=int, default=160, show_default=True)
@click.option("--data", type=str, default=None, help="reuse (or create) the dataset in this folder")
@click.option("--splits", type=int, default=5, show_default=True)
@click.option("--repeats", type=int, default=2, show_default=True)
def main(outfits: int, seed: int, image_size: int, data: str | None, splits: int, repeats: int) -> None:
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="neipalette-baselines-") as tmp:
        t0 = time.perf_counter()
        dataset = load_dataset(_dataset(data, outfits, seed, image_size, Path(tmp)))
        ceiling = bayes_accuracy(dataset.p_positive) if dataset.p_positive is not None else float("nan")
        t1 = time.perf_counter()
        colour = colour_errors(dataset)
        t2 = time.perf_counter()
        click.echo(json.dumps({"check": "colour", **colour, "seconds": round(t2 - t1, 2)}))
        for name in BASELINES:
            t = time.perf_counter()
            res = cross_validate(dataset, name, n_splits=splits, n_repeats=repeats, seed=seed)
            click.echo(json.dumps({"baseline": name, **{k: round(v, 4) for k, v in res.items()},
                              "ceiling_accuracy": round(ceiling, 4), "seconds": round(time.perf_counter() - t, 2)}))
        oracle = oracle_cross_validate(dataset, n_splits=splits, n_repeats=repeats, seed=seed)
        if oracle is not None:
            click.echo(json.dumps({"check": "oracle_logistic_on_true_cues",
                              **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in oracle.items()},
                              "ceiling_accuracy": round(ceiling, 4)}))
        click.echo(json.dumps({"check": "ou_luo_on_true_colours_in_sample_accuracy",
                          "accuracy": true_colour_ou_luo_accuracy(dataset), "ceiling_accuracy": round(ceiling, 4),
                          "n_outfits": len(dataset.outfits), "dataset_seconds": round(t1 - t0, 2)}))


if __name__ == "__main__":
    main()
