"""Inputs and outputs of `neipalette predict`: (top, bottom) image pairs in, P(harmonious) and a label out.

The model itself is an MLflow pyfunc model loaded by the CLI (MLflow stays out of the library); this
module checks every image before the model sees any, and shapes the result.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from neipalette.errors import DatasetError
from neipalette.colour.imaging import decode_image, to_rgb

THRESHOLD = 0.5  # label = positive when P(harmonious) >= THRESHOLD, as in the benchmark's metrics
COLUMNS = ("top", "bottom", "p_harmonious", "label")


def read_pairs(path: Path) -> pd.DataFrame:
    """pairs.csv with columns top,bottom; relative paths are relative to the CSV's own folder."""
    path = Path(path)
    fix = "give it a header top,bottom and one pair of image paths per row"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"pairs file {path} not found; {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"pairs file {path} cannot be read as UTF-8 text ({exc}); {fix}") from None
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    if not rows:
        raise DatasetError(f"pairs file {path} is empty; {fix}")
    header = [c.strip().lower() for c in rows[0]]
    if "top" not in header or "bottom" not in header:
        raise DatasetError(f"pairs file {path} has columns {','.join(header)}; {fix}")
    t, b = header.index("top"), header.index("bottom")
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) <= max(t, b) or not row[t].strip() or not row[b].strip():
            raise DatasetError(f"pairs file {path} line {line}: needs a top and a bottom path; {fix}")
        pairs.append([str(_resolve(path.parent, row[t].strip())), str(_resolve(path.parent, row[b].strip()))])
    if not pairs:
        raise DatasetError(f"pairs file {path} has a header but no pairs; {fix}")
    return pd.DataFrame(pairs, columns=["top", "bottom"])


def _resolve(base: Path, rel: str) -> Path:
    p = Path(rel).expanduser()
    return p if p.is_absolute() else base / p


def check_images(pairs: pd.DataFrame) -> None:
    """Every image exists and decodes to RGB; DatasetError naming the first that does not."""
    for column in ("top", "bottom"):
        for value in pairs[column]:
            path = Path(value)
            if not path.is_file():
                raise DatasetError(f"{column} image {path} not found; fix the path")
            img = decode_image(path, f"{column} image {path}", verify=True)
            try:
                to_rgb(img)
            except (ValueError, OSError) as exc:
                raise DatasetError(f"{column} image {path} cannot be converted to RGB ({exc}); save it as RGB") from None


def result_frame(pairs: pd.DataFrame, proba) -> pd.DataFrame:
    """top, bottom (absolute paths), p_harmonious and label per pair."""
    out = pd.DataFrame({column: [str(Path(p).absolute()) for p in pairs[column]] for column in ("top", "bottom")})
    out["p_harmonious"] = [float(p) for p in proba]
    out["label"] = ["positive" if p >= THRESHOLD else "negative" for p in out["p_harmonious"]]
    return out


def result_text(frame: pd.DataFrame) -> str:
    """A table whose columns line up: numbers right-aligned, label and paths left-aligned."""
    top_width = max([len("top"), *(len(t) for t in frame["top"])])
    lines = [f"{'p_harmonious':>12}  {'label':<8}  {'top':<{top_width}}  bottom"]
    lines += [f"{r.p_harmonious:12.4f}  {r.label:<8}  {r.top:<{top_width}}  {r.bottom}" for r in frame.itertuples()]
    return "\n".join(line.rstrip() for line in lines)


__all__ = ["COLUMNS", "THRESHOLD", "check_images", "read_pairs", "result_frame", "result_text"]
