"""ratings.csv under concurrent writers (issue 25.1): no acknowledged vote lost, no row removed, no torn file."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from neipalette.data.ratings import append_vote, current_states, read_ratings

WRITERS, VOTES_EACH = 8, 300


def _write(path: str, writer: int, round_: int, acked) -> None:
    for k in range(VOTES_EACH):
        append_vote(Path(path), f"o{round_}-{writer}-{k}", f"r{writer}", "positive" if k % 2 else "negative")
        acked.put(1)  # acknowledged: append_vote returned


def _read(path: str, stop, out) -> None:
    """A reader beside the writers (the label page, `aggregate`): every read parses, rows only grow."""
    seen, reads = 0, 0
    try:
        while not stop.is_set():
            if Path(path).exists():
                rows = len(read_ratings(Path(path)))
                assert rows >= seen, (rows, seen)
                seen, reads = rows, reads + 1
        out.put(("ok", reads))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        out.put(("error", repr(exc)))


def test_eight_writers_and_a_reader_lose_nothing(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    path = tmp_path / "ratings.csv"
    t0 = time.monotonic()
    for round_ in range(2):  # the second round appends to a file that already holds the first
        if round_:  # a tool that drops the final newline edited it in between: that row stays
            path.write_bytes(path.read_bytes().rstrip(b"\n"))
        acked, stop, out = ctx.Queue(), ctx.Event(), ctx.Queue()
        reader = ctx.Process(target=_read, args=(str(path), stop, out))
        reader.start()
        writers = [ctx.Process(target=_write, args=(str(path), w, round_, acked)) for w in range(WRITERS)]
        for p in writers:
            p.start()
        for p in writers:
            p.join(timeout=120)
            assert p.exitcode == 0
        stop.set()
        status, detail = out.get(timeout=60)
        reader.join(timeout=60)
        assert status == "ok", detail
        n_acked = sum(acked.get(timeout=10) for _ in range(WRITERS * VOTES_EACH))
        raw = path.read_bytes()
        assert b"\0" not in raw and raw.endswith(b"\n")
        rows = read_ratings(path)
        keys = [(r["outfit_id"], r["rater"]) for r in rows]
        assert len(keys) == len(set(keys)) == (round_ + 1) * WRITERS * VOTES_EACH
        assert n_acked == WRITERS * VOTES_EACH
        assert set(current_states(rows)) >= {(f"o{round_}-{w}-{k}", f"r{w}")
                                             for w in range(WRITERS) for k in range(VOTES_EACH)}
    print(f"{2 * WRITERS * VOTES_EACH} appends by {WRITERS} processes beside a reader in {time.monotonic() - t0:.1f} s")


def test_a_complete_last_row_without_newline_is_kept_and_a_torn_one_cut(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    append_vote(path, "o1", "ann", "positive")
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # saved by an editor without the final newline
    assert len(read_ratings(path)) == 1  # it counts for readers too
    append_vote(path, "o2", "ann", "negative")
    assert [r["outfit_id"] for r in read_ratings(path)] == ["o1", "o2"]
    with open(path, "ab") as fh:
        fh.write(b"o3,ann,positive,2026-12-0")  # a crash mid-row: not a complete row (the time is cut)
    assert len(read_ratings(path)) == 2
    append_vote(path, "o4", "bob", "skip")
    assert [r["outfit_id"] for r in read_ratings(path)] == ["o1", "o2", "o4"]
    with open(path, "ab") as fh:
        fh.write(b"o5,ann,positive,2026-12-05T10:00:00.000+00:00" + b"\xc3")  # a torn UTF-8 character
    assert len(read_ratings(path)) == 3  # ignored, not an unreadable file
    append_vote(path, "o6", "bob", "undo")
    assert path.read_text().count("\n") == 5 and [r["outfit_id"] for r in read_ratings(path)][-1] == "o6"


def test_header_only_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("outfit_id,rater,label,time")
    assert read_ratings(path) == []
    append_vote(path, "o1", "ann", "positive")
    assert path.read_text().startswith("outfit_id,rater,label,time\no1,ann,positive,")


if __name__ == "__main__":
    pytest.main([__file__, "-q", "-s"])
