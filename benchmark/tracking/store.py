"""The tracking store's health: checked before a run is created, and failures described in one line.

`check_store` looks before MLflow touches anything: a local SQLite file that is not a database, a folder that
is read-only, a tracking server that does not answer (a short connect timeout, a bounded retry that says
what it waits for). `describe_tracking_failure` names the store and the fix for what MLflow and SQLAlchemy
raise later (the command lines' error boundary calls it).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
CONNECT_TIMEOUT_S = 3.0
CONNECT_TRIES = 4  # waits 1, 2, 4 s between tries: about 7 s for a refused connection, 19 s for a silent host
# MLflow's HTTP retries: benchmark.tracking.env.configure_mlflow_env (called by each command line)
# SQLite's lock bytes (os_unix.c): PENDING, then RESERVED, then the 510-byte SHARED range. The process holding
# RESERVED, PENDING or EXCLUSIVE is the store's one writer; while it holds PENDING or EXCLUSIVE no one reads.
_SQLITE_PENDING_BYTE = 0x40000000
_FLOCK = "hhqqi4x"  # Linux's struct flock on 64-bit platforms: type, whence, start, len, pid


def store_lock_wait_s() -> float:
    """How long a worker waits for a locked SQLite store before it gives up (`NEIPALETTE_STORE_LOCK_WAIT_S`)."""
    return float(os.environ.get("NEIPALETTE_STORE_LOCK_WAIT_S", "60"))


class TrackingError(RuntimeError):
    """A user-facing problem with the tracking store (no such run, experiment, ...): one line, no traceback."""


class LeaseHeld(TrackingError):
    """Another live worker holds the work this one was asked to do."""


def sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")).expanduser() if uri.startswith("sqlite:///") else None


def is_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked" (its busy timeout ran out) anywhere in the exception's chain."""
    from neipalette.errors import causes

    return any("database is locked" in str(e).lower() for e in causes(exc))


def sqlite_lock_holder(path: Path) -> int | None:
    """The pid of another process holding SQLite's write lock on `path`, or None when none does or this
    platform cannot tell (Linux: asks the kernel with F_GETLK, which takes no lock)."""
    if not sys.platform.startswith("linux") or sys.maxsize <= 2**32:
        return None
    import fcntl
    import struct

    try:
        with open(path, "rb") as fh:  # PENDING and RESERVED: a writer holds one (EXCLUSIVE covers both)
            probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _SQLITE_PENDING_BYTE, 2, 0)
            kind, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fh, fcntl.F_GETLK, probe))
    except (OSError, struct.error, ValueError):
        return None
    return pid if kind != fcntl.F_UNLCK and pid > 0 else None


def check_store(uri: str, *, write: bool, must_exist: bool = False) -> None:
    """Raise TrackingError naming the store and the fix when it cannot be used; wait briefly for a server."""
    path = sqlite_path(uri)
    if path is not None:
        _check_sqlite(uri, path, write=write, must_exist=must_exist)
    elif uri.startswith(("http://", "https://")):
        wait_for_server(uri)


def _check_sqlite(uri: str, path: Path, *, write: bool, must_exist: bool) -> None:
    if not path.exists():
        if must_exist:
            raise TrackingError(f"no MLflow store at {uri} (set MLFLOW_TRACKING_URI to the benchmark's store)")
        if not path.parent.is_dir():
            raise TrackingError(f"the folder of the MLflow store {uri} does not exist; create {path.parent} "
                                "or set MLFLOW_TRACKING_URI to another store")
    elif path.is_dir() or not os.access(path, os.R_OK):
        raise TrackingError(f"the MLflow store {path} is not a readable file; fix its permissions or set "
                            "MLFLOW_TRACKING_URI to another store")
    else:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
        if head and head != SQLITE_MAGIC:
            raise TrackingError(f"the MLflow store {path} is not an SQLite database (corrupt or another file); "
                                "restore it from a backup, or set MLFLOW_TRACKING_URI to another store")
    if write:
        folder = path.parent if path.parent.is_dir() else None
        if folder is not None and not os.access(folder, os.W_OK):
            raise TrackingError(f"the MLflow store's folder {folder} is read-only; make it writable or run with a "
                                "writable store (MLFLOW_TRACKING_URI=sqlite:////writable/path/mlflow.db)")
        if path.exists() and not os.access(path, os.W_OK):
            raise TrackingError(f"the MLflow store {path} is read-only; make it writable or run with another store")


def wait_for_server(uri: str, *, tries: int | None = None, timeout_s: float | None = None) -> None:
    """Connect to the tracking server's port, retrying a few times (each wait logged); TrackingError if never."""
    tries = tries or CONNECT_TRIES
    timeout_s = timeout_s or CONNECT_TIMEOUT_S
    parts = urlsplit(uri)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    t0 = time.monotonic()
    reason = ""
    for attempt in range(1, tries + 1):
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        if attempt < tries:
            pause = 2.0 ** (attempt - 1)
            log.warning("waiting for the MLflow tracking server at %s:%d (%s); try %d of %d in %.0f s",
                        host, port, reason, attempt + 1, tries, pause)
            time.sleep(pause)
    raise TrackingError(f"the MLflow tracking server {uri} is unreachable ({reason}; {tries} tries in "
                        f"{time.monotonic() - t0:.0f} s); start it (mlflow server ...) or set MLFLOW_TRACKING_URI "
                        "to a reachable store")


_PATTERNS = (
    (("file is not a database", "database disk image is malformed"),
     "the MLflow store {uri} is corrupt ({detail}); restore it from a backup, or set MLFLOW_TRACKING_URI to another store"),
    (("readonly database", "read-only file system"),
     "the MLflow store {uri} is read-only; run with a writable store, or report with --no-log"),
    (("database is locked",),
     "the MLflow store {uri} stayed locked by another process ({detail}); wait for that writer to finish (or "
     "stop it), then rerun — a benchmark continues with --resume"),
    (("unable to open database file",),
     "cannot open the MLflow store {uri}; check that its folder exists and is writable"),
    (("max retries exceeded", "connection refused", "failed to establish a new connection", "could not connect to server",
      "name or service not known", "connection timed out"),
     "the MLflow tracking store {uri} is unreachable ({detail}); start it or set MLFLOW_TRACKING_URI to a reachable store"),
)


def describe_tracking_failure(exc: BaseException, uri: str | None = None) -> str | None:
    """One line for store and server failures anywhere in the exception's chain, else None."""
    from neipalette.errors import causes

    if uri is None:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or "the default store (sqlite:///mlflow.db)"
    for e in causes(exc):
        if isinstance(e, TrackingError):
            return str(e)
    for e in causes(exc):
        text = str(e).lower()
        for needles, template in _PATTERNS:
            hit = next((n for n in needles if n in text), None)
            if hit:
                return template.format(uri=uri, detail=hit)
    return None
