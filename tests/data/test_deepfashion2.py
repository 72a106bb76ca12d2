"""neipalette.data.deepfashion2: cropping a DeepFashion2-style split into an unlabelled outfit dataset."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neipalette.data.dataset import DatasetError, load_dataset
from neipalette.data.deepfashion2 import import_deepfashion2, import_deepfashion2_report

RED, BLUE, GREEN, YELLOW = (220, 20, 20), (20, 20, 220), (20, 200, 20), (230, 230, 20)


def item(category_id: int, box: list[float], **extra: object) -> dict:
    return {"category_id": category_id, "bounding_box": box, "style": 1, "scale": 2, "occlusion": 1, **extra}


def photo(path: Path, size: tuple[int, int], boxes: list[tuple[list[float], tuple[int, int, int]]]) -> None:
    img = Image.new("RGB", size, (128, 128, 128))
    for box, colour in boxes:
        img.paste(colour, [int(v) for v in box])
    img.save(path, "JPEG", quality=95)


def make_split(root: Path) -> Path:
    """Five photos: two outfits, one top-only, one outerwear + shorts, one dress only."""
    (root / "image").mkdir(parents=True)
    (root / "annos").mkdir()
    photos = {
        # a top, a smaller second top and trousers: the largest top is taken
        "000001": ((60, 80), {
            "item1": item(1, [5, 5, 55, 35]),
            "item2": item(2, [0, 0, 10, 10]),
            "item3": item(8, [10, 40, 50, 78]),
        }, [([5, 5, 55, 35], RED), ([10, 40, 50, 78], BLUE)]),
        # boxes reach past the photo: clipped
        "000002": ((40, 60), {
            "item1": item(6, [-10, -5, 30, 25]),
            "item2": item(9, [5, 30, 90, 200]),
        }, [([0, 0, 30, 25], GREEN), ([5, 30, 40, 60], YELLOW)]),
        "000003": ((40, 40), {"item1": item(1, [0, 0, 20, 20])}, []),  # no bottom
        "000004": ((40, 60), {"item1": item(4, [0, 0, 40, 30]), "item2": item(7, [0, 30, 40, 60])}, []),
        "000005": ((40, 60), {"item1": item(11, [0, 0, 40, 60])}, []),  # a dress
    }
    for stem, (size, items, painted) in photos.items():
        photo(root / "image" / f"{stem}.jpg", size, painted)
        anno = {"source": "user", "pair_id": int(stem), **items}
        (root / "annos" / f"{stem}.json").write_text(json.dumps(anno))
    return root


@pytest.fixture
def split(tmp_path: Path) -> Path:
    return make_split(tmp_path / "df2")


def read_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "outfits.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def mean_colour(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)


def test_import_crops_outfits(split: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = import_deepfashion2_report(split, out)
    assert report.n_outfits == 2 and report.n_photos == 5
    assert dict(report.skipped) == {"no bottom": 1, "no top": 1, "no top or bottom": 1}
    assert (out / "outfits.csv").read_text().splitlines()[0] == "outfit_id,top,bottom,label"
    rows = read_rows(out)
    assert [r["outfit_id"] for r in rows] == ["000001", "000002"]
    assert rows[0] == {
        "outfit_id": "000001", "top": "images/000001_top.jpg", "bottom": "images/000001_bottom.jpg", "label": "",
    }
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "000001_bottom.jpg", "000001_top.jpg", "000002_bottom.jpg", "000002_top.jpg",
    ]


def test_largest_box_and_clipping(split: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_deepfashion2(split, out)
    images = out / "images"
    assert Image.open(images / "000001_top.jpg").size == (50, 30)  # item1, not the smaller item2
    assert Image.open(images / "000001_bottom.jpg").size == (40, 38)
    assert Image.open(images / "000002_top.jpg").size == (30, 25)  # clipped at 0
    assert Image.open(images / "000002_bottom.jpg").size == (35, 30)  # clipped at the photo's edge
    for name, colour in [("000001_top", RED), ("000001_bottom", BLUE), ("000002_top", GREEN),
                         ("000002_bottom", YELLOW)]:
        assert np.abs(mean_colour(images / f"{name}.jpg") - colour).max() < 8


def test_include_outerwear(split: Path, tmp_path: Path) -> None:
    assert import_deepfashion2(split, tmp_path / "out", include_outerwear=True) == 3
    assert "000004" in [r["outfit_id"] for r in read_rows(tmp_path / "out")]


def test_result_loads_as_unlabelled_dataset(split: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_deepfashion2(split, out)
    ds = load_dataset(out, require_labels=False)
    assert [o.label for o in ds.outfits] == [None, None]
    assert {i.mode for i in ds.images} == {"RGB"}
    with pytest.raises(DatasetError, match="unlabelled"):
        load_dataset(out)


def test_empty_out_dir_is_fine(split: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert import_deepfashion2(split, tmp_path / "out") == 2


def test_refuses_non_empty_out_dir(split: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an empty folder"):
        import_deepfashion2(split, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def only_inputs_left(tmp_path: Path) -> bool:
    return sorted(p.name for p in tmp_path.iterdir()) == ["df2"]


@pytest.mark.parametrize("folder", ["image", "annos"])
def test_missing_folder(split: Path, tmp_path: Path, folder: str) -> None:
    for p in (split / folder).iterdir():
        p.unlink()
    (split / folder).rmdir()
    with pytest.raises(DatasetError, match=f"no {folder}/ folder"):
        import_deepfashion2(split, tmp_path / "out")
    assert only_inputs_left(tmp_path)


def test_malformed_json_leaves_nothing(split: Path, tmp_path: Path) -> None:
    """Photos before the bad file were already cropped into the temp folder: it must be removed."""
    photo(split / "image" / "000009.jpg", (20, 20), [])
    (split / "annos" / "000009.json").write_text('{"item1": {"category_id": 1,')
    with pytest.raises(DatasetError, match=r"000009.json: malformed JSON") as err:
        import_deepfashion2(split, tmp_path / "out")
    assert "\n" not in str(err.value)
    assert only_inputs_left(tmp_path)


@pytest.mark.parametrize("bad_item", [{"category_id": 1}, {"category_id": "x", "bounding_box": [0, 0, 1, 1]},
                                      {"category_id": 1, "bounding_box": [0, 0, 1]}, [1, 2]])
def test_malformed_item(split: Path, tmp_path: Path, bad_item: object) -> None:
    (split / "annos" / "000003.json").write_text(json.dumps({"source": "user", "item1": bad_item}))
    with pytest.raises(DatasetError, match="item1 needs an integer category_id and bounding_box"):
        import_deepfashion2(split, tmp_path / "out")
    assert only_inputs_left(tmp_path)


def test_nothing_importable(split: Path, tmp_path: Path) -> None:
    for stem in ("000001", "000002"):
        (split / "annos" / f"{stem}.json").unlink()
    with pytest.raises(DatasetError, match="none of 5 photos has both a top and a bottom"):
        import_deepfashion2(split, tmp_path / "out")
    assert only_inputs_left(tmp_path)


def test_unreadable_photo_and_missing_files_are_skipped(split: Path, tmp_path: Path) -> None:
    (split / "image" / "000002.jpg").write_bytes(b"not a jpeg")
    (split / "image" / "000003.jpg").unlink()  # annotation without image
    photo(split / "image" / "000007.jpg", (10, 10), [])  # image without annotation
    report = import_deepfashion2_report(split, tmp_path / "out")
    assert report.n_outfits == 1
    assert report.skipped["unreadable image"] == 1
    assert report.skipped["no image"] == 1
    assert report.skipped["no annotation"] == 1
    assert report.skipped_text().startswith("5 photos (")


def test_box_outside_photo(split: Path, tmp_path: Path) -> None:
    anno = {"item1": item(1, [100, 100, 120, 120]), "item2": item(8, [0, 0, 10, 10])}
    (split / "annos" / "000002.json").write_text(json.dumps(anno))
    report = import_deepfashion2_report(split, tmp_path / "out")
    assert report.n_outfits == 1 and report.skipped["box outside the photo"] == 1
