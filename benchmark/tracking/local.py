"""A local (SQLite or file) store's surroundings: the tracking URI in use, the folder beside the store, the
lock that serialises creating a new store's tables, and the disk space held back to close runs on a full disk."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
from filelock import FileLock

def tracking_uri() -> str:
    """MLflow's own resolution (`mlflow.set_tracking_uri`, else MLFLOW_TRACKING_URI, else its default), the one
    `mlflow.models.Model.log` and `mlflow.pyfunc.load_model` use too."""
    return mlflow.get_tracking_uri()

def local_store_dir() -> Path:
    """Folder of a local sqlite/file store (for the default Optuna journal), else the working directory."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file:").removeprefix("//")).resolve().parent
    return Path.cwd()

@contextlib.contextmanager
def store_init_lock() -> Iterator[None]:
    """Workers starting together on a new local SQLite store would race to create MLflow's tables (and one
    would crash): a file lock beside the store lets them in one at a time. Other stores: no lock."""
    if not tracking_uri().startswith("sqlite:"):
        yield
        return
    path = local_store_dir() / ".neipalette" / "store.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        yield

RESERVE_BYTES = 256 * 1024  # far more than SQLite needs to journal one status update

def make_reserve(uri: str) -> Path | None:
    """A local store fills up with its own disk: hold a little space back (a file beside the store), so that
    a worker stopped by a full disk can still mark its runs FAILED instead of leaving them RUNNING. Reserves
    left by killed workers are removed."""
    if not uri.startswith("sqlite:"):
        return None
    folder = local_store_dir() / ".neipalette"
    for old in folder.glob("reserve.*"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(old.suffix.lstrip("."))
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                old.unlink()
            except PermissionError:
                pass
    path = folder / f"reserve.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
        return path
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
