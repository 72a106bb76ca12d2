"""ratings.csv: one row per vote of the labelling page (`outfit_id,rater,label,time`), appended and fsync'd.

`label` is one of positive, negative, skip or undo. A rater's current state for an outfit is found by
replaying their rows in file order: positive/negative/skip set it, undo clears it (the outfit is unlabelled
again for that rater). Rows are never rewritten, so the file is the full history. A crash can at worst
leave a last line without its newline; readers ignore such a torn line and the next append cuts it.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from neipalette.errors import DatasetError

log = logging.getLogger(__name__)

RATINGS_FILE = "ratings.csv"
COLUMNS = ("outfit_id", "rater", "label", "time")
VOTES = ("positive", "negative")
ACTIONS = (*VOTES, "skip", "undo")


def _line(values: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode("utf-8")


def append_vote(path: Path, outfit_id: str, rater: str, label: str, when: datetime | None = None) -> str:
    """Append one row and fsync it before returning; returns the time written (UTC, ISO 8601)."""
    if label not in ACTIONS:
        raise ValueError(f"label must be one of {ACTIONS}, got {label!r}")
    stamp = (when or datetime.now(UTC)).isoformat(timespec="milliseconds")
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = _line([outfit_id, rater, label, stamp])
        _drop_torn_tail(path, fd)
        if os.fstat(fd).st_size == 0:
            data = _line(list(COLUMNS)) + data
        os.write(fd, data)  # one write with O_APPEND: the row lands whole after the current end
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)
    return stamp


def _drop_torn_tail(path: Path, fd: int) -> None:
    """Cut a last line without its newline (a crash mid-write; that vote was never acknowledged)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 4096))
        tail = fh.read()
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    keep = size - len(tail) + cut + 1 if cut >= 0 else 0
    log.warning("%s: dropping a torn last line %r (written during a crash)", path, tail[cut + 1:])
    os.ftruncate(fd, keep)


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
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} cannot be read as UTF-8 text ({exc}); restore it from a backup") from None
    if text and not text.endswith("\n"):
        torn = text.rsplit("\n", 1)
        log.warning("%s: ignoring a torn last line %r (written during a crash)", path, torn[-1])
        text = torn[0] + "\n" if len(torn) == 2 else ""
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


__all__ = ["ACTIONS", "COLUMNS", "RATINGS_FILE", "VOTES", "append_vote", "current_states", "read_ratings"]
