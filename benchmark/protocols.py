"""Evaluation protocols: repeated stratified k-fold over outfits, and the original 60/20 image split.

Every model sees identical folds (paired comparison); folds depend only on the run seed. With a `group`
column, cv is a repeated stratified *group* k-fold: no group is ever on both sides of a split (the inner
tuning folds, in `benchmark.tuning`, are grouped the same way, and by outfit in `single` mode). seed_split
stays the original study's image split, partner leak and all, on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedGroupKFold

from neipalette.data.dataset import Dataset
from neipalette.errors import UserError
from neipalette.data.samples import Sample, make_samples
from neipalette.seeding import derive_seed, rng

if TYPE_CHECKING:  # a type only: the fold functions stay importable without torch (benchmark.baselines_check)
    from benchmark.config import BenchmarkConfig


@dataclass(frozen=True)
class Job:
    """One outer fold of one model: the unit of work, of resume and of sharding."""
    arch: str  # architecture or baseline name
    protocol: str
    repeat: int
    fold: int

    @property
    def key(self) -> str:
        return f"{self.arch}|{self.protocol}|{self.repeat}|{self.fold}"

    @classmethod
    def from_key(cls, key: str) -> "Job":
        arch, protocol, repeat, fold = key.split("|")
        return cls(arch, protocol, int(repeat), int(fold))


@dataclass(frozen=True)
class Split:
    protocol: str
    repeat: int
    fold: int
    input_mode: str
    train: list[Sample]
    test: list[Sample]
    partner_in_train: int = 0  # seed_split: test images whose outfit partner is in train


def outfit_folds(labels: np.ndarray, groups: np.ndarray | None, *, n_splits: int, n_repeats: int,
                 seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) outfit indices of repeated stratified k-fold, repeat by repeat.

    Without groups: sklearn's RepeatedStratifiedKFold. With groups: StratifiedGroupKFold per repeat, each
    shuffled with its own seed derived from the run seed, so no group is ever split and reruns agree.
    """
    labels = np.asarray(labels)
    if groups is None:
        splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats,
                                           random_state=derive_seed(seed, "cv") % 2**31)
        return list(splitter.split(np.zeros(len(labels)), labels))
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for repeat in range(n_repeats):
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=derive_seed(seed, "cv", repeat))
        out += list(splitter.split(np.zeros(len(labels)), labels, groups))
    return out


def split_grouping(ds: Dataset) -> tuple[str, str]:
    """(tag value, sentence for the report) saying how cv splits were grouped on this dataset."""
    if ds.has_groups:
        n = len(set(ds.groups.tolist()))
        return "group_column", (f"grouped by the `group` column ({n} groups): no group is on both sides of an outer "
                                "or inner cv split; seed_split is the original image split (leaky on purpose)")
    return "outfit", ("grouped by outfit (no `group` column): no outfit is on both sides of an outer or inner cv "
                      "split, nor its two images in single mode; seed_split is the original image split (leaky "
                      "on purpose)")


def cv_splits(ds: Dataset, cfg: BenchmarkConfig) -> list[Split]:
    """Repeated stratified (group) k-fold over outfits; fold index = position within its repeat."""
    folds = outfit_folds(ds.labels, ds.groups if ds.has_groups else None, n_splits=cfg.n_splits,
                         n_repeats=cfg.n_repeats, seed=cfg.seed)
    out = []
    for i, (tr, te) in enumerate(folds):
        repeat, fold = divmod(i, cfg.n_splits)
        out.append(Split("cv", repeat, fold, cfg.input_mode,
                         make_samples(ds, tr, cfg.input_mode), make_samples(ds, te, cfg.input_mode)))
    return out


def seed_split(ds: Dataset, cfg: BenchmarkConfig) -> Split:
    """The original study: torch `random_split`-style shuffle of all garment images, last N images are test."""
    images = make_samples(ds, range(len(ds.outfits)), "single")
    n_test = cfg.seed_split_test_images
    if not 0 < n_test < len(images):
        raise UserError(f"seed_split_test_images must be between 1 and {len(images) - 1} for the {len(images)} images "
                          f"of {ds.name}, got {n_test}; lower it")
    order = rng(cfg.seed, "seed_split").permutation(len(images))
    train = [images[i] for i in sorted(order[n_test:])]
    test = [images[i] for i in sorted(order[:n_test])]
    train_outfits = {s.outfit_id for s in train}
    leak = sum(s.outfit_id in train_outfits for s in test)
    return Split("seed_split", 0, 0, "single", train, test, partner_in_train=leak)


def all_splits(ds: Dataset, cfg: BenchmarkConfig) -> dict[tuple[str, int, int], Split]:
    splits: list[Split] = []
    if "cv" in cfg.protocols:
        splits += cv_splits(ds, cfg)
    if "seed_split" in cfg.protocols:
        splits.append(seed_split(ds, cfg))
    return {(s.protocol, s.repeat, s.fold): s for s in splits}


def plan_jobs(cfg: BenchmarkConfig, splits: dict[tuple[str, int, int], Split]) -> list[Job]:
    """Every (model, split) pair; ou_luo is skipped where input is single images (it needs two colours)."""
    jobs = []
    for (protocol, repeat, fold), split in splits.items():
        for model in (*cfg.archs, *cfg.baselines):
            if model == "ou_luo" and split.input_mode == "single":
                continue
            jobs.append(Job(model, protocol, repeat, fold))
    return jobs


def shard_of(job: Job, n_shards: int) -> int:
    """Stable shard assignment from the job key (independent of job order and of Python's hash seed)."""
    return derive_seed(0, "shard", job.key) % n_shards
