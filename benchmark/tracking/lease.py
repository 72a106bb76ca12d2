"""Who is working on a benchmark's shard right now: a liveness lease per (parent run, shard).

A worker holds the lease of its shard from before it touches any fold run until it ends. A second worker
(`--resume`, the same `--group` and `--shard`, `--run-id`) asked to do the same work is refused with one line
naming the live holder, and takes over only once the holder is gone:

- local stores (SQLite, file): an advisory lock (`flock`) on a file in the store's folder,
  `.neipalette/leases/<parent>-<i>of<n>.lock`. The kernel drops it the instant the holder dies, `kill -9`
  included, so a dead worker's lease has always expired.
- server stores (http, PostgreSQL): a heartbeat tag `neipalette.lease.<i>of<n>` on the parent run (holder,
  token, time of the last beat), renewed every TTL/4 by a thread. It expires TTL seconds after the last beat
  (`NEIPALETTE_LEASE_TTL_S`, default 60), at once when the holder ran on this host and its pid is gone. Two
  workers claiming together both write, wait, and read back: only the last writer keeps it. (Workers on
  several machines need clocks within a few seconds of each other, as NTP keeps them.)

A worker paused while it holds SQLite's write lock (Ctrl-Z, SIGSTOP, a debugger) blocks even the reads a
second worker needs to find its lease; once that one has waited long enough it is refused all the same,
naming the paused holder (`locked_store_refusal`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from benchmark.tracking.store import LeaseHeld, TrackingError, sqlite_lock_holder, sqlite_path

log = logging.getLogger(__name__)

TAG = "neipalette.lease."
SETTLE_S = 1.0  # between writing a claim and reading it back; far above one tag write's latency


def lease_ttl_s() -> float:
    return float(os.environ.get("NEIPALETTE_LEASE_TTL_S", "60"))


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _shard_name(shard: str) -> str:
    return shard.replace("/", "of")


def _alive_here(holder: dict) -> bool:
    """False only when the holder ran on this host and its process is gone."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


def _refusal(parent: str, shard: str, holder: dict, extra: str = "") -> LeaseHeld:
    return LeaseHeld(
        f"run {parent} shard {shard} is being worked on by a live worker, pid {holder.get('pid')} on host "
        f"{holder.get('host')}{extra}; wait for it to end (or stop it), then rerun this command "
        "— for a fresh benchmark drop --resume or pick a new --group")


class FileLease:
    """flock on a file beside a local store; held until `release` or the process ends."""

    def __init__(self, folder: Path, parent: str, shard: str):
        self.path = folder / ".neipalette" / "leases" / f"{parent}-{_shard_name(shard)}.lock"
        self.parent, self.shard = parent, shard
        self._fh = None

    def acquire(self) -> "FileLease":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            try:
                holder = json.loads(fh.read() or "{}")
            except ValueError:
                holder = {}
            fh.close()
            raise _refusal(self.parent, self.shard, holder) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({**_holder(), "since": time.time()}))
        fh.flush()
        self._fh = fh
        return self

    @property
    def lost(self) -> bool:
        return False

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()  # closing drops the lock; the file stays (removing it would race a new holder)
            self._fh = None


class TagLease:
    """Heartbeat tag on the parent run, renewed by a thread; for stores other workers reach over the network."""

    def __init__(self, client, parent: str, shard: str, *, ttl_s: float | None = None, holder: dict | None = None):
        self.client = client
        self.parent, self.shard = parent, shard
        self.key = f"{TAG}{_shard_name(shard)}"
        self.ttl_s = ttl_s if ttl_s is not None else lease_ttl_s()
        self.token = uuid.uuid4().hex
        self.holder = holder or _holder()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost_to: dict | None = None

    def _read(self) -> dict | None:
        raw = self.client.get_run(self.parent).data.tags.get(self.key)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _write(self) -> None:
        self.client.set_tag(self.parent, self.key, json.dumps({**self.holder, "token": self.token, "beat": time.time()}))

    def _live(self, lease: dict | None) -> bool:
        if not lease or lease.get("token") == self.token:
            return False
        age = time.time() - float(lease.get("beat", 0))
        return age < self.ttl_s and _alive_here(lease)

    def acquire(self) -> "TagLease":
        current = self._read()
        if self._live(current):
            raise _refusal(self.parent, self.shard, current, self._age(current))
        self._write()
        time.sleep(SETTLE_S)
        current = self._read()
        if current and current.get("token") != self.token:
            raise _refusal(self.parent, self.shard, current, self._age(current))
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.key}", daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _age(lease: dict) -> str:
        return f" (heartbeat {max(0.0, time.time() - float(lease.get('beat', 0))):.0f} s ago)"

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                current = self._read()
                if current and current.get("token") != self.token:
                    self.lost_to = current
                    log.error("lease of run %s shard %s taken over by pid %s on %s", self.parent, self.shard,
                              current.get("pid"), current.get("host"))
                    return
                self._write()
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the TTL covers several
                log.warning("lease heartbeat for run %s failed (%s); retrying", self.parent, type(exc).__name__)

    @property
    def lost(self) -> bool:
        return self.lost_to is not None

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with contextlib.suppress(Exception):
            current = self._read()
            if current and current.get("token") == self.token:
                self.client.delete_tag(self.parent, self.key)


def locked_store_refusal(uri: str, folder: Path, waited_s: float) -> TrackingError:
    """The one-line refusal for a SQLite store another process kept locked for `waited_s`: the live worker
    and its shard when the lock's holder holds a lease here, else the holder's pid (where the OS tells)."""
    path = sqlite_path(uri)
    pid = sqlite_lock_holder(path) if path is not None else None
    paused = (f" (it has held the store's write lock for over {waited_s:.0f} s: paused? `kill -CONT {pid}` "
              "resumes it)")
    if pid is not None:
        for lock in sorted((folder / ".neipalette" / "leases").glob("*-*of*.lock")):
            with contextlib.suppress(OSError, ValueError):
                holder = json.loads(lock.read_text() or "{}")
                if holder.get("pid") == pid and holder.get("host") == socket.gethostname():
                    parent, shard = lock.stem.rsplit("-", 1)
                    return _refusal(parent, shard.replace("of", "/"), holder, paused)
    who = f"pid {pid} on this host" if pid is not None else "another process"
    return TrackingError(f"the MLflow store {uri} has been locked by {who} for over {waited_s:.0f} s (a paused or "
                         "stuck writer?); wait for it to finish (or stop it), then rerun this command")
