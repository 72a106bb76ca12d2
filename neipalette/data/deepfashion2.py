"""Import a local DeepFashion2 split (`image/*.jpg` + `annos/*.json`) as an unlabelled outfit dataset.

For every photo with a top and a bottom, the largest box of each is cropped (clipped to the photo) into
`images/<stem>_top.jpg` and `images/<stem>_bottom.jpg`, and `outfits.csv` gets a row with an empty label.
Everything is written into a temporary sibling folder that is renamed into place at the end, so a failed
import leaves nothing half-written.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from neipalette.data.dataset import REQUIRED_COLUMNS
from neipalette.errors import DatasetError
from neipalette.imaging import decode_image, to_rgb

log = logging.getLogger(__name__)

TOPS = frozenset({1, 2, 5, 6})  # short/long sleeve top, vest, sling
OUTERWEAR = frozenset({3, 4})  # short/long sleeve outwear: tops only with include_outerwear
BOTTOMS = frozenset({7, 8, 9})  # shorts, trousers, skirt (10-13 are dresses: neither)
JPEG_QUALITY = 95

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Item:
    """One annotated garment: DeepFashion2 category and bounding box [x1, y1, x2, y2] in pixels."""

    category_id: int
    box: tuple[float, float, float, float]


@dataclass
class ImportReport:
    n_outfits: int = 0
    n_photos: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def skipped_text(self) -> str:
        """E.g. '3 photos (2 no bottom, 1 no top)', or 'none'."""
        if not self.skipped:
            return "none"
        parts = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
        return f"{sum(self.skipped.values())} photos ({parts})"


def import_deepfashion2(root: str | Path, out_dir: str | Path, *, include_outerwear: bool = False) -> int:
    """Write an unlabelled outfit dataset to `out_dir`; returns the number of outfits written."""
    return import_deepfashion2_report(root, out_dir, include_outerwear=include_outerwear).n_outfits


def import_deepfashion2_report(
    root: str | Path, out_dir: str | Path, *, include_outerwear: bool = False
) -> ImportReport:
    """Like `import_deepfashion2`, but returns how many photos were read and skipped (by reason)."""
    root, out_dir = Path(root), Path(out_dir)
    image_dir, anno_dir = _split_folders(root)
    _check_out_dir(out_dir)
    tops = TOPS | OUTERWEAR if include_outerwear else TOPS
    images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file()}
    annos = {p.stem: p for p in anno_dir.glob("*.json") if p.is_file()}
    if not annos:
        raise DatasetError(f"{anno_dir} holds no .json annotations; point --root at a DeepFashion2 split")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        report = _import_into(tmp, images, annos, tops)
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "imported %d outfits from %d photos in %s; skipped %s",
        report.n_outfits, report.n_photos, root, report.skipped_text(),
    )
    return report


def _split_folders(root: Path) -> tuple[Path, Path]:
    if not root.is_dir():
        raise DatasetError(f"DeepFashion2 folder {root} does not exist; pass a split folder (e.g. validation/)")
    for name in ("image", "annos"):
        if not (root / name).is_dir():
            raise DatasetError(
                f"{root} has no {name}/ folder; pass a DeepFashion2 split folder that holds image/ and annos/"
            )
    return root / "image", root / "annos"


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DatasetError(f"output {out_dir} already exists and is not an empty folder; pick a new --out folder")


def _publish(tmp: Path, out_dir: Path) -> None:
    _check_out_dir(out_dir)  # someone may have filled it meanwhile
    if out_dir.is_dir():
        out_dir.rmdir()
    tmp.rename(out_dir)


def _import_into(dest: Path, images: dict[str, Path], annos: dict[str, Path], tops: frozenset[int]) -> ImportReport:
    (dest / "images").mkdir()
    report = ImportReport()
    rows: list[list[str]] = []
    for stem in sorted(images.keys() | annos.keys()):
        report.n_photos += 1
        reason = _skip_reason(stem, images, annos)
        if reason is None:
            reason = _import_photo(dest, stem, images[stem], _read_items(annos[stem]), tops)
        if reason is None:
            rows.append([stem, f"images/{stem}_top.jpg", f"images/{stem}_bottom.jpg", ""])
        else:
            report.skipped[reason] += 1
            log.debug("skipped %s: %s", stem, reason)
    if not rows:
        raise DatasetError(
            f"none of {report.n_photos} photos has both a top and a bottom (skipped {report.skipped_text()}); "
            "pass a split with outfit photos, or --include-outerwear"
        )
    _write_csv(dest / "outfits.csv", rows)
    report.n_outfits = len(rows)
    return report


def _skip_reason(stem: str, images: dict[str, Path], annos: dict[str, Path]) -> str | None:
    if stem not in annos:
        return "no annotation"
    if stem not in images:
        return "no image"
    return None


def _read_items(path: Path) -> list[Item]:
    """The garments of one annotation file, in item order; DatasetError if the file is malformed."""
    fix = "re-extract the DeepFashion2 annotations or remove that file"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise DatasetError(f"{path} cannot be read as UTF-8 JSON ({exc}); {fix}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with item1, item2, ... keys; {fix}")
    keys = sorted((k for k in data if k.startswith("item") and k[4:].isdigit()), key=lambda k: int(k[4:]))
    return [_parse_item(path, key, data[key], fix) for key in keys]


def _parse_item(path: Path, key: str, value: object, fix: str) -> Item:
    try:
        category = value["category_id"]  # type: ignore[index]
        box = [float(v) for v in value["bounding_box"]]  # type: ignore[index]
        if isinstance(category, bool) or not isinstance(category, int) or len(box) != 4:
            raise ValueError
        if not all(math.isfinite(v) for v in box):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise DatasetError(
            f"{path}: {key} needs an integer category_id and bounding_box [x1, y1, x2, y2]; {fix}"
        ) from None
    return Item(category_id=category, box=(box[0], box[1], box[2], box[3]))


def _clip(box: tuple[float, float, float, float], width: int, height: int) -> Box | None:
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
    right, bottom = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    return (left, top, right, bottom) if right > left and bottom > top else None


def _largest(items: list[Item], categories: frozenset[int], width: int, height: int) -> Box | None:
    boxes = [b for it in items if it.category_id in categories and (b := _clip(it.box, width, height))]
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), default=None)


def _garment_reason(items: list[Item], tops: frozenset[int]) -> str | None:
    has_top = any(it.category_id in tops for it in items)
    has_bottom = any(it.category_id in BOTTOMS for it in items)
    if not has_top and not has_bottom:
        return "no top or bottom"
    if not has_top:
        return "no top"
    if not has_bottom:
        return "no bottom"
    return None


def _import_photo(dest: Path, stem: str, image: Path, items: list[Item], tops: frozenset[int]) -> str | None:
    """Crop and save the top and bottom of one photo; returns why it was skipped, or None."""
    reason = _garment_reason(items, tops)
    if reason is not None:
        return reason
    try:
        photo = decode_image(image, f"image {image}", verify=False)
    except DatasetError as exc:
        log.warning("skipping %s", exc)
        return "unreadable image"
    top = _largest(items, tops, *photo.size)
    bottom = _largest(items, BOTTOMS, *photo.size)
    if top is None or bottom is None:
        return "box outside the photo"
    for part, box in (("top", top), ("bottom", bottom)):
        crop = to_rgb(photo.crop(box), upright=False)  # boxes are in the stored pixel grid
        crop.save(dest / "images" / f"{stem}_{part}.jpg", "JPEG", quality=JPEG_QUALITY)
    return None


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(REQUIRED_COLUMNS)
        writer.writerows(rows)


__all__ = ["ImportReport", "import_deepfashion2", "import_deepfashion2_report"]
