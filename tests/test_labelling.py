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
    # a selector, not wait_for_function: the page's CSP (script nonce) forbids the eval that one needs
    page.wait_for_selector(f"body[data-position='{position}']", state="attached", timeout=15000)


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


def test_label_server_refuses_other_origins_hosts_and_bad_bodies(tmp_path: Path, caplog) -> None:
    """Issue 25.2 without a browser: CSRF, DNS rebinding, framing, a non-object body, a ratings.csv folder."""
    import logging

    from neipalette.data.dataset import load_dataset
    from neipalette.errors import DatasetError
    from neipalette.data.labelling import TOKEN_HEADER, LabelSession, create_app

    dataset = make_tiny_dataset(tmp_path / "ds", n_outfits=4, size=8)
    ratings = dataset / "ratings.csv"
    app = create_app(LabelSession(load_dataset(dataset, require_labels=False), "ann"), port=8765)
    client = app.test_client()
    own = "http://127.0.0.1:8765"
    page = client.get("/", base_url=own)
    assert page.status_code == 200 and page.headers["X-Frame-Options"] == "DENY"
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp and "script-src 'nonce-" in csp
    token = re.search(r'name="neipalette-token" content="([^"]+)"', page.text).group(1)
    ok = {TOKEN_HEADER: token, "Origin": own}

    def post(path: str, *, base_url: str = own, **kw):
        return client.post(path, base_url=base_url, **kw)

    def shown() -> dict:
        s = client.get("/api/state", base_url=own).get_json()
        return {"outfit_id": s["outfit_id"], "top": s["top_digest"], "bottom": s["bottom_digest"]}

    assert post("/api/vote", json={**shown(), "label": "positive"}, headers=ok).status_code == 200
    assert post("/api/vote", json={**shown(), "label": "negative"},
                headers={TOKEN_HEADER: token, "Referer": own + "/"}).status_code == 200  # no Origin: the Referer
    before = ratings.read_bytes()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="neipalette.data.labelling"):
        refused = [
            post("/api/undo", data={"x": "1"}, headers={"Origin": "http://evil.example"}),  # a cross-site form
            post("/api/undo", json={}, headers={**ok, "Origin": "http://evil.example"}),  # even with the token
            post("/api/undo", json={}, headers={**ok, "Origin": "null"}),
            post("/api/undo", json={}, headers={TOKEN_HEADER: token, "Referer": "http://evil.example/x"}),
            post("/api/undo", json={}, headers={TOKEN_HEADER: token, "Referer": own + ".evil.example/"}),
            post("/api/undo", json={}, headers={"Origin": own}),  # same origin but no token
            post("/api/undo", json={}, headers={"Origin": own, TOKEN_HEADER: token[:-1] + "x"}),
            post("/api/undo", json={}, headers=ok, base_url="http://evil.example:8765"),  # DNS rebinding
            client.get("/api/state", base_url="http://evil.example:8765"),
            client.get("/", base_url="http://127.0.0.1:9999"),
            client.get("/image/0/top", base_url=own, headers={"Host": "localhost:8765.evil.example"}),
        ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all(r.headers["X-Frame-Options"] == "DENY" for r in refused)
    assert len(caplog.records) == len(refused)  # one log line each
    assert all(len(r.getMessage().splitlines()) == 1 and "refused" in r.getMessage() for r in caplog.records)
    assert ratings.read_bytes() == before  # no vote cleared
    assert client.get("/api/state", base_url="http://localhost:8765").status_code == 200

    for body in ("[1, 2]", '"positive"', "3", "null", "{bad json"):  # 400 with a JSON error, never a 500
        r = post("/api/vote", data=body, content_type="application/json", headers=ok)
        assert r.status_code == 400 and "JSON object" in r.get_json()["error"], (body, r.status_code)
    assert post("/api/undo", json=[], headers=ok).status_code == 400
    r = post("/api/vote", json={**shown(), "top": "0" * 16, "label": "positive"}, headers=ok)  # other pictures
    assert r.status_code == 409 and "not its current ones" in r.get_json()["error"] and r.get_json()["outfit_id"]
    r = post("/api/vote", json={**shown(), "outfit_id": "o000", "label": "positive"}, headers=ok)  # another outfit
    assert r.status_code == 409 and "o000 is not the one to rate now" in r.get_json()["error"]
    r = post("/api/vote", json={"outfit_id": shown()["outfit_id"], "label": "positive"}, headers=ok)
    assert r.status_code == 400 and "digests" in r.get_json()["error"]
    assert ratings.read_bytes() == before
    assert post("/api/undo", json={}, headers=ok).get_json()["saved"] == "o001: undone"

    with pytest.raises(DatasetError, match="not usable"):
        LabelSession(load_dataset(dataset, require_labels=False), "ann\n")
    other = make_tiny_dataset(tmp_path / "ds2", n_outfits=4, size=8)
    (other / "ratings.csv").mkdir()
    with pytest.raises(DatasetError, match="not a regular file"):
        LabelSession(load_dataset(other, require_labels=False), "ann")


def test_label_server_restarts_on_the_same_port_at_once_after_kill_9(tmp_path: Path) -> None:
    """Issue 23: after kill -9 the port's served connections sit in TIME_WAIT; the restart must not wait ~60 s."""
    import time
    import urllib.request

    dataset = make_tiny_dataset(tmp_path / "ds", n_outfits=4)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    cmd = [sys.executable, "-m", "neipalette", "label", str(dataset), "--rater", "ann", "--port", str(port)]
    for attempt in range(2):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            for _ in range(200):  # the page answers once the server is up
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                        assert r.status == 200
                    break
                except OSError:
                    assert proc.poll() is None, (attempt, proc.communicate())
                    time.sleep(0.1)
            else:
                pytest.fail(f"server {attempt} did not answer")
            held = socket.create_connection(("127.0.0.1", port))  # a browser's open connection at the kill,
            held.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # accepted, its request half sent
            time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        time.sleep(0.2)
        held.close()  # the killed server closed first: its side now sits in TIME_WAIT on `port`
        time.sleep(0.2)
    # a port another live process listens on is still refused
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        out = subprocess.run([*cmd[:-1], str(busy)], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 2 and "port is taken" in out.stderr


def _strip_labels(dataset: Path) -> None:
    lines = (dataset / "outfits.csv").read_text().splitlines()
    (dataset / "outfits.csv").write_text("\n".join([lines[0], *(ln.rsplit(",", 1)[0] + "," for ln in lines[1:])]) + "\n")


def _rows(ratings: Path) -> list[tuple[str, str]]:
    return [(r["outfit_id"], r["label"]) for r in read_ratings(ratings)] if ratings.exists() else []


class _Browser:
    """One headless Chromium and one label server for a test; pages opened on the server's URL."""

    def __init__(self, dataset: Path, rater: str = "ann"):
        self.sync_playwright = _need_browser()
        self.dataset, self.rater = dataset, rater

    def __enter__(self):
        self._pw = self.sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        self.proc, self.url = start_server(self.dataset, self.rater)
        return self

    def page(self, width: int = 900, height: int = 700, wait: str | None = "1"):
        page = self.browser.new_page(viewport={"width": width, "height": height})
        page.goto(self.url, wait_until="domcontentloaded")
        if wait:
            wait_position(page, wait)
        return page

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.browser.close()
        self._pw.stop()


def test_label_page_refuses_a_vote_for_an_outfit_it_did_not_show(tmp_path: Path) -> None:
    """Issue 23.2: a vote names the outfit and the image digests shown; anything else is a 409, and the page
    shows why and reloads the current outfit."""
    from PIL import Image

    dataset = make_tiny_dataset(tmp_path / "ds", n_outfits=4, size=24)
    ratings = dataset / "ratings.csv"
    with _Browser(dataset) as b:
        first, second = b.page(), b.page()  # two tabs on outfit o000
        first.keyboard.press("p")
        wait_position(first, "2")
        second.keyboard.press("n")  # o000 is no longer the outfit to rate
        wait_position(second, "2")
        assert "refused" in second.inner_text("#status") and "o000" in second.inner_text("#status")
        assert second.inner_text("#oid") == "o001"
        assert _rows(ratings) == [("o000", "positive")]

        Image.new("RGB", (24, 24), (1, 2, 3)).save(dataset / "images" / "o001_top.png")  # changed under the page
        first.keyboard.press("n")
        first.wait_for_selector("#status.bad", state="attached", timeout=15000)
        assert "images shown for outfit o001 are not its current ones" in first.inner_text("#status")
        wait_position(first, "2")  # reloaded with the new picture
        assert _rows(ratings) == [("o000", "positive")]
        first.keyboard.press("n")
        wait_position(first, "3")
    assert _rows(ratings) == [("o000", "positive"), ("o001", "negative")]


def test_label_page_queues_keys_until_the_pictures_are_shown(tmp_path: Path) -> None:
    """Issue 23.2: no key applies before both images load; 10 fast presses are 10 votes, one per outfit."""
    dataset = make_tiny_dataset(tmp_path / "ds", n_outfits=12, size=16)
    ratings = dataset / "ratings.csv"
    with _Browser(dataset) as b:
        page = b.browser.new_page(viewport={"width": 900, "height": 700})
        held: list = []
        hold = [True]
        page.route("**/image/**", lambda route: held.append(route) if hold[0] else route.continue_())  # hold o000's
        page.goto(b.url, wait_until="domcontentloaded")
        for _ in range(200):
            if len(held) == 2:
                break
            page.wait_for_timeout(50)
        assert len(held) == 2 and page.get_attribute("body", "data-position") == "loading"
        assert page.is_disabled("#pos") and page.is_disabled("#neg")
        page.keyboard.press("p")
        page.wait_for_timeout(500)
        assert _rows(ratings) == []  # queued, not sent for pictures not on screen
        hold[0] = False
        for route in held:
            route.continue_()
        wait_position(page, "2")
        assert _rows(ratings) == [("o000", "positive")]

        keys = ["p", "n", "ArrowRight", "ArrowLeft", "s", "p", "n", "p", "n", "p"]
        for key in keys:
            page.keyboard.press(key)  # no waiting: most land while a save is in flight
        wait_position(page, "12")
    labels = {"p": "positive", "n": "negative", "ArrowRight": "positive", "ArrowLeft": "negative", "s": "skip"}
    assert _rows(ratings) == [("o000", "positive")] + [(f"o{i + 1:03d}", labels[k]) for i, k in enumerate(keys)]


def test_label_page_offers_skipped_outfits_in_a_second_round(tmp_path: Path) -> None:
    """Issue 23.3: skipped outfits come back ("2 skipped — label them now?") until voted or skipped again."""
    dataset = make_tiny_dataset(tmp_path / "ds", n_outfits=4, size=16)
    _strip_labels(dataset)
    with _Browser(dataset) as b:
        page = b.page()
        for key, after in (("s", "2"), ("p", "3"), ("s", "4"), ("n", "done")):
            page.keyboard.press(key)
            wait_position(page, after)
        assert "2 skipped — label them now?" in page.inner_text("#done")
        page.click("#revisit")
        wait_position(page, "1")
        assert page.inner_text("#oid") == "o000" and "skipped 1 of 2" in page.inner_text("#progress")
        page.keyboard.press("p")
        wait_position(page, "3")
        page.keyboard.press("s")  # skipped again: the round ends with it still skipped
        wait_position(page, "done")
        assert "1 skipped — label them now?" in page.inner_text("#done")
        result = CliRunner().invoke(main, ["data", "aggregate", str(dataset), "--boot", "20"])
        assert result.exit_code == 0 and "1 unlabelled" in result.output
        assert "o002" in result.output and f"neipalette label {dataset} --rater NAME" in result.output
        page.keyboard.press("r")
        wait_position(page, "3")
        page.keyboard.press("n")
        wait_position(page, "done")
        assert "All 4 outfits rated" in page.inner_text("#done")
    result = CliRunner().invoke(main, ["data", "aggregate", str(dataset), "--boot", "20"])
    assert result.exit_code == 0 and "2 positive, 2 negative, 0 unlabelled" in result.output
    assert "warning" not in result.output


def test_label_page_says_how_to_restart_a_stopped_server(tmp_path: Path) -> None:
    """Issue 23.4: a dead server reads "server stopped — restart `neipalette label …` and reload"."""
    dataset = make_tiny_dataset(tmp_path / "ds", n_outfits=3, size=16)
    with _Browser(dataset) as b:
        page = b.page()
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(timeout=10)
        page.keyboard.press("p")
        wait_position(page, "stopped")
        status = page.inner_text("#status")
        assert f"server stopped — restart `neipalette label {dataset} --rater ann` and reload" in status
        assert "TypeError" not in status and page.is_disabled("#pos")


def test_label_page_one_scale_and_480_px_layout(tmp_path: Path) -> None:
    """Issue 23.4: a 50x50 top is drawn smaller than a 200x300 bottom (one scale for both); at 480 px wide
    nothing overflows and both images lie within the viewport."""
    from PIL import Image

    dataset = make_tiny_dataset(tmp_path / "ds", n_outfits=2, size=16)
    Image.new("RGB", (50, 50), (200, 40, 40)).save(dataset / "images" / "o000_top.png")
    Image.new("RGB", (200, 300), (40, 40, 200)).save(dataset / "images" / "o000_bottom.png")
    with _Browser(dataset) as b:
        for width, height in ((480, 800), (1280, 800)):
            page = b.page(width, height)
            top, bottom = page.locator("#top").bounding_box(), page.locator("#bottom").bounding_box()
            assert top["width"] / bottom["width"] == pytest.approx(50 / 200, rel=0.02), (width, top, bottom)
            assert top["height"] / bottom["height"] == pytest.approx(50 / 300, rel=0.02), (width, top, bottom)
            assert bottom["height"] > 100  # scaled to the frame, not left tiny
            for box in (top, bottom):
                assert box["x"] >= 0 and box["x"] + box["width"] <= width, (width, box)
                assert box["y"] >= 0 and box["y"] + box["height"] <= height, (width, box)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            for sel in ("header", "#pair", ".keys", "#undo"):
                box = page.locator(sel).bounding_box()
                assert box["x"] + box["width"] <= width, (width, sel, box)
