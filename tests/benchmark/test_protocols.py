"""benchmark.protocols: repeated stratified k-fold over outfits, the 60/20 image split, job planning, shards."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.model_selection import RepeatedStratifiedKFold

from benchmark.config import BenchmarkConfig, ModelSettings, TuningSettings
from benchmark.protocols import Job, all_splits, cv_splits, plan_jobs, seed_split, shard_of
from neipalette.data.dataset import load_dataset
from neipalette.seeding import derive_seed
from tests.conftest import make_tiny_dataset


@pytest.fixture(scope="module")
def ds12(tmp_path_factory):
    return load_dataset(make_tiny_dataset(tmp_path_factory.mktemp("ds12"), 12, size=8, seed=1))


@pytest.fixture(scope="module")
def ds40(tmp_path_factory):
    """40 outfits = 80 garment images, the original study's size."""
    return load_dataset(make_tiny_dataset(tmp_path_factory.mktemp("ds40"), 40, size=8, seed=2))


def _cfg(**kw) -> BenchmarkConfig:
    base = dict(archs=("resnet18", "efficientnet_b0"), n_splits=3, n_repeats=2, seed=0)
    base.update(kw)
    return BenchmarkConfig(**base)


# -- cv ----------------------------------------------------------------------------------------------------
def test_cv_is_repeated_stratified_kfold_over_outfits(ds12):
    cfg = _cfg()
    splits = cv_splits(ds12, cfg)
    assert len(splits) == cfg.n_splits * cfg.n_repeats
    ref = RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=derive_seed(0, "cv") % 2**31)
    ids = np.array(ds12.outfit_ids)
    for split, (tr, te) in zip(splits, ref.split(np.zeros(len(ids)), ds12.labels)):
        assert split.protocol == "cv" and split.input_mode == "pair"
        assert [s.outfit_id for s in split.train] == list(ids[tr])
        assert [s.outfit_id for s in split.test] == list(ids[te])
        # one sample per outfit, carrying both garment images
        assert all(len(s.images) == 2 and s.sample_id == s.outfit_id for s in split.train + split.test)
    assert [(s.repeat, s.fold) for s in splits] == [(r, f) for r in range(2) for f in range(3)]


def test_cv_covers_every_outfit_once_per_repeat_and_is_stratified(ds12):
    cfg = _cfg()
    splits = cv_splits(ds12, cfg)
    n_pos = int(ds12.labels.sum())
    for r in range(cfg.n_repeats):
        folds = [s for s in splits if s.repeat == r]
        tested = Counter(s.outfit_id for f in folds for s in f.test)
        assert set(tested) == set(ds12.outfit_ids) and set(tested.values()) == {1}
        for f in folds:
            assert not {s.outfit_id for s in f.train} & {s.outfit_id for s in f.test}
            assert len(f.train) + len(f.test) == len(ds12.outfits)
            pos = sum(s.label for s in f.test)
            assert abs(pos - n_pos / cfg.n_splits) <= 1  # stratified
            assert 0 < pos < len(f.test)


def test_cv_depends_only_on_the_seed(ds12):
    def key(cfg):
        return [(s.repeat, s.fold, tuple(x.outfit_id for x in s.test)) for s in cv_splits(ds12, cfg)]

    a = key(_cfg(seed=0))
    # other settings (models, tuning, image size...) do not move the folds
    assert a == key(_cfg(seed=0, archs=("resnet18",), baselines=("chance",), model=ModelSettings(image_size=32),
                         tuning=TuningSettings(n_trials=2), seed_split_test_images=5))
    assert a == key(_cfg(seed=0))
    assert a != key(_cfg(seed=1))


def test_cv_folds_identical_for_every_model(ds12):
    cfg = _cfg(baselines=("chance", "colour_stats", "ou_luo"))
    splits = all_splits(ds12, cfg)
    jobs = plan_jobs(cfg, splits)
    by_split = {}
    for job in jobs:
        by_split.setdefault((job.protocol, job.repeat, job.fold), set()).add(job.arch)
    for key, models in by_split.items():
        if key[0] == "cv":
            assert models == {"resnet18", "efficientnet_b0", "chance", "colour_stats", "ou_luo"}
    # the split object is looked up by (protocol, repeat, fold) only: every model gets the very same samples
    assert set(by_split) == set(splits)


def test_cv_input_mode_follows_config(ds12):
    for mode in ("composite", "single"):
        s = cv_splits(ds12, _cfg(input_mode=mode))[0]
        assert s.input_mode == mode
        if mode == "single":
            assert len(s.test) == 2 * len({x.outfit_id for x in s.test})


# -- seed_split --------------------------------------------------------------------------------------------
def test_seed_split_is_60_20_over_images(ds40):
    cfg = _cfg(protocols=("seed_split",))
    s = seed_split(ds40, cfg)
    assert (s.protocol, s.repeat, s.fold, s.input_mode) == ("seed_split", 0, 0, "single")
    assert len(s.train) == 60 and len(s.test) == 20
    assert all(len(x.images) == 1 for x in s.train + s.test)
    ids_train = {x.sample_id for x in s.train}
    ids_test = {x.sample_id for x in s.test}
    assert not ids_train & ids_test and len(ids_train | ids_test) == 80
    # each image carries its outfit's label
    label = dict(zip(ds40.outfit_ids, ds40.labels))
    assert all(x.label == label[x.outfit_id] for x in s.train + s.test)


def test_seed_split_partner_in_train_is_a_direct_count(ds40):
    for seed in (0, 1, 2):
        s = seed_split(ds40, _cfg(seed=seed, protocols=("seed_split",)))
        train_images = {x.sample_id for x in s.train}
        direct = 0
        for x in s.test:
            oid, part = x.sample_id.split("/")
            partner = f"{oid}/{'bottom' if part == 'top' else 'top'}"
            direct += partner in train_images
        assert s.partner_in_train == direct
        assert 0 < direct <= 20  # with 60 of 80 images in train, partners straddle the split


def test_seed_split_depends_only_on_seed(ds40):
    def test_ids(**kw):
        return [x.sample_id for x in seed_split(ds40, _cfg(protocols=("seed_split",), **kw)).test]

    assert test_ids(seed=0) == test_ids(seed=0, n_splits=5)
    assert test_ids(seed=0) != test_ids(seed=1)


def test_seed_split_size_validation(ds12):
    with pytest.raises(ValueError):
        seed_split(ds12, _cfg(seed_split_test_images=24))
    assert len(seed_split(ds12, _cfg(seed_split_test_images=23)).test) == 23


# -- planning and shards -----------------------------------------------------------------------------------
def test_plan_jobs_skips_ou_luo_for_seed_split(ds40):
    cfg = _cfg(baselines=("chance", "colour_stats", "ou_luo"), protocols=("cv", "seed_split"))
    jobs = plan_jobs(cfg, all_splits(ds40, cfg))
    seed_models = {j.arch for j in jobs if j.protocol == "seed_split"}
    assert seed_models == {"resnet18", "efficientnet_b0", "chance", "colour_stats"}
    assert sum(j.arch == "ou_luo" for j in jobs) == cfg.n_splits * cfg.n_repeats
    assert len(jobs) == 5 * cfg.n_splits * cfg.n_repeats + 4
    assert len({j.key for j in jobs}) == len(jobs)


def test_job_key_round_trip():
    job = Job("efficientnet_b0", "cv", 3, 4)
    assert job.key == "efficientnet_b0|cv|3|4"
    assert Job.from_key(job.key) == job


def test_shards_partition_the_jobs_and_are_stable(ds40):
    cfg = _cfg(baselines=("chance", "colour_stats", "ou_luo"), n_splits=5, n_repeats=5)
    jobs = plan_jobs(cfg, all_splits(ds40, cfg))
    for n in (1, 2, 3, 7):
        shards = [[j for j in jobs if shard_of(j, n) == i] for i in range(n)]
        assert sum(len(s) for s in shards) == len(jobs)
        assert set().union(*({j.key for j in s} for s in shards)) == {j.key for j in jobs}
        assert all(0 <= shard_of(j, n) < n for j in jobs)
    # independent of job order and of planning again
    again = plan_jobs(cfg, all_splits(ds40, cfg))
    assert [shard_of(j, 4) for j in jobs] == [shard_of(j, 4) for j in again]
    assert [shard_of(j, 4) for j in reversed(jobs)] == [shard_of(j, 4) for j in jobs][::-1]
    assert shard_of(Job("resnet18", "cv", 0, 0), 4) == derive_seed(0, "shard", "resnet18|cv|0|0") % 4
    # not degenerate: with 129 jobs every one of 2 shards gets work
    assert len({shard_of(j, 2) for j in jobs}) == 2
