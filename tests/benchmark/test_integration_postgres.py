"""Several workers on one benchmark: PostgreSQL + `mlflow server` + `benchmark.run --group --shard I/N`.

Starts a throw-away PostgreSQL cluster (initdb/pg_ctl, 127.0.0.1, a free port, a temp data folder) and an
`mlflow server` on 127.0.0.1 backed by it with a temp artifact folder, then runs two sharded workers of a
tiny config in parallel, with Optuna studies in the same PostgreSQL. Also: a worker killed with SIGKILL and
restarted with the same arguments, and workers racing to create the same parent / final / summary run.

Marked `integration`: deselected by the default `pytest` run (pyproject addopts); `.ci/run` installs
PostgreSQL from Debian's packages and runs `python -m pytest -m integration`. Without PostgreSQL's server
binaries these tests FAIL (they never skip): the CI step is meant to provide them.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_tiny_dataset

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GROUPS = {("resnet18", "cv"), ("resnet18", "seed_split"), ("chance", "cv"), ("chance", "seed_split"),
          ("ou_luo", "cv")}  # ou_luo needs two colours: no seed_split (single images)
WORKER_TIMEOUT_S = 900


# -- processes ------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on "
                "PATH; install them first: apt-get install -y postgresql (.ci/run does this)")


def _kill_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait_s: float = 20) -> None:
    """Stop a process started with start_new_session=True and everything it started."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):  # children left behind by the leader
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def postgres(request) -> str:
    """A PostgreSQL cluster on 127.0.0.1 with databases `mlflow` and `optuna`; returns the server's base URL."""
    bindir = _pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="neipalette-pg-"))  # in /tmp: pytest's tmp folders are root-only (0700)
    as_user: list[str] = []
    if os.geteuid() == 0:  # pg_ctl and initdb refuse root: run them as the postgres user on a folder it owns
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, and there is no `postgres` user to run PostgreSQL as "
                        "(apt-get install postgresql creates it)")
        shutil.chown(base, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()

    def pg(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120, **kw)

    started = False

    def stop() -> None:
        if started:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)

    request.addfinalizer(stop)
    out = pg(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    assert out.returncode == 0, f"initdb failed:\n{out.stdout}\n{out.stderr}"
    started = True
    out = pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "postgres.log"), "-w", "-t", "60",
             "-o", f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off", "start")
    assert out.returncode == 0, (f"pg_ctl start failed:\n{out.stdout}\n{out.stderr}\n"
                                 f"{(base / 'postgres.log').read_text() if (base / 'postgres.log').exists() else ''}")
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE mlflow")
        cur.execute("CREATE DATABASE optuna")
    conn.close()
    return f"postgresql+psycopg2://postgres@127.0.0.1:{port}"


@pytest.fixture(scope="module")
def mlflow_server(postgres, request) -> str:
    """`mlflow server` on 127.0.0.1 (free port), PostgreSQL backend store, a temp artifact folder it serves."""
    base = Path(tempfile.mkdtemp(prefix="neipalette-mlflow-"))
    port = _free_port()
    log = open(base / "server.log", "w")
    env = {**os.environ, "MLFLOW_TELEMETRY_DISABLED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"{postgres}/mlflow",
         "--artifacts-destination", str(base / "artifacts"), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop() -> None:
        _kill_group(proc)
        log.close()
        shutil.rmtree(base, ignore_errors=True)

    request.addfinalizer(stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not come up (exit {proc.poll()}):\n"
                        f"{(base / 'server.log').read_text()[-4000:]}")
        time.sleep(0.5)
    return url


# -- the benchmark --------------------------------------------------------------------------------------------
def _config(tmp_path: Path) -> Path:
    """experiments/quick.yaml on a 12-outfit dataset: resnet18 + 2 baselines, 32 px, 8 fold jobs."""
    data = make_tiny_dataset(tmp_path / "data", n_outfits=12, size=32, seed=0, with_truth=True)
    cfg = yaml.safe_load((REPO / "experiments" / "quick.yaml").read_text())
    cfg.update(dataset=str(data), archs=["resnet18"], baselines=["chance", "ou_luo"], seed_split_test_images=6)
    cfg["model"].update(image_size=32, weights="none")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _planned(config: Path) -> tuple[set[str], int]:
    from benchmark.config import load_config
    from benchmark.protocols import all_splits, plan_jobs

    cfg = load_config(config)
    from neipalette.data.dataset import load_dataset

    return {j.key for j in plan_jobs(cfg, all_splits(load_dataset(cfg.dataset), cfg))}, cfg.tuning.n_trials


def _shard(key: str, n: int) -> int:
    from benchmark.protocols import Job, shard_of

    return shard_of(Job.from_key(key), n)


class Worker:
    """`python -m benchmark.run ... --shard I/N` in its own process group (so a SIGKILL takes all of it)."""

    def __init__(self, tmp_path: Path, server: str, config: Path, group: str, shard: str, optuna: str, tag: str):
        self.args = [sys.executable, "-m", "benchmark.run", "--config", str(config), "--group", group,
                     "--shard", shard, "--optuna-storage", optuna, "-q"]
        self.env = {**os.environ, "MLFLOW_TRACKING_URI": server, "PYTHONUNBUFFERED": "1",
                    "MLFLOW_TELEMETRY_DISABLED": "1", "NEIPALETTE_OFFLINE": "1"}
        self.cwd, self.log_path, self.proc = tmp_path, tmp_path / f"worker-{tag}.log", None

    def start(self) -> "Worker":
        with open(self.log_path, "a") as log:
            log.write(f"$ {' '.join(self.args)}\n")
            log.flush()
            self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc, signal.SIGKILL)
            pytest.fail(f"worker timed out:\n{self.tail()}")

    def tail(self) -> str:
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc, signal.SIGKILL, wait_s=5)


@pytest.fixture
def workers():
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()


def _client(server: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=server)


def _group_parents(server: str, group: str) -> list:
    client = _client(server)
    exp = client.get_experiment_by_name("neipalette")
    return client.search_runs([exp.experiment_id], f"tags.`neipalette.group` = '{group}'") if exp else []


def _children(server: str, parent_id: str) -> list:
    client = _client(server)
    exp = client.get_experiment_by_name("neipalette")
    return client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=5000)


def _check_benchmark(server: str, group: str, keys: set[str], n_trials: int, optuna: str) -> str:
    """One FINISHED parent; every fold job exactly once FINISHED; one summary per group; one final; studies."""
    parents = _group_parents(server, group)
    assert len(parents) == 1, f"{len(parents)} active parents for group {group}"
    parent = parents[0]
    pid = parent.info.run_id
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["neipalette.n_jobs"] == str(len(keys))
    runs = _children(server, pid)
    by_role = collections.defaultdict(list)
    for r in runs:
        by_role[r.data.tags.get("neipalette.role")].append(r)
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"], "runs left RUNNING"

    finished = collections.Counter(r.data.tags["neipalette.job_key"] for r in by_role["fold"]
                                   if r.info.status == "FINISHED")
    assert set(finished) == keys, f"missing {keys - set(finished)}, unplanned {set(finished) - keys}"
    assert all(n == 1 for n in finished.values()), f"duplicate FINISHED fold runs: {finished}"

    summaries = collections.Counter((r.data.tags["neipalette.arch"], r.data.tags["neipalette.protocol"])
                                    for r in by_role["summary"] if r.info.status == "FINISHED")
    assert summaries == collections.Counter({g: 1 for g in GROUPS}), summaries
    finals = [r for r in by_role["final"] if r.info.status == "FINISHED"]
    assert [r.data.tags["neipalette.arch"] for r in finals] == ["resnet18"]
    assert not [r for r in by_role["final"] if r.info.status not in ("FINISHED", "KILLED")]

    import optuna as optuna_lib

    studies = {s.study_name: s for s in optuna_lib.get_all_study_summaries(f"{optuna}/optuna")
               if s.study_name.startswith(f"{pid}:")}
    tuned = {k for k in keys if k.startswith("resnet18|")}
    assert set(studies) == {f"{pid}:{k}" for k in tuned}, sorted(studies)
    assert all(s.n_trials >= n_trials for s in studies.values())
    return pid


def _check_report(server: str, pid: str, tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": server, "MLFLOW_TELEMETRY_DISABLED": "1"}
    out = subprocess.run([sys.executable, "-m", "benchmark.report", "--run-id", pid, "--format", "json",
                          "--out", str(tmp_path / "report")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert report["run_id"] == pid
    assert report["missing_folds"] == []
    assert report["n_jobs_finished"] == report["n_jobs_planned"] == 8
    assert {(g["arch"], g["protocol"]) for g in report["groups"]} == GROUPS
    assert report["summary_runs_written"] == []  # the workers wrote them all
    summaries = [r for r in _children(server, pid) if r.data.tags.get("neipalette.role") == "summary"]
    # a worker killed while writing a summary leaves it RUNNING; the restart marks it KILLED and writes it again
    assert sorted(r.info.status for r in summaries if r.info.status != "FINISHED") in ([], ["KILLED"])
    assert len([r for r in summaries if r.info.status == "FINISHED"]) == len(GROUPS)


# -- tests ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_workers_share_one_parent_and_write_everything_once(tmp_path, mlflow_server, postgres, workers):
    config = _config(tmp_path)
    keys, n_trials = _planned(config)
    assert len(keys) == 8 and {_shard(k, 2) for k in keys} == {0, 1}
    group = f"two-{uuid.uuid4().hex[:8]}"
    for i in range(2):  # started together: both may find no parent and create one (only one survives)
        workers.append(Worker(tmp_path, mlflow_server, config, group, f"{i}/2", f"{postgres}/optuna", str(i)))
    for w in workers:
        w.start()
    for w in workers:
        assert w.wait() == 0, w.tail()
    pid = _check_benchmark(mlflow_server, group, keys, n_trials, postgres)
    _check_report(mlflow_server, pid, tmp_path)


@pytest.mark.slow
def test_worker_killed_with_sigkill_and_restarted_finishes_its_shard_once(tmp_path, mlflow_server, postgres,
                                                                          workers):
    config = _config(tmp_path)
    keys, n_trials = _planned(config)
    mine = {k for k in keys if _shard(k, 2) == 0}
    group = f"kill-{uuid.uuid4().hex[:8]}"
    optuna = f"{postgres}/optuna"
    victim = Worker(tmp_path, mlflow_server, config, group, "0/2", optuna, "0")
    other = Worker(tmp_path, mlflow_server, config, group, "1/2", optuna, "1")
    workers.extend([victim, other])
    victim.start()
    other.start()
    done: set[str] = set()
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while victim.proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the experiment or parent may not exist yet
            parents = [p for p in _group_parents(mlflow_server, group) if p.data.tags.get("neipalette.elected")]
            if parents:
                done = {r.data.tags["neipalette.job_key"] for r in _children(mlflow_server, parents[0].info.run_id)
                        if r.data.tags.get("neipalette.role") == "fold" and r.info.status == "FINISHED"} & mine
        if done:
            os.killpg(victim.proc.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    assert victim.proc.wait(timeout=60) == -signal.SIGKILL, f"worker 0 ended before a fold finished:\n{victim.tail()}"
    assert 1 <= len(done) < len(mine)
    assert other.wait() == 0, other.tail()

    parents = _group_parents(mlflow_server, group)
    assert len(parents) == 1 and parents[0].info.status != "FINISHED"  # shard 0 is not done
    restarted = Worker(tmp_path, mlflow_server, config, group, "0/2", optuna, "0")  # the same arguments
    workers.append(restarted)
    restart_ms = int(time.time() * 1000)
    assert restarted.start().wait() == 0, restarted.tail()
    assert "fold jobs run" in restarted.tail()
    pid = _check_benchmark(mlflow_server, group, keys, n_trials, postgres)
    assert pid == parents[0].info.run_id
    # the folds finished before the kill were kept, not redone
    kept = {r.data.tags["neipalette.job_key"] for r in _children(mlflow_server, pid)
            if r.data.tags.get("neipalette.role") == "fold" and r.info.status == "FINISHED"
            and r.info.start_time < restart_ms}
    assert done <= kept
    _check_report(mlflow_server, pid, tmp_path)


def test_racing_workers_elect_one_parent_one_final_and_one_summary(mlflow_server, monkeypatch):
    """Threads racing through the claim protocol on the real server: one parent, one final, one summary."""
    from benchmark.tracking.write import Tracker

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # the server, not ./mlflow.db of the working folder

    n = 4
    trackers = [Tracker("neipalette-races") for _ in range(n)]
    for _ in range(3):
        group = uuid.uuid4().hex
        results: list = [None] * n

        def race(fn) -> None:
            barrier = threading.Barrier(n)
            errors: list = []

            def run(i: int) -> None:
                try:
                    barrier.wait(timeout=60)
                    results[i] = fn(i)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
            assert not errors, errors

        def parent(i: int):
            return trackers[i].elect_parent(group=group, name="race", config={"seed": 0}, config_hash="h",
                                            config_yaml="seed: 0\n", dataset={"name": "d", "hash": "x"}, jobs=[],
                                            git_commit="c")

        race(parent)
        ids = {rid for rid, _ in results}
        assert len(ids) == 1 and sum(created for _, created in results) == 1, results
        pid = ids.pop()
        assert [r.info.run_id for r in trackers[0].find_parents("h", group)] == [pid]

        race(lambda i: trackers[i].claim_final(pid, "resnet18", f"{i}/{n}"))
        won = [rid for rid in results if rid]
        live = [r.info.run_id for r in trackers[0].child_runs(pid, "final") if r.info.status == "RUNNING"]
        assert len(won) == 1 and live == won, (results, live)

        def summary(i: int):
            trackers[i].log_summary(pid, "resnet18", "cv", "pair", {"accuracy_mean": 0.5}, 2, 6.0, 6.0)
            return trackers[i].dedupe_summaries(pid, "resnet18", "cv")

        race(summary)
        left = [r.info.run_id for r in trackers[0].child_runs(pid, "summary")]
        assert len(left) == 1, (results, left)
