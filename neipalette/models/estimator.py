"""CNN estimators (ResNet18, EfficientNet-B0/Lite0, any torchvision/timm net) with pair/composite/single input
and head / last_block / full fine-tuning, on the CPU or an accelerator."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from neipalette.data.samples import INPUT_MODES, Sample, labels_of, side_by_side_curves
from neipalette.models.device import DEVICES, OnDevice, resolve_device
from neipalette.models.embedding import Embedder
from neipalette.models.features import FEATURE_MODES, feature_net, output_dim
from neipalette.models.hand_features import get_hand_features, hand_matrix
from neipalette.models.heads import LinearHeads, head_features
from neipalette.models.registry import WeightsUsed, build_backbone, bundled_backbone, get_arch
from neipalette.models.stages import split_last_stage
from neipalette.models.training import (
    FullModel,
    Head,
    TrainSettings,
    combine,
    full_epochs,
    last,
    probabilities,
)
from neipalette.models.views import Unit, ViewSpec

log = logging.getLogger(__name__)

FINE_TUNE_MODES = ("head", "last_block", "full")


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
    device: str = "auto"
    features: str = "final"  # final | multiscale (final embedding + pooled stem and mid-stage activations)
    hybrid: str | None = None  # hand features beside the CNN's (neipalette.models.hand_features), e.g. colour_stats

    def __post_init__(self) -> None:
        get_arch(self.arch)
        if self.features not in FEATURE_MODES:
            raise ValueError(f"Invalid features {self.features!r}. Only {', '.join(FEATURE_MODES)} are supported.")
        if (self.features != "final" or self.hybrid) and self.fine_tune != "head":
            raise ValueError("features multiscale and hybrid heads need fine_tune head (frozen, cached features)")
        if self.device not in DEVICES:
            raise ValueError(f"Invalid device {self.device!r}. Only {', '.join(DEVICES)} are supported.")
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
        self.device = resolve_device(config.device)
        spec = ViewSpec(config.image_size, config.n_views, seed, self.weights.mean, self.weights.std)
        cache_dir = Path(config.cache_dir) if config.cache_dir else None
        if ":" in config.arch:
            _probe_size(self.backbone, config.arch, config.image_size)
        net, suffix = feature_net(self.backbone, config.arch, config.features)
        embed_weights = self.weights
        if suffix:  # other vectors from the same weights: their own cache keys and width
            embed_weights = replace(self.weights, identity=self.weights.identity + suffix)
            self.dim = output_dim(net)
        self.embedder = Embedder(OnDevice(net, self.device), embed_weights, spec, cache=config.cache,
                                 cache_dir=cache_dir, dim=self.dim if suffix else None)
        self.hand = get_hand_features(config.hybrid) if config.hybrid else None
        self._hand_memo: dict[tuple, np.ndarray] = {}
        self._hand_dim = 0
        self.tail = None
        self._head_memo: tuple[tuple[Sample, ...], torch.Tensor] | None = None
        if config.fine_tune == "last_block":
            # the frozen stages' activations are cached per image-view exactly like embeddings
            trunk, self.tail = split_last_stage(self.backbone, config.arch)
            stage = replace(self.weights, identity=f"{self.weights.identity}|trunk{len(trunk)}")
            self.stages = Embedder(OnDevice(trunk, self.device), stage, spec, cache=config.cache,
                                   cache_dir=cache_dir)

    @property
    def name(self) -> str:
        return self.config.arch

    def _units(self, samples: Sequence[Sample]) -> list[list[Unit]]:
        return [sample_units(s, self.config.input_mode) for s in samples]

    def warm(self, samples: Sequence[Sample]) -> None:
        """Embed every view of every unit once (head mode with cache), so later fits only look up."""
        units = [u for us in self._units(samples) for u in us]
        if self.config.fine_tune == "head" and self.config.cache:
            self.embedder.warm(units, self.config.n_views)
        elif self.config.fine_tune == "last_block" and self.config.cache:
            self.stages.warm(units, self.config.n_views)

    def fit(self, samples: Sequence[Sample], *, learning_rate: float, epochs: int, seed: int,
            weight_decay: float | None = None) -> "CNNPredictor":
        """A fresh predictor; `weight_decay` (None: the config's) is the head's L2 strength when it is tuned."""
        if self.config.fine_tune == "head":  # the last epoch only: no head module per epoch
            heads = last(self._head_runs(samples, self._head_inputs(samples), [np.arange(len(samples))],
                                         learning_rate, [seed], epochs, weight_decay))
            return CNNPredictor(self, head=heads.head(0))
        predictor = last(self._fits(samples, learning_rate=learning_rate, epochs=epochs, seed=seed,
                                    weight_decay=weight_decay))
        predictor.memo = None  # a kept predictor looks its inputs up afresh (the cache checks file content)
        return predictor

    def fit_epochs(self, samples: Sequence[Sample], *, learning_rate: float, epochs: int,
                   seed: int, weight_decay: float | None = None) -> Iterator["CNNPredictor"]:
        """The learning curve of one training run: the predictor after epoch 1, 2, ..., `epochs`.

        Each yielded predictor is the one `fit(..., epochs=e)` returns for that e (same seed); it is trained
        on when the iteration goes on, so use it before asking for the next.
        """
        fits = self._fits(samples, learning_rate=learning_rate, epochs=epochs, seed=seed, weight_decay=weight_decay)
        next(fits)  # epoch 0: the untrained model
        yield from fits

    def learning_curves(self, samples: Sequence[Sample], folds: Sequence[tuple[np.ndarray, np.ndarray]], *,
                        learning_rate: float, epochs: int, seeds: Sequence[int],
                        weight_decay: float | None = None) -> Iterator[list[np.ndarray]]:
        """For epoch 1, 2, ..., `epochs`: P(positive) of each fold's validation part under the run trained on
        that fold's training part (fold k's run has seed `seeds[k]`, as `fit_epochs` would).

        Head mode trains the folds' heads as one batched model on head inputs built once per sample list;
        the other modes run `fit_epochs` side by side.
        """
        if self.config.fine_tune != "head":
            yield from side_by_side_curves(self, samples, folds, learning_rate=learning_rate, epochs=epochs,
                                           seeds=seeds, weight_decay=weight_decay)
            return
        feats = self._head_inputs(samples)
        heads = self._head_runs(samples, feats, [tr for tr, _ in folds], learning_rate, seeds, epochs, weight_decay)
        vals = next(heads).inputs([feats[torch.as_tensor(va), 0] for _, va in folds])  # epoch 0: untrained
        for h in heads:
            yield h.probabilities(vals)

    def _head_runs(self, samples: Sequence[Sample], feats: torch.Tensor, parts: Sequence[np.ndarray],
                   learning_rate: float, seeds: Sequence[int], epochs: int,
                   weight_decay: float | None = None) -> Iterator[LinearHeads]:
        """Heads trained on each part (indices into samples, whose head inputs are `feats`) at once, after
        0, 1, ..., epochs epochs."""
        cfg = self.config
        y = labels_of(samples)
        settings = [self._settings(learning_rate, epochs, seed, weight_decay) for seed in seeds]
        n_units = len(sample_units(samples[0], cfg.input_mode))
        idx = [torch.as_tensor(np.asarray(p)) for p in parts]
        return LinearHeads([feats[i] for i in idx], [y[np.asarray(p)] for p in parts], settings,
                           n_units, self._input_weight(feats.shape[-1])).epochs(int(epochs))

    def _settings(self, learning_rate: float, epochs: int, seed: int, weight_decay: float | None) -> TrainSettings:
        """One training run's settings: the config's batch size, views and (unless tuned) weight decay."""
        cfg = self.config
        wd = cfg.weight_decay if weight_decay is None else float(weight_decay)
        return TrainSettings(learning_rate=float(learning_rate), epochs=int(epochs), seed=int(seed),
                             batch_size=cfg.batch_size, weight_decay=wd, n_views=cfg.n_views)

    def _input_weight(self, width: int) -> torch.Tensor | None:
        """A hybrid head's balance: after standardising, the h hand features are scaled by sqrt((D - h) / h), so
        both blocks carry the same total variance. Adam moves every weight by about the learning rate, so
        unscaled, the thousands of CNN inputs would outvote a dozen colour features by their number alone."""
        if self.hand is None:
            return None
        h = self._hand_dim
        weight = torch.ones(width)
        weight[width - h:] = float(np.sqrt((width - h) / h))
        return weight

    def _head_inputs(self, samples: Sequence[Sample]) -> torch.Tensor:
        """Head inputs (n, view combinations, D) of a sample list; the last list's are kept (a tuning study
        asks for the same outer-train part in every trial)."""
        key = tuple(samples)
        if self._head_memo is not None and self._head_memo[0] == key:
            return self._head_memo[1]
        units = self._units(samples)
        feats = head_features(self._embed_fn(units), len(samples), len(units[0]), self.config.n_views,
                              self.config.input_mode)
        if self.hand is not None:  # the same hand features under every view combination
            hand = self.hand_features(samples)
            feats = torch.cat([feats, hand[:, None].expand(-1, feats.shape[1], -1)], dim=2)
        if self.config.cache:  # without the cache every call embeds afresh, as documented
            self._head_memo = (key, feats)
        return feats

    def _fits(self, samples: Sequence[Sample], *, learning_rate: float, epochs: int,
              seed: int, weight_decay: float | None = None) -> Iterator["CNNPredictor"]:
        cfg = self.config
        units = self._units(samples)
        n_units = len(units[0])
        settings = self._settings(learning_rate, epochs, seed, weight_decay)
        y = labels_of(samples)
        memo = {} if cfg.cache else None  # per learning curve: validation inputs looked up once
        if cfg.fine_tune == "full":
            for model in full_epochs(self.backbone, self._batch_fn(units), y, n_units, cfg.input_mode, self.dim,
                                     settings, self.device):
                yield CNNPredictor(self, full=model)
        elif cfg.fine_tune == "last_block":
            for model in full_epochs(self.tail, self._stage_fn(units), y, n_units, cfg.input_mode, self.dim,
                                     settings, self.device):
                yield CNNPredictor(self, full=model, memo=memo)
        else:
            for heads in self._head_runs(samples, self._head_inputs(samples), [np.arange(len(samples))],
                                         learning_rate, [seed], epochs, weight_decay):
                yield CNNPredictor(self, head=heads.head(0), memo=memo)

    def _stage_fn(self, units: list[list[Unit]]):
        """(idx, views) -> the trunk's activations (b, u, C, H, W): looked up (cache) or recomputed each step."""
        return _unit_fn(units, self.config.n_views if self.config.cache else None, self.stages.embed,
                        self.stages.forward)

    def _embed_fn(self, units: list[list[Unit]]):
        return _unit_fn(units, self.config.n_views if self.config.cache else None, self.embedder.embed,
                        self.embedder.forward)

    def _batch_fn(self, units: list[list[Unit]]):
        u = len(units[0])

        def batch(idx: np.ndarray, views: np.ndarray) -> torch.Tensor:
            flat = [units[i][j] for i in idx for j in range(u)]
            x = self.embedder.views.batch(flat, [int(x) for x in views.reshape(-1)])
            return x.view(len(idx), u, *x.shape[1:])
        return batch

    def hand_features(self, samples: Sequence[Sample]) -> torch.Tensor:
        """(n, h) float32 hand features of the hybrid head, computed once per sample's images."""
        todo = list({s.images: s for s in samples if s.images not in self._hand_memo}.values())
        if todo:
            for s, row in zip(todo, hand_matrix(self.hand, todo)):
                self._hand_memo[s.images] = row
                self._hand_dim = len(row)
        return torch.as_tensor(np.stack([self._hand_memo[s.images] for s in samples]), dtype=torch.float32)

    def head_input(self, samples: Sequence[Sample]) -> torch.Tensor:
        """View 0's head input (n, D): the combined embeddings, then the hand features of a hybrid head."""
        x = combine(self.embed_view0(samples), self.config.input_mode)
        return x if self.hand is None else torch.cat([x, self.hand_features(samples)], dim=1)

    def embed_view0(self, samples: Sequence[Sample]) -> torch.Tensor:
        units = self._units(samples)
        u = len(units[0])
        flat = [unit for us in units for unit in us]
        fn = self.embedder.embed if self.config.cache else self.embedder.forward
        return fn(flat, [0] * len(flat)).view(len(samples), u, -1)


class CNNPredictor:
    """A fitted CNN: predicts P(positive) from view 0 of each sample.

    `memo` (shared by the predictors of one learning curve, cache on): the inputs of a sample list are
    looked up once per curve instead of once per epoch.
    """

    def __init__(self, estimator: CNNEstimator, *, head: Head | None = None, full: FullModel | None = None,
                 memo: dict | None = None):
        self.estimator = estimator
        self.head = head
        self.full = full
        self.memo = memo

    def _inputs(self, samples: Sequence[Sample]) -> torch.Tensor:
        """Head input (n, dim) or, for last_block, the frozen stages' activations (n, u, C, H, W) of view 0."""
        key = tuple(samples)
        if self.memo is not None and key in self.memo:
            return self.memo[key]
        est = self.estimator
        if self.full is None:
            x = est.head_input(samples)
        else:
            units = est._units(samples)
            x = est._stage_fn(units)(np.arange(len(samples)), np.zeros((len(samples), len(units[0])), np.int64))
        if self.memo is not None:
            self.memo[key] = x
        return x

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        est = self.estimator
        with torch.inference_mode():
            if self.full is None:
                logits = self.head(self._inputs(samples))
            else:
                chunks = np.array_split(np.arange(len(samples)), max(1, len(samples) // 32))
                if est.config.fine_tune == "last_block":
                    x = self._inputs(samples)
                    logits = torch.cat([self.full(x[idx].to(est.device)).cpu() for idx in chunks])
                else:
                    units = est._units(samples)
                    zeros = np.zeros((len(samples), len(units[0])), np.int64)
                    batch = est._batch_fn(units)
                    logits = torch.cat([self.full(batch(idx, zeros[idx]).to(est.device)).cpu() for idx in chunks])
        return probabilities(logits)

    def save(self, path: Path, *, include_backbone: bool) -> None:
        """Write spec.json + weights; without the backbone, loading rebuilds it from the recorded weights."""
        path.mkdir(parents=True, exist_ok=True)
        est = self.estimator
        weights = est.weights
        rebuild = {"imagenet": "imagenet", "none": "none", "file": weights.requested}[weights.kind]
        kind = "head" if self.full is None else ("last_block" if est.config.fine_tune == "last_block" else "full")
        spec = {"config": asdict(replace(est.config, cache=False, cache_dir=None, device="auto")), "seed": est.seed,
                "weights": asdict(weights), "rebuild_weights": rebuild,
                "kind": kind, "include_backbone": include_backbone}
        (path / "spec.json").write_text(json.dumps(spec, indent=2))
        if self.full is not None:
            torch.save(self.full.state_dict(), path / "model.pt")  # last_block: the last stage + head
            if kind == "last_block" and include_backbone:
                torch.save(est.backbone.state_dict(), path / "backbone.pt")
        else:
            torch.save(self.head.state_dict(), path / "head.pt")
            if include_backbone:
                torch.save(est.backbone.state_dict(), path / "backbone.pt")


def _unit_fn(units: list[list[Unit]], n_views: int | None, embed, forward):
    """(idx, views) -> activations (b, u, ...) of those samples' units: with `n_views` (cached), every (unit,
    view) goes through `embed` once and is looked up; without, `forward` runs on every call."""
    n, u = len(units), len(units[0])
    if n_views is not None:
        flat_u = [unit for us in units for unit in us for _ in range(n_views)]
        flat_v = [view for us in units for _ in us for view in range(n_views)]
        acts = embed(flat_u, flat_v)
        table = acts.view(n, u, n_views, *acts.shape[1:])
        cols = torch.arange(u)

        def lookup(idx: np.ndarray, views: np.ndarray) -> torch.Tensor:
            return table[torch.as_tensor(idx)[:, None], cols[None, :], torch.as_tensor(views)]
        return lookup

    def run(idx: np.ndarray, views: np.ndarray) -> torch.Tensor:
        flat = [units[i][j] for i in idx for j in range(u)]
        acts = forward(flat, [int(x) for x in views.reshape(-1)])
        return acts.view(len(idx), u, *acts.shape[1:])
    return run


def load_cnn_predictor(path: Path) -> CNNPredictor:
    """Inverse of `CNNPredictor.save`."""
    spec = json.loads((path / "spec.json").read_text())
    cfg = CNNConfig(**spec["config"])
    used = WeightsUsed(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["weights"].items()})
    bundled = (path / "backbone.pt").is_file() or spec["kind"] == "full"  # full: model.pt holds the backbone
    if bundled:  # the saved state replaces every weight and BatchNorm statistic: build the bare network
        est = CNNEstimator(cfg, seed=spec["seed"], backbone=bundled_backbone(used))
    else:
        est = CNNEstimator(replace(cfg, weights=spec["rebuild_weights"]), seed=spec["seed"])
        est.weights = used
    if (path / "backbone.pt").is_file():
        est.backbone.load_state_dict(torch.load(path / "backbone.pt", map_location="cpu", weights_only=True))
    if spec["kind"] in ("full", "last_block"):
        net = est.tail if spec["kind"] == "last_block" else est.backbone
        model = FullModel(net, est.dim, cfg.input_mode, 0).to(est.device)
        model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
        model.eval()
        return CNNPredictor(est, full=model)
    state = torch.load(path / "head.pt", map_location="cpu", weights_only=True)
    head = Head(int(state["linear.weight"].shape[1]))  # hybrid heads are wider than head_input_dim
    head.load_state_dict(state)
    head.eval()
    return CNNPredictor(est, head=head)


def _probe_size(backbone: torch.nn.Module, arch: str, size: int) -> None:
    """Some networks (vision transformers) take one input size only: say which, before anything trains."""
    try:
        with torch.inference_mode():
            backbone(torch.zeros(1, 3, size, size))
    except (RuntimeError, AssertionError, ValueError) as exc:
        native = get_arch(arch).native_size
        raise ValueError(f"{arch} does not take {size} px input ({str(exc).splitlines()[0]}); "
                         f"set model.image_size: {native} (its native size)") from None
