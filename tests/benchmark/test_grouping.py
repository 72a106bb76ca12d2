"""Grouped splits: no group (or, in single mode, no outfit) is ever on both sides of an outer or inner split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.model_selection import RepeatedStratifiedKFold

from benchmark.config import BenchmarkConfig
from benchmark.protocols import cv_splits, outfit_folds, split_grouping
from benchmark.tuning import inner_folds
from neipalette.data.dataset import Dataset, DatasetError, Outfit, groups_per_class, load_dataset
from neipalette.data.samples import fold_groups
from neipalette.seeding import rng
from tests.conftest import make_tiny_dataset


def _random_dataset(seed: int, *, grouped: bool) -> Dataset:
    """20-60 outfits; with `grouped`, groups of 1-5 outfits (some of mixed class) and a few ungrouped outfits."""
    g = rng(seed, "layout")
    n = int(g.integers(20, 61))
    labels = g.integers(0, 2, n)
    labels[:2] = [0, 1]
    groups: list[str | None] = [None] * n
    if grouped:
        i, k = 0, 0
        while i < n:
            size = int(g.integers(1, 6))
            for j in range(i, min(n, i + size)):
                groups[j] = None if g.random() < 0.1 else f"g{k}"
                if g.random() < 0.7 and j > i:  # most groups are one class (same items, same verdict)
                    labels[j] = labels[i]
            i, k = i + size, k + 1
    outfits = tuple(Outfit(f"o{i:03d}", Path(f"t{i}.png"), Path(f"b{i}.png"), int(labels[i]), groups[i])
                    for i in range(n))
    return Dataset(root=Path("/nowhere"), outfits=outfits)


def _never_split(train, test) -> None:
    assert not set(fold_groups(train).tolist()) & set(fold_groups(test).tolist())


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("input_mode", ["pair", "single"])
def test_outer_and_inner_folds_never_split_a_group(seed: int, input_mode: str) -> None:
    ds = _random_dataset(seed, grouped=seed % 3 != 0)
    k = int(min(5, *groups_per_class(ds.outfits).values()))
    assert k >= 2  # every drawn layout allows grouped folds
    cfg = BenchmarkConfig(archs=(), baselines=("chance",), n_splits=k, n_repeats=2, input_mode=input_mode, seed=seed)
    splits = cv_splits(ds, cfg)
    assert len(splits) == 2 * k
    for repeat in range(2):
        tested = [s.outfit_id for sp in splits if sp.repeat == repeat for s in sp.test]
        assert sorted(set(tested)) == sorted(ds.outfit_ids)  # every outfit tested once per repeat
        assert len(tested) == len(ds.outfits) * (2 if input_mode == "single" else 1)
    for sp in splits:
        _never_split(sp.train, sp.test)
        for tr, va in inner_folds(sp.train, 3, seed):
            _never_split([sp.train[i] for i in tr], [sp.train[i] for i in va])
            assert len(tr) + len(va) <= len(sp.train)


def test_layouts_mix_grouped_and_ungrouped() -> None:
    layouts = [_random_dataset(seed, grouped=seed % 3 != 0) for seed in range(12)]
    assert [ds.has_groups for ds in layouts] == [seed % 3 != 0 for seed in range(12)]
    assert any(len(set(ds.labels[ds.groups == g])) == 2 for ds in layouts for g in set(ds.groups))  # mixed groups


def test_single_mode_inner_folds_keep_an_outfits_two_images_together() -> None:
    ds = _random_dataset(1, grouped=False)
    cfg = BenchmarkConfig(archs=(), baselines=("chance",), n_splits=3, n_repeats=1, input_mode="single")
    train = cv_splits(ds, cfg)[0].train
    for tr, va in inner_folds(train, 3, seed=0):
        assert not {train[i].outfit_id for i in tr} & {train[i].outfit_id for i in va}


def test_ungrouped_folds_are_the_plain_repeated_stratified_k_fold() -> None:
    """Without a group column nothing changes: the same folds as before groups existed, for every model."""
    ds = _random_dataset(4, grouped=False)
    cfg = BenchmarkConfig(archs=(), baselines=("chance",), n_splits=4, n_repeats=2, seed=9)
    old = RepeatedStratifiedKFold(n_splits=4, n_repeats=2, random_state=cfg_seed(9))
    for (_tr, te), split in zip(old.split(np.zeros(len(ds.labels)), ds.labels), cv_splits(ds, cfg)):
        assert [s.outfit_id for s in split.test] == [ds.outfit_ids[i] for i in te]
    assert split_grouping(ds)[0] == "outfit"


def cfg_seed(seed: int) -> int:
    from neipalette.seeding import derive_seed

    return derive_seed(seed, "cv") % 2**31


def test_grouped_folds_are_reproducible_and_seeded() -> None:
    ds = _random_dataset(5, grouped=True)
    a = outfit_folds(ds.labels, ds.groups, n_splits=3, n_repeats=2, seed=1)
    b = outfit_folds(ds.labels, ds.groups, n_splits=3, n_repeats=2, seed=1)
    c = outfit_folds(ds.labels, ds.groups, n_splits=3, n_repeats=2, seed=2)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))
    assert not all(np.array_equal(a[i][1], a[3 + i][1]) for i in range(3))  # repeats differ
    assert split_grouping(ds)[0] == "group_column"


def _grouped_tiny(tmp_path: Path) -> Path:
    root = make_tiny_dataset(tmp_path / "grouped", n_outfits=12)
    csv = root / "outfits.csv"
    rows = csv.read_text().splitlines()
    rows = [rows[0] + ",group"] + [f"{row},{'look' + str(i % 4) if i < 10 else ''}" for i, row in enumerate(rows[1:])]
    csv.write_text("\n".join(rows) + "\n")
    return root


def test_group_column_is_read_and_counted(tmp_path: Path) -> None:
    ds = load_dataset(_grouped_tiny(tmp_path))
    assert ds.has_groups
    assert ds.outfits[0].group == "look0" and ds.outfits[11].group is None  # empty cell: its own group
    # looks 0 and 2 hold positives (even rows), 1 and 3 negatives; o010 (positive) and o011 stand alone
    assert groups_per_class(ds.outfits) == {0: 3, 1: 3}
    with pytest.raises(DatasetError, match="only 3 groups hold negative outfits but 4 folds"):
        load_dataset(ds.root, min_per_class=4)
    load_dataset(ds.root, min_per_class=3)


def test_data_check_prints_groups_and_refuses_too_many_folds(tmp_path: Path) -> None:
    from neipalette.cli import main

    root = _grouped_tiny(tmp_path)
    ok = CliRunner().invoke(main, ["data", "check", str(root)])
    assert ok.exit_code == 0, ok.output
    assert "groups:    6 (group column" in ok.output and "3 hold positive, 3 hold negative" in ok.output
    bad = CliRunner().invoke(main, ["data", "check", str(root), "--folds", "4"])
    assert bad.exit_code == 2
    assert bad.output.strip().count("\n") == 0 and bad.output.startswith("error: only 3 groups hold")
    plain = CliRunner().invoke(main, ["data", "check", str(make_tiny_dataset(tmp_path / "plain"))])
    assert "groups:    none (no group column)" in plain.output


def test_report_header_says_how_splits_were_grouped() -> None:
    from types import SimpleNamespace

    from benchmark.report.tables import _header_lines

    ds = _random_dataset(2, grouped=True)
    header = {"run_name": "benchmark-x", "run_id": "r1", "status": "FINISHED", "experiment": "neipalette",
              "start_time": None, "weights": {}, "random_init": [],
              "dataset": {"name": "x", "n_outfits": len(ds.outfits), "hash": "h", "has_truth": False,
                          "split_grouping": split_grouping(ds)[1]}}
    lines, _ = _header_lines(SimpleNamespace(header=header, n_jobs_finished=1, n_jobs_planned=1))
    assert f"Splits: grouped by the `group` column ({len(set(ds.groups))} groups)" in "\n".join(lines)
