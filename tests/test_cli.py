"""`neipalette data check` and `data import-deepfashion2` through the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from neipalette.cli import main
from tests.conftest import make_tiny_dataset
from tests.data.test_dataset import BAD_CASES, bad_dataset, tree_state
from tests.data.test_deepfashion2 import make_split


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result: Result, keyword: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert keyword in lines[0] and lines[0].startswith("error: ")


@pytest.mark.parametrize("name,breaker,keyword,folds", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_check_bad_dataset(
    tmp_path: Path, name: str, breaker: Callable[[Path], None], keyword: str, folds: int | None
) -> None:
    root = bad_dataset(tmp_path, breaker)
    before = tree_state(tmp_path)
    result = run("data", "check", root, *(["--folds", str(folds)] if folds else []))
    assert_one_line_error(result, keyword)
    assert tree_state(tmp_path) == before


def test_check_missing_folder(tmp_path: Path) -> None:
    assert_one_line_error(run("data", "check", tmp_path / "nope"), "does not exist")


def test_check_valid_prints_summary(tiny_dataset: Path) -> None:
    result = run("data", "check", tiny_dataset, "--folds", "4")
    assert result.exit_code == 0, result.output
    assert "outfits:   8 (4 positive, 4 negative, 0 unlabelled)" in result.stdout
    assert "16 checked; sizes 32x32; modes RGB 16" in result.stdout
    assert "truth.csv: no" in result.stdout
    assert result.stderr == ""


def test_check_accepts_other_modes(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "ds", n_outfits=4, size=8)
    Image.new("L", (8, 8), 9).save(root / "images" / "o000_top.png")
    Image.new("RGBA", (8, 8), (1, 2, 3, 4)).save(root / "images" / "o001_top.png")
    Image.new("P", (8, 8)).save(root / "images" / "o002_top.png")
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(root / "images" / "o003_top.png")
    result = run("data", "check", root)
    assert result.exit_code == 0, result.output
    assert "modes I;16 1, L 1, P 1, RGB 4, RGBA 1" in result.stdout


def test_check_unlabelled_gives_hint(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "ds", n_outfits=4, size=8)
    text = (root / "outfits.csv").read_text().replace("positive", "")
    (root / "outfits.csv").write_text(text)
    result = run("data", "check", root)
    assert result.exit_code != 0
    assert "outfits:   4 (0 positive, 2 negative, 2 unlabelled)" in result.stdout
    assert result.stderr.splitlines() == [
        f"error: 2 of 4 outfits are unlabelled; label them in the browser with `neipalette label {root} --rater NAME`, "
        f"then `neipalette data aggregate {root}` (or fill the label column of outfits.csv with positive or negative)"
    ]


def test_console_script_one_line_no_traceback(tmp_path: Path) -> None:
    root = bad_dataset(tmp_path, BAD_CASES[0][1])
    proc = subprocess.run(
        [sys.executable, "-m", "neipalette", "data", "check", str(root)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "not found" in proc.stderr


def test_import_then_check(tmp_path: Path) -> None:
    split, out = make_split(tmp_path / "df2"), tmp_path / "out"
    result = run("data", "import-deepfashion2", "--root", split, "--out", out)
    assert result.exit_code == 0, result.output
    assert "read 13 photos; skipped 8 photos (" in result.stdout and "1 unreadable annotation" in result.stdout
    assert f"wrote 5 unlabelled outfits to {out}" in result.stdout
    check = run("data", "check", out)
    assert check.exit_code != 0
    assert "outfits:   5 (0 positive, 0 negative, 5 unlabelled)" in check.stdout
    assert f"neipalette label {out} --rater NAME" in check.stderr and len(check.stderr.splitlines()) == 1


def test_import_names_skipped_photos_and_the_outerwear_hint(tmp_path: Path) -> None:
    """Issue 23.8: skipped photos by name in import-summary.json; --include-outerwear named when it would keep one;
    the output folder made with the umask (not 700)."""
    import json
    import os

    from tests.data.test_deepfashion2 import BLUE, RED, garment, rect, write_photo

    split, out = make_split(tmp_path / "df2"), tmp_path / "out"
    write_photo(split, "000008", (100, 120), [garment(4, [rect(20, 10, 80, 60)], RED),
                                              garment(8, [rect(25, 60, 75, 110)], BLUE)])  # a jacket over trousers
    old = os.umask(0o022)
    try:
        result = run("data", "import-deepfashion2", "--root", split, "--out", out)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert f"names in {out / 'import-summary.json'}" in result.stdout
    assert "--include-outerwear would keep 1 of the skipped photos (000008)" in result.stdout
    summary = json.loads((out / "import-summary.json").read_text())
    assert summary["skipped"]["no top"] == ["000008"] and summary["skipped"]["occlusion above 2"] == ["000010"]
    assert summary["outerwear_would_keep"] == ["000008"] and summary["n_skipped"] == 8
    assert (out.stat().st_mode & 0o777) == 0o755
    again = run("data", "import-deepfashion2", "--root", split, "--out", tmp_path / "b", "--include-outerwear")
    assert "wrote 6 unlabelled outfits" in again.stdout and "would keep" not in again.stdout


def test_import_options(tmp_path: Path) -> None:
    split = make_split(tmp_path / "df2")
    result = run("data", "import-deepfashion2", "--root", split, "--out", tmp_path / "out", "--occlusion", "3",
                 "--min-crop", "16", "--viewpoint", "any")
    assert result.exit_code == 0 and "wrote 7 unlabelled outfits" in result.stdout
    help_text = run("data", "import-deepfashion2", "--help").stdout
    for default in ("[default: 2;", "[default: worn]", "[default: 32;"):
        assert default in help_text


@pytest.mark.parametrize("problem,keyword", [("no_annos", "no annos/ folder"), ("strict_json", "malformed JSON"),
                                             ("non_empty_out", "not an empty folder")])
def test_import_bad_input(tmp_path: Path, problem: str, keyword: str) -> None:
    split, out = make_split(tmp_path / "df2"), tmp_path / "out"
    extra = []
    if problem == "no_annos":
        split = tmp_path / "empty_split"
        (split / "image").mkdir(parents=True)
    elif problem == "strict_json":
        extra = ["--strict"]
    else:
        out.mkdir()
        (out / "x").write_text("")
    before = tree_state(tmp_path)
    assert_one_line_error(run("data", "import-deepfashion2", "--root", split, "--out", out, *extra), keyword)
    assert tree_state(tmp_path) == before


def test_version_is_the_package_version():
    import neipalette

    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"neipalette, version {neipalette.__version__}"
