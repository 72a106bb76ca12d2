"""`python -m benchmark.coverage`: measured coverage of the report's interval methods (click; prints)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import resource
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields, replace
from multiprocessing import get_context
from pathlib import Path

import click
import numpy as np

from benchmark.config import BASELINE_NAMES, BenchmarkConfig, ConfigError, load_config
from benchmark.coverage import features, measured, procedures, simulate
from benchmark.coverage.features import CnnSpec, Outfits, Setup, chunk_seed
from neipalette.data import synth
from benchmark.tracking.env import configure_mlflow_env
from benchmark.tracking.store import describe_tracking_failure
from neipalette.errors import error_boundary
from neipalette.models.registry import ARCHS
from neipalette.models.variants import is_variant

POOL_CHUNK = 250  # pool outfits per cached file: small, so a stopped run keeps most of its work
QUICK = {"datasets": 6, "pool": 400, "n_repeats": 2}
GOAL = 0.93


def _synth_config(cfg: BenchmarkConfig) -> synth.SynthConfig:
    """The generator settings the benchmark's dataset was made with (its synth.json), else the config's."""
    root = Path(cfg.dataset)
    repo = Path(__file__).resolve().parents[2]
    if not root.is_absolute() and not root.exists() and (repo / root).exists():
        root = repo / root
    meta = root / "synth.json"
    if meta.is_file():
        saved = json.loads(meta.read_text()).get("config", {})
        known = {f.name for f in fields(synth.SynthConfig)}
        return synth.SynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known})
    if cfg.generate is not None:
        return synth.SynthConfig(n_outfits=cfg.generate.outfits, seed=cfg.generate.seed)
    if (root / "outfits.csv").is_file():
        raise ConfigError(f"{root} was not made by the synthetic generator (no synth.json); coverage needs a "
                          "generated dataset: use experiments/default.yaml or a config with generate:")
    return synth.SynthConfig()


def _models(cfg: BenchmarkConfig, names: str | None) -> tuple[str, ...]:
    if not names:
        skipped = [b for b in cfg.baselines if b not in procedures.BASELINE_PROCEDURES]
        skipped += [a for a in cfg.archs if is_variant(a)]  # the procedure is a head on final embeddings only
        if skipped:
            logging.getLogger(__name__).warning("no coverage procedure for %s yet: left out", ", ".join(skipped))
        return (*(b for b in cfg.baselines if b in procedures.BASELINE_PROCEDURES),
                *[a for a in cfg.archs if not is_variant(a)][:1])
    out = tuple(n.strip() for n in names.split(",") if n.strip())
    for n in out:
        if n not in BASELINE_NAMES and n not in ARCHS:
            raise ConfigError(f"--models: unknown model {n!r}; known: {', '.join((*BASELINE_NAMES, *sorted(ARCHS)))}")
        if n in BASELINE_NAMES and n not in procedures.BASELINE_PROCEDURES:
            raise ConfigError(f"--models: no coverage procedure for {n} yet (it needs image pattern features); "
                              f"measurable: {', '.join(procedures.BASELINE_PROCEDURES)} and one CNN")
    if sum(n in ARCHS for n in out) > 1:
        raise ConfigError("--models: at most one CNN architecture per coverage run (each needs its own embeddings)")
    return out


# -- worker side (spawned processes: one torch thread each) -----------------------------------------------
_POOL: dict = {}


def _init_worker(level: int) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    # thousands of tiny L-BFGS fits: BLAS threads only contend (5x slower on a shared 2-core machine)
    threadpool_limits(1)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _pool_chunk(args) -> float:
    setup, seed, index, n, cache_dir = args
    t0 = time.perf_counter()
    features.outfits(setup, "pool", chunk_seed(seed, "pool", index), n, n_views=1, cache_dir=cache_dir)
    return time.perf_counter() - t0


def _load_pool(setup: Setup, seed: int, sizes: list[int], cache_dir: Path | None) -> Outfits:
    key = (setup, seed, tuple(sizes))
    if key not in _POOL:
        parts = [features.outfits(setup, "pool", chunk_seed(seed, "pool", i), n, n_views=1, cache_dir=cache_dir)
                 for i, n in enumerate(sizes)]
        emb = None if parts[0].emb is None else np.concatenate([p.emb for p in parts])
        _POOL.clear()
        _POOL[key] = Outfits(np.concatenate([p.labs for p in parts]), np.concatenate([p.y for p in parts]),
                             np.concatenate([p.p for p in parts]), emb)
    return _POOL[key]


def _dataset_job(args) -> dict:
    """One dataset's CV and nested CV for every model; the result is cached, so a stopped run loses little."""
    setup, plan, models, head, index, pool_sizes, cache_dir = args
    key = hashlib.sha256(repr((setup.key("run", plan.seed, plan.n_outfits), plan, models, head, index,
                               pool_sizes)).encode()).hexdigest()[:24]
    path = (cache_dir or features.cache_root()) / "results" / f"{key}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    result = _run_dataset(setup, plan, models, head, index, pool_sizes, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(f".{os.getpid()}.tmp")
    part.write_bytes(pickle.dumps(result))
    os.replace(part, path)
    return result


def _run_dataset(setup, plan, models, head, index, pool_sizes, cache_dir) -> dict:
    pool = _load_pool(setup, plan.seed, pool_sizes, cache_dir)
    o = features.outfits(setup, "dataset", chunk_seed(plan.seed, "dataset", index), plan.n_outfits,
                         cache_dir=cache_dir)
    fits = {m: (procedures.BASELINE_PROCEDURES[m] if m in procedures.BASELINE_PROCEDURES else
                procedures.cnn_head(head)) for m in models}
    return simulate.run_dataset(o, pool, fits, plan, index)


# -- main side ----------------------------------------------------------------------------------------------
def _fmt_table(table) -> str:
    lines = [f"{'model':<20} {'metric':<9} {'method':<18} {'coverage':>8} {'Clopper-Pearson 95%':>20} {'width':>7} "
             f"{'truth':>6} {'estimate':>8} {'floored':>7}"]
    for r in table.to_dict("records"):
        cov = f"{r['coverage']:.3f}" if math.isfinite(r["coverage"]) else "n/a"
        cp = f"[{r['cp_low']:.3f}, {r['cp_high']:.3f}]" if math.isfinite(r["cp_low"]) else "n/a"
        fl = f"{r['floor_share']:.3f}" if math.isfinite(r["floor_share"]) else ""
        lines.append(f"{r['model']:<20} {r['metric']:<9} {r['method']:<18} {cov:>8} {cp:>20} {r['mean_width']:>7.3f} "
                     f"{r['truth']:>6.3f} {r['mean_estimate']:>8.3f} {fl:>7}")
    return "\n".join(lines)


def run(cfg: BenchmarkConfig, *, n_datasets: int, models: tuple[str, ...], pool_size: int, image_size: int,
        workers: int, seed: int, n_repeats: int, cache_dir: Path | None, log_level: int) -> dict:
    """Everything but printing and logging: returns the table and the settings."""
    t0 = time.perf_counter()
    arch = next((m for m in models if m in ARCHS), None)
    if arch and cfg.input_mode != "pair":
        raise ConfigError(f"coverage runs the CNN head on pair input; the config says input_mode {cfg.input_mode}")
    sc = _synth_config(cfg)
    m = cfg.model
    cnn = CnnSpec(arch, m.weights, image_size, m.n_views, cfg.seed) if arch else None
    # one panel and tau label every dataset and the pool: the ones that labelled the benchmark's dataset
    panel = synth.dataset_panel(sc) if sc.label_model == "panel" else None
    setup = Setup(synth=replace(sc, image_size=image_size), image_size=image_size, cnn=cnn, panel=panel)
    plan = simulate.Plan(n_outfits=sc.n_outfits, n_splits=cfg.n_splits, n_repeats=n_repeats, seed=seed)
    head = procedures.HeadSettings(cfg.tuning.learning_rate, cfg.tuning.epochs, m.batch_size, m.weight_decay,
                                   m.n_views)
    sizes = [min(POOL_CHUNK, pool_size - i) for i in range(0, pool_size, POOL_CHUNK)]
    pool_jobs = [(setup, seed, i, n, cache_dir) for i, n in enumerate(sizes)]
    jobs = [(setup, plan, models, head, d, sizes, cache_dir) for d in range(n_datasets)]
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                 initargs=(log_level,)) as ex:
            list(ex.map(_pool_chunk, pool_jobs))
            t_pool = time.perf_counter() - t0
            results = list(ex.map(_dataset_job, jobs))
    else:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        for j in pool_jobs:
            _pool_chunk(j)
        t_pool = time.perf_counter() - t0
        results = [_dataset_job(j) for j in jobs]
    keep = (cache_dir or features.cache_root()) / f"results-{setup.key('results', seed, n_datasets)}.pkl"
    keep.write_bytes(pickle.dumps({"results": results, "plan": plan}))  # to re-tabulate without re-running
    table = simulate.coverage_table(results, plan)
    settings = {"n_datasets": n_datasets, "n_outfits": plan.n_outfits, "n_splits": plan.n_splits,
                "n_repeats": plan.n_repeats, "pool_outfits": pool_size, "image_size": image_size,
                "models": list(models), "seed": seed, "confidence": plan.confidence,
                "generator": "neipalette.data.synth", "generator_version": getattr(synth, "GENERATOR_VERSION", None),
                "synth": asdict(sc), "workers": workers,
                "cnn": ({"arch": arch, "weights": features.weights_detail(cnn), "input_mode": "pair",
                         "image_size": image_size, "n_views": m.n_views, "learning_rate": head.learning_rate,
                         "epochs": head.epochs, "tuned": False} if arch else None),
                "report_method": simulate.REPORT_METHOD, "estimand": simulate.ESTIMAND, "protocol": "cv",
                "input_mode": "pair",
                "panel": asdict(setup.panel) if setup.panel else "drawn afresh per dataset and pool chunk"}
    return {"table": table, "settings": settings, "seconds": time.perf_counter() - t0, "pool_seconds": t_pool}


@click.command()
@click.option("--config", "config_path", default="experiments/default.yaml", show_default=True,
              help="Benchmark config: dataset generator and size, CV protocol, models, CNN settings.")
@click.option("--datasets", "n_datasets", type=click.IntRange(min=2), default=None,
              help="Generated datasets to run the protocol on.  [default: 200; --quick: 6]")
@click.option("--models", default=None, help="Comma-separated models (baselines and at most one CNN). "
              "[default: the config's baselines and its first architecture]")
@click.option("--quick", is_flag=True, help="Smoke-test size: 6 datasets, 2 repeats, a 400-outfit pool.")
@click.option("--pool", "pool_size", type=click.IntRange(min=100), default=None,
              help="Fresh outfits that define the truth.  [default: 10000; --quick: 400]")
@click.option("--image-size", type=click.IntRange(min=16), default=32, show_default=True,
              help="Render and embed generated garments at this size (rendering is the cost).")
@click.option("--workers", type=click.IntRange(min=1), default=min(2, os.cpu_count() or 1), show_default=True,
              help="Processes (one torch thread each).")
@click.option("--seed", type=int, default=None, help="Seed of the datasets, folds and fits.  [default: the config's]")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Feature cache.  [default: $NEIPALETTE_CACHE/coverage or ~/.cache/neipalette/coverage]")
@click.option("--no-log", is_flag=True, help="Do not write an MLflow run.")
@click.option("--ship", is_flag=True, help=f"Write the table to {measured.MEASURED.name} (the one reports quote).")
@click.option("-v", "--verbose", is_flag=True, help="Log progress.")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
def main(config_path: str, n_datasets: int | None, models: str | None, quick: bool, pool_size: int | None,
         image_size: int, workers: int, seed: int | None, cache_dir: Path | None, no_log: bool, ship: bool,
         verbose: bool, debug: bool) -> None:
    """Coverage and width of each interval method for the configured protocol, on generated datasets."""
    configure_mlflow_env(debug=debug)
    level = logging.INFO if verbose or debug else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    with error_boundary(debug=debug, interrupted="interrupted: finished datasets are cached; rerun to continue",
                        classifiers=(describe_tracking_failure,)):
        cfg = load_config(config_path)
        chosen = _models(cfg, models)
        out = run(cfg, n_datasets=n_datasets or (QUICK["datasets"] if quick else 200), models=chosen,
                  pool_size=pool_size or (QUICK["pool"] if quick else 10_000), image_size=image_size,
                  workers=workers, seed=cfg.seed if seed is None else seed,
                  n_repeats=min(cfg.n_repeats, QUICK["n_repeats"]) if quick else cfg.n_repeats,
                  cache_dir=cache_dir, log_level=level)
        summary = _print_and_log(out, cfg, quick=quick, no_log=no_log)
        if ship:
            usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
            cpu = sum(u.ru_utime + u.ru_stime for u in usage)
            path = measured.ship(summary, commit=_commit(), quick=quick, cpu_seconds=round(cpu, 1))
            click.echo(f"wrote {path} ({cpu / 60:.1f} CPU-min)")


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def _print_and_log(out: dict, cfg: BenchmarkConfig, *, quick: bool, no_log: bool) -> dict:
    table, s = out["table"], out["settings"]
    click.echo(f"Coverage at nominal {s['confidence']:.0%}: {s['n_datasets']} datasets of {s['n_outfits']} outfits "
               f"from {s['generator']} v{s['generator_version']}, {s['n_repeats']} repeats of {s['n_splits']}-fold CV; truth = "
               f"expected score of the procedure trained on n_train outfits, on {s['pool_outfits']:,} fresh outfits "
               f"(images {s['image_size']} px){' [--quick: a smoke test, not a measurement]' if quick else ''}")
    if s["cnn"]:
        c = s["cnn"]
        click.echo(f"CNN: {c['arch']} head on frozen embeddings ({c['weights']}), FIXED learning rate "
                   f"{c['learning_rate']:g} and {c['epochs']} epochs (not tuned, for speed), {c['n_views']} views")
    click.echo(_fmt_table(table))
    means = table[table["kind"] == "mean"]  # the difference rows have their own methods and truths
    rep = means[means["method"] == simulate.REPORT_METHOD]
    worst = float(rep["coverage"].min()) if len(rep) else math.nan
    best = means.groupby("method")["coverage"].min().max() if len(means) else math.nan
    diffs = table[(table["kind"] == "difference") & (table["method"] == simulate.REPORT_DIFFERENCE_METHOD)]
    click.echo(f"The report's method ({simulate.REPORT_METHOD}) covers at least {worst:.3f} over these models and "
               f"metrics (goal >= {GOAL:.2f}); best worst-case over methods: {best:.3f}. "
               + (f"Its difference interval ({simulate.REPORT_DIFFERENCE_METHOD}) covers at least "
                  f"{float(diffs['coverage'].min()):.3f} over these pairs. " if len(diffs) else "")
               + f"Wall time {out['seconds']:.0f} s (pool {out['pool_seconds']:.0f} s).")
    summary = {"settings": s, "seconds": round(out["seconds"], 1), "report_method_min_coverage": worst,
               "coverage": table.round(4).to_dict("records")}
    run_id = None
    if not no_log:
        from benchmark.report.figures import coverage_figure
        from benchmark.tracking.coverage import generator_tags, log_coverage_run

        tags = generator_tags(s["generator"], s["generator_version"], s["n_outfits"], s["n_splits"],
                              s["n_repeats"])
        tags["neipalette.quick"] = str(quick).lower()
        params = {k: v for k, v in s.items() if not isinstance(v, (dict, list))} | {"models": ",".join(s["models"])}
        run_id = log_coverage_run(cfg.experiment, tags=tags, params=params, table=table,
                                  figure_png=coverage_figure(table), summary=summary)
    summary["run_id"] = run_id
    click.echo(json.dumps(summary, allow_nan=True, default=str))
    return summary
