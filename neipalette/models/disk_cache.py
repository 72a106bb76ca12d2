"""Arrays cached on disk as `.npy` files: validated on load, written atomically, memory-only when unusable.

Used by the embedding cache (`embedding.py`); anything else that caches per-key arrays can use it too.
A cache folder that cannot be written (a file in its place, read-only, full) gives one WARNING and the
run goes on without the disk cache; an entry of the wrong shape or dtype, non-finite, or unreadable is a
miss: the caller recomputes it and `save` overwrites the bad file. Bad entries are counted in `stats`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class NpyCache:
    """`load(key)` / `save(key, array)` under `folder/<key[:2]>/<key>.npy`."""

    def __init__(self, folder: Path, *, what: str = "cache", dtype: np.dtype = np.float32):
        self.folder = Path(folder)
        self.what = what
        self.dtype = np.dtype(dtype)
        self.writable: bool | None = None  # unknown until the first save
        self.stats = {"disk_hits": 0, "bad_entries": 0, "writes": 0}

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def load(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The stored array, or None when absent or bad (wrong shape/dtype, NaN/inf, torn or foreign file)."""
        path = self.path(key)
        try:
            if not path.is_file():
                return None
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # unreadable, torn, empty, a pickle
            return self._bad(path, "unreadable")
        if not isinstance(arr, np.ndarray) or arr.dtype != self.dtype:
            return self._bad(path, f"dtype {getattr(arr, 'dtype', type(arr).__name__)}")
        if shape is not None and arr.shape != tuple(shape):
            return self._bad(path, f"shape {arr.shape}, expected {tuple(shape)}")
        if not np.all(np.isfinite(arr)):
            return self._bad(path, "non-finite values")
        self.stats["disk_hits"] += 1
        return arr

    def _bad(self, path: Path, why: str) -> None:
        self.stats["bad_entries"] += 1
        log.debug("%s entry %s is bad (%s); recomputing it", self.what, path, why)
        return None

    def save(self, key: str, arr: np.ndarray) -> None:
        """Write atomically (a killed run never leaves half a file); never raises for the folder's sake."""
        if self.writable is False:
            return
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, np.ascontiguousarray(arr, dtype=self.dtype))
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            self.writable = False
            log.warning("%s folder %s is unusable (%s); continuing without the disk cache (memory only). "
                        "Point NEIPALETTE_CACHE or model.cache_dir at a writable folder to keep results between runs.",
                        self.what, self.folder, exc.strerror or type(exc).__name__)
            return
        self.writable = True
        self.stats["writes"] += 1

