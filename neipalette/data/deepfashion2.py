"""Import a local DeepFashion2 split (`image/*.jpg` + `annos/*.json`) as an unlabelled outfit dataset.

What one photo yields (its annotation read and checked, its one-person top and bottom, their masked crops)
is `neipalette.data.deepfashion2_photo`; this module walks the split, writes the crops, outfits.csv and
import-summary.json, and counts what it skipped.

Image-level `pair_id` becomes the `group` column (shop and street photos of the same items share it, so
grouped splits keep them together) and `source` its own column.

Unreadable annotation or image files are skipped and counted (or, with `strict`, stop the import); macOS
`._*` metadata files are skipped and counted always. Everything is written into a temporary sibling folder
(created with the process umask, like the files in it) that is renamed into place at the end, so a failed
import leaves nothing half-written. `import-summary.json` in the output lists the skipped photos by name and
reason, and which of them `--include-outerwear` would have kept.
"""

from __future__ import annotations

import csv
import json
import logging
import secrets
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from neipalette.data.dataset import REQUIRED_COLUMNS
from neipalette.data.deepfashion2_photo import (
    FILL_RGB, OUTERWEAR, TOPS, ImportOptions, category_reason, garment_crop, in_front, one_person, pick_pair,
    read_photo, select_garments,
)
from neipalette.errors import DatasetError
from neipalette.colour.imaging import decode_image

log = logging.getLogger(__name__)

JPEG_QUALITY = 95
COLUMNS = (*REQUIRED_COLUMNS, "group", "source")
APPLEDOUBLE = "macOS ._ metadata file"
SUMMARY_FILE = "import-summary.json"


@dataclass
class ImportReport:
    n_outfits: int = 0
    n_photos: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_names: dict[str, list[str]] = field(default_factory=dict)  # reason -> photo stems, sorted
    outerwear_would_keep: list[str] = field(default_factory=list)  # skipped now, kept with include_outerwear

    def skip(self, stem: str, reason: str) -> None:
        self.skipped[reason] += 1
        self.skipped_names.setdefault(reason, []).append(stem)

    def as_dict(self, options: ImportOptions) -> dict:
        """What import-summary.json holds."""
        return {"n_photos": self.n_photos, "n_outfits": self.n_outfits, "n_skipped": sum(self.skipped.values()),
                "skipped": {reason: self.skipped_names[reason] for reason, _ in self.skipped.most_common()},
                "outerwear_would_keep": self.outerwear_would_keep,
                "options": {"include_outerwear": options.include_outerwear, "max_occlusion": options.max_occlusion,
                            "viewpoint": options.viewpoint, "min_crop": options.min_crop,
                            "min_overlap": options.min_overlap}}

    def outerwear_text(self) -> str | None:
        """A hint naming the photos --include-outerwear would keep, or None."""
        names = self.outerwear_would_keep
        if not names:
            return None
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        return f"--include-outerwear would keep {len(names)} of the skipped photos ({shown})"

    def skipped_text(self) -> str:
        """E.g. '3 photos (2 no bottom, 1 no top)', or 'none'."""
        if not self.skipped:
            return "none"
        parts = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
        return f"{sum(self.skipped.values())} photos ({parts})"


def import_deepfashion2(root: str | Path, out_dir: str | Path, *, include_outerwear: bool = False) -> int:
    """Write an unlabelled outfit dataset to `out_dir`; returns the number of outfits written."""
    options = ImportOptions(include_outerwear=include_outerwear)
    return import_deepfashion2_report(root, out_dir, options=options).n_outfits


def import_deepfashion2_report(
    root: str | Path, out_dir: str | Path, *, options: ImportOptions | None = None
) -> ImportReport:
    """Like `import_deepfashion2`, but returns how many photos were read and skipped (by reason)."""
    options = options or ImportOptions()
    root, out_dir = Path(root), Path(out_dir)
    image_dir, anno_dir = _split_folders(root)
    _check_out_dir(out_dir)
    images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file()}
    annos = {p.stem: p for p in anno_dir.glob("*.json") if p.is_file()}
    if not annos:
        raise DatasetError(f"{anno_dir} holds no .json annotations; point --root at a DeepFashion2 split")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.{secrets.token_hex(6)}.partial"
    tmp.mkdir()  # mode 777 less the umask, as the user's other folders (mkdtemp would make it 700)
    try:
        report = _import_into(tmp, images, annos, options)
        (tmp / SUMMARY_FILE).write_text(json.dumps(report.as_dict(options), indent=2) + "\n", encoding="utf-8")
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


def _import_into(dest: Path, images: dict[str, Path], annos: dict[str, Path], options: ImportOptions) -> ImportReport:
    (dest / "images").mkdir()
    report = ImportReport()
    rows: list[list[str]] = []
    for stem in sorted(images.keys() | annos.keys()):
        report.n_photos += 1
        reason, row = _skip_reason(stem, images, annos), None
        if reason is None:
            reason, row = _import_photo(dest, stem, images[stem], annos[stem], options)
        if row is not None:
            rows.append(row)
        else:
            report.skip(stem, reason or "?")
            log.debug("skipped %s: %s", stem, reason)
            if reason not in (None, APPLEDOUBLE, "no annotation", "no image") and _outerwear_would_keep(
                    images[stem], annos[stem], options):
                report.outerwear_would_keep.append(stem)
    if not rows:
        raise DatasetError(
            f"none of {report.n_photos} photos has a one-person top and bottom (skipped {report.skipped_text()}); "
            "pass a split with outfit photos, or loosen --occlusion/--viewpoint/--min-crop"
        )
    _write_csv(dest / "outfits.csv", rows)
    report.n_outfits = len(rows)
    return report


def _skip_reason(stem: str, images: dict[str, Path], annos: dict[str, Path]) -> str | None:
    if stem.startswith("._"):
        return APPLEDOUBLE
    if stem not in annos:
        return "no annotation"
    if stem not in images:
        return "no image"
    return None


def _unreadable(reason: str, exc: DatasetError, options: ImportOptions) -> str:
    if options.strict:
        raise DatasetError(f"{exc} (--strict stops at the first unreadable file; drop --strict to skip it)")
    log.warning("skipping %s", exc)
    return reason


def _import_photo(
    dest: Path, stem: str, image: Path, anno: Path, options: ImportOptions
) -> tuple[str | None, list[str] | None]:
    """Crop and save the top and bottom of one photo; returns (why it was skipped, None) or (None, row)."""
    tops = TOPS | OUTERWEAR if options.include_outerwear else TOPS
    try:
        photo_anno = read_photo(anno)
    except DatasetError as exc:
        return _unreadable("unreadable annotation", exc, options), None
    reason = category_reason(photo_anno.items, tops)
    if reason is not None:
        return reason, None
    items, reason = select_garments(photo_anno, tops, options)
    if reason is not None:
        return reason, None
    try:
        photo = decode_image(image, f"image {image}", verify=False)
    except DatasetError as exc:
        return _unreadable("unreadable image", exc, options), None
    pair, reason = pick_pair(items, tops, photo.size, options)
    if pair is None:
        return reason, None
    top, top_box, bottom, bottom_box = pair
    crops = {}
    for part, item, box, partner in (("top", top, top_box, bottom), ("bottom", bottom, bottom_box, top)):
        crops[part] = garment_crop(photo, item, box, partner)
        if crops[part] is None:
            return "no segmentation inside the box", None
    for part, crop in crops.items():
        crop.save(dest / "images" / f"{stem}_{part}.jpg", "JPEG", quality=JPEG_QUALITY)
    group = f"pair{photo_anno.pair_id}" if photo_anno.pair_id else f"photo{stem}"
    return None, [stem, f"images/{stem}_top.jpg", f"images/{stem}_bottom.jpg", "", group, photo_anno.source]


def _outerwear_would_keep(image: Path, anno: Path, options: ImportOptions) -> bool:
    """Whether a photo skipped without outerwear has a one-person pair once outerwear counts as a top."""
    if options.include_outerwear:
        return False
    try:
        photo_anno = read_photo(anno)
    except DatasetError:
        return False
    if not any(it.category_id in OUTERWEAR for it in photo_anno.items):
        return False
    tops = TOPS | OUTERWEAR
    if category_reason(photo_anno.items, tops) is not None:
        return False
    items, reason = select_garments(photo_anno, tops, options)
    if reason is not None:
        return False
    try:
        with Image.open(image) as img:
            size = img.size  # the header is enough; the pixels were judged when the photo was read
    except (OSError, ValueError):
        return False
    pair, _ = pick_pair(items, tops, size, options)
    return pair is not None


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)


__all__ = ["FILL_RGB", "SUMMARY_FILE", "ImportOptions", "ImportReport", "garment_crop", "import_deepfashion2",
           "import_deepfashion2_report", "in_front", "one_person", "read_photo"]
