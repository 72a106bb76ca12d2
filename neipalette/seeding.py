"""The one place randomness is seeded: every fold, trial, view and init derives from the run seed."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np


def derive_seed(seed: int, *keys: object) -> int:
    """A stable 31-bit seed for (seed, *keys); independent of call order and of PYTHONHASHSEED."""
    text = "|".join([str(int(seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def rng(seed: int, *keys: object) -> np.random.Generator:
    """A NumPy generator for (seed, *keys)."""
    return np.random.default_rng(derive_seed(seed, *keys))


def seed_everything(seed: int) -> None:
    """Seed `random`, NumPy and torch (if imported) and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency, kept lazy for fast CLIs
        return
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
