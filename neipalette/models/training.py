"""Training pieces: the head module and its input, epoch plans, and the loop that trains a network copy + head
(`full`, `last_block`); linear heads on frozen embeddings train in `neipalette.models.heads`.

Nothing here knows about MLflow, Optuna or click.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from neipalette.models.device import autocast, grad_scaler
from neipalette.seeding import derive_seed, rng

CPU = torch.device("cpu")

log = logging.getLogger(__name__)

def combine(emb: torch.Tensor, input_mode: str) -> torch.Tensor:
    """Head input from unit embeddings (b, n_units, d): pair -> [a, b, a*b, |a-b|], else the one embedding."""
    if input_mode == "pair":
        a, b = emb[:, 0], emb[:, 1]
        return torch.cat([a, b, a * b, (a - b).abs()], dim=1)
    return emb[:, 0]


def head_input_dim(embed_dim: int, input_mode: str) -> int:
    return 4 * embed_dim if input_mode == "pair" else embed_dim


class Head(nn.Module):
    """Standardise (train statistics, fixed) then a linear layer to two logits."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.linear = nn.Linear(dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) * self.scale)


def new_head(dim: int, seed: int) -> Head:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "head-init"))
        return Head(dim)


@dataclass(frozen=True)
class TrainSettings:
    learning_rate: float
    epochs: int
    seed: int
    batch_size: int = 16
    weight_decay: float = 1e-4
    n_views: int = 1


def epoch_plan(n: int, n_units: int, epoch: int, s: TrainSettings) -> tuple[np.ndarray, np.ndarray]:
    """Sample order and the view of each unit for one epoch: a function of (fit seed, epoch) only."""
    g = rng(s.seed, "epoch", epoch)
    order = g.permutation(n)
    views = g.integers(0, s.n_views, size=(n, n_units)) if s.n_views > 1 else np.zeros((n, n_units), np.int64)
    return order, views


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Tiny head updates are dominated by thread hand-offs; one thread is several times faster for them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def last(models: Iterator[nn.Module]) -> nn.Module:
    """The final item of an epoch iterator (the fully trained model)."""
    model = None
    for model in models:
        pass
    return model


class FullModel(nn.Module):
    """Backbone + head trained end to end (the original study's fine-tuning)."""

    def __init__(self, backbone: nn.Module, dim: int, input_mode: str, seed: int):
        super().__init__()
        self.backbone = backbone
        self.input_mode = input_mode
        self.head = new_head(head_input_dim(dim, input_mode), seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (b, n_units, C, H, W)
        b, u = x.shape[:2]
        emb = self.backbone(x.flatten(0, 1)).view(b, u, -1)
        return self.head(combine(emb, self.input_mode))


BatchFn = Callable[[np.ndarray, np.ndarray], torch.Tensor]  # (idx, views (b, u)) -> (b, u, C, H, W)


def train_full(backbone: nn.Module, batch: BatchFn, labels: np.ndarray, n_units: int, input_mode: str,
               dim: int, s: TrainSettings, progress: Callable[[int], None] | None = None,
               device: torch.device = CPU) -> FullModel:
    """Fine-tune a copy of the backbone and a head together (BatchNorm in train mode, Adam, cross-entropy)."""
    model = None
    for epoch, model in enumerate(full_epochs(backbone, batch, labels, n_units, input_mode, dim, s, device)):
        if progress and epoch:
            progress(epoch - 1)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def full_epochs(backbone: nn.Module, batch: BatchFn, labels: np.ndarray, n_units: int, input_mode: str,
                dim: int, s: TrainSettings, device: torch.device = CPU) -> Iterator[FullModel]:
    """A copy of `backbone` + a head after 0, 1, ..., s.epochs epochs (same object, eval mode at each yield).

    `backbone` is the whole network (`full`) or its last stage fed with cached activations (`last_block`).
    Each run keeps its own random stream (dropout, stochastic depth), so runs interleaved epoch by epoch
    give the models of runs made one after the other. Mixed precision on CUDA (see neipalette.models.device).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(s.seed, "full"))
        model = FullModel(copy.deepcopy(backbone), dim, input_mode, s.seed).to(device)
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    for p in model.parameters():
        p.requires_grad_(True)
    y = torch.as_tensor(labels, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
    scaler = grad_scaler(device)
    loss_fn = nn.CrossEntropyLoss()
    n = len(labels)
    model.eval()
    yield model
    for epoch in range(s.epochs):
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, device)
            model.train()
            order, views = epoch_plan(n, n_units, epoch, s)
            for i in range(0, n, s.batch_size):
                idx = order[i:i + s.batch_size]
                if len(idx) < 2:  # BatchNorm cannot train on a batch of one
                    continue
                opt.zero_grad(set_to_none=True)
                with autocast(device):
                    loss = loss_fn(model(batch(idx, views[idx]).to(device)), y[idx].to(device))
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            cpu_state = torch.get_rng_state()
            cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        model.eval()
        yield model


def probabilities(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double().cpu(), dim=1)[:, 1].numpy()
