"""The embedding cache (memory + disk, content-keyed) and the seeded image views it embeds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neipalette.models.embedding import Embedder
from neipalette.models.arch import IMAGENET_MEAN, IMAGENET_STD
from neipalette.models.views import ViewSpec, image_view, unit_tensor

SIZE = 32
SPEC = ViewSpec(image_size=SIZE, n_views=3, seed=0, mean=IMAGENET_MEAN, std=IMAGENET_STD)


pytestmark = pytest.mark.usefixtures("one_thread")


def _noise_image(path: Path, size: tuple[int, int] = (40, 40), seed: int = 0) -> Path:
    arr = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr, "RGB").save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "img"
    folder.mkdir()
    return [_noise_image(folder / f"im{i}.png", seed=i) for i in range(4)]


def _embedder(backbone, cache_dir: Path, *, spec: ViewSpec = SPEC, cache: bool = True) -> Embedder:
    model, used = backbone
    return Embedder(model, used, spec, cache=cache, cache_dir=cache_dir)


def _npy_files(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.rglob("*.npy"))


# ------------------------------------------------------------------------------------------------ cache


def test_memory_then_disk_hits(backbone, images: list[Path], tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    units = [(p,) for p in images] * 2
    views = [0] * 4 + [1] * 4
    emb = _embedder(backbone, cache_dir)
    first = emb.embed(units, views)
    assert first.shape == (8, 512)
    assert emb.stats["forward_images"] == 8 and emb.stats["disk_hits"] == 0
    assert len(_npy_files(cache_dir)) == 8

    second = emb.embed(units, views)  # served from memory
    assert torch.equal(first, second)
    assert emb.stats["forward_images"] == 8 and emb.stats["disk_hits"] == 0
    assert emb.stats["memory_hits"] == 8

    fresh = _embedder(backbone, cache_dir)  # a new process, say: served from disk
    third = fresh.embed(units, views)
    assert fresh.stats["forward_images"] == 0 and fresh.stats["disk_hits"] == 8
    assert torch.equal(first, third)
    assert torch.equal(first, _embedder(backbone, cache_dir, cache=False).forward(units, views))


def test_duplicates_in_one_call_are_embedded_once(backbone, images: list[Path], tmp_path: Path) -> None:
    emb = _embedder(backbone, tmp_path / "cache")
    out = emb.embed([(images[0],)] * 3 + [(images[1],)], [2, 2, 2, 0])
    assert emb.stats["forward_images"] == 2
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])


def test_warm_embeds_every_view_once(backbone, images: list[Path], tmp_path: Path) -> None:
    emb = _embedder(backbone, tmp_path / "cache")
    emb.warm([(p,) for p in images] + [(images[0],)], n_views=3)
    assert emb.stats["forward_images"] == 12
    emb.embed([(images[0],), (images[3],)], [2, 1])
    assert emb.stats["forward_images"] == 12


def test_no_cache_always_forwards(backbone, images: list[Path], tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    emb = _embedder(backbone, cache_dir, cache=False)
    units, views = [(p,) for p in images], [0, 1, 2, 0]
    a = emb.embed(units, views)
    b = emb.embed(units, views)
    assert emb.stats["forward_images"] == 8 and emb.stats["disk_hits"] == 0
    assert torch.equal(a, b)
    assert not _npy_files(cache_dir)


def test_rewritten_image_is_embedded_again(backbone, images: list[Path], tmp_path: Path) -> None:
    unit, views = (images[0],), [0, 1, 2]
    cold = _embedder(backbone, tmp_path / "shared")  # fills the disk cache, then is dropped
    warm = _embedder(backbone, tmp_path / "own")  # stays alive with the old pixels in memory
    old_keys = [cold.key(unit, v) for v in views]
    old = cold.embed([unit] * 3, views)
    assert torch.equal(warm.embed([unit] * 3, views), old)

    _noise_image(images[0], seed=100)  # same path and byte size, different pixels
    assert not set(old_keys) & {cold.key(unit, v) for v in views}
    expected = _embedder(backbone, tmp_path / "none", cache=False).forward([unit] * 3, views)
    assert not torch.allclose(expected, old)

    fresh = _embedder(backbone, tmp_path / "shared")  # a new run over the old disk cache
    assert torch.equal(fresh.embed([unit] * 3, views), expected)
    assert fresh.stats["forward_images"] == 3 and fresh.stats["disk_hits"] == 0

    before = warm.stats["forward_images"]
    assert torch.equal(warm.embed([unit] * 3, views), expected)  # no stale decoded view either
    assert warm.stats["forward_images"] - before == 3


def test_key_depends_on_everything_that_changes_the_vector(backbone, images: list[Path], tmp_path: Path) -> None:
    model, used = backbone
    base = _embedder(backbone, tmp_path)
    unit = (images[0],)
    k0, k1 = base.key(unit, 0), base.key(unit, 1)
    assert k0 != k1 != base.key(unit, 2)
    assert base.key((images[1],), 0) != k0
    assert base.key((images[0], images[1]), 0) != base.key((images[1], images[0]), 0)

    bigger = _embedder(backbone, tmp_path, spec=replace(SPEC, image_size=48))
    assert bigger.key(unit, 0) != k0 and bigger.key(unit, 1) != k1

    other_weights = Embedder(model, replace(used, identity="file-0123456789abcdef"), SPEC, cache_dir=tmp_path)
    assert other_weights.key(unit, 0) != k0
    other_arch = Embedder(model, replace(used, arch="efficientnet_b0"), SPEC, cache_dir=tmp_path)
    assert other_arch.key(unit, 0) != k0

    reseeded = _embedder(backbone, tmp_path, spec=replace(SPEC, seed=1))
    assert reseeded.key(unit, 1) != k1  # augmented views depend on the view seed
    assert reseeded.key(unit, 0) == k0  # the plain resize does not

    copy = tmp_path / "copy.png"
    copy.write_bytes(images[0].read_bytes())
    assert base.key((copy,), 0) == k0  # keyed on content, not on the path


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_torn_cache_file_is_recomputed(backbone, images: list[Path], tmp_path: Path, damage: str) -> None:
    cache_dir = tmp_path / "cache"
    units = [(p,) for p in images]
    good = _embedder(backbone, cache_dir).embed(units, [0] * 4)
    victim = _embedder(backbone, cache_dir)._disk_path(_embedder(backbone, cache_dir).key(units[2], 0))
    data = victim.read_bytes()
    victim.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"not a numpy file"}[damage])

    emb = _embedder(backbone, cache_dir)
    again = emb.embed(units, [0] * 4)
    assert emb.stats["forward_images"] == 1 and emb.stats["disk_hits"] == 3
    keep = [0, 1, 3]
    assert torch.equal(again[keep], good[keep])
    # Recomputed alone: a batch of one may pick another conv kernel, so equal to float rounding only.
    assert torch.allclose(again[2], good[2], rtol=0, atol=1e-5)
    assert np.array_equal(np.load(victim), again[2].numpy())  # repaired on disk


# ------------------------------------------------------------------------------------------------ views


def test_view0_is_the_plain_resize(tmp_path: Path) -> None:
    square = _noise_image(tmp_path / "sq.png", (40, 40))
    want = np.asarray(Image.open(square).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR),
                      dtype=np.float32) / 255.0
    got = image_view(square, 0, SPEC)
    assert got.shape == (SIZE, SIZE, 3) and got.dtype == np.float32
    assert np.array_equal(got, want)
    assert np.array_equal(image_view(square, 0, replace(SPEC, seed=9)), got)  # no randomness in view 0

    wide = _noise_image(tmp_path / "wide.png", (60, 40))  # the centre square of a landscape image
    centre = Image.open(wide).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=(10, 0, 50, 40))
    assert np.array_equal(image_view(wide, 0, SPEC), np.asarray(centre, dtype=np.float32) / 255.0)


def test_augmented_views_are_seeded(tmp_path: Path) -> None:
    img = _noise_image(tmp_path / "a.png", (48, 40))
    views = {v: image_view(img, v, SPEC) for v in range(1, 4)}
    for v, arr in views.items():
        assert arr.shape == (SIZE, SIZE, 3)
        assert np.array_equal(arr, image_view(img, v, SPEC))  # same (seed, image, view): same pixels
        assert not np.array_equal(arr, image_view(img, 0, SPEC))
        assert not np.array_equal(arr, image_view(img, v, replace(SPEC, seed=1)))
    assert not np.array_equal(views[1], views[2]) and not np.array_equal(views[2], views[3])
    copy = tmp_path / "b.png"
    copy.write_bytes(img.read_bytes())
    assert np.array_equal(image_view(copy, 2, SPEC), views[2])  # seeded by content, not by path


@pytest.mark.parametrize("colour", [(200, 40, 40), (30, 90, 180), (120, 160, 60), (240, 230, 10)])
def test_views_never_shift_hue(tmp_path: Path, colour: tuple[int, int, int]) -> None:
    path = tmp_path / "solid.png"
    Image.new("RGB", (50, 40), colour).save(path)

    def chromaticity(arr: np.ndarray) -> np.ndarray:
        mean = arr.reshape(-1, 3).mean(0)
        return mean / mean.sum()

    base = chromaticity(image_view(path, 0, SPEC))
    assert np.allclose(base, np.array(colour) / sum(colour), atol=2e-3)
    for seed in (0, 1):
        for v in range(1, 8):
            assert np.allclose(chromaticity(image_view(path, v, replace(SPEC, seed=seed))), base, atol=5e-3)


def test_unit_tensor_normalises_and_stacks(tmp_path: Path) -> None:
    top = _noise_image(tmp_path / "t.png", seed=1)
    bottom = _noise_image(tmp_path / "b.png", seed=2)
    single = unit_tensor((top,), 0, SPEC)
    assert single.shape == (3, SIZE, SIZE)
    stacked = unit_tensor((top, bottom), 0, SPEC)
    assert stacked.shape == (3, 2 * SIZE, SIZE)
    assert torch.equal(stacked[:, :SIZE], single)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    raw = torch.from_numpy(image_view(top, 0, SPEC)).permute(2, 0, 1)
    assert torch.allclose(single, (raw - mean) / std)
