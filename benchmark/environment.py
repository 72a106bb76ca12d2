"""Where a benchmark ran: the code's git state and the machine (recorded on the parent run).

The same seed and commit can give different numbers on different CPU kinds (BLAS kernels, thread counts),
so the parent run records enough to tell machines apart.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@dataclass(frozen=True)
class GitInfo:
    commit: str | None  # None outside a git checkout
    branch: str | None  # None on a detached HEAD
    dirty: bool

    @property
    def label(self) -> str:
        """`<commit>[-dirty]`, or `unknown`: the `neipalette.git_commit` tag."""
        return f"{self.commit}{'-dirty' if self.dirty else ''}" if self.commit else "unknown"


def git_info(repo: Path) -> GitInfo:
    """Commit, branch and whether tracked files differ from the commit; `GitInfo(None, None, False)` without git."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return GitInfo(None, None, False)
    branch = git("symbolic-ref", "--short", "-q", "HEAD") or None
    return GitInfo(commit, branch, bool(git("status", "--porcelain", "--untracked-files=no")))


def cpu_model() -> str:
    """The CPU's marketing name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """Python, library versions, CPU model and thread counts: what numbers depend on besides seed and code."""
    import torch

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count() or "unknown"),
        "torch": torch.__version__,
        "torch_threads": str(torch.get_num_threads()),
        "torch_interop_threads": str(torch.get_num_interop_threads()),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
    for dist in ("numpy", "torchvision", "scikit-learn", "mlflow", "optuna"):
        info[dist] = _version(dist)
    info["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS", "unset")
    return info
