"""Errors shown to users as one line (a leaf module: imports nothing from neipalette)."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset problem, reported to users as one line (any newline in the message is flattened)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
