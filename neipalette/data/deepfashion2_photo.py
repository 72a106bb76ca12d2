"""One DeepFashion2 photo: its annotation file read and checked, the top and bottom that form its outfit,
and their masked crops. The importer (`neipalette.data.deepfashion2`) walks a split through these.

The annotation format is DeepFashion2's own (github.com/switchablenorms/DeepFashion2, "Data Organization"):
one JSON object per photo with image-level `source` ('shop'/'user') and `pair_id`, and `item1`, `item2`, ...
each with `category_id`, `bounding_box` [x1, y1, x2, y2], `segmentation` (a list of polygons
[x1, y1, ..., xn, yn]), `occlusion` (1 slight, 2 medium, 3 heavy) and `viewpoint` (1 not worn, 2 frontal,
3 side or back); other keys (landmarks, style, scale, zoom_in, category_name) are ignored.

An outfit is one top and one bottom that plausibly belong to one person: the bottom's box lies below the
top's (its vertical centre lower, its upper edge not above the top's) and the two boxes overlap horizontally
by at least `min_overlap` of the narrower one. A photo with no such pair, or with more than one (two people,
two candidate tops), is skipped with a counted reason. Each crop keeps only its garment's pixels (the union
of its segmentation polygons); everything else in the crop is painted FILL_RGB, a neutral mid grey, so
colour extraction sees one garment.

Where the top's and the bottom's polygons overlap (a shirt hanging over a waistband, a top partly hidden by
a skirt's bib), the overlap belongs to the garment in front. DeepFashion2 does not store depth order; each
item's `occlusion` says how much of it is hidden (1 slight or none, 2 medium, 3 heavy), so the garment with
the lower occlusion value is taken to be in front and keeps the overlap, and the partner's polygons are
subtracted from the other's mask. With equal (or missing) values neither is known to be in front, and the
overlap is subtracted from both masks: no crop holds its partner's pixels.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from neipalette.errors import DatasetError
from neipalette.colour.imaging import to_rgb

TOPS = frozenset({1, 2, 5, 6})  # short/long sleeve top, vest, sling
OUTERWEAR = frozenset({3, 4})  # short/long sleeve outwear: tops only with include_outerwear
BOTTOMS = frozenset({7, 8, 9})  # shorts, trousers, skirt (10-13 are dresses: neither)
VIEWPOINTS = {"worn": frozenset({2, 3}), "not-worn": frozenset({1}), "any": frozenset({1, 2, 3})}
FILL_RGB = (128, 128, 128)  # neutral mid grey outside the garment's segmentation

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ImportOptions:
    """Which garments count. Defaults: worn garments, up to medium occlusion, crops at least 32 px a side."""

    include_outerwear: bool = False
    max_occlusion: int = 2  # 1 slight, 2 medium, 3 heavy (DeepFashion2's scale)
    viewpoint: str = "worn"  # worn (frontal, side/back), not-worn (shop flat shots) or any
    min_crop: int = 32  # shorter side of a clipped box, in pixels
    min_overlap: float = 0.5  # horizontal box overlap, as a fraction of the narrower box
    strict: bool = False  # stop at the first unreadable annotation or image instead of skipping it

    def __post_init__(self) -> None:
        if self.viewpoint not in VIEWPOINTS:
            raise ValueError(f"viewpoint must be one of {sorted(VIEWPOINTS)}, got {self.viewpoint!r}")
        if self.max_occlusion not in (1, 2, 3):
            raise ValueError(f"max_occlusion must be 1, 2 or 3, got {self.max_occlusion}")
        if self.min_crop < 1 or not 0.0 < self.min_overlap <= 1.0:
            raise ValueError("min_crop must be >= 1 and min_overlap in (0, 1]")


@dataclass(frozen=True)
class Item:
    """One annotated garment: category, box [x1, y1, x2, y2] and segmentation polygons in pixels."""

    category_id: int
    box: tuple[float, float, float, float]
    polygons: tuple[tuple[float, ...], ...] = ()
    occlusion: int | None = None
    viewpoint: int | None = None


@dataclass(frozen=True)
class Photo:
    """One annotation file: its garments and the image-level source and pair_id."""

    items: tuple[Item, ...]
    source: str = ""
    pair_id: str = ""


# ------------------------------------------------------------------------------------------- annotations


def read_photo(path: Path) -> Photo:
    """The garments of one annotation file, in item order; DatasetError (one line) if the file is unusable."""
    fix = "re-extract the DeepFashion2 annotations or remove that file"
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # -sig: tolerate a UTF-8 BOM
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise DatasetError(f"{path} cannot be read as UTF-8 JSON ({exc}); {fix}") from None
    except RecursionError:  # e.g. 200,000 nested brackets: Python's JSON parser recurses once per level
        raise DatasetError(f"{path}: JSON nested too deeply to parse (not a DeepFashion2 annotation); {fix}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with item1, item2, ... keys; {fix}")
    keys = sorted((k for k in data if k.startswith("item") and k[4:].isdigit()), key=lambda k: int(k[4:]))
    items = tuple(_parse_item(path, key, data[key], fix) for key in keys)
    pair_id = data.get("pair_id")
    return Photo(items=items, source=str(data.get("source", "") or ""),
                 pair_id="" if pair_id is None or isinstance(pair_id, (dict, list)) else str(pair_id))


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
    polygons = _parse_polygons(path, key, value.get("segmentation", []), fix)  # type: ignore[attr-defined]
    return Item(category_id=category, box=(box[0], box[1], box[2], box[3]), polygons=polygons,
                occlusion=_level(value.get("occlusion")), viewpoint=_level(value.get("viewpoint")))  # type: ignore[attr-defined]


def _parse_polygons(path: Path, key: str, seg: object, fix: str) -> tuple[tuple[float, ...], ...]:
    problem = f"{path}: {key} segmentation must be a list of polygons [x1, y1, ..., xn, yn]; {fix}"
    if not isinstance(seg, list):
        raise DatasetError(problem)
    polygons = []
    for poly in seg:
        try:
            coords = tuple(float(v) for v in poly)
        except (TypeError, ValueError):
            raise DatasetError(problem) from None
        if len(coords) % 2 or not all(math.isfinite(v) for v in coords):
            raise DatasetError(problem)
        if len(coords) >= 6:  # fewer than three points cover no pixels
            polygons.append(coords)
    return tuple(polygons)


def _level(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ------------------------------------------------------------------------------------------------ pairing


def _clip(box: tuple[float, float, float, float], width: int, height: int) -> Box | None:
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
    right, bottom = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    return (left, top, right, bottom) if right > left and bottom > top else None


def one_person(top: Box, bottom: Box, min_overlap: float) -> bool:
    """The bottom lies below the top and the boxes overlap horizontally: plausibly one person's outfit."""
    overlap = min(top[2], bottom[2]) - max(top[0], bottom[0])
    narrower = min(top[2] - top[0], bottom[2] - bottom[0])
    below = (bottom[1] + bottom[3]) > (top[1] + top[3]) and bottom[1] >= top[1]
    return below and overlap >= min_overlap * narrower


def category_reason(items: tuple[Item, ...], tops: frozenset[int]) -> str | None:
    has_top = any(it.category_id in tops for it in items)
    has_bottom = any(it.category_id in BOTTOMS for it in items)
    if not has_top and not has_bottom:
        return "no top or bottom"
    if not has_top:
        return "no top"
    if not has_bottom:
        return "no bottom"
    return None


def _complete(items: list[Item], tops: frozenset[int]) -> bool:
    return any(it.category_id in tops for it in items) and any(it.category_id in BOTTOMS for it in items)


def select_garments(photo: Photo, tops: frozenset[int], options: ImportOptions) -> tuple[list[Item], str | None]:
    """The tops and bottoms that pass viewpoint and occlusion, or why the photo has none left."""
    items = [it for it in photo.items if it.category_id in tops | BOTTOMS]
    views = VIEWPOINTS[options.viewpoint]
    items = [it for it in items if it.viewpoint is None or it.viewpoint in views]
    if not _complete(items, tops):
        return items, f"viewpoint not {options.viewpoint}"
    items = [it for it in items if it.occlusion is None or it.occlusion <= options.max_occlusion]
    if not _complete(items, tops):
        return items, f"occlusion above {options.max_occlusion}"
    return items, None


def pick_pair(
    items: list[Item], tops: frozenset[int], size: tuple[int, int], options: ImportOptions
) -> tuple[tuple[Item, Box, Item, Box] | None, str | None]:
    clipped = [(it, b) for it in items if (b := _clip(it.box, *size))]
    if not _complete([it for it, _ in clipped], tops):
        return None, "box outside the photo"
    clipped = [(it, b) for it, b in clipped if min(b[2] - b[0], b[3] - b[1]) >= options.min_crop]
    if not _complete([it for it, _ in clipped], tops):
        return None, f"crop under {options.min_crop} px"
    pairs = [(t, tb, b, bb) for t, tb in clipped if t.category_id in tops
             for b, bb in clipped if b.category_id in BOTTOMS and one_person(tb, bb, options.min_overlap)]
    if not pairs:
        return None, "no one-person top/bottom pair"
    if len(pairs) > 1:
        return None, "ambiguous: several top/bottom pairs"
    return pairs[0], None


# --------------------------------------------------------------------------------------------- cropping


def in_front(item: Item, partner: Item) -> bool:
    """`item` is in front of `partner` where they overlap: it is the less occluded of the two."""
    return item.occlusion is not None and partner.occlusion is not None and item.occlusion < partner.occlusion


def garment_crop(photo: Image.Image, item: Item, box: Box, partner: Item | None = None) -> Image.Image | None:
    """The box's pixels where the item's segmentation covers them, FILL_RGB elsewhere; None if it covers none.

    With a `partner` garment that is not behind `item` (see `in_front`), the partner's polygons are taken out
    of the mask: where they overlap, those pixels show the partner, or are not known to show `item`."""
    mask = Image.new("L", photo.size, 0)
    draw = ImageDraw.Draw(mask)
    for poly in item.polygons:
        draw.polygon(list(zip(poly[0::2], poly[1::2])), fill=255)
    if partner is not None and not in_front(item, partner):
        for poly in partner.polygons:
            draw.polygon(list(zip(poly[0::2], poly[1::2])), fill=0)
    mask = mask.crop(box)
    if mask.getbbox() is None:
        return None
    crop = to_rgb(photo.crop(box), upright=False)  # boxes and polygons are in the stored pixel grid
    return Image.composite(crop, Image.new("RGB", crop.size, FILL_RGB), mask)


__all__ = ["BOTTOMS", "FILL_RGB", "OUTERWEAR", "TOPS", "VIEWPOINTS", "Box", "ImportOptions", "Item", "Photo",
           "category_reason", "garment_crop", "in_front", "one_person", "pick_pair", "read_photo", "select_garments"]
