"""Errors shown to users as one line, and the one place a command line turns any exception into that line.

A leaf module: imports nothing from neipalette. `error_boundary` is every CLI's top-level error boundary (it calls
`describe_failure`); the benchmark adds its own classifiers (tracking store, server) through `classifiers`.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from typing import Callable, Iterable, Iterator

USAGE = 2  # exit status of a known failure: the message says what to fix
BUG = 1  # exit status of anything else: one line, the traceback only with --debug
DEBUG_HINT = "run with --debug for the traceback"


class DatasetError(ValueError):
    """A dataset problem, reported to users as one line (any newline in the message is flattened)."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class UserError(ValueError):
    """Any other problem the user can fix (weights file, store, cache, lease): one line, exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def one_line(message: object, limit: int = 1000) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it was raised from or while handling (each once)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def describe_os_error(exc: BaseException) -> str | None:
    """Disk full, read-only or permission denied anywhere in the chain: what and how to fix, else None."""
    for e in causes(exc):
        text = str(e).lower()
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "database or disk is full" in text:
            where = f" writing {e.filename}" if isinstance(e, OSError) and e.filename else ""
            return (f"disk full{where}; free space on that file system (or move the store, cache or output "
                    "elsewhere), then rerun — a benchmark continues with --resume")
        if isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR):
            what = e.filename or "a file"
            reason = {errno.EROFS: "read-only file system", errno.ENOTDIR: "a file is in the way of a folder"}.get(
                e.errno, "permission denied")
            return f"cannot write {what} ({reason}); make it writable or choose a writable location"
    return None


def describe_failure(exc: BaseException,
                     classifiers: Iterable[Callable[[BaseException], str | None]] = ()) -> tuple[str, int]:
    """(one line, exit status) for an exception that reached a command line's top level."""
    for e in causes(exc):
        if isinstance(e, (DatasetError, UserError)):
            return str(e), USAGE
    for classify in (*classifiers, describe_os_error):
        message = classify(exc)
        if message:
            return one_line(message), USAGE
    first = one_line(str(exc).splitlines()[0] if str(exc).strip() else "", 300)
    return f"{type(exc).__name__}{': ' + first if first else ''} (unexpected; {DEBUG_HINT})", BUG


@contextlib.contextmanager
def error_boundary(*, debug: bool = False, interrupted: str = "interrupted",
                   classifiers: Iterable[Callable[[BaseException], str | None]] = (),
                   passthrough: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """A command line's one error boundary: Ctrl+C prints `interrupted` and exits 130; any other exception is one
    line `error: ...` with `describe_failure`'s exit status, or its traceback with `debug`. `passthrough`
    exceptions (the CLI framework's own) go through untouched."""
    try:
        yield
    except passthrough:
        raise
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr, flush=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, no traceback
        if debug:
            raise
        message, code = describe_failure(exc, classifiers)
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(code)
