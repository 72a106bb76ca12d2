"""The labelling page behind `neipalette label`: one outfit at a time, votes appended to ratings.csv.

A small Flask app served on 127.0.0.1 only. Every vote is appended and fsync'd (`neipalette.data.ratings`)
before the page is told it was saved, so killing the server loses nothing already clicked. The page
always shows the rater's first outfit (in outfits.csv order) without a vote or skip; undo clears the
rater's most recent vote or skip (replayed from ratings.csv, so it works across restarts too).

Other web pages the rater has open must not vote for them: a request whose Host is not this server's
(`127.0.0.1:<port>` / `localhost:<port>`: DNS rebinding) is refused, and so is a POST whose Origin or Referer is
another origin or that lacks the per-session token the page carries (403 and one log line). The page may
not be framed (X-Frame-Options, CSP frame-ancestors) and runs only its own script (CSP nonce).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, abort, jsonify, request, send_file
from werkzeug.serving import BaseWSGIServer, make_server

from neipalette.data.dataset import Dataset, load_dataset
from neipalette.data.ratings import ACTIONS, RATINGS_FILE, append_vote, read_ratings
from neipalette.errors import DatasetError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
RATER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fullmatch: no trailing newline slips in
TOKEN_HEADER = "X-NeiPalette-Token"
LOCAL_NAMES = (HOST, "localhost")


@dataclass
class _Progress:
    done: dict[str, str]  # outfit_id -> positive / negative / skip for this rater
    stack: list[str]  # outfit ids in the order of the rater's standing actions (undo pops)


class LabelSession:
    """One rater on one dataset: what is done, what comes next; writes go through one lock."""

    def __init__(self, dataset: Dataset, rater: str):
        if not RATER_PATTERN.fullmatch(rater):
            raise DatasetError(
                f"rater name {rater!r} is not usable; use letters, digits, '_', '.' or '-' (e.g. --rater ann)"
            )
        self.dataset, self.rater = dataset, rater
        self.path = dataset.root / RATINGS_FILE
        if self.path.exists() and not self.path.is_file():
            raise DatasetError(f"{self.path} is not a regular file; move it away so votes can be appended there")
        self.ids = dataset.outfit_ids
        self._lock = threading.Lock()
        self.progress = self._replay()

    def _replay(self) -> _Progress:
        progress = _Progress(done={}, stack=[])
        rows = read_ratings(self.path) if self.path.is_file() else []
        for rec in rows:
            if rec["rater"] != self.rater:
                continue
            oid = rec["outfit_id"]
            if rec["label"] == "undo":
                progress.done.pop(oid, None)
                if oid in progress.stack:
                    progress.stack.remove(oid)
            else:
                progress.done[oid] = rec["label"]
                if oid in progress.stack:
                    progress.stack.remove(oid)
                progress.stack.append(oid)
        return progress

    def current(self) -> int | None:
        """Index of the first outfit this rater has neither voted on nor skipped; None when all are done."""
        return next((i for i, oid in enumerate(self.ids) if oid not in self.progress.done), None)

    def state(self) -> dict:
        i = self.current()
        out = {"rater": self.rater, "total": len(self.ids), "n_done": len(self.progress.done),
               "can_undo": bool(self.progress.stack), "dataset": self.dataset.name}
        if i is None:
            return {**out, "done": True}
        return {**out, "done": False, "index": i, "outfit_id": self.ids[i], "position": i + 1,
                "top": f"/image/{i}/top", "bottom": f"/image/{i}/bottom"}

    def vote(self, outfit_id: str, label: str) -> dict:
        if label not in ACTIONS or label == "undo":
            raise ValueError(f"label must be positive, negative or skip, got {label!r}")
        with self._lock:
            i = self.current()
            if i is None or self.ids[i] != outfit_id:
                return {**self.state(), "error": f"outfit {outfit_id} is not the one shown; reloaded"}
            append_vote(self.path, outfit_id, self.rater, label)
            self.progress.done[outfit_id] = label
            self.progress.stack.append(outfit_id)
            return {**self.state(), "saved": f"{outfit_id}: {label}"}

    def undo(self) -> dict:
        with self._lock:
            if not self.progress.stack:
                return {**self.state(), "error": "nothing to undo"}
            oid = self.progress.stack.pop()
            append_vote(self.path, oid, self.rater, "undo")
            self.progress.done.pop(oid, None)
            return {**self.state(), "saved": f"{oid}: undone"}

    def image(self, index: int, part: str) -> Path:
        if not 0 <= index < len(self.ids) or part not in ("top", "bottom"):
            abort(404)
        outfit = self.dataset.outfits[index]
        return outfit.top if part == "top" else outfit.bottom


def create_app(session: LabelSession, port: int | None = None) -> Flask:
    """The page and its API. `port`: the one this server listens on, the only one a Host header may name
    (None: any, for in-process test clients)."""
    app = Flask(__name__)
    token = secrets.token_urlsafe(32)  # in the page, required on every POST

    def refuse(reason: str):
        log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote_addr, reason)
        return jsonify({"error": f"refused: {reason}"}), 403

    @app.before_request
    def same_origin_only():
        name, _, host_port = request.host.rpartition(":") if ":" in request.host else (request.host, "", "")
        if name not in LOCAL_NAMES or (port is not None and host_port != str(port)):
            return refuse(f"Host {request.host[:100]!r} is not this server")
        if request.method == "POST":
            own = f"http://{request.host}"
            origin = request.headers.get("Origin")
            referer = request.headers.get("Referer")
            if origin is not None and origin != own:
                return refuse(f"Origin {origin[:100]!r} is not {own}")
            if origin is None and referer is not None and not (referer == own or referer.startswith(own + "/")):
                return refuse(f"Referer {referer[:100]!r} is not from {own}")
            if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, "").encode(), token.encode()):
                return refuse(f"missing or wrong {TOKEN_HEADER}")
            if not isinstance(request.get_json(silent=True), dict):
                return jsonify({**session.state(), "error": "the body must be a JSON object"}), 400
        return None

    @app.after_request
    def no_framing(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", "default-src 'none'; img-src 'self'; "
                                    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        return response

    @app.get("/")
    def page():
        nonce = secrets.token_urlsafe(16)
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self'; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        html = PAGE.replace("{{nonce}}", nonce).replace("{{token}}", token)
        return html, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                           "Content-Security-Policy": csp}

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    @app.get("/api/state")
    def state():
        return jsonify(session.state())

    @app.post("/api/vote")
    def vote():
        body = request.get_json(silent=True)
        try:
            return jsonify(session.vote(str(body.get("outfit_id", "")), str(body.get("label", ""))))
        except ValueError as exc:
            return jsonify({**session.state(), "error": str(exc)}), 400

    @app.post("/api/undo")
    def undo():
        return jsonify(session.undo())

    @app.get("/image/<int:index>/<part>")
    def image(index: int, part: str):
        return send_file(session.image(index, part), max_age=0)

    return app


def open_session(dataset_dir: str | Path, rater: str) -> LabelSession:
    """Check the dataset (every image must exist and decode) and the rater; DatasetError (one line) if not."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; pass a folder that holds outfits.csv")
    return LabelSession(load_dataset(root, require_labels=False), rater)


def make_label_server(session: LabelSession, port: int = DEFAULT_PORT) -> BaseWSGIServer:
    """A threaded server bound to 127.0.0.1:port (0 picks a free port); DatasetError if the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # a restart right after a stop or kill -9 finds the port's old connections in TIME_WAIT; without this
    # the port stays refused for a minute. A port another process listens on is still refused.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))  # bound here, not by werkzeug, which prints and exits on a taken port
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise DatasetError(
            f"cannot listen on {HOST}:{port} ({exc.strerror or exc}); the port is taken: pass another --port"
        ) from None
    bound = sock.getsockname()[1]
    server = make_server(HOST, bound, create_app(session, bound), threaded=True, fd=sock.fileno())
    server._neipalette_socket = sock  # keep the bound socket alive as long as the server
    return server


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>NeiPalette labelling</title>
<meta name="neipalette-token" content="{{token}}">
<style nonce="{{nonce}}">
 body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f2; color: #222; }
 header { padding: 12px 24px; background: #222; color: #eee; display: flex; gap: 24px; align-items: baseline; }
 header h1 { font-size: 18px; margin: 0; }
 #progress { font-size: 16px; } #oid { font-family: monospace; font-size: 16px; }
 main { display: flex; flex-direction: column; align-items: center; padding: 16px; }
 .pair { display: flex; gap: 24px; }
 .pair figure { margin: 0; text-align: center; }
 .pair img { width: 320px; height: 320px; object-fit: contain; background: #fff; border: 1px solid #ccc; }
 .keys { margin-top: 18px; display: flex; gap: 12px; }
 button { font-size: 16px; padding: 10px 18px; border-radius: 6px; border: 1px solid #888; cursor: pointer; }
 #neg { background: #f3d0d0; } #pos { background: #cfe9d3; } #skip { background: #e6e6e6; } #undo { background: #fff; }
 #status { margin-top: 12px; min-height: 1.4em; font-size: 14px; color: #555; }
 #done { display: none; font-size: 20px; margin-top: 40px; }
 kbd { border: 1px solid #999; border-bottom-width: 2px; border-radius: 3px; padding: 0 4px; font-size: 13px; }
</style></head>
<body>
<header><h1>NeiPalette — is this outfit colour-harmonious?</h1>
 <span id="progress"></span><span>outfit <span id="oid"></span></span><span id="rater"></span></header>
<main>
 <div class="pair" id="pair">
  <figure><img id="top" alt="top"><figcaption>top</figcaption></figure>
  <figure><img id="bottom" alt="bottom"><figcaption>bottom</figcaption></figure>
 </div>
 <div id="done"></div>
 <div class="keys">
  <button id="neg" data-label="negative">negative <kbd>N</kbd> <kbd>&larr;</kbd></button>
  <button id="pos" data-label="positive">positive <kbd>P</kbd> <kbd>&rarr;</kbd></button>
  <button id="skip" data-label="skip">skip <kbd>S</kbd></button>
  <button id="undo">undo <kbd>U</kbd></button>
 </div>
 <div id="status"></div>
</main>
<script nonce="{{nonce}}">
let state = null, busy = false;
const token = document.querySelector('meta[name="neipalette-token"]').content;
const $ = (id) => document.getElementById(id);
function show(s) {
  state = s;
  $("rater").textContent = "rater " + s.rater;
  $("undo").disabled = !s.can_undo;
  if (s.done) {
    $("pair").style.display = "none"; $("done").style.display = "block";
    $("progress").textContent = s.total + " of " + s.total + " done"; $("oid").textContent = "-";
    $("done").textContent = "All " + s.total + " outfits rated. Run: neipalette data aggregate " + s.dataset;
    for (const b of ["neg", "pos", "skip"]) $(b).disabled = true;
  } else {
    $("pair").style.display = "flex"; $("done").style.display = "none";
    for (const b of ["neg", "pos", "skip"]) $(b).disabled = false;
    $("progress").textContent = s.position + " of " + s.total;
    $("oid").textContent = s.outfit_id;
    $("top").src = s.top + "?" + s.outfit_id; $("bottom").src = s.bottom + "?" + s.outfit_id;
  }
  $("status").textContent = s.error ? "! " + s.error : (s.saved ? "saved " + s.saved : "");
  document.body.dataset.position = s.done ? "done" : String(s.position);
}
async function call(url, body) {
  if (busy) return; busy = true;
  try {
    const r = await fetch(url, {method: body ? "POST" : "GET", body: body ? JSON.stringify(body) : undefined,
                                headers: {"Content-Type": "application/json", "X-NeiPalette-Token": token}});
    show(await r.json());
  } catch (e) { $("status").textContent = "! not saved: server unreachable (" + e + ")"; }
  finally { busy = false; }
}
const vote = (label) => state && !state.done && call("/api/vote", {outfit_id: state.outfit_id, label: label});
const undo = () => call("/api/undo", {});
document.addEventListener("keydown", (e) => {
  if (e.repeat || e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key.toLowerCase();
  if (k === "n" || k === "arrowleft") vote("negative");
  else if (k === "p" || k === "arrowright") vote("positive");
  else if (k === "s" || k === " ") { e.preventDefault(); vote("skip"); }
  else if (k === "u" || k === "backspace") { e.preventDefault(); undo(); }
});
for (const b of ["neg", "pos", "skip"]) $(b).addEventListener("click", () => vote($(b).dataset.label));
$("undo").addEventListener("click", undo);
call("/api/state");
</script>
</body></html>
"""

__all__ = ["DEFAULT_PORT", "HOST", "TOKEN_HEADER", "LabelSession", "create_app", "make_label_server", "open_session"]
