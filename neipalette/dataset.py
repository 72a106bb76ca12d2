"""The dataset format (outfits.csv + images, optional truth.csv): loading and validation.

Every problem is a `DatasetError` whose message is one line naming the problem and the fix.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("outfit_id", "top", "bottom", "label")
LABEL_VALUES = {"positive": 1, "negative": 0, "1": 1, "0": 0}
UNLABELLED = {"", "nan", "none", "?"}
MAX_PIXELS = 40_000_000  # far above any garment photo; a header claiming more is a decompression bomb


class DatasetError(ValueError):
    """A dataset problem, reported to users as one line."""


@dataclass(frozen=True)
class Outfit:
    outfit_id: str
    top: Path
    bottom: Path
    label: int | None  # 1 positive, 0 negative, None not yet labelled


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    size: tuple[int, int]
    mode: str


@dataclass(frozen=True)
class Dataset:
    root: Path
    outfits: tuple[Outfit, ...]
    truth: pd.DataFrame | None = None  # indexed by outfit_id; column p_positive
    images: tuple[ImageInfo, ...] = field(default=(), repr=False)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def labels(self) -> np.ndarray:
        return np.array([o.label for o in self.outfits], dtype=np.int64)

    @property
    def outfit_ids(self) -> list[str]:
        return [o.outfit_id for o in self.outfits]

    @property
    def p_positive(self) -> np.ndarray | None:
        """P(positive | colours) per outfit from truth.csv, aligned with `outfits`; None without truth."""
        if self.truth is None:
            return None
        return self.truth.loc[self.outfit_ids, "p_positive"].to_numpy(dtype=np.float64)

    def content_hash(self) -> str:
        return dataset_content_hash(self.root)


def _fail(message: str) -> DatasetError:
    return DatasetError(message)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (memoised on path, size and mtime)."""
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=65536)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dataset_content_hash(root: Path) -> str:
    """Hash of outfits.csv, truth.csv and every image it names: changes when any byte changes."""
    root = Path(root)
    h = hashlib.sha256()
    for name in ("outfits.csv", "truth.csv"):
        if (root / name).exists():
            h.update(name.encode())
            h.update(file_digest(root / name).encode())
    frame = pd.read_csv(root / "outfits.csv", dtype=str, keep_default_na=False)
    for rel in sorted(set(frame["top"]) | set(frame["bottom"])):
        h.update(rel.encode())
        h.update(file_digest(root / rel).encode())
    return h.hexdigest()[:16]


def load_rgb(path: Path) -> Image.Image:
    """Open an image as 8-bit RGB: grayscale, palette, RGBA (over white) and 16-bit are converted."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(path)
        if img.width * img.height > MAX_PIXELS:
            raise _fail(
                f"{path.name}: header claims {img.width}x{img.height} pixels (over {MAX_PIXELS:,}); "
                "replace it with a real photo of normal size"
            )
        img.load()
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("RGB")


def _check_image(root: Path, rel: str, row: int, column: str) -> ImageInfo:
    where = f"outfits.csv row {row} ({column})"
    if not rel:
        raise _fail(f"{where}: empty image path; fill in a path relative to {root}")
    candidate = Path(rel)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise _fail(f"{where}: path '{rel}' escapes the dataset folder; use a path inside {root} without '..'")
    path = (root / candidate).resolve()
    if not path.is_relative_to(root.resolve()):
        raise _fail(f"{where}: path '{rel}' escapes the dataset folder; use a path inside {root}")
    if not path.is_file():
        raise _fail(f"{where}: image '{rel}' not found; add the file or fix the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                size, mode = img.size, img.mode
                if size[0] * size[1] > MAX_PIXELS:
                    raise _fail(
                        f"{where}: image '{rel}' claims {size[0]}x{size[1]} pixels (over {MAX_PIXELS:,}), "
                        "a decompression bomb; replace it with a normal-size image"
                    )
                img.load()
    except DatasetError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _fail(f"{where}: image '{rel}' claims an absurd pixel count (decompression bomb); replace it") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise _fail(f"{where}: image '{rel}' is corrupt or truncated ({exc}); re-export or replace it") from None
    return ImageInfo(path=path, size=size, mode=mode)


def _parse_label(value: str, row: int, *, require_labels: bool) -> int | None:
    text = value.strip().lower()
    if text in LABEL_VALUES:
        return LABEL_VALUES[text]
    if text in UNLABELLED:
        if require_labels:
            raise _fail(
                f"outfits.csv row {row}: outfit is unlabelled; "
                "fill the label column with positive or negative for every outfit"
            )
        return None
    raise _fail(f"outfits.csv row {row}: label '{value}' is not positive/negative/1/0; fix that cell")


def _read_csv(root: Path) -> pd.DataFrame:
    csv = root / "outfits.csv"
    if not root.is_dir():
        raise _fail(f"dataset folder {root} does not exist; pass a folder that holds outfits.csv")
    if not csv.is_file():
        raise _fail(f"{csv} not found; a dataset folder needs outfits.csv with columns {','.join(REQUIRED_COLUMNS)}")
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise _fail(f"{csv} is empty; write the header {','.join(REQUIRED_COLUMNS)} and one row per outfit") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise _fail(f"{csv} is not a readable CSV ({exc}); save it as UTF-8 CSV") from None
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise _fail(f"{csv} lacks column(s) {', '.join(missing)}; the header must be {','.join(REQUIRED_COLUMNS)}")
    if frame.empty:
        raise _fail(f"{csv} has a header but no outfits; add one row per outfit")
    return frame


def _read_truth(root: Path, ids: list[str]) -> pd.DataFrame | None:
    path = root / "truth.csv"
    if not path.is_file():
        return None
    truth = pd.read_csv(path, dtype={"outfit_id": str})
    if "outfit_id" not in truth.columns or "p_positive" not in truth.columns:
        raise _fail(f"{path} needs columns outfit_id and p_positive; fix it or delete truth.csv")
    truth = truth.set_index("outfit_id")
    absent = sorted(set(ids) - set(truth.index))
    if absent:
        raise _fail(f"{path} has no row for outfit '{absent[0]}'; regenerate truth.csv or delete it")
    return truth


def load_dataset(
    root: str | Path,
    *,
    min_per_class: int | None = None,
    require_labels: bool = True,
    check_images: bool = True,
) -> Dataset:
    """Read and validate a dataset folder; raises DatasetError (one line) on the first problem.

    `min_per_class`: the number of folds a protocol will need (each class needs that many outfits).
    """
    root = Path(root)
    frame = _read_csv(root)
    outfits: list[Outfit] = []
    images: list[ImageInfo] = []
    seen: set[str] = set()
    for i, rec in enumerate(frame.to_dict("records"), start=2):  # row 1 is the header
        oid = str(rec["outfit_id"]).strip()
        if not oid:
            raise _fail(f"outfits.csv row {i}: empty outfit_id; give every outfit a unique id")
        if oid in seen:
            raise _fail(f"outfits.csv row {i}: duplicate outfit_id '{oid}'; make outfit ids unique")
        seen.add(oid)
        label = _parse_label(str(rec["label"]), i, require_labels=require_labels)
        paths = []
        for column in ("top", "bottom"):
            rel = str(rec[column]).strip()
            if check_images:
                info = _check_image(root, rel, i, column)
                images.append(info)
                paths.append(info.path)
            else:
                paths.append((root / rel).resolve())
        outfits.append(Outfit(outfit_id=oid, top=paths[0], bottom=paths[1], label=label))

    labelled = [o.label for o in outfits if o.label is not None]
    counts = {c: labelled.count(c) for c in (0, 1)}
    if require_labels and min(counts.values()) == 0:
        only = "positive" if counts[1] else "negative"
        raise _fail(f"all {len(labelled)} outfits are {only}; a classifier needs both positive and negative outfits")
    if min_per_class is not None and labelled and min(counts.values()) < min_per_class:
        small = "positive" if counts[1] < counts[0] else "negative"
        raise _fail(
            f"only {min(counts.values())} {small} outfits but {min_per_class} folds were requested; "
            f"lower n_splits to at most {min(counts.values())} or add outfits"
        )
    truth = _read_truth(root, [o.outfit_id for o in outfits])
    log.debug("loaded %d outfits from %s", len(outfits), root)
    return Dataset(root=root.resolve(), outfits=tuple(outfits), truth=truth, images=tuple(images))
