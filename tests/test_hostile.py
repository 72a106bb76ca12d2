"""Issue 16: hostile input and a flaky machine. Every failure is one line, nothing is left RUNNING.

The bad-input list runs through the command lines in-process (`CliRunner`); what the command would log at
WARNING and above counts as stderr too (the CLIs send it there). A few tests start real processes: two
workers on one SQLite store, and one corrupt store seen from a fresh interpreter.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.benchmark.test_runner import (_assert_exactly_once, _config, _explain, _invoke, _nothing_running,
                                         _planned_keys, _role)
from tests.helpers import all_runs as _all_runs
from tests.helpers import mlflow_client as _client

REPO = Path(__file__).resolve().parents[1]
BASELINES_ONLY = {"archs": [], "baselines": ["chance", "colour_stats"], "protocols": ["cv"]}


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.extend(self.format(record).splitlines())


@pytest.fixture
def logged():
    """WARNING+ log lines (with any traceback) emitted while a command runs in-process."""
    handler = _Lines()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler.lines
    root.removeHandler(handler)


def _one_line_failure(result, logged: list[str], code: int | None = 2, *, contains: str = "") -> str:
    """Exactly one line on stderr (log output included), exit status `code` (any non-zero when None)."""
    out = result.stderr.strip().splitlines() + logged
    assert result.exit_code != 0, _explain(result)
    if code is not None:
        assert result.exit_code == code, _explain(result)
    assert isinstance(result.exception, SystemExit), _explain(result)  # not an exception escaping the CLI
    text = "\n".join(out) + result.stdout
    assert "Traceback" not in text, text
    assert len(out) == 1, out
    assert out[0].startswith("error: "), out
    assert contains.lower() in out[0].lower(), out[0]
    return out[0]


def _no_run_left_running(store: str) -> None:
    db = Path(store.removeprefix("sqlite:///"))
    if db.exists() and db.read_bytes()[:15] == b"SQLite format 3":
        _nothing_running(store)


# -- 5. config ranges and types: refused before any run exists ------------------------------------------
@pytest.mark.parametrize("args, names", [
    (["--set", "tuning.lr_min=0.1", "--set", "tuning.lr_max=0.001"], "tuning.lr_min"),
    (["--set", "tuning.lr_min=0"], "tuning.lr_min"),
    (["--set", "tuning.epochs_min=0"], "tuning.epochs_min"),
    (["--set", "tuning.epochs_min=9", "--set", "tuning.epochs_max=3"], "tuning.epochs_max"),
    (["--set", "model.image_size=0"], "model.image_size"),
    (["--set", "seed=-1"], "seed"),
    (["--seed", "-1"], "seed"),
    (["--set", "archs=resnet18"], "expected a list"),
    (["--set", "archs=[resnet18, resnet18]"], "archs: 'resnet18' listed twice"),  # issue 25.6: every job twice
    (["--set", "baselines=[chance, colour_stats, chance]"], "baselines: 'chance' listed twice"),
    (["--set", "protocols=[]"], "protocols: empty"),  # issue 25.8: exit 0 after running nothing
    (["--set", "dataset=123"], "dataset"),
    # issue 25.8: values that failed fold by fold, "(unexpected)", or ran nothing
    (["--set", "tuning.lr_max=.inf"], "tuning.lr_max: expected a finite number"),
    (["--set", "tuning.lr_max=1e308"], "tuning.lr_max: must be between"),
    (["--set", "tuning.enabled=false", "--set", "tuning.learning_rate=1e308"], "tuning.learning_rate"),
    (["--set", "model.weight_decay=.inf"], "model.weight_decay: expected a finite number"),
    (["--set", "model.image_size=60000"], "model.image_size: must be between 32 and 1024"),
    (["--set", f"seed={2**64}"], "seed: must be between 0 and 4294967295"),
    (["--set", "model=null"], "model: a section, not null"),
    (["--set", "generate={outfits: -3}"], "generate.outfits"),
    (["--set", "experiment=''"], "experiment: MLflow needs a name"),
    (["--set", "experiment=" + "x" * 5000], "experiment: MLflow needs a name"),
    (["--set", "dataset={a: 1, a: 2}"], "duplicate key 'a'"),
    (["--set", "model.weights=/nope.pt"], "/nope.pt"),
    (["--optuna-storage", "bogus://x"], "bogus://x"),
    (["--shard", "0/2"], "--group"),
])
def test_bad_input_is_one_line_and_creates_no_run(tmp_path, store, logged, args, names):
    result = _invoke(_config(tmp_path), *args)
    _one_line_failure(result, logged, contains=names)
    db = Path(store.removeprefix("sqlite:///"))
    assert not db.exists() or _all_runs(store, None) == []


@pytest.mark.parametrize("kind", ["text", "pickle", "list", "empty"])
def test_weights_file_that_is_not_a_state_dict(tmp_path, store, logged, kind):
    path = tmp_path / "w.pt"
    if kind == "text":
        path.write_text("not a state dict\n")
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"a": 1}))
    elif kind == "list":
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(b"")
    result = _invoke(_config(tmp_path), "--set", f"model.weights={path}")
    line = _one_line_failure(result, logged, contains=str(path))
    assert "state dict" in line
    assert _all_runs(store, None) == []


# -- 3. the store: corrupt, read-only, unreachable -----------------------------------------------------
def _corrupt(store: str) -> None:
    Path(store.removeprefix("sqlite:///")).write_bytes(b"this is not a database" * 100)


def test_corrupt_store_run_and_report(tmp_path, store, logged):
    _corrupt(store)
    line = _one_line_failure(_invoke(_config(tmp_path)), logged, contains="mlflow.db")
    assert "corrupt" in line or "not an SQLite database" in line
    logged.clear()
    from benchmark.report.cli import main as report

    line = _one_line_failure(CliRunner().invoke(report, []), logged, contains="mlflow.db")
    assert "not an SQLite database" in line


def test_real_processes_print_one_line(tmp_path, store, monkeypatch):
    """The real command line, MLflow's own logging included: a corrupt store (run, report), and a failure
    after a fresh store was created (MLflow logs its table creation at INFO)."""
    _corrupt(store)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    fresh = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/fresh.db"}
    config = str(_config(tmp_path, **BASELINES_ONLY))
    for argv, environ, says in ((["-m", "benchmark.run", "--config", config, "-q"], env, "not an SQLite database"),
                                (["-m", "benchmark.report"], env, "not an SQLite database"),
                                (["-m", "benchmark.run", "--config", config, "-q", "--optuna-storage", "bogus://x"],
                                 fresh, "bogus://x")):
        p = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=environ, capture_output=True, text=True,
                           timeout=300)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
        assert says in lines[0]
    assert Path(tmp_path / "fresh.db").exists() and _all_runs(fresh["MLFLOW_TRACKING_URI"], None) == []


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nothing can be written to: a read-only bind mount as root, else chmod 555."""
    src = tmp_path / "ro"
    src.mkdir()
    if os.geteuid() != 0:
        src.chmod(0o555)
        yield src
        src.chmod(0o755)
        return
    mnt = tmp_path / "ro-mnt"
    mnt.mkdir()
    ok = subprocess.run(["mount", "--bind", str(src), str(mnt)], capture_output=True).returncode == 0 and \
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mnt)], capture_output=True).returncode == 0
    if ok:
        yield mnt
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        return
    # root without mount rights (a container): a folder below a regular file can be neither made nor written
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder would be")
    yield blocker / "ro"


def test_read_only_store_is_one_line(tmp_path, store, logged, read_only_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{read_only_dir}/mlflow.db")
    line = _one_line_failure(_invoke(_config(tmp_path)), logged, contains=str(read_only_dir))
    assert "read-only" in line or "does not exist" in line  # the latter: the fallback below a regular file


def test_unreachable_tracking_server_bounded_wait(tmp_path, store, logged, monkeypatch):
    import benchmark.tracking.store as st

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setattr(st, "CONNECT_TRIES", 2)
    t0 = time.monotonic()
    result = _invoke(_config(tmp_path))
    assert time.monotonic() - t0 < 60
    waits = [ln for ln in logged if "waiting for the MLflow tracking server at 127.0.0.1:9" in ln]
    assert len(waits) == 1, logged  # the retry says what it waits for
    line = _one_line_failure(result, [ln for ln in logged if ln not in waits], contains="127.0.0.1:9")
    assert "unreachable" in line
    logged.clear()
    from benchmark.report.cli import main as report

    result = CliRunner().invoke(report, [])
    _one_line_failure(result, [ln for ln in logged if "waiting for" not in ln], contains="unreachable")


# -- 2. start-up failures and signals leave nothing RUNNING ---------------------------------------------
def test_ctrl_c_during_start_up_kills_the_parent(tmp_path, store, monkeypatch):
    import benchmark.runner as runner

    def interrupted(*a, **kw):
        raise KeyboardInterrupt("simulated Ctrl-C")

    monkeypatch.setattr(runner.Tracker, "kill_stale", interrupted)  # after the parent exists, before any fold
    result = _invoke(_config(tmp_path, **BASELINES_ONLY))
    assert result.exit_code == 130, _explain(result)
    parents = _role(_all_runs(store), "parent")
    assert [p.info.status for p in parents] == ["KILLED"]
    assert "KeyboardInterrupt" in parents[0].data.tags["neipalette.error"]
    _nothing_running(store)


def test_unexpected_start_up_error_fails_the_parent_with_its_error(tmp_path, store, logged, monkeypatch):
    import benchmark.runner as runner

    def broken(*a, **kw):
        raise RuntimeError("simulated bug\nwith a second line")

    monkeypatch.setattr(runner.Tracker, "finished_jobs", broken)
    result = _invoke(_config(tmp_path, **BASELINES_ONLY))
    line = _one_line_failure(result, logged, code=1, contains="simulated bug")
    assert "--debug" in line
    parent = _role(_all_runs(store), "parent")[0]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["neipalette.error"] == "RuntimeError: simulated bug with a second line"
    _nothing_running(store)
    result = _invoke(_config(tmp_path, **BASELINES_ONLY), "--debug")  # --debug: the traceback is the point
    assert isinstance(result.exception, RuntimeError)


def test_disk_full_mid_run_stops_with_one_line(tmp_path, store, logged, monkeypatch):
    import benchmark.tracking.write as write

    real = write.Tracker.log_fold
    calls = []

    def full(self, *a, **kw):
        calls.append(1)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "mlruns" / "x.csv"))
        return real(self, *a, **kw)

    monkeypatch.setattr(write.Tracker, "log_fold", full)
    config = _config(tmp_path, **BASELINES_ONLY)
    line = _one_line_failure(_invoke(config), logged, contains="disk full")
    assert "--resume" in line
    assert len(calls) == 2, "a full disk stops the run instead of failing every further fold"
    runs = _all_runs(store)
    parent = _role(runs, "parent")[0]
    assert parent.info.status == "FAILED" and "No space left" in parent.data.tags["neipalette.error"]
    _nothing_running(store)
    monkeypatch.setattr(write.Tracker, "log_fold", real)  # space freed: --resume completes, each job once
    result = _invoke(config, "--resume")
    assert result.exit_code == 0, _explain(result)
    _assert_exactly_once(_all_runs(store), _planned_keys(config))


# -- 6. an image vanishes mid-run; the final model fails ------------------------------------------------
def test_vanished_image_fails_its_folds_with_one_line_naming_it(tmp_path, store, logged, monkeypatch):
    import benchmark.runner as runner

    config = _config(tmp_path, **BASELINES_ONLY)
    victim = tmp_path / "data" / "images" / "o003_top.png"
    saved = victim.read_bytes()
    real_order = runner._order

    def then_delete(jobs):  # after the dataset was validated and hashed, the parent created; before any fold
        victim.unlink()
        return real_order(jobs)

    monkeypatch.setattr(runner, "_order", then_delete)
    result = _invoke(config)
    assert result.exit_code == 1, _explain(result)
    text = result.stderr + "\n".join(logged)
    assert "Traceback" not in text
    fold_lines = [ln for ln in logged if "failed" in ln]
    assert fold_lines and all(str(victim) in ln for ln in fold_lines), logged
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and str(victim) in last and "--resume" in last
    failed = [r for r in _role(_all_runs(store), "fold") if r.info.status == "FAILED"]
    assert failed and all(str(victim) in r.data.tags["neipalette.error"] for r in failed)
    _nothing_running(store)
    victim.write_bytes(saved)
    monkeypatch.setattr(runner, "_order", real_order)
    assert _invoke(config, "--resume").exit_code == 0
    _assert_exactly_once(_all_runs(store), _planned_keys(config), others=_planned_keys(config))


def test_failing_final_model_leaves_cv_finished_and_parent_failed(tmp_path, store, logged, monkeypatch, one_thread):
    import benchmark.tracking.write as write

    config = _config(tmp_path, baselines=["chance"], protocols=["cv"], final_models=True)
    real = write.Tracker.log_final

    def broken(self, *a, **kw):
        raise RuntimeError("simulated final-model failure")

    monkeypatch.setattr(write.Tracker, "log_final", broken)
    result = _invoke(config)
    assert result.exit_code == 1, _explain(result)
    last = result.stderr.strip().splitlines()[-1]
    assert "final model resnet18" in last and "simulated final-model failure" in last and "Traceback" not in last
    runs = _all_runs(store)
    parent = _role(runs, "parent")[0]
    assert parent.info.status == "FAILED"
    assert "final model resnet18" in parent.data.tags["neipalette.error"]
    keys = _planned_keys(config)
    _assert_exactly_once(runs, keys)
    assert {r.info.status for r in _role(runs, "summary")} == {"FINISHED"} and len(_role(runs, "summary")) == 2
    assert [r.info.status for r in _role(runs, "final")] == ["FAILED"]
    _nothing_running(store)
    monkeypatch.setattr(write.Tracker, "log_final", real)
    result = _invoke(config, "--resume")
    assert result.exit_code == 0, _explain(result)
    runs = _all_runs(store)
    assert _role(runs, "parent")[0].info.status == "FINISHED"
    assert "neipalette.error" not in _role(runs, "parent")[0].data.tags
    assert sorted(r.info.status for r in _role(runs, "final")) == ["FAILED", "FINISHED"]


# -- 4. the embedding cache ------------------------------------------------------------------------------
def _embedder(cache_dir: Path):
    from neipalette.models.embedding import Embedder
    from neipalette.models.registry import build_backbone
    from neipalette.models.views import ViewSpec

    backbone, weights = build_backbone("resnet18", "none", seed=0)
    return Embedder(backbone, weights, ViewSpec(image_size=32, n_views=2, seed=0, mean=weights.mean, std=weights.std),
                    cache=True, cache_dir=cache_dir)


@pytest.fixture
def images(tmp_path) -> list[tuple[Path]]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(p)
        out.append((p,))
    return out


@pytest.mark.parametrize("poison", ["shape", "nan", "dtype", "garbage"])
def test_bad_cache_entries_are_recomputed_rewritten_and_counted(tmp_path, images, caplog, poison, one_thread):
    cache = tmp_path / "cache"
    first = _embedder(cache).embed(images, [0, 0, 0])
    files = sorted(cache.rglob("*.npy"))
    assert len(files) == 3
    for f in files[:2]:
        if poison == "shape":
            np.save(f, np.zeros(7, dtype=np.float32))
        elif poison == "nan":
            np.save(f, np.full(first.shape[1], np.nan, dtype=np.float32))
        elif poison == "dtype":
            np.save(f, np.zeros(first.shape[1], dtype=np.float64))
        else:
            f.write_bytes(b"garbage")
    emb = _embedder(cache)
    with caplog.at_level(logging.WARNING):
        again = emb.embed(images, [0, 0, 0])
    assert torch.equal(first, again)
    assert emb.stats["bad_entries"] == 2 and emb.stats["disk_hits"] == 1 and emb.stats["forward_images"] == 2
    warnings = [r for r in caplog.records if "bad entries" in r.getMessage()]
    assert len(warnings) == 1 and "2 bad entries" in warnings[0].getMessage()
    fresh = _embedder(cache)  # rewritten: all three now load
    assert torch.equal(fresh.embed(images, [0, 0, 0]), first) and fresh.stats["disk_hits"] == 3


@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_unusable_cache_folder_is_memory_only_with_one_warning(tmp_path, images, caplog, kind, read_only_dir,
                                                               one_thread):
    if kind == "file":
        cache = tmp_path / "cache-file"
        cache.write_text("x")
    else:
        cache = read_only_dir
    emb = _embedder(cache)
    with caplog.at_level(logging.WARNING):
        a = emb.embed(images, [0, 0, 0])
        b = emb.embed(images, [1, 1, 1])
    assert torch.equal(emb.embed(images, [0, 0, 0]), a) and b.shape == a.shape
    warnings = [r for r in caplog.records if "unusable" in r.getMessage()]
    assert len(warnings) == 1 and str(cache) in warnings[0].getMessage()
    assert emb.stats["memory_hits"] == 3
    assert torch.equal(_embedder(tmp_path / "good").embed(images, [0, 0, 0]), a)  # same numbers as a real cache


def test_benchmark_runs_with_the_cache_pointing_at_a_file(tmp_path, store, monkeypatch, one_thread):
    bad = tmp_path / "cache-is-a-file"
    bad.write_text("x")
    monkeypatch.setenv("NEIPALETTE_CACHE", str(bad))
    config = _config(tmp_path, baselines=["chance"], protocols=["cv"])
    result = _invoke(config)
    assert result.exit_code == 0, _explain(result)
    _assert_exactly_once(_all_runs(store), _planned_keys(config))


# -- the neipalette command line --------------------------------------------------------------------------
def test_neipalette_cli_boundary(tmp_path, logged, read_only_dir, monkeypatch):
    from neipalette.cli import main

    result = CliRunner().invoke(main, ["data", "synth", "--outfits", "4", "--out", str(read_only_dir / "ds")])
    _one_line_failure(result, logged, contains=str(read_only_dir))

    import neipalette.data.dataset as dataset

    def broken(*a, **kw):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(dataset, "summarize", broken)
    from tests.conftest import make_tiny_dataset

    root = make_tiny_dataset(tmp_path / "tiny")
    result = CliRunner().invoke(main, ["data", "check", str(root)])
    line = _one_line_failure(result, logged, code=1, contains="simulated bug")
    assert "--debug" in line
    result = CliRunner().invoke(main, ["--debug", "data", "check", str(root)])
    assert isinstance(result.exception, RuntimeError)


# -- 1. a live run is never joined twice --------------------------------------------------------------------
def test_file_lease_refuses_a_second_holder_and_frees_on_release(tmp_path):
    from benchmark.tracking.lease import FileLease
    from benchmark.tracking.store import LeaseHeld

    first = FileLease(tmp_path, "abc", "0/1").acquire()
    with pytest.raises(LeaseHeld, match=rf"pid {os.getpid()} on host"):
        FileLease(tmp_path, "abc", "0/1").acquire()
    FileLease(tmp_path, "abc", "1/2").acquire().release()  # another shard is other work
    first.release()
    FileLease(tmp_path, "abc", "0/1").acquire().release()


def test_tag_lease_heartbeat_expiry_and_dead_holder(tmp_path, store):
    from benchmark.tracking.lease import TagLease
    from benchmark.tracking.store import LeaseHeld

    client = _client(store)
    exp = client.create_experiment("x")
    parent = client.create_run(exp).info.run_id
    elsewhere = {"host": "other-host", "pid": 1}
    a = TagLease(client, parent, "0/1", ttl_s=2.0, holder=elsewhere).acquire()
    b = TagLease(client, parent, "0/1", ttl_s=2.0)
    with pytest.raises(LeaseHeld, match="pid 1 on host other-host"):
        b.acquire()
    time.sleep(2.5)  # a's thread keeps beating: still held
    with pytest.raises(LeaseHeld):
        b.acquire()
    a._stop.set()  # a's worker freezes: no more beats
    a._thread.join()
    time.sleep(2.5)
    b.acquire()  # expired: taken over
    time.sleep(1.0)
    assert a.lost is False  # a's thread is stopped; a new beat would have noticed
    b.release()
    assert "neipalette.lease.0of1" not in client.get_run(parent).data.tags
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    c = TagLease(client, parent, "0/1", ttl_s=600, holder={"host": socket.gethostname(), "pid": int(dead.stdout)})
    c.acquire()
    c._stop.set()
    c._thread.join()
    TagLease(client, parent, "0/1", ttl_s=600).acquire().release()  # same host, pid gone: no need to wait


SLOW_ENOUGH = {"n_repeats": 3, "tuning": {"n_trials": 4, "inner_folds": 2, "epochs_min": 10, "epochs_max": 30}}


def _start(tmp_path: Path, config: Path, *args: str, log: str) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    path = tmp_path / log
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.run", "--config", str(config), "-q", *args],
                            cwd=tmp_path, env=env, stdout=open(path, "w"), stderr=subprocess.STDOUT)
    return proc, path


@pytest.mark.slow
def test_two_workers_on_one_sqlite_store_never_duplicate_a_job(tmp_path, store):
    """Issue 16.1 with real processes: a `--resume` and a same-`--group` worker while another one works."""
    import signal

    config = _config(tmp_path, **SLOW_ENOUGH)
    keys = _planned_keys(config)
    # a benchmark killed after its first fold, then two --resume started together
    first, _ = _start(tmp_path, config, log="first.log")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        try:
            if any(r.info.status == "FINISHED" for r in _role(_all_runs(store), "fold")):
                break
        except Exception:  # noqa: BLE001 - the store may not exist yet
            pass
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    a, log_a = _start(tmp_path, config, "--resume", log="a.log")
    b, log_b = _start(tmp_path, config, "--resume", log="b.log")
    codes = sorted([a.wait(timeout=600), b.wait(timeout=600)])
    outputs = {p.returncode: path.read_text() for p, path in ((a, log_a), (b, log_b))}
    runs = _all_runs(store)
    assert len(_role(runs, "parent")) == 1
    _assert_exactly_once(runs, keys, others=keys)
    _nothing_running(store)
    if codes == [0, 2]:  # the usual case: one refused, naming the live one
        refused = outputs[2].strip().splitlines()
        assert len(refused) == 1 and "live worker" in refused[0] and "Traceback" not in outputs[2], outputs[2]
        winner_pid = a.pid if a.returncode == 0 else b.pid
        assert f"pid {winner_pid}" in refused[0]
    else:  # the second started only after the first had finished everything: nothing left to do
        assert codes == [0, 0], outputs
    assert {r.info.status for r in _role(runs, "parent")} == {"FINISHED"}

    # the same shard of a group twice: a second worker while the first is alive (frozen mid-run) is refused
    config2 = _config(tmp_path, name="grouped", seed=1)
    keys2 = _planned_keys(config2)
    c, log_c = _start(tmp_path, config2, "--group", "g", log="c.log")
    group_folds = lambda: [r for r in _role(_all_runs(store), "fold") if r.data.tags.get("mlflow.parentRunId") in  # noqa: E731
                           {p.info.run_id for p in _role(_all_runs(store), "parent") if p.data.tags.get("neipalette.group") == "g"}]
    def holds_lease() -> bool:  # the lock file names its holder as soon as it holds it, before any fold
        return any(f'"pid": {c.pid}' in f.read_text() for f in (tmp_path / ".neipalette" / "leases").glob("*-0of1.lock"))

    deadline = time.monotonic() + 600
    while c.poll() is None and not holds_lease() and time.monotonic() < deadline:
        time.sleep(0.05)
    c.send_signal(signal.SIGSTOP)  # alive, holding its lease, doing nothing
    assert c.poll() is None, log_c.read_text()
    try:
        d, log_d = _start(tmp_path, config2, "--group", "g", log="d.log")
        assert d.wait(timeout=600) == 2, log_d.read_text()
    finally:
        c.send_signal(signal.SIGCONT)
    assert c.wait(timeout=600) == 0, log_c.read_text()
    refused = log_d.read_text().strip().splitlines()
    assert len(refused) == 1 and f"pid {c.pid}" in refused[0] and "shard 0/1" in refused[0], refused
    _assert_exactly_once(group_folds(), keys2)
    _nothing_running(store)


_PAUSED_WRITER = """
import sqlite3, sys, time
from pathlib import Path
from benchmark.tracking.lease import FileLease
lease = FileLease(Path(sys.argv[1]), sys.argv[2], "0/1").acquire()
db = sqlite3.connect(sys.argv[3], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")  # SQLite's write lock as held mid-commit: no other connection reads
print("holding", flush=True)
time.sleep(600)
"""


def test_a_worker_paused_holding_the_stores_write_lock_gets_the_next_one_refused_naming_it(tmp_path, store,
                                                                                           monkeypatch):
    """Issue 25.0, deterministic: the lease holder frozen while SQLite is locked (reads blocked, not only
    writes); the next worker of its shard waits, then refuses in one line naming it (exit 2)."""
    config = _config(tmp_path, name="grouped", **BASELINES_ONLY)
    assert _invoke(config, "--group", "g").exit_code == 0
    (parent,) = [r.info.run_id for r in _role(_all_runs(store), "parent")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", _PAUSED_WRITER, str(tmp_path), parent, str(tmp_path / "mlflow.db")],
                              env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        monkeypatch.setenv("NEIPALETTE_STORE_LOCK_WAIT_S", "2")
        t0 = time.monotonic()
        worker, log = _start(tmp_path, config, "--group", "g", log="d.log")
        assert worker.wait(timeout=300) == 2, log.read_text()
        waited = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    refused = log.read_text().strip().splitlines()
    assert len(refused) == 1 and "live worker" in refused[0] and f"pid {holder.pid}" in refused[0], refused
    assert "shard 0/1" in refused[0] and parent in refused[0] and "kill -CONT" in refused[0], refused
    assert waited >= 2
    _nothing_running(store)


def test_optuna_database_storage_has_heartbeats_and_bad_urls_are_user_errors(tmp_path):
    from benchmark.tuning import HEARTBEAT_S, make_storage
    from neipalette.errors import UserError

    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = make_storage(f"sqlite:///{tmp_path}/optuna.db", tmp_path / "j")
    assert is_heartbeat_enabled(storage) and storage.get_heartbeat_interval() == HEARTBEAT_S
    assert not is_heartbeat_enabled(make_storage(None, tmp_path / "default.journal"))  # journal: not supported
    for url in ("bogus://x", "nodriver+nosuch://h/db"):
        with pytest.raises(UserError, match="cannot be opened"):
            make_storage(url, tmp_path / "j")


# -- issue 25.8: config files and experiments refused before any run exists ----------------------------------
ALIAS_BOMB = "dataset: [&a [x,x,x,x,x,x,x,x,x,x],\n" + "".join(  # 10^9 x once expanded
    f"  &{b} [{','.join([f'*{a}'] * 10)}],\n" for a, b in zip("abcdefgh", "bcdefghi")) + "  x]\n"


@pytest.mark.parametrize("text, names", [
    ("seed: 1\nseed: 2\n", "duplicate key 'seed' at line 2"),
    (ALIAS_BOMB, "aliases"),  # 10^9 items once expanded; refused after 100,000 without expanding
])
def test_bad_yaml_file_is_one_line_and_creates_no_run(tmp_path, store, logged, text, names):
    cfg = _config(tmp_path)
    cfg.write_text(text + "\n".join(ln for ln in cfg.read_text().splitlines() if not ln.startswith(("seed", "dataset"))))
    t0 = time.monotonic()
    line = _one_line_failure(_invoke(cfg), logged, contains=names)
    assert time.monotonic() - t0 < 20 and len(line) < 400
    assert not Path(store.removeprefix("sqlite:///")).exists()


def test_deleted_experiment_is_refused_naming_the_restore_command(tmp_path, store, logged):
    client = _client(store)
    exp = client.create_experiment("gone")
    client.delete_experiment(exp)
    line = _one_line_failure(_invoke(_config(tmp_path, experiment="gone")), logged,
                             contains=f"mlflow experiments restore --experiment-id {exp}")
    assert "deleted" in line and client.search_runs([exp]) == []


# -- issue 25.9-10: one error boundary for sweep and coverage, the UI hint of a server store ------------------
def test_sweep_on_a_corrupt_store_is_one_line(tmp_path, store, logged):
    from benchmark.sweep.cli import main
    from tests.benchmark.test_sweep import TINY, _write

    Path(store.removeprefix("sqlite:///")).write_bytes(b"not a database at all, " * 10)
    result = CliRunner().invoke(main, ["--config", str(_write(tmp_path, TINY)), "-q"])
    _one_line_failure(result, logged, contains="not an SQLite database")


@pytest.mark.parametrize("error, code, contains", [
    (__import__("sqlite3").OperationalError("database disk image is malformed"), 2, "is corrupt"),
    (RuntimeError("boom"), 1, "RuntimeError: boom (unexpected; run with --debug"),
])
def test_coverage_failures_are_one_line(tmp_path, store, logged, monkeypatch, error, code, contains):
    from benchmark.coverage import cli

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli, "run", fail)
    result = CliRunner().invoke(cli.main, ["--config", str(_config(tmp_path)), "--quick", "--no-log"])
    _one_line_failure(result, logged, code, contains=contains)


def test_ui_hint_of_a_server_store_is_its_url():
    from benchmark.run import ui_hint

    assert ui_hint("http://127.0.0.1:5000") == "http://127.0.0.1:5000/"
    assert ui_hint("sqlite:///x/mlflow.db").startswith("mlflow ui --backend-store-uri sqlite:///x/mlflow.db")


@pytest.mark.parametrize("where, contains", [
    ("folder", "is a folder; give a file path"),
    ("under_a_file", "is a file, not a folder"),
])
def test_predict_out_is_checked_before_the_model_loads(tmp_path, logged, where, contains):
    from neipalette.cli import main

    images = REPO / "tests" / "fixtures" / "pre-layout-models" / "images"
    (tmp_path / "afile").write_text("x")
    out = {"folder": tmp_path, "under_a_file": tmp_path / "afile" / "p.csv"}[where]
    # runs:/0/model is never loaded: --out is refused first
    result = CliRunner().invoke(main, ["predict", "--model", "runs:/0/model", str(images / "top.png"),
                                       str(images / "bottom.png"), "--out", str(out)])
    _one_line_failure(result, logged, contains=contains)
    assert not list(tmp_path.rglob("*.partial"))


def test_predict_out_leaves_no_partial_file_when_predicting_fails(tmp_path, logged):
    from neipalette.cli import main

    images = REPO / "tests" / "fixtures" / "pre-layout-models" / "images"
    result = CliRunner().invoke(main, ["predict", "--model", "runs:/0/model", str(images / "top.png"),
                                       str(images / "bottom.png"), "--out", str(tmp_path / "new" / "p.csv"),
                                       "--tracking-uri", f"sqlite:///{tmp_path}/empty.db"])
    assert result.exit_code != 0 and not list(tmp_path.rglob("*.partial")) and not (tmp_path / "new" / "p.csv").exists()


def test_deepfashion2_annotation_nested_200000_deep_is_skipped_and_counted(tmp_path):
    from neipalette.data.deepfashion2 import import_deepfashion2_report
    from tests.data.test_deepfashion2 import make_split

    split = make_split(tmp_path / "df2")
    before = import_deepfashion2_report(split, tmp_path / "out1").skipped["unreadable annotation"]
    (split / "annos" / "000002.json").write_text('{"item1": ' + "[" * 200_000 + "]" * 200_000 + "}")
    report = import_deepfashion2_report(split, tmp_path / "out2")
    assert report.skipped["unreadable annotation"] == before + 1


def test_configure_mlflow_env_silences_urllib3_retries_unless_debugging():
    names = ("urllib3", "mlflow", "mlflow.store.db.utils")
    saved = {n: logging.getLogger(n).level for n in names}
    from benchmark.tracking.env import configure_mlflow_env

    try:
        configure_mlflow_env()
        assert not logging.getLogger("urllib3.connectionpool").isEnabledFor(logging.WARNING)  # "Retrying (...)"
        configure_mlflow_env(debug=True)
        assert logging.getLogger("urllib3.connectionpool").isEnabledFor(logging.DEBUG)
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)
