"""`neipalette label` in headless Chromium: vote by keyboard, kill -9 the server mid-way, restart, finish.

Needs Debian's chromium (/usr/bin/chromium) and the `playwright` package (no browser download). Outside CI
(env CI != "true") a missing one skips this test; in CI it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from neipalette.cli import main
from neipalette.data.ratings import current_states, read_ratings
from tests.conftest import make_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"]


def _need_browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = "the playwright package" if sync_playwright is None else (
        None if os.access(CHROMIUM, os.X_OK) else f"chromium at {CHROMIUM}")
    if missing:
        message = f"needs {missing} (apt-get install chromium; pip install playwright)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


def start_server(dataset: Path, rater: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "neipalette", "label", str(dataset), "--rater", rater,
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    match = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.stderr.read()}")
    return proc, match.group(1)


def wait_position(page, position: str) -> None:
    page.wait_for_function(f"document.body.dataset.position === '{position}'", timeout=15000)


def test_label_by_keyboard_survives_kill_9(tmp_path: Path) -> None:
    sync_playwright = _need_browser()
    dataset = make_tiny_dataset(tmp_path / "ds", n_outfits=6, size=48)
    ratings = dataset / "ratings.csv"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 600})
            proc, url = start_server(dataset, "ann")
            try:
                page.goto(url)
                wait_position(page, "1")
                assert page.inner_text("#progress") == "1 of 6" and page.inner_text("#oid") == "o000"
                for key, after in (("p", "2"), ("ArrowLeft", "3"), ("s", "4"), ("u", "3"), ("n", "4")):
                    page.keyboard.press(key)
                    wait_position(page, after)
            finally:
                proc.send_signal(signal.SIGKILL)  # kill -9 mid-way
                proc.wait(timeout=10)
            assert [(r["outfit_id"], r["label"]) for r in read_ratings(ratings)] == [
                ("o000", "positive"), ("o001", "negative"), ("o002", "skip"), ("o002", "undo"), ("o002", "negative")]

            proc, url = start_server(dataset, "ann")
            try:
                page.goto(url)
                wait_position(page, "4")  # resumes at the first unlabelled outfit
                assert page.inner_text("#progress") == "4 of 6" and page.inner_text("#oid") == "o003"
                for key, after in (("p", "5"), ("n", "6"), ("ArrowRight", "done")):
                    page.keyboard.press(key)
                    wait_position(page, after)
                assert "All 6 outfits rated" in page.inner_text("#done")
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        finally:
            browser.close()
    rows = read_ratings(ratings)
    assert len(rows) == 8 and all(r["rater"] == "ann" and r["time"] for r in rows)
    assert {oid: lab for (oid, _), lab in current_states(rows).items()} == {
        "o000": "positive", "o001": "negative", "o002": "negative", "o003": "positive", "o004": "negative",
        "o005": "positive"}
    result = CliRunner().invoke(main, ["data", "aggregate", str(dataset), "--boot", "20"])
    assert result.exit_code == 0 and "3 positive, 3 negative, 0 unlabelled" in result.output


def _one_line_exit_2(args: list[str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "neipalette", "label", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.splitlines()) == 1, proc.stderr
    return proc.stderr


def test_label_bad_input(tmp_path: Path) -> None:
    dataset = make_tiny_dataset(tmp_path / "ds", n_outfits=4, size=8)
    assert "does not exist" in _one_line_exit_2([str(tmp_path / "nope"), "--rater", "ann"])
    assert "not usable" in _one_line_exit_2([str(dataset), "--rater", "a,b"])
    (dataset / "images" / "o001_top.png").unlink()
    assert "o001_top.png' not found" in _one_line_exit_2([str(dataset), "--rater", "ann"])
    make_tiny_dataset(dataset, n_outfits=4, size=8)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert "port is taken" in _one_line_exit_2([str(dataset), "--rater", "ann", "--port", str(port)])
