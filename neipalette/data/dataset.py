"""The dataset format (outfits.csv + images, optional truth.csv): loading and validation.

Every problem is a `DatasetError` whose message is one line naming the problem and the fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd

from neipalette.errors import DatasetError
from neipalette.colour.imaging import decode_image, file_digest, to_rgb

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("outfit_id", "top", "bottom", "label")
LABEL_VALUES = {"positive": 1, "negative": 0, "1": 1, "0": 0}
UNLABELLED = {"", "nan", "none", "?"}


@dataclass(frozen=True)
class Outfit:
    outfit_id: str
    top: Path
    bottom: Path
    label: int | None  # 1 positive, 0 negative, None not yet labelled
    group: str | None = None  # outfits.csv `group`; None: the outfit is a group of its own

    @property
    def group_key(self) -> str:
        """What cross-validation keeps on one side of every split: the outfit's group, else the outfit."""
        return f"group:{self.group}" if self.group else f"outfit:{self.outfit_id}"


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
        """0/1 label per outfit; raises DatasetError while any outfit is unlabelled."""
        missing = [o.outfit_id for o in self.outfits if o.label is None]
        if missing:
            raise _fail(
                f"{len(missing)} outfits (e.g. '{missing[0]}') are unlabelled; "
                "fill the label column of outfits.csv with positive or negative"
            )
        return np.array([o.label for o in self.outfits], dtype=np.int64)

    @property
    def outfit_ids(self) -> list[str]:
        return [o.outfit_id for o in self.outfits]

    @property
    def has_groups(self) -> bool:
        """True when outfits.csv has a `group` column with at least one filled cell."""
        return any(o.group for o in self.outfits)

    @property
    def groups(self) -> np.ndarray:
        """Group key per outfit (aligned with `outfits`); an outfit without a group is its own group."""
        return np.array([o.group_key for o in self.outfits])

    @property
    def p_positive(self) -> np.ndarray | None:
        """P(positive | outfit) per outfit from truth.csv, aligned with `outfits`; None without truth."""
        if self.truth is None:
            return None
        return self.truth.loc[self.outfit_ids, "p_positive"].to_numpy(dtype=np.float64)

    def content_hash(self) -> str:
        return dataset_content_hash(self.root)


def _fail(message: str) -> DatasetError:
    return DatasetError(message)


# ----------------------------------------------------------------------------------------------- hashing


def dataset_content_hash(root: Path) -> str:
    """Hash of outfits.csv, truth.csv and every image it names: changes when any byte changes."""
    root = Path(root)
    h = hashlib.sha256()
    for name in ("outfits.csv", "truth.csv"):
        if (root / name).exists():
            h.update(name.encode())
            h.update(file_digest(root / name).encode())
    rows = [rec for _, rec in _read_rows(root)]
    for rel in sorted({r["top"] for r in rows} | {r["bottom"] for r in rows}):
        h.update(rel.encode())
        h.update(file_digest(root / rel.replace("\\", "/")).encode())
    return h.hexdigest()[:16]


def _resolve_image(root: Path, rel: str, where: str) -> Path:
    if not rel:
        raise _fail(f"{where}: empty image path; fill in a path relative to the dataset folder {root}")
    posix = rel.replace("\\", "/")
    if PureWindowsPath(rel).anchor or Path(posix).is_absolute():
        raise _fail(f"{where}: path '{rel}' is absolute; use a path relative to the dataset folder {root}")
    if ".." in Path(posix).parts:
        raise _fail(f"{where}: path '{rel}' escapes the dataset folder; use a path inside {root} without '..'")
    path = (root / posix).resolve()
    if not path.is_relative_to(root.resolve()):
        raise _fail(
            f"{where}: path '{rel}' resolves outside the dataset folder (a symlink?); copy the image into {root}"
        )
    if not path.is_file():
        raise _fail(f"{where}: image '{rel}' not found; add the file or fix the path")
    return path


def _check_image(path: Path, rel: str, where: str) -> ImageInfo:
    what = f"{where}: image '{rel}'"
    img = decode_image(path, what, verify=True)
    try:
        to_rgb(img)
    except (ValueError, OSError) as exc:
        raise _fail(
            f"{what} has mode {img.mode} that cannot be converted to RGB ({exc}); save it as RGB"
        ) from None
    return ImageInfo(path=path, size=img.size, mode=img.mode)


# ---------------------------------------------------------------------------------------------- CSV files


def _parse_label(value: str, where: str, *, require_labels: bool) -> int | None:
    text = value.strip().lower()
    if text in LABEL_VALUES:
        return LABEL_VALUES[text]
    if text in UNLABELLED:
        if require_labels:
            raise _fail(
                f"{where}: outfit is unlabelled; fill the label column with positive or negative for every outfit"
            )
        return None
    raise _fail(f"{where}: label '{value}' is not positive/negative/1/0; fix that cell")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: Excel's UTF-8 files start with a BOM
    except UnicodeDecodeError:
        raise _fail(f"{path} is not UTF-8 text; save it as UTF-8 CSV") from None
    except OSError as exc:
        raise _fail(f"{path} cannot be read ({exc.strerror}); check its permissions") from None


def _read_rows(root: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, record) per outfit row of outfits.csv, with every required column present."""
    path = root / "outfits.csv"
    if not root.is_dir():
        raise _fail(f"dataset folder {root} does not exist; pass a folder that holds outfits.csv")
    if not path.is_file():
        raise _fail(f"{path} not found; a dataset folder needs outfits.csv with columns {','.join(REQUIRED_COLUMNS)}")
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise _fail(f"{path} is empty; write the header {','.join(REQUIRED_COLUMNS)} and one row per outfit")
        columns = [c.strip().lower() for c in header]
        twice = sorted({c for c in columns if c and columns.count(c) > 1})
        if twice:
            raise _fail(f"{path} names column(s) {', '.join(twice)} more than once; keep one column of each name")
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise _fail(
                f"{path} lacks column(s) {', '.join(missing)}; the header must be {','.join(REQUIRED_COLUMNS)}"
            )
        rows = [
            (reader.line_num, _record(path, reader.line_num, columns, row))
            for row in reader
            if any(cell.strip() for cell in row)
        ]
    except csv.Error as exc:
        raise _fail(f"{path} is not a readable CSV (line {reader.line_num}: {exc}); fix the quoting") from None
    if not rows:
        raise _fail(f"{path} has a header but no outfits; add one row per outfit")
    return rows


def outfits_table(root: Path) -> pd.DataFrame:
    """outfits.csv as a table of strings (columns lower-cased), read by the same parser and checks as
    `load_dataset` and `neipalette data check`: what one accepts, every reader of outfits.csv accepts."""
    rows = [record for _, record in _read_rows(Path(root))]
    return pd.DataFrame(rows, columns=list(rows[0]), dtype=str)


def _record(path: Path, line: int, columns: list[str], row: list[str]) -> dict[str, str]:
    extra = row[len(columns):]
    if any(cell.strip() for cell in extra):
        raise _fail(
            f"{path.name} line {line}: {len(row)} fields but the header has {len(columns)}; "
            "quote cells that contain commas or remove the extra fields"
        )
    cells = row + [""] * (len(columns) - len(row))
    return {name: cell.strip() for name, cell in zip(columns, cells)}


def _read_truth(root: Path, ids: list[str]) -> pd.DataFrame | None:
    path = root / "truth.csv"
    if not path.is_file():
        return None
    fix = "regenerate truth.csv or delete it (it is optional)"
    try:
        truth = pd.read_csv(io.StringIO(_read_text(path)), dtype={"outfit_id": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise _fail(f"{path} is not a readable CSV ({exc}); {fix}") from None
    if "outfit_id" not in truth.columns or "p_positive" not in truth.columns:
        raise _fail(f"{path} needs columns outfit_id and p_positive; {fix}")
    truth["outfit_id"] = truth["outfit_id"].astype(str).str.strip()
    if truth["outfit_id"].duplicated().any():
        dup = truth["outfit_id"][truth["outfit_id"].duplicated()].iloc[0]
        raise _fail(f"{path} has duplicate outfit_id '{dup}'; {fix}")
    p = pd.to_numeric(truth["p_positive"], errors="coerce")
    if p.isna().any() or (p < 0).any() or (p > 1).any():
        raise _fail(f"{path}: p_positive must be numbers between 0 and 1; {fix}")
    truth = truth.set_index("outfit_id")
    absent = [i for i in ids if i not in truth.index]
    if absent:
        raise _fail(f"{path} has no row for outfit '{absent[0]}'; {fix}")
    return truth


# ------------------------------------------------------------------------------------------------ loading


def _parse_outfit(
    root: Path, line: int, rec: dict[str, str], *, require_labels: bool, check: dict[Path, ImageInfo] | None
) -> Outfit:
    where = f"outfits.csv line {line}"
    label = _parse_label(rec["label"], where, require_labels=require_labels)
    paths = []
    for column in ("top", "bottom"):
        rel = rec[column]
        path = _resolve_image(root, rel, f"{where} ({column})")
        if check is not None and path not in check:
            check[path] = _check_image(path, rel, f"{where} ({column})")
        paths.append(path)
    return Outfit(outfit_id=rec["outfit_id"], top=paths[0], bottom=paths[1], label=label,
                  group=rec.get("group") or None)


def groups_per_class(outfits: tuple[Outfit, ...] | list[Outfit]) -> dict[int, int]:
    """{0: groups holding a negative outfit, 1: groups holding a positive one}; ungrouped outfits count alone."""
    return {c: len({o.group_key for o in outfits if o.label == c}) for c in (0, 1)}


def _check_classes(outfits: list[Outfit], min_per_class: int | None) -> None:
    labelled = [o.label for o in outfits if o.label is not None]
    counts = {c: labelled.count(c) for c in (0, 1)}
    names = {0: "negative", 1: "positive"}
    grouped = any(o.group for o in outfits)
    if grouped and min_per_class is not None and labelled:
        per_class = groups_per_class(outfits)
        small = min(per_class, key=lambda c: (per_class[c], c))
        n = per_class[small]
        if n < min_per_class:
            raise _fail(
                f"only {n} groups hold {names[small]} outfits but {min_per_class} folds were requested (grouped "
                f"folds keep each group on one side, and each fold needs one of each class); use at most {n} folds "
                f"or add {names[small]} outfits in new groups"
            )
    if labelled and len(labelled) == len(outfits) and min(counts.values()) == 0:
        only = 1 if counts[1] else 0
        raise _fail(
            f"all {len(labelled)} outfits are {names[only]}; a classifier needs both classes, "
            f"so add {names[1 - only]} outfits"
        )
    if min_per_class is not None and labelled and min(counts.values()) < min_per_class:
        small = 1 if counts[1] < counts[0] else 0
        n = counts[small]
        raise _fail(
            f"only {n} {names[small]} outfits but {min_per_class} folds were requested (each fold needs one of "
            f"each class); use at most {n} folds or add {names[small]} outfits"
        )


def load_dataset(
    root: str | Path,
    *,
    min_per_class: int | None = None,
    require_labels: bool = True,
    check_images: bool = True,
) -> Dataset:
    """Read and validate a dataset folder; raises DatasetError (one line) on the first problem. Writes nothing.

    `min_per_class`: the number of folds a protocol will need (each class needs that many outfits, or that
    many groups when outfits.csv has a `group` column).
    `require_labels=False` accepts unlabelled rows (label None), e.g. right after an import.
    `check_images=False` skips decoding the images (paths are still checked).
    """
    root = Path(root)
    checked: dict[Path, ImageInfo] | None = {} if check_images else None
    outfits: list[Outfit] = []
    seen: dict[str, int] = {}
    for line, rec in _read_rows(root):
        oid = rec["outfit_id"]
        if not oid:
            raise _fail(f"outfits.csv line {line}: empty outfit_id; give every outfit a unique id")
        if oid in seen:
            raise _fail(
                f"outfits.csv line {line}: duplicate outfit_id '{oid}' (first on line {seen[oid]}); "
                "make outfit ids unique"
            )
        seen[oid] = line
        outfits.append(_parse_outfit(root, line, rec, require_labels=require_labels, check=checked))
    _check_classes(outfits, min_per_class)
    truth = _read_truth(root, [o.outfit_id for o in outfits])
    log.debug("loaded %d outfits from %s", len(outfits), root)
    images = tuple(checked.values()) if checked is not None else ()
    return Dataset(root=root.resolve(), outfits=tuple(outfits), truth=truth, images=images)


# ------------------------------------------------------------------------------------------------ summary


def _size_text(sizes: list[tuple[int, int]]) -> str:
    unique = sorted(set(sizes))
    if len(unique) <= 3:
        return ", ".join(f"{w}x{h}" for w, h in unique)
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    return f"width {min(widths)}-{max(widths)}, height {min(heights)}-{max(heights)}"


def summarize(ds: Dataset) -> str:
    """A few lines for people: outfits per class, images (sizes, modes), whether truth.csv exists."""
    n_pos = sum(o.label == 1 for o in ds.outfits)
    n_neg = sum(o.label == 0 for o in ds.outfits)
    n_unl = sum(o.label is None for o in ds.outfits)
    paths = {p for o in ds.outfits for p in (o.top, o.bottom)}
    lines = [
        f"dataset:   {ds.root}",
        f"outfits:   {len(ds.outfits)} ({n_pos} positive, {n_neg} negative, {n_unl} unlabelled)",
    ]
    if ds.images:
        modes = Counter(info.mode for info in ds.images)
        mode_text = ", ".join(f"{mode} {count}" for mode, count in sorted(modes.items()))
        sizes = _size_text([info.size for info in ds.images])
        lines.append(f"images:    {len(paths)} checked; sizes {sizes}; modes {mode_text}")
    else:
        lines.append(f"images:    {len(paths)} (not decoded)")
    per_class = groups_per_class(ds.outfits)
    if ds.has_groups:
        n_groups = len({o.group_key for o in ds.outfits})
        lines.append(f"groups:    {n_groups} (group column; an outfit with an empty cell is its own group): "
                     f"{per_class[1]} hold positive, {per_class[0]} hold negative outfits; at most "
                     f"{min(per_class.values())} cv folds")
    else:
        lines.append(f"groups:    none (no group column): each outfit is its own group; {per_class[1]} positive, "
                     f"{per_class[0]} negative")
    truth = "yes (used only for the noise ceiling, never by models)" if ds.truth is not None else "no"
    lines.append(f"truth.csv: {truth}")
    return "\n".join(lines)
