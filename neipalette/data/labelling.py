"""The labelling page behind `neipalette label`: one outfit at a time, votes appended to ratings.csv.

A small Flask app served on 127.0.0.1 only. Every vote is appended and fsync'd (`neipalette.data.ratings`)
before the page is told it was saved, so killing the server loses nothing already clicked. The page
always shows the rater's first outfit (in outfits.csv order) without a vote or skip; undo clears the
rater's most recent vote or skip (replayed from ratings.csv, so it works across restarts too). Once every
outfit is voted or skipped, the page offers the skipped ones again in a second round (`revisit`).

A vote names the outfit *and* the digests of the two images the page displayed; a vote whose outfit or
images are not the current ones is refused (409 with the current state, which the page shows). The page
accepts keys only once both images of an outfit have loaded; keys pressed before (while a save is in
flight or the next pictures load) are queued and applied one per outfit, each after that outfit's images
are on screen.

Other web pages the rater has open must not vote for them: a request whose Host is not this server's
(`127.0.0.1:<port>` / `localhost:<port>`: DNS rebinding) is refused, and so is a POST whose Origin or Referer is
another origin or that lacks the per-session token the page carries (403 and one log line). The page may
not be framed (X-Frame-Options, CSP frame-ancestors) and runs only its own script (CSP nonce).

This module is the server (the session, the HTTP handlers and their checks); the page it serves, HTML, CSS
and script, is `neipalette.data.label_page`.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import shlex
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, abort, jsonify, request, send_file
from werkzeug.serving import BaseWSGIServer, make_server

from neipalette.colour.imaging import file_digest
from neipalette.data.dataset import Dataset, load_dataset
from neipalette.data.label_page import PAGE
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
        self._index = {oid: i for i, oid in enumerate(self.ids)}
        self._lock = threading.Lock()
        self.progress = self._replay()
        self._round: list[str] | None = None  # the skipped outfits offered again, in outfits.csv order
        self._passed: set[str] = set()  # skipped again in this round: not offered a third time in it
        self.restart = f"neipalette label {shlex.quote(str(dataset.root))} --rater {rater}"

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

    def skipped(self) -> list[str]:
        """This rater's skipped outfits, in outfits.csv order."""
        return [oid for oid in self.ids if self.progress.done.get(oid) == "skip"]

    def current(self) -> int | None:
        """Index of the first outfit this rater has neither voted on nor skipped; in a second round, the first
        skipped outfit not skipped again; None when there is none."""
        i = next((i for i, oid in enumerate(self.ids) if oid not in self.progress.done), None)
        if i is None and self._round is not None:
            i = next((self._index[oid] for oid in self._round
                      if self.progress.done.get(oid) == "skip" and oid not in self._passed), None)
        return i

    def digests(self, index: int) -> tuple[str, str]:
        """Short SHA-256 digests of the outfit's top and bottom files: what the page displays, by content
        (`file_digest`: memoised on path, size and mtime, so a file changed in place gets a new one)."""
        outfit = self.dataset.outfits[index]
        return file_digest(outfit.top)[:16], file_digest(outfit.bottom)[:16]

    def state(self) -> dict:
        i = self.current()
        out = {"rater": self.rater, "total": len(self.ids), "n_done": len(self.progress.done),
               "n_skipped": len(self.skipped()), "can_undo": bool(self.progress.stack),
               "dataset": self.dataset.name, "restart": self.restart}
        if i is None:
            return {**out, "done": True}
        top, bottom = self.digests(i)
        oid = self.ids[i]
        round_info = {}
        if self._round is not None and oid in self._round:
            round_info = {"round": "skipped", "round_position": self._round.index(oid) + 1,
                          "round_total": len(self._round)}
        return {**out, **round_info, "done": False, "index": i, "outfit_id": oid, "position": i + 1,
                "top_digest": top, "bottom_digest": bottom,
                "top": f"/image/{i}/top?d={top}", "bottom": f"/image/{i}/bottom?d={bottom}"}

    def vote(self, outfit_id: str, label: str, top: str | None = None, bottom: str | None = None) -> dict:
        """Record `label` for `outfit_id` if it is the current outfit and (when given) `top`/`bottom` are the
        digests of its current images; otherwise the current state with `conflict` set and nothing written."""
        if label not in ACTIONS or label == "undo":
            raise ValueError(f"label must be positive, negative or skip, got {label!r}")
        with self._lock:
            i = self.current()
            if i is None or self.ids[i] != outfit_id:
                return {**self.state(), "conflict": True,
                        "error": f"outfit {outfit_id} is not the one to rate now; not saved, reloaded"}
            if (top, bottom) != (None, None) and (top, bottom) != self.digests(i):
                return {**self.state(), "conflict": True,
                        "error": f"the images shown for outfit {outfit_id} are not its current ones; not saved, "
                                 "reloaded"}
            append_vote(self.path, outfit_id, self.rater, label)
            self.progress.done[outfit_id] = label
            if outfit_id in self.progress.stack:
                self.progress.stack.remove(outfit_id)
            self.progress.stack.append(outfit_id)
            if label == "skip" and self._round is not None:
                self._passed.add(outfit_id)
            return {**self.state(), "saved": f"{outfit_id}: {label}"}

    def undo(self) -> dict:
        with self._lock:
            if not self.progress.stack:
                return {**self.state(), "error": "nothing to undo"}
            oid = self.progress.stack.pop()
            append_vote(self.path, oid, self.rater, "undo")
            self.progress.done.pop(oid, None)
            self._passed.discard(oid)
            return {**self.state(), "saved": f"{oid}: undone"}

    def revisit(self) -> dict:
        """Start a round over the skipped outfits (the page offers it once every outfit is voted or skipped)."""
        with self._lock:
            skipped = self.skipped()
            if not skipped:
                return {**self.state(), "error": "no skipped outfits"}
            self._round, self._passed = skipped, set()
            return self.state()

    def image(self, index: int, part: str) -> Path:
        if not 0 <= index < len(self.ids) or part not in ("top", "bottom"):
            abort(404)
        outfit = self.dataset.outfits[index]
        return outfit.top if part == "top" else outfit.bottom


def _csp(nonce: str | None = None) -> str:
    """The Content-Security-Policy: nothing but this server's images and API, never framed; the page's own
    script and style run by `nonce`."""
    scripts = f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; " if nonce else ""
    return (f"default-src 'none'; {scripts}img-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")


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
        response.headers.setdefault("Content-Security-Policy", _csp())
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        return response

    @app.get("/")
    def page():
        nonce = secrets.token_urlsafe(16)
        html = PAGE.replace("{{nonce}}", nonce).replace("{{token}}", token)
        return html, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                           "Content-Security-Policy": _csp(nonce)}

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    @app.get("/api/state")
    def state():
        return jsonify(session.state())

    @app.post("/api/vote")
    def vote():
        body = request.get_json(silent=True)
        top, bottom = body.get("top"), body.get("bottom")
        if not isinstance(top, str) or not isinstance(bottom, str):
            return jsonify({**session.state(), "error": "a vote needs the digests of the images shown (top, bottom)"}), 400
        try:
            out = session.vote(str(body.get("outfit_id", "")), str(body.get("label", "")), top, bottom)
        except ValueError as exc:
            return jsonify({**session.state(), "error": str(exc)}), 400
        return jsonify(out), 409 if out.get("conflict") else 200

    @app.post("/api/revisit")
    def revisit():
        return jsonify(session.revisit())

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


__all__ = ["DEFAULT_PORT", "HOST", "TOKEN_HEADER", "LabelSession", "create_app", "make_label_server", "open_session"]
