"""neipalette.data.deepfashion2 on a tree in DeepFashion2's documented annotation format.

The format (github.com/switchablenorms/DeepFashion2, README "Data Organization"; the keys read by its own
evaluation/deepfashion2_to_coco.py): image-level `source` and `pair_id`, then `item1`..`itemN`, each with
category_name, category_id, style, bounding_box [x1, y1, x2, y2], landmarks [x, y, v, ...], segmentation
[[x1, y1, ..., xn, yn], ...] (several polygons per item), scale, occlusion, zoom_in, viewpoint. The files
below put keys out of order, as JSON allows.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from neipalette.data.dataset import DatasetError, load_dataset
from neipalette.data.deepfashion2 import (
    FILL_RGB, ImportOptions, import_deepfashion2, import_deepfashion2_report, one_person,
)

RED, BLUE, GREEN, YELLOW, PINK = (220, 20, 20), (20, 20, 220), (20, 200, 20), (230, 230, 20), (240, 150, 190)
PARK = (90, 150, 60)  # the photos' background
NAMES = {1: "short sleeve top", 2: "long sleeve top", 7: "shorts", 8: "trousers", 9: "skirt",
         11: "long sleeve dress"}


def rect(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def garment(category: int, polygons: list[list[float]], colour: tuple[int, int, int], *, occlusion: int = 1,
            viewpoint: int = 2, box: list[float] | None = None) -> tuple[dict, list, tuple]:
    """An item dict in DeepFashion2's format (keys shuffled), its polygons and its paint colour."""
    xs = [v for p in polygons for v in p[0::2]]
    ys = [v for p in polygons for v in p[1::2]]
    item = {
        "segmentation": polygons,
        "landmarks": [xs[0], ys[0], 2, xs[1], ys[1], 1],
        "style": 1,
        "bounding_box": box or [min(xs), min(ys), max(xs), max(ys)],
        "zoom_in": 1,
        "category_name": NAMES.get(category, "other"),
        "occlusion": occlusion,
        "scale": 2,
        "viewpoint": viewpoint,
        "category_id": category,
    }
    return item, polygons, colour


def write_photo(root: Path, stem: str, size: tuple[int, int], garments: list[tuple], *, source: str = "user",
                pair_id: int = 1) -> None:
    img = Image.new("RGB", size, PARK)
    draw = ImageDraw.Draw(img)
    for _, polygons, colour in garments:
        for poly in polygons:
            draw.polygon(list(zip(poly[0::2], poly[1::2])), fill=colour)
    img.save(root / "image" / f"{stem}.jpg", "JPEG", quality=95)
    anno = {f"item{k + 1}": g[0] for k, g in reversed(list(enumerate(garments)))}  # item2 before item1
    anno.update({"source": source, "pair_id": pair_id})
    (root / "annos" / f"{stem}.json").write_text(json.dumps(anno))


def make_split(root: Path) -> Path:
    """A DeepFashion2-style split with every case the importer must handle (see SUMMARY)."""
    (root / "image").mkdir(parents=True)
    (root / "annos").mkdir()
    # Nested boxes: arms down, so the long-sleeve top's box holds the whole trousers box (as in the real 000001);
    # the top is three polygons (body and two sleeves).
    top = garment(2, [rect(30, 10, 70, 60), rect(10, 10, 30, 100), rect(70, 10, 90, 100)], RED)
    trousers = garment(8, [rect(32, 60, 68, 98)], BLUE)
    write_photo(root, "000001", (100, 120), [top, trousers], pair_id=1)
    # A shop and a street photo of the same items: one pair_id.
    shirt, skirt = garment(1, [rect(20, 10, 80, 60)], GREEN), garment(9, [rect(25, 60, 75, 110)], YELLOW)
    write_photo(root, "000002", (100, 120), [shirt, skirt], source="user", pair_id=2)
    write_photo(root, "000003", (100, 120), [shirt, skirt], source="shop", pair_id=2)
    # Two people side by side, each in a top and a bottom: which outfit is meant is ambiguous.
    people = [garment(1, [rect(5, 10, 45, 50)], RED), garment(7, [rect(8, 50, 42, 90)], BLUE),
              garment(1, [rect(55, 10, 95, 50)], GREEN), garment(8, [rect(58, 50, 92, 110)], YELLOW)]
    write_photo(root, "000004", (100, 120), people, pair_id=4)
    # Two people: A (left) in pink top and blue trousers, B (right) in a larger red top cut off at the waist.
    # The largest top is B's; the one-person outfit is A's.
    two = [garment(1, [rect(3, 20, 40, 60)], PINK), garment(8, [rect(6, 60, 40, 115)], BLUE),
           garment(2, [rect(50, 5, 99, 70)], RED)]
    write_photo(root, "000005", (100, 120), two, pair_id=5)
    (root / "annos" / "000006.json").write_text('{"source": "user", "pair_id": 6, "item1": {"category_id": 1,')
    Image.new("RGB", (60, 60), PARK).save(root / "image" / "000006.jpg")
    # A UTF-8 BOM in front of a good file (Windows editors write one): read it.
    write_photo(root, "000007", (100, 120), [garment(1, [rect(20, 10, 80, 60)], PINK),
                                             garment(7, [rect(25, 60, 75, 100)], GREEN)], pair_id=7)
    text = (root / "annos" / "000007.json").read_text()
    (root / "annos" / "000007.json").write_bytes(b"\xef\xbb\xbf" + text.encode())
    write_photo(root, "000008", (100, 120), [garment(11, [rect(20, 10, 80, 110)], RED)], pair_id=8)  # a dress
    write_photo(root, "000009", (100, 120), [garment(1, [rect(10, 10, 50, 50)], RED, viewpoint=1),
                                             garment(8, [rect(55, 10, 95, 110)], BLUE, viewpoint=1)], pair_id=9)
    write_photo(root, "000010", (100, 120), [garment(1, [rect(20, 10, 80, 60)], RED),
                                             garment(8, [rect(25, 60, 75, 110)], BLUE, occlusion=3)], pair_id=10)
    write_photo(root, "000011", (100, 120), [garment(1, [rect(40, 10, 60, 30)], RED),
                                             garment(7, [rect(40, 30, 60, 50)], BLUE)], pair_id=11)
    # One person's top on the left, another's bottom on the right: no outfit.
    write_photo(root, "000012", (100, 120), [garment(1, [rect(5, 10, 45, 50)], RED),
                                             garment(8, [rect(55, 60, 95, 118)], BLUE)], pair_id=12)
    # A macOS copy leaves AppleDouble files beside the real ones.
    (root / "annos" / "._000001.json").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    return root


OUTFITS = ["000001", "000002", "000003", "000005", "000007"]
SUMMARY = {
    "ambiguous: several top/bottom pairs": 1,  # 000004
    "unreadable annotation": 1,  # 000006
    "no top or bottom": 1,  # 000008
    "viewpoint not worn": 1,  # 000009
    "occlusion above 2": 1,  # 000010
    "crop under 32 px": 1,  # 000011
    "no one-person top/bottom pair": 1,  # 000012
    "macOS ._ metadata file": 1,
}


@pytest.fixture
def split(tmp_path: Path) -> Path:
    return make_split(tmp_path / "df2")


def read_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "outfits.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=float).reshape(-1, 3)


def share_near(path: Path, colour: tuple[int, int, int], tol: float = 60.0) -> float:
    px = pixels(path)
    return float((np.linalg.norm(px - np.array(colour), axis=1) < tol).mean())


def test_import_summary_on_the_real_format_tree(split: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = import_deepfashion2_report(split, out)
    assert report.n_photos == 13
    assert dict(report.skipped) == SUMMARY
    assert report.n_outfits == len(OUTFITS)
    assert (out / "outfits.csv").read_text().splitlines()[0] == "outfit_id,top,bottom,label,group,source"
    rows = read_rows(out)
    assert [r["outfit_id"] for r in rows] == OUTFITS
    assert rows[0] == {"outfit_id": "000001", "top": "images/000001_top.jpg", "bottom": "images/000001_bottom.jpg",
                       "label": "", "group": "pair1", "source": "user"}
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f"{s}_{part}.jpg" for s in OUTFITS for part in ("top", "bottom"))


def test_shop_and_street_photos_of_one_pair_share_a_group(split: Path, tmp_path: Path) -> None:
    import_deepfashion2(split, tmp_path / "out")
    rows = {r["outfit_id"]: r for r in read_rows(tmp_path / "out")}
    assert rows["000002"]["group"] == rows["000003"]["group"] == "pair2"
    assert (rows["000002"]["source"], rows["000003"]["source"]) == ("user", "shop")
    assert len({r["group"] for r in rows.values()}) == 4


def test_nested_boxes_crop_keeps_only_its_garment(split: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_deepfashion2(split, out)
    top, bottom = out / "images" / "000001_top.jpg", out / "images" / "000001_bottom.jpg"
    assert Image.open(top).size == (80, 90) and Image.open(bottom).size == (36, 38)
    # Unmasked, the trousers would be ~19% of the top's crop and the park between the sleeves more.
    assert share_near(top, BLUE) < 0.01
    assert share_near(top, PARK) < 0.01
    assert share_near(top, RED) > 0.5  # three polygons: body and both sleeves kept
    assert share_near(top, FILL_RGB, tol=20) > 0.15  # the 22% between the sleeves, less JPEG edges
    assert share_near(bottom, BLUE) > 0.9


def test_two_people_give_one_persons_outfit(split: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_deepfashion2(split, out)
    assert share_near(out / "images" / "000005_top.jpg", PINK) > 0.9  # A's top, not B's larger red one
    assert share_near(out / "images" / "000005_bottom.jpg", BLUE) > 0.9


@pytest.mark.parametrize("top,bottom,expected", [
    ((10, 10, 50, 50), (10, 50, 50, 90), True),  # stacked
    ((10, 10, 90, 100), (30, 60, 70, 98), True),  # nested in the top's box
    ((10, 10, 50, 50), (60, 50, 90, 90), False),  # beside it
    ((10, 50, 50, 90), (10, 10, 50, 50), False),  # above it
    ((10, 10, 50, 50), (35, 50, 75, 90), False),  # overlaps 15 of 40 px: under half
])
def test_one_person_rule(top, bottom, expected) -> None:
    assert one_person(top, bottom, 0.5) is expected


def test_options_loosen_the_filters(split: Path, tmp_path: Path) -> None:
    opts = ImportOptions(max_occlusion=3, viewpoint="any", min_crop=16)
    report = import_deepfashion2_report(split, tmp_path / "out", options=opts)
    ids = [r["outfit_id"] for r in read_rows(tmp_path / "out")]
    assert "000010" in ids and "000011" in ids  # occlusion 3 and 20-px crops now accepted
    # the not-worn shop shot lays top and trousers side by side: passes viewpoint, not the one-person rule
    assert "000009" not in ids and report.skipped["no one-person top/bottom pair"] == 2


def test_not_worn_only(split: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="none of 13 photos has a one-person top and bottom"):
        import_deepfashion2_report(split, tmp_path / "out", options=ImportOptions(viewpoint="not-worn"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["df2"]


def test_strict_stops_at_the_first_unreadable_file(split: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"000006.json: malformed JSON.*--strict") as err:
        import_deepfashion2_report(split, tmp_path / "out", options=ImportOptions(strict=True))
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["df2"]  # nothing half-written


def test_unreadable_image_is_skipped_or_stops_when_strict(split: Path, tmp_path: Path) -> None:
    (split / "image" / "000002.jpg").write_bytes(b"not a jpeg")
    report = import_deepfashion2_report(split, tmp_path / "out")
    assert report.skipped["unreadable image"] == 1 and report.n_outfits == len(OUTFITS) - 1
    with pytest.raises(DatasetError, match="000002.jpg"):
        import_deepfashion2_report(split, tmp_path / "out2", options=ImportOptions(strict=True))


@pytest.mark.parametrize("bad_item", [{"category_id": 1}, {"category_id": "x", "bounding_box": [0, 0, 1, 1]},
                                      {"category_id": 1, "bounding_box": [0, 0, 1, 1], "segmentation": [[0, "a"]]},
                                      [1, 2]])
def test_malformed_item_counts_as_unreadable(split: Path, tmp_path: Path, bad_item: object) -> None:
    (split / "annos" / "000002.json").write_text(json.dumps({"source": "user", "item1": bad_item}))
    report = import_deepfashion2_report(split, tmp_path / "out")
    assert report.skipped["unreadable annotation"] == 2
    with pytest.raises(DatasetError, match="000002.json: item1"):
        import_deepfashion2_report(split, tmp_path / "o2", options=ImportOptions(strict=True))


def test_missing_files_are_skipped(split: Path, tmp_path: Path) -> None:
    (split / "image" / "000003.jpg").unlink()  # annotation without image
    Image.new("RGB", (10, 10)).save(split / "image" / "000099.jpg")  # image without annotation
    report = import_deepfashion2_report(split, tmp_path / "out")
    assert report.skipped["no image"] == 1 and report.skipped["no annotation"] == 1
    assert report.skipped_text().startswith("10 photos (")


def test_box_clipped_to_the_photo(split: Path, tmp_path: Path) -> None:
    shirt = garment(1, [rect(0, 0, 80, 60)], GREEN, box=[-10, -5, 80, 60])
    write_photo(split, "000002", (100, 120), [shirt, garment(9, [rect(25, 60, 75, 120)], YELLOW, box=[25, 60, 75, 200])])
    import_deepfashion2(split, tmp_path / "out")
    assert Image.open(tmp_path / "out" / "images" / "000002_top.jpg").size == (80, 60)
    assert Image.open(tmp_path / "out" / "images" / "000002_bottom.jpg").size == (50, 60)


def test_result_loads_as_unlabelled_dataset(split: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_deepfashion2(split, out)
    ds = load_dataset(out, require_labels=False)
    assert [o.label for o in ds.outfits] == [None] * len(OUTFITS)
    assert [o.group for o in ds.outfits] == ["pair1", "pair2", "pair2", "pair5", "pair7"]  # grouped splits read it
    assert {i.mode for i in ds.images} == {"RGB"}
    with pytest.raises(DatasetError, match="unlabelled"):
        load_dataset(out)


def test_include_outerwear(split: Path, tmp_path: Path) -> None:
    jacket = garment(4, [rect(20, 10, 80, 60)], RED)
    write_photo(split, "000008", (100, 120), [jacket, garment(8, [rect(25, 60, 75, 110)], BLUE)])
    assert import_deepfashion2(split, tmp_path / "a") == len(OUTFITS)
    assert import_deepfashion2(split, tmp_path / "b", include_outerwear=True) == len(OUTFITS) + 1


def test_empty_out_dir_is_fine_and_non_empty_refused(split: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert import_deepfashion2(split, tmp_path / "out") == len(OUTFITS)
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "mine.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an empty folder"):
        import_deepfashion2(split, keep)
    assert [p.name for p in keep.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("folder", ["image", "annos"])
def test_missing_folder(split: Path, tmp_path: Path, folder: str) -> None:
    for p in (split / folder).iterdir():
        p.unlink()
    (split / folder).rmdir()
    with pytest.raises(DatasetError, match=f"no {folder}/ folder"):
        import_deepfashion2(split, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["df2"]


def make_overlap_split(root: Path) -> Path:
    """The real-format tree plus three photos whose top and bottom polygons overlap; the garment painted last is
    the one in front. 000021: trousers over the top's hem (top occlusion 2); 000022: a top hanging over a skirt
    (skirt occlusion 2); 000023: equal occlusion, shorts painted in front."""
    make_split(root)
    write_photo(root, "000021", (100, 120), [garment(1, [rect(20, 10, 80, 75)], RED, occlusion=2),
                                             garment(8, [rect(25, 60, 75, 115)], BLUE, occlusion=1)], pair_id=21)
    write_photo(root, "000022", (100, 120), [garment(9, [rect(25, 50, 75, 110)], YELLOW, occlusion=2),
                                             garment(1, [rect(20, 10, 80, 67)], GREEN, occlusion=1)], pair_id=22)
    write_photo(root, "000023", (100, 120), [garment(1, [rect(20, 10, 80, 70)], PINK, occlusion=1),
                                             garment(7, [rect(25, 60, 75, 100)], BLUE, occlusion=1)], pair_id=23)
    return root


def partner_shares(out: Path, colours: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]]) -> dict:
    """Share of each crop's pixels painted in its partner garment's colour, for outfits {stem: (top, bottom)}."""
    return {f"{stem}_{part}": share_near(out / "images" / f"{stem}_{part}.jpg", colours[stem][1 - k])
            for stem in colours for k, part in enumerate(("top", "bottom"))}


OVERLAP_COLOURS = {"000021": (RED, BLUE), "000022": (GREEN, YELLOW), "000023": (PINK, BLUE)}


def test_partner_garment_is_cut_from_the_crop_behind_it(tmp_path: Path) -> None:
    """Issue 23.8: the less occluded garment keeps the overlap; the other's crop has none of its pixels; on a
    tie neither crop keeps the overlap."""
    split, out = make_overlap_split(tmp_path / "df2"), tmp_path / "out"
    assert import_deepfashion2(split, out) == len(OUTFITS) + 3
    shares = partner_shares(out, OVERLAP_COLOURS)
    assert max(shares.values()) < 0.01, shares
    assert share_near(out / "images" / "000021_bottom.jpg", BLUE) > 0.9  # the trousers in front keep the overlap
    assert share_near(out / "images" / "000022_top.jpg", GREEN) > 0.9  # the top hanging over keeps it
    tie_top, tie_bottom = out / "images" / "000023_top.jpg", out / "images" / "000023_bottom.jpg"
    assert share_near(tie_top, FILL_RGB, tol=20) == pytest.approx(10 * 50 / (60 * 60), abs=0.03)
    assert share_near(tie_bottom, FILL_RGB, tol=20) == pytest.approx(10 * 50 / (50 * 40), abs=0.03)
