"""CNN estimators (ResNet18, EfficientNet-B0, ...) with pair/composite/single input and head/full fine-tuning."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from neipalette.data.samples import INPUT_MODES, Sample, labels_of
from neipalette.models.embedding import Embedder
from neipalette.models.registry import WeightsUsed, build_backbone, get_arch
from neipalette.models.training import (
    FullModel,
    Head,
    TrainSettings,
    combine,
    head_input_dim,
    probabilities,
    train_full,
    train_head,
)
from neipalette.models.views import Unit, ViewSpec

log = logging.getLogger(__name__)

FINE_TUNE_MODES = ("head", "full")


@dataclass(frozen=True)
class CNNConfig:
    arch: str = "resnet18"
    weights: str = "auto"
    input_mode: str = "pair"
    fine_tune: str = "head"
    image_size: int = 128
    n_views: int = 2
    batch_size: int = 16
    weight_decay: float = 1e-4
    cache: bool = True
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        get_arch(self.arch)
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"Invalid input_mode {self.input_mode!r}. Only {', '.join(INPUT_MODES)} are supported.")
        if self.fine_tune not in FINE_TUNE_MODES:
            raise ValueError(f"Invalid fine_tune {self.fine_tune!r}. Only {', '.join(FINE_TUNE_MODES)} are supported.")
        if self.n_views < 1:
            raise ValueError("n_views must be at least 1")


def sample_units(sample: Sample, input_mode: str) -> list[Unit]:
    """What the backbone embeds for a sample: each garment (pair/single) or the stacked composite."""
    if input_mode == "composite":
        return [tuple(sample.images)]
    return [(p,) for p in sample.images]


class CNNEstimator:
    """Builds the backbone once; each `fit` trains a fresh head (or a fresh copy of the whole network)."""

    tunable = True

    def __init__(self, config: CNNConfig, *, seed: int = 0,
                 backbone: tuple[torch.nn.Module, WeightsUsed] | None = None):
        self.config = config
        self.seed = seed
        self.backbone, self.weights = backbone or build_backbone(config.arch, config.weights, seed=seed)
        self.dim = get_arch(config.arch).embed_dim
        spec = ViewSpec(config.image_size, config.n_views, seed, self.weights.mean, self.weights.std)
        cache_dir = Path(config.cache_dir) if config.cache_dir else None
        self.embedder = Embedder(self.backbone, self.weights, spec, cache=config.cache, cache_dir=cache_dir)

    @property
    def name(self) -> str:
        return self.config.arch

    def _units(self, samples: Sequence[Sample]) -> list[list[Unit]]:
        return [sample_units(s, self.config.input_mode) for s in samples]

    def warm(self, samples: Sequence[Sample]) -> None:
        """Embed every view of every unit once (head mode with cache), so later fits only look up."""
        if self.config.fine_tune == "head" and self.config.cache:
            self.embedder.warm([u for us in self._units(samples) for u in us], self.config.n_views)

    def fit(self, samples: Sequence[Sample], *, learning_rate: float, epochs: int, seed: int) -> "CNNPredictor":
        cfg = self.config
        units = self._units(samples)
        n_units = len(units[0])
        settings = TrainSettings(learning_rate=float(learning_rate), epochs=int(epochs), seed=int(seed),
                                 batch_size=cfg.batch_size, weight_decay=cfg.weight_decay, n_views=cfg.n_views)
        y = labels_of(samples)
        if cfg.fine_tune == "full":
            model = train_full(self.backbone, self._batch_fn(units), y, n_units, cfg.input_mode, self.dim, settings)
            return CNNPredictor(self, full=model)
        head = train_head(self._embed_fn(units), y, n_units, cfg.input_mode, self.dim, settings)
        return CNNPredictor(self, head=head)

    def _embed_fn(self, units: list[list[Unit]]):
        n, u, v = len(units), len(units[0]), self.config.n_views
        if self.config.cache:
            flat_u = [unit for us in units for unit in us for _ in range(v)]
            flat_v = [view for us in units for _ in us for view in range(v)]
            table = self.embedder.embed(flat_u, flat_v).view(n, u, v, -1)
            cols = torch.arange(u)

            def lookup(idx: np.ndarray, views: np.ndarray) -> torch.Tensor:
                return table[torch.as_tensor(idx)[:, None], cols[None, :], torch.as_tensor(views)]
            return lookup

        def forward(idx: np.ndarray, views: np.ndarray) -> torch.Tensor:
            flat = [units[i][j] for i in idx for j in range(u)]
            return self.embedder.forward(flat, [int(x) for x in views.reshape(-1)]).view(len(idx), u, -1)
        return forward

    def _batch_fn(self, units: list[list[Unit]]):
        u = len(units[0])

        def batch(idx: np.ndarray, views: np.ndarray) -> torch.Tensor:
            flat = [units[i][j] for i in idx for j in range(u)]
            x = self.embedder.views.batch(flat, [int(x) for x in views.reshape(-1)])
            return x.view(len(idx), u, *x.shape[1:])
        return batch

    def embed_view0(self, samples: Sequence[Sample]) -> torch.Tensor:
        units = self._units(samples)
        u = len(units[0])
        flat = [unit for us in units for unit in us]
        fn = self.embedder.embed if self.config.cache else self.embedder.forward
        return fn(flat, [0] * len(flat)).view(len(samples), u, -1)


class CNNPredictor:
    """A fitted CNN: predicts P(positive) from view 0 of each sample."""

    def __init__(self, estimator: CNNEstimator, *, head: Head | None = None, full: FullModel | None = None):
        self.estimator = estimator
        self.head = head
        self.full = full

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        est = self.estimator
        with torch.inference_mode():
            if self.full is not None:
                units = est._units(samples)
                zeros = np.zeros((len(samples), len(units[0])), np.int64)
                logits = torch.cat([self.full(est._batch_fn(units)(idx, zeros[idx]))
                                    for idx in np.array_split(np.arange(len(samples)), max(1, len(samples) // 32))])
            else:
                logits = self.head(combine(est.embed_view0(samples), est.config.input_mode))
        return probabilities(logits)

    def save(self, path: Path, *, include_backbone: bool) -> None:
        """Write spec.json + weights; without the backbone, loading rebuilds it from the recorded weights."""
        path.mkdir(parents=True, exist_ok=True)
        est = self.estimator
        weights = est.weights
        rebuild = {"imagenet": "imagenet", "none": "none", "file": weights.requested}[weights.kind]
        spec = {"config": asdict(replace(est.config, cache=False, cache_dir=None)), "seed": est.seed,
                "weights": asdict(weights), "rebuild_weights": rebuild,
                "kind": "full" if self.full is not None else "head", "include_backbone": include_backbone}
        (path / "spec.json").write_text(json.dumps(spec, indent=2))
        if self.full is not None:
            torch.save(self.full.state_dict(), path / "model.pt")
        else:
            torch.save(self.head.state_dict(), path / "head.pt")
            if include_backbone:
                torch.save(est.backbone.state_dict(), path / "backbone.pt")


def load_cnn_predictor(path: Path) -> CNNPredictor:
    """Inverse of `CNNPredictor.save`."""
    spec = json.loads((path / "spec.json").read_text())
    cfg = CNNConfig(**spec["config"])
    bundled = (path / "backbone.pt").is_file() or spec["kind"] == "full"
    weights = "none" if bundled else spec["rebuild_weights"]
    est = CNNEstimator(replace(cfg, weights=weights), seed=spec["seed"])
    est.weights = WeightsUsed(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["weights"].items()})
    if spec["kind"] == "full":
        model = FullModel(est.backbone, est.dim, cfg.input_mode, 0)
        model.load_state_dict(torch.load(path / "model.pt", weights_only=True))
        model.eval()
        return CNNPredictor(est, full=model)
    if bundled:
        est.backbone.load_state_dict(torch.load(path / "backbone.pt", weights_only=True))
    head = Head(head_input_dim(est.dim, cfg.input_mode))
    head.load_state_dict(torch.load(path / "head.pt", weights_only=True))
    head.eval()
    return CNNPredictor(est, head=head)
