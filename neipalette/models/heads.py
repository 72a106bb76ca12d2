"""Linear heads on frozen embeddings, several trained at once (one batched model, no autograd).

A head standardises its input with fixed training statistics and maps it to two logits; it is trained by Adam
(L2 weight decay, as `torch.optim.Adam(weight_decay=...)`) on the mean cross-entropy of minibatches. The K runs
of a `LinearHeads` are independent: each has its own samples, labels, seed (head init, sample order, views per
epoch) and learning rate; they are stacked only so that one step costs a handful of tensor operations for all
of them. The learning curves of a trial's inner folds (and the refit, K = 1) go through here: the nested
tuning's thousands of short fits are what made the benchmark slow.

The gradient of a linear layer under cross-entropy is written out ((softmax − one-hot) · x / batch), so there
is no autograd graph and no optimizer object per step. Nothing here knows about MLflow, Optuna or click.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from neipalette.models.training import Head, TrainSettings, combine, epoch_plan, last, new_head, single_thread

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
EPS = 1e-8

# embed(batch sample indices, views (b, n_units)) -> (b, n_units, d)
EmbedFn = Callable[[np.ndarray, np.ndarray], torch.Tensor]


def view_combinations(n_units: int, n_views: int) -> np.ndarray:
    """Every views tuple (n_units,) a sample can be drawn with, in the order of its base-n_views number."""
    grids = np.meshgrid(*[np.arange(n_views)] * n_units, indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.int64)


def combination_index(views: np.ndarray, n_views: int) -> np.ndarray:
    """(b, n_units) views -> the index of that tuple in `view_combinations`."""
    powers = n_views ** np.arange(views.shape[1] - 1, -1, -1)
    return views @ powers


def head_features(embed: EmbedFn, n: int, n_units: int, n_views: int, input_mode: str) -> torch.Tensor:
    """Head inputs (n, C, D) of every sample under every view combination (C = n_views ** n_units);
    combination 0 is view 0 of every unit (what prediction and the standardisation use)."""
    idx = np.arange(n)
    return torch.stack([combine(embed(idx, np.tile(c, (n, 1))), input_mode)
                        for c in view_combinations(n_units, n_views)], dim=1)


@dataclass(frozen=True)
class HeadInputs:
    x: torch.Tensor  # (K, D, m) standardised, zero-padded
    sizes: list[int]


class LinearHeads:
    """K linear heads trained together; `epochs()` trains epoch by epoch and yields after each (0 first).

    Each run's weights and bias are one (2, D + 1) matrix over inputs with a constant 1 appended, so a step is
    one gather, two batched products and one Adam update for all runs (Adam is elementwise and its L2 weight
    decay covers the bias as in torch.optim.Adam, so this is the same optimisation as weight + bias).
    """

    def __init__(self, features: Sequence[torch.Tensor], labels: Sequence[np.ndarray],
                 settings: Sequence[TrainSettings], n_units: int, input_weight: torch.Tensor | None = None):
        if not (len(features) == len(labels) == len(settings) > 0):
            raise ValueError("one feature tensor, label vector and settings per run")
        if len({s.batch_size for s in settings}) != 1:
            raise ValueError("runs trained together share one batch size")
        self.settings = list(settings)
        self.n_units = n_units
        self.k = len(features)
        self.n = np.array([len(y) for y in labels])
        self.c, d = features[0].shape[1:]
        self.n_views = settings[0].n_views
        if self.c != self.n_views ** n_units:
            raise ValueError(f"features hold {self.c} view combinations; {self.n_views} views of {n_units} units "
                             f"need {self.n_views ** n_units}")
        self.n_max = int(self.n.max())
        with single_thread():
            base = [f[:, 0].float() for f in features]
            self.mean = torch.stack([b.mean(0) for b in base])  # (K, D)
            self.scale = torch.stack([1.0 / (b.std(0, unbiased=False) + 1e-6) for b in base])
            if input_weight is not None:  # after standardising: how loud each input is (a hybrid's few hand features)
                self.scale = self.scale * input_weight.float()
            x = torch.zeros(self.k, self.n_max, self.c, d + 1)  # standardised and a constant 1; zero-padded
            for k, f in enumerate(features):
                x[k, :len(f), :, :d] = (f.float() - self.mean[k, None, None]) * self.scale[k, None, None]
                x[k, :len(f), :, d] = 1.0
            self.x = x.view(-1, d + 1)  # rows (run, sample, view combination), gathered by index_select
            self.y = np.zeros((self.k, self.n_max), np.int64)
            for k, y in enumerate(labels):
                self.y[k, :len(y)] = np.asarray(y)
            inits = [new_head(d, s.seed) for s in self.settings]
            self.w = torch.stack([torch.cat([h.linear.weight.detach(), h.linear.bias.detach()[:, None]], dim=1)
                                  for h in inits]).contiguous()  # (K, 2, D + 1)
        self.lr = np.array([s.learning_rate for s in self.settings], dtype=np.float64)
        self.wd = torch.tensor([s.weight_decay for s in self.settings], dtype=torch.float32).view(-1, 1, 1)
        self.m = torch.zeros_like(self.w)  # Adam's first and second moments
        self.v = torch.zeros_like(self.w)
        self.steps = np.zeros(self.k, dtype=np.int64)
        self.losses: list[np.ndarray] = []  # per epoch: each run's mean cross-entropy over its training samples

    def epochs(self, n_epochs: int) -> Iterator["LinearHeads"]:
        """Self after 0, 1, ..., n_epochs epochs: stopping after epoch e gives the heads of an e-epoch run."""
        yield self
        for epoch in range(n_epochs):
            with single_thread():
                self._epoch(epoch)
            yield self

    def _epoch(self, epoch: int) -> None:
        batch = self.settings[0].batch_size
        n_steps = math.ceil(self.n_max / batch)
        rows = np.zeros((self.k, n_steps * batch), np.int64)  # each run's samples in its epoch order, padded
        mask = np.zeros((self.k, n_steps * batch), np.float32)
        for k, (n, s) in enumerate(zip(self.n, self.settings)):
            order, views = epoch_plan(int(n), self.n_units, epoch, s)
            rows[k, :n] = (k * self.n_max + order) * self.c + combination_index(views[order], self.n_views)
            mask[k, :n] = 1.0
        labels = self.y.reshape(-1)[rows // self.c]
        self._loss_sum = torch.zeros(self.k, dtype=torch.float64)
        for i in range(n_steps):
            part = slice(i * batch, (i + 1) * batch)
            self._step(rows[:, part], labels[:, part], mask[:, part])
        self.losses.append(self._loss_sum.numpy() / np.maximum(self.n, 1))

    def _step(self, rows: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> None:
        count = mask.sum(1)  # samples of each run in this step (0: the run has no batch left this epoch)
        active = count > 0
        x = self.x.index_select(0, torch.from_numpy(rows.reshape(-1))).view(*rows.shape, -1)  # (K, B, D + 1)
        # logits as (K, 2, B): the (2, D) x (D, B) product per run is the fast layout for bmm on the CPU
        g = torch.softmax(torch.bmm(self.w, x.transpose(1, 2)), dim=1)
        p_true = torch.where(torch.from_numpy(labels.astype(bool)), g[:, 1], g[:, 0])  # before the step: its loss
        self._loss_sum += (-(p_true.clamp_min(1e-12).log()) * torch.from_numpy(mask)).sum(1).double()
        g[:, 1] -= torch.from_numpy(labels.astype(np.float32))  # softmax - one-hot (two classes)
        g[:, 0] -= torch.from_numpy(1.0 - labels.astype(np.float32))
        g.mul_(torch.from_numpy(mask / np.maximum(count, 1)[:, None])[:, None, :])  # mean over each run's batch
        grad = torch.bmm(g, x) + self.wd * self.w
        self.steps += active
        t = np.maximum(self.steps, 1)
        step_size = torch.from_numpy(self.lr / (1 - BETAS[0] ** t)).float().view(-1, 1, 1)
        bc2_sqrt = torch.from_numpy(np.sqrt(1 - BETAS[1] ** t)).float().view(-1, 1, 1)
        m = torch.lerp(self.m, grad, 1 - BETAS[0])
        v = self.v.mul(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
        w = self.w - step_size * (m / (v.sqrt() / bc2_sqrt).add_(EPS))
        if not active.all():  # a run whose epoch has fewer batches takes no step (its state is untouched)
            on = torch.from_numpy(active).view(-1, 1, 1)
            m, v, w = (torch.where(on, new, old) for new, old in ((m, self.m), (v, self.v), (w, self.w)))
        self.m, self.v, self.w = m, v, w

    def inputs(self, xs: Sequence[torch.Tensor]) -> "HeadInputs":
        """Each run's raw head inputs (m_k, D) (e.g. its validation part), standardised with that run's
        statistics and stacked once, to be scored after every epoch by `probabilities`."""
        m = max(len(x) for x in xs)
        d = self.w.shape[2] - 1
        with single_thread():
            stacked = torch.zeros(self.k, d + 1, m)  # (K, D + 1, m): the fast layout for bmm
            for k, x in enumerate(xs):
                stacked[k, :d, :len(x)] = ((x.float() - self.mean[k]) * self.scale[k]).t()
                stacked[k, d, :len(x)] = 1.0
        return HeadInputs(stacked, [len(x) for x in xs])

    def probabilities(self, inputs: "HeadInputs") -> list[np.ndarray]:
        """P(positive) (m_k,) of each run's inputs under its current head, as `probabilities(head(x))` gives
        it (softmax in float64 of the float32 logits): one batched product and one softmax for all runs."""
        with single_thread():
            p = torch.softmax(torch.bmm(self.w, inputs.x).double(), dim=1)[:, 1].numpy()  # (K, m)
        return [p[k, :m] for k, m in enumerate(inputs.sizes)]

    def head(self, k: int = 0) -> Head:
        """Run k as a `Head` module (what is saved and served), in eval mode; its `train_loss` (not saved) is
        the run's mean training cross-entropy in each epoch so far."""
        d = self.w.shape[2] - 1
        head = Head(d)
        with torch.no_grad():
            head.mean.copy_(self.mean[k])
            head.scale.copy_(self.scale[k])
            head.linear.weight.copy_(self.w[k, :, :d])
            head.linear.bias.copy_(self.w[k, :, d])
        head.train_loss = [float(epoch[k]) for epoch in self.losses]
        return head.eval()


def head_epochs(embed: EmbedFn, labels: np.ndarray, n_units: int, input_mode: str,
                s: TrainSettings) -> Iterator[LinearHeads]:
    """One head's run (K = 1) after 0, 1, ..., s.epochs epochs; `.head()` of an item is the e-epoch head."""
    feats = head_features(embed, len(labels), n_units, s.n_views, input_mode)
    return LinearHeads([feats], [labels], [s], n_units).epochs(s.epochs)


def train_head(embed: EmbedFn, labels: np.ndarray, n_units: int, input_mode: str, s: TrainSettings) -> Head:
    """Adam + cross-entropy on a linear head over embeddings; the embedding function is cached or not.
    The head's `train_loss` is its mean training loss per epoch."""
    return last(head_epochs(embed, labels, n_units, input_mode, s)).head(0)
