"""neipalette.data.dataset: the format, validation errors (one line each), image conversion, hashing, summary.

`BAD_CASES` (also used by test_cli_data.py) breaks a valid tiny dataset in one way each.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image, ImageFile, PngImagePlugin

from neipalette.colour import imaging
from neipalette.data.dataset import DatasetError, dataset_content_hash, load_dataset, summarize
from neipalette.colour.imaging import load_rgb
from tests.conftest import make_tiny_dataset

HEADER = "outfit_id,top,bottom,label\n"


# ------------------------------------------------------------------------------------------ bad datasets


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A ~60-byte PNG whose IHDR claims width x height RGB pixels (valid CRCs, tiny IDAT)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def noisy_image(path: Path, fmt: str = "PNG", size: int = 48) -> bytes:
    """Save incompressible noise (so cutting the file really cuts pixel data); returns the bytes."""
    arr = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, fmt)
    return path.read_bytes()


def rewrite_csv(root: Path, edit: Callable[[list[list[str]]], list[list[str]]]) -> None:
    lines = (root / "outfits.csv").read_text().splitlines()
    rows = edit([line.split(",") for line in lines])
    (root / "outfits.csv").write_text("".join(",".join(r) + "\n" for r in rows))


def set_cell(root: Path, row: int, column: int, value: str) -> None:
    def edit(rows: list[list[str]]) -> list[list[str]]:
        rows[row][column] = value
        return rows

    rewrite_csv(root, edit)


def _truncate_png(root: Path) -> None:
    data = noisy_image(root / "images" / "o000_top.png")
    (root / "images" / "o000_top.png").write_bytes(data[: len(data) // 2])


def _png_without_end(root: Path) -> None:
    data = noisy_image(root / "images" / "o000_top.png")
    (root / "images" / "o000_top.png").write_bytes(data[:-12])  # drop the IEND chunk


def _truncate_jpeg(root: Path) -> None:
    data = noisy_image(root / "images" / "cut.jpg", "JPEG")
    (root / "images" / "cut.jpg").write_bytes(data[: len(data) // 2])
    set_cell(root, 1, 1, "images/cut.jpg")


def _text_as_png(root: Path) -> None:
    (root / "images" / "o000_top.png").write_text("this is not an image\n")


def _bomb(root: Path) -> None:
    (root / "images" / "o000_top.png").write_bytes(bomb_png())


def _moderate_bomb(root: Path) -> None:  # over our limit, under Pillow's own error threshold
    (root / "images" / "o000_top.png").write_bytes(bomb_png(12_000, 12_000))


def _dotdot(root: Path) -> None:
    Image.new("RGB", (8, 8)).save(root.parent / "outside.png")  # exists, so only the escape is wrong
    set_cell(root, 1, 1, "../outside.png")


def _absolute(root: Path) -> None:
    Image.new("RGB", (8, 8)).save(root.parent / "outside.png")
    set_cell(root, 1, 1, str(root.parent / "outside.png"))


def _symlink_out(root: Path) -> None:
    Image.new("RGB", (8, 8)).save(root.parent / "outside.png")
    (root / "images" / "link.png").symlink_to(root.parent / "outside.png")
    set_cell(root, 1, 1, "images/link.png")


def _one_class(root: Path) -> None:
    rewrite_csv(root, lambda rows: [rows[0]] + [r[:3] + ["positive"] for r in rows[1:]])


def _duplicate_id(root: Path) -> None:
    set_cell(root, 2, 0, "o000")


def _missing_column(root: Path) -> None:
    rewrite_csv(root, lambda rows: [r[:3] for r in rows])


def _extra_field(root: Path) -> None:
    set_cell(root, 1, 3, "positive,oops")


def _non_utf8(root: Path) -> None:
    (root / "outfits.csv").write_bytes(HEADER.encode() + "o1,t\xe9.png,b.png,1\n".encode("latin-1"))


def _bad_truth(root: Path) -> None:
    (root / "truth.csv").write_text("outfit_id,p_positive\no000,0.5\n")  # other outfits lack a row


BadCase = tuple[str, Callable[[Path], None], str, int | None]

# (name, how to break a valid 8-outfit dataset, keyword the one-line error must contain, --folds)
BAD_CASES: list[BadCase] = [
    ("missing_image", lambda r: (r / "images" / "o001_bottom.png").unlink(), "not found", None),
    ("truncated_png", _truncate_png, "truncated", None),
    ("png_without_end", _png_without_end, "truncated", None),
    ("truncated_jpeg", _truncate_jpeg, "truncated", None),
    ("text_named_png", _text_as_png, "not an image", None),
    ("bad_label", lambda r: set_cell(r, 3, 3, "maybe"), "label 'maybe'", None),
    ("dotdot_path", _dotdot, "escapes", None),
    ("absolute_path", _absolute, "absolute", None),
    ("symlink_out", _symlink_out, "outside the dataset folder", None),
    ("one_class", _one_class, "both classes", None),
    ("duplicate_id", _duplicate_id, "duplicate outfit_id", None),
    ("missing_column", _missing_column, "lacks column(s) label", None),
    ("empty_csv", lambda r: (r / "outfits.csv").write_bytes(b""), "is empty", None),
    ("header_only_csv", lambda r: (r / "outfits.csv").write_text(HEADER), "no outfits", None),
    ("decompression_bomb", _bomb, "decompression bomb", None),
    ("moderate_bomb", _moderate_bomb, "decompression bomb", None),
    ("too_few_for_folds", lambda r: None, "5 folds", 5),
    ("no_outfits_csv", lambda r: (r / "outfits.csv").unlink(), "outfits.csv not found", None),
    ("extra_field", _extra_field, "fields", None),
    ("empty_outfit_id", lambda r: set_cell(r, 1, 0, ""), "empty outfit_id", None),
    ("non_utf8_csv", _non_utf8, "UTF-8", None),
    ("bad_truth", _bad_truth, "truth.csv", None),
]


def bad_dataset(tmp_path: Path, breaker: Callable[[Path], None]) -> Path:
    root = make_tiny_dataset(tmp_path / "ds", n_outfits=8, size=8)
    breaker(root)
    return root


def tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("name,breaker,keyword,folds", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_dataset_raises_one_line(
    tmp_path: Path, name: str, breaker: Callable[[Path], None], keyword: str, folds: int | None
) -> None:
    root = bad_dataset(tmp_path, breaker)
    before = tree_state(tmp_path)
    with pytest.raises(DatasetError) as err:
        load_dataset(root, min_per_class=folds)
    message = str(err.value)
    assert keyword in message
    assert "\n" not in message and ";" in message  # the problem; the fix
    assert tree_state(tmp_path) == before  # nothing written, even on failure


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_unlabelled_needs_require_labels_false(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "ds", size=8)
    rewrite_csv(root, lambda rows: [rows[0]] + [r[:3] + [""] for r in rows[1:]])
    with pytest.raises(DatasetError, match="unlabelled"):
        load_dataset(root)
    ds = load_dataset(root, require_labels=False, min_per_class=5)  # no labels yet: nothing to count
    assert all(o.label is None for o in ds.outfits)
    with pytest.raises(DatasetError, match="unlabelled"):
        ds.labels  # noqa: B018
    assert "0 positive, 0 negative, 8 unlabelled" in summarize(ds)


def test_error_names_the_line(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "ds", size=8)
    set_cell(root, 4, 3, "yes")
    with pytest.raises(DatasetError, match="outfits.csv line 5: label 'yes'"):
        load_dataset(root)


def test_bomb_rejected_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with Pillow's own limit switched off, the header check fires before any pixel is decoded."""
    root = bad_dataset(tmp_path, _bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    touched: list[tuple[str, tuple[int, int]]] = []

    def spy(name: str, original: Callable) -> Callable:
        def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            touched.append((name, self.size))
            return original(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy("load", ImageFile.ImageFile.load))
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "verify", spy("verify", PngImagePlugin.PngImageFile.verify))
    with pytest.raises(DatasetError, match="100000x100000 pixels"):
        load_dataset(root)
    with pytest.raises(DatasetError, match="decompression bomb"):
        load_rgb(root / "images" / "o000_top.png")
    assert touched == []
    load_rgb(root / "images" / "o000_bottom.png")  # the spies do see ordinary images
    assert ("load", (8, 8)) in touched


def test_truncated_caught_even_if_pillow_is_lenient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = bad_dataset(tmp_path, _truncate_jpeg)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some training code sets it
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset(root)
    with pytest.raises(DatasetError, match="truncated"):
        load_rgb(root / "images" / "cut.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_load_writes_nothing(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tiny_dataset / "truth.csv").write_text(
        "outfit_id,p_positive\n" + "".join(f"o{i:03d},0.5\n" for i in range(8))
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = tree_state(tmp_path)
    ds = load_dataset(tiny_dataset)
    summarize(ds)
    dataset_content_hash(tiny_dataset)
    load_rgb(ds.outfits[0].top)
    assert tree_state(tmp_path) == before


# ------------------------------------------------------------------------------------------ valid input


def test_load_tiny(tiny_dataset: Path) -> None:
    ds = load_dataset(tiny_dataset, min_per_class=4)
    assert len(ds.outfits) == 8 and ds.outfit_ids[0] == "o000"
    assert ds.labels.tolist() == [1, 0] * 4
    assert ds.outfits[0].top == (tiny_dataset / "images" / "o000_top.png").resolve()
    assert ds.truth is None and ds.p_positive is None
    assert len(ds.images) == 16 and ds.images[0].size == (32, 32)


def test_truth_is_read(tmp_path: Path) -> None:
    ds = load_dataset(make_tiny_dataset(tmp_path / "ds", size=8, with_truth=True))
    assert ds.p_positive is not None and ds.p_positive.tolist() == [0.8, 0.2] * 4
    assert "truth.csv: yes" in summarize(ds)


def test_label_spellings_bom_and_backslashes(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "ds", n_outfits=4, size=8)
    text = (root / "outfits.csv").read_text()
    text = text.replace("positive", " Positive").replace("negative", "0").replace("images/o001_top", "images\\o001_top")
    (root / "outfits.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())  # Excel style
    ds = load_dataset(root)
    assert ds.labels.tolist() == [1, 0, 1, 0]
    assert ds.outfits[1].top.name == "o001_top.png"


def test_shared_image_checked_once(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "ds", n_outfits=4, size=8)
    set_cell(root, 2, 1, "images/o000_top.png")
    ds = load_dataset(root)
    assert len(ds.images) == 7
    assert "images:    7 checked" in summarize(ds)


def test_content_hash_changes_with_any_image_byte(tiny_dataset: Path) -> None:
    h1 = dataset_content_hash(tiny_dataset)
    assert dataset_content_hash(tiny_dataset) == h1
    Image.new("RGB", (32, 32), (1, 2, 3)).save(tiny_dataset / "images" / "o003_bottom.png")
    os.utime(tiny_dataset / "images" / "o003_bottom.png", ns=(1, 1))
    assert dataset_content_hash(tiny_dataset) != h1


def test_summary_sizes_and_modes(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "ds", n_outfits=4, size=8)
    Image.new("L", (10, 20), 100).save(root / "images" / "o000_top.png")
    Image.new("RGBA", (30, 5), (1, 2, 3, 4)).save(root / "images" / "o001_top.png")
    Image.new("P", (40, 40)).save(root / "images" / "o002_top.png")
    Image.fromarray(np.full((6, 6), 65535, dtype=np.uint16)).save(root / "images" / "o003_top.png")
    text = summarize(load_dataset(root))
    assert "4 outfits" not in text and "outfits:   4 (2 positive, 2 negative, 0 unlabelled)" in text
    assert "width 6-40, height 5-40" in text
    assert "I;16 1, L 1, P 1, RGB 4, RGBA 1" in text
    assert "truth.csv: no" in text


# ------------------------------------------------------------------------------------------- load_rgb


def roundtrip(tmp_path: Path, img: Image.Image, name: str = "x.png") -> np.ndarray:
    img.save(tmp_path / name)
    out = load_rgb(tmp_path / name)
    assert out.mode == "RGB" and out.size == img.size
    return np.asarray(out)


def test_rgb_unchanged(tmp_path: Path) -> None:
    assert roundtrip(tmp_path, Image.new("RGB", (3, 2), (10, 20, 30)))[0, 0].tolist() == [10, 20, 30]


def test_grayscale(tmp_path: Path) -> None:
    assert roundtrip(tmp_path, Image.new("L", (3, 2), 77))[1, 2].tolist() == [77, 77, 77]


def test_bilevel(tmp_path: Path) -> None:
    assert roundtrip(tmp_path, Image.new("1", (3, 2), 1))[0, 0].tolist() == [255, 255, 255]


def test_rgba_composited_over_white(tmp_path: Path) -> None:
    arr = np.zeros((2, 2, 4), dtype=np.uint8)
    arr[0, 0] = (200, 0, 0, 255)  # opaque red stays red
    arr[0, 1] = (0, 0, 0, 0)  # transparent becomes white
    arr[1, 0] = (0, 0, 0, 128)  # half-transparent black becomes mid grey
    out = roundtrip(tmp_path, Image.fromarray(arr, "RGBA"))
    assert out[0, 0].tolist() == [200, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert np.all(np.abs(out[1, 0].astype(int) - 127) <= 1)


def test_grayscale_alpha(tmp_path: Path) -> None:
    out = roundtrip(tmp_path, Image.new("LA", (2, 2), (50, 255)))
    assert out[0, 0].tolist() == [50, 50, 50]


def test_palette(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 128, 255] + [0] * 762)
    img.putpixel((1, 0), 1)
    out = roundtrip(tmp_path, img)
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [0, 128, 255]


def test_palette_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 1
    out = roundtrip(tmp_path, img)
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [255, 255, 255]


def test_sixteen_bit(tmp_path: Path) -> None:
    arr = np.array([[65535, 0, 257 * 100, 32768]], dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode == "I;16"
    out = roundtrip(tmp_path, img)
    assert out[0, :, 0].tolist() == [255, 0, 100, 128]
    assert (tmp_path / "x.png").exists() and Image.open(tmp_path / "x.png").mode.startswith("I")


def test_sixteen_bit_dark_image_stays_dark(tmp_path: Path) -> None:
    """A 16-bit image whose brightest pixel is 255/65535 is nearly black, not white."""
    out = roundtrip(tmp_path, Image.fromarray(np.full((2, 2), 255, dtype=np.uint16)))
    assert out.max() <= 1


def test_cmyk_jpeg(tmp_path: Path) -> None:
    out = roundtrip(tmp_path, Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "x.jpg")
    assert out.min() >= 250


def test_exif_orientation_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (0, 200, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    img.save(tmp_path / "x.jpg", exif=exif)
    assert load_rgb(tmp_path / "x.jpg").size == (20, 40)


def test_load_rgb_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_rgb(tmp_path / "nope.png")


def test_max_pixels_allows_phone_photos() -> None:
    assert imaging.MAX_PIXELS > 8000 * 6000


def test_a_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "ds")
    path = root / "outfits.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",label"] + [line + ",negative" for line in lines[1:]]) + "\n")
    with pytest.raises(DatasetError, match=r"names column\(s\) label more than once; keep one column"):
        load_dataset(root)


def test_every_reader_of_outfits_csv_accepts_what_the_loader_accepts(tmp_path: Path) -> None:
    """Trailing empty cells on one row pass `data check`; the benchmark's dataset table reads them the same way
    (pandas alone raised ParserError and left a FAILED parent)."""
    from neipalette.data.dataset import outfits_table

    root = make_tiny_dataset(tmp_path / "ds")
    path = root / "outfits.csv"
    lines = path.read_text().splitlines()
    lines[2] += ",,"
    path.write_text("\n".join(lines) + "\n")
    ds = load_dataset(root)
    table = outfits_table(root)
    assert list(table["outfit_id"]) == [o.outfit_id for o in ds.outfits]
    assert table.shape == (len(ds.outfits), len(lines[0].split(",")))
