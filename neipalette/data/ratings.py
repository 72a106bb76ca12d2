"""ratings.csv: one row per vote of the labelling page (`outfit_id,rater,label,time`), appended and fsync'd.

`label` is one of positive, negative, skip or undo. A rater's current state for an outfit is found by
replaying their rows in file order: positive/negative/skip set it, undo clears it (the outfit is unlabelled
again for that rater). Rows are never rewritten, so the file is the full history.

Writers (label servers, several at once) append under a lock file beside it (`ratings.csv.lock`), so one
writer's half-written row is never taken for a crash leftover. A crash can at worst leave a last line that
is not a complete row: readers ignore it and the next append cuts it, holding the lock. A complete last row
without its newline (a file edited by a tool that drops it) counts, and the next append adds the newline.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from neipalette.errors import DatasetError

log = logging.getLogger(__name__)

RATINGS_FILE = "ratings.csv"
COLUMNS = ("outfit_id", "rater", "label", "time")
VOTES = ("positive", "negative")
ACTIONS = (*VOTES, "skip", "undo")
LOCK_TIMEOUT_S = 30.0


def _line(values: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode("utf-8")


def lock_for(path: Path) -> FileLock:
    """The inter-process lock every writer of `path` holds while it appends (and repairs the tail)."""
    path = Path(path)
    return FileLock(str(path.with_name(path.name + ".lock")), timeout=LOCK_TIMEOUT_S)


def append_vote(path: Path, outfit_id: str, rater: str, label: str, when: datetime | None = None) -> str:
    """Append one row and fsync it before returning; returns the time written (UTC, ISO 8601)."""
    if label not in ACTIONS:
        raise ValueError(f"label must be one of {ACTIONS}, got {label!r}")
    stamp = (when or datetime.now(UTC)).isoformat(timespec="milliseconds")
    path = Path(path)
    data = _line([outfit_id, rater, label, stamp])
    with lock_for(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = _repair_tail(path, fd) + data
            created = os.fstat(fd).st_size == 0
            if created:
                data = _line(list(COLUMNS)) + data
            os.write(fd, data)  # one write with O_APPEND: the row lands whole after the current end
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(path.parent)
    return stamp


def _last_line(path: Path, size: int) -> bytes:
    """The bytes after the file's last newline (all of it when there is none)."""
    with open(path, "rb") as fh:
        tail = b""
        pos = size
        while pos > 0 and b"\n" not in tail:
            step = min(4096, pos)
            pos -= step
            fh.seek(pos)
            tail = fh.read(step) + tail
    return tail[tail.rfind(b"\n") + 1:]


def _complete_row(line: bytes) -> bool:
    """A whole ratings row (or the header): four fields, a known label, a timestamp that parses."""
    try:
        cells = next(csv.reader([line.decode("utf-8-sig")]), [])
    except (UnicodeDecodeError, csv.Error):
        return False
    if [c.strip().lower() for c in cells] == list(COLUMNS):
        return True
    if len(cells) != len(COLUMNS) or cells[2].strip() not in ACTIONS or not cells[0].strip() or not cells[1].strip():
        return False
    try:
        datetime.fromisoformat(cells[3].strip())
    except ValueError:
        return False
    return True


def _repair_tail(path: Path, fd: int) -> bytes:
    """Called holding the lock: a last line without its newline is either a complete row (kept; returns the
    newline to write before the next row) or a crash leftover, never acknowledged (cut)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return b""
    last = _last_line(path, size)
    if not last:
        return b""
    if _complete_row(last):
        log.info("%s: adding the missing newline after the last row", path)
        return b"\n"
    log.warning("%s: dropping a torn last line %r (written during a crash)", path, last[:200])
    os.ftruncate(fd, size - len(last))
    return b""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_ratings(path: Path) -> list[dict[str, str]]:
    """Every complete row of ratings.csv in file order; DatasetError (one line) for a malformed file."""
    path = Path(path)
    fix = "fix or remove that row (ratings.csv is outfit_id,rater,label,time)"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path} cannot be read ({exc}); restore it from a backup") from None
    if raw and not raw.endswith(b"\n"):
        head, _, last = raw.rpartition(b"\n")
        if _complete_row(last):
            raw += b"\n"  # a whole row that lost its newline (an editor): it counts
        else:  # a vote being written right now, or a crash leftover that the next append cuts
            log.info("%s: ignoring an incomplete last line %r", path, last[:200])
            raw = head + b"\n" if head else b""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} cannot be read as UTF-8 text ({exc}); restore it from a backup") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    if [c.strip().lower() for c in header] != list(COLUMNS):
        raise DatasetError(f"{path}: header must be {','.join(COLUMNS)}, got {','.join(header)}; {fix}")
    rows = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(COLUMNS):
            raise DatasetError(f"{path} line {reader.line_num}: {len(row)} fields, expected 4; {fix}")
        rec = dict(zip(COLUMNS, (c.strip() for c in row)))
        if rec["label"] not in ACTIONS:
            raise DatasetError(
                f"{path} line {reader.line_num}: label '{rec['label']}' is not one of {', '.join(ACTIONS)}; {fix}"
            )
        if not rec["outfit_id"] or not rec["rater"]:
            raise DatasetError(f"{path} line {reader.line_num}: empty outfit_id or rater; {fix}")
        rows.append(rec)
    return rows


def current_states(rows: list[dict[str, str]]) -> dict[tuple[str, str], str]:
    """(outfit_id, rater) -> positive / negative / skip after replaying every row (undo clears)."""
    state: dict[tuple[str, str], str] = {}
    for rec in rows:
        key = (rec["outfit_id"], rec["rater"])
        if rec["label"] == "undo":
            state.pop(key, None)
        else:
            state[key] = rec["label"]
    return state


__all__ = ["ACTIONS", "COLUMNS", "RATINGS_FILE", "VOTES", "append_vote", "current_states", "lock_for", "read_ratings"]
