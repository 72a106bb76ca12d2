"""Issue 16's hostile probes, run against a checkout: one JSON line per probe, then a table.

    python scripts/hostile_probes.py [--code DIR] [--only NAME,...] [--out probes.jsonl]

Each probe runs the real command lines (`python -m benchmark.run`, `python -m benchmark.report`, `neipalette`)
as subprocesses with PYTHONPATH=DIR (default: this checkout) in a fresh temporary folder with its own SQLite
store and a 12-outfit dataset, and records: exit status, stderr lines, whether a traceback was printed, runs
left RUNNING, job keys with more than one FINISHED fold run, wall seconds. Probes that need a small or
read-only file system mount a tmpfs (root only; skipped otherwise and reported as such).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))
from tests.conftest import make_tiny_dataset  # noqa: E402

TINY = {
    "seed": 0, "archs": ["resnet18"], "baselines": ["chance", "colour_stats"], "protocols": ["cv"],
    "n_splits": 2, "n_repeats": 1, "input_mode": "pair",
    "model": {"weights": "none", "image_size": 32, "n_views": 2, "batch_size": 8},
    "tuning": {"n_trials": 3, "inner_folds": 2, "epochs_min": 2, "epochs_max": 5},
    "log_models": False, "final_models": False,
}
TIMEOUT = 300  # a loaded 2-core machine: start-up alone can take a minute
# long enough (about 30 s of folds) that a second command starts while the first is still working
SLOWER = {"n_repeats": 3, "tuning": {"n_trials": 6, "inner_folds": 2, "epochs_min": 10, "epochs_max": 40}}


class Probe:
    def __init__(self, code: Path, root: Path):
        self.code = code
        self.root = root
        self.data = root / "data"
        make_tiny_dataset(self.data, 12, size=32, seed=0, with_truth=True)
        self.store = f"sqlite:///{root}/mlflow.db"
        self.cache = root / "cache"
        self.cache.mkdir()
        self.env = {**os.environ, "PYTHONPATH": str(code), "MLFLOW_TRACKING_URI": self.store,
                    "NEIPALETTE_CACHE": str(self.cache), "NEIPALETTE_OFFLINE": "1", "MLFLOW_TELEMETRY_DISABLED": "1",
                    "PYTHONUNBUFFERED": "1", "TORCH_HOME": str(root / "torch"), "OMP_NUM_THREADS": "1"}

    def config(self, name="tiny", **changes) -> Path:
        cfg = json.loads(json.dumps(TINY))
        cfg["dataset"] = str(self.data)
        for k, v in changes.items():
            if isinstance(v, dict):
                cfg.setdefault(k, {}).update(v)
            else:
                cfg[k] = v
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def cmd(self, module: str, *args) -> list[str]:
        return [sys.executable, "-m", module, *map(str, args)]

    def start(self, argv, env=None, log="run.log"):
        fh = open(self.root / log, "w")
        return subprocess.Popen(argv, cwd=self.root, env={**self.env, **(env or {})}, stdout=fh, stderr=fh,
                                start_new_session=True, preexec_fn=_default_sigint), fh

    def run(self, argv, env=None, timeout=TIMEOUT, cwd=None):
        t0 = time.perf_counter()
        try:
            p = subprocess.run(argv, cwd=cwd or self.root, env={**self.env, **(env or {})}, capture_output=True, text=True,
                               timeout=timeout)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out, err = "timeout", _text(exc.stdout), _text(exc.stderr)
        return {"rc": rc, "wall_s": round(time.perf_counter() - t0, 1), **_shape(err, out)}

    def runs(self):
        from mlflow.tracking import MlflowClient

        try:
            client = MlflowClient(tracking_uri=self.store)
            ids = [e.experiment_id for e in client.search_experiments()]
            return client.search_runs(ids, max_results=5000) if ids else []
        except Exception as exc:  # noqa: BLE001 - a deliberately broken store
            return exc

    def store_state(self) -> dict:
        runs = self.runs()
        if isinstance(runs, Exception):
            return {"store": f"unreadable ({type(runs).__name__})"}
        running = Counter(r.data.tags.get("neipalette.role", "?") for r in runs if r.info.status == "RUNNING")
        finished = Counter(r.data.tags.get("neipalette.job_key") for r in runs
                           if r.data.tags.get("neipalette.role") == "fold" and r.info.status == "FINISHED")
        parents = [r.info.status for r in runs if r.data.tags.get("neipalette.role") == "parent"]
        failed = Counter(r.info.status for r in runs if r.data.tags.get("neipalette.role") == "fold"
                         and r.info.status != "FINISHED")
        return {"running": dict(running), "parents": parents, "dup_keys": sum(n > 1 for n in finished.values()),
                "finished_keys": len(finished), "unfinished_fold_runs": dict(failed)}

    def wait_for(self, pred, proc, timeout=TIMEOUT) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and proc.poll() is None:
            runs = self.runs()
            if not isinstance(runs, Exception) and pred(runs):
                return True
            time.sleep(0.2)
        return False


def _default_sigint() -> None:
    """A harness started in the background (`cmd &`) has SIGINT ignored, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _text(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def _shape(err: str, out: str = "") -> dict:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return {"stderr_lines": len(lines), "traceback": "Traceback" in err + out, "last": lines[-1][:200] if lines else "",
            "retrying_lines": sum("Retrying (" in ln for ln in lines)}


def _role(runs, role):
    return [r for r in runs if r.data.tags.get("neipalette.role") == role]


def _fold_finished(runs) -> bool:
    return any(r.info.status == "FINISHED" for r in _role(runs, "fold"))


def _kill9_after_first_fold(p: Probe, cfg: Path) -> None:
    proc, fh = p.start(p.cmd("benchmark.run", "--config", cfg, "-q"))
    p.wait_for(_fold_finished, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    fh.close()


def _pair(p: Probe, argv_a, argv_b, env=None) -> dict:
    a, fa = p.start(argv_a, env, "a.log")
    b, fb = p.start(argv_b, env, "b.log")
    for proc in (a, b):
        try:
            proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    fa.close()
    fb.close()
    ea, eb = (p.root / "a.log").read_text(), (p.root / "b.log").read_text()
    return {"rc": [a.returncode, b.returncode], "a": _shape(ea), "b": _shape(eb)}


# -- the probes -------------------------------------------------------------------------------------------
def p_two_resumes(p: Probe) -> dict:
    cfg = p.config(**SLOWER)
    _kill9_after_first_fold(p, cfg)
    return _pair(p, p.cmd("benchmark.run", "--config", cfg, "-q", "--resume"),
                 p.cmd("benchmark.run", "--config", cfg, "-q", "--resume"))


def p_same_shard_twice(p: Probe) -> dict:
    cfg = p.config(**SLOWER)
    argv = p.cmd("benchmark.run", "--config", cfg, "-q", "--group", "g", "--shard", "0/2")
    return _pair(p, argv, argv)


def p_resume_while_running(p: Probe) -> dict:
    cfg = p.config(**SLOWER)
    proc, fh = p.start(p.cmd("benchmark.run", "--config", cfg, "-q"), log="first.log")
    p.wait_for(_fold_finished, proc)
    out = p.run(p.cmd("benchmark.run", "--config", cfg, "-q", "--resume"))
    proc.wait(timeout=240)
    fh.close()
    out["first_rc"] = proc.returncode
    return out


def _set(*kv):
    def probe(p: Probe) -> dict:
        return p.run(p.cmd("benchmark.run", "--config", p.config(), "-q", *[x for s in kv for x in ("--set", s)]))
    return probe


def p_weights_missing(p):
    return _set("model.weights=/nope.pt")(p)


def _weights_file(kind):
    def probe(p: Probe) -> dict:
        path = p.root / "w.pt"
        if kind == "text":
            path.write_text("hello, I am not a state dict\n")
        elif kind == "pickle":
            import pickle
            path.write_bytes(pickle.dumps({"a": 1}))
        else:
            import torch
            torch.save([1, 2, 3], path)
        return _set(f"model.weights={path}")(p)
    return probe


def p_optuna_bogus(p):
    return p.run(p.cmd("benchmark.run", "--config", p.config(), "-q", "--optuna-storage", "bogus://x"))


def p_sigint_startup(p: Probe) -> dict:
    cfg = p.config()
    proc, fh = p.start(p.cmd("benchmark.run", "--config", cfg, "-q"))
    seen = p.wait_for(lambda runs: bool(_role(runs, "parent")), proc)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    fh.close()
    return {"rc": proc.returncode, "parent_seen": seen, **_shape((p.root / "run.log").read_text())}


def _corrupt_db(p: Probe) -> None:
    Path(p.store.removeprefix("sqlite:///")).write_bytes(b"this is not a database" * 100)


def p_corrupt_db_run(p):
    _corrupt_db(p)
    return p.run(p.cmd("benchmark.run", "--config", p.config(), "-q"))


def p_corrupt_db_report(p):
    _corrupt_db(p)
    return p.run(p.cmd("benchmark.report"))


def _mount(p: Probe, size: str, ro_bind_of: Path | None = None) -> Path | None:
    if os.geteuid() != 0:
        return None
    mnt = p.root / "mnt"
    mnt.mkdir()
    if ro_bind_of is None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)
    else:
        subprocess.run(["mount", "--bind", str(ro_bind_of), str(mnt)], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mnt)], check=True)
    p.mounts.append(mnt)
    return mnt


def p_readonly_store(p):
    src = p.root / "store"
    src.mkdir()
    mnt = _mount(p, "", ro_bind_of=src)
    if mnt is None:
        return {"skipped": "needs root"}
    return p.run(p.cmd("benchmark.run", "--config", p.config(), "-q"), env={"MLFLOW_TRACKING_URI": f"sqlite:///{mnt}/mlflow.db"})


def p_readonly_store_with_runs(p):
    """A store with a finished benchmark, then mounted read-only: run and report."""
    src = p.root / "store"
    src.mkdir()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{src}/mlflow.db"}
    cfg = p.config(archs=[])
    first = p.run(p.cmd("benchmark.run", "--config", cfg, "-q"), env=env)
    mnt = _mount(p, "", ro_bind_of=src)
    if mnt is None:
        return {"skipped": "needs root"}
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{mnt}/mlflow.db"}
    return {"setup_rc": first["rc"], "run": p.run(p.cmd("benchmark.run", "--config", cfg, "-q"), env=env),
            "report": p.run(p.cmd("benchmark.report"), env=env)}


def p_unreachable_server(p):
    return p.run(p.cmd("benchmark.run", "--config", p.config(), "-q"), env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
                 timeout=120)


def p_unreachable_server_report(p):
    return p.run(p.cmd("benchmark.report"), env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, timeout=120)


def p_dataset_int(p):
    return _set("dataset=123")(p)


def p_disk_full(p):
    mnt = _mount(p, "2m")
    if mnt is None:
        return {"skipped": "needs root"}
    # store, artifacts (./mlruns) and the Optuna journal all on the small file system
    out = p.run(p.cmd("benchmark.run", "--config", p.config(log_models=True), "-q"),
                env={"MLFLOW_TRACKING_URI": f"sqlite:///{mnt}/mlflow.db"}, timeout=240, cwd=mnt)
    p.store = f"sqlite:///{mnt}/mlflow.db"
    return out


def p_cache_is_file(p):
    f = p.root / "cachefile"
    f.write_text("x")
    return p.run(p.cmd("benchmark.run", "--config", p.config(), "-q"), env={"NEIPALETTE_CACHE": str(f)})


def p_cache_readonly(p):
    src = p.root / "rocache"
    src.mkdir()
    mnt = _mount(p, "", ro_bind_of=src)
    if mnt is None:
        return {"skipped": "needs root"}
    return p.run(p.cmd("benchmark.run", "--config", p.config(), "-q"), env={"NEIPALETTE_CACHE": str(mnt)})


def _poison_cache(p: Probe, make) -> dict:
    cfg = p.config()
    first = p.run(p.cmd("benchmark.run", "--config", cfg, "-q"))
    n = 0
    for f in (p.cache / "embeddings").rglob("*.npy"):
        np.save(f, make(np.load(f)))
        n += 1
    out = p.run(p.cmd("benchmark.run", "--config", cfg, "-q"))
    out.update(first_rc=first["rc"], poisoned=n)
    return out


def p_cache_wrong_shape(p):
    return _poison_cache(p, lambda a: np.zeros(7, dtype=np.float32))


def p_cache_nan(p):
    return _poison_cache(p, lambda a: np.full_like(a, np.nan))


def p_lr_reversed(p):
    return _set("tuning.lr_min=0.1", "tuning.lr_max=0.001")(p)


def p_image_size_0(p):
    return _set("model.image_size=0")(p)


def p_seed_negative(p):
    return _set("seed=-1")(p)


def p_archs_string(p):
    return _set("archs=resnet18")(p)


def p_image_vanishes(p: Probe) -> dict:
    cfg = p.config(**SLOWER)
    proc, fh = p.start(p.cmd("benchmark.run", "--config", cfg, "-q"))
    p.wait_for(_fold_finished, proc)
    victim = p.data / "images" / "o003_top.png"
    saved = victim.read_bytes()
    victim.unlink()
    proc.wait(timeout=240)
    fh.close()
    victim.write_bytes(saved)
    out = {"rc": proc.returncode, **_shape((p.root / "run.log").read_text())}
    out["tracebacks"] = (p.root / "run.log").read_text().count("Traceback")
    return out


def p_final_model_fails(p: Probe) -> dict:
    cfg = p.config(final_models=True)
    wrapper = p.root / "wrap.py"
    wrapper.write_text(
        "import sys, benchmark.tracking.write as w\n"
        "def boom(*a, **k):\n    raise OSError(28, 'No space left on device', '/simulated/final')\n"
        "w.Tracker.log_final = boom\n"
        "from benchmark.run import main\nsys.argv[0] = 'benchmark.run'\nmain()\n")
    return p.run([sys.executable, str(wrapper), "--config", cfg, "-q"])


def p_report_unknown_run(p):
    return p.run(p.cmd("benchmark.report", "--run-id", "0123456789abcdef"))


def _neipalette(*args) -> list[str]:
    return [sys.executable, "-m", "neipalette", *map(str, args)]


def p_cli_check_missing(p):
    return p.run(_neipalette("data", "check", p.root / "nowhere"))


def p_cli_synth_readonly(p):
    src = p.root / "ro"
    src.mkdir()
    mnt = _mount(p, "", ro_bind_of=src)
    if mnt is None:
        return {"skipped": "needs root"}
    return p.run(_neipalette("data", "synth", "--outfits", "4", "--out", mnt / "ds"))


# -- issue 25: a paused lock holder, concurrent votes, the label server, repeated config entries ------------
_PAUSED_WRITER = (
    "import sqlite3, sys, time\nfrom pathlib import Path\nfrom benchmark.tracking.lease import FileLease\n"
    "FileLease(Path(sys.argv[1]), sys.argv[2], '0/1').acquire()\n"
    "db = sqlite3.connect(sys.argv[3], isolation_level=None)\ndb.execute('BEGIN EXCLUSIVE')\n"
    "print('holding', flush=True)\ntime.sleep(600)\n")


def p_paused_lock_holder(p: Probe) -> dict:
    """The lease holder frozen while it holds SQLite's write lock (reads blocked): the next worker of its shard."""
    cfg = p.config("grouped", archs=[])
    first = p.run(p.cmd("benchmark.run", "--config", cfg, "-q", "--group", "g"))
    if first["rc"] != 0:
        return {"harness_error": f"group run failed: {first}"}
    runs = p.runs()
    (parent,) = [r.info.run_id for r in _role(runs, "parent")]
    holder = subprocess.Popen([sys.executable, "-c", _PAUSED_WRITER, str(p.root), parent, str(p.root / "mlflow.db")],
                              cwd=p.root, env=p.env, stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        out = p.run(p.cmd("benchmark.run", "--config", cfg, "-q", "--group", "g"),
                    env={"NEIPALETTE_STORE_LOCK_WAIT_S": "5"})
    finally:
        holder.kill()
        holder.wait()
    out["names_holder"] = f"pid {holder.pid}" in out["last"]
    return out


_STRESS = """
import multiprocessing as mp, sys
from pathlib import Path
from neipalette.data.ratings import append_vote, read_ratings
path = Path(sys.argv[1])
def write(w):
    for k in range(300):
        append_vote(path, f"o{w}-{k}", f"r{w}", "positive")
def read(stop):
    while not stop.is_set():
        try:
            read_ratings(path) if path.exists() else None
        except Exception:
            pass
if __name__ == "__main__":
    stop = mp.Event()
    reader = mp.Process(target=read, args=(stop,)); reader.start()
    procs = [mp.Process(target=write, args=(w,)) for w in range(8)]
    [q.start() for q in procs]; [q.join() for q in procs]
    stop.set(); reader.join()
    raw = path.read_bytes()
    try:
        n = len(read_ratings(path))
    except Exception as exc:
        n = -1
    print(2400 - n, int(b"\\0" in raw))
"""


def p_vote_stress(p: Probe) -> dict:
    """8 processes x 300 append_vote beside a reader, 5 times: acknowledged rows lost, NUL bytes."""
    lost, nul = [], 0
    for i in range(5):
        path = p.root / f"ratings{i}.csv"
        r = subprocess.run([sys.executable, "-c", _STRESS, str(path)], cwd=p.root, env=p.env, capture_output=True,
                           text=True, timeout=TIMEOUT)
        a, b = (r.stdout.split() + ["?", "?"])[:2]
        lost.append(int(a) if a.lstrip("-").isdigit() else a)
        nul += b == "1"
    return {"rc": 0, "lost_rows": lost, "runs_with_nul": nul}


def p_vote_after_unterminated_row(p: Probe) -> dict:
    path = p.data / "ratings.csv"
    code = ("import sys; from pathlib import Path; from neipalette.data.ratings import append_vote, read_ratings\n"
            "p = Path(sys.argv[1]); append_vote(p, 'o000', 'ann', 'positive')\n"
            "p.write_bytes(p.read_bytes().rstrip(b'\\n')); append_vote(p, 'o001', 'ann', 'negative')\n"
            "print(len(read_ratings(p)))")
    r = subprocess.run([sys.executable, "-c", code, str(path)], cwd=p.root, env=p.env, capture_output=True, text=True)
    return {"rc": r.returncode, "rows_kept_of_2": r.stdout.strip(), **_shape(r.stderr)}


def _label_server(p: Probe, rater: str = "ann"):
    proc = subprocess.Popen(_neipalette("label", p.data, "--rater", rater, "--port", "0"), cwd=p.root, env=p.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    import re

    match = re.search(r"open (http://127\.0\.0\.1:(\d+))/", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"label server did not start: {line!r} {proc.stderr.read()[-300:]}")
    return proc, match.group(1)


def _http(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _with_server(p: Probe, act) -> dict:
    code = ("import sys; from pathlib import Path; from neipalette.data.ratings import append_vote\n"
            "append_vote(Path(sys.argv[1]), 'o000', 'ann', 'positive')")
    subprocess.run([sys.executable, "-c", code, str(p.data / "ratings.csv")], cwd=p.root, env=p.env, check=True)
    proc, url = _label_server(p)
    try:
        out = act(url)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    text = (p.data / "ratings.csv").read_text()
    return {**out, "undo_rows": text.count(",undo,"), "server_log_lines": len(err.splitlines()),
            "traceback": "Traceback" in err}


def p_label_csrf_undo(p: Probe) -> dict:
    """A cross-origin form POST to /api/undo (any page the rater has open)."""
    return _with_server(p, lambda url: dict(zip(("rc", "body"), _http(
        url + "/api/undo", "POST", b"x=1", {"Origin": "http://evil.example",
                                            "Content-Type": "application/x-www-form-urlencoded"}))))


def p_label_foreign_host(p: Probe) -> dict:
    """DNS rebinding: the page asked for under another Host; framing headers."""
    def act(url):
        import urllib.request

        status, _ = _http(url + "/api/state", headers={"Host": "evil.example:" + url.rsplit(":", 1)[1]})
        with urllib.request.urlopen(url + "/", timeout=30) as r:
            frame = r.headers.get("X-Frame-Options"), "frame-ancestors" in (r.headers.get("Content-Security-Policy") or "")
        return {"rc": status, "x_frame_options": frame[0], "csp_frame_ancestors": frame[1]}
    return _with_server(p, act)


def p_label_json_array(p: Probe) -> dict:
    """A JSON array body from the page's own origin (with its token when it has one)."""
    def act(url):
        import re

        _, page = _http(url + "/")
        token = re.search(r'name="neipalette-token" content="([^"]+)"', page)
        headers = {"Content-Type": "application/json", "Origin": url,
                   **({"X-NeiPalette-Token": token.group(1)} if token else {})}
        return dict(zip(("rc", "body"), _http(url + "/api/vote", "POST", b"[1, 2]", headers)))
    out = _with_server(p, act)
    out["body"] = out["body"][:120]
    return out


def p_label_ratings_is_dir(p: Probe) -> dict:
    (p.data / "ratings.csv").mkdir()
    proc = subprocess.Popen(_neipalette("label", p.data, "--rater", "ann", "--port", "0"), cwd=p.root, env=p.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
        return {"rc": proc.returncode, **_shape(err, out)}
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"rc": "started (serving)", "stderr_lines": 0, "traceback": False, "last": ""}


def p_label_rater_newline(p: Probe) -> dict:
    code = ("import sys\ntry:\n    from neipalette.data.labelling import open_session\n"
            "except ImportError:  # a checkout before the data room\n    from neipalette.labelling import open_session\n"
            "from neipalette.errors import DatasetError\n"
            "try:\n    open_session(sys.argv[1], 'ann\\n'); print('accepted')\n"
            "except DatasetError as e:\n    print('refused:', e)")
    r = subprocess.run([sys.executable, "-c", code, str(p.data)], cwd=p.root, env=p.env, capture_output=True, text=True)
    return {"rc": r.returncode, "result": r.stdout.strip()[:120], **_shape(r.stderr)}


def p_archs_twice(p):
    return _set("archs=[resnet18, resnet18]")(p)


def p_baselines_twice(p):
    return _set("baselines=[chance, chance]", "archs=[]")(p)


def p_protocols_empty(p):
    return _set("protocols=[]")(p)


# -- issue 25, findings 8-10: config values, YAML, experiments, sweep/coverage boundaries, predict, importer --
def _yaml_text(p: Probe, text: str) -> Path:
    """The tiny config with `text` prepended (its own seed and dataset lines replace the tiny config's)."""
    cfg = p.config()
    keep = [ln for ln in cfg.read_text().splitlines() if not ln.startswith(("seed", "dataset"))]
    cfg.write_text(text + "\n".join(keep) + "\n")
    return cfg


ALIAS_BOMB = "dataset: [&a [x,x,x,x,x,x,x,x,x,x],\n" + "".join(  # 10^9 x once expanded
    f"  &{b} [{','.join([f'*{a}'] * 10)}],\n" for a, b in zip("abcdefgh", "bcdefghi")) + "  x]\n"


def p_duplicate_yaml_keys(p):
    return p.run(p.cmd("benchmark.run", "--config", _yaml_text(p, f"seed: 1\nseed: 2\ndataset: {p.data}\n"), "-q"))


def p_alias_bomb(p):
    return p.run(p.cmd("benchmark.run", "--config", _yaml_text(p, "seed: 0\n" + ALIAS_BOMB), "-q"), timeout=120)


def p_generate_negative(p):
    return p.run(p.cmd("benchmark.run", "--config", p.config(dataset=str(p.root / "gen"), generate={"outfits": -3}),
                       "-q"))


def p_deleted_experiment(p):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=p.store)
    client.delete_experiment(client.create_experiment("gone"))
    out = p.run(p.cmd("benchmark.run", "--config", p.config(experiment="gone"), "-q"))
    out["restore_named"] = "mlflow experiments restore --experiment-id" in out["last"]
    return out


def _sweep_config(p: Probe) -> Path:
    bench = {k: v for k, v in TINY.items() if k not in ("seed",)}
    path = p.root / "sweep.yaml"
    path.write_text(yaml.safe_dump({"sizes": [12, 16], "generator": {"seed": 3, "image_size": 48},
                                    "data_dir": str(p.root / "sweep-data"), "benchmark": bench}))
    return path


def p_sweep_unreachable(p):
    return p.run(p.cmd("benchmark.sweep", "--config", _sweep_config(p), "-q"),
                 env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, timeout=120)


def p_sweep_corrupt_store(p):
    _corrupt_db(p)
    return p.run(p.cmd("benchmark.sweep", "--config", _sweep_config(p), "-q"))


def p_coverage_cache_under_a_file(p):
    (p.root / "afile").write_text("x")
    cfg = p.config(dataset=str(p.root / "gen"), generate={"outfits": 12, "seed": 1})
    return p.run(p.cmd("benchmark.coverage", "--config", cfg, "--quick", "--no-log", "--models", "chance",
                       "--workers", "1", "--cache-dir", p.root / "afile" / "cache"))


def _dropping_server():
    """A TCP port that accepts and closes every connection: the start-up check passes, every HTTP request fails."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv


def p_server_drops_connections(p):
    srv = _dropping_server()
    try:
        out = p.run(p.cmd("benchmark.run", "--config", p.config(**{"archs": []}), "-q"),
                    env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{srv.getsockname()[1]}"}, timeout=240)
    finally:
        srv.close()
    return out


def p_ui_hint_server_store(p):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                               f"sqlite:///{p.root}/server.db", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1"], cwd=p.root, env=p.env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end:  # the server's first start creates its tables
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
            except OSError:
                time.sleep(1)
        r = subprocess.run(p.cmd("benchmark.run", "--config", p.config(archs=[]), "-q"), cwd=p.root,
                           env={**p.env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}, capture_output=True,
                           text=True, timeout=TIMEOUT)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    hint = next((ln for ln in r.stdout.splitlines() if ln.startswith("open the UI")), "")
    return {"rc": r.returncode, "hint": hint, "hint_is_url": hint.startswith("open the UI:  http"), **_shape(r.stderr)}


def _pair_images(p: Probe) -> list[str]:
    import csv

    with open(p.data / "outfits.csv") as fh:
        row = next(csv.DictReader(fh))
    return [str(p.data / row["top"]), str(p.data / row["bottom"])]


def p_predict_out_folder(p):
    return p.run(_neipalette("predict", "--model", "runs:/0123/model", *_pair_images(p), "--out", p.root))


def p_predict_out_under_file(p):
    (p.root / "afile").write_text("x")
    out = p.run(_neipalette("predict", "--model", "runs:/0123/model", *_pair_images(p), "--out",
                            p.root / "afile" / "p.csv"))
    out["partial_files"] = len(list(p.root.rglob("*.partial")))
    return out


def p_df2_deep_json(p):
    import importlib

    make_split = importlib.import_module("tests.data.test_deepfashion2").make_split
    split = make_split(p.root / "df2")
    (split / "annos" / "000002.json").write_text('{"item1": ' + "[" * 200_000 + "]" * 200_000 + "}")
    return p.run(_neipalette("data", "import-deepfashion2", "--root", split, "--out", p.root / "out"))


PROBES = {
    "1a two --resume at once": p_two_resumes,
    "1b --resume while a run is live": p_resume_while_running,
    "1c same --shard twice": p_same_shard_twice,
    "2a weights=/nope.pt": p_weights_missing,
    "2b --optuna-storage bogus://x": p_optuna_bogus,
    "2c SIGINT during start-up": p_sigint_startup,
    "3a weights file is text": _weights_file("text"),
    "3b weights file is a pickle": _weights_file("pickle"),
    "3c weights file is a list": _weights_file("list"),
    "3d corrupt mlflow.db (run)": p_corrupt_db_run,
    "3e corrupt mlflow.db (report)": p_corrupt_db_report,
    "3f read-only store dir (empty)": p_readonly_store,
    "3g read-only store with runs": p_readonly_store_with_runs,
    "3h tracking server unreachable (run)": p_unreachable_server,
    "3i tracking server unreachable (report)": p_unreachable_server_report,
    "3j --set dataset=123": p_dataset_int,
    "3k disk full (2 MB tmpfs: store, artifacts)": p_disk_full,
    "4a NEIPALETTE_CACHE is a file": p_cache_is_file,
    "4b read-only empty cache dir": p_cache_readonly,
    "4c cache entries of the wrong shape": p_cache_wrong_shape,
    "4d cache entries full of NaN": p_cache_nan,
    "5a lr_min > lr_max": p_lr_reversed,
    "5b model.image_size=0": p_image_size_0,
    "5c seed=-1": p_seed_negative,
    "5d archs=resnet18 (a string)": p_archs_string,
    "6a image deleted mid-run": p_image_vanishes,
    "6b final model step fails": p_final_model_fails,
    "7a report --run-id unknown": p_report_unknown_run,
    "7b neipalette data check missing dir": p_cli_check_missing,
    "7c neipalette data synth to read-only dir": p_cli_synth_readonly,
    "8a next worker while the lease holder is paused holding SQLite's lock": p_paused_lock_holder,
    "8b 8 processes x 300 votes + a reader, 5 times": p_vote_stress,
    "8c a vote after a last row without newline": p_vote_after_unterminated_row,
    "8d label: cross-origin form POST /api/undo": p_label_csrf_undo,
    "8e label: Host evil.example, framing headers": p_label_foreign_host,
    "8f label: JSON array body": p_label_json_array,
    "8g label: ratings.csv is a directory": p_label_ratings_is_dir,
    "8h label: rater 'ann\\n'": p_label_rater_newline,
    "9a archs listed twice": p_archs_twice,
    "9b baselines listed twice": p_baselines_twice,
    "9c protocols=[]": p_protocols_empty,
    "10a tuning.lr_max=.inf": _set("tuning.lr_max=.inf"),
    "10b tuning.lr_max=1e308": _set("tuning.lr_max=1e308"),
    "10c fixed learning_rate=1e308": _set("tuning.enabled=false", "tuning.learning_rate=1e308"),
    "10d model.weight_decay=.inf": _set("model.weight_decay=.inf"),
    "10e model.image_size=60000": _set("model.image_size=60000"),
    "10f seed=2**64": _set(f"seed={2**64}"),
    "10g --set model=null": _set("model=null"),
    "10h generate.outfits=-3": p_generate_negative,
    "10i experiment name of 5,000 characters": _set("experiment=" + "x" * 5000),
    "10j empty experiment name": _set("experiment=''"),
    "10k deleted experiment": p_deleted_experiment,
    "10l a YAML key given twice": p_duplicate_yaml_keys,
    "10m 300-byte alias bomb in dataset:": p_alias_bomb,
    "11a sweep: tracking server unreachable": p_sweep_unreachable,
    "11b sweep: corrupt mlflow.db": p_sweep_corrupt_store,
    "11c coverage: --cache-dir under a file": p_coverage_cache_under_a_file,
    "12a server accepts and drops connections (urllib3 Retrying lines)": p_server_drops_connections,
    "12b 'open the UI' hint on a server store": p_ui_hint_server_store,
    "12c predict --out is a folder": p_predict_out_folder,
    "12d predict --out under a file": p_predict_out_under_file,
    "12e DeepFashion2 annotation 200,000 levels deep": p_df2_deep_json,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, default=HERE, help="checkout whose code the probes run")
    ap.add_argument("--only", default="", help="comma-separated probe name prefixes (e.g. 1a,3d)")
    ap.add_argument("--out", type=Path, default=None, help="also append the JSON lines to this file")
    args = ap.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    for name, fn in PROBES.items():
        if only and not any(name.startswith(o) for o in only):
            continue
        root = Path(tempfile.mkdtemp(prefix="probe-"))
        p = Probe(args.code.resolve(), root)
        p.mounts = []
        t0 = time.perf_counter()
        try:
            out = fn(p)
            out["after"] = p.store_state()
        except Exception as exc:  # noqa: BLE001 - a probe harness problem, reported as such
            out = {"harness_error": f"{type(exc).__name__}: {exc}"}
        finally:
            for m in reversed(p.mounts):
                subprocess.run(["umount", "-l", str(m)], check=False)
        line = json.dumps({"probe": name, "total_s": round(time.perf_counter() - t0, 1), **out})
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(line + "\n")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
