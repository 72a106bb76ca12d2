"""Where networks run: `device: auto | cpu | cuda | mps`; mixed precision on CUDA only.

The code path is the same on every device: tensors are moved with `.to(device)` (a no-op on the CPU) and
autocast is enabled only on CUDA, so CPU runs give exactly the numbers they gave before devices existed.
"""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Iterator

import torch
from torch import nn

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an explicit accelerator that is absent is an error."""
    if name not in DEVICES:
        raise ValueError(f"device {name!r} is not one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but torch.cuda.is_available() is False; use device: auto or cpu")
    if name == "mps" and not _mps_available():
        raise ValueError("device mps requested but torch.backends.mps.is_available() is False; use device: auto or cpu")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """The device and its name, e.g. `cuda (NVIDIA H100 80GB HBM3)` or `cpu (x86_64, 2 threads)`."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, mixed precision {amp_dtype(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({platform.machine() or 'unknown'}, {torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype on CUDA (bfloat16 where supported, else float16); None elsewhere (full precision)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    dtype = amp_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for float16 autocast; disabled (a pass-through) everywhere else."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)


class OnDevice(nn.Module):
    """Runs a frozen network on `device` (autocast on CUDA) and hands float32 CPU tensors back."""

    def __init__(self, module: nn.Module, device: torch.device):
        super().__init__()
        self.module = module.to(device)
        self.device = device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device):
            out = self.module(x.to(self.device))
        return out.float().cpu()
