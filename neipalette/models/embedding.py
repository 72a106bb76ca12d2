"""Frozen-backbone embeddings, cached in memory and on disk.

The cache key is (architecture, weights identity, image content hashes, input size, view, view seed), so
a changed image, other weights or another size can never be served a stale vector.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from neipalette.colour.imaging import file_digest
from neipalette.models.disk_cache import NpyCache
from neipalette.models.registry import ARCHS, WeightsUsed
from neipalette.models.views import Unit, ViewBank, ViewSpec

log = logging.getLogger(__name__)

BATCH = 32  # forward batch; fixed so cached and uncached paths run identical kernels
THREADS = torch.get_num_threads()  # backbone forwards use every core, even inside a single-threaded head fit


def default_cache_dir() -> Path:
    return Path(os.environ.get("NEIPALETTE_CACHE", Path.home() / ".cache" / "neipalette")) / "embeddings"


class Embedder:
    """Maps (unit, view) to a backbone embedding; `cache=False` runs the backbone on every call.

    `dim`: the width of the vectors (default: the registry's embedding width), what disk entries must have.
    """

    def __init__(self, backbone: nn.Module, weights: WeightsUsed, spec: ViewSpec, *,
                 cache: bool = True, cache_dir: Path | None = None, dim: int | None = None):
        self.backbone = backbone
        self.weights = weights
        self.spec = spec
        self.cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.disk = NpyCache(self.cache_dir, what="embedding cache", dtype=np.float32)
        self.views = ViewBank(spec, memo=not cache)  # with the cache, each view is embedded once anyway
        self._memo: dict[str, torch.Tensor] = {}
        arch = ARCHS.get(weights.arch)
        if dim is None and arch is not None:
            dim = arch.embed_dim
        self._dim: int | None = dim  # None: learnt from the first forward
        self.stats = {"forward_images": 0, "forward_s": 0.0, "disk_hits": 0, "memory_hits": 0, "bad_entries": 0}

    def key(self, unit: Unit, view: int) -> str:
        parts = [self.weights.arch, self.weights.identity, str(self.spec.image_size), str(view),
                 str(self.spec.seed if view else 0), *(file_digest(p) for p in unit)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    def forward(self, units: Sequence[Unit], views: Sequence[int]) -> torch.Tensor:
        """Backbone forward (no cache), in fixed-size batches."""
        t0 = time.perf_counter()
        chunks = []
        previous = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        try:
            self._forward_chunks(units, views, chunks)
        finally:
            torch.set_num_threads(previous)
        self.stats["forward_images"] += len(units)
        self.stats["forward_s"] += time.perf_counter() - t0
        return torch.cat(chunks) if chunks else torch.empty(0)

    def _forward_chunks(self, units: Sequence[Unit], views: Sequence[int], chunks: list) -> None:
        with torch.inference_mode():
            for i in range(0, len(units), BATCH):
                x = self.views.batch(units[i:i + BATCH], views[i:i + BATCH])
                chunks.append(self.backbone(x).float().clone())

    def embed(self, units: Sequence[Unit], views: Sequence[int]) -> torch.Tensor:
        """Embeddings (n, d) for each (unit, view)."""
        if not self.cache:
            return self.forward(units, views)
        keys = [self.key(u, int(v)) for u, v in zip(units, views)]
        bad_before = self.disk.stats["bad_entries"]
        todo: dict[str, tuple[Unit, int]] = {}
        for k, u, v in zip(keys, units, views):
            if k in self._memo:
                self.stats["memory_hits"] += 1
                continue
            if k in todo:
                continue
            if not self._load_disk(k):
                todo[k] = (u, int(v))
        if todo:
            items = list(todo.items())
            vectors = self.forward([u for _, (u, _) in items], [v for _, (_, v) in items])
            for (k, _), vec in zip(items, vectors):
                self._memo[k] = vec
                self._save_disk(k, vec)
        bad = self.disk.stats["bad_entries"] - bad_before
        if bad:
            self.stats["bad_entries"] += bad
            log.warning("embedding cache %s: %d bad entries (wrong shape or dtype, NaN/inf, or unreadable) "
                        "recomputed and rewritten", self.cache_dir, bad)
        return torch.stack([self._memo[k] for k in keys])

    def warm(self, units: Sequence[Unit], n_views: int) -> None:
        """Embed every view of every unit in one pass (batched)."""
        all_units = [u for u in dict.fromkeys(units) for _ in range(n_views)]
        all_views = [v for _ in dict.fromkeys(units) for v in range(n_views)]
        self.embed(all_units, all_views)

    def _disk_path(self, key: str) -> Path:
        return self.disk.path(key)

    def _load_disk(self, key: str) -> bool:
        arr = self.disk.load(key, None if self._dim is None else (self._dim,))
        if arr is None or arr.ndim != 1:
            return False
        self._dim = arr.shape[0]
        self._memo[key] = torch.from_numpy(arr)
        self.stats["disk_hits"] += 1
        return True

    def _save_disk(self, key: str, vec: torch.Tensor) -> None:
        self._dim = int(vec.shape[-1])  # what the backbone really gives wins over the registry's number
        self.disk.save(key, vec.numpy())  # atomic; an unusable folder: one WARNING, then memory only
