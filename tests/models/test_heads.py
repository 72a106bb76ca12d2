"""Linear heads trained as one batched model (neipalette.models.heads): the same optimisation as autograd +
torch.optim.Adam, runs independent of what they are batched with, and the estimator's learning curves equal to
one `fit_epochs` run per fold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neipalette.data.dataset import load_dataset
from neipalette.data.samples import make_samples
from neipalette.models.estimator import CNNConfig, CNNEstimator
from neipalette.models.heads import LinearHeads, head_features, train_head, view_combinations
from neipalette.models.training import TrainSettings, combine, epoch_plan, new_head
from tests.conftest import make_tiny_dataset

N, UNITS, VIEWS, D = 22, 2, 2, 24


@pytest.fixture(scope="module")
def table() -> torch.Tensor:
    return torch.randn(N, UNITS, VIEWS, D, generator=torch.Generator().manual_seed(3))


def _lookup(table: torch.Tensor):
    cols = torch.arange(table.shape[1])
    return lambda idx, views: table[torch.as_tensor(idx)[:, None], cols[None, :], torch.as_tensor(views)]


def _autograd_head(table: torch.Tensor, y: np.ndarray, s: TrainSettings) -> nn.Module:
    """The reference: nn.Linear + CrossEntropyLoss + torch.optim.Adam, minibatch by minibatch."""
    embed = _lookup(table)
    head = new_head(4 * D, s.seed)
    base = combine(embed(np.arange(len(y)), np.zeros((len(y), UNITS), np.int64)), "pair")
    head.mean.copy_(base.mean(0))
    head.scale.copy_(1.0 / (base.std(0, unbiased=False) + 1e-6))
    opt = torch.optim.Adam(head.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
    target = torch.as_tensor(y)
    head.ref_losses = []  # mean training cross-entropy per epoch (each batch's loss before its step)
    for epoch in range(s.epochs):
        order, views = epoch_plan(len(y), UNITS, epoch, s)
        total = 0.0
        for i in range(0, len(y), s.batch_size):
            idx = order[i:i + s.batch_size]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(head(combine(embed(idx, views[idx]), "pair")), target[idx])
            loss.backward()
            total += loss.item() * len(idx)
            opt.step()
        head.ref_losses.append(total / len(y))
    return head.eval()


def test_view_combinations_enumerate_every_views_tuple() -> None:
    combos = view_combinations(2, 3)
    assert combos.shape == (9, 2)
    assert len({tuple(c) for c in combos}) == 9
    assert tuple(combos[0]) == (0, 0)


@pytest.mark.parametrize("lr", [1e-3, 3e-2])
def test_a_head_trains_as_autograd_and_adam_would(table, lr) -> None:
    y = np.arange(N) % 2
    s = TrainSettings(learning_rate=lr, epochs=12, seed=4, batch_size=8, weight_decay=1e-3, n_views=VIEWS)
    ours = train_head(_lookup(table), y, UNITS, "pair", s)
    ref = _autograd_head(table, y, s)
    x = combine(table[:, :, 0], "pair")
    with torch.no_grad():
        assert torch.allclose(ours.linear.weight, ref.linear.weight, atol=1e-5)
        assert torch.allclose(ours(x).softmax(1), ref(x).softmax(1), atol=1e-5)
        assert not torch.allclose(ours.linear.weight, new_head(4 * D, s.seed).linear.weight, atol=1e-3)  # it moved
    # the training loss per epoch (logged by a fold run as train_loss, step = epoch) is autograd's
    assert ours.train_loss == pytest.approx(ref.ref_losses, abs=1e-5) and len(ours.train_loss) == s.epochs


def test_batched_runs_are_exactly_the_runs_made_alone(table) -> None:
    """Different sizes (so different last-batch sizes and step counts), seeds and learning rates."""
    y = np.arange(N) % 2
    feats = head_features(_lookup(table), N, UNITS, VIEWS, "pair")
    parts = [np.arange(0, 15), np.arange(3, 22), np.arange(0, 22, 3)]  # 15, 19, 8 samples: 2, 3, 1 steps
    settings = [TrainSettings(learning_rate=lr, epochs=9, seed=k, batch_size=8, n_views=VIEWS)
                for k, lr in enumerate((1e-3, 1e-2, 5e-2))]
    together = list(LinearHeads([feats[p] for p in parts], [y[p] for p in parts], settings, UNITS).epochs(9))[-1]
    for k, p in enumerate(parts):
        alone = list(LinearHeads([feats[p]], [y[p]], [settings[k]], UNITS).epochs(9))[-1]
        assert torch.equal(together.w[k], alone.w[0])  # weights and bias


def test_stopping_after_epoch_e_is_the_e_epoch_run(table) -> None:
    y = np.arange(N) % 2
    feats = head_features(_lookup(table), N, UNITS, VIEWS, "pair")
    s = TrainSettings(learning_rate=1e-2, epochs=7, seed=1, batch_size=8, n_views=VIEWS)
    curve = [h.head(0).linear.weight.clone() for h in LinearHeads([feats], [y], [s], UNITS).epochs(7)]
    short = TrainSettings(learning_rate=1e-2, epochs=4, seed=1, batch_size=8, n_views=VIEWS)
    assert torch.equal(curve[4], train_head(_lookup(table), y, UNITS, "pair", short).linear.weight)


def test_estimator_learning_curves_equal_one_fit_epochs_run_per_fold(tmp_path) -> None:
    ds = load_dataset(make_tiny_dataset(tmp_path / "ds", n_outfits=12))
    samples = make_samples(ds, np.arange(12), "pair")
    est = CNNEstimator(CNNConfig(arch="resnet18", weights="none", image_size=32, n_views=2, batch_size=4,
                                 cache_dir=str(tmp_path / "cache")), seed=0)
    folds = [(np.arange(0, 8), np.arange(8, 12)), (np.arange(4, 12), np.arange(0, 4))]
    curves = list(est.learning_curves(samples, folds, learning_rate=1e-2, epochs=3, seeds=[5, 6]))
    assert len(curves) == 3
    for k, ((tr, va), seed) in enumerate(zip(folds, (5, 6))):
        alone = [p.predict_proba([samples[i] for i in va])
                 for p in est.fit_epochs([samples[i] for i in tr], learning_rate=1e-2, epochs=3, seed=seed)]
        for epoch in range(3):
            np.testing.assert_allclose(curves[epoch][k], alone[epoch], atol=1e-6)
